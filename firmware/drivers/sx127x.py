# SX1276/77/78/79 (and RFM95) LoRa driver on machine.SPI + machine.Pin only.
# Register map: Semtech SX1276/77/78/79 datasheet rev 7, section 6 (LoRa mode).
# Used by the nodes (send, ACK window, sleep) and by firmware/receiver.py (continuous RX).
import time
from machine import Pin

from nap import lightsleep

REG_FIFO = 0x00
REG_OP_MODE = 0x01
REG_FRF_MSB = 0x06
REG_PA_CONFIG = 0x09
REG_OCP = 0x0B
REG_LNA = 0x0C
REG_FIFO_ADDR_PTR = 0x0D
REG_FIFO_TX_BASE = 0x0E
REG_FIFO_RX_BASE = 0x0F
REG_FIFO_RX_CURRENT = 0x10
REG_IRQ_FLAGS = 0x12
REG_RX_NB_BYTES = 0x13
REG_MODEM_STAT = 0x18
REG_PKT_SNR = 0x19
REG_PKT_RSSI = 0x1A
REG_MODEM_CONFIG1 = 0x1D
REG_MODEM_CONFIG2 = 0x1E
REG_SYMB_TIMEOUT_LSB = 0x1F
REG_PREAMBLE_MSB = 0x20
REG_PREAMBLE_LSB = 0x21
REG_PAYLOAD_LENGTH = 0x22
REG_MODEM_CONFIG3 = 0x26
REG_SYNC_WORD = 0x39
REG_DIO_MAPPING1 = 0x40
REG_VERSION = 0x42
REG_PA_DAC = 0x4D

LONG_RANGE = 0x80
MODE_SLEEP = 0x00
MODE_STDBY = 0x01
MODE_TX = 0x03
MODE_RX_CONT = 0x05
MODE_RX_SINGLE = 0x06

IRQ_RX_TIMEOUT = 0x80
IRQ_RX_DONE = 0x40
IRQ_CRC_ERR = 0x20
IRQ_VALID_HEADER = 0x10
IRQ_TX_DONE = 0x08

DIO0_RX_DONE = 0x00
DIO0_TX_DONE = 0x40

CHIP_VERSION = 0x12
F_XOSC = 32000000
BWS = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)


class RadioError(Exception):
    pass


class SX127x:
    def __init__(self, spi, cs, reset=None, dio0=None):
        """spi: machine.SPI; cs, reset, dio0: pin numbers or machine.Pin objects."""
        self.spi = spi
        self.cs = cs if isinstance(cs, Pin) else Pin(cs, Pin.OUT, value=1)
        self.cs.value(1)
        self.rst = None
        if reset is not None:
            self.rst = reset if isinstance(reset, Pin) else Pin(reset, Pin.OUT, value=1)
        self.dio0 = None
        if dio0 is not None:
            self.dio0 = dio0 if isinstance(dio0, Pin) else Pin(dio0, Pin.IN)
        self._tx2 = bytearray(2)
        self._rx2 = bytearray(2)
        self._irq_seen = False
        self.sf = 9
        self.bw = 125000
        self.cr = 1
        self.preamble = 8
        self.crc = True
        self.last_rssi = None
        self.last_snr = None
        self.tx_timeouts = 0
        if self.dio0 is not None:
            self.dio0.irq(trigger=Pin.IRQ_RISING, handler=self._on_dio0)

    def _on_dio0(self, pin):
        self._irq_seen = True

    # --- registers ---
    def read(self, reg):
        self._tx2[0] = reg & 0x7F
        self._tx2[1] = 0
        self.cs.value(0)
        try:
            self.spi.write_readinto(self._tx2, self._rx2)
        finally:
            self.cs.value(1)
        return self._rx2[1]

    def write(self, reg, value):
        self._tx2[0] = reg | 0x80
        self._tx2[1] = value & 0xFF
        self.cs.value(0)
        try:
            self.spi.write(self._tx2)
        finally:
            self.cs.value(1)

    def _burst_write(self, reg, data):
        self._tx2[0] = reg | 0x80
        self.cs.value(0)
        try:
            self.spi.write(memoryview(self._tx2)[:1])
            self.spi.write(data)
        finally:
            self.cs.value(1)

    def _burst_read(self, reg, buf):
        self._tx2[0] = reg & 0x7F
        self.cs.value(0)
        try:
            self.spi.write(memoryview(self._tx2)[:1])
            self.spi.readinto(buf, 0)
        finally:
            self.cs.value(1)

    # --- setup ---
    def reset(self):
        """Pulse NRESET (datasheet 7.2.2: low >100 us, then 5 ms before use) and check
        the chip version. Raises RadioError when no SX127x answers."""
        if self.rst is not None:
            self.rst.value(0)
            time.sleep_ms(1)
            self.rst.value(1)
            lightsleep(6)
        v = self.version()
        if v != CHIP_VERSION:
            raise RadioError("SX127x version 0x%02x, expected 0x12 (wiring or chip)" % v)
        return v

    def version(self):
        return self.read(REG_VERSION)

    def mode(self, m):
        self.write(REG_OP_MODE, LONG_RANGE | m)

    def configure(self, freq_hz=921400000, sf=9, bw_hz=125000, cr=1, tx_dbm=14,
                  sync_word=0x12, preamble=8, crc=True, pa_boost=True):
        """Put the chip in LoRa mode with these settings; LowDataRateOptimize follows SF/BW."""
        if not 7 <= sf <= 12:
            raise ValueError("sf must be 7..12 (SF6 needs implicit header, not supported)")
        if bw_hz not in BWS:
            raise ValueError("bw_hz must be one of %s" % (BWS,))
        if not 1 <= cr <= 4:
            raise ValueError("cr must be 1..4 (4/5..4/8)")
        # LoRa mode can only be selected in sleep.
        self.write(REG_OP_MODE, MODE_SLEEP)
        self.mode(MODE_SLEEP)
        self.mode(MODE_STDBY)
        self.set_frequency(freq_hz)
        self.write(REG_FIFO_TX_BASE, 0x00)
        self.write(REG_FIFO_RX_BASE, 0x00)
        self.write(REG_LNA, self.read(REG_LNA) | 0x03)  # LNA boost HF
        self.sf = sf
        self.bw = bw_hz
        self.cr = cr
        self.crc = crc
        self.write(REG_MODEM_CONFIG1, (BWS.index(bw_hz) << 4) | (cr << 1))  # explicit header
        self.write(REG_MODEM_CONFIG2, (sf << 4) | (0x04 if crc else 0) | 0x03)
        self.write(REG_SYMB_TIMEOUT_LSB, 0xFF)
        ldro = 1 if (1 << sf) * 1000 > 16 * bw_hz else 0  # symbol > 16 ms
        self.write(REG_MODEM_CONFIG3, (0x08 if ldro else 0) | 0x04)  # AGC auto on
        self.set_preamble(preamble)
        self.write(REG_SYNC_WORD, sync_word)
        self.set_power(tx_dbm, pa_boost)
        self.mode(MODE_STDBY)

    def is_configured(self, freq_hz, sf, bw_hz, cr, sync_word, preamble, crc=True):
        """True if the chip sleeps in LoRa mode with exactly these settings, as it does
        after the node's last cycle: a deep-sleep wake can then skip reset and setup (the
        SX127x keeps its registers in sleep). Anything unexpected means a full setup."""
        if self.read(REG_VERSION) != CHIP_VERSION or self.read(REG_OP_MODE) != LONG_RANGE | MODE_SLEEP:
            return False
        frf = (freq_hz << 19) // F_XOSC
        if (self.read(REG_FRF_MSB) != (frf >> 16) & 0xFF or self.read(REG_FRF_MSB + 1) != (frf >> 8) & 0xFF
                or self.read(REG_FRF_MSB + 2) != frf & 0xFF):
            return False
        if bw_hz not in BWS or self.read(REG_MODEM_CONFIG1) != (BWS.index(bw_hz) << 4) | (cr << 1):
            return False
        if self.read(REG_MODEM_CONFIG2) & 0xF4 != (sf << 4) | (0x04 if crc else 0):
            return False
        if self.read(REG_SYNC_WORD) != sync_word or self.read(REG_PREAMBLE_LSB) != preamble & 0xFF:
            return False
        self.sf = sf
        self.bw = bw_hz
        self.cr = cr
        self.preamble = preamble
        self.crc = crc
        return True

    def ldro(self):
        return bool(self.read(REG_MODEM_CONFIG3) & 0x08)

    def set_frequency(self, freq_hz):
        frf = (freq_hz << 19) // F_XOSC
        self.write(REG_FRF_MSB, frf >> 16)
        self.write(REG_FRF_MSB + 1, frf >> 8)
        self.write(REG_FRF_MSB + 2, frf)

    def frequency(self):
        frf = (self.read(REG_FRF_MSB) << 16) | (self.read(REG_FRF_MSB + 1) << 8) | self.read(REG_FRF_MSB + 2)
        return (frf * F_XOSC) >> 19

    def set_preamble(self, n):
        self.preamble = n
        self.write(REG_PREAMBLE_MSB, n >> 8)
        self.write(REG_PREAMBLE_LSB, n)

    def set_power(self, dbm, pa_boost=True):
        if pa_boost:
            # PA_BOOST pin (RFM95, TTGO, Heltec): Pout = 2 + OutputPower, 2..17 dBm.
            dbm = min(max(dbm, 2), 17)
            self.write(REG_PA_DAC, 0x84)
            self.write(REG_OCP, 0x20 | 11)  # 100 mA trim
            self.write(REG_PA_CONFIG, 0x80 | (dbm - 2))
        else:
            # RFO pin, MaxPower 7: Pmax 15 dBm, Pout = Pmax - (15 - OutputPower).
            dbm = min(max(dbm, 0), 14)
            self.write(REG_PA_CONFIG, 0x70 | dbm)
        return dbm

    def sleep(self):
        self.mode(MODE_SLEEP)

    def standby(self):
        self.mode(MODE_STDBY)

    # --- transmit ---
    def _wait_irq(self, mask, timeout_ms, first_sleep_ms=0):
        """Wait until an IRQ flag in mask is set; light-sleeps the predictable part."""
        if first_sleep_ms > 0:
            lightsleep(first_sleep_ms)
        t0 = time.ticks_ms()
        while True:
            flags = self.read(REG_IRQ_FLAGS)
            if flags & mask:
                return flags
            left = timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                return 0
            time.sleep_ms(min(left, 2))

    def send(self, data, toa_ms, timeout_ms=None):
        """Transmit `data` (bytes-like, 1..255 B). toa_ms: expected time on air, from
        airtime.py; the CPU light-sleeps through it. Returns True on TxDone."""
        n = len(data)
        if not 0 < n < 256:
            raise ValueError("payload must be 1..255 bytes")
        self.mode(MODE_STDBY)
        self.write(REG_DIO_MAPPING1, DIO0_TX_DONE)
        self.write(REG_FIFO_ADDR_PTR, 0)
        self._burst_write(REG_FIFO, data)
        self.write(REG_PAYLOAD_LENGTH, n)
        self.write(REG_IRQ_FLAGS, 0xFF)
        self._irq_seen = False
        self.mode(MODE_TX)
        if timeout_ms is None:
            timeout_ms = toa_ms + 200 + toa_ms // 4
        flags = self._wait_irq(IRQ_TX_DONE, timeout_ms - toa_ms + 5, toa_ms - 5)
        self.write(REG_IRQ_FLAGS, 0xFF)
        if not flags & IRQ_TX_DONE:
            self.tx_timeouts += 1
            self.mode(MODE_STDBY)
            return False
        return True

    # --- receive ---
    def start_rx(self):
        """Continuous receive (gateway/receiver side, and the node's ACK window)."""
        self.mode(MODE_STDBY)
        self.write(REG_DIO_MAPPING1, DIO0_RX_DONE)
        self.write(REG_FIFO_ADDR_PTR, 0)
        self.write(REG_IRQ_FLAGS, 0xFF)
        self._irq_seen = False
        self.mode(MODE_RX_CONT)

    def rx_pending(self):
        """True when DIO0 fired or RxDone is set (cheap enough to call in a loop)."""
        if self._irq_seen:
            return True
        return bool(self.read(REG_IRQ_FLAGS) & IRQ_RX_DONE)

    def header_seen(self):
        return bool(self.read(REG_IRQ_FLAGS) & IRQ_VALID_HEADER)

    def read_packet(self, buf=None):
        """Fetch the received packet. Returns (payload bytes, rssi dBm, snr dB) or None when
        nothing valid is there (CRC errors are dropped). Stays in the current RX mode."""
        flags = self.read(REG_IRQ_FLAGS)
        self.write(REG_IRQ_FLAGS, 0xFF)
        self._irq_seen = False
        if not flags & IRQ_RX_DONE:
            return None
        if flags & IRQ_CRC_ERR:
            return None
        n = self.read(REG_RX_NB_BYTES)
        self.write(REG_FIFO_ADDR_PTR, self.read(REG_FIFO_RX_CURRENT))
        if buf is None or len(buf) < n:
            buf = bytearray(n)
        mv = memoryview(buf)[:n]
        self._burst_read(REG_FIFO, mv)
        snr = self.read(REG_PKT_SNR)
        if snr > 127:
            snr -= 256
        snr = snr / 4
        rssi = -157 + self.read(REG_PKT_RSSI)  # HF port (>862 MHz), datasheet 5.5.5
        if snr < 0:
            rssi += snr
        self.last_rssi = rssi
        self.last_snr = snr
        return bytes(mv), rssi, snr

    def receive(self, window_ms, max_ms=None):
        """Open a receive window of window_ms; a packet whose header arrived in time is
        received to the end (up to max_ms). Returns (payload, rssi, snr) or None."""
        if max_ms is None:
            max_ms = window_ms + 2000
        self.start_rx()
        t0 = time.ticks_ms()
        wake = self._arm_rx_wake()
        try:
            while True:
                if self.rx_pending():
                    pkt = self.read_packet()
                    if pkt is not None:
                        self.mode(MODE_STDBY)
                        return pkt
                el = time.ticks_diff(time.ticks_ms(), t0)
                if el >= max_ms or (el >= window_ms and not self.header_seen()):
                    self.mode(MODE_STDBY)
                    return None
                # Waking on DIO0 (RxDone) sleeps the whole window in one go; polling every
                # 10 ms instead costs ~100 wake-ups of CPU time per empty window.
                if wake:
                    lightsleep((window_ms if el < window_ms else max_ms) - el)
                else:
                    lightsleep(10)
        finally:
            if wake:
                self._disarm_rx_wake()

    def _arm_rx_wake(self):
        """Let DIO0 end a light sleep (ext0, which also applies to lightsleep on the ESP32
        port). Returns False where that is not possible, and the caller polls."""
        if self.dio0 is None:
            return False
        try:
            import esp32
            esp32.wake_on_ext0(self.dio0, esp32.WAKEUP_ANY_HIGH)
            return True
        except (ImportError, AttributeError, ValueError, OSError):
            return False  # no esp32 module, or DIO0 is not an RTC GPIO on this board

    def _disarm_rx_wake(self):
        # ext0 is shared with the rain gauge's tip wake, which re-arms it before deep sleep
        try:
            import esp32
            esp32.wake_on_ext0(None, 0)
        except Exception:
            pass
