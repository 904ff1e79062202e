"""What `sen gateway status` shows, as data: nodes, outbox depth and forwarder health,
rejections, pending node config, calibration records, concentrator gateways. Read from a
read-only store connection, so it works beside a running gateway."""
import json
import sqlite3

from sen.gateway.cal_status import record_states
from sen.gateway.store import connect


def status_data(cfg) -> dict:
    con = connect(cfg.store_path, readonly=True)
    try:
        # a store the upgraded gateway has not opened yet has no resent_samples column
        cols = {r[1] for r in con.execute("PRAGMA table_info(nodes)")}
        resent = "resent_samples" if "resent_samples" in cols else "0"
        nodes = [dict(zip(("node", "last_seen", "rssi", "snr", "battery", "counter", "reboots", "lost", "accepted",
                           "late", "duplicates", "mic_failures", "qflags", "resent_samples"), r)) for r in con.execute(
            "SELECT node_id, last_seen, rssi, snr, battery, last, reboots, lost, accepted, late, duplicates,"
            f" mic_failures, qflags, COALESCE({resent}, 0) FROM nodes ORDER BY node_id")]
        head = con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
        outbox = [dict(zip(("forwarder", "depth", "sent", "dropped", "last_ok", "last_error", "last_error_time"),
                           (n, head - c, s, d, ok, err, et))) for n, c, s, d, ok, err, et in con.execute(
            "SELECT name, cursor, sent, dropped, last_ok, last_error, last_error_time FROM outbox ORDER BY name")]
        rejections = dict(con.execute("SELECT reason, count FROM rejections ORDER BY reason").fetchall())
        frames = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        node_config = node_config_state(con)
        calibration = record_states(cfg.calibration_dir, con)
        try:  # a store the upgraded gateway has not opened yet has no link_history table
            from sen.gateway.link_history import LinkHistory  # lazy: status without ADR's module
            links = LinkHistory(con).summary()
        except sqlite3.OperationalError:
            links = {}
        for n in nodes:
            n["link"] = links.get(n["node"])
    finally:
        con.close()
    concentrators = []
    for rc in cfg.radios:  # written every 2 s by a running semtech_udp backend
        f = cfg.data_dir / f"concentrators-{rc.name}.json"
        if rc.backend == "semtech_udp" and f.is_file():
            try:
                concentrators.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
    return {"gateway": cfg.gateway_id, "frames": frames, "readings": head, "nodes": nodes, "outbox": outbox,
            "rejections": rejections, "node_config": node_config, "calibration": calibration,
            "concentrators": concentrators}


def node_config_state(con) -> list[dict]:
    """Per node: the change still sent in ACKs, and the last one an uplink showed applied."""
    out: dict[int, dict] = {}
    blank = {"pending": None, "pending_since": None, "confirmed": None, "confirmed_at": None,
             "confirmed_counter": None, "evidence": None}
    for n, c, created in con.execute("SELECT node_id, config, created FROM pending_config"):
        out.setdefault(n, dict(blank, node=n)).update(pending=json.loads(c), pending_since=created)
    try:  # a store from before config_confirmed existed has no such table until the gateway runs
        rows = con.execute("SELECT node_id, config, confirmed, counter, evidence FROM config_confirmed").fetchall()
    except sqlite3.OperationalError:
        rows = []
    for n, c, at, counter, ev in rows:
        out.setdefault(n, dict(blank, node=n)).update(confirmed=json.loads(c), confirmed_at=at, confirmed_counter=counter,
                                                      evidence=json.loads(ev) if ev else None)
    return [out[n] for n in sorted(out)]
