"""Semtech SX1276 in LoRa mode, behind SPI, following the datasheet's register map (rev 7).

SPI: first byte = address, bit 7 set for a write; the rest is a burst that auto-increments
the address, except RegFifo (0x00), which reads/writes the FIFO at RegFifoAddrPtr. During a
write MISO returns the register's previous value, as the datasheet describes.

Modelled:
- RegOpMode 0x01: LongRangeMode (changeable only in or into SLEEP), AccessSharedReg,
  LowFrequencyModeOn, modes SLEEP/STDBY/FSTX/TX/FSRX/RXCONTINUOUS/RXSINGLE/CAD.
  FSK mode keeps its own register page (0x02-0x05, 0x0D-0x3F) so LoRa settings survive.
- RegFrf 0x06-0x08 (F = Frf·32 MHz/2^19), RegPaConfig 0x09 with RegPaDac 0x4D
  (RFO: Pmax−(15−OutputPower), Pmax = 10.8+0.6·MaxPower; PA_BOOST: 17−(15−OutputPower),
  +3 dB with PaDac = 0x87). Most HF modules (RFM95, TTGO, Heltec) wire only PA_BOOST; with
  rfo_connected=False a frame sent on RFO leaks out 30 dB weaker, as on those boards.
- FIFO (256 B) with RegFifoAddrPtr 0x0D, TxBase 0x0E, RxBase 0x0F, RxCurrentAddr 0x10,
  RxByteAddr 0x25, RxNbBytes 0x13. The FIFO is not accessible in SLEEP (reads 0, writes dropped).
- RegIrqFlags 0x12 (write 1 to clear), RegIrqFlagsMask 0x11 (a masked IRQ is never raised).
- ModemConfig1/2/3 0x1D/0x1E/0x26, SymbTimeout, preamble 0x20/0x21, payload length 0x22,
  max payload 0x23, InvertIQ 0x33 (RX bit 6 = inverted; TX bit 0 = 1 normal, 0 inverted),
  sync word 0x39, DIO mapping 0x40/0x41, version 0x42 = 0x12.
- TX: PayloadLength bytes from FifoTxBaseAddr go on air for the Semtech time on air
  (firmware/airtime.py); then TxDone and back to STDBY.
- RX continuous/single: a frame is received when the chip is in RX at its preamble and
  frequency (within BW/4), SF, BW, sync word and IQ polarity match and SNR is above the SF's
  limit. ValidHeader at the end of the header, RxDone (+PayloadCrcError on collision) at the
  end. RX single times out after SymbTimeout symbols (RxTimeout) and returns to STDBY.
- Packet RSSI/SNR: RegPktSnrValue = SNR·4 (two's complement); RegPktRssiValue =
  RSSI + 157 (HF port, >779 MHz; 164 on the LF port) when SNR >= 0, and
  RSSI − SNR + 157 when SNR < 0, so the datasheet's
  "RSSI = −157 + PktRssi + PktSnr/4 (SNR < 0)" gives back the signal strength.
  RegRssiValue = channel power now + 157.
- CAD: CadDone after (2^SF + 32)/BW, CadDetected if a frame with the same SF is on the channel.
- DIO0 (RxDone/TxDone/CadDone), DIO1 (RxTimeout/-/CadDetected), DIO3 (CadDone/ValidHeader/
  PayloadCrcError) follow the flags; NRESET low holds the chip, rising edge = power-on reset.
"""

from sen import airtime as _airtime

from ..devices import SPIDevice
from .pins import InputPin, OutputPin

FXOSC = 32_000_000
FSTEP = FXOSC / (1 << 19)

SLEEP, STDBY, FSTX, TX, FSRX, RXCONT, RXSINGLE, CAD = range(8)
MODE_NAMES = ("sleep", "stdby", "fstx", "tx", "fsrx", "rxcont", "rxsingle", "cad")

IRQ_RX_TIMEOUT, IRQ_RX_DONE, IRQ_CRC_ERROR, IRQ_VALID_HEADER = 0x80, 0x40, 0x20, 0x10
IRQ_TX_DONE, IRQ_CAD_DONE, IRQ_FHSS, IRQ_CAD_DETECTED = 0x08, 0x04, 0x02, 0x01

BW_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)

# Registers that exist in both modems (not paged).
_COMMON = set([0x01]) | set(range(0x06, 0x0D)) | set(range(0x40, 0x80))
_LORA_READ_ONLY = set([0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x25,
                       0x28, 0x29, 0x2A, 0x2C, 0x42])

_POR_COMMON = {0x01: 0x09, 0x06: 0x6C, 0x07: 0x80, 0x08: 0x00, 0x09: 0x4F, 0x0A: 0x09, 0x0B: 0x2B,
               0x0C: 0x20, 0x40: 0x00, 0x41: 0x00, 0x42: 0x12, 0x44: 0x2D, 0x4B: 0x09, 0x4D: 0x84,
               0x61: 0x13, 0x62: 0x0E, 0x63: 0x5B, 0x64: 0xDB, 0x70: 0xD0}
_POR_LORA = {0x0E: 0x80, 0x1D: 0x72, 0x1E: 0x70, 0x1F: 0x64, 0x21: 0x08, 0x22: 0x01, 0x23: 0xFF,
             0x31: 0xC3, 0x33: 0x27, 0x37: 0x0A, 0x39: 0x12, 0x3B: 0x1D}
_POR_FSK = {0x02: 0x1A, 0x03: 0x0B, 0x05: 0x52, 0x0D: 0x08, 0x0E: 0x02, 0x0F: 0x0A, 0x10: 0xFF,
            0x12: 0x15, 0x13: 0x0B, 0x14: 0x28, 0x15: 0x0C, 0x16: 0x12, 0x1A: 0x01, 0x1F: 0x40,
            0x24: 0x05, 0x25: 0x00, 0x26: 0x03, 0x27: 0x93, 0x28: 0x55, 0x29: 0x55, 0x2A: 0x55,
            0x2B: 0x55, 0x2C: 0x55, 0x2D: 0x55, 0x2E: 0x55, 0x2F: 0x55, 0x30: 0x90, 0x35: 0x1F,
            0x36: 0x80, 0x3B: 0x82, 0x3F: 0x10}


def time_on_air_us(payload_len, sf, bw_hz, cr, preamble, crc, implicit, ldro):
    return _airtime.time_on_air_us(payload_len, sf=sf, bw_hz=bw_hz, cr=cr, preamble=preamble,
                                   crc=crc, implicit=implicit, ldro=ldro)


class SX1276(SPIDevice):
    def __init__(self, clock, name="sx1276", rfo_connected=False, hf=None):
        self.clock = clock
        self.name = name
        self.rfo_connected = rfo_connected
        self.medium = None
        self.dio = [OutputPin("%s.DIO%d" % (name, i), 0) for i in range(6)]
        self.nreset = InputPin("%s.NRESET" % name, self._on_reset_pin, initial=1)
        self.mode_watchers = []  # callables(mode_name) for power-state accounting
        self.in_reset = False
        self.tx_log = []  # (t_start_us, airtime_us, length) of frames this chip sent
        self._por()

    # -- reset ----------------------------------------------------------------------------
    def _por(self):
        self.common = bytearray(0x80)
        self.lora = bytearray(0x40)
        self.fsk = bytearray(0x40)
        for a, v in _POR_COMMON.items():
            self.common[a] = v
        for a, v in _POR_LORA.items():
            self.lora[a] = v
        for a, v in _POR_FSK.items():
            self.fsk[a] = v
        self.fifo = bytearray(256)
        self.flags = 0
        self._gen = 0  # bumps on every mode change; stale timers check it
        self._tx = None
        self._locked = None  # (transmission, rssi, snr) being received
        self._rx_ptr = 0
        self._last_nb = 0
        self._header_cnt = 0
        self._packet_cnt = 0
        self._pkt_snr = 0
        self._pkt_rssi = 0
        self._rssi_reg = 0
        self._modem_stat = 0x10
        self._hop_channel = 0
        self._update_dio()
        self._notify_mode()

    def reset(self):
        self._abort_activity()
        self._por()

    def set_powered(self, on):
        """Supply off: no SPI answers, nothing on air; on again: power-on reset."""
        if not on:
            self._abort_activity()
            self._gen += 1
            self.in_reset = True
            self._notify_mode()
        elif self.in_reset and self.nreset.value == 1:
            self.in_reset = False
            self._por()

    def _on_reset_pin(self, level):
        if level == 0:
            self._abort_activity()
            self.in_reset = True
        else:
            self.in_reset = False
            self._por()

    # -- decoded configuration ---------------------------------------------------------------
    @property
    def op_mode(self):
        return self.common[0x01]

    @property
    def mode(self):
        return self.common[0x01] & 0x07

    @property
    def lora_mode(self):
        return bool(self.common[0x01] & 0x80)

    @property
    def freq_hz(self):
        frf = (self.common[0x06] << 16) | (self.common[0x07] << 8) | self.common[0x08]
        return frf * FSTEP

    @property
    def bw_hz(self):
        code = self.lora[0x1D] >> 4
        return BW_HZ[code] if code < len(BW_HZ) else 500000

    @property
    def cr(self):
        return max(1, min(4, (self.lora[0x1D] >> 1) & 0x07))

    @property
    def implicit(self):
        return bool(self.lora[0x1D] & 0x01)

    @property
    def sf(self):
        return max(6, min(12, self.lora[0x1E] >> 4))

    @property
    def crc_on(self):
        return bool(self.lora[0x1E] & 0x04)

    @property
    def ldro(self):
        return 1 if self.lora[0x26] & 0x08 else 0

    @property
    def preamble(self):
        return (self.lora[0x20] << 8) | self.lora[0x21]

    @property
    def sync_word(self):
        return self.lora[0x39]

    @property
    def symb_timeout(self):
        return ((self.lora[0x1E] & 0x03) << 8) | self.lora[0x1F]

    @property
    def rx_inverted(self):
        return bool(self.lora[0x33] & 0x40)

    @property
    def tx_inverted(self):
        return not (self.lora[0x33] & 0x01)

    @property
    def hf_port(self):
        return self.freq_hz > 779e6

    @property
    def rssi_offset(self):
        return 157 if self.hf_port else 164

    def tx_power_dbm(self):
        pa = self.common[0x09]
        out = pa & 0x0F
        if pa & 0x80:
            dbm = 17 - (15 - out)
            if (self.common[0x4D] & 0x07) == 0x07:
                dbm += 3
            return float(dbm)
        pmax = 10.8 + 0.6 * ((pa >> 4) & 0x07)
        dbm = pmax - (15 - out)
        return dbm if self.rfo_connected else dbm - 30.0

    def t_sym_us(self):
        return (1 << self.sf) * 1e6 / self.bw_hz

    def mode_name(self):
        if self.in_reset:
            return "reset"
        return MODE_NAMES[self.mode]

    # -- SPI --------------------------------------------------------------------------------
    def transfer(self, data):
        data = bytes(data)
        out = bytearray(len(data))
        if not data or self.in_reset:
            return bytes(out)
        addr = data[0] & 0x7F
        write = bool(data[0] & 0x80)
        for i in range(1, len(data)):
            if addr == 0x00:
                out[i] = self._fifo_access(data[i] if write else None)
                continue
            out[i] = self._read(addr)
            if write:
                self._write(addr, data[i])
            addr = (addr + 1) & 0x7F
        return bytes(out)

    def _fifo_access(self, value):
        if self.mode == SLEEP or not self.lora_mode:
            return 0
        page = self.lora
        ptr = page[0x0D]
        old = self.fifo[ptr]
        if value is not None:
            self.fifo[ptr] = value
        page[0x0D] = (ptr + 1) & 0xFF
        return old

    def _page(self, addr):
        if addr in _COMMON:
            return self.common
        if self.lora_mode and not (self.common[0x01] & 0x40):
            return self.lora
        return self.fsk

    def _read(self, addr):
        page = self._page(addr)
        if page is not self.lora:
            if page is self.fsk and addr == 0x3B:
                return page[addr] & ~0x60 & 0xFF  # image calibration finishes at once
            return page[addr]
        if addr == 0x12:
            return self.flags
        if addr == 0x13:
            return self._last_nb
        if addr == 0x14:
            return (self._header_cnt >> 8) & 0xFF
        if addr == 0x15:
            return self._header_cnt & 0xFF
        if addr == 0x16:
            return (self._packet_cnt >> 8) & 0xFF
        if addr == 0x17:
            return self._packet_cnt & 0xFF
        if addr == 0x18:
            return self._modem_stat
        if addr == 0x19:
            return self._pkt_snr & 0xFF
        if addr == 0x1A:
            return self._pkt_rssi
        if addr == 0x1B:
            if self.mode in (RXCONT, RXSINGLE, CAD) and self.medium is not None:
                self._rssi_reg = _clamp_u8(round(self.medium.channel_power_dbm(self, self.freq_hz, self.bw_hz)
                                                 + self.rssi_offset))
            return self._rssi_reg
        if addr == 0x1C:
            return self._hop_channel
        return page[addr]

    def _write(self, addr, value):
        if addr == 0x01:
            self._write_op_mode(value)
            return
        if addr == 0x42:
            return
        page = self._page(addr)
        if page is self.lora:
            if addr == 0x12:
                self.flags &= ~value & 0xFF
                self._update_dio()
                return
            if addr in _LORA_READ_ONLY:
                return
            page[addr] = value
            if addr == 0x40 or addr == 0x41:
                self._update_dio()
            return
        if page is self.fsk and addr == 0x3B:
            value &= ~0x40  # ImageCalStart self-clears
        page[addr] = value
        if addr in (0x40, 0x41):
            self._update_dio()

    # -- modes --------------------------------------------------------------------------------
    def _write_op_mode(self, value):
        cur = self.common[0x01]
        cur_mode = cur & 0x07
        new_mode = value & 0x07
        lr = value & 0x80
        if (cur & 0x80) != lr and cur_mode != SLEEP and new_mode != SLEEP:
            lr = cur & 0x80  # LongRangeMode can only change in Sleep
        self.common[0x01] = (value & 0x4F) | lr
        if new_mode == cur_mode and (cur & 0x80) == lr:
            return
        self._abort_activity()
        self._gen += 1
        if lr and new_mode == TX:
            self._start_tx()
        elif lr and new_mode in (RXCONT, RXSINGLE):
            self._start_rx(new_mode)
        elif lr and new_mode == CAD:
            self._start_cad()
        if new_mode == SLEEP:
            self._header_cnt = 0
            self._packet_cnt = 0
        self._notify_mode()

    def _set_mode_bits(self, mode):
        self.common[0x01] = (self.common[0x01] & 0xF8) | mode
        self._gen += 1
        self._notify_mode()

    def _notify_mode(self):
        name = self.mode_name()
        for cb in list(self.mode_watchers):
            cb(name)

    def _abort_activity(self):
        if self._tx is not None and self.medium is not None:
            self.medium.abort(self._tx)
        self._tx = None
        self._locked = None
        self._modem_stat = 0x10

    def _raise(self, bits):
        bits &= ~self.lora[0x11] & 0xFF
        if bits:
            self.flags |= bits
            self._update_dio()

    def _update_dio(self):
        m1, m2 = self.common[0x40], self.common[0x41]
        f = self.flags
        dio0 = (IRQ_RX_DONE, IRQ_TX_DONE, IRQ_CAD_DONE, 0)[(m1 >> 6) & 3]
        dio1 = (IRQ_RX_TIMEOUT, IRQ_FHSS, IRQ_CAD_DETECTED, 0)[(m1 >> 4) & 3]
        dio2 = (IRQ_FHSS, IRQ_FHSS, IRQ_FHSS, 0)[(m1 >> 2) & 3]
        dio3 = (IRQ_CAD_DONE, IRQ_VALID_HEADER, IRQ_CRC_ERROR, 0)[m1 & 3]
        dio4 = (IRQ_CAD_DETECTED, 0, 0, 0)[(m2 >> 6) & 3]
        for pin, bit in zip(self.dio, (dio0, dio1, dio2, dio3, dio4, 0)):
            pin.set(1 if f & bit else 0)

    # TX
    def _start_tx(self):
        length = self.lora[0x22]
        base = self.lora[0x0E]
        payload = bytes(self.fifo[(base + i) & 0xFF] for i in range(length))
        params = {"freq_hz": self.freq_hz, "sf": self.sf, "bw_hz": self.bw_hz, "cr": self.cr,
                  "sync_word": self.sync_word, "crc": self.crc_on, "implicit": self.implicit,
                  "preamble": self.preamble, "ldro": self.ldro, "invert_iq": self.tx_inverted,
                  "power_dbm": self.tx_power_dbm()}
        airtime = time_on_air_us(length, self.sf, self.bw_hz, self.cr, self.preamble, self.crc_on,
                                 self.implicit, self.ldro)
        self.tx_log.append((self.clock.now_us(), airtime, length))
        gen = self._gen
        if self.medium is not None:
            self._tx = self.medium.transmit(self, payload, params, airtime)
        self.clock.call_at(self.clock.now_us() + int(round(airtime)), lambda: self._tx_done(gen))

    def _tx_done(self, gen):
        if gen != self._gen:
            return
        self._tx = None
        self._set_mode_bits(STDBY)
        self._raise(IRQ_TX_DONE)

    # RX
    def _start_rx(self, mode):
        self._rx_ptr = self.lora[0x0F]
        self._modem_stat = 0x10
        gen = self._gen
        if mode == RXSINGLE:
            due = self.clock.now_us() + int(self.symb_timeout * self.t_sym_us())
            self.clock.call_at(due, lambda: self._rx_timeout(gen))
        if self.medium is not None:
            # A frame whose preamble is still running can be caught (needs ~4 symbols).
            for tx in self.medium.ongoing():
                if tx.sender is self:
                    continue
                t_pre_end = tx.t_start_us + (tx.preamble - 4) * (1 << tx.sf) * 1e6 / tx.bw_hz
                if self.clock.now_us() <= t_pre_end:
                    offers = getattr(tx, "offers", {})
                    if self in offers:
                        if offers[self] is None:
                            continue  # the medium's random loss already took it for this radio
                        rssi, snr = offers[self]
                    else:
                        link = self.medium.expected_link(tx.sender, self, tx.power_dbm, tx.freq_hz, tx.bw_hz)
                        rssi, snr = link["rssi_dbm"], link["snr_db"]
                    if self.on_air_start(tx, rssi, snr):
                        tx.receivers.append((self, rssi, snr))
                        break

    def _rx_timeout(self, gen):
        if gen != self._gen or self._locked is not None:
            return
        self._set_mode_bits(STDBY)
        self._raise(IRQ_RX_TIMEOUT)

    def _matches(self, tx):
        return (abs(tx.freq_hz - self.freq_hz) < self.bw_hz / 4.0 and tx.sf == self.sf
                and tx.bw_hz == self.bw_hz and tx.sync_word == self.sync_word
                and tx.invert_iq == self.rx_inverted)

    def on_air_start(self, tx, rssi, snr):
        """The medium offers a frame now starting; return True if this chip locks onto it."""
        if self.in_reset or not self.lora_mode or self.mode not in (RXCONT, RXSINGLE):
            return False
        if self._locked is not None or not self._matches(tx):
            return False
        from ..path_loss import SNR_LIMIT_DB
        if snr < SNR_LIMIT_DB.get(tx.sf, -20.0):
            return False
        self._locked = (tx, rssi, snr)
        self._modem_stat = 0x03 | 0x04  # signal detected, synchronised, RX ongoing
        if not tx.implicit:
            gen = self._gen
            t_hdr = tx.t_start_us + (tx.preamble + 4.25 + 8) * (1 << tx.sf) * 1e6 / tx.bw_hz
            self.clock.call_at(int(t_hdr), lambda: self._valid_header(tx, gen))
        return True

    def _valid_header(self, tx, gen):
        if gen != self._gen or self._locked is None or self._locked[0] is not tx or tx.aborted:
            return
        if len(tx.payload) > self.lora[0x23]:
            self._locked = None
            self._modem_stat = 0x10
            return
        self._header_cnt = (self._header_cnt + 1) & 0xFFFF
        self._modem_stat |= 0x08 | ((tx.cr & 0x07) << 5)
        self._hop_channel = 0x40 if tx.crc else 0
        self._raise(IRQ_VALID_HEADER)

    def on_air_end(self, tx, outcome, rssi, snr):
        """The frame this chip may have locked onto ended. Returns True if it was listening."""
        if self._locked is None or self._locked[0] is not tx:
            return False
        self._locked = None
        self._modem_stat = 0x10
        if outcome == "aborted" or len(tx.payload) > self.lora[0x23]:
            return True
        payload = bytearray(tx.payload)
        bad = outcome != "ok"
        if tx.implicit:
            # No header: the receiver must already agree on length, CR, CRC.
            if (self.lora[0x22] != len(payload) or self.cr != tx.cr or self.crc_on != tx.crc):
                bad = True
            payload = payload[:self.lora[0x22]] + bytes(max(0, self.lora[0x22] - len(payload)))
        if self.ldro != tx.ldro:
            bad = True
        if bad:
            for i in range(0, len(payload), 3):
                payload[i] ^= 0x5A
        start = self._rx_ptr
        for i, b in enumerate(payload):
            self.fifo[(start + i) & 0xFF] = b
        self._rx_ptr = (start + len(payload)) & 0xFF
        self.lora[0x10] = start
        self.lora[0x25] = self._rx_ptr
        self._last_nb = len(payload) & 0xFF
        self._pkt_snr = _clamp_s8(int(round(snr * 4)))
        strength = rssi - min(snr, 0.0)
        self._pkt_rssi = _clamp_u8(int(round(strength + self.rssi_offset)))
        self._packet_cnt = (self._packet_cnt + 1) & 0xFFFF
        crc_checked = tx.crc if not tx.implicit else self.crc_on
        bits = IRQ_RX_DONE
        if bad and crc_checked:
            bits |= IRQ_CRC_ERROR
        if self.mode == RXSINGLE:
            self._set_mode_bits(STDBY)
        self._raise(bits)
        return True

    # CAD
    def _start_cad(self):
        gen = self._gen
        dur = ((1 << self.sf) + 32) * 1e6 / self.bw_hz
        self.clock.call_at(self.clock.now_us() + int(dur), lambda: self._cad_done(gen))

    def _cad_done(self, gen):
        if gen != self._gen:
            return
        detected = False
        if self.medium is not None:
            from ..path_loss import SNR_LIMIT_DB
            for tx in self.medium.ongoing():
                if tx.sender is self or abs(tx.freq_hz - self.freq_hz) >= self.bw_hz / 4.0 or tx.sf != self.sf:
                    continue
                link = self.medium.expected_link(tx.sender, self, tx.power_dbm, tx.freq_hz, tx.bw_hz)
                if link["snr_db"] >= SNR_LIMIT_DB.get(tx.sf, -20.0):
                    detected = True
        self._set_mode_bits(STDBY)
        self._raise(IRQ_CAD_DONE | (IRQ_CAD_DETECTED if detected else 0))


def _clamp_u8(v):
    return max(0, min(255, int(v)))


def _clamp_s8(v):
    v = max(-128, min(127, int(v)))
    return v & 0xFF


def snr_from_register(v):
    """Datasheet decoding of RegPktSnrValue (for tests and the gateway)."""
    return (v - 256 if v > 127 else v) / 4.0


def packet_rssi_from_registers(pkt_rssi, pkt_snr_reg, hf=True):
    """Datasheet decoding of RegPktRssiValue, with the SNR < 0 correction."""
    snr = snr_from_register(pkt_snr_reg)
    base = -157 if hf else -164
    return base + pkt_rssi + (snr if snr < 0 else 0)

