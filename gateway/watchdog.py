"""systemd readiness and watchdog (Type=notify, WatchdogSec=) through sdnotify.

The ping says more than "the process exists": it goes out only while the service loop
(verify, decode, store) and the raw-log writer keep coming round, and every forwarder and
radio thread is alive. A loop stuck in the store, a dead forwarder thread or a dead radio
reader stops the pings, and systemd restarts the gateway (which recovers from its raw log).
Without NOTIFY_SOCKET (a terminal, a test) it does nothing; without WATCHDOG_USEC it only
reports readiness.
"""
import logging
import os
import threading
import time

from sdnotify import SystemdNotifier

log = logging.getLogger("sen.gateway.watchdog")


def watchdog_timeout_s(env=os.environ) -> float | None:
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


class Watchdog:
    def __init__(self, service, env=os.environ):
        self.service = service
        self.notifier = SystemdNotifier() if env.get("NOTIFY_SOCKET") else None
        self.timeout = watchdog_timeout_s(env) if self.notifier else None
        self.beats: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.thread = None
        self._reported: tuple = ()

    def notify(self, state: str):
        if self.notifier is not None:
            self.notifier.notify(state)

    def beat(self, part: str):
        self.beats[part] = time.monotonic()

    def stalled(self) -> list[str]:
        """The parts that are not working: loops silent for half the watchdog time, dead threads."""
        limit = self.timeout / 2
        now = time.monotonic()
        out = [f"{part} (silent over {limit:g} s)" for part, t in self.beats.items() if now - t > limit]
        out += [f"forwarder {r.name} (thread died)" for r in self.service.runners if not r.thread.is_alive()]
        for b in self.service.backends.values():
            t = getattr(b, "thread", None)
            if t is not None and t.ident is not None and not t.is_alive():
                out.append(f"radio {b.name} (thread died)")
        return out

    def ready(self, status: str):
        self.notify(f"READY=1\nSTATUS={status}")
        if self.timeout:
            self.thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
            self.thread.start()

    def _run(self):
        while not self.stop_event.wait(self.timeout / 4):
            bad = self.stalled()
            if not bad:
                self.notify("WATCHDOG=1")
                if self._reported:
                    log.warning("watchdog: every part works again; pinging systemd")
            elif tuple(bad) != self._reported:
                log.error("watchdog: not pinging systemd (it restarts the gateway after %.0f s): %s",
                          self.timeout, ", ".join(bad))
            self._reported = tuple(bad)

    def stopping(self):
        self.stop_event.set()
        self.notify("STOPPING=1")
