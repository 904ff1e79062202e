# Analog probes (pH amplifier, conductivity, turbidity, level transducer, water
# temperature) on the ESP32 ADC, oversampled and reported in millivolts.
import time

try:
    from machine import ADC, Pin
except ImportError:  # CPython without the shim: only the pure helpers are usable
    ADC = None
    Pin = None

FULL_SCALE_MV = 3300  # 11 dB attenuation reaches ~3.1-3.3 V on the ESP32


class AnalogProbe:
    def __init__(self, pin, oversample=64):
        self.adc = ADC(Pin(pin) if isinstance(pin, int) else pin)
        try:
            self.adc.atten(ADC.ATTN_11DB)
        except AttributeError:
            pass
        self.oversample = oversample
        self._buf = [0] * oversample
        # read_uv() applies the chip's eFuse calibration; older ports only have read_u16().
        self._uv = hasattr(self.adc, "read_uv")

    def read_mv(self):
        """Interquartile mean of `oversample` conversions, in mV (float). Averaging keeps the
        sub-LSB resolution the noise dithers in; dropping the outer quarters keeps impulse
        interference (pumps, relays, a stray spike) out of it. OSError passes up."""
        n = self.oversample
        buf = self._buf
        r = self.adc.read_uv if self._uv else self.adc.read_u16
        for i in range(n):
            buf[i] = r()
        buf.sort()
        q = n >> 2
        acc = 0
        for i in range(q, n - q):
            acc += buf[i]
        m = acc / (n - 2 * q)
        if self._uv:
            return m / 1000
        return m * FULL_SCALE_MV / 65535

    def read_counts(self):
        n = self.oversample
        acc = 0
        r = self.adc.read_u16
        for _ in range(n):
            acc += r()
        return acc // n


def linear(mv, a, b):
    """Probe transfer: value = a + b * mV (coefficients from node.json / calibration)."""
    return a + b * mv


class ProbePower:
    """Switched supply for the probes (board pin), so they draw nothing between cycles."""

    def __init__(self, pin=None, settle_ms=100, active=1):
        self.pin = None
        self.active = active
        if pin is not None:
            self.pin = Pin(pin, Pin.OUT, value=1 - active)
        self.settle_ms = settle_ms

    def on(self, lightsleep=None):
        if self.pin is None:
            return
        self.pin.value(self.active)
        if lightsleep is not None:
            lightsleep(self.settle_ms)
        else:
            time.sleep_ms(self.settle_ms)

    def off(self):
        if self.pin is not None:
            self.pin.value(1 - self.active)
