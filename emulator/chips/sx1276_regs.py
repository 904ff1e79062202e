"""SX1276 register file: power-on values, modem paging (LoRa/FSK), the decoded LoRa
configuration and SPI access. The modes and the air interface that use it are in sx1276.py
(which explains what is modelled); SX1276 there supplies _update_dio, _notify_mode and
_abort_activity, called from here on reset and mode writes."""

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



class SX1276Registers:
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

