"""Tipping-bucket rain gauge: a reed switch that closes once per tip.

Wiring: switch to GND, so the pin must use the ESP32's pull-up. level() is 0 while the
contact is closed and None (released, the pull-up reads 1) while open; a tip is a falling
edge. Every tip bounces: 2–5 extra open/close pairs within the first ~5 ms after closing;
the contact stays closed ~80 ms (the magnet passing) and opens cleanly.

Catch: the bucket fills at the measured intensity I_m = I·(1 − u(I)), where I is the
world's rain_intensity (mm/h) and the undercatch u(I) = a·I^b (a = 4.78e-4, b = 1.013)
matches the ~1 % at 20 mm/h and ~9 % at 175 mm/h in domain-facts; the dynamic correction
I_true = a'·I_m^b' recovers it. One tip per depth_mm (0.2 mm) of catch; the bucket starts
part-filled (seeded). Tips are computed an hour of virtual time at a time (1 s steps) and
scheduled on the clock, so a pin watcher (IRQ, ext0 wake) hears every edge when it happens.

Faults: detached -> no pulses reach the pin (tips are lost); stuck -> the contact stays
closed (pin held low); spikes -> a tip is followed by a spurious extra one with the rate.
"""
import bisect
import random

import numpy as np

from .pins import OutputPin

UNDERCATCH_A = 4.78e-4
UNDERCATCH_B = 1.013
CLOSED_US = 80_000
CHUNK_S = 3600.0


def undercatch(intensity_mmh):
    i = np.maximum(np.asarray(intensity_mmh, dtype=float), 0.0)
    return np.clip(UNDERCATCH_A * i ** UNDERCATCH_B, 0.0, 0.5)


class RainGauge(OutputPin):
    def __init__(self, clock, intensity, faults=None, seed=0, depth_mm=0.2):
        """intensity(ts: numpy array of t_s) -> mm/h array (World.truth_array)."""
        super().__init__("rain_gauge", None)
        self.clock = clock
        self.intensity = intensity
        self.faults = faults
        self.depth_mm = float(depth_mm)
        self._rng = random.Random(seed)
        self._fill = self._rng.uniform(0.0, self.depth_mm)
        self._chunk_start = clock.now_s()
        self._pending = []   # tip times (s) computed but not yet scheduled
        self.tip_times = []  # every tip the bucket made (s), for reports and tests
        self.pulses = 0      # tips that reached the pin
        self._stuck = False
        self._next_chunk()

    # -- catch -> tips ----------------------------------------------------------------------------
    def _next_chunk(self):
        t0 = self._chunk_start
        ts = t0 + np.arange(0.0, CHUNK_S, 1.0) + 0.5
        i = self.intensity(ts)
        caught = i * (1.0 - undercatch(i)) / 3600.0  # mm per 1-s step
        cum = self._fill + np.cumsum(caught)
        k_max = int(cum[-1] // self.depth_mm) if len(cum) else 0
        tips = []
        for k in range(1, k_max + 1):
            level = k * self.depth_mm
            j = int(np.searchsorted(cum, level))
            prev = cum[j - 1] if j > 0 else self._fill
            frac = (level - prev) / max(cum[j] - prev, 1e-12)
            tips.append(t0 + j + frac)
        self._fill = float(cum[-1] - k_max * self.depth_mm) if len(cum) else self._fill
        self._chunk_start = t0 + CHUNK_S
        self._pending.extend(tips)
        if self._pending:
            self._schedule_tip()
        else:
            self.clock.call_at(int(self._chunk_start * 1e6), self._next_chunk)

    def _schedule_tip(self):
        t = self._pending.pop(0)
        self.clock.call_at(int(t * 1e6), lambda: self._tip(t))

    def _after_tip(self):
        if self._pending:
            self._schedule_tip()
        else:
            self.clock.call_at(int(self._chunk_start * 1e6), self._next_chunk)

    # -- the switch ---------------------------------------------------------------------------------
    def _tip(self, t_s):
        self.tip_times.append(t_s)
        f = self.faults(t_s) if self.faults else None
        if f is not None and f.stuck:
            self.set(0)
            self._stuck = True
        elif f is not None and f.detached:
            pass
        else:
            if self._stuck:
                self._stuck = False
                self.set(None)
            self._pulse(int(t_s * 1e6))
            if f is not None and f.spike_rate > 0 and self._rng.random() < f.spike_rate:
                self._pulse(int(t_s * 1e6) + 250_000)
        self._after_tip()

    def _pulse(self, t_us):
        self.pulses += 1
        edges = [(t_us, 0)]
        t = t_us
        for _ in range(self._rng.randint(2, 5)):  # closing bounce, all within ~5 ms
            t += self._rng.randint(150, 600)
            edges.append((t, None))
            t += self._rng.randint(150, 600)
            edges.append((t, 0))
        t_open = t_us + CLOSED_US + self._rng.randint(-10_000, 10_000)
        edges.append((t_open, None))  # opens cleanly: the magnet has moved on
        for when, level in edges:
            self.clock.call_at(when, lambda level=level: self.set(level))

    def set_powered(self, on):
        """A reed switch needs no supply: the node's pull-up powers the contact."""

    def caught_mm(self, t0_s, t1_s):
        """Depth the gauge registered (tips × depth) between two times."""
        a = bisect.bisect_left(self.tip_times, t0_s)
        b = bisect.bisect_left(self.tip_times, t1_s)
        return (b - a) * self.depth_mm
