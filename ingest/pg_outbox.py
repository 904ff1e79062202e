"""The gateway's forwarders, fed from PostgreSQL.

PgOutbox is sen.gateway.outbox's OutboxCore (fetch/ack/error/close, whole samples,
`Sample.id` as the idempotent id) over the central readings table. Readings ids
are handed out in commit order (see postgres_store), so a cursor never skips a row.

With several workers, each forwarder runs in exactly one of them: the one holding a
PostgreSQL session advisory lock named after the forwarder. When that worker dies its
session ends, the lock is free, and another worker takes the forwarder over from the
persisted cursor (at-least-once; receivers dedupe on the idempotent ids).
"""
import zlib

from sen.gateway.forwarders.base import ForwarderRunner
from sen.gateway.outbox import OutboxCore
from sen.ingest.pg_leader import run_as_leader

LOCK_BASE = 0x53454E10


def lock_key(name: str) -> int:
    return LOCK_BASE + zlib.crc32(name.encode()) % 100_000


def leader_sql() -> str:
    """Which worker leads which forwarder: (application_name, advisory lock key)."""
    return ("SELECT a.application_name, l.objid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'sen-ingest:%:forwarder:%'")


class PgOutbox(OutboxCore):
    """Over the central PostgreSQL store: every copy of a frame is an rx row; the strongest goes first."""

    GREATEST = "GREATEST"

    @staticmethod
    def _sql(text: str) -> str:
        return text.replace("?", "%s")

    def _rx_rows(self, keys):
        return self.con.execute(
            "SELECT r.node_id, r.counter, gateway_id, radio, time, freq_hz, sf, bw_hz, rssi, snr FROM rx r"
            " JOIN unnest(%b::integer[], %b::bigint[]) AS k(n, c) ON r.node_id = k.n AND r.counter = k.c"
            " ORDER BY r.node_id, r.counter, rssi DESC",
            ([k[0] for k in keys], [k[1] for k in keys]))

    def remember_many(self, pairs):
        with self.con.cursor() as cur:
            cur.executemany("INSERT INTO upstream_ids(forwarder, key, id) VALUES (%s,%s,%s)"
                            " ON CONFLICT (forwarder, key) DO UPDATE SET id=excluded.id",
                            [(self.name, k, v) for k, v in pairs])


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
            run_as_leader(self, lock_key(self.name), lambda con: self._lead(PgOutbox(con, self.name, self.max_pending)),
                          f"forwarder {self.name}")
        finally:
            try:
                self.fw.close()
            except Exception:
                pass

    def _lead(self, outbox: PgOutbox):
        self._serve(outbox)

    def _failed(self, outbox, exc: Exception):
        if outbox.con.closed:
            raise exc  # the connection, not the upstream: lead again from a new one
        super()._failed(outbox, exc)

    def _record_error(self, outbox):
        outbox.error(self.last_error)  # failing here means the connection is gone: as above

    def _retry_cap(self) -> float | None:
        return None  # as before the loops were shared: the leader never took the forwarder's own cap
