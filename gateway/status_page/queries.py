"""Read-only queries against the gateway store's SQLite schema (sen.gateway.store.SCHEMA).

Each thread of the web server gets its own connection with `query_only` on, so nothing the
page does can write to the store by accident; the service loop stays the one writer.

Two layouts are understood. When `frames` carries each frame's reading-id range
(`first_reading`, `n_readings`) and `readings` has no (node, channel, time) index, a node's
time series is read through its frames (primary key node, counter; counters rise with time):
the first counter at a time is found by binary search, then each frame's readings by rowid
range. Otherwise readings are read through their (node_id, channel, time) index.
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
        con = self.con  # fail early (one clear error) when the store is missing
        cols = {r[1] for r in con.execute("PRAGMA table_info(frames)")}
        indexed = any(
            [r[2] for r in con.execute(f"PRAGMA index_info('{ix[1]}')")][:2] == ["node_id", "channel"]
            for ix in con.execute("PRAGMA index_list(readings)"))
        self.framed = "first_reading" in cols and not indexed
        node_cols = {r[1] for r in con.execute("PRAGMA table_info(nodes)")}
        if "epoch" in node_cols:  # stored counters are (epoch << 32) | counter
            self.NODE_FIELDS = self.NODE_FIELDS + ("epoch",)
        self.frame_copy = "rssi" in cols  # the first copy's rx metadata lives in frames

    # A sample is never later than its frame's arrival, so the frames holding a window's
    # samples all arrived at or after its start; frames are searched from a little earlier
    # only because arrival order and counter order differ for late copies.
    ORDER_MARGIN_S = 3600.0
    RECENT_FRAMES = 500

    def _counter_from(self, node_id: int, t: float) -> int:
        """Smallest counter of a frame received at or after t (binary search on the PK)."""
        c = self.con
        lo, hi = c.execute("SELECT MIN(counter), MAX(counter) FROM frames WHERE node_id=?", (node_id,)).fetchone()
        if lo is None:
            return 0
        hi += 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = c.execute("SELECT counter, rx_time FROM frames WHERE node_id=? AND counter>=? ORDER BY counter LIMIT 1",
                            (node_id, mid)).fetchone()
            if row is None or row[1] >= t:
                hi = mid
            else:
                lo = row[0] + 1
        return lo

    def _recent_counter(self, node_id: int) -> int:
        row = self.con.execute("SELECT counter FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT 1 OFFSET ?",
                               (node_id, self.RECENT_FRAMES)).fetchone()
        return row[0] if row else 0

    _JOIN = ("frames f JOIN readings r ON r.id >= f.first_reading AND r.id < f.first_reading + f.n_readings")

    def _window(self, cols: str, node_id: int, channel: int, t0: float, t1: float, tail: str = "",
                extra: str = "", args_before: tuple = ()) -> tuple[str, tuple]:
        """SQL selecting `cols` (on alias r) of one channel's readings with t0 <= time < t1."""
        if self.framed:
            c0 = self._counter_from(node_id, t0 - self.ORDER_MARGIN_S)
            return (f"SELECT {cols} FROM {self._JOIN} WHERE f.node_id=? AND f.counter>=? AND r.channel=?"
                    f" AND r.time>=? AND r.time<?{extra} {tail}", args_before + (node_id, c0, channel, t0, t1))
        return (f"SELECT {cols} FROM readings r WHERE r.node_id=? AND r.channel=? AND r.time>=? AND r.time<?{extra} {tail}",
                args_before + (node_id, channel, t0, t1))

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
        sql = "SELECT gateway_id, radio, rssi, snr FROM rx WHERE node_id=:n AND counter=:c"
        if self.frame_copy:
            sql += " UNION ALL SELECT gateway_id, radio, rssi, snr FROM frames WHERE node_id=:n AND counter=:c"
        rows = self.con.execute(f"SELECT * FROM ({sql}) ORDER BY rssi DESC", {"n": node_id, "c": counter}).fetchall()
        if not rows:
            return None
        gw, radio, rssi, snr = rows[0]
        return {"gateway_id": gw, "radio": radio, "rssi": rssi, "snr": snr, "copies": len(rows),
                "gateways": len({r[0] for r in rows})}

    def recent_frame_times(self, node_id: int, n: int = 24) -> list[float]:
        rows = self.con.execute("SELECT rx_time FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT ?",
                                (node_id, n)).fetchall()
        return [r[0] for r in rows if r[0] is not None]

    def channels(self, node_id: int, recent_frames: int = 50) -> list[int]:
        """Distinct channels of a node: by a loose index scan (one seek per channel), or, when
        readings are reached through frames, those in the node's last `recent_frames` frames."""
        if self.framed:
            row = self.con.execute("SELECT counter FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT 1 OFFSET ?",
                                   (node_id, recent_frames)).fetchone()
            rows = self.con.execute(f"SELECT DISTINCT r.channel FROM {self._JOIN} WHERE f.node_id=? AND f.counter>=?"
                                    " ORDER BY r.channel", (node_id, row[0] if row else 0)).fetchall()
            return [r[0] for r in rows]
        rows = self.con.execute(
            "WITH RECURSIVE c(ch) AS (SELECT MIN(channel) FROM readings WHERE node_id=:n"
            " UNION ALL SELECT (SELECT MIN(channel) FROM readings WHERE node_id=:n AND channel > c.ch)"
            " FROM c WHERE c.ch IS NOT NULL) SELECT ch FROM c WHERE ch IS NOT NULL", {"n": node_id}).fetchall()
        return [r[0] for r in rows]

    def latest(self, node_id: int, channel: int) -> dict | None:
        if self.framed:
            q = (f"SELECT r.time, r.raw, r.value, r.qflags, r.cal FROM {self._JOIN} WHERE f.node_id=? AND f.counter>=?"
                 " AND r.channel=? ORDER BY r.time DESC LIMIT 1")
            r = self.con.execute(q, (node_id, self._recent_counter(node_id), channel)).fetchone()
            if r is None:  # a channel not sent lately: look through all frames once
                r = self.con.execute(q, (node_id, 0, channel)).fetchone()
        else:
            r = self.con.execute("SELECT time, raw, value, qflags, cal FROM readings WHERE node_id=? AND channel=?"
                                 " ORDER BY time DESC LIMIT 1", (node_id, channel)).fetchone()
        if not r:
            return None
        return {"time": r[0], "raw": r[1], "value": r[2], "qflags": r[3], "cal": r[4]}

    def series_all(self, node_id: int, channels, t0: float, t1: float) -> dict[int, tuple]:
        """series() for several channels (None: every channel with readings in the window);
        through frames it is one pass over the window."""
        if not self.framed:
            return {ch: self.series(node_id, ch, t0, t1) for ch in (self.channels(node_id) if channels is None else channels)}
        only = "" if channels is None else f" AND r.channel IN ({','.join(str(int(c)) for c in channels)})"
        sql, args = self._node_window("r.channel, r.time, r.raw, r.value, r.qflags", node_id, t0, t1, extra=only)
        rows = self.con.execute(sql, args).fetchall()
        empty = (np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
        if not rows:
            return {ch: empty for ch in (channels or ())}
        a = np.array(rows, dtype=float)  # None -> nan
        if channels is None:
            channels = sorted(int(c) for c in np.unique(a[:, 0]))
        out = {}
        for ch in channels:
            sel = a[a[:, 0] == ch]
            sel = sel[np.argsort(sel[:, 1], kind="stable")]
            out[ch] = (sel[:, 1], sel[:, 2], sel[:, 3], sel[:, 4].astype(np.int64)) if len(sel) else empty
        return out

    def _node_window(self, cols: str, node_id: int, t0: float, t1: float, extra: str = "", tail: str = "",
                     args_before: tuple = ()) -> tuple[str, tuple]:
        """SQL selecting `cols` (alias r) of all a node's readings with t0 <= time <= t1."""
        if self.framed:
            c0 = self._counter_from(node_id, t0 - self.ORDER_MARGIN_S)
            return (f"SELECT {cols} FROM {self._JOIN} WHERE f.node_id=? AND f.counter>=? AND r.time>=? AND r.time<=?"
                    f"{extra} {tail}", args_before + (node_id, c0, t0, t1))
        return (f"SELECT {cols} FROM readings r WHERE r.node_id=? AND r.time>=? AND r.time<=?{extra} {tail}",
                args_before + (node_id, t0, t1))

    def buckets(self, node_id: int, t0: float, t1: float, n_buckets: int) -> tuple[list, list]:
        """Per channel and time bucket: count, mean time, mean raw, mean/min/max calibrated,
        aggregated inside SQLite; and per channel, bucket and flag set the first flagged reading
        (SQLite returns the bare columns of the row holding MIN(time))."""
        w = (t1 - t0) / n_buckets
        b = f"MIN(CAST((r.time - {float(t0)!r}) / {float(w)!r} AS INTEGER), {int(n_buckets) - 1})"
        sql, args = self._node_window(f"r.channel, {b} AS b, COUNT(*), AVG(r.time), AVG(r.raw), AVG(r.value),"
                                      " MIN(r.value), MAX(r.value), SUM(r.qflags != 0)", node_id, t0, t1,
                                      tail="GROUP BY r.channel, b")
        rows = self.con.execute(sql, args).fetchall()
        sql, args = self._node_window(f"r.channel, {b} AS b, r.qflags, MIN(r.time), r.raw, r.value", node_id, t0, t1,
                                      extra=" AND r.qflags != 0", tail="GROUP BY r.channel, b, r.qflags")
        marks = self.con.execute(sql, args).fetchall()
        return rows, marks

    def series(self, node_id: int, channel: int, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        """(time, raw, value, qflags) arrays for one channel in [t0, t1], ordered by time."""
        sql, args = self._window("r.time, r.raw, r.value, r.qflags", node_id, channel, t0, math.nextafter(t1, math.inf),
                                 "ORDER BY r.time")
        rows = self.con.execute(sql, args).fetchall()
        if not rows:
            e = np.zeros(0)
            return e, e, e, np.zeros(0, np.int64)
        t, raw, val, q = zip(*rows)
        return (np.asarray(t, float), np.asarray(raw, float), np.asarray(val, float),
                np.asarray(q, np.int64))

    def bucket_sum_counts(self, node_id: int, channel: int, t0: float, t1: float, width_s: float,
                          qmask: int = -1) -> dict[int, tuple[float, int]]:
        """{floor(time / width): (sum, count)} of values whose qflags & qmask == 0, in one pass."""
        sql2, args2 = self._window("CAST(r.time / ? AS INTEGER) AS b, SUM(r.value), COUNT(r.value)", node_id, channel,
                                   t0, t1, "GROUP BY b", f" AND r.value IS NOT NULL AND (r.qflags & {int(qmask)}) = 0",
                                   (width_s,))
        rows = self.con.execute(sql2, args2).fetchall()
        return {b: (sm, n) for b, sm, n in rows if n}

    def latest_all(self, node_id: int, channels=None) -> dict[int, dict]:
        """Newest reading per channel: looks at the last few frames first, widening only when a
        wanted channel was not among them."""
        want = set(channels) if channels is not None else None
        out: dict[int, dict] = {}
        if not self.framed:
            for ch in (want if want is not None else self.channels(node_id)):
                got = self.latest(node_id, ch)
                if got:
                    out[ch] = got
            return out
        for depth in (20, self.RECENT_FRAMES, None):
            if depth is None:
                c0 = 0
            else:
                row = self.con.execute("SELECT counter FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT 1 OFFSET ?",
                                       (node_id, depth)).fetchone()
                c0 = row[0] if row else 0
            rows = self.con.execute(f"SELECT r.channel, r.time, r.raw, r.value, r.qflags, r.cal FROM {self._JOIN}"
                                    " WHERE f.node_id=? AND f.counter>=?", (node_id, c0)).fetchall()
            for ch, t, raw, value, q, cal in rows:
                cur = out.get(ch)
                if cur is None or t > cur["time"]:
                    out[ch] = {"time": t, "raw": raw, "value": value, "qflags": q, "cal": cal}
            if c0 == 0 or want is None or want <= set(out):
                break
        return out if want is None else {ch: v for ch, v in out.items() if ch in want}

    # --- gateway-wide ------------------------------------------------------------------
    def rejections(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT reason, count FROM rejections ORDER BY count DESC").fetchall())

    def head(self) -> int:
        return self.con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]

    def outboxes(self) -> list[dict]:
        cols = ("name", "cursor", "sent", "dropped", "last_ok", "last_error", "last_error_time")
        rows = self.con.execute(f"SELECT {', '.join(cols)} FROM outbox ORDER BY name").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def first_time_after(self, reading_id: int) -> float | None:
        """Time of the first reading after an outbox cursor (the oldest one still pending)."""
        r = self.con.execute("SELECT time FROM readings WHERE id > ? ORDER BY id LIMIT 1", (reading_id,)).fetchone()
        return r[0] if r else None
