"""`sen gateway rebuild`: a new store from the raw log, for a store found damaged.

The damaged files are moved aside (never deleted), every raw-log record is processed again
in log order, as at the first run, and what only the store knew (forwarder cursors, pending
node config) is carried over when the damaged file still gives it up."""
import logging
import sqlite3
import time

from sen.errors import SenError
from sen.gateway.calibrate import Calibrator
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.gateway.raw_log import iter_log
from sen.gateway.store import Store

log = logging.getLogger("sen.gateway.rebuild")
CARRIED = ("outbox", "pending_config", "config_confirmed")


def _salvage(old) -> dict:
    out = {}
    try:
        con = sqlite3.connect(f"file:{old}?mode=ro", uri=True)
        try:
            for t in CARRIED:
                try:
                    out[t] = con.execute(f"SELECT * FROM {t}").fetchall()
                except sqlite3.DatabaseError:
                    pass
        finally:
            con.close()
    except sqlite3.Error:
        pass
    return out


def rebuild(cfg, batch: int = 2000) -> dict:
    db = cfg.store_path
    if not (db.parent / "raw.log").exists():
        raise SenError(f"no raw log in {db.parent}", "check [gateway] data_dir in the config")
    aside = None
    if db.exists():
        aside = db.with_name(f"{db.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            p = db.with_name(db.name + suffix)
            if p.exists():
                p.rename(aside.with_name(aside.name + suffix))
    carried = _salvage(aside) if aside else {}
    store = Store(db)
    bad = []
    n = 0
    try:
        pipe = Pipeline(store, KeyStore(cfg.key_file), Calibrator(cfg.calibration_dir))
        chunk = []
        for rec in iter_log(cfg.raw_log_path, 0, on_bad=lambda a, b: bad.append((a, b))):
            chunk.append(rec)
            if len(chunk) >= batch:
                pipe.process(chunk)
                n, chunk = n + len(chunk), []
        if chunk:
            pipe.process(chunk)
            n += len(chunk)
        for table, rows in carried.items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                store.con.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)
        if "outbox" not in carried or not carried["outbox"]:
            # unknown cursors: forwarders carry on from now rather than re-send all history
            head = store.con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
            for name in cfg.forwarders:
                store.con.execute("INSERT OR IGNORE INTO outbox(name, cursor) VALUES (?, ?)", (name, head))
        totals = dict(pipe.totals)
    finally:
        store.close()
    return {"records": n, "accepted": totals.get("accepted", 0), "duplicates": totals.get("duplicates", 0),
            "corrupt_regions_skipped": len(bad), "damaged_store_moved_to": str(aside) if aside else None,
            "carried_over": sorted(t for t, rows in carried.items() if rows)}
