"""A busio-like I2C object that routes to chip models and spends bus time on the virtual clock."""
from sen.emulator.devices import ENODEV


class VirtualI2C:
    def __init__(self, clock, devices, freq_hz=100_000):
        self.clock = clock
        self.devices = {d.address: d for d in devices}
        self.bit_us = 1e6 / freq_hz
        self._locked = False

    def try_lock(self):
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self):
        self._locked = False

    def scan(self):
        return sorted(self.devices)

    def _dev(self, address):
        dev = self.devices.get(address)
        if dev is None:
            raise OSError(ENODEV, "no device at 0x%02x" % address)
        return dev

    def _spend(self, nbytes):
        self.clock.advance(int((nbytes + 1) * 9 * self.bit_us))

    def writeto(self, address, buffer, *, start=0, end=None):
        data = bytes(buffer[start:end])
        self._spend(len(data))
        self._dev(address).write(data)

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        end = len(buffer) if end is None else end
        self._spend(end - start)
        buffer[start:end] = self._dev(address).read(end - start)

    def writeto_then_readfrom(self, address, out_buffer, in_buffer, *, out_start=0, out_end=None,
                              in_start=0, in_end=None):
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)
