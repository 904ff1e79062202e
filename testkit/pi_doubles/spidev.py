"""Test double of the `spidev` module (py-spidev): SpiDev objects whose transfers reach the
SX1276 model attached to (bus, device) with sen.testkit.pi_doubles.attach_radio().

The target is looked up at every transfer, so an object opened before a test attaches a
model (pyLoRa opens its SpiDev at import time) still reaches the model attached later.
"""
from .sync import lock

_devices = {}  # (bus, device) -> SPIDevice model


def _attach(bus, device, model):
    _devices[(bus, device)] = model


def _detach(bus, device):
    _devices.pop((bus, device), None)


class SpiDev:
    def __init__(self, bus=None, device=None):
        self.max_speed_hz = 125000000
        self.mode = 0
        self.bits_per_word = 8
        self.cshigh = False
        self.lsbfirst = False
        self.threewire = False
        self.loop = False
        self.no_cs = False
        self._bd = None
        if bus is not None:
            self.open(bus, device)

    def open(self, bus, device):
        # A real Pi has /dev/spidev0.0 and 0.1 whenever SPI is enabled, attached or not.
        if bus not in (0, 1) or device not in (0, 1, 2):
            raise FileNotFoundError(2, "No such file or directory")
        self._bd = (bus, device)

    def close(self):
        self._bd = None

    def _xfer(self, values):
        if self._bd is None:
            raise OSError(9, "Bad file descriptor")
        data = bytes(int(v) & 0xFF for v in values)
        model = _devices.get(self._bd)
        if model is None:
            return [0] * len(data)  # nothing on the bus: MISO stays low
        with lock:
            return list(model.transfer(data))

    def xfer(self, values, speed_hz=0, delay_usecs=0, bits_per_word=0):
        return self._xfer(values)

    def xfer2(self, values, speed_hz=0, delay_usecs=0, bits_per_word=0):
        return self._xfer(values)

    def xfer3(self, values, speed_hz=0, delay_usecs=0, bits_per_word=0):
        return tuple(self._xfer(values))

    def readbytes(self, n):
        return self._xfer([0] * n)

    def writebytes(self, values):
        self._xfer(values)

    def writebytes2(self, values):
        self._xfer(values)

    def fileno(self):
        return -1 if self._bd is None else 3
