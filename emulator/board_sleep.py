"""Board watchdog and sleep: blocking waits, lightsleep, deepsleep and their wake
sources. Mixed into board.Board."""
from . import board_signals as sig
from .board_def import RTC_GPIOS
from .board_pins import OPEN_DRAIN, OUT, _Bad

WAKE_SLEEP, WAKE_DEEPSLEEP = 2, 4
EXT0_WAKE, EXT1_WAKE, TIMER_WAKE, GPIO_WAKE = 2, 3, 4, 7


class SleepMixin:
    # ------------------------------------------------------------------ watchdog
    def _check_wdt(self):
        if self._wdt_deadline is not None and self.vnow() >= self._wdt_deadline:
            self._wdt_deadline = None
            self._wdt_timeout_us = None
            raise sig.HardReset(sig.WDT_RESET)

    def _arm_wdt_timer(self):
        # a clock step exactly at the deadline, so a sleeping firmware is reset on time
        self._wdt_gen += 1
        gen = self._wdt_gen
        self.clock.call_at(self._wdt_deadline, lambda: gen)

    def _op_wdt_init(self, a):
        ms = int(a["timeout_ms"])
        if ms < 1:
            raise _Bad("WDT timeout too short")
        self._wdt_timeout_us = ms * 1000
        self._wdt_deadline = self.vnow() + self._wdt_timeout_us
        self._arm_wdt_timer()

    def _op_wdt_feed(self, a):
        if self._wdt_timeout_us is not None:
            self._wdt_deadline = self.vnow() + self._wdt_timeout_us
            self._arm_wdt_timer()

    # ------------------------------------------------------------------ sleep
    def _block(self, until, done, tick_us=None):
        """Block the firmware until `until` or until done() / a pin IRQ / the watchdog; the
        shim then asks again (reply {"a": until})."""
        until = int(until)
        if tick_us:
            self._tick(tick_us, until)

        def wake():
            self._poll_edges()
            if self._pending:
                return {"a": until, "i": self._take_pending()}
            if done is not None and done():
                return {"a": until}
            if self._wdt_deadline is not None and self.clock.now_us() >= self._wdt_deadline:
                return {"a": until}
            if tick_us:
                self._tick(tick_us, until)
            return None
        return self._raise_wait(until, {"a": until}, wake)

    def _raise_wait(self, until, result, wake):
        raise sig.Wait(until, result=result, wake=wake)

    def _tick(self, tick_us, until):
        t = min(self.clock.now_us() + tick_us, until)
        self.clock.call_at(t, lambda: None)

    def _op_sleep(self, a):
        self._note_heap(a)
        until = a.get("until")
        if until is None:
            until = self.vnow() + max(0, int(a.get("us", 0)))
        if self._pending:
            return {"a": until, "i": self._take_pending()}
        if self.clock.now_us() >= until:
            self._busy_until = max(self._busy_until, until)
            return None
        return self._block(until, None)

    def _wake_now(self):
        """The ext0/ext1 level condition, if configured and met: the wake reason, else 0."""
        if self._ext0 is not None:
            pin, lvl = self._ext0
            if self.level(pin) == lvl:
                return EXT0_WAKE
        if self._ext1 is not None:
            pins, lvl = self._ext1
            levels = [self.level(p) for p in pins]
            if pins and ((lvl == 1 and any(levels)) or (lvl == 0 and not any(levels))):
                return EXT1_WAKE
        return 0

    def _op_lightsleep(self, a):
        self._note_heap(a)
        ms = int(a.get("ms") or 0)
        start = self.vnow()
        until = start + ms * 1000 if ms > 0 else start + 10 ** 15
        self._light = (start, until)
        self._sleep_state_at(start, "light_sleep")

        def wake():
            # light sleep ends on ext0/ext1, or on an edge at a pin whose IRQ has wake=SLEEP
            self._poll_edges()
            reason = self._wake_now()
            if not reason:
                for p in self._pending:
                    st = self._pins.get(p)
                    if st and st["wake"] and (st["wake"] & WAKE_SLEEP):
                        reason = GPIO_WAKE
                        break
            if reason and self.clock.now_us() >= start:
                self.wake_reason = reason
                return {"i": self._take_pending()} if self._pending else {"v": None}
            return None
        self.wake_reason = TIMER_WAKE
        raise sig.Wait(until, result=None, wake=wake)

    def _sleep_state_at(self, t, key):
        if t <= self.clock.now_us():
            self.meter.set("mcu", key, self.clock.now_us())
        else:
            self.clock.call_at(t, lambda: self.meter.set("mcu", key, t) if self._powered else None)

    def _end_lightsleep(self):
        start, until = self._light
        self._light = None
        now = self.clock.now_us()
        self.meter.set("mcu", self._active_key(), now)
        self._busy_until = max(self._busy_until, now)
        if self._wdt_deadline is not None:
            # the task watchdog's timer is clock-gated in light sleep
            self._wdt_deadline += max(0, now - max(start, 0))
            self._arm_wdt_timer()

    def _op_wake_ext0(self, a):
        pin = a.get("pin")
        if pin is None:
            self._ext0 = None
            return
        if self._check_pin(pin) not in RTC_GPIOS:
            raise _Bad("invalid pin for wake")
        self._ext0 = (pin, int(a["level"]))

    def _op_wake_ext1(self, a):
        pins = list(a.get("pins") or [])
        for p in pins:
            if self._check_pin(p) not in RTC_GPIOS:
                raise _Bad("invalid pin for wake")
        self._ext1 = (pins, int(a["level"])) if pins else None

    def _op_deepsleep(self, a):
        self._note_heap(a)
        ms = int(a.get("ms") or 0)
        start = self.vnow()
        lag_ms = (start - self.clock.now_us() + 999) // 1000
        self._sleep_state_at(start, "deep_sleep")
        timer_ms = lag_ms + ms if ms > 0 else None   # None: only a wake source ends it
        self._wake_reason_next = TIMER_WAKE
        has_ext = self._ext0 is not None or self._ext1 is not None

        def wake():
            if self.clock.now_us() < start:
                return None
            reason = self._wake_now()
            if reason:
                self._wake_reason_next = reason
                return True
            return None
        if has_ext and self._wake_now():
            # ext0/ext1 are level-triggered: a condition already met wakes at once
            self._wake_reason_next = self._wake_now()
            timer_ms = lag_ms
        self._deep_sleeping()
        raise sig.DeepSleep(timer_ms, wake=wake if has_ext else None)

    def _deep_sleeping(self):
        # outputs without hold are released in deep sleep; what the parts see follows
        self._powered_outputs_release = True
        for pin, st in self._pins.items():
            if st["mode"] in (OUT, OPEN_DRAIN) and not st["hold"]:
                for dev in self._listeners.get(pin, ()):
                    if hasattr(dev, "released"):
                        dev.released()
        sp = self.defn["sensor_power"]
        st = self._pins.get(sp["pin"])
        if not (st and st["hold"]):
            self.meter.set("sensors", None, self.clock.now_us())

