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

from sen.gateway import counter_state
from sen.gateway import uplink_wire as wire
from sen.gateway.backoff import Backoff
from sen.gateway.calibrate import Calibrator
from sen.gateway.forwarders.build import build_forwarders
from sen.gateway.frame_decode import FrameRejected, parse_header
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.ingest.adr_publisher import AdvicePublisher
from sen.ingest.mqtt_consumer import SharedConsumer
from sen.ingest.pg_outbox import LeaderForwarderRunner
from sen.ingest.postgres_store import PgStore

log = logging.getLogger("sen.ingest")
# a failed store batch is retried from memory (nothing acked), after 0.4, 0.8 ... 10 s
STORE_RETRY = Backoff(0.4, 10.0, max_doublings=5, jitter=False)


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
            forwarders = build_forwarders(cfg)
        self.runners = [LeaderForwarderRunner(f, cfg.dsn, max_pending=cfg.max_pending, app=f"sen-ingest:{cfg.worker_id}")
                        for f in forwarders]
        self.advice = None
        if cfg.adr_publish:
            self.advice = AdvicePublisher(cfg.dsn, self.consumer.client, self.consumer.connected, prefix=b.topic_prefix,
                                          params=cfg.adr_params, interval_s=cfg.adr_interval_s,
                                          refresh_s=cfg.adr_refresh_s, app=f"sen-ingest:{cfg.worker_id}")
        self.retry: list[tuple] = []  # (message, frame, meta) of a batch the store could not take
        self._next_parked_check = 0.0
        self.totals = Counter()
        self.stopping = threading.Event()
        self.failures = 0

    # --- one batch --------------------------------------------------------------------
    def step(self) -> int:
        """Take one window of records, store them, acknowledge them; returns records taken."""
        msgs = self.consumer.take(self.cfg.window_ms / 1000.0, self.cfg.batch_max,
                                  first_timeout=0.05 if self.retry else 0.5)
        items, bad, to_ack = [], Counter(), []
        for m in msgs:
            try:
                frame, meta = wire.decode(m.topic, m.payload)
            except wire.BadUplink as exc:
                bad[exc.reason] += 1
                to_ack.append(m)
                log.warning("uplink record refused: %s (topic %s)", exc, m.topic)
                continue
            items.append((m, frame, meta))
        items = self.retry + items
        self.retry = []
        if not items and not bad and time.monotonic() < self._next_parked_check:
            return 0
        try:
            self._store(items, bad, to_ack)
        except Exception as exc:
            # nothing was acknowledged: keep the records and retry after a pause
            if not isinstance(exc, (psycopg.Error, OSError)):
                log.exception("unexpected error storing a batch")
            self.failures += 1
            self.retry = items
            delay = STORE_RETRY.delay(self.failures)
            log.warning("store failed (%s: %s); retrying %d records in %.1fs", type(exc).__name__,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "", len(items), delay)
            self.stopping.wait(delay)
            try:
                self.store.reconnect()
                self.pipeline.reload_states()
            except Exception as exc2:
                log.warning("PostgreSQL still unreachable: %s", exc2)
            return len(msgs)
        self.failures = 0
        return len(msgs)

    def _store(self, items, bad: Counter, to_ack: list):
        self.keys.reload_if_changed()
        # one transaction: parked copies taken, new ones parked, the batch stored
        with self.store.con.transaction():
            taken = self._store_tx(items, bad)
        self.consumer.ack(taken + to_ack)

    def _store_tx(self, items, bad: Counter) -> list:
        store = self.store
        # parked copies whose node got its counter state since (from any worker), oldest first
        self._next_parked_check = time.monotonic() + 1.0
        unparked = store.parked_ready(self.cfg.batch_max, time.time() - self.cfg.defer_s)
        states = self.pipeline.states
        store.refresh(states, {wire.node_of(f) for _, f, _ in items} | {wire.node_of(f) for f, _, _ in unparked})
        known = {n for n, st in states.items() if st.known}
        records = [(off, off + 1, f, meta) for f, meta, off in unparked]
        taken, park, maybe_dup = [], [], []
        for f, _, _ in unparked:
            self._maybe_duplicate(f, states, maybe_dup)
        for m, frame, meta in items:
            try:
                h = parse_header(frame)
            except FrameRejected:
                h = None  # the pipeline counts it under its reason
            taken.append(m)
            if h is not None and self.keys.get(h.node_id) is not None:
                self._maybe_duplicate(frame, states, maybe_dup, h)
                if h.counter_bits == 32:
                    known.add(h.node_id)
                elif h.node_id not in known:
                    # A 16-bit counter needs the node's state, which the frame with the full
                    # counter brings; that frame may sit in another worker's queue right now.
                    park.append((frame, meta, m.gateway_offset))
                    continue
            records.append((m.gateway_offset, m.gateway_offset + 1, frame, meta))
        store.prefetch_frames(maybe_dup)
        if park:
            store.park(park)
            self.totals["parked"] += len(park)
        if bad:
            store.add_rejections(bad)
        if records:
            res = self.pipeline.process(records)
            st = store.last_commit
            self.totals["frames"] += st.frames
            self.totals["readings"] += st.readings
            self.totals["duplicates"] += st.duplicates + res.duplicates
            self.totals["unparked"] += len(unparked)
            self.totals.update(res.rejections)
        self.totals["copies"] += len(items)
        return taken

    @staticmethod
    def _maybe_duplicate(frame, states, out, h=None):
        """(node, counter) of a copy whose counter is at or below the node's last: a frame
        the store may already hold."""
        try:
            h = h or parse_header(frame)
            st = states.get(h.node_id)
            if st is not None and st.known:
                c32 = counter_state.reconstruct(st, h)
                if c32 <= st.last:
                    out.append((h.node_id, c32))
        except FrameRejected:
            pass

    # --- service ------------------------------------------------------------------------
    def start(self):
        self.store.register_worker()
        self.consumer.start()
        for r in self.runners:
            r.start()
        if self.advice is not None:
            self.advice.start()
        log.info("ingest worker %s: subscribed to %s on %s:%s, %d forwarder(s)", self.cfg.worker_id,
                 self.consumer.topic, self.cfg.broker.host, self.cfg.broker.port, len(self.runners))
        return self

    def run(self, install_signals: bool = True):
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        last_log = time.monotonic()
        marked = False
        try:
            while not self.stopping.is_set():
                self.step()
                if not marked and self.consumer.subscribed.is_set():
                    marked = True
                    self.store.mark_subscribed()
                    log.info("ingest worker %s: shared subscription granted", self.cfg.worker_id)
                if time.monotonic() - last_log > 30:
                    last_log = time.monotonic()
                    log.info("ingest totals %s", dict(self.totals))
        finally:
            self.shutdown()

    def shutdown(self):
        if self.advice is not None:
            self.advice.stop()  # before the consumer: its client carries the advice
        self.consumer.stop()
        for r in self.runners:
            r.stop(5.0)
        try:
            self.store.close()
        except Exception:
            pass
        log.info("ingest worker %s stopped: %s", self.cfg.worker_id, dict(self.totals))
