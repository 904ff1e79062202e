# Minimal `machine` for the heap measurement (bench/node_bench.py): the firmware's data
# path runs against these; they allocate nearly nothing, so the figure is the firmware's.
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, *a, **k):
        self.v = 1

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v

    def irq(self, *a, **k):
        pass


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, **k):
        self.i = 0

    def atten(self, a):
        pass

    def read_uv(self):
        self.i = (self.i + 7) % 23
        return 1500000 + self.i * 250


class RTC:
    mem = b""

    def memory(self, d=None):
        if d is None:
            return RTC.mem
        RTC.mem = bytes(d)


def lightsleep(ms=0):
    pass


DEEPSLEEP_RESET = 4
