"""The emulator's main loop: every board's port and interpreter, and the shared virtual clock.

Time moves only when no board is running firmware (each is blocked in a Wait, powered
off, or idle at its REPL), so several boards stay causal. It then jumps to the next thing
due (a Wait's deadline, a deep-sleep wake, a clock timer). With --speed X it is paced so
virtual time runs X times wall time; with `max` it jumps at once.
"""
import logging
import os
import select
import signal
import sys
import time

from sen.emulator import board_signals as sig

log = logging.getLogger("sen.emulator")


class Stop(Exception):
    pass


def _next_timer_us(clock):
    timers = getattr(clock, "_timers", None)
    return timers[0][0] if timers else None


class Bridge:
    def __init__(self, sessions, clock, speed=None, hold=None, end_us=None):
        """speed: virtual seconds per wall second, or None for as fast as possible.
        hold: while it returns true (e.g. a gateway in this process still has frames to
        process), time waits, so what that work does (an ACK) lands at the same virtual
        instant whatever the host's speed or load."""
        self.sessions = sessions
        self.clock = clock
        self.speed = speed
        self.hold = hold
        self.end_us = end_us  # virtual time at which run() returns (None: until a signal)
        self._anchor = None  # (wall monotonic s, virtual us) for --speed pacing
        self._stop = False

    def request_stop(self, *_):
        self._stop = True
        raise Stop()

    # ---- clock
    def _advance(self, t_us: int) -> None:
        if self.end_us is not None:
            t_us = min(t_us, self.end_us)  # nothing past the end, at any --speed
        if t_us > self.clock.now_us():
            self.clock.advance_to(t_us)

    def _resolve(self) -> None:
        for s in self.sessions:
            if s.cut is not None:
                continue  # power goes first; schedule() handles it next
            if s.wait is not None:
                s.resolve_wait()
            elif s.off is not None:
                s.resolve_off()

    def _due_us(self):
        """Next virtual time something happens, and whether stepping must stop at timers."""
        due, polled = [], False
        for s in self.sessions:
            if s.wait is not None:
                if s.wait.until_us is not None:
                    due.append(s.wait.until_us)
                polled |= s.wait.wake is not None
            elif s.off is not None:
                until, wake, _ = s.off
                if until is not None:
                    due.append(until)
                polled |= wake is not None
        timer = _next_timer_us(self.clock)
        return (min(due) if due else None), timer, polled

    def schedule(self):
        """Move the clock if allowed; return the select timeout (s), or None to block."""
        now_w = time.monotonic()
        waits = [t for t in (s.console_timeout(now_w) for s in self.sessions) if t is not None]
        timeout = self._schedule_clock()
        if not waits:
            return timeout
        return min(waits) if timeout is None else min(timeout, min(waits))

    def _schedule_clock(self):
        if self.end_us is not None and self.clock.now_us() >= self.end_us:
            raise Stop()
        for s in self.sessions:
            if s.cut is not None:
                off_ms, s.cut = s.cut, None
                s.power_off(self.clock.now_us() + off_ms * 1000, None, sig.PWRON_RESET)
        if any(s.busy() for s in self.sessions):
            self._anchor = None
            return None
        if self.hold is not None and self.hold():
            return 0.002
        due, timer, polled = self._due_us()
        if due is None and timer is None and self.end_us is not None and self.speed is None:
            self._advance(self.end_us)  # nothing left to happen before the end
            return 0
        if due is None and (self.speed is None or timer is None and not polled):
            if self.speed is not None and self._anchor is None:
                self._anchor = (time.monotonic(), self.clock.now_us())
            if self.speed is not None:
                self._pace_to(None)
                return 0.25
            return None
        step = due
        if timer is not None and (polled or step is None or timer < step):
            step = timer if step is None else min(step, timer)
        if polled and step is None:
            step = self.clock.now_us() + 1000  # poll wake sources every virtual ms
        if self.speed is None:
            self._advance(step)
            self._resolve()
            return 0
        return self._pace_to(step)

    def _pace_to(self, step):
        now_w = time.monotonic()
        if self._anchor is None:
            self._anchor = (now_w, self.clock.now_us())
        w0, v0 = self._anchor
        target = v0 + int((now_w - w0) * 1e6 * self.speed)
        if step is not None and step <= target:
            self._advance(step)
            self._resolve()
            return 0
        self._advance(target)
        self._resolve()
        if step is None:
            return 0.25
        return min(0.25, max(0.0, (step - target) / 1e6 / self.speed))

    def dump_state(self, *_):
        """SIGUSR1: one line per board on stderr (for a stuck board)."""
        for s in self.sessions:
            print(f"sen emulate: {s.name} pid={s.node.proc.pid if s.node else None} sent={s.sent} "
                  f"acked={s.acked} booting={s.booting} shielded={s.shielded} wait={s.wait and s.wait.until_us} "
                  f"kbd={s.kbd} off={s.off and s.off[0]} dropped={s.port.dropped} clock_us={self.clock.now_us()}", file=sys.stderr, flush=True)

    # ---- I/O
    def start_sessions(self) -> None:
        """Power every board on; subclasses may stagger this."""
        for s in self.sessions:
            s.start(sig.PWRON_RESET)

    def run(self) -> None:
        self.start_sessions()
        old = {sn: signal.signal(sn, self.request_stop) for sn in (signal.SIGINT, signal.SIGTERM)}
        old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self.dump_state)
        try:
            while not self._stop:
                timeout = self.schedule()
                self._io(timeout)
        except Stop:
            pass
        finally:
            for sn, h in old.items():
                signal.signal(sn, h)

    def _io(self, timeout) -> None:
        rd, wr, owner = [], [], {}
        for s in self.sessions:
            rd.append(s.port.master)
            owner[s.port.master] = (s, "port")
            if s.node is not None:
                for fd, kind in ((s.node.out, "out"), (s.node.req, "req")):
                    rd.append(fd)
                    owner[fd] = (s, kind)
                if s.node.wants_write():
                    wr.append(s.node.inp)
                    owner[s.node.inp] = (s, "inp")
        r, w, _ = select.select(rd, wr, [], timeout)
        # Console output first: it was written before any request that follows it.
        for fd in sorted(r, key=lambda fd: owner[fd][1] != "out"):
            s, kind = owner[fd]
            try:
                self._ready(fd, s, kind)
            except (Stop, KeyboardInterrupt):
                raise
            except Exception:
                # A bug in one board's models must not take the other boards down.
                log.exception("%s: error handling %s; the board is power-cycled", s.name, kind)
                s.port.write(b"\r\nemulator: host error, power-cycling the board\r\n")
                s.stop()
                s.off = (self.clock.now_us(), None, sig.PWRON_RESET)
        for fd in w:
            s, _ = owner[fd]
            if s.node is not None and fd == s.node.inp:
                s.node.pump_input()

    def _ready(self, fd, s, kind) -> None:
        if kind == "port":
            data = s.port.read()
            if data:
                s.on_port_input(data)
        elif s.node is None or fd not in (s.node.out, s.node.req):
            return  # that interpreter was replaced while handling an earlier fd
        elif kind == "out":
            s.drain_output()
        elif kind == "req":
            s.drain_output()
            node = s.node
            msgs = node.read_messages()
            if msgs is None:
                node.proc.wait(timeout=5)
                s.on_node_exit()
            else:
                s.on_messages(msgs)

    def close(self) -> None:
        for s in self.sessions:
            s.close()


def parse_speed(text):
    """'max' -> None; a positive number -> float."""
    from sen.errors import SenError
    if text is None or str(text).lower() == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not v > 0 or v != v or v == float("inf"):
        raise SenError(f"--speed {text!r} is not a speed", "give a positive number (times real time) or `max`")
    return v


def default_shim_dirs():
    here = os.path.dirname(os.path.abspath(__file__))
    extra = [d for d in os.environ.get("SEN_EMULATOR_SHIMS", "").split(os.pathsep) if d]
    return extra + [os.path.join(here, "mpy"), os.path.join(here, "runtime", "mpy")]
