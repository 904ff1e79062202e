"""`sen gateway recalibrate`: recompute stored readings' calibrated values from their raw
values with the current records.

Only readings whose value changes are rewritten. Every forwarder's cursor is moved back to
the first changed reading, so the platform receives the corrected values under the same
idempotent ids: updates, not duplicates. A new tag or flag alone is kept locally.
"""
from dataclasses import dataclass

import numpy as np

from sen.gateway.calibrate import Calibrator
from sen.gateway.store import connect

CHUNK = 50_000  # readings per read and per write transaction


@dataclass
class RecalibrateResult:
    total: int = 0  # readings considered
    changed: int = 0  # readings whose value changed (re-sent)
    touched: int = 0  # readings whose flags or tag alone changed (not re-sent)
    first_changed: int | None = None  # forwarders re-send from this reading id
    tag: str = ""


def _where(nodes) -> str:
    return f"WHERE node_id IN ({','.join('?' * len(nodes))})" if nodes else ""


def recalibrate(cfg, nodes=(), on_start=lambda total: None, on_progress=lambda n: None) -> RecalibrateResult:
    """on_start(readings to consider), once, when there are any; on_progress(readings done
    in this chunk)."""
    cal = Calibrator(cfg.calibration_dir)
    con = connect(cfg.store_path)
    try:
        return _run(con, cal, tuple(nodes), on_start, on_progress)
    finally:
        con.close()


def _run(con, cal, nodes, on_start, on_progress) -> RecalibrateResult:
    where = _where(nodes)
    out = RecalibrateResult(tag=cal.tag)
    out.total = con.execute(f"SELECT COUNT(*) FROM readings {where}", nodes).fetchone()[0]
    if out.total:
        on_start(out.total)
    last_id = -1
    while out.total:
        clause = f"{where} {'AND' if where else 'WHERE'} id > ?"
        rows = con.execute(f"SELECT id, node_id, counter, sample, time, channel, raw, value, qflags, cal FROM readings "
                           f"{clause} ORDER BY id LIMIT {CHUNK}", (*nodes, last_id)).fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        a = np.array([(r[1], r[2], r[3], r[5]) for r in rows], np.int64)
        raw = np.array([np.nan if r[6] is None else r[6] for r in rows], float)
        times = np.array([r[4] for r in rows], float)
        _, values, oor, tag = cal.apply_physical(a[:, 0], a[:, 3], a[:, 1] * 64 + a[:, 2], times, raw)
        updates, first_here, n_changed = [], None, 0
        for v, o, r in zip(values.tolist(), oor.tolist(), rows):
            v = None if v != v else v
            q = (r[8] or 0) | (2 if o else 0)
            same = (v is None and r[7] is None) or (v is not None and r[7] is not None and abs(v - r[7]) <= 1e-9 * max(1.0, abs(v)))
            if not same:
                n_changed += 1
                first_here = r[0] if first_here is None else first_here
            if not (same and q == (r[8] or 0) and tag == r[9]):
                updates.append((v, tag, q, r[0]))
        if updates:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("UPDATE readings SET value=?, cal=?, qflags=? WHERE id=?", updates)
            # Only a changed value is news downstream; a new tag or flag alone is kept locally.
            if first_here is not None and (out.first_changed is None or first_here < out.first_changed):
                out.first_changed = first_here
                con.execute("UPDATE outbox SET cursor=MIN(cursor, ?)", (out.first_changed - 1,))
            con.execute("COMMIT")
            out.changed += n_changed
            out.touched += len(updates) - n_changed
        on_progress(len(rows))
    return out
