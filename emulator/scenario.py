"""The emulated world: stations, their truth over time, events, faults and the radio set-up.

A scenario is a TOML file (format: docs/scenario-format.md). load_scenario(path) checks it
and returns a World. Everything the world says is a pure function of the file and its seed:
truth(station, quantity, t_s) gives the same value whatever order it is asked in.

t_s is virtual seconds since the scenario's start (VirtualClock.now_s() when the clock was
built with start_epoch_s = world.start_epoch_s).
"""
import datetime as _dt
import difflib
import math
import random
import tomllib
import zlib
from pathlib import Path

import numpy as np

from sen.errors import SenError

from .chips.faults import NO_FAULT, FaultState
from .path_loss import LinkBudget, lat_lon_to_xy

# quantity: (unit, min, max) -- names follow the frame channel registry
QUANTITIES = {
    "air_temp": ("°C", -40.0, 85.0),
    "rh": ("%", 0.0, 100.0),
    "pressure": ("hPa", 300.0, 1100.0),
    "pm1": ("µg/m³", 0.0, 1000.0),
    "pm25": ("µg/m³", 0.0, 1000.0),
    "pm10": ("µg/m³", 0.0, 1000.0),
    "water_temp": ("°C", -5.0, 60.0),
    "ph": ("pH", 0.0, 14.0),
    "conductivity": ("µS/cm at 25 °C", 0.0, 200000.0),
    "turbidity": ("NTU", 0.0, 4000.0),
    "water_level": ("m", -10.0, 50.0),
    "rain_intensity": ("mm/h", 0.0, 1000.0),
    "battery": ("V", 0.0, 6.0),
}
KINDS = {
    "air": ["bme280", "pms5003"],
    "water": ["ph", "ec", "turbidity", "level", "water_temp"],
    "rain": ["rain_gauge"],
}
SENSOR_NEEDS = {
    "bme280": ["air_temp", "rh", "pressure"],
    "pms5003": ["pm1", "pm25", "pm10"],
    "ph": ["ph", "water_temp"],
    "ec": ["conductivity", "water_temp"],
    "turbidity": ["turbidity"],
    "level": ["water_level"],
    "water_temp": ["water_temp"],
    "rain_gauge": ["rain_intensity"],
    "battery": ["battery"],
}
FAULT_KINDS = ("detached", "nack", "stuck", "spikes", "power_loss", "radio_loss")
EVENT_KINDS = {"pollution_episode": ("pm25", "pm10", "pm1"), "storm": ("rain_intensity",),
               "river_rise": ("water_level",), "custom": ()}
SHAPES = ("bell", "triangle", "trapezoid", "step", "flood")

_TOP_KEYS = ("scenario", "radio", "gateway", "station", "event", "fault")
_SCEN_KEYS = ("name", "seed", "start", "duration_h", "description")
_RADIO_KEYS = ("loss_percent", "path_loss_exponent", "shadowing_sigma_db", "fading_sigma_db",
               "noise_figure_db", "capture_db", "origin", "frequency_mhz")
_GW_KEYS = ("id", "location", "antenna_gain_dbi", "kind", "eui", "lorawan_public")
_GW_KINDS = ("single", "concentrator")
_ST_KEYS = ("id", "kind", "board", "location", "antenna_gain_dbi", "sensors", "truth", "sensor", "reference")
_TRUTH_KEYS = ("mean", "amplitude", "peak_hour", "points", "noise_sd", "noise_tau_min", "noise",
               "ratio_of", "ratio", "min", "max")
_REF_KEYS = ("noise_sd", "bias", "interval_min", "from_h", "to_h")
_EVENT_KEYS = ("kind", "stations", "station", "start_h", "duration_h", "shape", "peak", "peak_at", "name")
_FAULT_KEYS = ("station", "target", "kind", "start_h", "end_h", "duration_min", "rate", "magnitude", "percent")


def _err(where, problem, fix):
    raise SenError("scenario %s: %s" % (where, problem), fix)


def _check_keys(where, table, allowed):
    if not isinstance(table, dict):
        _err(where, "must be a table", "write it as [%s] or { key = value, … }" % where.split(" ")[-1])
    for k in table:
        if k not in allowed:
            near = difflib.get_close_matches(k, allowed, n=1)
            _err(where, "unknown key '%s'" % k,
                 ("did you mean '%s'?" % near[0]) if near else "allowed keys: " + ", ".join(allowed))


def _num(where, table, key, default=None, lo=None, hi=None):
    if key not in table:
        if default is None:
            _err(where, "missing key '%s'" % key, "add %s = <number>" % key)
        return float(default)
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _err(where, "'%s' must be a number, got %r" % (key, v), "write %s = <number>" % key)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        _err(where, "'%s' = %r is out of range" % (key, v), "use a value between %s and %s" % (lo, hi))
    return float(v)


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

    def __init__(self, where, q, table, duration_s, seed, station_id):
        _check_keys(where, table, _TRUTH_KEYS)
        self.q = q
        unit, lo, hi = QUANTITIES[q]
        self.lo = _num(where, table, "min", lo)
        self.hi = _num(where, table, "max", hi)
        self.ratio_of = table.get("ratio_of")
        if self.ratio_of is not None:
            if self.ratio_of not in QUANTITIES or self.ratio_of == q:
                _err(where, "ratio_of = %r is not another quantity" % self.ratio_of,
                     "name one of: " + ", ".join(QUANTITIES))
            self.ratio = _num(where, table, "ratio", lo=0)
        self.points = None
        if "points" in table:
            pts = table["points"]
            ok = isinstance(pts, list) and len(pts) >= 1 and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, (int, float)) for x in p) for p in pts)
            if not ok:
                _err(where, "'points' must be [[hour, value], …]", "write points = [[0, 12.0], [6, 15.5]]")
            hs = [float(p[0]) for p in pts]
            if hs != sorted(hs):
                _err(where, "'points' hours are not increasing", "sort the [hour, value] pairs by hour")
            self.points = (np.array(hs) * 3600.0, np.array([float(p[1]) for p in pts]))
        elif self.ratio_of is None:
            self.mean = _num(where, table, "mean")
        self.amplitude = _num(where, table, "amplitude", 0.0)
        self.peak_hour = _num(where, table, "peak_hour", 14.0, 0, 24)
        self.noise_sd = _num(where, table, "noise_sd", 0.0, lo=0)
        tau_s = _num(where, table, "noise_tau_min", 20.0, lo=0.1) * 60.0
        self.noise_kind = table.get("noise", "additive")
        if self.noise_kind not in ("additive", "multiplicative"):
            _err(where, "noise = %r" % self.noise_kind, "use noise = \"additive\" or \"multiplicative\"")
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


# -- loading --------------------------------------------------------------------------------------
def _parse_start(v):
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
    if isinstance(v, str):
        try:
            d = _dt.datetime.fromisoformat(v)
            return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            pass
    raise SenError("scenario [scenario] start = %r is not a date-time" % (v,),
                   "write start = 2026-11-23T00:00:00+07:00")


def _location(where, loc):
    if not isinstance(loc, dict):
        _err(where, "'location' must be a table", "write location = { x_m = 0, y_m = 0 } or { lat = 16.05, lon = 108.2 }")
    keys = set(loc)
    if keys == {"x_m", "y_m"}:
        return ("xy", _num(where, loc, "x_m"), _num(where, loc, "y_m"))
    if keys == {"lat", "lon"}:
        return ("ll", _num(where, loc, "lat", lo=-90, hi=90), _num(where, loc, "lon", lo=-180, hi=180))
    _err(where, "location has keys %s" % sorted(keys), "use { x_m = …, y_m = … } or { lat = …, lon = … }")


def load_scenario(path):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SenError("scenario file %s not found" % path, "check the path, or pick one from scenarios/") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SenError("cannot read scenario %s (%s)" % (path, e), "give a readable UTF-8 TOML file") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text, source="<scenario>"):
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SenError("scenario %s is not valid TOML (%s)" % (source, e), "fix the TOML syntax there") from None
    _check_keys(source, doc, _TOP_KEYS)
    sc = doc.get("scenario")
    if sc is None:
        _err(source, "missing [scenario] table", "add [scenario] with seed, start and duration_h")
    _check_keys("[scenario]", sc, _SCEN_KEYS)
    seed = sc.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        _err("[scenario]", "seed must be an integer", "add seed = 12345")
    if "start" not in sc:
        _err("[scenario]", "missing key 'start'", "add start = 2026-11-23T00:00:00+07:00")
    start = _parse_start(sc["start"])
    duration_s = _num("[scenario]", sc, "duration_h", lo=0.001, hi=24 * 366) * 3600.0

    rt = doc.get("radio", {})
    _check_keys("[radio]", rt, _RADIO_KEYS)
    radio = {
        "loss_percent": _num("[radio]", rt, "loss_percent", 0.0, 0, 100),
        "path_loss_exponent": _num("[radio]", rt, "path_loss_exponent", 3.0, 1.5, 6),
        "shadowing_sigma_db": _num("[radio]", rt, "shadowing_sigma_db", 0.0, 0, 20),
        "fading_sigma_db": _num("[radio]", rt, "fading_sigma_db", 0.0, 0, 20),
        "noise_figure_db": _num("[radio]", rt, "noise_figure_db", 6.0, 0, 20),
        "capture_db": _num("[radio]", rt, "capture_db", 6.0, 0, 30),
        "frequency_mhz": _num("[radio]", rt, "frequency_mhz", 921.4, 137, 1020),
    }

    raw_locs = []  # (kind, a, b) in file order; lat/lon converted once an origin is known
    gws = doc.get("gateway", [])
    if not isinstance(gws, list) or not gws:
        _err(source, "no [[gateway]]", "add [[gateway]] with id and location")
    gateways = []
    for i, g in enumerate(gws):
        where = "[[gateway]] #%d" % (i + 1)
        _check_keys(where, g, _GW_KEYS)
        if not isinstance(g.get("id"), str) or not g["id"]:
            _err(where, "missing key 'id'", "add id = \"gw-1\"")
        where = "[[gateway]] '%s'" % g["id"]
        if "location" not in g:
            _err(where, "missing key 'location'", "add location = { x_m = 0, y_m = 0 }")
        loc = _location(where, g["location"])
        raw_locs.append(loc)
        kind = g.get("kind", "single")
        if kind not in _GW_KINDS:
            _err(where, "kind '%s' is unknown" % (kind,),
                 "use \"single\" (an SX127x radio) or \"concentrator\" (SX1302)")
        eui = str(g.get("eui", "%016x" % (0xAA555A0000000000 + i + 1))).lower()
        if len(eui) != 16 or any(c not in "0123456789abcdef" for c in eui):
            _err(where, "eui '%s' is not 16 hex digits" % (eui,), "e.g. eui = \"aa555a0000000001\"")
        gateways.append({"id": g["id"], "loc": loc,
                         "antenna_gain_dbi": _num(where, g, "antenna_gain_dbi", 3.0, -10, 20), "kind": kind, "eui": eui, "lorawan_public": bool(g.get("lorawan_public", False))})

    sts = doc.get("station", [])
    if not isinstance(sts, list) or not sts:
        _err(source, "no [[station]]", "add [[station]] with id, kind, board, location and truth")
    stations = []
    for i, s in enumerate(sts):
        where = "[[station]] #%d" % (i + 1)
        _check_keys(where, s, _ST_KEYS)
        sid = s.get("id")
        if not isinstance(sid, str) or not sid:
            _err(where, "missing key 'id'", "add id = \"air-1\"")
        where = "[[station]] '%s'" % sid
        if any(x.id == sid for x in stations):
            _err(where, "id is used twice", "give every station its own id")
        kind = s.get("kind")
        if kind not in KINDS:
            _err(where, "kind = %r" % (kind,), "use kind = one of " + ", ".join('"%s"' % k for k in KINDS))
        board = s.get("board")
        if not isinstance(board, str) or not board:
            _err(where, "missing key 'board'", "add board = \"ttgo-lora32-v21\" (see `sen emulate --list`)")
        if "location" not in s:
            _err(where, "missing key 'location'", "add location = { x_m = 0, y_m = 0 }")
        loc = _location(where, s["location"])
        raw_locs.append(loc)
        sensors = s.get("sensors", KINDS[kind])
        if not isinstance(sensors, list) or any(x not in SENSOR_NEEDS for x in sensors):
            _err(where, "sensors = %r" % (sensors,), "list sensors from: " + ", ".join(SENSOR_NEEDS))
        params = s.get("sensor", {})
        _check_keys(where + " sensor", params, list(SENSOR_NEEDS))
        st = Station(sid, kind, board, loc, _num(where, s, "antenna_gain_dbi", 0.0, -10, 20), list(sensors),
                     {k: dict(v) for k, v in params.items()}, None)
        truth = s.get("truth", {})
        _check_keys(where + " truth", truth, list(QUANTITIES))
        for q, table in truth.items():
            st.truth[q] = TruthSpec("%s truth.%s" % (where, q), q, table, duration_s, seed, sid)
        for q, spec in st.truth.items():
            if spec.ratio_of is not None and spec.ratio_of not in st.truth:
                _err("%s truth.%s" % (where, q), "ratio_of = %r but that quantity has no truth" % spec.ratio_of,
                     "add [station.truth.%s]" % spec.ratio_of)
        for sensor in sensors:
            for q in SENSOR_NEEDS[sensor]:
                if q not in st.truth:
                    _err(where, "sensor '%s' needs truth for '%s' (%s)" % (sensor, q, QUANTITIES[q][0]),
                         "add [station.truth.%s] with mean = … (or drop the sensor)" % q)
        refs = s.get("reference", {})
        _check_keys(where + " reference", refs, list(QUANTITIES))
        for q, r in refs.items():
            w = "%s reference.%s" % (where, q)
            _check_keys(w, r, _REF_KEYS)
            if q not in st.truth:
                _err(w, "no truth for '%s' to refer to" % q, "add [station.truth.%s]" % q)
            st.reference[q] = {"noise_sd": _num(w, r, "noise_sd", 0.0, lo=0), "bias": _num(w, r, "bias", 0.0),
                               "interval_s": _num(w, r, "interval_min", 60.0, lo=1) * 60.0,
                               "from_s": _num(w, r, "from_h", 0.0, lo=0) * 3600.0,
                               "to_s": _num(w, r, "to_h", duration_s / 3600.0, lo=0) * 3600.0}
        stations.append(st)
    by_id = {st.id: st for st in stations}

    # lat/lon -> local metres around an origin
    origin = rt.get("origin")
    if origin is not None:
        o = _location("[radio] origin", origin)
        if o[0] != "ll":
            _err("[radio] origin", "must be { lat = …, lon = … }", "write origin = { lat = 16.06, lon = 108.22 }")
        lat0, lon0 = o[1], o[2]
    else:
        ll = [loc for loc in raw_locs if loc[0] == "ll"]
        lat0, lon0 = (ll[0][1], ll[0][2]) if ll else (0.0, 0.0)

    def xy(loc):
        return (loc[1], loc[2]) if loc[0] == "xy" else lat_lon_to_xy(loc[1], loc[2], lat0, lon0)

    for g in gateways:
        g["lat_lon"] = (g["loc"][1], g["loc"][2]) if g["loc"][0] == "ll" else None
        g["xy"] = xy(g.pop("loc"))
    for st in stations:
        st.lat_lon = (st.xy[1], st.xy[2]) if st.xy[0] == "ll" else None
        st.xy = xy(st.xy)

    evs = doc.get("event", [])
    if not isinstance(evs, list):
        _err(source, "'event' must be [[event]] tables", "write each event as [[event]]")
    for i, e in enumerate(evs):
        where = "[[event]] #%d" % (i + 1)
        _check_keys(where, e, _EVENT_KEYS)
        kind = e.get("kind")
        if kind not in EVENT_KINDS:
            _err(where, "kind = %r" % (kind,), "use one of: " + ", ".join(EVENT_KINDS))
        targets = e.get("stations", [e["station"]] if "station" in e else None)
        if not targets or not isinstance(targets, list):
            _err(where, "no station", "add stations = [\"air-1\"]")
        start_s = _num(where, e, "start_h", lo=0) * 3600.0
        dur_s = _num(where, e, "duration_h", lo=1e-3) * 3600.0
        shape = e.get("shape", "flood" if kind == "river_rise" else "bell")
        if shape not in SHAPES:
            _err(where, "shape = %r" % (shape,), "use one of: " + ", ".join(SHAPES))
        peak_at = _num(where, e, "peak_at", lo=0.01, hi=0.99) if "peak_at" in e else None
        peak = e.get("peak")
        if not isinstance(peak, dict) or not peak:
            _err(where, "missing 'peak'", "add peak = { %s = <change at the peak> }"
                 % (EVENT_KINDS[kind][0] if EVENT_KINDS[kind] else "pm25"))
        if EVENT_KINDS[kind] and EVENT_KINDS[kind][0] not in peak:
            _err(where, "a %s must change '%s'" % (kind, EVENT_KINDS[kind][0]),
                 "add %s = <change at the peak> to peak" % EVENT_KINDS[kind][0])
        for t in targets:
            if t not in by_id:
                _err(where, "station '%s' is not defined" % t, "use one of: " + ", ".join(by_id))
            for q in peak:
                if q not in QUANTITIES:
                    _err(where, "peak names unknown quantity '%s'" % q, "use one of: " + ", ".join(QUANTITIES))
                if q not in by_id[t].truth:
                    _err(where, "station '%s' has no truth for '%s'" % (t, q), "add [station.truth.%s] to it" % q)
                by_id[t].events.append((q, start_s, dur_s, shape, peak_at, _num(where, peak, q)))

    fls = doc.get("fault", [])
    if not isinstance(fls, list):
        _err(source, "'fault' must be [[fault]] tables", "write each fault as [[fault]]")
    for i, f in enumerate(fls):
        where = "[[fault]] #%d" % (i + 1)
        _check_keys(where, f, _FAULT_KEYS)
        sid = f.get("station")
        if sid not in by_id:
            _err(where, "station = %r is not defined" % (sid,), "use one of: " + ", ".join(by_id))
        kind = f.get("kind")
        if kind not in FAULT_KINDS:
            _err(where, "kind = %r" % (kind,), "use one of: " + ", ".join(FAULT_KINDS))
        target = {"power_loss": "power", "radio_loss": "radio"}.get(kind, f.get("target"))
        if kind not in ("power_loss", "radio_loss") and target not in by_id[sid].sensors:
            _err(where, "target = %r is not a sensor of '%s'" % (target, sid),
                 "use one of: " + ", ".join(by_id[sid].sensors))
        start_s = _num(where, f, "start_h", lo=0) * 3600.0
        if "end_h" in f:
            end_s = _num(where, f, "end_h", lo=0) * 3600.0
        elif "duration_min" in f:
            end_s = start_s + _num(where, f, "duration_min", lo=0) * 60.0
        else:
            _err(where, "no end", "add end_h = <hours> or duration_min = <minutes>")
        if end_s <= start_s:
            _err(where, "end is not after start_h", "make end_h larger than start_h")
        rec = {"kind": kind, "target": target, "start_s": start_s, "end_s": end_s,
               "rate": _num(where, f, "rate", 0.3 if kind in ("nack", "spikes") else 0.0, 0, 1),
               "magnitude": _num(where, f, "magnitude", 5.0 if kind == "spikes" else 0.0),
               "percent": _num(where, f, "percent", 100.0 if kind == "radio_loss" else 0.0, 0, 100)}
        by_id[sid].faults.append(rec)

    for g in gateways:
        g.setdefault("lat_lon", None)
    return World(sc.get("name", Path(source).stem), seed, start, duration_s, radio, gateways, stations, source)
