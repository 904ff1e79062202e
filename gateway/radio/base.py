"""What every radio backend offers the service."""
import math
import threading
import time

from sen.gateway.rx_meta import RxMeta, sane


class Backend:
    """Subclasses call self.deliver(frame, rssi, snr[, t]) for each received frame."""

    applies_window = True  # an ACK past the node's receive window is not sent (transmit_at)

    def __init__(self, rc, gateway_id: str, on_frame):
        self.rc = rc
        self.name = rc.name
        self.gateway_id = gateway_id
        self.on_frame = on_frame
        self.received = 0
        self.reinits = 0  # watchdog re-initialisations
        self.ack_window_missed = 0  # ACKs not sent: they could no longer start inside the node's window
        self.last_rx = time.monotonic()
        self.stop_event = threading.Event()
        self.on_frames = None  # set by the service: log a burst durably in the calling thread
        self.up = True  # False while the radio cannot run (shown in /metrics, logged, retried)
        self.down_since = None

    def hearable_sfs(self) -> tuple[int, ...]:
        """The SFs this radio demodulates: a single-channel SX127x (or a board behind a serial
        link, or an emulated one) listens at its configured SF only, so ADR may change a
        node's power but never its SF there. A concentrator backend overrides this."""
        return (int(self.rc.sf),)

    def deliver(self, frame: bytes, rssi: float, snr: float, t: float | None = None):
        self.received += 1
        self.last_rx = time.monotonic()
        rssi, snr = sane(rssi, snr)  # inf/nan from a driver never gets past here
        if t is None or not math.isfinite(t):
            t = time.time()
        self.on_frame(bytes(frame), RxMeta(self.gateway_id, t, self.rc.frequency_hz, self.rc.sf, self.rc.bw_hz, rssi,
                                           snr, self.name))

    def deliver_many(self, frames: list[tuple[bytes, float, float]]):
        """A burst of (frame, rssi, snr) read at once: one durable raw-log write for all."""
        if self.on_frames is None:
            for f, rssi, snr in frames:
                self.deliver(f, rssi, snr)
            return
        now = time.time()
        self.received += len(frames)
        self.last_rx = time.monotonic()
        items = []
        for f, rssi, snr in frames:
            rssi, snr = sane(rssi, snr)
            items.append((bytes(f), RxMeta(self.gateway_id, now, self.rc.frequency_hz, self.rc.sf, self.rc.bw_hz, rssi,
                                           snr, self.name)))
        self.on_frames(items)

    def mark_down(self, log, reason, retry_s: float):
        """One line when the radio goes down (not one per retry); the link is retried."""
        if self.up:
            self.up, self.down_since = False, time.monotonic()
            log.error("radio %s is down: %s — retrying every %.0f s or less; check its port/wiring", self.name, reason,
                      retry_s)

    def mark_up(self, log):
        if not self.up:
            log.warning("radio %s recovered: link open again after %.0f s down", self.name,
                        time.monotonic() - self.down_since)
            self.up, self.down_since = True, None

    def silent_for(self) -> float:
        return time.monotonic() - self.last_rx

    def start(self):
        raise NotImplementedError

    def stop(self):
        self.stop_event.set()

    def transmit(self, frame: bytes):
        """Send a downlink (ACK) now; the node's receive window is open right after its uplink."""
        raise NotImplementedError

    def transmit_at(self, frame: bytes, at: float, deadline: float | None = None) -> bool:
        """Send a downlink at time `at` (the clock of RxMeta.time), or now if that has passed
        but `deadline` has not; past the deadline it is not sent (False). The ACK is not sent
        the instant the frame is stored: a node needs a few ms after its TxDone to switch to
        receive, and must be listening before the ACK's preamble ends; after its window it
        listens no more, and a late ACK only spends the channel's duty cycle."""
        now = time.time()
        if deadline is not None and self.applies_window and now > deadline:
            self.ack_window_missed += 1
            return False
        delay = at - now
        if delay <= 0:
            self.transmit(frame)
            return True
        t = threading.Timer(delay, self._transmit_logged, (frame,))
        t.daemon = True
        t.start()
        return True

    def _transmit_logged(self, frame: bytes):
        try:
            self.transmit(frame)
        except Exception as exc:  # a timer thread has no caller to tell
            import logging
            logging.getLogger("sen.gateway").warning("downlink on %s failed: %s", self.name, exc)


class InjectBackend(Backend):
    """In-process backend for tests and benchmarks: frames are handed in by `inject`, often
    with times of a scripted past, so their ACKs are sent however late unless a test sets
    applies_window."""

    applies_window = False

    def __init__(self, rc, gateway_id, on_frame):
        super().__init__(rc, gateway_id, on_frame)
        self.sent: list[bytes] = []

    def start(self):
        return self

    def inject(self, frame: bytes, rssi: float = -80.0, snr: float = 5.0, t: float | None = None):
        self.deliver(frame, rssi, snr, t)

    def transmit(self, frame: bytes):
        self.sent.append(bytes(frame))
