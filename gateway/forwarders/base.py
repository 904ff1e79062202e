"""The loop every forwarder runs: fetch from its outbox, send, ack; back off
exponentially (with jitter) while the upstream fails."""
import logging
import threading
import time
from datetime import datetime, timezone

from sen.gateway.backoff import Backoff
from sen.gateway.outbox import Outbox

log = logging.getLogger("sen.gateway.forward")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Forwarder:
    """Subclasses set `kind` and implement send(samples); raise on any failure."""

    kind = "base"
    batch_readings = 2000
    # The runner's outbox, set before each send: recall(key)/remember(key, id) keep ids an
    # upstream assigned in the gateway's store (PostgreSQL for the ingest), across restarts.
    memory = None

    def send(self, samples) -> None:
        raise NotImplementedError

    def resending(self) -> None:
        """The outbox was rewound (resend, recalibrate): what follows may be on the upstream already."""

    def close(self) -> None:
        pass


class ForwarderRunner:
    def __init__(self, forwarder: Forwarder, db_path, name: str | None = None, max_pending: int = 5_000_000,
                 backoff_min: float = 0.5, backoff_max: float = 60.0, idle_s: float = 0.2):
        self.fw = forwarder
        self.name = name or forwarder.kind
        self.db_path = db_path
        self.max_pending = max_pending
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.backoff = Backoff(backoff_min, backoff_max)
        self.idle_s = idle_s
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.failures = 0
        self.sent = 0
        self.last_error = ""
        self.healthy = True
        self._acked = None  # the reading id acknowledged last, to notice a rewound outbox
        self.thread = threading.Thread(target=self._run, name=f"fwd-{self.name}", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def step(self, outbox: Outbox) -> int:
        """One fetch-send-ack round; returns samples delivered (0 when idle). Raises on failure."""
        samples, upto = outbox.fetch(self.fw.batch_readings)
        if not samples:
            return 0
        start = getattr(outbox, "last_from", None)
        if start is not None and self._acked is not None and start < self._acked:
            self.fw.resending()
        self.fw.memory = outbox
        self.fw.send(samples)
        outbox.ack(upto, len(samples))
        self._acked = upto
        return len(samples)

    def _run(self):
        outbox = Outbox(self.db_path, self.name, self.max_pending)
        try:
            self._serve(outbox)
        finally:
            outbox.close()
            try:
                self.fw.close()
            except Exception:
                pass

    def _serve(self, outbox):
        """Fetch-send-ack rounds until stopped, backing off while the upstream fails; the
        ingest's leader forwarders run this same loop over PostgreSQL."""
        while not self.stop_event.is_set():
            try:
                n = self.step(outbox)
            except Exception as exc:
                self._failed(outbox, exc)
                continue
            if self.failures:
                log.info("forwarder %s recovered after %d failures", self.name, self.failures)
            self.failures = 0
            self.healthy = True
            self.sent += n
            if n == 0:
                self.wake.wait(self.idle_s)
                self.wake.clear()

    def _failed(self, outbox, exc: Exception):
        self.failures += 1
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._record_error(outbox)
        delay = self.backoff.delay(self.failures, self._retry_cap())
        if self.failures == 1 or self.failures % 20 == 0:
            log.warning("forwarder %s failing (%s); retry in %.1fs", self.name, self.last_error, delay)
        self.stop_event.wait(delay)

    def _record_error(self, outbox):
        try:
            outbox.error(self.last_error)
        except Exception:
            pass  # the upstream's failure is what matters; a busy store must not stop the retries

    def _retry_cap(self) -> float | None:
        """Some upstreams ask for quicker retries (MQTT: a reconnect is cheap)."""
        return getattr(self.fw, "max_retry_s", None) or None

    def stop(self, timeout: float = 10.0):
        self.stop_event.set()
        self.wake.set()
        self.thread.join(timeout)
