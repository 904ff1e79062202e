"""Chip models of an emulated station, built from the board definition and the scenario.

    chips = make_chips(board_def, station, world, clock, medium=None)

board_def  the board's parsed TOML (dict, boards/*.toml). Read: `fitted` (every station sensor
           must be in it, else SenError), `lora.pa_boost` (true: only PA_BOOST reaches the
           antenna, so a frame sent on RFO leaks out 30 dB weaker; `lora.rfo_connected`
           overrides) and `i2c.bme280_address` (default 0x76). Anything else is ignored.
station    a scenario Station or its id.
world      the scenario World (truth, faults, seeds).
clock      the shared VirtualClock (start_epoch_s = world.start_epoch_s).
medium     a RadioMedium (world.make_medium(clock)); the radio is attached at the station's
           location with its antenna gain and the world's radio-loss faults.

Returns {name: model}. Names and what the board wires them to:
  "sx1276"      SPIDevice: .transfer(bytes); .dio[0..5] OutputPins (watch/level);
                .nreset InputPin (driven); .mode_watchers for power-state accounting
  "bme280"      I2CDevice at .address (write/read, BusFault on faults)
  "pms5003"     UARTDevice (write/read_available, 9600 8N1); .set_pin and .reset_pin InputPins
  "ph", "ec", "turbidity", "level", "water_temp", "battery"
                AnalogSource: .volts() at the ADC pin
  "rain_gauge"  OutputPin: level() 0 while the reed contact is closed, None while open
                (use PULL_UP); .watch(callback) hears each edge
Every model has set_powered(on): the supply (or the board's switched sensor rail) going off
and on; on -> a power-on reset. Per-station parameters come from [station.sensor.<name>] in
the scenario (see each module).
Power loss is the board's business: world.powered(station_id, t_s).
"""
from sen.errors import SenError

from .analog_probes import PROBES
from .bme280 import BME280
from .pms5003 import PMS5003
from .rain_gauge import RainGauge
from .sx1276 import SX1276


def _seed(world, sid, name):
    return world.rng(sid, name, "chip").getrandbits(32)


def make_chips(board_def, station, world, clock, medium=None, radio_name=None):
    """radio_name: the radio's name on the medium (default: the station id); two boards at one
    station need their own names for the medium's per-sender records."""
    st = world.station(station) if isinstance(station, str) else station
    sid = st.id
    params = st.sensor_params
    chips = {}

    board_def = board_def or {}
    fitted = board_def.get("fitted")
    if fitted is not None:
        for name in st.sensors:
            if name not in fitted:
                raise SenError("station '%s' needs sensor '%s', which board '%s' does not carry"
                               % (sid, name, board_def.get("id", "?")),
                               "pick a board whose `fitted` list has it, or drop the sensor from the station")
    lora = board_def.get("lora", {})
    rfo = lora.get("rfo_connected", not lora.get("pa_boost", True))
    sx = SX1276(clock, name=radio_name or sid, rfo_connected=bool(rfo))
    if medium is not None:
        medium.attach(sx, st.xy, st.antenna_gain_dbi, radio_name or sid, loss_fn=lambda t_s: world.radio_loss_percent(sid, t_s))
    chips["sx1276"] = sx

    for name in st.sensors:
        try:
            chips[name] = _make_sensor(name, dict(params.get(name, {})), sid, world, clock, board_def)
        except (TypeError, ValueError) as e:
            raise SenError("scenario station '%s': bad [station.sensor.%s] (%s)" % (sid, name, e),
                           "use only the parameters documented in sen.emulator.chips.%s"
                           % {"ec": "analog_probes", "ph": "analog_probes", "turbidity": "analog_probes",
                              "level": "analog_probes", "water_temp": "analog_probes",
                              "battery": "analog_probes"}.get(name, name)) from None
    return chips


_PROBE_QUANTITY = {"ph": "ph", "ec": "conductivity", "turbidity": "turbidity", "level": "water_level",
                   "water_temp": "water_temp", "battery": "battery"}


def _make_sensor(name, p, sid, world, clock, board_def):
    seed = _seed(world, sid, name)

    def faults(t_s):
        return world.faults(sid, name, t_s)

    def truth(q):
        return lambda t_s: world.truth(sid, q, t_s)

    if name == "bme280":
        addr = p.pop("address", board_def.get("i2c", {}).get("bme280_address", 0x76))
        return BME280(clock, lambda t_s: (world.truth(sid, "air_temp", t_s), world.truth(sid, "rh", t_s),
                                          world.truth(sid, "pressure", t_s)),
                      address=int(addr), faults=faults, seed=seed, **p)
    if name == "pms5003":
        rh = truth("rh") if world.has(sid, "rh") else None
        return PMS5003(clock, lambda t_s: (world.truth(sid, "pm1", t_s), world.truth(sid, "pm25", t_s),
                                           world.truth(sid, "pm10", t_s)),
                       rh=rh, faults=faults, seed=seed, **p)
    if name == "rain_gauge":
        return RainGauge(clock, lambda ts: world.truth_array(sid, "rain_intensity", ts), faults=faults, seed=seed, **p)
    temp = truth("water_temp") if name in ("ph", "ec") else None
    return PROBES[name](clock, truth(_PROBE_QUANTITY[name]), temp=temp, faults=faults, seed=seed, **p)


class StationWiring:
    """The `world.wire(board)` hook Board calls: fits a scenario station's chip models on the
    board's pins (board TOML) and its radio on the medium. only_fitted: leave out the
    station's sensors the board does not carry (the node then reports what is fitted)."""

    def __init__(self, world, station_id, clock, medium, only_fitted=False):
        self.world = world
        self.station = world.station(station_id)
        self.clock = clock
        self.medium = medium
        self.only_fitted = only_fitted
        self.chips = None

    def wire(self, board):
        d = board.defn
        if self.only_fitted:
            self.station.sensors = [x for x in self.station.sensors if x in d.get("fitted", self.station.sensors)]
        self.chips = make_chips(d, self.station, self.world, self.clock, self.medium)
        board.attach_chips(self.chips)
