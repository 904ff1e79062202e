# The node's life between two deep sleeps: boot decisions, maintenance escape, safe mode,
# watchdog, the cycle, and the sleep. main.py calls run().
#
# Maintenance escape (so mpremote can always get in):
#   1. After any reset that is not a deep-sleep wake (power-on, reset button, mpremote's
#      DTR/RTS reset, watchdog, crash), a boot window of BOOT_WINDOW_S seconds: Ctrl-C at
#      the serial console (mpremote sends it first) stops the cycle and leaves the REPL.
#   2. Ctrl-C while boot.py runs, at any wake, does the same.
#   3. The board's maintenance pin (board.json [maintenance]) at its active level at boot,
#      or a file named "maint" on the flash, stops the cycle.
#   In maintenance the watchdog has not been started, so the REPL stays up.
import time
import machine
import state as st
from nap import lightsleep

BOOT_WINDOW_S = 3
WDT_MS = 30000
CRASH_LIMIT = 3  # consecutive crashed cycles before safe mode
SAFE_SLEEP_S = 3600
SAFE_RETRY_EVERY = 6  # in safe mode, try a full cycle every 6th wake
FW_VERSION = "sen-fw 1.0"

try:
    import esp32
except ImportError:
    esp32 = None


def log(msg):
    print(msg)


def boot_window(ms):
    """Sleep through the boot window in short slices: Ctrl-C raises KeyboardInterrupt at
    any of them (main.py turns it into maintenance)."""
    t0 = time.ticks_ms()
    while True:
        left = ms - time.ticks_diff(time.ticks_ms(), t0)
        if left <= 0:
            return
        time.sleep_ms(min(left, 100))


def maintenance_requested(board, deep_wake):
    import config
    import bootflag
    if bootflag.interrupted:
        return "Ctrl-C at boot"
    pin_no = config.board_get(board, "maintenance", "pin", None)
    if pin_no is not None:
        try:
            pull = config.board_get(board, "maintenance", "pull", "up")
            pull = machine.Pin.PULL_UP if pull == "up" else (machine.Pin.PULL_DOWN if pull == "down" else -1)
            p = machine.Pin(pin_no, machine.Pin.IN, pull)
            if p.value() == config.board_get(board, "maintenance", "active", 0):
                return "strap pin %d active" % pin_no
        except Exception:
            pass
    try:
        import os
        os.stat("maint")
        return "file 'maint' present"
    except OSError:
        pass
    if deep_wake:
        return None
    log("[sen] boot window %ds: Ctrl-C = maintenance" % BOOT_WINDOW_S)
    boot_window(BOOT_WINDOW_S * 1000)
    return None


def nvs():
    if esp32 is not None:
        return esp32.NVS("sen")
    raise RuntimeError("no esp32.NVS on this port")


def build(board, cfg, state, feed, warm=False, link=None, with_radio=True):
    """Radio, sampler, counter and duty for this wake. The radio may be None (broken, or
    not wanted: with_radio False). link: the SF and power in use (link.py), when they
    differ from node.json's."""
    from counter import Counter
    from duty import Duty
    from sampling import Sampler
    from config import make_radio
    radio = None
    try:
        if with_radio:
            radio = make_radio(board, link.radio_cfg() if link else cfg, warm)
    except Exception as e:
        log("[sen] radio: %s" % e)
    return Counter(nvs(), state), Duty(state), radio, Sampler(board, cfg, state, feed)


def _sleep_s(state, cfg, now, safe):
    interval = SAFE_SLEEP_S if safe else cfg["interval_s"]
    nxt = state.get("<I", st.O_NEXT_CYCLE)
    if nxt == 0 or nxt > now + interval:
        nxt = now + interval
    # Keep the schedule (no drift by the cycle's own length), skipping missed slots and a
    # slot that is too close (a rain tip just before the slot ran this cycle early).
    while nxt <= now + interval // 2:
        nxt += interval
    state.put("<I", st.O_NEXT_CYCLE, nxt)
    return nxt - now


def run():
    cause = machine.reset_cause()
    deep = cause == machine.DEEPSLEEP_RESET
    state = st.State(machine.RTC())
    valid = state.load()
    flags = state.buf[st.O_FLAGS]
    crashes = state.buf[st.O_CRASHES]
    if flags & st.F_IN_CYCLE or cause == machine.WDT_RESET:
        crashes = min(crashes + 1, 255)
    state.buf[st.O_CRASHES] = crashes
    import config
    try:
        board, cfg = config.load()
    except config.ConfigError as e:
        log("[sen] config: %s; staying in the REPL" % e)
        return "config"
    if cfg["kind"] == "receiver":
        # main.py starts it: app and receiver share the board wiring (config), not each other
        return ("receiver", board, cfg)
    why = maintenance_requested(board, deep)
    if why:
        state.save()
        log("[sen] maintenance: %s; cycle stopped, REPL is yours (machine.reset() resumes)" % why)
        return "maintenance"
    # (A rain tip before the cycle is due never gets here: main.py hands it to tipwake.py.)
    # Count rain tips from here on: radio set-up and imports take a few hundred ms
    gauge = _gauge(board) if cfg["kind"] == "rain" else None
    wdt = machine.WDT(timeout=WDT_MS)
    feed = wdt.feed
    safe = crashes >= CRASH_LIMIT
    if safe:
        sc = state.buf[st.O_SAFE_CYCLES] + 1
        state.buf[st.O_SAFE_CYCLES] = sc & 0xFF
        if sc % SAFE_RETRY_EVERY == 0:
            safe = False
            state.buf[st.O_CRASHES] = CRASH_LIMIT - 1  # one more crash: back to safe mode
        log("[sen] SAFE MODE: %d crashed cycles in a row; %s" % (
            crashes, "trying a full cycle" if not safe else "status frame only"))
    boot_pending = (not deep) or (not valid) or bool(flags & st.F_BOOT_PENDING)
    # A deep-sleep wake of a healthy node keeps the radio's setup; after any restart, or a
    # cycle that did not finish, the radio is reset (SX127x receivers can hang).
    warm = deep and valid and not flags & st.F_IN_CYCLE
    from flashq import FlashQ
    from link import Link
    fq = FlashQ(state, time.time, nvs=nvs())
    if not valid:
        # power-on: the queue, duty history, link settings and clock come back from flash
        k = fq.restore()
        if k >= 0:
            log("[sen] restored %d queued samples from flash; clock unsynced" % k)
        state.buf[st.O_FLAGS] = flags = 0
    link = Link(cfg, state)
    # A wake that may only add its sample to a batch leaves the radio asleep as it is; the
    # node builds it if the sample has to go after all (node.py hold)
    lazy = cfg["batch"] > 1 and not boot_pending and not safe and link.good()
    counter, duty, radio, sampler = build(board, cfg, state, feed, warm, link, not lazy)
    counter.start(deep and valid)
    state.buf[st.O_FLAGS] = (flags | st.F_IN_CYCLE) & ~st.F_BOOT_PENDING
    state.save()
    from node import Node
    import config as cfgmod
    n = Node(cfg, state, counter, duty, radio, sampler, log, feed=feed, fq=fq, link=link,
             remake_radio=lambda: cfgmod.make_radio(board, link.radio_cfg(), False),
             make_radio=(lambda: cfgmod.make_radio(board, link.radio_cfg(), warm)) if lazy else None)
    sampler.rain = gauge
    boot_pending = n.cycle(boot_pending, safe)
    now = int(time.time())
    sleep_s = _sleep_s(state, cfg, now, safe)
    f = state.buf[st.O_FLAGS] & ~st.F_IN_CYCLE
    if boot_pending:
        f |= st.F_BOOT_PENDING
    state.buf[st.O_FLAGS] = f
    if not safe:
        state.buf[st.O_CRASHES] = 0
        state.buf[st.O_SAFE_CYCLES] = 0
    if cfg["kind"] == "rain":
        _note_gauge(board, state)
    else:
        state.buf[st.O_RAIN_PIN] = 0xFF
    state.save()
    log(n.log_line(sleep_s))
    feed()
    go_to_sleep(board, cfg, sleep_s * 1000, sampler.rain, state)
    return "slept"


_GAUGE = None


def _gauge(board):
    global _GAUGE
    import config
    pin = config.board_get(board, "rain_gauge", "pin", None)
    if pin is None:
        return None
    if _GAUGE is None:
        from drivers.rain_gauge import RainGauge
        _GAUGE = RainGauge(pin, config.board_get(board, "rain_gauge", "active", 0) == 0,
                           pull=config.board_get(board, "rain_gauge", "pull", "up"))
        _GAUGE.start()
    return _GAUGE


def go_to_sleep(board, cfg, ms, gauge=None, state=None):
    if gauge is not None:
        # A tip in progress (switch closed ~80 ms) would leave ext0 unarmed and the gauge
        # deaf until the next timer wake: let it open first. Only a stuck switch stays closed.
        gauge.wait_released(max_ms=1000, sleep=lightsleep)
        gauge.stop()
        late = gauge.take()
        if late and state is not None:
            # tips while the frame went out (TX, ACK windows, retry back-off: seconds in
            # confirmed mode) belong to the next report; RTC memory keeps them till then
            import rain
            rain.add_tip(state, int(time.time()), late)
            state.save()
        gauge.arm_wake()
    if state is not None:
        import gc
        gc.collect()  # leave the heap compact; the figure the bench reads is then live data
    machine.deepsleep(int(ms))


def _note_gauge(board, state):
    """Leave the gauge wiring in RTC memory for tipwake.py."""
    import config
    pin = config.board_get(board, "rain_gauge", "pin", None)
    if pin is None:
        state.buf[st.O_RAIN_PIN] = 0xFF
        return
    pull = config.board_get(board, "rain_gauge", "pull", "up")
    low = config.board_get(board, "rain_gauge", "active", 0) == 0
    state.buf[st.O_RAIN_PIN] = pin
    state.buf[st.O_RAIN_CFG] = (1 if low else 0) | ({"up": 0, "down": 1}.get(pull, 2) << 1)
