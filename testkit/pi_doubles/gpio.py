"""Test double of `RPi.GPIO`, with the constants and calls that SX127x gateways use.

Inputs read what an attached chip pin drives (emulator.chips.pins.OutputPin) or the pull;
add_event_detect callbacks fire when that pin changes, synchronously inside the virtual-clock
step that changed it (RPi.GPIO runs them on its own thread; here the caller that advances
the clock does). Outputs are forwarded to attached InputPins (e.g. the SX1276's NRESET).
"""
from .sync import lock

BOARD = 10
BCM = 11
OUT = 0
IN = 1
LOW = 0
HIGH = 1
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33
HARD_PWM = 43
SERIAL = 40
I2C = 42
SPI = 41
UNKNOWN = -1
VERSION = "0.7.1a4 (sen double)"
RPI_INFO = {"P1_REVISION": 3, "REVISION": "c03114", "TYPE": "Pi 4 Model B", "MANUFACTURER": "Sony",
            "PROCESSOR": "BCM2711", "RAM": "4G"}
RPI_REVISION = 3

_mode = None
_warnings = True
_channels = {}   # channel -> dict(direction, pull, out)
_sources = {}    # channel -> OutputPin (chip drives the Pi's input)
_sinks = {}      # channel -> InputPin (Pi drives the chip)
_events = {}     # channel -> dict(edge, callbacks, detected)


def _attach_source(channel, pin):
    _sources[channel] = pin
    pin.watch(lambda level, ch=channel: _on_change(ch, level))


def _attach_sink(channel, pin):
    _sinks[channel] = pin


def _reset_all():
    global _mode
    _mode = None
    _channels.clear()
    _sources.clear()
    _sinks.clear()
    _events.clear()


def _need_mode():
    if _mode is None:
        raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")


def setmode(mode):
    global _mode
    if mode not in (BOARD, BCM):
        raise ValueError("An invalid mode was passed to setmode()")
    if _mode is not None and _mode != mode:
        raise ValueError("A different mode has already been set!")
    _mode = mode


def getmode():
    return _mode


def setwarnings(flag):
    global _warnings
    _warnings = bool(flag)


def _each(channel):
    return list(channel) if isinstance(channel, (list, tuple)) else [channel]


def setup(channel, direction, pull_up_down=PUD_OFF, initial=-1):
    _need_mode()
    if direction not in (IN, OUT):
        raise ValueError("An invalid direction was passed to setup()")
    if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
        raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN")
    for ch in _each(channel):
        _channels[ch] = {"direction": direction, "pull": pull_up_down, "out": 0}
        if direction == OUT and initial in (0, 1):
            output(ch, initial)


def gpio_function(channel):
    c = _channels.get(channel)
    return UNKNOWN if c is None else c["direction"]


def _level(ch):
    with lock:
        return _level_locked(ch)


def _level_locked(ch):
    src = _sources.get(ch)
    if src is not None and src.level() is not None:
        return 1 if src.level() else 0
    c = _channels.get(ch)
    if c is not None and c["direction"] == OUT:
        return c["out"]
    return 1 if c is not None and c["pull"] == PUD_UP else 0


def input(channel):  # noqa: A001 - the RPi.GPIO name
    _need_mode()
    if channel not in _channels:
        raise RuntimeError("You must setup() the GPIO channel first")
    return _level(channel)


def output(channel, value):
    _need_mode()
    values = _each(value) if isinstance(value, (list, tuple)) else None
    for i, ch in enumerate(_each(channel)):
        c = _channels.get(ch)
        if c is None or c["direction"] != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        v = 1 if (values[i] if values is not None else value) else 0
        c["out"] = v
        sink = _sinks.get(ch)
        if sink is not None:
            with lock:
                sink.driven(v)


def add_event_detect(channel, edge, callback=None, bouncetime=None):
    _need_mode()
    c = _channels.get(channel)
    if c is None or c["direction"] != IN:
        raise RuntimeError("You must setup() the GPIO channel as an input first")
    if edge not in (RISING, FALLING, BOTH):
        raise ValueError("The edge must be set to RISING, FALLING or BOTH")
    if channel in _events:
        raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
    _events[channel] = {"edge": edge, "callbacks": [callback] if callback else [], "detected": False}


def add_event_callback(channel, callback):
    if channel not in _events:
        raise RuntimeError("Add event detection using add_event_detect first before adding a callback")
    _events[channel]["callbacks"].append(callback)


def remove_event_detect(channel):
    _events.pop(channel, None)


def event_detected(channel):
    ev = _events.get(channel)
    if ev is None:
        return False
    hit, ev["detected"] = ev["detected"], False
    return hit


def _on_change(ch, level):
    ev = _events.get(ch)
    if ev is None:
        return
    level = 1 if level else 0
    if (ev["edge"] == RISING and level == 1) or (ev["edge"] == FALLING and level == 0) or ev["edge"] == BOTH:
        ev["detected"] = True
        for cb in list(ev["callbacks"]):
            cb(ch)


def wait_for_edge(channel, edge, bouncetime=None, timeout=None):
    raise RuntimeError("wait_for_edge blocks on real time; drive the virtual clock and use add_event_detect")


def cleanup(channel=None):
    global _mode
    if channel is None:
        _channels.clear()
        _events.clear()
        _mode = None
        return
    for ch in _each(channel):
        _channels.pop(ch, None)
        _events.pop(ch, None)
