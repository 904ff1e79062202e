"""Why a calibration record does or does not apply, per node and channel.

A record can only be applied to a reading when every input of its curve arrives in the
same sample. When a node's frames lack one (e.g. a PM2.5 curve on pm25_cf1 while the node
sends pm25_cf1 only in calibration mode), the gateway keeps the raw value and flags it out
of range; this module says so in words, for `sen gateway status` and the status page.
"""
import time
from pathlib import Path

from sen.channels import BY_ID
from sen.gateway.store import connect

RECENT_FRAMES = 50


def explain(record, seen: set | None) -> dict:
    """{"node", "channel", "record", "inputs", "applies", "reason"} for one approved record."""
    out = {"node": record.node, "channel": record.channel, "record": record.id, "inputs": record.inputs}
    if not seen:
        return out | {"applies": None, "reason": f"no frames from node {record.node} yet"}
    missing = [n for n in record.inputs if n not in seen]
    if not missing:
        return out | {"applies": True, "reason": f"applies: node {record.node} sends {', '.join(record.inputs)}"}
    return out | {"applies": False, "reason": (
        f"does not apply: node {record.node}'s recent frames carry no {', '.join(missing)} "
        f"(they carry {', '.join(sorted(seen))}), so its {record.channel} readings stay uncalibrated and are "
        f"flagged out of range — set send_raw=true on the node (`sen node config --port P --set send_raw=true`) "
        f"or approve a curve on channels it sends")}


def seen_channels(con, node_id: int, recent_frames: int = RECENT_FRAMES) -> set:
    """Channel names in the node's last `recent_frames` frames (by the frames table's reading ranges)."""
    row = con.execute("SELECT MIN(first_reading), MAX(first_reading + n_readings) FROM (SELECT first_reading, n_readings"
                      " FROM frames WHERE node_id=? ORDER BY counter DESC LIMIT ?)", (node_id, recent_frames)).fetchone()
    if not row or row[0] is None:
        return set()
    rows = con.execute("SELECT DISTINCT channel FROM readings WHERE id >= ? AND id < ? AND node_id=?",
                       (row[0], row[1], node_id)).fetchall()
    return {BY_ID[c].name for (c,) in rows if c in BY_ID}


def active_records(records, now: float | None = None) -> list:
    """The approved record in force now per node and channel (highest version wins)."""
    now = time.time() if now is None else now
    best: dict = {}
    for r in records:
        if r.status == "approved" and r.valid_from_s <= now < r.valid_to_s:
            k = (r.node, r.channel)
            if k not in best or r.version > best[k].version:
                best[k] = r
    return [best[k] for k in sorted(best)]


def record_states(records_dir, con, now: float | None = None) -> list:
    if records_dir is None:
        return []
    from sen.calibration.records import load_records  # lazy: scipy (~0.3 s), only with a records dir
    if not Path(records_dir).is_dir():
        return []
    problems = []
    recs = load_records(records_dir, on_error=lambda p, msg: problems.append(msg))
    out = [explain(r, seen_channels(con, r.node)) for r in active_records(recs, now)]
    return out + [{"node": None, "channel": None, "record": None, "applies": False, "reason": m} for m in problems]


def problems(cfg) -> list[str]:
    """One line per approved record the gateway cannot apply (for `sen gateway recalibrate`)."""
    con = connect(cfg.store_path, readonly=True)
    try:
        return [s["reason"] if s["record"] is None else f"{s['record']}: {s['reason']}"
                for s in record_states(cfg.calibration_dir, con) if s["applies"] is False]
    finally:
        con.close()
