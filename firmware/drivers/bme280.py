# Bosch BME280 on machine.I2C, forced mode, with the datasheet's integer compensation
# (BST-BME280-DS002 section 4.2.3 and 8.2: 32-bit T and H, 64-bit P).
import time
import struct

from nap import lightsleep

ADDR = 0x76
CHIP_ID = 0x60
REG_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7
OSRS_X1 = 1


class BME280:
    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._data = bytearray(8)
        self._one = bytearray(1)
        self._cal = None
        self.last_raw = None

    def _r8(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._one)
        return self._one[0]

    def _w8(self, reg, v):
        self._one[0] = v
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def chip_id(self):
        return self._r8(REG_ID)

    def init(self):
        """Check the chip id and read the trimming parameters. OSError when it does not answer."""
        cid = self.chip_id()
        if cid != CHIP_ID:
            raise OSError(19, "BME280 chip id 0x%02x" % cid)
        c1 = bytearray(26)
        self.i2c.readfrom_mem_into(self.addr, 0x88, c1)
        c2 = bytearray(7)
        self.i2c.readfrom_mem_into(self.addr, 0xE1, c2)
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack_from("<HhhHhhhhhhhh", c1, 0)
        h1 = c1[25]
        h2 = struct.unpack_from("<h", c2, 0)[0]
        h3 = c2[2]
        h4 = (c2[3] << 4) | (c2[4] & 0x0F)
        if h4 & 0x800:
            h4 -= 0x1000
        h5 = (c2[5] << 4) | (c2[4] >> 4)
        if h5 & 0x800:
            h5 -= 0x1000
        h6 = c2[6]
        if h6 > 127:
            h6 -= 256
        self._cal = (t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)
        self._w8(REG_CONFIG, 0x00)  # filter off, forced mode ignores standby
        return cid

    def measure_raw(self):
        """One forced-mode conversion (x1 oversampling). Returns (adc_T, adc_P, adc_H)."""
        if self._cal is None:
            self.init()
        self._w8(REG_CTRL_HUM, OSRS_X1)  # ctrl_hum takes effect on the ctrl_meas write
        self._w8(REG_CTRL_MEAS, (OSRS_X1 << 5) | (OSRS_X1 << 2) | 0x01)
        # Max conversion time x1/x1/x1: 1.25 + 2.3 + 2.3 + 0.575 + 2.3 + 0.575 = 9.3 ms.
        lightsleep(10)
        for _ in range(20):
            if not self._r8(REG_STATUS) & 0x08:
                break
            time.sleep_ms(1)
        else:
            raise OSError(110, "BME280 conversion did not finish")
        d = self._data
        self.i2c.readfrom_mem_into(self.addr, REG_DATA, d)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        return adc_t, adc_p, adc_h

    def compensate(self, adc_t, adc_p, adc_h):
        """Datasheet integer compensation. Returns (T in 0.01 degC, P in Pa/256, H in %RH/1024)."""
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = self._cal
        var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
        var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
        t_fine = var1 + var2
        T = (t_fine * 5 + 128) >> 8

        var1 = t_fine - 128000
        var2 = var1 * var1 * p6
        var2 = var2 + ((var1 * p5) << 17)
        var2 = var2 + (p4 << 35)
        var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
        var1 = (((1 << 47) + var1) * p1) >> 33
        if var1 == 0:
            P = None
        else:
            p = 1048576 - adc_p
            p = (((p << 31) - var2) * 3125) // var1
            var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
            var2 = (p8 * p) >> 19
            P = ((p + var1 + var2) >> 8) + (p7 << 4)

        v = t_fine - 76800
        v = (((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) *
             (((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14))
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
        if v < 0:
            v = 0
        if v > 419430400:
            v = 419430400
        H = v >> 12
        return T, P, H

    def read(self):
        """One forced reading in physical units: (degC, hPa, %RH)."""
        raw = self.measure_raw()
        self.last_raw = raw
        T, P, H = self.compensate(raw[0], raw[1], raw[2])
        return T / 100, (None if P is None else P / 25600), H / 1024
