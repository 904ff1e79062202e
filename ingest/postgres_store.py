"""PostgreSQL store for the central ingest: the same interface the gateway's Pipeline uses
on SQLite (load_states, frame_bytes, commit_batch), with writes that are idempotent and
safe with several workers.

- frames: PRIMARY KEY (node_id, counter), inserted ON CONFLICT DO NOTHING. A copy that
  another worker (or a re-delivery) stored first is a duplicate; different bytes under
  a stored counter are `counter_reused`.
- rx: PRIMARY KEY (node_id, counter, gateway_id, radio): every gateway's copy of a frame
  is kept once, with its RSSI/SNR, as ChirpStack keeps rx_info per gateway.
- readings: UNIQUE (node_id, counter, sample, channel), and written only for frames this
  transaction inserted, so each reading is stored exactly once.
- nodes: counter state merged under a row lock: the union of accepted counters, and the
  counts moved by this worker's deltas, so workers never overwrite each other.

Write transactions take one advisory lock, so reading ids are handed out in commit order
and an outbox cursor over readings.id never skips a row committed late.
"""
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, replace

import psycopg

from sen.errors import SenError
from sen.gateway.counter_state import WINDOW, NodeCounters
from sen.gateway.store import mask_from_db, mask_to_db
from sen.gateway import uplink_wire as wire

log = logging.getLogger("sen.ingest.store")

SCHEMA_LOCK = 0x53454E00
WRITE_LOCK = 0x53454E01
_MASK = (1 << WINDOW) - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes(
    node_id integer PRIMARY KEY, last bigint, mask bigint DEFAULT 0, reboots bigint DEFAULT 0,
    lost bigint DEFAULT 0, accepted bigint DEFAULT 0, late bigint DEFAULT 0, duplicates bigint DEFAULT 0,
    last_seen double precision, rssi real, snr real, battery real, qflags integer,
    mic_failures bigint DEFAULT 0);
CREATE TABLE IF NOT EXISTS frames(
    node_id integer, counter bigint, raw_offset bigint, rx_time double precision, flags smallint,
    late boolean, frame bytea, stored_at timestamptz DEFAULT now(), PRIMARY KEY(node_id, counter));
CREATE TABLE IF NOT EXISTS rx(
    node_id integer, counter bigint, gateway_id text, radio text, time double precision,
    freq_hz integer, sf smallint, bw_hz integer, rssi real, snr real, raw_offset bigint,
    PRIMARY KEY(node_id, counter, gateway_id, radio));
CREATE TABLE IF NOT EXISTS readings(
    id bigserial PRIMARY KEY, node_id integer, counter bigint, sample smallint, time double precision,
    channel smallint, raw double precision, value double precision, qflags integer, cal text,
    UNIQUE(node_id, counter, sample, channel));
CREATE INDEX IF NOT EXISTS readings_node_time ON readings(node_id, channel, time);
CREATE TABLE IF NOT EXISTS rejections(reason text PRIMARY KEY, count bigint);
CREATE TABLE IF NOT EXISTS outbox(
    name text PRIMARY KEY, cursor bigint DEFAULT 0, sent bigint DEFAULT 0, dropped bigint DEFAULT 0,
    last_ok double precision, last_error text, last_error_time double precision);
CREATE TABLE IF NOT EXISTS upstream_ids(forwarder text, key text, id text, PRIMARY KEY(forwarder, key));
CREATE TABLE IF NOT EXISTS parked(
    node_id integer, gateway_id text, radio text, frame bytea, record bytea, raw_offset bigint,
    parked_at double precision, PRIMARY KEY(node_id, gateway_id, radio, frame));
CREATE TABLE IF NOT EXISTS workers(
    worker_id text PRIMARY KEY, host text, pid integer, started double precision, subscribed double precision,
    last_batch double precision, batches bigint DEFAULT 0, copies bigint DEFAULT 0,
    frames bigint DEFAULT 0, duplicates bigint DEFAULT 0, readings bigint DEFAULT 0);
"""

NODE_SELECT = "SELECT node_id, last, mask, reboots, lost, accepted, late, duplicates FROM nodes"


def connect(dsn: str, autocommit: bool = True, app: str = "sen-ingest") -> psycopg.Connection:
    """app: application_name, so pg_stat_activity shows which worker holds what."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, application_name=app[:63])
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenError(f"cannot connect to PostgreSQL ({first})",
                       "check [postgres] dsn in ingest.toml and that the server is running") from None


def ensure_schema(con: psycopg.Connection):
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # two workers starting at once
        con.execute(SCHEMA)


def _state(row) -> NodeCounters:
    last = -1 if row[1] is None else row[1]  # a row made only to count MIC failures knows no counter
    return NodeCounters(last, mask_from_db(row[2] or 0), *(x or 0 for x in row[3:8]))


def union_window(a: NodeCounters, b: NodeCounters) -> tuple[int, int]:
    """(last, mask) of the union of two views of the accepted counters."""
    if not a.known:
        return b.last, b.mask
    if not b.known:
        return a.last, a.mask
    last = max(a.last, b.last)

    def shifted(s: NodeCounters) -> int:
        k = last - s.last
        return (s.mask << k) & _MASK if k < WINDOW else 0

    return last, shifted(a) | shifted(b)


@dataclass
class CommitStats:
    frames: int = 0  # frames this transaction stored
    duplicates: int = 0  # copies merged into frames already stored (here or by another worker)
    reused: int = 0
    rx: int = 0
    readings: int = 0


def normalise_rows(frames: list, rx: list, readings: list) -> tuple[list, list, list]:
    """The Pipeline's row shapes, as the SQLite store takes them, to this store's:
    frames (node, counter, offset, time, flags, late, frame); rx rows for every copy;
    readings without ids (PostgreSQL numbers them in commit order).

    The Pipeline may carry the first copy's rx metadata inside the frame row (16 columns:
    ..., first reading id, n readings, gateway, radio, freq, sf, bw, rssi, snr) and give
    readings a leading id (10 columns); both shapes are accepted."""
    if frames and len(frames[0]) >= 16:
        rx = [(f[0], f[1], f[9], f[10], f[3], f[11], f[12], f[13], f[14], f[15], f[2]) for f in frames] + list(rx)
        frames = [f[:7] for f in frames]
    if readings and len(readings[0]) == 10:
        readings = [r[1:] for r in readings]
    return frames, rx, readings


class PgStore:
    """A sen.gateway.storage.Storage, plus the ingest's own parking, refresh and worker views."""

    # The Pipeline pre-numbers readings from this; PostgreSQL assigns the real ids, so any value does.
    next_reading_id = 1
    compact_readings = False  # the Pipeline hands full reading rows (the compact form is SQLite SQL)

    def __init__(self, dsn: str, worker_id: str = ""):
        self.dsn = dsn
        self.worker_id = worker_id
        self.con = connect(dsn, app=f"sen-ingest:{worker_id}")
        ensure_schema(self.con)
        self._base: dict[int, NodeCounters] = {}
        self._pending_rejections: Counter = Counter()
        self._unpark: list = []
        self._prefetch_keys: set = set()
        self._prefetched: dict = {}
        self.last_commit = CommitStats()

    def reconnect(self):
        try:
            self.con.close()
        except Exception:
            pass
        self.con = connect(self.dsn, app=f"sen-ingest:{self.worker_id}")
        self._base.clear()

    # --- the Pipeline's Storage interface ---------------------------------------------
    def load_states(self) -> dict[int, NodeCounters]:
        """Empty: with several workers any cached state goes stale, so the worker calls
        refresh() for the nodes of each batch instead."""
        self._base.clear()
        return {}

    def refresh(self, states: dict[int, NodeCounters], node_ids) -> None:
        ids = sorted({int(n) for n in node_ids})
        found = set()
        for row in self.con.execute(NODE_SELECT + " WHERE node_id = ANY(%b) AND last IS NOT NULL", (ids,)):
            st = _state(row)
            states[row[0]] = st
            self._base[row[0]] = replace(st)
            found.add(row[0])
        for n in ids:
            if n not in found:
                states.pop(n, None)
                self._base.pop(n, None)

    def prefetch_frames(self, keys):
        """Load, in one query, the stored bytes of frames the coming batch may duplicate, so
        the pipeline's duplicate check does not cost a round trip per copy."""
        keys = sorted(set(keys))
        self._prefetch_keys = set(keys)
        self._prefetched = {}
        if keys:
            for n, c, b in self.con.execute(
                    "SELECT f.node_id, f.counter, f.frame FROM frames f JOIN unnest(%b::integer[], %b::bigint[])"
                    " AS k(n, c) ON f.node_id = k.n AND f.counter = k.c",
                    ([k[0] for k in keys], [k[1] for k in keys])).fetchall():
                self._prefetched[(n, c)] = bytes(b)

    def frame_bytes(self, node_id: int, counter: int) -> bytes | None:
        key = (node_id, counter)
        got = self._prefetched.get(key)
        if got is not None or key in self._prefetch_keys:
            return got
        row = self.con.execute("SELECT frame FROM frames WHERE node_id=%s AND counter=%s",
                               (node_id, counter)).fetchone()
        return bytes(row[0]) if row else None

    def frames_before(self, node_id: int, counter: int, page: int = 16):
        """(counter, rx_time, frame) of the node's stored frames below `counter`, newest first,
        a page at a time: the pipeline's re-sent-sample check (gateway/dedupe.py) reads few."""
        while True:
            rows = self.con.execute("SELECT counter, rx_time, frame FROM frames WHERE node_id=%s AND counter<%s"
                                    " ORDER BY counter DESC LIMIT %s", (node_id, counter, page)).fetchall()
            yield from ((c, t, bytes(f)) for c, t, f in rows)
            if len(rows) < page:
                return
            counter = rows[-1][0]

    # --- parking: 16-bit-counter frames of nodes whose full counter no worker has stored yet
    def park(self, rows):
        """rows: (frame, meta, raw_offset). Durable before the broker gets its PUBACK."""
        if not rows:
            return
        now = time.time()
        cols = ([wire.node_of(f) for f, _, _ in rows], [m.gateway_id for _, m, _ in rows],
                [m.radio for _, m, _ in rows], [bytes(f) for f, _, _ in rows],
                [wire.encode(f, m) for f, m, _ in rows], [o for _, _, o in rows], [now] * len(rows))
        self.con.execute("INSERT INTO parked SELECT * FROM unnest(%b::integer[], %b::text[], %b::text[], %b::bytea[],"
                         " %b::bytea[], %b::bigint[], %b::float8[]) ON CONFLICT DO NOTHING", cols)

    def parked_ready(self, limit: int, expire_before: float) -> list[tuple]:
        """Parked copies whose node now has counter state (or that waited too long, and
        go to the pipeline to be counted as counter_unknown): [(frame, meta, raw_offset)].
        They are deleted by the next commit_batch, in its transaction; called inside the
        worker's batch transaction, the rows stay locked to this worker until then (SKIP
        LOCKED: two workers never take the same parked copy)."""
        rows = self.con.execute(
            "SELECT p.record, p.raw_offset FROM parked p LEFT JOIN nodes n ON n.node_id = p.node_id"
            " WHERE n.last IS NOT NULL OR p.parked_at < %s ORDER BY p.parked_at LIMIT %s"
            " FOR UPDATE OF p SKIP LOCKED", (expire_before, limit)).fetchall()
        out = []
        for rec, off in rows:
            rec = bytes(rec)
            topic = f"x/uplink/{wire.decode_gateway(rec)}/0"
            frame, meta = wire.decode(topic, rec)
            out.append((frame, meta, off))
        self._unpark = [(wire.node_of(f), m.gateway_id, m.radio, bytes(f)) for f, m, _ in out]
        return out

    def parked_count(self) -> int:
        return self.con.execute("SELECT count(*) FROM parked").fetchone()[0]

    def add_rejections(self, counts: dict[str, int]):
        """Ingest-level rejections (bad payloads); written with the next commit."""
        self._pending_rejections.update(counts)

    def raw_offset(self) -> int:
        return 0  # the ingest has no raw log of its own; the broker session is its queue

    def commit_batch(self, *, raw_offset, frames: list, rx: list, readings: list,
                     nodes: dict[int, NodeCounters], node_seen: dict[int, tuple], rejections: dict[str, int],
                     mic_failures: dict[int, int], cursor_key: str = "raw_offset", compact: dict | None = None,
                     resent: dict[int, int] | None = None, next_reading_id: int | None = None):
        # cursor_key, next_reading_id: the ingest has no raw log and PostgreSQL numbers readings;
        # compact is always empty (compact_readings = False); re-sent counts have no column here
        rejections = Counter(rejections)
        rejections.update(self._pending_rejections)
        frames, rx, readings = normalise_rows(frames, rx, readings)
        stats = CommitStats()
        frames = sorted(frames, key=lambda f: (f[0], f[1]))
        dup_by_node: Counter = Counter()
        reused_by_node: Counter = Counter()
        merged: dict[int, NodeCounters] = {}
        with self.con.transaction():
            cur = self.con.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            inserted: set = set()
            if frames:
                cols = [list(c) for c in zip(*frames)]
                cur.execute(
                    "INSERT INTO frames(node_id, counter, raw_offset, rx_time, flags, late, frame)"
                    " SELECT * FROM unnest(%b::integer[], %b::bigint[], %b::bigint[], %b::float8[],"
                    " %b::smallint[], %b::boolean[], %b::bytea[])"
                    " ON CONFLICT DO NOTHING RETURNING node_id, counter", cols)
                inserted = set(cur.fetchall())
            conflicted = [f for f in frames if (f[0], f[1]) not in inserted]
            reused: set = set()
            if conflicted:
                cur.execute("SELECT f.node_id, f.counter, f.frame FROM frames f JOIN unnest(%b::integer[], %b::bigint[])"
                            " AS k(n, c) ON f.node_id = k.n AND f.counter = k.c",
                            ([f[0] for f in conflicted], [f[1] for f in conflicted]))
                stored = {(n, c): bytes(b) for n, c, b in cur.fetchall()}
                for f in conflicted:
                    if stored.get((f[0], f[1])) == bytes(f[6]):
                        dup_by_node[f[0]] += 1
                    else:
                        reused.add((f[0], f[1]))
                        reused_by_node[f[0]] += 1
                if reused:
                    rejections["counter_reused"] += len(reused)
            stats.frames = len(inserted)
            stats.duplicates = sum(dup_by_node.values())
            stats.reused = len(reused)
            if rx:
                rows = [r for r in rx if (r[0], r[1]) not in reused]
                if rows:
                    cols = [list(c) for c in zip(*rows)]
                    cur.execute(
                        "INSERT INTO rx(node_id, counter, gateway_id, radio, time, freq_hz, sf, bw_hz, rssi, snr,"
                        " raw_offset) SELECT * FROM unnest(%b::integer[], %b::bigint[], %b::text[], %b::text[],"
                        " %b::float8[], %b::integer[], %b::smallint[], %b::integer[], %b::real[], %b::real[],"
                        " %b::bigint[]) ON CONFLICT DO NOTHING", cols)
                    stats.rx = cur.rowcount
            if readings:
                rows = [r for r in readings if (r[0], r[1]) in inserted]
                if rows:
                    cols = [list(c) for c in zip(*rows)]
                    cur.execute(
                        "INSERT INTO readings(node_id, counter, sample, time, channel, raw, value, qflags, cal)"
                        " SELECT * FROM unnest(%b::integer[], %b::bigint[], %b::smallint[], %b::float8[],"
                        " %b::smallint[], %b::float8[], %b::float8[], %b::integer[], %b::text[])"
                        " ON CONFLICT DO NOTHING", cols)
                    stats.readings = cur.rowcount
            if nodes:
                ids = sorted(nodes)
                cur.execute("INSERT INTO nodes(node_id) SELECT unnest(%b::integer[]) ON CONFLICT DO NOTHING", (ids,))
                cur.execute(NODE_SELECT + " WHERE node_id = ANY(%b) ORDER BY node_id FOR UPDATE", (ids,))
                in_db = {r[0]: _state(r) for r in cur.fetchall()}
                for n in ids:
                    merged[n] = self._merge(in_db.get(n, NodeCounters()), nodes[n], self._base.get(n, NodeCounters()),
                                            dup_by_node[n], reused_by_node[n])
                cur.execute(
                    "UPDATE nodes SET last=v.last, mask=v.mask, reboots=v.reboots, lost=v.lost, accepted=v.accepted,"
                    " late=v.late, duplicates=v.duplicates FROM unnest(%b::integer[], %b::bigint[], %b::bigint[],"
                    " %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[])"
                    " AS v(node_id, last, mask, reboots, lost, accepted, late, duplicates)"
                    " WHERE nodes.node_id = v.node_id",
                    (ids, [merged[n].last for n in ids], [mask_to_db(merged[n].mask) for n in ids],
                     [merged[n].reboots for n in ids], [merged[n].lost for n in ids],
                     [merged[n].accepted for n in ids], [merged[n].late for n in ids],
                     [merged[n].duplicates for n in ids]))
            if node_seen:
                ids = sorted(node_seen)
                cur.execute(
                    "UPDATE nodes SET last_seen=v.t, rssi=v.rssi, snr=v.snr, battery=COALESCE(v.b, nodes.battery),"
                    " qflags=v.q FROM unnest(%b::integer[], %b::float8[], %b::real[], %b::real[], %b::real[],"
                    " %b::integer[]) AS v(n, t, rssi, snr, b, q)"
                    " WHERE nodes.node_id = v.n AND (nodes.last_seen IS NULL OR nodes.last_seen <= v.t)",
                    (ids, *([node_seen[n][i] for n in ids] for i in range(5))))
            if mic_failures:
                ids = sorted(mic_failures)
                cur.execute("INSERT INTO nodes(node_id, mic_failures) SELECT * FROM unnest(%b::integer[], %b::bigint[])"
                            " ON CONFLICT(node_id) DO UPDATE SET mic_failures = nodes.mic_failures"
                            " + excluded.mic_failures", (ids, [mic_failures[n] for n in ids]))
            if rejections:
                keys = sorted(rejections)
                cur.execute("INSERT INTO rejections SELECT * FROM unnest(%b::text[], %b::bigint[])"
                            " ON CONFLICT(reason) DO UPDATE SET count = rejections.count + excluded.count",
                            (keys, [rejections[k] for k in keys]))
            if self._unpark:
                cur.execute("DELETE FROM parked p USING unnest(%b::integer[], %b::text[], %b::text[], %b::bytea[])"
                            " AS k(n, g, r, f) WHERE p.node_id = k.n AND p.gateway_id = k.g AND p.radio = k.r"
                            " AND p.frame = k.f", [list(c) for c in zip(*self._unpark)])
            if self.worker_id:
                cur.execute(
                    "INSERT INTO workers(worker_id, host, pid, started, last_batch, batches, copies, frames,"
                    " duplicates, readings) VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s, %s)"
                    " ON CONFLICT(worker_id) DO UPDATE SET host=excluded.host, pid=excluded.pid,"
                    " last_batch=excluded.last_batch, batches=workers.batches+1,"
                    " copies=workers.copies+excluded.copies, frames=workers.frames+excluded.frames,"
                    " duplicates=workers.duplicates+excluded.duplicates, readings=workers.readings+excluded.readings",
                    (self.worker_id, socket.gethostname(), os.getpid(), time.time(), time.time(), len(rx),
                     stats.frames, len(rx) - stats.frames - stats.reused, stats.readings))
        # committed: the in-memory states (the Pipeline's objects) take the merged view
        self._pending_rejections.clear()
        self._unpark = []
        self._prefetch_keys = set()
        self._prefetched = {}
        for n, m in merged.items():
            st = nodes[n]
            for f in ("last", "mask", "reboots", "lost", "accepted", "late", "duplicates"):
                setattr(st, f, getattr(m, f))
            self._base[n] = replace(m)
        self.last_commit = stats

    @staticmethod
    def _merge(in_db: NodeCounters, mine: NodeCounters, base: NodeCounters, dups: int, reused: int) -> NodeCounters:
        """in_db: the row now (other workers' commits included); mine: this worker's state
        after the batch; base: what this worker loaded before it. Counts move by deltas."""
        last, mask = union_window(in_db, mine)
        m = NodeCounters(last, mask)
        m.accepted = in_db.accepted + mine.accepted - base.accepted - dups - reused
        m.duplicates = in_db.duplicates + mine.duplicates - base.duplicates + dups
        m.reboots = in_db.reboots + mine.reboots - base.reboots
        m.late = in_db.late + mine.late - base.late
        m.lost = max(0, in_db.lost + mine.lost - base.lost)
        return m

    # --- operator views -------------------------------------------------------------
    def register_worker(self):
        self.con.execute("INSERT INTO workers(worker_id, host, pid, started) VALUES (%s, %s, %s, %s)"
                         " ON CONFLICT(worker_id) DO UPDATE SET host=excluded.host, pid=excluded.pid,"
                         " started=excluded.started, subscribed=NULL",
                         (self.worker_id, socket.gethostname(), os.getpid(), time.time()))

    def mark_subscribed(self):
        self.con.execute("UPDATE workers SET subscribed=%s WHERE worker_id=%s", (time.time(), self.worker_id))

    def close(self):
        self.con.close()
