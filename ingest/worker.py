"""One central ingest worker: shared-subscription consumer -> dedupe window -> the gateway's
Pipeline (verify, decode, dedupe, calibrate) -> PostgreSQL -> PUBACK; plus the gateway's
forwarders, each led by one worker at a time.

Run N of these (`sen ingest run -c ingest.toml`, each with its own worker_id) and the
broker splits the records between them. SIGTERM drains: the batch in hand is stored and
acknowledged; records not yet stored stay unacknowledged and the broker re-delivers them.
"""
import logging
import signal
import threading
import time
from collections import Counter

import psycopg

from sen.gateway.calibrate import Calibrator
from sen.gateway.frame_decode import FrameRejected, parse_header
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.ingest import wire
from sen.ingest.mqtt_consumer import SharedConsumer
from sen.ingest.pg_outbox import LeaderForwarderRunner
from sen.ingest.postgres_store import PgStore

log = logging.getLogger("sen.ingest")


class IngestWorker:
    def __init__(self, cfg, forwarders=None):
        """forwarders: Forwarder objects to run instead of those the config names (tests)."""
        self.cfg = cfg
        self.store = PgStore(cfg.dsn, cfg.worker_id)
        self.keys = KeyStore(cfg.key_file)
        self.pipeline = Pipeline(self.store, self.keys, Calibrator(cfg.calibration_dir))
        b = cfg.broker
        self.consumer = SharedConsumer(b.host, b.port, cfg.worker_id, group=b.group, prefix=b.topic_prefix,
                                       username=b.username, password=b.password, tls=b.tls, ca_file=b.ca_file,
                                       session_expiry_s=b.session_expiry_s, receive_maximum=b.receive_maximum)
        if forwarders is None:
            from sen.gateway.service import build_forwarders
            forwarders = build_forwarders(cfg)
        self.runners = [LeaderForwarderRunner(f, cfg.dsn, max_pending=cfg.max_pending) for f in forwarders]
        self.deferred: list[tuple] = []  # (message, frame, meta, first_seen) waiting for their node's state
        self.totals = Counter()
        self.stopping = threading.Event()
        self.failures = 0
        # deferred records hold broker in-flight slots; keep room for new ones
        self.max_deferred = max(1, cfg.broker.receive_maximum // 2)

    # --- one batch --------------------------------------------------------------------
    def step(self) -> int:
        """Take one window of records, store them, acknowledge them; returns records taken."""
        msgs = self.consumer.take(self.cfg.window_ms / 1000.0, self.cfg.batch_max,
                                  first_timeout=0.05 if self.deferred else 0.5)
        items, bad, to_ack = [], Counter(), []
        for m in msgs:
            try:
                frame, meta = wire.decode(m.topic, m.payload)
            except wire.BadUplink as exc:
                bad[exc.reason] += 1
                to_ack.append(m)
                log.warning("uplink record refused: %s (topic %s)", exc, m.topic)
                continue
            items.append((m, frame, meta, m.received))
        items = self.deferred + items
        self.deferred = []
        if not items and not bad:
            return 0
        try:
            self._store(items, bad, to_ack)
        except Exception as exc:
            # nothing was acknowledged: keep the records and retry after a pause
            if not isinstance(exc, (psycopg.Error, OSError)):
                log.exception("unexpected error storing a batch")
            self.failures += 1
            self.deferred = items + self.deferred
            delay = min(10.0, 0.2 * 2 ** min(self.failures, 6))
            log.warning("store failed (%s: %s); retrying %d records in %.1fs", type(exc).__name__,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "", len(items), delay)
            self.stopping.wait(delay)
            try:
                self.store.reconnect()
            except Exception as exc2:
                log.warning("PostgreSQL still unreachable: %s", exc2)
            return len(msgs)
        self.failures = 0
        return len(msgs)

    def _store(self, items, bad: Counter, to_ack: list):
        self.keys.reload_if_changed()
        states = self.pipeline.states
        self.store.refresh(states, {wire.node_of(f) for _, f, _, _ in items})
        known = {n for n, st in states.items() if st.known}
        now = time.monotonic()
        records, taken, deferred = [], [], []
        for item in items:
            m, frame, meta, first = item
            try:
                h = parse_header(frame)
            except FrameRejected:
                h = None  # the pipeline counts it under its reason
            if h is not None and self.keys.get(h.node_id) is not None:
                if h.counter_bits == 32:
                    known.add(h.node_id)
                elif h.node_id not in known and now - first < self.cfg.defer_s and len(deferred) < self.max_deferred:
                    # A 16-bit counter needs the node's state, which the frame with the full
                    # counter brings; that frame may be in another worker's batch right now.
                    deferred.append(item)
                    continue
            records.append((m.gateway_offset, m.gateway_offset + 1, frame, meta))
            taken.append(m)
        if bad:
            self.store.add_rejections(bad)
        if records:
            res = self.pipeline.process(records)
            st = self.store.last_commit
            self.totals["frames"] += st.frames
            self.totals["readings"] += st.readings
            self.totals["duplicates"] += st.duplicates + res.duplicates
            self.totals.update(res.rejections)
        self.totals["copies"] += len(records)
        self.deferred.extend(deferred)
        self.consumer.ack(taken + to_ack)

    # --- service ------------------------------------------------------------------------
    def start(self):
        self.store.register_worker()
        self.consumer.start()
        for r in self.runners:
            r.start()
        log.info("ingest worker %s: subscribed to %s on %s:%s, %d forwarder(s)", self.cfg.worker_id,
                 self.consumer.topic, self.cfg.broker.host, self.cfg.broker.port, len(self.runners))
        return self

    def run(self, install_signals: bool = True):
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        last_log = time.monotonic()
        try:
            while not self.stopping.is_set():
                self.step()
                if time.monotonic() - last_log > 30:
                    last_log = time.monotonic()
                    log.info("ingest totals %s", dict(self.totals))
        finally:
            self.shutdown()

    def shutdown(self):
        self.consumer.stop()
        for r in self.runners:
            r.stop(5.0)
        try:
            self.store.close()
        except Exception:
            pass
        log.info("ingest worker %s stopped: %s", self.cfg.worker_id, dict(self.totals))
