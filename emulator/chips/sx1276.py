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
from ..path_loss import SNR_LIMIT_DB
from .pins import InputPin, OutputPin
from .sx1276_regs import (BW_HZ, CAD, FSTEP, FSTX, FSRX, FXOSC, IRQ_CAD_DETECTED, IRQ_CAD_DONE,  # noqa: F401
                          IRQ_CRC_ERROR, IRQ_FHSS, IRQ_RX_DONE, IRQ_RX_TIMEOUT, IRQ_TX_DONE,
                          IRQ_VALID_HEADER, MODE_NAMES, RXCONT, RXSINGLE, SLEEP, STDBY, TX,
                          SX1276Registers, _clamp_s8, _clamp_u8, packet_rssi_from_registers,
                          snr_from_register)


def time_on_air_us(payload_len, sf, bw_hz, cr, preamble, crc, implicit, ldro):
    return _airtime.time_on_air_us(payload_len, sf=sf, bw_hz=bw_hz, cr=cr, preamble=preamble,
                                   crc=crc, implicit=implicit, ldro=ldro)


class SX1276(SX1276Registers, SPIDevice):
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
            for tx in self.medium.ongoing():
                if tx.sender is self or abs(tx.freq_hz - self.freq_hz) >= self.bw_hz / 4.0 or tx.sf != self.sf:
                    continue
                link = self.medium.expected_link(tx.sender, self, tx.power_dbm, tx.freq_hz, tx.bw_hz)
                if link["snr_db"] >= SNR_LIMIT_DB.get(tx.sf, -20.0):
                    detected = True
        self._set_mode_bits(STDBY)
        self._raise(IRQ_CAD_DONE | (IRQ_CAD_DETECTED if detected else 0))
