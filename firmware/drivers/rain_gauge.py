# Tipping-bucket rain gauge on one GPIO (reed switch to GND, pull-up): debounced IRQ
# counting while awake, ext0 wake on a tip during deep sleep. Counts live in RTC
# memory (state.py) so they survive deep sleep; the caller persists them.
import time
from machine import Pin

try:
    import esp32
except ImportError:
    esp32 = None

DEBOUNCE_MS = 300  # reed-switch bounce and the magnet's pass; real tips are >2 s apart


class RainGauge:
    def __init__(self, pin, active_low=True, debounce_ms=DEBOUNCE_MS, pull="up"):
        if not isinstance(pin, Pin):
            # "none": an input-only pad with the gauge's own external pull resistor.
            p = Pin.PULL_UP if pull == "up" else (Pin.PULL_DOWN if pull == "down" else -1)
            pin = Pin(pin, Pin.IN, p)
        self.pin = pin
        self.active_low = active_low
        self.debounce_ms = debounce_ms
        self.tips = 0  # counted while awake, not yet added to RTC state
        self._last = None
        self.tip_ticks = []  # ticks_ms of awake tips, for the 1-minute intensity
        self._irq = None

    def active(self):
        v = self.pin.value()
        return v == 0 if self.active_low else v == 1

    def mark(self):
        """The switch just closed (e.g. the tip that woke us): ignore its bounces."""
        self._last = time.ticks_ms()

    def _on_edge(self, pin):
        # Count a closing edge only if the last counted one is debounce_ms old: the
        # bounces of the closing and of the opening switch (the magnet passes in ~100 ms)
        # fall inside that time, while real tips are seconds apart even at 300 mm/h.
        now = time.ticks_ms()
        if self._last is not None and time.ticks_diff(now, self._last) < self.debounce_ms:
            return
        self._last = now
        self.tips += 1
        if len(self.tip_ticks) < 64:
            self.tip_ticks.append(now)

    def start(self):
        trig = Pin.IRQ_FALLING if self.active_low else Pin.IRQ_RISING
        self._irq = self.pin.irq(trigger=trig, handler=self._on_edge)

    def stop(self):
        self.pin.irq(handler=None)

    def take(self):
        """Tips counted since the last take()."""
        n = self.tips
        self.tips = 0
        return n

    def wait_released(self, max_ms=2000, step_ms=20, sleep=None):
        """Wait until the switch opens, so ext0 does not wake the chip again at once.
        Returns True when released."""
        if sleep is None:
            sleep = time.sleep_ms
        waited = 0
        while self.active():
            if waited >= max_ms:
                return False
            sleep(step_ms)
            waited += step_ms
        return True

    def arm_wake(self):
        """Wake from deep sleep on the next tip (ext0, level of a closed switch). Not armed
        while the switch is held closed (stuck bucket): ext0 is level-triggered and would
        wake the chip again at once, all night. Returns True when armed."""
        if esp32 is None or self.active():
            return False
        level = esp32.WAKEUP_ALL_LOW if self.active_low else esp32.WAKEUP_ANY_HIGH
        esp32.wake_on_ext0(pin=self.pin, level=level)
        return True
