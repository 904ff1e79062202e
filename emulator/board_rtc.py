"""Board RTC, NVS and the small machine/esp32 queries (ticks, freq, reset cause, heap
marks). Mixed into board.Board."""
from datetime import datetime, timedelta, timezone

from . import board_signals as sig
from .board_pins import _Bad

EPOCH_2000_UNIX = 946684800
# The SPI flash chip's own current while it programs or erases (W25Q32JV datasheet: ICC page
# program / sector erase 20 mA typical), used when a board table has no flash_write key.
FLASH_WRITE_MA = 20.0
RTC_MEM_MAX = 2048


class RtcNvsMixin:
    def _rtc_us(self):
        return self.vnow() + self._rtc_offset_us

    def _op_epoch_us(self, a):
        return self._rtc_us()

    def _op_rtc_datetime(self, a):
        base = datetime(2000, 1, 1, tzinfo=timezone.utc)
        dt = a.get("dt")
        if dt is None:
            t = base + timedelta(microseconds=self._rtc_us())
            return [t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, t.microsecond]
        try:
            y, mo, d = dt[0], dt[1], dt[2]
            hh, mm, ss = (list(dt[4:7]) + [0, 0, 0])[:3]
            us = dt[7] if len(dt) > 7 else 0
            target = datetime(y, mo, d, hh, mm, ss, us, tzinfo=timezone.utc)
        except (TypeError, ValueError, IndexError):
            raise _Bad("invalid datetime tuple") from None
        self._rtc_offset_us = int((target - base) / timedelta(microseconds=1)) - self.vnow()

    def _op_rtc_memory(self, a):
        data = a.get("data")
        if data is None:
            return bytes(self.rtc_mem)
        if len(data) > RTC_MEM_MAX:
            raise _Bad("buffer too long")
        self.rtc_mem = bytes(data)

    def _op_nvs_open(self, a):
        self.nvs.open(a["ns"])

    def _op_nvs_set(self, a):
        try:
            self.nvs.set(a["ns"], a["key"], a["kind"], a["value"])
        except OverflowError as e:
            raise _Bad(str(e)) from None

    def _op_nvs_get(self, a):
        return self.nvs.get(a["ns"], a["key"], a["kind"], a.get("size"))

    def _op_nvs_erase(self, a):
        self.nvs.erase(a["ns"], a["key"])

    def _op_nvs_commit(self, a):
        us = self.nvs.commit(a["ns"])
        if us > 0:
            # the CPU waits on the flash at its active current, and the flash chip draws its own
            now = self.vnow()
            self.meter.advance(self.clock.now_us())
            self.meter.add("flash_write", us, float(self.meter.table.get("flash_write", FLASH_WRITE_MA)))
            self._busy_until = now + int(us)

    def _op_ticks_us(self, a):
        return self.vnow() - self._boot_us

    def _op_ticks_cpu(self, a):
        return (self.vnow() - self._boot_us) * self._freq_mhz

    def _op_unique_id(self, a):
        return self._uid

    def _op_freq(self, a):
        hz = a.get("hz")
        if hz is None:
            return self._freq_mhz * 1000000
        self._freq_mhz = int(hz) // 1000000
        self.meter.set("mcu", self._active_key(), self.clock.now_us())

    def _op_reset_cause(self, a):
        return self.reset_cause

    def _op_wake_reason(self, a):
        return self.wake_reason

    def _op_reset(self, a):
        raise sig.HardReset(sig.HARD_RESET)

    def _op_gpio_hold(self, a):
        pass

    def _op_cpu_ref(self, a):
        """The shim says what `cpu` counts: work units, or host µs, with this host's µs per
        reference loop iteration (first figure kept)."""
        self.cpu_unit = a.get("unit", "us")
        if self.cpu_unit == "work":
            return False
        if a.get("us") is None:
            return self.host_loop_us is None
        if self.host_loop_us is None and a["us"] > 0:
            self.host_loop_us = float(a["us"])

    def _op_heap_base(self, a):
        if self._cycle_info is not None:
            self._cycle_info["heap_base"] = a.get("heap")

    def _note_heap(self, a):
        h = a.get("heap")
        if h is not None and h >= 0 and self._cycle_info is not None:
            p = self._cycle_info["peak_heap"]
            self._cycle_info["peak_heap"] = h if p is None else max(p, h)

