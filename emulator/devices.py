"""What a chip model offers the emulated board's buses and pins.

The board (emulator/board.py) wires chip models to the `machine` shim's I2C, SPI, UART,
ADC and Pin calls. Models follow their datasheets' register maps and answer from the
world's truth at the virtual clock's current time.
"""


class BusFault(OSError):
    """A bus transaction that a real ESP32 would see fail (e.g. I2C NACK -> ETIMEDOUT/ENODEV)."""

    def __init__(self, errno_: int, what: str):
        super().__init__(errno_, what)


ENODEV = 19
ETIMEDOUT = 110
EIO = 5


class I2CDevice:
    """An I2C target. Register-pointer semantics as in the datasheets:
    write(b"\\xRR") sets the pointer; write(b"\\xRR\\xVV\\xRR\\xVV…") writes registers
    (BME280 style: register/value pairs); read(n) returns n bytes from the pointer,
    auto-incrementing. Raise BusFault(ENODEV, …) when detached or NACKing."""

    address: int = 0

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, n: int) -> bytes:
        raise NotImplementedError


class SPIDevice:
    """An SPI target: one transfer() is one chip-select-low transaction, full duplex."""

    def transfer(self, data: bytes) -> bytes:
        raise NotImplementedError

    def reset(self) -> None:
        """The chip's RESET pin was pulsed."""


class UARTDevice:
    """A UART peer. write() is what the ESP32 sends; read_available() drains what the
    device has sent so far (up to the clock's now)."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read_available(self) -> bytes:
        raise NotImplementedError


class PinListener:
    """Something attached to a GPIO: it may drive the pin (output from the device) and
    may watch what the ESP32 drives (e.g. PMS5003 SET, SX127x RESET)."""

    def level(self) -> int | None:
        """The level the device drives now, or None if it does not drive this pin."""
        return None

    def driven(self, level: int) -> None:
        """The ESP32 drove the pin to `level`."""


class AnalogSource:
    """A voltage at an ADC pin, in volts, at the clock's now (before attenuation clipping)."""

    def volts(self) -> float:
        raise NotImplementedError
