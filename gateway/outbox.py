"""Outbox: one persistent cursor per forwarder over the store's readings, so a forwarder
that is down only falls behind; nothing is copied and nothing is lost while the lag stays
within the bound. Past the bound (`max_pending` readings) the oldest are skipped and
counted as dropped, so a dead upstream can never fill the disk twice over.

Samples (all readings of one node, counter and sample index) are never split between
batches; `Sample.id` is the idempotent id receivers dedupe on.

OutboxCore is the whole of that logic over a DB-API connection; the SQLite outbox here and
the ingest's PostgreSQL one (sen.ingest.pg_outbox) differ only in SQL dialect and in how
they read a frame's rx copies.
"""
import time
from dataclasses import dataclass, field

from sen.channels import BY_ID, Channel
from sen.gateway.store import connect


@dataclass
class OutReading:
    channel: Channel
    raw: float | None
    value: float | None
    qflags: int

    @property
    def id_suffix(self) -> str:
        return self.channel.name


@dataclass
class Sample:
    node_id: int
    counter: int
    sample: int
    time: float
    readings: list[OutReading] = field(default_factory=list)
    rx: list[dict] = field(default_factory=list)
    tx: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.node_id}-{self.counter}-{self.sample}"

    def reading_id(self, r: OutReading) -> str:
        return f"{self.id}-{r.channel.name}"


class OutboxCore:
    """Cursor, bound, whole-sample batches, ack and the upstream-id memory, written once.
    Subclasses give the dialect: `_sql` (placeholders), GREATEST, `_rx_rows`, `remember_many`."""

    GREATEST = "MAX"  # SQLite's scalar max(a, b); PostgreSQL spells it GREATEST

    def __init__(self, con, name: str, max_pending: int = 5_000_000):
        self.con = con
        self.name = name
        self.max_pending = max_pending
        self._execute("INSERT INTO outbox(name, cursor) VALUES (?, 0) ON CONFLICT DO NOTHING", (name,))

    @staticmethod
    def _sql(text: str) -> str:
        return text  # SQL is written with `?` placeholders, SQLite's own

    def _execute(self, text: str, args=()):
        return self.con.execute(self._sql(text), args)

    def _rx_rows(self, keys: list[tuple[int, int]]):
        """(node, counter, gateway, radio, time, freq, sf, bw, rssi, snr) of every copy of the
        frames `keys`, the copy to report first (the frame row's, or the strongest) first."""
        raise NotImplementedError

    def remember_many(self, pairs):
        raise NotImplementedError

    def cursor(self) -> int:
        return self._execute("SELECT cursor FROM outbox WHERE name=?", (self.name,)).fetchone()[0]

    def head(self) -> int:
        return self._execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]

    def depth(self) -> int:
        return self._execute("SELECT COUNT(*) FROM readings WHERE id > ?", (self.cursor(),)).fetchone()[0]

    def _enforce_bound(self, cur: int) -> int:
        head = self.head()
        if head - cur <= self.max_pending:
            return cur
        new = head - self.max_pending
        self._execute("UPDATE outbox SET cursor=?, dropped=dropped+? WHERE name=?", (new, new - cur, self.name))
        return new

    def fetch(self, limit: int = 1000) -> tuple[list[Sample], int]:
        """Up to `limit` readings' worth of whole samples after the cursor; returns them
        and the reading id to ack once they are delivered."""
        cur = self.last_from = self._enforce_bound(self.cursor())
        rows = self._execute(
            "SELECT id, node_id, counter, sample, time, channel, raw, value, qflags FROM readings"
            " WHERE id > ? ORDER BY id LIMIT ?", (cur, limit)).fetchall()
        if not rows:
            return [], cur
        if len(rows) == limit:
            last_key = rows[-1][1:4]
            cut = len(rows)
            while cut > 0 and rows[cut - 1][1:4] == last_key:
                cut -= 1
            if cut > 0:  # a sample larger than `limit` goes whole, alone
                rows = rows[:cut]
        samples: list[Sample] = []
        for _rid, node, counter, si, t, ch, raw, value, q in rows:
            if not samples or (samples[-1].node_id, samples[-1].counter, samples[-1].sample) != (node, counter, si):
                samples.append(Sample(node, counter, si, t))
            samples[-1].readings.append(OutReading(BY_ID[ch], raw, value, q))
        self._attach_rx(samples)
        return samples, rows[-1][0]

    def _attach_rx(self, samples: list[Sample]):
        by_frame: dict[tuple, list] = {}
        for node, counter, gw, radio, t, freq, sf, bw, rssi, snr in self._rx_rows(
                sorted({(s.node_id, s.counter) for s in samples})):
            by_frame.setdefault((node, counter), []).append(
                {"gatewayId": gw, "radio": radio, "time": t, "rssi": rssi, "snr": snr,
                 "_tx": {"frequency": freq, "spreadingFactor": sf, "bandwidth": bw}})
        for s in samples:
            copies = by_frame.get((s.node_id, s.counter), [])
            s.tx = copies[0]["_tx"] if copies else {}
            s.rx = [{k: v for k, v in c.items() if k != "_tx"} for c in copies]

    def ack(self, upto: int, n_samples: int):
        self._execute(f"UPDATE outbox SET cursor={self.GREATEST}(cursor, ?), sent=sent+?, last_ok=? WHERE name=?",
                      (upto, n_samples, time.time(), self.name))

    def recall(self, key: str) -> str | None:
        """What the forwarder remembered under `key` (an id its upstream assigned), or None."""
        row = self._execute("SELECT id FROM upstream_ids WHERE forwarder=? AND key=?", (self.name, key)).fetchone()
        return row[0] if row else None

    def remember(self, key: str, value: str):
        self.remember_many([(key, value)])

    def error(self, message: str):
        self._execute("UPDATE outbox SET last_error=?, last_error_time=? WHERE name=?",
                      (message[:500], time.time(), self.name))

    def close(self):
        self.con.close()


class Outbox(OutboxCore):
    """Over the gateway's SQLite store: a frame's first copy lives in its frames row, the others in rx."""

    def __init__(self, db_path, name: str, max_pending: int = 5_000_000):
        super().__init__(connect(db_path), name, max_pending)

    def _rx_rows(self, keys):
        for i in range(0, len(keys), 400):  # SQLite's bound-parameter limit
            chunk = keys[i:i + 400]
            q = ",".join("(?,?)" for _ in chunk)
            args = [x for k in chunk for x in k]
            yield from self.con.execute(
                f"SELECT node_id, counter, gateway_id, radio, rx_time, freq_hz, sf, bw_hz, rssi, snr FROM frames"
                f" WHERE (node_id, counter) IN (VALUES {q}) UNION ALL"
                f" SELECT node_id, counter, gateway_id, radio, time, freq_hz, sf, bw_hz, rssi, snr FROM rx"
                f" WHERE (node_id, counter) IN (VALUES {q})", args + args)

    def remember_many(self, pairs):
        with self.con:
            self.con.executemany("INSERT OR REPLACE INTO upstream_ids(forwarder, key, id) VALUES (?,?,?)",
                                 [(self.name, k, v) for k, v in pairs])
