"""Bosch BME280 on I2C, following the datasheet (BST-BME280-DS002) register map.

- 0xD0 chip id 0x60; 0xE0 reset (write 0xB6: power-on reset, im_update set for 2 ms).
- Trimming parameters at 0x88-0xA1 and 0xE1-0xE7 (values of a real part, DEFAULT_CALIB).
- 0xF2 ctrl_hum (osrs_h; takes effect on the next ctrl_meas write, as the datasheet says),
  0xF3 status (bit 3 measuring, bit 0 im_update), 0xF4 ctrl_meas (osrs_t, osrs_p, mode
  sleep/forced/normal), 0xF5 config (t_sb, IIR filter; ignored while in normal mode),
  0xF7-0xFE data (press 20 bit, temp 20 bit, hum 16 bit; 0x80000/0x8000 when skipped).
- Measurement time (datasheet 9.1, typical): 1 + 2·osT + (2·osP + 0.5) + (2·osH + 0.5) ms,
  in virtual time. Forced mode returns to sleep after one measurement; normal mode repeats
  every t_measure + t_standby.
- Raw ADC values are found by inverting the datasheet's compensation: for each reading the
  model searches the ADC code (at the resolution the oversampling gives: 16 + (osrs − 1)
  bits for T/P, 20 bits with the IIR filter) whose compensated value is nearest the truth,
  so the datasheet compensation (integer or floating point) returns the world's T, RH, P.
- Noise: Gaussian, T 0.005 °C, P 1.3 Pa, RH 0.02 %RH (RMS at x1, / sqrt(oversampling)).
- I2C: write(b"") is an address probe; write(reg, val, reg, val, …) writes pairs (no
  auto-increment on write); read(n) auto-increments from the pointer.
- Faults (from the world at the clock's now): detached → every transaction raises
  BusFault(ENODEV), and the chip powers up afresh when reattached; nack_rate → that share of
  transactions raise BusFault(ENODEV); stuck → the data registers stop updating; spikes →
  a measurement is off by ±magnitude °C, ±3·magnitude %RH, ±2·magnitude hPa.
"""
import math
import random
import struct

from ..devices import ENODEV, BusFault, I2CDevice

# A real part's trimming parameters (T1..T3, P1..P9, H1..H6).
DEFAULT_CALIB = {
    "T1": 28110, "T2": 26387, "T3": 50,
    "P1": 37829, "P2": -10605, "P3": 3024, "P4": 7016, "P5": -2, "P6": -7, "P7": 9900,
    "P8": -10230, "P9": 4285,
    "H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30,
}

_OS = (0, 1, 2, 4, 8, 16, 16, 16)
_T_SB_MS = (0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 10.0, 20.0)
_IIR = (1, 2, 4, 8, 16, 16, 16, 16)


def _tdiv(a, b):
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


class Compensation:
    """The datasheet's compensation formulas (section 4.2.3 and 8.1), integer and double."""

    def __init__(self, c):
        self.c = c

    # double precision (datasheet 8.1), which adafruit's driver also uses
    def t_fine_f(self, adc_t):
        c = self.c
        var1 = (adc_t / 16384.0 - c["T1"] / 1024.0) * c["T2"]
        var2 = ((adc_t / 131072.0 - c["T1"] / 8192.0) ** 2) * c["T3"]
        return var1 + var2

    def pressure_f(self, adc_p, t_fine):
        c = self.c
        var1 = t_fine / 2.0 - 64000.0
        var2 = var1 * var1 * c["P6"] / 32768.0
        var2 = var2 + var1 * c["P5"] * 2.0
        var2 = var2 / 4.0 + c["P4"] * 65536.0
        var1 = (c["P3"] * var1 * var1 / 524288.0 + c["P2"] * var1) / 524288.0
        var1 = (1.0 + var1 / 32768.0) * c["P1"]
        p = 1048576.0 - adc_p
        p = (p - var2 / 4096.0) * 6250.0 / var1
        var1 = c["P9"] * p * p / 2147483648.0
        var2 = p * c["P8"] / 32768.0
        return p + (var1 + var2 + c["P7"]) / 16.0  # Pa

    def humidity_f(self, adc_h, t_fine):
        c = self.c
        h = t_fine - 76800.0
        h = (adc_h - (c["H4"] * 64.0 + c["H5"] / 16384.0 * h)) * (
            c["H2"] / 65536.0 * (1.0 + c["H6"] / 67108864.0 * h * (1.0 + c["H3"] / 67108864.0 * h)))
        return h * (1.0 - c["H1"] * h / 524288.0)  # unclamped, %RH

    # integer (datasheet 4.2.3), what the node firmware runs
    def t_fine_i(self, adc_t):
        c = self.c
        var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
        d = (adc_t >> 4) - c["T1"]
        var2 = (((d * d) >> 12) * c["T3"]) >> 14
        return var1 + var2

    def pressure_i(self, adc_p, t_fine):
        c = self.c
        var1 = t_fine - 128000
        var2 = var1 * var1 * c["P6"]
        var2 = var2 + ((var1 * c["P5"]) << 17)
        var2 = var2 + (c["P4"] << 35)
        var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
        var1 = (((1 << 47) + var1) * c["P1"]) >> 33
        if var1 == 0:
            return 0
        p = 1048576 - adc_p
        p = _tdiv(((p << 31) - var2) * 3125, var1)
        var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
        var2 = (c["P8"] * p) >> 19
        return ((p + var1 + var2) >> 8) + (c["P7"] << 4)  # Pa · 256

    def humidity_i(self, adc_h, t_fine):
        c = self.c
        v = t_fine - 76800
        v = ((((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15) * (
            ((((((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10) + 2097152) * c["H2"] + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
        v = max(0, min(v, 419430400))
        return v >> 12  # %RH · 1024


def _search(f, target, lo, hi, step, increasing=True):
    """ADC code in [lo, hi] (multiples of step) whose f(code) is nearest target; f monotonic."""
    a, b = lo // step, hi // step
    sign = 1 if increasing else -1
    while a < b:
        m = (a + b) // 2
        if sign * (f(m * step) - target) < 0:
            a = m + 1
        else:
            b = m
    best = a * step
    if a > lo // step and abs(f((a - 1) * step) - target) < abs(f(best) - target):
        best = (a - 1) * step
    return best


class BME280(I2CDevice):
    def __init__(self, clock, truth, address=0x76, faults=None, calib=None, seed=0, noise=True):
        """truth(t_s) -> (temp_c, rh_pct, pressure_hpa); faults(t_s) -> FaultState or None."""
        self.clock = clock
        self.truth = truth
        self.address = address
        self.faults = faults
        self.calib = dict(DEFAULT_CALIB, **(calib or {}))
        self.comp = Compensation(self.calib)
        self.noise = noise
        self._rng = random.Random(seed)
        self._was_detached = False
        self.powered = True
        self._por()

    def set_powered(self, on):
        """The sensor rail: off -> the chip does not answer; on again -> a fresh power-up."""
        on = bool(on)
        if on and not self.powered:
            self.powered = True
            self._por()
        self.powered = on

    # -- power-on -------------------------------------------------------------------------
    def _por(self):
        self.regs = bytearray(256)
        c = self.calib
        self.regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", c["T1"], c["T2"], c["T3"], c["P1"], c["P2"],
                                           c["P3"], c["P4"], c["P5"], c["P6"], c["P7"], c["P8"], c["P9"])
        self.regs[0xA1] = c["H1"]
        h4, h5 = c["H4"] & 0xFFF, c["H5"] & 0xFFF
        self.regs[0xE1:0xE8] = struct.pack("<hB", c["H2"], c["H3"]) + bytes(
            [(h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF]) + struct.pack("<b", c["H6"])
        self.regs[0xD0] = 0x60
        self.regs[0xF7:0xFF] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
        self.pointer = 0
        self._osrs_h_latched = 0
        self._meas_end_us = None  # forced measurement in progress
        self._normal_t0 = None
        self._normal_done = 0  # normal-mode measurements already applied
        self._nvm_until = self.clock.now_us() + 2000
        self._iir_t = None
        self._iir_p = None

    # -- bus ----------------------------------------------------------------------------------
    def _fault(self):
        if not self.powered:
            raise BusFault(ENODEV, "BME280 at 0x%02x is not powered" % self.address)
        f = self.faults(self.clock.now_s()) if self.faults else None
        if f is not None and f.detached:
            self._was_detached = True
            raise BusFault(ENODEV, "BME280 at 0x%02x does not answer (detached)" % self.address)
        if self._was_detached:
            self._was_detached = False
            self._por()  # reattached: a fresh power-up
        if f is not None and f.nack_rate > 0 and self._rng.random() < f.nack_rate:
            raise BusFault(ENODEV, "BME280 at 0x%02x NACK" % self.address)
        return f

    def write(self, data):
        self._fault()
        self._advance()
        data = bytes(data)
        if not data:
            return
        for i in range(0, len(data), 2):
            reg = data[i]
            self.pointer = reg
            if i + 1 < len(data):
                self._write_reg(reg, data[i + 1])

    def read(self, n):
        self._fault()
        self._advance()
        out = bytearray(n)
        for i in range(n):
            out[i] = self._read_reg(self.pointer)
            self.pointer = (self.pointer + 1) & 0xFF
        return bytes(out)

    def _read_reg(self, reg):
        if reg == 0xF3:
            now = self.clock.now_us()
            measuring = self._meas_end_us is not None and now < self._meas_end_us
            if self._normal_t0 is not None:
                cycle = self._cycle_us()
                measuring = measuring or ((now - self._normal_t0) % cycle) < self._t_measure_us()
            return (0x08 if measuring else 0) | (0x01 if now < self._nvm_until else 0)
        return self.regs[reg]

    def _write_reg(self, reg, value):
        if reg == 0xE0:
            if value == 0xB6:
                self._por()
            return
        if reg == 0xF2:
            self.regs[0xF2] = value & 0x07
        elif reg == 0xF4:
            self.regs[0xF4] = value
            self._osrs_h_latched = self.regs[0xF2] & 0x07
            mode = value & 0x03
            now = self.clock.now_us()
            if mode in (1, 2):
                self._normal_t0 = None
                self._meas_end_us = now + self._t_measure_us()
            elif mode == 3:
                if self._normal_t0 is None:
                    self._normal_t0 = now
                    self._normal_done = 0
            else:
                self._normal_t0 = None
        elif reg == 0xF5:
            if (self.regs[0xF4] & 0x03) != 3:  # ignored in normal mode (datasheet 5.4.6)
                self.regs[0xF5] = value & 0xFD
        # everything else is read-only

    # -- timing -------------------------------------------------------------------------------
    def _os(self):
        m = self.regs[0xF4]
        return _OS[(m >> 5) & 7], _OS[(m >> 2) & 7], _OS[self._osrs_h_latched & 7]

    def _t_measure_us(self):
        ot, op, oh = self._os()
        ms = 1.0 + 2.0 * ot + (2.0 * op + 0.5 if op else 0.0) + (2.0 * oh + 0.5 if oh else 0.0)
        return int(ms * 1000)

    def _cycle_us(self):
        return self._t_measure_us() + int(_T_SB_MS[self.regs[0xF5] >> 5] * 1000)

    def _advance(self):
        now = self.clock.now_us()
        if self._meas_end_us is not None and now >= self._meas_end_us:
            end = self._meas_end_us
            self._meas_end_us = None
            self._measure(end)
            self.regs[0xF4] &= 0xFC  # forced mode falls back to sleep
        if self._normal_t0 is not None:
            cycle = self._cycle_us()
            done = (now - self._normal_t0 - self._t_measure_us()) // cycle + 1 if now - self._normal_t0 >= self._t_measure_us() else 0
            if done > self._normal_done:
                first = max(self._normal_done, done - 200)  # a 16x IIR keeps < 1e-5 of older ones
                for k in range(first, done):
                    self._measure(self._normal_t0 + k * cycle + self._t_measure_us())
                self._normal_done = done

    # -- a measurement ------------------------------------------------------------------------
    def _measure(self, t_us):
        f = self.faults(t_us / 1e6) if self.faults else None
        if f is not None and f.stuck:
            return
        t_c, rh, p_hpa = self.truth(t_us / 1e6)
        ot, op, oh = self._os()
        if self.noise:
            g = self._rng.gauss
            t_c += g(0, 0.005 / math.sqrt(max(ot, 1)))
            p_hpa += g(0, 0.013 / math.sqrt(max(op, 1)))
            rh += g(0, 0.02 / math.sqrt(max(oh, 1)))
        if f is not None and f.spike_rate > 0 and self._rng.random() < f.spike_rate:
            s = f.spike_magnitude * (1 if self._rng.random() < 0.5 else -1)
            t_c, rh, p_hpa = t_c + s, rh + 3 * s, p_hpa + 2 * s
        coeff = _IIR[(self.regs[0xF5] >> 2) & 7]
        comp = self.comp
        if ot:
            step = 1 if coeff > 1 else 1 << (4 - min(4, int(math.log2(ot))))
            adc_t = _search(lambda a: comp.t_fine_f(a) / 5120.0, t_c, 0, (1 << 20) - 1, step)
            if coeff > 1:
                self._iir_t = adc_t if self._iir_t is None else (self._iir_t * (coeff - 1) + adc_t) / coeff
                adc_t = int(round(self._iir_t))
            t_fine = int(comp.t_fine_f(adc_t))
            self._put20(0xFA, adc_t)
        else:
            t_fine = int(t_c * 5120.0)
            self._put20(0xFA, 0x80000)
        if op:
            step = 1 if coeff > 1 else 1 << (4 - min(4, int(math.log2(op))))
            adc_p = _search(lambda a: comp.pressure_f(a, t_fine), p_hpa * 100.0, 0, (1 << 20) - 1, step,
                            increasing=False)
            if coeff > 1:
                self._iir_p = adc_p if self._iir_p is None else (self._iir_p * (coeff - 1) + adc_p) / coeff
                adc_p = int(round(self._iir_p))
            self._put20(0xF7, adc_p)
        else:
            self._put20(0xF7, 0x80000)
        if oh:
            rh = max(0.0, min(100.0, rh))
            adc_h = _search(lambda a: comp.humidity_f(a, t_fine), rh, 0, 0xFFFF, 1)
            self.regs[0xFD] = adc_h >> 8
            self.regs[0xFE] = adc_h & 0xFF
        else:
            self.regs[0xFD], self.regs[0xFE] = 0x80, 0x00

    def _put20(self, reg, v):
        self.regs[reg] = (v >> 12) & 0xFF
        self.regs[reg + 1] = (v >> 4) & 0xFF
        self.regs[reg + 2] = (v & 0x0F) << 4
