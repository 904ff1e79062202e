"""The gateway's forwarders, fed from PostgreSQL.

PgOutbox has the interface of sen.gateway.outbox.Outbox (fetch/ack/error/close, whole
samples, `Sample.id` as the idempotent id), over the central readings table. Readings ids
are handed out in commit order (see postgres_store), so a cursor never skips a row.

With several workers, each forwarder runs in exactly one of them: the one holding a
PostgreSQL session advisory lock named after the forwarder. When that worker dies its
session ends, the lock is free, and another worker takes the forwarder over from the
persisted cursor (at-least-once; receivers dedupe on the idempotent ids).
"""
import logging
import random
import time
import zlib

from sen.channels import BY_ID
from sen.gateway.forwarders.base import ForwarderRunner
from sen.gateway.outbox import OutReading, Sample
from sen.ingest.postgres_store import connect

log = logging.getLogger("sen.ingest.forward")
LOCK_BASE = 0x53454E10


def lock_key(name: str) -> int:
    return LOCK_BASE + zlib.crc32(name.encode()) % 100_000


def leader_sql() -> str:
    """Which worker leads which forwarder: (application_name, advisory lock key)."""
    return ("SELECT a.application_name, l.objid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'sen-ingest:%:forwarder:%'")


class PgOutbox:
    def __init__(self, con, name: str, max_pending: int = 5_000_000):
        self.con = con
        self.name = name
        self.max_pending = max_pending
        con.execute("INSERT INTO outbox(name, cursor) VALUES (%s, 0) ON CONFLICT DO NOTHING", (name,))

    def cursor(self) -> int:
        return self.con.execute("SELECT cursor FROM outbox WHERE name=%s", (self.name,)).fetchone()[0]

    def depth(self) -> int:
        return self.con.execute("SELECT count(*) FROM readings WHERE id > %s", (self.cursor(),)).fetchone()[0]

    def _enforce_bound(self, cur: int) -> int:
        head = self.con.execute("SELECT COALESCE(max(id), 0) FROM readings").fetchone()[0]
        if head - cur <= self.max_pending:
            return cur
        new = head - self.max_pending
        self.con.execute("UPDATE outbox SET cursor=%s, dropped=dropped+%s WHERE name=%s", (new, new - cur, self.name))
        return new

    def fetch(self, limit: int = 1000):
        cur = self.last_from = self._enforce_bound(self.cursor())
        rows = self.con.execute(
            "SELECT id, node_id, counter, sample, time, channel, raw, value, qflags FROM readings"
            " WHERE id > %s ORDER BY id LIMIT %s", (cur, limit)).fetchall()
        if not rows:
            return [], cur
        if len(rows) == limit:
            last_key = rows[-1][1:4]
            cut = len(rows)
            while cut > 0 and rows[cut - 1][1:4] == last_key:
                cut -= 1
            if cut > 0:
                rows = rows[:cut]
        samples: list[Sample] = []
        for _rid, node, counter, si, t, ch, raw, value, q in rows:
            if not samples or (samples[-1].node_id, samples[-1].counter, samples[-1].sample) != (node, counter, si):
                samples.append(Sample(node, counter, si, t))
            samples[-1].readings.append(OutReading(BY_ID[ch], raw, value, q))
        self._attach_rx(samples)
        return samples, rows[-1][0]

    def _attach_rx(self, samples):
        keys = sorted({(s.node_id, s.counter) for s in samples})
        by_frame: dict = {}
        for node, counter, gw, radio, t, freq, sf, bw, rssi, snr in self.con.execute(
                "SELECT r.node_id, r.counter, gateway_id, radio, time, freq_hz, sf, bw_hz, rssi, snr FROM rx r"
                " JOIN unnest(%b::integer[], %b::bigint[]) AS k(n, c) ON r.node_id = k.n AND r.counter = k.c"
                " ORDER BY r.node_id, r.counter, rssi DESC",
                ([k[0] for k in keys], [k[1] for k in keys])):
            by_frame.setdefault((node, counter), []).append(
                {"gatewayId": gw, "radio": radio, "time": t, "rssi": rssi, "snr": snr,
                 "_tx": {"frequency": freq, "spreadingFactor": sf, "bandwidth": bw}})
        for s in samples:
            copies = by_frame.get((s.node_id, s.counter), [])
            s.tx = copies[0]["_tx"] if copies else {}
            s.rx = [{k: v for k, v in c.items() if k != "_tx"} for c in copies]

    def ack(self, upto: int, n_samples: int):
        self.con.execute("UPDATE outbox SET cursor=GREATEST(cursor, %s), sent=sent+%s, last_ok=%s WHERE name=%s",
                         (upto, n_samples, time.time(), self.name))

    def error(self, message: str):
        self.con.execute("UPDATE outbox SET last_error=%s, last_error_time=%s WHERE name=%s",
                         (message[:500], time.time(), self.name))

    def recall(self, key: str) -> str | None:
        row = self.con.execute("SELECT id FROM upstream_ids WHERE forwarder=%s AND key=%s",
                               (self.name, key)).fetchone()
        return row[0] if row else None

    def remember(self, key: str, value: str):
        self.remember_many([(key, value)])

    def remember_many(self, pairs):
        with self.con.cursor() as cur:
            cur.executemany("INSERT INTO upstream_ids(forwarder, key, id) VALUES (%s,%s,%s)"
                            " ON CONFLICT (forwarder, key) DO UPDATE SET id=excluded.id",
                            [(self.name, k, v) for k, v in pairs])

    def close(self):
        self.con.close()


class LeaderForwarderRunner(ForwarderRunner):
    """The gateway's ForwarderRunner (same step(), same back-off), over a PgOutbox, run
    only while this worker holds the forwarder's advisory lock."""

    def __init__(self, forwarder, dsn: str, name: str | None = None, max_pending: int = 5_000_000,
                 standby_s: float = 2.0, app: str = "sen-ingest", **kw):
        super().__init__(forwarder, None, name=name, max_pending=max_pending, **kw)
        self.dsn = dsn
        self.app = f"{app}:forwarder:{self.name}"
        self.standby_s = standby_s
        self.leader = False

    def _run(self):
        try:
            while not self.stop_event.is_set():
                try:
                    con = connect(self.dsn, app=self.app)
                except Exception as exc:
                    self.last_error = str(exc)
                    self.stop_event.wait(self.standby_s)
                    continue
                try:
                    if con.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.name),)).fetchone()[0]:
                        self.leader = True
                        log.info("forwarder %s: this worker leads", self.name)
                        self._lead(PgOutbox(con, self.name, self.max_pending))
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("forwarder %s: %s", self.name, self.last_error)
                finally:
                    self.leader = False
                    try:
                        con.close()  # releases the advisory lock
                    except Exception:
                        pass
                self.stop_event.wait(self.standby_s * random.uniform(0.5, 1.0))
        finally:
            try:
                self.fw.close()
            except Exception:
                pass

    def _lead(self, outbox: PgOutbox):
        while not self.stop_event.is_set():
            try:
                n = self.step(outbox)
            except Exception as exc:
                if outbox.con.closed:
                    raise
                self.failures += 1
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                try:
                    outbox.error(self.last_error)
                except Exception:
                    raise
                delay = min(self.backoff_max, self.backoff_min * 2 ** min(self.failures - 1, 20)) * random.uniform(0.5, 1)
                if self.failures == 1 or self.failures % 20 == 0:
                    log.warning("forwarder %s failing (%s); retry in %.1fs", self.name, self.last_error, delay)
                self.stop_event.wait(delay)
                continue
            self.failures = 0
            self.healthy = True
            self.sent += n
            if n == 0:
                self.wake.wait(self.idle_s)
                self.wake.clear()
