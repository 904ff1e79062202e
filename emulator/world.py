"""The emulated world a scenario describes: stations, their truth over time, events, faults and
the radio set-up. emulator/scenario.py builds a World from a checked scenario file.

Everything the world says is a pure function of the file and its seed: truth(station,
quantity, t_s) gives the same value whatever order it is asked in. t_s is virtual seconds
since the scenario's start (VirtualClock.now_s() when the clock was built with
start_epoch_s = world.start_epoch_s).
"""
import math
import random
import zlib

import numpy as np

from sen.errors import SenError

from .chips.faults import NO_FAULT, FaultState
from .path_loss import LinkBudget
from .scenario_tables import QUANTITIES


def _seed_of(*parts):
    return zlib.crc32("|".join(str(p) for p in parts).encode())


# -- shapes of events -------------------------------------------------------------------------
def _shape(name, u, peak_at):
    u = np.asarray(u, dtype=float)
    inside = (u >= 0) & (u <= 1)
    if name == "step":
        v = np.ones_like(u)
    elif name == "bell":
        v = 0.5 * (1 - np.cos(2 * np.pi * u))
    elif name == "triangle":
        p = peak_at if peak_at is not None else 0.5
        v = np.where(u < p, u / max(p, 1e-9), (1 - u) / max(1 - p, 1e-9))
    elif name == "trapezoid":
        v = np.minimum(1.0, np.minimum(u / 0.2, (1 - u) / 0.2))
    else:  # flood: fast smooth rise, slow recession
        p = peak_at if peak_at is not None else 0.25
        rise = np.sin(0.5 * np.pi * np.clip(u / max(p, 1e-9), 0, 1)) ** 2
        fall = np.clip((1 - u) / max(1 - p, 1e-9), 0, 1) ** 2
        v = np.where(u < p, rise, fall)
    return np.where(inside, v, 0.0)


class TruthSpec:
    """One quantity at one station: baseline (diurnal or points) + correlated noise."""

    def __init__(self, q, table, duration_s, seed, station_id):
        """table: a validated scenario_tables.TruthTable."""
        self.q = q
        unit, lo, hi = QUANTITIES[q]
        self.lo = float(lo) if table.min is None else table.min
        self.hi = float(hi) if table.max is None else table.max
        self.ratio_of = table.ratio_of
        if self.ratio_of is not None:
            self.ratio = table.ratio
        self.points = None
        if table.points is not None:
            pts = table.points
            self.points = (np.array([float(p[0]) for p in pts]) * 3600.0, np.array([float(p[1]) for p in pts]))
        elif self.ratio_of is None:
            self.mean = table.mean
        self.amplitude = table.amplitude
        self.peak_hour = table.peak_hour
        self.noise_sd = table.noise_sd
        tau_s = table.noise_tau_min * 60.0
        self.noise_kind = table.noise
        self.noise = None
        if self.noise_sd > 0:
            step = max(1.0, min(60.0, tau_s / 4.0))
            n = int((duration_s + 7200.0) / step) + 2
            rng = np.random.default_rng(_seed_of(seed, station_id, q, "noise"))
            phi = math.exp(-step / tau_s)
            eps = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
            x = np.empty(n)
            x[0] = rng.standard_normal()
            for i in range(1, n):  # AR(1) == Ornstein-Uhlenbeck sampled every `step`
                x[i] = phi * x[i - 1] + eps[i]
            self.noise = (np.arange(n) * step - 3600.0, x * self.noise_sd)


class Station:
    def __init__(self, sid, kind, board, xy, gain_dbi, sensors, sensor_params, lat_lon):
        self.id, self.kind, self.board, self.xy, self.antenna_gain_dbi = sid, kind, board, xy, gain_dbi
        self.sensors, self.sensor_params, self.lat_lon = sensors, sensor_params, lat_lon
        self.truth = {}
        self.reference = {}
        self.events = []  # (quantity, start_s, dur_s, shape, peak_at, delta)
        self.faults = []  # dicts

    def __repr__(self):
        return "Station(%s, %s)" % (self.id, self.kind)


class World:
    def __init__(self, name, seed, start, duration_s, radio, gateways, stations, source="<scenario>"):
        self.name, self.seed, self.start, self.duration_s = name, seed, start, duration_s
        self.start_epoch_s = start.timestamp()
        off = start.utcoffset()
        self._local_offset_s = (start.hour * 3600 + start.minute * 60 + start.second)
        self.utc_offset_s = off.total_seconds() if off else 0.0
        self.radio, self.gateways, self.source = radio, gateways, source
        self.stations = {s.id: s for s in stations}

    # -- lookup -------------------------------------------------------------------------------
    def station(self, sid):
        st = self.stations.get(sid)
        if st is None:
            raise SenError("no station '%s' in scenario %s" % (sid, self.source),
                           "use one of: " + ", ".join(self.stations))
        return st

    def rng(self, *names):
        """A random.Random seeded by the scenario seed and the given names."""
        return random.Random(_seed_of(self.seed, *names))

    def local_hour(self, t_s):
        return ((self._local_offset_s + np.asarray(t_s, dtype=float)) / 3600.0) % 24.0

    # -- truth --------------------------------------------------------------------------------
    def truth(self, station_id, quantity, t_s):
        """The true value of `quantity` at the station, t_s seconds after the start."""
        v = self.truth_array(station_id, quantity, np.asarray([t_s], dtype=float))
        return float(v[0])

    def has(self, station_id, quantity):
        return quantity in self.station(station_id).truth

    def truth_array(self, station_id, quantity, ts):
        st = self.station(station_id)
        spec = st.truth.get(quantity)
        if spec is None:
            raise SenError("station '%s' has no truth for '%s'" % (station_id, quantity),
                           "add [station.truth.%s] to the scenario" % quantity)
        ts = np.asarray(ts, dtype=float)
        if spec.ratio_of is not None:
            v = spec.ratio * self.truth_array(station_id, spec.ratio_of, ts)
        elif spec.points is not None:
            v = np.interp(ts, spec.points[0], spec.points[1])
        else:
            v = spec.mean + spec.amplitude * np.cos(2 * np.pi * (self.local_hour(ts) - spec.peak_hour) / 24.0)
        if spec.noise is not None:
            n = np.interp(ts, spec.noise[0], spec.noise[1])
            if spec.noise_kind == "multiplicative":
                v = v * np.exp(n - 0.5 * spec.noise_sd ** 2)
        for (q, start, dur, shape, peak_at, delta) in st.events:
            if q == quantity:
                ev = delta * _shape(shape, (ts - start) / dur, peak_at)
                if spec.noise is not None and spec.noise_kind == "multiplicative":
                    ev = ev * np.exp(n - 0.5 * spec.noise_sd ** 2)
                v = v + ev
        if spec.noise is not None and spec.noise_kind == "additive":
            v = v + n
        return np.clip(v, spec.lo, spec.hi)

    def integral(self, station_id, quantity, t0_s, t1_s, step_s=5.0):
        """∫ truth dt in quantity·hours (e.g. mm for rain_intensity in mm/h)."""
        n = max(2, int(math.ceil((t1_s - t0_s) / step_s)) + 1)
        ts = np.linspace(t0_s, t1_s, n)
        return float(np.trapezoid(self.truth_array(station_id, quantity, ts), ts) / 3600.0)

    def reference_series(self, station_id, quantity, t0_s=None, t1_s=None):
        """The co-located reference instrument: [(t_end_s, mean over the interval), …]."""
        st = self.station(station_id)
        ref = st.reference.get(quantity)
        if ref is None:
            raise SenError("station '%s' has no reference for '%s'" % (station_id, quantity),
                           "add [station.reference.%s] to the scenario" % quantity)
        iv = ref["interval_s"]
        t0 = ref["from_s"] if t0_s is None else max(t0_s, ref["from_s"])
        t1 = ref["to_s"] if t1_s is None else min(t1_s, ref["to_s"])
        out = []
        k = int(math.ceil(t0 / iv - 1e-9))
        while (k + 1) * iv <= t1 + 1e-6:
            a, b = k * iv, (k + 1) * iv
            ts = np.linspace(a, b, max(2, int(iv / 10.0) + 1))
            mean = float(np.mean(self.truth_array(station_id, quantity, ts)))
            noise = self.rng(station_id, quantity, "reference", k).gauss(0.0, ref["noise_sd"])
            out.append((b, mean + ref["bias"] + noise))
            k += 1
        return out

    # -- faults -------------------------------------------------------------------------------
    def _active(self, station_id, target, t_s):
        for f in self.station(station_id).faults:
            if f["target"] == target and f["start_s"] <= t_s < f["end_s"]:
                yield f

    def faults(self, station_id, target, t_s):
        """FaultState of a sensor (or 'radio', 'power') at t_s."""
        st = FaultState()
        hit = False
        for f in self._active(station_id, target, t_s):
            hit = True
            k = f["kind"]
            if k == "detached":
                st.detached = True
            elif k == "nack":
                st.nack_rate = max(st.nack_rate, f["rate"])
            elif k == "stuck":
                st.stuck = True
            elif k == "spikes":
                st.spike_rate = max(st.spike_rate, f["rate"])
                st.spike_magnitude = max(st.spike_magnitude, f["magnitude"])
        return st if hit else NO_FAULT

    def powered(self, station_id, t_s):
        return not any(f["kind"] == "power_loss" for f in self._active(station_id, "power", t_s))

    def power_loss_windows(self, station_id):
        return [(f["start_s"], f["end_s"]) for f in self.station(station_id).faults if f["kind"] == "power_loss"]

    def radio_loss_percent(self, station_id, t_s):
        """Extra loss (%) on every link of this station at t_s (faults), on top of [radio]."""
        keep = 1.0
        for f in self._active(station_id, "radio", t_s):
            keep *= 1.0 - f["percent"] / 100.0
        return 100.0 * (1.0 - keep)

    # -- radio ------------------------------------------------------------------------------------
    def link_budget(self):
        r = self.radio
        return LinkBudget(exponent=r["path_loss_exponent"], noise_figure_db=r["noise_figure_db"],
                          shadowing_sigma_db=r["shadowing_sigma_db"], freq_hz=r["frequency_mhz"] * 1e6)

    def make_medium(self, clock):
        from .radio_medium import RadioMedium
        r = self.radio
        return RadioMedium(clock, self.link_budget(), loss_percent=r["loss_percent"], capture_db=r["capture_db"],
                           seed=self.seed, fading_sigma_db=r["fading_sigma_db"])
