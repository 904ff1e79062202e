"""Load a scenario file (format: docs/scenario-format.md) into a World.

load_scenario(path) / parse_scenario(text) check every table against the models in
emulator/scenario_tables.py (sen.config_schema: one line naming the file, the table, the key
and the fix), then the links between tables, and build the World (emulator/world.py).
"""
import tomllib
from pathlib import Path

from sen.config_schema import Style, check
from sen.errors import SenError

from .path_loss import lat_lon_to_xy
from .scenario_tables import (EVENT_KINDS, FAULT_KINDS, KINDS, MISSING_FIX, QUANTITIES, SENSOR_NEEDS,  # noqa: F401
                              SHAPES, ScenarioFile)
from .world import Station, TruthSpec, World  # noqa: F401  (the names callers import from here)


class ScenarioStyle(Style):
    """Names a table as the file shows it: [[station]] 'air-1' truth.rh, [[fault]] #2."""

    def __init__(self, source, doc):
        super().__init__(source)
        self.doc = doc

    def where(self, loc) -> str:
        if not loc:
            return ""
        head, rest = loc[0], list(loc[1:])
        if rest and isinstance(rest[0], int):
            i = rest.pop(0)
            entries = self.doc.get(head)
            entry = entries[i] if isinstance(entries, list) and i < len(entries) else None
            sid = entry.get("id") if isinstance(entry, dict) else None
            text = f"[[{head}]] '{sid}'" if isinstance(sid, str) and sid else f"[[{head}]] #{i + 1}"
        else:
            text = f"[{head}]"
        return " ".join([text, ".".join(str(p) for p in rest)]) if rest else text

    def line(self, loc, problem, fix) -> SenError:
        if loc and isinstance(loc[-1], str) and problem.startswith(loc[-1] + " "):
            loc = loc[:-1]  # the problem already names its key: "kind = 'soil'"
        return self.at(self.where(loc), problem, fix)

    def at(self, where, problem, fix) -> SenError:
        return SenError(f"scenario {self.file} {where}: {problem}" if where else f"scenario {self.file}: {problem}", fix)

    def unknown(self, loc, key, known, near):
        return self.line(loc, f"unknown key '{key}'",
                         f"did you mean '{near[0]}'?" if near else "allowed keys: " + ", ".join(known))

    def missing(self, loc):
        key = loc[-1]
        return self.line(loc[:-1], f"missing key '{key}'", MISSING_FIX.get(key, f"add {key} = <number>"))

    def wrong_type(self, loc, tname, value):
        kind = {"int": "an integer", "str": "a string", "bool": "true or false"}.get(tname, "a " + tname)
        return self.line(loc[:-1], f"'{loc[-1]}' must be {kind}, got {value!r}", f"write {loc[-1]} = <{tname}>")

    def not_table(self, loc, value):
        fix = ("write location = { x_m = 0, y_m = 0 } or { lat = 16.05, lon = 108.2 }" if loc[-1] in ("location", "origin")
               else f"write it as [{loc[-1]}] or {{ key = value, … }}")
        return self.line(loc[:-1], f"'{loc[-1]}' must be a table, not {value}", fix)


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
    style = ScenarioStyle(source, doc)
    f = check(ScenarioFile, doc, style)
    sc = f.scenario
    if sc is None:
        raise style.at("", "missing [scenario] table", "add [scenario] with seed, start and duration_h")
    seed, start, duration_s = sc.seed, sc.start, sc.duration_h * 3600.0
    rt = f.radio
    radio = {k: getattr(rt, k) for k in ("loss_percent", "path_loss_exponent", "shadowing_sigma_db",
                                         "fading_sigma_db", "noise_figure_db", "capture_db", "frequency_mhz")}

    raw_locs = []  # (kind, a, b) in file order; lat/lon converted once an origin is known
    if not f.gateway:
        raise style.at("", "no [[gateway]]", "add [[gateway]] with id and location")
    gateways = []
    for i, g in enumerate(f.gateway):
        loc = g.location.point()
        raw_locs.append(loc)
        eui = (g.eui if g.eui is not None else "%016x" % (0xAA555A0000000000 + i + 1)).lower()
        gateways.append({"id": g.id, "loc": loc, "antenna_gain_dbi": g.antenna_gain_dbi, "kind": g.kind, "eui": eui,
                         "lorawan_public": g.lorawan_public})

    if not f.station:
        raise style.at("", "no [[station]]", "add [[station]] with id, kind, board, location and truth")
    by_id = {}
    for i, s in enumerate(f.station):
        if s.id in by_id:
            raise style.at("[[station]] '%s'" % s.id, "id is used twice", "give every station its own id")
        by_id[s.id] = _station(style, doc["station"][i], s, duration_s, seed, raw_locs)
    stations = list(by_id.values())

    # lat/lon -> local metres around an origin
    if rt.origin is not None:
        lat0, lon0 = rt.origin.lat, rt.origin.lon
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

    for i, e in enumerate(f.event):
        _event(style, "[[event]] #%d" % (i + 1), e, by_id)
    for i, fl in enumerate(f.fault):
        _fault(style, "[[fault]] #%d" % (i + 1), fl, by_id)
    return World(sc.name if sc.name is not None else Path(source).stem, seed, start, duration_s, radio, gateways,
                 stations, source)


def _station(style, raw, s, duration_s, seed, raw_locs):
    where = "[[station]] '%s'" % s.id
    loc = s.location.point()
    raw_locs.append(loc)
    sensors = s.sensors if s.sensors is not None else KINDS[s.kind]
    params = raw.get("sensor", {})
    st = Station(s.id, s.kind, s.board, loc, s.antenna_gain_dbi, list(sensors),
                 {k: dict(v) for k, v in params.items()}, None)
    for q in raw.get("truth", {}):  # file order: the noise of each quantity is seeded by name, not order
        table = getattr(s.truth, q)
        if table.ratio_of == q:
            raise style.at("%s truth.%s" % (where, q), "ratio_of = %r is not another quantity" % q,
                           "name one of: " + ", ".join(QUANTITIES))
        st.truth[q] = TruthSpec(q, table, duration_s, seed, s.id)
    for q, spec in st.truth.items():
        if spec.ratio_of is not None and spec.ratio_of not in st.truth:
            raise style.at("%s truth.%s" % (where, q), "ratio_of = %r but that quantity has no truth" % spec.ratio_of,
                           "add [station.truth.%s]" % spec.ratio_of)
    for sensor in sensors:
        for q in SENSOR_NEEDS[sensor]:
            if q not in st.truth:
                raise style.at(where, "sensor '%s' needs truth for '%s' (%s)" % (sensor, q, QUANTITIES[q][0]),
                               "add [station.truth.%s] with mean = … (or drop the sensor)" % q)
    for q in raw.get("reference", {}):
        r = getattr(s.reference, q)
        if q not in st.truth:
            raise style.at("%s reference.%s" % (where, q), "no truth for '%s' to refer to" % q,
                           "add [station.truth.%s]" % q)
        to_h = r.to_h if r.to_h is not None else duration_s / 3600.0
        st.reference[q] = {"noise_sd": r.noise_sd, "bias": r.bias, "interval_s": r.interval_min * 60.0,
                           "from_s": r.from_h * 3600.0, "to_s": to_h * 3600.0}
    return st


def _event(style, where, e, by_id):
    kind = e.kind
    targets = e.stations if e.stations is not None else ([e.station] if e.station is not None else None)
    if not targets:
        raise style.at(where, "no station", "add stations = [\"air-1\"]")
    start_s = e.start_h * 3600.0
    dur_s = e.duration_h * 3600.0
    shape = e.shape if e.shape is not None else ("flood" if kind == "river_rise" else "bell")
    peak = e.peak
    if not peak:
        raise style.at(where, "missing 'peak'", "add peak = { %s = <change at the peak> }"
                       % (EVENT_KINDS[kind][0] if EVENT_KINDS[kind] else "pm25"))
    if EVENT_KINDS[kind] and EVENT_KINDS[kind][0] not in peak:
        raise style.at(where, "a %s must change '%s'" % (kind, EVENT_KINDS[kind][0]),
                       "add %s = <change at the peak> to peak" % EVENT_KINDS[kind][0])
    for t in targets:
        if t not in by_id:
            raise style.at(where, "station '%s' is not defined" % t, "use one of: " + ", ".join(by_id))
        for q, delta in peak.items():
            if q not in QUANTITIES:
                raise style.at(where, "peak names unknown quantity '%s'" % q, "use one of: " + ", ".join(QUANTITIES))
            if q not in by_id[t].truth:
                raise style.at(where, "station '%s' has no truth for '%s'" % (t, q), "add [station.truth.%s] to it" % q)
            by_id[t].events.append((q, start_s, dur_s, shape, e.peak_at, delta))


def _fault(style, where, f, by_id):
    sid, kind = f.station, f.kind
    if sid not in by_id:
        raise style.at(where, "station = %r is not defined" % (sid,), "use one of: " + ", ".join(by_id))
    target = {"power_loss": "power", "radio_loss": "radio"}.get(kind, f.target)
    if kind not in ("power_loss", "radio_loss") and target not in by_id[sid].sensors:
        raise style.at(where, "target = %r is not a sensor of '%s'" % (target, sid),
                       "use one of: " + ", ".join(by_id[sid].sensors))
    start_s = f.start_h * 3600.0
    if f.end_h is not None:
        end_s = f.end_h * 3600.0
    elif f.duration_min is not None:
        end_s = start_s + f.duration_min * 60.0
    else:
        raise style.at(where, "no end", "add end_h = <hours> or duration_min = <minutes>")
    if end_s <= start_s:
        raise style.at(where, "end is not after start_h", "make end_h larger than start_h")
    rec = {"kind": kind, "target": target, "start_s": start_s, "end_s": end_s,
           "rate": f.rate if f.rate is not None else (0.3 if kind in ("nack", "spikes") else 0.0),
           "magnitude": f.magnitude if f.magnitude is not None else (5.0 if kind == "spikes" else 0.0),
           "percent": f.percent if f.percent is not None else (100.0 if kind == "radio_loss" else 0.0)}
    by_id[sid].faults.append(rec)
