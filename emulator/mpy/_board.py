# The one door from the MicroPython shims (machine, esp32, time) to the board host.
# Runs on the emulated device (MicroPython) and under CPython (sen.emulator.inprocess).
#
# Every shim call is _sen.call(op, **kw). Besides its own arguments each call carries
#   cpu  = the interpreter's work since the previous call returned, in counted work units
#          (host µs under CPython; the host scales it to ESP32 time, see
#          emulator/board.py "CPU time"), and
# the host may answer with a plain value or with a dict (plain values are never dicts):
#   {"v": value, "i": [pins]}   value, plus pin IRQs to run now (handler(pin))
#   {"a": until, ...}           a blocking call ended early or timed out: run the IRQs,
#                                then ask again with until=<same deadline>
#   {"x": message}              raise ValueError(message), as the ESP32 port does
import _sen

import gc as _gc
import sys as _sys

# Heap figures only mean something in MicroPython (under CPython there is nothing to count)
_mem_alloc = _gc.mem_alloc if _sys.implementation.name == "micropython" else None

_bt = _sen.builtin_time
# The firmware's CPU work. In the emulator: counted work units of the interpreter
# (_sen.work_units; emulator/work_counter.py), the same on every host and under any load.
# Under CPython (sen.emulator.inprocess): the process CPU clock, a rough figure for tests.
try:
    _cpu = _sen.work_units
    UNIT = "work"
except AttributeError:
    _cpu = getattr(_sen, "cpu_us", None) or _bt.ticks_us
    UNIT = "us"
_last = _cpu()
_paused = None
adc_open = None  # the list machine.ADC serves its latest burst from, and that burst's size:
adc_got = 0      # the next call charges the conversions served (op argument "adc") and empties it
irqs = {}        # pin id -> (Pin, handler)
_irq_off = 0     # machine.disable_irq() depth
_deferred = []   # pin ids whose IRQs arrived while disabled


def heap():
    # Live heap at a sleep point. Collecting first makes the figure what the firmware holds,
    # not how much garbage happens to be uncollected; the collection's time is kept out of
    # the CPU charge.
    global _last
    if _mem_alloc is None:
        return -1
    t = _cpu()
    _gc.collect()
    h = _mem_alloc()
    _last += _cpu() - t
    return h


def pause():
    # The runner's own Python-level work (e.g. a VFS written in Python, which is C on a real
    # board) can be kept out of the firmware's CPU charge: pause() ... resume().
    global _paused
    if _paused is None:
        _paused = _cpu()


def resume():
    global _paused, _last
    if _paused is not None:
        _last += _cpu() - _paused
        _paused = None


def mark_baseline():
    """The runner calls this just before boot.py: the live heap now (this runtime and the
    shims, which are C and cost no heap on a real ESP32) is the baseline the report
    subtracts from the firmware's peak."""
    global _last
    if _mem_alloc is None:
        return
    import machine, esp32  # noqa: F401  (their code belongs to the baseline)
    _gc.collect()
    base = _mem_alloc()
    _last = _cpu()
    call("heap_base", heap=base)


def _run_irqs(pins):
    for p in pins:
        if _irq_off:
            _deferred.append(p)
            continue
        h = irqs.get(p)
        if h is not None and h[1] is not None:
            h[1](h[0])


def run_deferred():
    global _deferred
    pend = _deferred
    _deferred = []
    _run_irqs(pend)


def call(op, **kw):
    global _last, adc_open
    kw["cpu"] = _cpu() - _last
    if adc_open is not None:
        kw["adc"] = adc_got - len(adc_open)
        adc_open.clear()  # what the pin sees may change with this call: convert afresh after it
        adc_open = None
    try:
        r = _sen.call(op, **kw)
        _last = _cpu()
        while type(r) is dict:
            if "x" in r:
                raise ValueError(r["x"])
            pend = r.get("i")
            if pend:
                _run_irqs(pend)
            again = r.get("a")
            if again is None:
                r = r.get("v")
                break
            kw["until"] = again
            kw["cpu"] = _cpu() - _last
            r = _sen.call(op, **kw)
            _last = _cpu()
    finally:
        _last = _cpu()
    return r


def pin_id(p):
    # a Pin, a GPIO number or None; anything else goes to the host, which refuses it
    return getattr(p, "_id", p)


def _calibrate():
    # Tell the board what `cpu` counts; a host clock also needs this host's speed, measured
    # once per board (see board.py "CPU time").
    global _last
    if UNIT == "work":
        call("cpu_ref", unit="work")
        return
    if not call("cpu_ref"):
        return
    best = None
    for _ in range(3):
        t = _cpu()
        x = 0
        for i in range(5000):
            x += i
        dt = _cpu() - t
        if best is None or dt < best:
            best = dt
    _last = _cpu()
    call("cpu_ref", us=best / 5000)


def _preload():
    # machine and esp32 are C on a real ESP32: load them now so compiling their source is
    # not billed to the firmware as CPU time.
    global _last
    import machine, esp32  # noqa: F401
    _last = _cpu()


_calibrate()
_preload()
