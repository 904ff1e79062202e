"""Read-only queries against the gateway store's SQLite schema (sen.gateway.store.SCHEMA).

Each thread of the web server gets its own connection with `query_only` on, so nothing the
page does can write to the store by accident; the service loop stays the one writer.
"""
import math
import sqlite3
import threading
from pathlib import Path

import numpy as np

from sen.gateway.store import connect


class StoreReader:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.con  # fail early (one clear error) when the store is missing

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect(self.db_path, readonly=True)
            con.execute("PRAGMA query_only=ON")
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self):
        with self._lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.Error:
                    pass
            self._all.clear()

    # --- change detection for live updates ------------------------------------------
    def version(self) -> tuple:
        """Changes whenever the gateway commits: newest reading id, rx copies, rejections, outbox."""
        c = self.con
        rid = c.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
        rx = c.execute("SELECT COALESCE(MAX(rowid), 0) FROM rx").fetchone()[0]
        rej = c.execute("SELECT COALESCE(SUM(count), 0) FROM rejections").fetchone()[0]
        ob = c.execute("SELECT COALESCE(SUM(cursor), 0), COALESCE(MAX(last_error_time), 0),"
                       " COALESCE(MAX(last_ok), 0) FROM outbox").fetchone()
        return (rid, rx, rej, *ob)

    # --- nodes -------------------------------------------------------------------------
    NODE_FIELDS = ("node_id", "last", "reboots", "lost", "accepted", "late", "duplicates", "last_seen",
                   "rssi", "snr", "battery", "qflags", "mic_failures")

    def nodes(self) -> list[dict]:
        rows = self.con.execute(f"SELECT {', '.join(self.NODE_FIELDS)} FROM nodes ORDER BY node_id").fetchall()
        return [dict(zip(self.NODE_FIELDS, r)) for r in rows]

    def node(self, node_id: int) -> dict | None:
        r = self.con.execute(f"SELECT {', '.join(self.NODE_FIELDS)} FROM nodes WHERE node_id=?", (node_id,)).fetchone()
        return dict(zip(self.NODE_FIELDS, r)) if r else None

    def best_copy(self, node_id: int, counter: int | None) -> dict | None:
        """The strongest radio copy of one frame, and how many copies there were."""
        if counter is None:
            return None
        rows = self.con.execute("SELECT gateway_id, radio, rssi, snr FROM rx WHERE node_id=? AND counter=?"
                                " ORDER BY rssi DESC", (node_id, counter)).fetchall()
        if not rows:
            return None
        gw, radio, rssi, snr = rows[0]
        return {"gateway_id": gw, "radio": radio, "rssi": rssi, "snr": snr, "copies": len(rows),
                "gateways": len({r[0] for r in rows})}

    def recent_frame_times(self, node_id: int, n: int = 24) -> list[float]:
        rows = self.con.execute("SELECT rx_time FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT ?",
                                (node_id, n)).fetchall()
        return [r[0] for r in rows if r[0] is not None]

    def channels(self, node_id: int) -> list[int]:
        """Distinct channels of a node, by a loose index scan (one seek per channel)."""
        rows = self.con.execute(
            "WITH RECURSIVE c(ch) AS (SELECT MIN(channel) FROM readings WHERE node_id=:n"
            " UNION ALL SELECT (SELECT MIN(channel) FROM readings WHERE node_id=:n AND channel > c.ch)"
            " FROM c WHERE c.ch IS NOT NULL) SELECT ch FROM c WHERE ch IS NOT NULL", {"n": node_id}).fetchall()
        return [r[0] for r in rows]

    def latest(self, node_id: int, channel: int) -> dict | None:
        r = self.con.execute("SELECT time, raw, value, qflags, cal FROM readings WHERE node_id=? AND channel=?"
                             " ORDER BY time DESC LIMIT 1", (node_id, channel)).fetchone()
        if not r:
            return None
        return {"time": r[0], "raw": r[1], "value": r[2], "qflags": r[3], "cal": r[4]}

    def series(self, node_id: int, channel: int, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        """(time, raw, value, qflags) arrays for one channel in [t0, t1], ordered by time."""
        rows = self.con.execute("SELECT time, raw, value, qflags FROM readings WHERE node_id=? AND channel=?"
                                " AND time >= ? AND time <= ? ORDER BY time", (node_id, channel, t0, t1)).fetchall()
        if not rows:
            e = np.zeros(0)
            return e, e, e, np.zeros(0, np.int64)
        t, raw, val, q = zip(*rows)
        return (np.asarray(t, float), np.asarray(raw, float), np.asarray(val, float),
                np.asarray(q, np.int64))

    def bucket_means(self, node_id: int, channel: int, t0: float, t1: float, width_s: float,
                     offset_s: float = 0.0, unflagged_only: bool = True) -> dict[int, tuple[float, int]]:
        """{bucket index: (mean calibrated value, count)}; bucket = floor((time + offset) / width)."""
        where = " AND qflags = 0" if unflagged_only else ""
        rows = self.con.execute(
            f"SELECT CAST((time + ?) / ? AS INTEGER) AS b, AVG(value), COUNT(value) FROM readings"
            f" WHERE node_id=? AND channel=? AND time >= ? AND time < ? AND value IS NOT NULL{where} GROUP BY b",
            (offset_s, width_s, node_id, channel, t0, t1)).fetchall()
        return {b: (m, n) for b, m, n in rows if m is not None and not math.isnan(m)}

    def bucket_sums(self, node_id: int, channel: int, t0: float, t1: float, width_s: float,
                    offset_s: float = 0.0) -> dict[int, tuple[float, int]]:
        rows = self.con.execute(
            "SELECT CAST((time + ?) / ? AS INTEGER) AS b, SUM(value), COUNT(value) FROM readings"
            " WHERE node_id=? AND channel=? AND time >= ? AND time < ? AND value IS NOT NULL"
            " AND (qflags & 3) = 0 GROUP BY b", (offset_s, width_s, node_id, channel, t0, t1)).fetchall()
        return {b: (s, n) for b, s, n in rows}

    # --- gateway-wide ------------------------------------------------------------------
    def rejections(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT reason, count FROM rejections ORDER BY count DESC").fetchall())

    def head(self) -> int:
        return self.con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]

    def outboxes(self) -> list[dict]:
        cols = ("name", "cursor", "sent", "dropped", "last_ok", "last_error", "last_error_time")
        rows = self.con.execute(f"SELECT {', '.join(cols)} FROM outbox ORDER BY name").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def reading_time(self, reading_id: int) -> float | None:
        r = self.con.execute("SELECT time FROM readings WHERE id=?", (reading_id,)).fetchone()
        return r[0] if r else None
