"""Test doubles of `spidev` and `RPi.GPIO`, backed by emulated SX1276 chips.

They let the gateway's real pyLoRa package (`SX127x`, unmodified) drive an SX1276 model on
the radio medium:

    from sen.testkit import pi_doubles
    pi_doubles.install()                         # before `import SX127x`
    pi_doubles.attach_radio(sx1276_model)        # pyLoRa's BOARD wiring by default
    from SX127x.LoRa import LoRa                 # opens spidev 0.0 at import

install() puts modules named `spidev`, `RPi` and `RPi.GPIO` into sys.modules (only where no
real module was already imported; pass force=True to replace). attach_radio() wires
SPI bus/chip-select to the model, its DIO0..3 to GPIO inputs (edges fire add_event_detect
callbacks inside the clock step that raised them) and a GPIO output to its NRESET.

Threaded callers (pyLoRa's GPIO callbacks, a gateway's watchdog thread) run the clock with
RealtimePump(clock, speed).start(): it advances virtual time along wall time on its own
thread, holding `lock`; the doubles take the same lock for every SPI transfer and GPIO write.
Code that drives the clock or the chip models itself from another thread must hold `lock` too.
"""
import sys
import types

from . import gpio as GPIO
from . import spidev
from .sync import RealtimePump, lock  # noqa: F401  (public API)

PYLORA_BOARD_PINS = {"dio0": 4, "dio1": 17, "dio2": 18, "dio3": 27, "reset": 22}


def install(force=False):
    """Make `import spidev` and `import RPi.GPIO` return these doubles."""
    if force or "spidev" not in sys.modules:
        sys.modules["spidev"] = spidev
    if force or "RPi.GPIO" not in sys.modules:
        pkg = types.ModuleType("RPi")
        pkg.__path__ = []
        pkg.GPIO = GPIO
        sys.modules["RPi"] = pkg
        sys.modules["RPi.GPIO"] = GPIO
    return sys.modules["spidev"], sys.modules["RPi.GPIO"]


def installed():
    return sys.modules.get("spidev") is spidev and sys.modules.get("RPi.GPIO") is GPIO


def attach_radio(model, bus=0, cs=0, pins=None):
    """Wire an SX1276 model as a Pi would see it (BCM numbers, pyLoRa BOARD wiring by default)."""
    pins = dict(PYLORA_BOARD_PINS, **(pins or {}))
    spidev._attach(bus, cs, model)
    for i in range(4):
        ch = pins.get("dio%d" % i)
        if ch is not None:
            GPIO._attach_source(ch, model.dio[i])
    if pins.get("reset") is not None:
        GPIO._attach_sink(pins["reset"], model.nreset)


def detach_all():
    """Forget every attachment and GPIO state (between tests)."""
    spidev._devices.clear()
    GPIO._reset_all()
