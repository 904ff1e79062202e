"""Firmware under CPython, against the emulated board, in this process (fast unit tests).

The same shims the emulated device runs (emulator/mpy/: machine, esp32, time) are imported
by CPython; their `_sen.call` goes straight into a Board here instead of through Node.

    from sen.emulator.inprocess import Device
    from sen.emulator import board_signals as sig

    with Device("esp32-rfm95", fs_root=tmp_path / "flash") as dev:
        dev.boot()                        # power-on: PWRON_RESET
        import machine, esp32             # the shims, exactly what firmware gets
        machine.Pin(2, machine.Pin.OUT).on()
        end = dev.run("main")             # import firmware/main.py afresh (boot.py first if
                                          # present); returns the signal that ended it:
                                          # sig.DeepSleep / sig.HardReset / sig.PowerLoss,
                                          # or None when main.py returned
        dev.boot()                        # next boot: cause follows the last signal
        ends = dev.run_cycles(96)         # boot + run main 96 times (deep sleep -> wake ...)
        dev.board, dev.clock, dev.time    # the Board, its VirtualClock, the virtual `time`

How the imports work inside the `with` block:
- The working directory is fs_root (the device's flash root), so open("board.json") works.
- emulator/mpy/ and firmware/ are put first on sys.path, and a `_sen` module is installed,
  so `import machine`, `import esp32` and firmware modules import normally.
- `time` cannot be replaced in sys.modules (pytest and the stdlib use it), so an import
  hook hands the virtual time module to any `import time` / `from time import ...` made
  from a file under firmware/ or emulator/mpy/, and from code run via Device.exec().
  Other code keeps the real time module; tests reach the virtual one as `dev.time`.
  `gc` is handled the same way (collect() is real; mem_alloc() returns 0 under CPython).
- Each boot drops firmware and shim modules from sys.modules: like a fresh interpreter,
  module globals start over; only the board's RTC memory, NVS and files persist.

CPU time is not charged by default (cpu_scale=0): CPython's import machinery and the test
runner would be billed as ESP32 time, and runs stay bit-for-bit repeatable. Pass
cpu_scale=1.0 for a rough figure; the official CPU-active figures come from the real
emulator (MicroPython under Node), see board.py "CPU time".

Signals: the firmware never sees them. deepsleep(), reset(), a watchdog bite or a power cut
unwind the firmware's stack as `Reboot` (a BaseException, so `except Exception` in firmware
cannot swallow it, as on a real board where deepsleep never returns); Device.run returns
the signal and the next boot() uses its reset cause. Virtual time: Wait is served by
advancing the clock (timers fire in order); DeepSleep advances it until the timer or the
ext0/ext1 wake condition. Ctrl-C: dev.ctrl_c() makes the next shim call raise
KeyboardInterrupt.
"""
import builtins
import importlib
import importlib.util
import os
import sys
import time as _real_time
import types
from pathlib import Path

from sen.paths import FIRMWARE

from . import board_signals as sig
from .board import Board
from .clock import VirtualClock

MPY = Path(__file__).resolve().parent / "mpy"


class Reboot(BaseException):
    """The firmware's run ended by a board signal (deep sleep, reset, power cut)."""

    def __init__(self, signal):
        super().__init__(signal)
        self.signal = signal


class Stopped(BaseException):
    """Virtual time reached Device.stop_at_s."""


class _BuiltinTime:
    """What `_sen.builtin_time` is on the device: the interpreter's real ticks."""

    @staticmethod
    def ticks_us():
        return _real_time.perf_counter_ns() // 1000

    @staticmethod
    def ticks_diff(a, b):
        return a - b


class _Host:
    def __init__(self, dev):
        self._dev = dev
        self.name = dev.board.name

    def ctrl_c_pending(self):
        return self._dev._ctrl_c

    def power_cut(self, off_ms=0):
        self._dev._cut = int(off_ms)


def _gc_shim():
    import gc as _gc
    m = types.ModuleType("gc")
    m.collect = _gc.collect
    m.enable = _gc.enable
    m.disable = _gc.disable
    m.isenabled = _gc.isenabled
    m.mem_alloc = lambda: 0
    m.mem_free = lambda: 100000
    m.threshold = lambda *a: -1
    return m


class Device:
    def __init__(self, board="esp32-rfm95", world=None, clock=None, fs_root=None, *,
                 firmware=FIRMWARE, cpu_scale=0.0, stop_at_s=None, max_sleep_s=7 * 86400):
        if clock is None:
            clock = VirtualClock(world.start_epoch_s) if hasattr(world, "start_epoch_s") else VirtualClock()
        self.clock = clock
        self.board = board if isinstance(board, Board) else Board(board, world, self.clock, fs_root,
                                                                  cpu_scale=cpu_scale)
        self.clock = self.board.clock
        self.firmware = Path(firmware)
        self.stop_at_s = stop_at_s
        self.max_sleep_s = max_sleep_s
        self.time = None
        self._ctrl_c = False
        self._cut = None
        self._next_cause = sig.PWRON_RESET
        self._booted = False
        self._dead = None
        self._saved = None
        self.board.attach(_Host(self))

    # -------------------------------------------------------------- install / remove
    def __enter__(self):
        self._saved = (list(sys.path), builtins.__import__, sys.modules.get("_sen"), os.getcwd())
        if self.board.fs_root is not None:
            # the device's filesystem root is the working directory, as on the board
            self.board.fs_root.mkdir(parents=True, exist_ok=True)
            os.chdir(self.board.fs_root)
        sys.path[:0] = [str(MPY), str(self.firmware)]
        sen = types.ModuleType("_sen")
        sen.call = self._call
        sen.builtin_time = _BuiltinTime()
        sen.cpu_us = lambda: _real_time.process_time_ns() // 1000
        sys.modules["_sen"] = sen
        self._gc = _gc_shim()
        real_import = builtins.__import__
        roots = (str(MPY), str(self.firmware))

        def hook(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and name in ("time", "gc") and globals is not None:
                f = globals.get("__file__") or ""
                if f.startswith(roots) or globals.get("__sen_device__"):
                    if name == "gc":
                        return self._gc
                    if self.time is None:
                        self._load_time()
                    return self.time
            return real_import(name, globals, locals, fromlist, level)
        builtins.__import__ = hook
        self._purge()
        return self

    def __exit__(self, *exc):
        path, imp, sen, cwd = self._saved
        os.chdir(cwd)
        builtins.__import__ = imp
        sys.path[:] = path
        self._purge()
        if sen is None:
            sys.modules.pop("_sen", None)
        else:
            sys.modules["_sen"] = sen
        self.board.close()
        return False

    def _purge(self):
        roots = (str(MPY), str(self.firmware))
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) or ""
            if f.startswith(roots):
                del sys.modules[name]
        self.time = None

    def _load_time(self):
        spec = importlib.util.spec_from_file_location("_sen_vtime", MPY / "time.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self.time = mod

    # -------------------------------------------------------------- running firmware
    def boot(self, cause=None):
        """Start a fresh 'interpreter': on_boot(cause), shim and firmware modules reloaded."""
        cause = self._next_cause if cause is None else cause
        self._purge()
        self._cut = None
        self._dead = None
        self.board.on_boot(cause)
        self._booted = True
        self._next_cause = sig.SOFT_RESET
        self._load_time()
        return cause

    def run(self, entry="main", boot_py=True):
        """Import firmware `entry` as a fresh module; return the signal that ended the run
        (DeepSleep, HardReset, PowerLoss) or None if the module returned."""
        if not self._booted:
            self.boot()
        self._booted = False
        try:
            if boot_py and (self.firmware / "boot.py").exists():
                importlib.import_module("boot")
            importlib.import_module(entry)
        except Reboot as r:
            return r.signal
        return None

    def run_cycles(self, n, entry="main"):
        """boot + run `entry`, n times; returns the list of signals that ended each run."""
        out = []
        for _ in range(n):
            self.boot()
            s = self.run(entry)
            out.append(s)
            if s is None:
                break
        return out

    def exec(self, source, env=None):
        """Run source as firmware code (its `import time` gets the virtual clock)."""
        g = {"__name__": "__sen_exec__", "__sen_device__": True}
        g.update(env or {})
        try:
            exec(compile(source, "<device>", "exec"), g)
        except Reboot as r:
            return r.signal
        return g

    def ctrl_c(self):
        self._ctrl_c = True

    # -------------------------------------------------------------- _sen.call
    def _call(self, op, **kw):
        if self._dead is not None:
            # the chip is already asleep/resetting: code in `finally:` blocks gets nowhere
            raise Reboot(self._dead)
        try:
            self._check_interrupts()
        except Reboot as r:
            self._dead = r.signal
            raise
        try:
            return self.board.call(op, kw)
        except sig.Wait as w:
            return self._wait(w)
        except sig.Interrupt:
            raise KeyboardInterrupt from None
        except sig.DeepSleep as s:
            self._dead = s
            self._deep_sleep(s)
            self._next_cause = sig.DEEPSLEEP_RESET
            raise Reboot(s) from None
        except sig.HardReset as s:
            self._dead = s
            self._next_cause = s.cause
            raise Reboot(s) from None
        except sig.PowerLoss as s:
            self._dead = s
            self._power_loss(s.off_ms)
            raise Reboot(s) from None
        except Reboot as r:
            self._dead = r.signal
            raise

    def _check_interrupts(self):
        if self._cut is not None:
            off = self._cut
            self._power_loss(off)
            raise Reboot(sig.PowerLoss(off))
        if self._ctrl_c:
            self._ctrl_c = False
            raise KeyboardInterrupt
        if self.stop_at_s is not None and self.clock.now_s() >= self.stop_at_s:
            raise Stopped()

    def _power_loss(self, off_ms):
        self._cut = None
        self.board._power_off()
        self.clock.advance(off_ms * 1000)
        self._next_cause = sig.PWRON_RESET

    def _step(self, until_us):
        """Advance the clock to the next timer or until_us, whichever is first."""
        timers = self.clock._timers   # VirtualClock keeps a heap of (due_us, seq, cb)
        nxt = timers[0][0] if timers else until_us
        self.clock.advance_to(min(nxt, until_us) if nxt > self.clock.now_us() else self.clock.now_us())

    def _wait(self, w):
        while True:
            if self.clock.now_us() >= w.until_us:
                self._step(w.until_us)   # fire timers due exactly now
                if w.wake is not None:
                    v = w.wake()
                    if v is not None:
                        return v
                return w.result
            self._step(w.until_us)
            if self._cut is not None:
                self._check_interrupts()
            if w.wake is not None:
                v = w.wake()
                if v is not None:
                    return v
            if self.stop_at_s is not None and self.clock.now_s() >= self.stop_at_s:
                raise Stopped()

    def _deep_sleep(self, s):
        start = self.clock.now_us()
        until = None if s.ms is None else start + s.ms * 1000
        limit = start + int(self.max_sleep_s * 1e6)
        while True:
            if self._cut is not None:
                self._check_interrupts()
            if until is not None and self.clock.now_us() >= until:
                return
            if s.wake is not None and self.clock.now_us() > start and s.wake():
                return
            if s.wake is not None and self.clock.now_us() == start and s.wake():
                return
            if self.clock.now_us() >= limit:
                raise RuntimeError("deep sleep with no timer and no wake source met within %s s" % self.max_sleep_s)
            if self.stop_at_s is not None and self.clock.now_s() >= self.stop_at_s:
                raise Stopped()
            self._step(min(x for x in (until, limit) if x is not None))
