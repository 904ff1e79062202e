"""The gateway run loop: radios -> raw log (fsync) -> pipeline (one store transaction per
batch) -> ACK downlinks -> forwarders, with metrics. SIGTERM/SIGINT drain: radios stop,
every queued frame is logged and processed, forwarders get a short grace period, exit 0.

Two threads share the work: the logger writes what the radios hand over to the raw log at
once (group fsync), the loop processes logged batches. So a frame waits in memory only
for the next fsync, not behind a slow store or busy forwarders: at a crash, everything
logged is recovered, and only an fsync's worth of frames can be lost.

Start-up recovers first: raw-log records past the store's processed offset (a crash
between the two) are processed before any new frame.
"""
import logging
import queue
import signal
import sys
import threading
import time

from sen.gateway import downlinks
from sen.gateway.calibrate import Calibrator
from sen.gateway.ack import AckComposer
from sen.gateway.forwarders.base import ForwarderRunner
from sen.gateway.forwarders.build import build_forwarders
from sen.gateway.key_store import KeyStore
from sen.gateway.lock import DataDirLock
from sen.gateway.metrics import Metrics, serve_metrics
from sen.gateway.watchdog import Watchdog
from sen.gateway.pipeline import BatchResult, Pipeline
from sen.gateway.radio import open_backend
from sen.gateway.raw_log import RawLog, RawLogFull, is_disk_full
from sen.gateway.store import Store

log = logging.getLogger("sen.gateway")


class GatewayService:
    def __init__(self, cfg, backends=None, forwarders=None, medium=None):
        """backends/forwarders override what the config would build (tests, the demo)."""
        self.cfg = cfg
        self.queue: queue.SimpleQueue = queue.SimpleQueue()      # from the radios, not yet logged
        self.logged: queue.SimpleQueue = queue.SimpleQueue()     # record batches in the raw log, not processed
        self.raw_lock = threading.Lock()  # the logger appends while the loop recovers or prunes
        self.intake_lock = threading.Lock()  # appends and queues to `logged` in one order
        self.logger_thread = None
        self.lock = DataDirLock(cfg.data_dir, "cannot start")  # before touching the log or store
        try:
            self._open(cfg, backends, forwarders, medium)
        except BaseException:
            self.lock.release()  # a refused start leaves the data directory free
            raise

    def _open(self, cfg, backends, forwarders, medium):
        self.keys = KeyStore(cfg.key_file)
        self.store = Store(cfg.store_path)
        self.raw_log = RawLog(cfg.raw_log_path, fsync=cfg.fsync, rotate_bytes=int(cfg.raw_log_rotate_mb * 2 ** 20),
                              rotate_daily=cfg.raw_log_rotate_daily)
        # full disk: frames the raw log could not take wait here (never ACKed) and are retried
        self.held: list = []
        self.held_dropped = 0
        self.retry_at = 0.0
        self.store_behind = False  # the store refused a batch the raw log holds: recover() next
        self._last_full_log = 0.0
        self._raw_full = False  # a raw-log full-disk episode is on (its end is logged)
        self._pruned_base = -1
        self._next_prune = 0.0
        self.pipeline = Pipeline(self.store, self.keys, Calibrator(cfg.calibration_dir))
        self.metrics = Metrics()
        self.watchdog = Watchdog(self)
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        if backends is None:
            backends = [open_backend(rc, cfg.gateway_id, self.on_frame, medium) for rc in cfg.radios]
        self.backends = {b.name: b for b in backends}
        for b in backends:
            if hasattr(b, "status_file"):  # concentrator gateways' state, for `sen gateway status`
                b.status_file = cfg.data_dir / f"concentrators-{b.name}.json"
            b.on_frames = self.on_frames
        fws = build_forwarders(cfg) if forwarders is None else forwarders
        self.runners = [ForwarderRunner(f, cfg.store_path, max_pending=cfg.max_pending) for f in fws]
        self.metrics_server = None
        self.status_server = None
        self.uplink = None
        self.control: queue.SimpleQueue = queue.SimpleQueue()  # actions from other threads, run by the loop
        # pending node config changes (node -> (change, stored text)); `sen gateway node-config`
        # writes them from another process, so the loop re-reads them every few seconds
        self.pending_config = self.store.pending_configs()
        self.acks = AckComposer(cfg, self.store, backends, self.metrics)

    # called from radio threads / IRQ callbacks: keep it tiny
    def on_frame(self, frame: bytes, meta):
        self.queue.put((frame, meta))

    def recover(self) -> int:
        start = self.store.raw_offset()
        if start > self.raw_log.end:
            # the log lost its tail (a corrupt tail cut off, or a replaced log): new records
            # will take offsets the store counts as done, so the store's offset comes back to
            # the log's end; what it stored stays, and dedupe keeps anything seen twice out
            log.warning("store had processed up to offset %d but the raw log ends at %d (tail cut off or log "
                        "replaced): store offset moved back to %d so every new frame is stored", start,
                        self.raw_log.end, self.raw_log.end)
            self.store.set_raw_offset(self.raw_log.end)
            return 0
        with self.raw_lock:
            records = list(self.raw_log.read_from(start))
        for i in range(0, len(records), 2000):
            self.pipeline.process(records[i:i + 2000])
        if records:
            log.info("recovered %d raw-log records not yet processed", len(records))
        return len(records)

    def _take(self, q, timeout: float, chunks: bool = False):
        """Up to batch_max entries of q: wait up to timeout for the first, then take what is
        there. chunks: q holds lists (logged record batches), flattened into one batch."""
        try:
            first = q.get(timeout=timeout)
        except queue.Empty:
            return []
        out = list(first) if chunks else [first]
        while len(out) < self.cfg.batch_max:
            try:
                more = q.get_nowait()
            except queue.Empty:
                break
            if chunks:
                out.extend(more)
            else:
                out.append(more)
        return out

    def _take_batch(self, timeout: float):
        return self._take(self.queue, timeout)

    def ingest(self, items):
        """Log and process `items` now, in this thread (tests, the drain at shutdown)."""
        records = self.log_frames(items)
        return self.process(records) if records else BatchResult()

    def log_frames(self, items, enqueue: bool = False):
        """Write frames to the raw log (fsync). Returns their records, or None when nothing
        was written (a full disk holds them in memory, unacknowledged, and retries).
        enqueue: also queue them for processing, in log order (radio threads and the logger
        thread both write, so appending and queueing happen under one lock)."""
        with self.intake_lock:
            if self.held:
                items = self.held + list(items)
                self.held = []
                if time.monotonic() < self.retry_at:
                    self._hold(items, None)
                    return None
            if not items:
                return None
            try:
                with self.raw_lock:
                    spans = self.raw_log.append(items)
            except RawLogFull as exc:
                self._hold(items, exc)
                return None
            if self._raw_full:
                # the episode is over: say so, and let the next one be logged at once
                log.warning("raw log writable again: %d frame(s) held during the full disk written", len(items))
                self._raw_full, self._last_full_log = False, 0.0
            records = [(a, b, f, m) for (a, b), (f, m) in zip(spans, items)]
            if enqueue:
                self.logged.put(records)
            return records

    def on_frames(self, items):
        """A radio thread's burst (one read of a serial link): durable in the raw log before
        the thread reads again, so a kill loses only what the kernel still buffers."""
        self.log_frames(items, enqueue=True)

    def process(self, records):
        """Verify, decode, store, ACK and hand to the forwarders one logged batch."""
        if self.store_behind:
            return self._catch_up()
        done = self.store.raw_offset()
        if records[0][0] < done:  # recover() took these from the raw log already
            records = [r for r in records if r[0] >= done]
            if not records:
                return BatchResult()
        try:
            res = self.pipeline.process(records)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            # durable in the raw log, not in the store: processed by recover() once there is room
            self.store_behind = True
            self._disk_full("store", exc, len(records))
            return BatchResult()
        now = time.time()
        for _, _, _, m in records:
            self.metrics.observe_latency(now - m.time)
            self.metrics.observe_rx(m)
        self.metrics.count_batch(res)
        if res.accepted:
            try:
                self.acks.links.observe(res.accepted)  # ADR's history, before the ACKs that command from it
            except Exception as exc:  # the frames are stored: a link history miss must not stop ACKs
                log.warning("ADR link history not updated: %s", exc)
        if self.pending_config:
            # before the ACKs: an applied change is not sent again
            downlinks.check_config_evidence(self.store, self.pending_config, res.accepted)
        for acc in res.accepted:
            if acc.confirmed:
                downlinks.send_ack(acc, self.acks, self.keys.get(acc.node_id), self.backends.get(acc.meta.radio),
                                   self.pipeline.states.get(acc.node_id), self.metrics)
        if res.accepted:
            for r in self.runners:
                r.wake.set()
        if self.raw_log.base != self._pruned_base:
            self.prune()  # a rotation just sealed a segment
        return res

    def _log_loop(self):
        while not self.stopping.is_set():
            self.watchdog.beat("raw-log writer")
            items = self._take_batch(0.2)
            if items or (self.held and time.monotonic() >= self.retry_at):
                self.log_frames(items, enqueue=True)

    def _take_logged(self, timeout: float):
        return self._take(self.logged, timeout, chunks=True)

    HELD_MAX = 100_000  # frames kept in memory while the disk is full (~30 MB)

    def _hold(self, items, exc):
        self.held = list(items)
        if len(self.held) > self.HELD_MAX:
            self.held_dropped += len(self.held) - self.HELD_MAX
            del self.held[:len(self.held) - self.HELD_MAX]
        self.retry_at = time.monotonic() + 1.0
        if exc is not None:
            self._raw_full = True
            self._disk_full("raw log", exc, len(self.held))

    def _disk_full(self, what, exc, n):
        if time.monotonic() - self._last_full_log < 60:
            return
        self._last_full_log = time.monotonic()
        while exc is not None and not (isinstance(exc, OSError) or "full" in str(exc)):
            exc = exc.__cause__ or exc.__context__  # the root cause, not a ROLLBACK error on top of it
        reason = getattr(exc, "strerror", None) or str(exc)
        log.error("%s cannot be written (%s): %d frame(s) waiting, %d dropped, retried every second and never "
                  "ACKed meanwhile — free space in %s (e.g. lower [raw_log] retain_days or move old raw.log.* "
                  "segments away)", what, reason, n, self.held_dropped, self.cfg.data_dir)

    def _catch_up(self) -> BatchResult:
        try:
            n = self.recover()
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._disk_full("store", exc, 0)
            return BatchResult()
        self.store_behind = False
        self._last_full_log = 0.0
        log.warning("store writable again: %d raw-log records processed", n)
        for r in self.runners:
            r.wake.set()
        return BatchResult()

    def prune(self):
        """Raw-log retention: delete old sealed segments no reader still needs."""
        self._pruned_base = self.raw_log.base
        self._next_prune = time.monotonic() + 600
        keep = self.store.raw_offset()
        if self.uplink is not None:
            keep = min(keep, self.uplink.cursor.value)
        try:
            with self.raw_lock:
                gone = self.raw_log.prune(keep, self.cfg.raw_log_retain_days)
        except OSError as exc:
            log.warning("raw log retention: %s", exc)
            return
        if gone:
            log.info("raw log retention: deleted %d segment(s) older than %s days, all processed: %s", len(gone),
                     self.cfg.raw_log_retain_days, ", ".join(p.name for p in gone))

    def _run_control(self):
        while True:
            try:
                action, arg = self.control.get_nowait()
            except queue.Empty:
                return
            if action == "forget_node":
                # a new key means a re-provisioned node whose counters start again
                self.store.reset_node(arg)
                st = self.store.load_state(arg)
                if st is None:
                    self.pipeline.states.pop(arg, None)
                else:
                    self.pipeline.states[arg] = st
                log.info("node %s: key changed, counter state cleared", arg)
            elif action == "reload_calibration":
                self.pipeline.calibrator = Calibrator(self.cfg.calibration_dir)
                log.info("calibration records reloaded (%s)", self.pipeline.calibrator.tag)

    def start(self):
        # the ingest loop is latency-bound (radio IRQ -> durable commit); let it take the GIL
        # back from forwarder threads within 1 ms instead of Python's default 5 ms
        sys.setswitchinterval(0.001)
        self.store.start_checkpointer()
        self.recover()
        for b in self.backends.values():
            b.start()
        for r in self.runners:
            r.start()
        if self.cfg.mode == "uplink":
            # issue 10: publish every raw-log record to the city broker; the ingest reuses this
            # package's pipeline. Local storage and forwarding carry on as well.
            from sen.gateway.uplink_publisher import UplinkPublisher  # lazy: paho-mqtt, only in uplink mode
            u = self.cfg.uplink
            self.uplink = UplinkPublisher(self.cfg.raw_log_path, self.cfg.gateway_id, u["host"], int(u.get("port", 1883)),
                                          topic_prefix=u.get("topic_prefix", "sen"), username=u.get("username"),
                                          password=u.get("password"), tls=bool(u.get("tls", False)),
                                          ca_file=u.get("ca_file"), advice=self.acks.central)
            self.uplink.start()
        self.prune()
        m = self.cfg.metrics
        if m and m.get("port") is not None:
            self.metrics_server = serve_metrics(self, m.get("bind", "127.0.0.1"), int(m["port"]))
        if self.cfg.status is not None:
            from sen.gateway.status_page import start_for_gateway  # lazy: the page's modules only with [status]
            self.status_server = start_for_gateway(
                self.cfg, runners={r.name: r for r in self.runners}, keys=self.keys,
                on_key_rotated=lambda node: self.control.put(("forget_node", node)),
                on_record_approved=lambda _id: self.control.put(("reload_calibration", None)))
        log.info("gateway %s running: %d radio(s), %d forwarder(s)", self.cfg.gateway_id, len(self.backends),
                 len(self.runners))

    def run(self, install_signals: bool = True):
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        self.start()
        self.watchdog.beat("service loop")
        self.watchdog.beat("raw-log writer")
        self.logger_thread = threading.Thread(target=self._log_loop, name="sen-raw-log", daemon=True)
        self.logger_thread.start()
        self.watchdog.ready(f"receiving on {len(self.backends)} radio(s), {len(self.runners)} forwarder(s)")
        last_key_check = time.monotonic()
        try:
            while not self.stopping.is_set():
                self.watchdog.beat("service loop")
                records = self._take_logged(0.2)
                if records:
                    self.process(records)
                elif self.store_behind:
                    self._catch_up()
                if time.monotonic() >= self._next_prune:
                    self.prune()
                if time.monotonic() - last_key_check > 2:
                    for node in self.keys.reload_if_changed():
                        self.control.put(("forget_node", node))
                    self.pending_config = self.store.pending_configs()
                    last_key_check = time.monotonic()
                self._run_control()
        finally:
            self.shutdown()

    def shutdown(self, forwarder_grace_s: float = 5.0):
        self.watchdog.stopping()
        for b in self.backends.values():
            try:
                b.stop()
            except Exception:
                log.exception("stopping radio %s", b.name)
        self.stopping.set()
        if self.logger_thread is not None:
            self.logger_thread.join(10)
        while True:  # drain: what was logged gets stored, then what was received gets both
            records = self._take_logged(0)
            if not records:
                break
            self.process(records)
        while True:
            items = self._take_batch(0)
            if not items:
                break
            self.ingest(items)
        if self.held:
            self.retry_at = 0
            self.ingest([])
        if self.held:
            log.error("stopping with %d frame(s) the full disk never took (not ACKed, not stored); free space "
                      "in %s", len(self.held), self.cfg.data_dir)
        deadline = time.monotonic() + forwarder_grace_s
        for r in self.runners:
            r.stop(max(0.1, deadline - time.monotonic()))
        if self.uplink is not None:
            self.uplink.stop(max(0.1, deadline - time.monotonic()))
        if self.metrics_server:
            self.metrics_server.shutdown()
        if self.status_server:
            self.status_server.stop()
        self.raw_log.close()
        self.store.close()
        self.lock.release()
        self.stopped.set()
        log.info("gateway %s stopped cleanly", self.cfg.gateway_id)
