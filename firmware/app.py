# The node's life between two deep sleeps: boot decisions, maintenance escape, safe mode,
# watchdog, the cycle, and the sleep. main.py calls run().
#
# Maintenance escape (so mpremote can always get in):
#   1. After any reset that is not a deep-sleep wake (power-on, reset button, mpremote's
#      DTR/RTS reset, watchdog, crash), a boot window of BOOT_WINDOW_S seconds: Ctrl-C or
#      any key at the serial console stops the cycle and leaves the REPL.
#   2. On every wake, serial input already waiting stops the cycle the same way.
#   3. The board's maintenance strap pin (board.json "maint.pin", e.g. GPIO0/BOOT) held
#      low at boot, or a file named "maint" on the flash, stops the cycle.
#   In maintenance the watchdog has not been started, so the REPL stays up.
import time
import machine
import state as st

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


def _stdin_waiting(timeout_ms):
    """True if a key arrives on the console within timeout_ms (Ctrl-C raises instead)."""
    try:
        import select
        import sys
        if sys.implementation.name != "micropython":
            raise ImportError  # CPython test harness: the host's stdin is not the console
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        t0 = time.ticks_ms()
        while True:
            if p.poll(0):
                return True
            left = timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                return False
            time.sleep_ms(min(left, 50))
    except (ImportError, AttributeError, OSError):
        if timeout_ms > 0:
            time.sleep_ms(timeout_ms)
        return False


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
        if _stdin_waiting(0):
            return "key at wake"
        return None
    log("[sen] boot window %ds: Ctrl-C or any key = maintenance" % BOOT_WINDOW_S)
    if _stdin_waiting(BOOT_WINDOW_S * 1000):
        return "key in boot window"
    return None


def nvs():
    if esp32 is not None:
        return esp32.NVS("sen")
    raise RuntimeError("no esp32.NVS on this port")


def build(board, cfg, state, feed):
    """Radio, sampler, counter and duty for this wake. The radio may be None (broken)."""
    from counter import Counter
    from duty import Duty
    from sampling import Sampler
    import config
    radio = None
    try:
        radio = make_radio(board, cfg)
    except Exception as e:
        log("[sen] radio: %s" % e)
    return Counter(nvs(), state), Duty(state), radio, Sampler(board, cfg, state, feed)


def make_radio(board, cfg):
    import config
    from drivers.sx127x import SX127x
    from machine import SPI, Pin
    b = board
    spi = SPI(config.board_get(b, "lora", "spi_id", 2), baudrate=5000000, polarity=0, phase=0,
              sck=Pin(config.board_get(b, "lora", "sck", 18)),
              mosi=Pin(config.board_get(b, "lora", "mosi", 23)),
              miso=Pin(config.board_get(b, "lora", "miso", 19)))
    r = SX127x(spi, config.board_get(b, "lora", "cs", 18), config.board_get(b, "lora", "reset", 14),
               config.board_get(b, "lora", "dio0", 26))
    r.reset()
    rc = cfg["radio"]
    r.configure(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["cr"], rc["tx_dbm"], rc["sync_word"],
                rc["preamble"], True, config.board_get(b, "lora", "pa_boost", True))
    r.sleep()  # 0.2 uA instead of 1.6 mA in standby while the sensors are sampled
    return r


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
        log("[sen] receiver node: run `import receiver` (firmware/receiver.py)")
        try:
            import receiver
            return receiver.run(board, cfg)
        except ImportError:
            return "receiver"
    why = maintenance_requested(board, deep)
    if why:
        state.save()
        log("[sen] maintenance: %s; cycle stopped, REPL is yours (machine.reset() resumes)" % why)
        return "maintenance"
    # Rain gauge tip that woke us before the next cycle is due: count it and sleep on.
    if deep and valid and cfg["kind"] == "rain" and _tip_wake():
        if _rain_tip(board, cfg, state):
            return "tip"
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
    counter, duty, radio, sampler = build(board, cfg, state, feed)
    counter.start(deep and valid)
    state.buf[st.O_FLAGS] = (flags | st.F_IN_CYCLE) & ~st.F_BOOT_PENDING
    state.save()
    from node import Node
    n = Node(cfg, state, counter, duty, radio, sampler, log, feed=feed)
    if cfg["kind"] == "rain":
        sampler.rain = _gauge(board)
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
    state.save()
    log(n.log_line(sleep_s))
    feed()
    go_to_sleep(board, cfg, sleep_s * 1000, sampler.rain)
    return "slept"


def _tip_wake():
    try:
        return machine.wake_reason() == machine.EXT0_WAKE
    except AttributeError:
        return False


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


def _rain_tip(board, cfg, state):
    """Count the tip that woke us; go back to sleep if the cycle is not due yet."""
    import rain
    now = int(time.time())
    rain.add_tip(state, now)
    g = _gauge(board)
    if g is not None:
        g.mark()
        if not g.wait_released(sleep=machine.lightsleep):
            state.buf[st.O_FLAGS] |= st.F_RAIN_STUCK
        n = g.take()  # bounces of the same tip are within the debounce time
        if n > 1:
            rain.add_tip(state, now, n - 1)
    nxt = state.get("<I", st.O_NEXT_CYCLE)
    state.save()
    if nxt > now + 1:
        go_to_sleep(board, cfg, (nxt - now) * 1000, g)
        return True
    return False


def go_to_sleep(board, cfg, ms, gauge=None):
    if gauge is not None:
        gauge.stop()
        gauge.arm_wake()
    machine.deepsleep(int(ms))
