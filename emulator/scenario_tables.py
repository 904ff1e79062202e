"""The tables of a scenario file as sen.config_schema models (format: docs/scenario-format.md).

Each table's keys, types, ranges and defaults live here; what ties tables together (a
station named by an event, a sensor's truth) is checked by emulator/scenario.py.
"""
import datetime as _dt
from typing import Any

from pydantic import Field, field_validator, model_validator

from sen.config_schema import Number, Table, bad, create_table, one_of, within

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
GATEWAY_KINDS = ("single", "concentrator")

# a key's fix when it is missing, where "add key = <number>" would not help
MISSING_FIX = {"seed": "add seed = 12345", "start": "add start = 2026-11-23T00:00:00+07:00",
               "board": "add board = \"ttgo-lora32-v21\" (see `sen emulate --list`)",
               "location": "add location = { x_m = 0, y_m = 0 }", "kind": "add kind = \"air\"",
               "station": "add station = \"air-1\""}


def span(lo=None, hi=None):
    """A number in lo..hi (either end open)."""
    if lo is not None and hi is not None:
        fix = f"use a value between {lo} and {hi}"
    else:
        fix = f"use a value of at least {lo}" if hi is None else f"use a value of at most {hi}"
    return within(lo, hi, fix, typ=float)


def _table():
    return Field(default_factory=dict, validate_default=True)


class Location(Table):
    x_m: Number | None = None
    y_m: Number | None = None
    lat: span(-90, 90) | None = None
    lon: span(-180, 180) | None = None

    @model_validator(mode="after")
    def _one_pair(self):
        keys = sorted(self.model_fields_set)
        if keys not in (["x_m", "y_m"], ["lat", "lon"]):
            raise bad(f"location has keys {keys}", "use { x_m = …, y_m = … } or { lat = …, lon = … }")
        return self

    def point(self):
        """('xy', x, y) or ('ll', lat, lon)."""
        return ("xy", self.x_m, self.y_m) if self.x_m is not None else ("ll", self.lat, self.lon)


def _parse_start(v):
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
    if isinstance(v, str):
        try:
            d = _dt.datetime.fromisoformat(v)
            return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            pass
    raise bad(f"start = {v!r} is not a date-time", "write start = 2026-11-23T00:00:00+07:00")


class ScenarioTable(Table):
    name: str | None = None
    seed: int
    start: Any  # a TOML date-time (or its ISO text); checked below
    duration_h: span(0.001, 24 * 366)
    description: str | None = None

    @field_validator("start")
    @classmethod
    def _start(cls, v):
        return _parse_start(v)


class RadioTable(Table):
    loss_percent: span(0, 100) = 0.0
    path_loss_exponent: span(1.5, 6) = 3.0
    shadowing_sigma_db: span(0, 20) = 0.0
    fading_sigma_db: span(0, 20) = 0.0
    noise_figure_db: span(0, 20) = 6.0
    capture_db: span(0, 30) = 6.0
    origin: Location | None = None
    frequency_mhz: span(137, 1020) = 921.4

    @field_validator("origin")
    @classmethod
    def _lat_lon(cls, v):
        if v is not None and v.x_m is not None:
            raise bad("must be { lat = …, lon = … }", "write origin = { lat = 16.06, lon = 108.22 }")
        return v


def _nonempty_id(v):
    if not v:
        raise bad("id is empty", "give it a name, e.g. id = \"gw-1\" or \"air-1\"")
    return v


class GatewayEntry(Table):
    id: str
    location: Location
    antenna_gain_dbi: span(-10, 20) = 3.0
    kind: one_of(*GATEWAY_KINDS, fix="use \"single\" (an SX127x radio) or \"concentrator\" (SX1302)") = "single"
    eui: str | None = None
    lorawan_public: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        return _nonempty_id(v)

    @field_validator("eui")
    @classmethod
    def _eui(cls, v):
        if v is not None and (len(v) != 16 or any(c not in "0123456789abcdef" for c in v.lower())):
            raise bad(f"eui '{v.lower()}' is not 16 hex digits", "e.g. eui = \"aa555a0000000001\"")
        return v


class TruthTable(Table):
    mean: Number | None = None
    amplitude: Number = 0.0
    peak_hour: span(0, 24) = 14.0
    points: list | None = None
    noise_sd: span(0) = 0.0
    noise_tau_min: span(0.1) = 20.0
    noise: one_of("additive", "multiplicative", fix="use noise = \"additive\" or \"multiplicative\"") = "additive"
    ratio_of: str | None = None
    ratio: span(0) | None = None
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _baseline(self):
        if self.ratio_of is not None:
            if self.ratio_of not in QUANTITIES:
                raise bad(f"ratio_of = {self.ratio_of!r} is not another quantity",
                          "name one of: " + ", ".join(QUANTITIES))
            if self.ratio is None:
                raise bad("missing key 'ratio'", "add ratio = <number>")
        if self.points is not None:
            pts = self.points
            if not (len(pts) >= 1 and all(isinstance(p, list) and len(p) == 2
                                          and all(isinstance(x, (int, float)) for x in p) for p in pts)):
                raise bad("'points' must be [[hour, value], …]", "write points = [[0, 12.0], [6, 15.5]]")
            hs = [float(p[0]) for p in pts]
            if hs != sorted(hs):
                raise bad("'points' hours are not increasing", "sort the [hour, value] pairs by hour")
        elif self.ratio_of is None and self.mean is None:
            raise bad("missing key 'mean'", "add mean = <number>")
        return self


class ReferenceTable(Table):
    noise_sd: span(0) = 0.0
    bias: Number = 0.0
    interval_min: span(1) = 60.0
    from_h: span(0) = 0.0
    to_h: span(0) | None = None  # the scenario's end


# one optional table per quantity (or sensor), so a misspelt name is an unknown key
Truths = create_table("Truths", {q: TruthTable for q in QUANTITIES})
References = create_table("References", {q: ReferenceTable for q in QUANTITIES})
SensorParams = create_table("SensorParams", {s: dict for s in SENSOR_NEEDS})


class StationEntry(Table):
    id: str
    kind: str
    board: str
    location: Location
    antenna_gain_dbi: span(-10, 20) = 0.0
    sensors: list[str] | None = None
    truth: Truths = _table()
    sensor: SensorParams = _table()
    reference: References = _table()

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        return _nonempty_id(v)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in KINDS:
            raise bad(f"kind = {v!r}", "use kind = one of " + ", ".join('"%s"' % k for k in KINDS))
        return v

    @field_validator("board")
    @classmethod
    def _board(cls, v):
        if not v:
            raise bad("board is empty", MISSING_FIX["board"])
        return v

    @field_validator("sensors")
    @classmethod
    def _sensors(cls, v):
        if v is not None and any(x not in SENSOR_NEEDS for x in v):
            raise bad(f"sensors = {v!r}", "list sensors from: " + ", ".join(SENSOR_NEEDS))
        return v


class EventEntry(Table):
    kind: str
    stations: list[str] | None = None
    station: str | None = None
    start_h: span(0)
    duration_h: span(1e-3)
    shape: one_of(*SHAPES) | None = None
    peak: dict[str, Number] | None = None
    peak_at: span(0.01, 0.99) | None = None
    name: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in EVENT_KINDS:
            raise bad(f"kind = {v!r}", "use one of: " + ", ".join(EVENT_KINDS))
        return v


class FaultEntry(Table):
    station: str
    target: str | None = None
    kind: str
    start_h: span(0)
    end_h: span(0) | None = None
    duration_min: span(0) | None = None
    rate: span(0, 1) | None = None
    magnitude: Number | None = None
    percent: span(0, 100) | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in FAULT_KINDS:
            raise bad(f"kind = {v!r}", "use one of: " + ", ".join(FAULT_KINDS))
        return v


class ScenarioFile(Table):
    scenario: ScenarioTable | None = None
    radio: RadioTable = _table()
    gateway: list[GatewayEntry] = []
    station: list[StationEntry] = []
    event: list[EventEntry] = []
    fault: list[FaultEntry] = []
