"""Operator actions: approve a calibration record, rotate a node key, resend from an outbox,
install a pushed record.

Each is small and checks its input; the server has already checked token and CSRF.
Every action is logged (structured) with what changed.
"""
import logging
import time
from pathlib import Path

from sen.errors import SenError
from sen.gateway.key_store import KeyStore
from sen.gateway.store import connect

log = logging.getLogger("sen.gateway.status_page.actions")


def _node_id(value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise SenError(f"node {value!r} is not a number", "give the numeric node id 1-65535") from None
    if not 0 < n < 65536 or isinstance(value, bool):
        raise SenError(f"node {value!r} is out of range", "give the numeric node id 1-65535")
    return n


class Actions:
    def __init__(self, db_path: Path, records, key_file: Path | None = None, keys=None, on_key_rotated=None,
                 on_record_approved=None):
        self.db_path = Path(db_path)
        self.records = records
        self.key_file = Path(key_file) if key_file else None
        self.keys = keys
        self.on_key_rotated = on_key_rotated
        self.on_record_approved = on_record_approved

    def approve(self, body: dict, actor: str) -> dict:
        file_name = body.get("file")
        by = str(body.get("by") or "").strip()
        if not isinstance(file_name, str) or not file_name:
            raise SenError("no record file given", "send {\"file\": \"node12-pm25-v3.json\", \"by\": \"name\"}")
        if not by:
            raise SenError("no approver name given", "send \"by\": the approver's name or staff id")
        override = body.get("override") or None
        res = self.records.approve(file_name, by[:80], None if override is None else str(override)[:500])
        log.info("calibration approved", extra={"record": res["id"], "by": by, "actor": actor})
        if self.on_record_approved and not res["already"]:
            self.on_record_approved(res["id"])
        return res

    def install_record(self, body: dict, actor: str) -> dict:
        res = self.records.install(body)
        log.info("calibration record installed", extra={"record": res["id"], "already": res["already"],
                                                         "actor": actor})
        if self.on_record_approved and not res["already"]:
            self.on_record_approved(res["id"])  # the running gateway reloads its records
        return res

    def rotate_key(self, body: dict, actor: str) -> dict:
        node = _node_id(body.get("node"))
        ks = self.keys
        if ks is None:
            if self.key_file is None:
                raise SenError("this gateway has no key file configured", "set [keys] file in gateway.toml")
            ks = KeyStore(self.key_file)
        key = ks.rotate(node)
        if self.on_key_rotated:
            self.on_key_rotated(node)  # the running gateway resets the node's counters itself
        else:
            con = connect(self.db_path)
            try:
                # as Store.reset_node: the node starts afresh with the new key, in a new epoch
                cols = {r[1] for r in con.execute("PRAGMA table_info(nodes)")}
                bump = ", epoch=COALESCE(epoch, 0) + 1" if "epoch" in cols else ""
                con.execute(f"UPDATE nodes SET last=NULL, mask=0{bump} WHERE node_id=?", (node,))
            finally:
                con.close()
        log.info("node key rotated", extra={"node": node, "actor": actor})
        return {"node": node, "key": key.hex(), "note": "provision the node with this key now; it is shown once"}

    def resend(self, body: dict, actor: str) -> dict:
        name = body.get("forwarder")
        hours = body.get("hours")
        if not isinstance(name, str) or not name:
            raise SenError("no forwarder given", "send {\"forwarder\": \"mqtt\", \"hours\": 24}")
        if not isinstance(hours, (int, float)) or isinstance(hours, bool) or not 0 < hours <= 24 * 60:
            raise SenError(f"hours {hours!r} is out of range", "resend between 0 and 1440 hours back")
        since = time.time() - hours * 3600
        con = connect(self.db_path)
        try:
            row = con.execute("SELECT cursor FROM outbox WHERE name=?", (name,)).fetchone()
            if row is None:
                raise SenError(f"no forwarder named {name!r}", "pick one from the forwarders page")
            first = con.execute("SELECT MIN(id) FROM readings WHERE time >= ?", (since,)).fetchone()[0]
            new = (first - 1) if first is not None else row[0]
            new = min(new, row[0])  # resend only ever moves back
            con.execute("UPDATE outbox SET cursor=? WHERE name=?", (new, name))
        finally:
            con.close()
        log.info("outbox rewound", extra={"forwarder": name, "from": row[0], "to": new, "actor": actor})
        return {"forwarder": name, "cursor_before": row[0], "cursor": new, "requeued": row[0] - new}
