"""Storage doubles with the ESP32 semantics the counter depends on, plus power cuts.

NVS: writes are visible at once but only durable after commit() (esp32.NVS docs: changes
are lost without commit). RTC memory: survives deep sleep and resets, lost at power-off.
Every durable-state operation is a possible power-cut point: `Power.tick()` raises PowerCut
when the armed operation number is reached.
"""


class PowerCut(Exception):
    pass


class Power:
    def __init__(self):
        self.ops = 0
        self.cut_at = None

    def tick(self):
        self.ops += 1
        if self.cut_at is not None and self.ops >= self.cut_at:
            self.cut_at = None
            raise PowerCut()


class NVS:
    def __init__(self, power):
        self.power = power
        self.durable = {}
        self.pending = {}

    def set_blob(self, key, value):
        self.power.tick()
        self.pending[key] = bytes(value)

    def get_blob(self, key, buf):
        v = self.pending.get(key, self.durable.get(key))
        if v is None:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        buf[:len(v)] = v
        return len(v)

    def commit(self):
        self.power.tick()
        self.durable.update(self.pending)
        self.pending.clear()

    def power_loss(self):
        self.pending.clear()


class RTC:
    def __init__(self, power=None):
        self.power = power
        self.mem = b""

    def memory(self, data=None):
        if data is None:
            return self.mem
        if self.power is not None:
            self.power.tick()
        self.mem = bytes(data)

    def power_loss(self):
        self.mem = b""
