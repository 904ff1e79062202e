"""Plantower PMS5003 particle sensor on a UART (9600 8N1), per its datasheet and the
"transport protocol / active & passive mode" appendix.

Frames (32 bytes): 0x42 0x4D, frame length 28 (big-endian), then 13 big-endian uint16:
PM1.0/PM2.5/PM10 at CF=1, the same "atmospheric environment", particle counts per 0.1 L
beyond 0.3/0.5/1.0/2.5/5.0/10 µm, reserved (version 0x97, error 0); checksum = sum of bytes
0..29 (uint16).

Commands (7 bytes: 0x42 0x4D CMD DATAH DATAL LRCH LRCL, LRC = sum of the first five):
  0xE1 data 0/1  -> passive/active mode; answered 42 4D 00 04 E1 xx LRC
  0xE2           -> (passive mode) one data frame
  0xE4 data 0/1  -> sleep (answered 42 4D 00 04 E4 00 LRC, fan stops) / wake (no answer)
SET pin: low = sleep, high = run. RESET pin low = reset (back to active mode on release).
Power-up default: active mode, a frame every ACTIVE_PERIOD_S (1 s) while the fan runs.

Byte timing: each byte takes 10 bits / 9600 baud; read_available() returns only bytes whose
last bit has arrived by the clock's now. Undrained output beyond max_pending bytes is lost,
as a full receive buffer loses it.

What it measures (µg/m³), from the world's dry truth PM (pm1, pm25, pm10) and RH:
  C(RH)  = 1 + (κ/1.65) / (−1 + 1/a_w),  a_w = min(RH/100, aw_cap)   (κ-Köhler growth)
  CF1_x  = gain · PM_x · C(RH) · (1 + b·e^(−age/τ)) + noise
  ATM_x  = CF1_x below 30, else 30 + 0.6·(CF1_x − 30)
with gain 1.5, κ 0.4, aw_cap 0.95, τ = 10 s; b is drawn per fan start in [−0.4, 0.8] and
noise has σ = (0.8 + 0.03·value)·(1 + 3·e^(−age/τ)): readings in the first 30 s of fan run
are biased and noisy, then settle (domain-facts: 30 s warm-up; the κ-Köhler form and the
PurpleAir-like CF=1 over-read that the EPA correction undoes). Values are integers.
Faults: detached -> silent and deaf; stuck -> the last values repeat; spikes -> a frame's
PM values jump by +magnitude µg/m³ with the given rate.
"""
import math
import random

from ..devices import UARTDevice
from .pins import InputPin

BAUD = 9600
BYTE_US = 10 * 1e6 / BAUD
ACTIVE_PERIOD_S = 1.0
TAU_S = 10.0


def growth_factor(rh, kappa, aw_cap=0.95):
    if rh is None or kappa <= 0:
        return 1.0
    aw = min(max(rh, 0.0) / 100.0, aw_cap)
    if aw <= 0:
        return 1.0
    return 1.0 + (kappa / 1.65) / (-1.0 + 1.0 / aw)


def atmospheric(cf1):
    return cf1 if cf1 <= 30 else 30 + 0.6 * (cf1 - 30)


def _u16(v):
    v = int(round(v))
    return max(0, min(0xFFFF, v))


def data_frame(values):
    """values: 13 ints -> the 32-byte frame."""
    body = bytearray(b"\x42\x4d\x00\x1c")
    for v in values:
        body += bytes([(v >> 8) & 0xFF, v & 0xFF])
    s = sum(body)
    return bytes(body + bytes([(s >> 8) & 0xFF, s & 0xFF]))


def command(cmd, data=0):
    b = bytes([0x42, 0x4D, cmd, 0x00, data])
    s = sum(b)
    return b + bytes([(s >> 8) & 0xFF, s & 0xFF])


def _answer(cmd, data):
    b = bytes([0x42, 0x4D, 0x00, 0x04, cmd, data])
    s = sum(b)
    return b + bytes([(s >> 8) & 0xFF, s & 0xFF])


class PMS5003(UARTDevice):
    def __init__(self, clock, truth, rh=None, faults=None, seed=0, gain=1.5, kappa=0.4, aw_cap=0.95,
                 max_pending=4096):
        """truth(t_s) -> (pm1, pm25, pm10) dry, µg/m³; rh(t_s) -> %RH or None."""
        self.clock = clock
        self.truth = truth
        self.rh = rh
        self.faults = faults
        self.gain, self.kappa, self.aw_cap = float(gain), float(kappa), float(aw_cap)
        self.max_pending = max_pending
        self._rng = random.Random(seed)
        self.set_pin = InputPin("PMS.SET", self._on_set, initial=1)
        self.reset_pin = InputPin("PMS.RESET", self._on_reset, initial=1)
        self.dropped_bytes = 0
        self._out = []  # (ready_us, byte)
        self._tx_free_us = 0
        self._rx = bytearray()
        self.powered = True
        self._power_up()

    def set_powered(self, on):
        """Supply on/off: off is silent and deaf; on again powers up in active mode, fan starting."""
        on = bool(on)
        if on == self.powered:
            return
        self._emit_due()
        self.powered = on
        if on:
            self._out.clear()
            self._power_up()

    # -- state ------------------------------------------------------------------------------
    def _power_up(self):
        self.active = True
        self.cmd_sleep = False
        self._last_values = None
        self._start_fan()

    def _start_fan(self):
        self.fan_on_us = self.clock.now_us()
        self._bias = self._rng.uniform(-0.4, 0.8)
        self._next_frame_us = self.fan_on_us + int(ACTIVE_PERIOD_S * 1e6)

    @property
    def awake(self):
        return self.powered and (not self.cmd_sleep) and self.set_pin.value == 1 and self.reset_pin.value == 1

    def _on_set(self, level):
        self.set_pin.value = 1 - level  # frames up to now were sent under the old level
        self._emit_due()
        self.set_pin.value = level
        if level == 1 and not self.cmd_sleep:
            self._start_fan()

    def _on_reset(self, level):
        if level == 1:
            self._out.clear()
            self._power_up()

    def _fault(self, t_s=None):
        if self.faults is None:
            return None
        return self.faults(self.clock.now_s() if t_s is None else t_s)

    # -- UART -------------------------------------------------------------------------------
    def write(self, data):
        self._emit_due()
        f = self._fault()
        if (f is not None and f.detached) or not self.powered:
            self._rx.clear()
            return
        self._rx += bytes(data)
        while len(self._rx) >= 7:
            i = self._rx.find(b"\x42\x4d")
            if i < 0:
                self._rx = self._rx[-1:]
                return
            del self._rx[:i]
            if len(self._rx) < 7:
                return
            frame = bytes(self._rx[:7])
            del self._rx[:7]
            if sum(frame[:5]) != (frame[5] << 8 | frame[6]):
                continue
            self._command(frame[2], frame[4])

    def _command(self, cmd, data):
        now = self.clock.now_us()
        if self.cmd_sleep or self.set_pin.value == 0:
            if cmd == 0xE4 and data == 1 and self.cmd_sleep:
                self.cmd_sleep = False
                if self.set_pin.value == 1:
                    self._start_fan()
            return
        if cmd == 0xE1:
            self.active = bool(data)
            self._send(_answer(0xE1, data & 0xFF), now)
            if self.active:
                self._next_frame_us = max(self._next_frame_us, now + int(ACTIVE_PERIOD_S * 1e6))
        elif cmd == 0xE2:
            if not self.active:
                self._send(self._frame_at(now), now + 2000)
        elif cmd == 0xE4:
            if data == 0:
                self._send(_answer(0xE4, 0), now)
                self.cmd_sleep = True

    def read_available(self):
        self._emit_due()
        now = self.clock.now_us()
        n = 0
        while n < len(self._out) and self._out[n][0] <= now:
            n += 1
        got = bytes(b for _, b in self._out[:n])
        del self._out[:n]
        return got

    def _send(self, data, at_us):
        t = max(at_us, self._tx_free_us)
        for b in data:
            if len(self._out) >= self.max_pending:
                self.dropped_bytes += 1
                continue
            t += BYTE_US
            self._out.append((int(t), b))
        self._tx_free_us = t

    def _emit_due(self):
        """Active mode: the frames the sensor has started sending by now."""
        now = self.clock.now_us()
        if not (self.active and self.awake):
            self._next_frame_us = max(self._next_frame_us, now)
            return
        period = int(ACTIVE_PERIOD_S * 1e6)
        if now - self._next_frame_us > period * (self.max_pending // 32 + 2):
            skip = (now - self._next_frame_us) // period - (self.max_pending // 32 + 2)
            self._next_frame_us += skip * period
            self.dropped_bytes += 32 * skip
        while self._next_frame_us <= now:
            f = self._fault(self._next_frame_us / 1e6)
            if not (f is not None and f.detached):
                self._send(self._frame_at(self._next_frame_us), self._next_frame_us)
            self._next_frame_us += period

    # -- measurement --------------------------------------------------------------------------
    def _frame_at(self, t_us):
        t_s = t_us / 1e6
        f = self._fault(t_s)
        if f is not None and f.stuck and self._last_values is not None:
            return data_frame(self._last_values)
        pm1, pm25, pm10 = self.truth(t_s)
        c = growth_factor(self.rh(t_s) if self.rh else None, self.kappa, self.aw_cap)
        age = max(0.0, t_s - self.fan_on_us / 1e6)
        settle = math.exp(-age / TAU_S)
        out = []
        for v in (pm1, pm25, pm10):
            m = self.gain * v * c * (1 + self._bias * settle)
            m += self._rng.gauss(0.0, (0.8 + 0.03 * m) * (1 + 3 * settle))
            out.append(max(0.0, m))
        if f is not None and f.spike_rate > 0 and self._rng.random() < f.spike_rate:
            out = [x + f.spike_magnitude for x in out]
        out[1] = max(out[1], out[0])
        out[2] = max(out[2], out[1])
        cf1 = [_u16(x) for x in out]
        atm = [_u16(atmospheric(x)) for x in out]
        n03 = out[0] * 115 + out[1] * 20
        counts = [n03, n03 * 0.31, n03 * 0.06 + (out[1] - out[0]) * 4, (out[1] - out[0]) * 3.5,
                  (out[2] - out[1]) * 1.2, (out[2] - out[1]) * 0.3]
        values = cf1 + atm + [_u16(x) for x in counts] + [0x9700]
        self._last_values = values
        return data_frame(values)
