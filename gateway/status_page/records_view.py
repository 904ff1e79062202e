"""Calibration records as the page shows them: the active record per node and channel with its
metrics, drafts waiting for approval, and the approve action (same checks as `sen cal approve`).

A broken file is listed as a problem instead of failing the whole page.
"""
import time
from pathlib import Path

from sen.errors import SenError
from sen.gateway.cal_status import explain


def _summary(rec) -> dict:
    d = rec.doc
    metrics = {}
    for label, m in (d.get("metrics") or {}).items():
        if isinstance(m, dict) and m.get("rows"):
            metrics[label] = [{k: r.get(k) for k in ("metric", "value", "target", "pass")} for r in m["rows"]]
    return {
        "id": rec.id, "file": rec.path.name if rec.path else None, "node": rec.node, "channel": rec.channel,
        "version": rec.version, "status": rec.status, "model": d.get("model"),
        "model_summary": d.get("model_summary"), "inputs": d.get("inputs"),
        "coefficients": [{"name": c.get("name"), "value": c.get("value"), "se": c.get("se")}
                         for c in d.get("coefficients", [])],
        "valid_from": d.get("valid_from"), "valid_to": d.get("valid_to"), "n": d.get("n"),
        "residual_sd": d.get("residual_sd"), "crew": d.get("crew"), "created": d.get("created"),
        "approved_by": d.get("approved_by"), "approved_at": d.get("approved_at"),
        "approval_note": d.get("approval_note"),
        "acceptance": [{k: a.get(k) for k in ("name", "value", "unit", "target", "pass")}
                       for a in d.get("acceptance", [])],
        "metrics": metrics, "failed": failed_checks(rec), "hash": d.get("hash"),
    }


def failed_checks(rec) -> list[str]:
    from sen.calibration.approval import failed_checks as failed  # lazy: scipy, only when records are shown
    return failed(rec.doc)


class RecordsView:
    def __init__(self, records_dir: Path | None):
        self.dir = Path(records_dir) if records_dir else None

    def _load_all(self):
        if self.dir is None or not self.dir.is_dir():
            return [], []
        from sen.calibration.records import load  # lazy: scipy, only when records are shown
        recs, problems = [], []
        for p in sorted(self.dir.glob("*.json")):
            try:
                recs.append(load(p))
            except SenError as exc:
                problems.append({"file": p.name, "problem": str(exc)})
        return recs, problems

    def for_node(self, node_id: int, now: float | None = None, seen: set | None = None) -> dict:
        """{channel name: {"active": summary|None, "drafts": [...], "history": [...]}, "_problems": [...]}

        With `seen` (channel names in the node's recent frames) the active record says whether it
        applies, and why not (sen.gateway.cal_status)."""
        now = time.time() if now is None else now
        recs, problems = self._load_all()
        out: dict = {}
        for r in recs:
            if r.node != node_id:
                continue
            slot = out.setdefault(r.channel, {"active": None, "drafts": [], "history": []})
            s = _summary(r)
            if r.status == "draft":
                slot["drafts"].append(s)
                continue
            slot["history"].append({k: s[k] for k in ("id", "version", "valid_from", "valid_to", "approved_by")})
            if r.valid_from_s <= now < r.valid_to_s:
                if slot["active"] is None or r.version > slot["active"]["version"]:
                    slot["active"] = s
        if seen is not None:
            by_id = {r.id: r for r in recs}
            for slot in out.values():
                if slot["active"] is not None:
                    e = explain(by_id[slot["active"]["id"]], seen)
                    slot["active"]["applies"], slot["active"]["applies_reason"] = e["applies"], e["reason"]
        return {"channels": out, "problems": problems, "dir": str(self.dir) if self.dir else None}

    def approve(self, file_name: str, by: str, override: str | None = None, accept_worse: str | None = None) -> dict:
        """Approve one draft in the records directory, with the checks of `sen cal approve`."""
        from sen.calibration.approval import approve  # lazy: scipy, only when records are shown
        from sen.calibration.records import load  # lazy: scipy, only when records are shown
        if self.dir is None:
            raise SenError("this gateway has no calibration records directory",
                           "set [calibration] records_dir in gateway.toml")
        name = Path(str(file_name)).name
        if name != file_name or not name.endswith(".json"):
            raise SenError(f"{file_name!r} is not a record file name", "give the file name shown on the node page")
        path = self.dir / name
        if not path.is_file():
            raise SenError(f"no record {name} on this gateway", "reload the node page and pick a listed draft")
        rec = load(path)
        if rec.status == "approved":
            return {"id": rec.id, "status": "approved", "already": True, "approved_by": rec.doc.get("approved_by")}
        approve(rec, by, override, accept_worse, path)
        return {"id": rec.id, "status": "approved", "already": False, "approved_by": by}


    def install(self, doc: dict) -> dict:
        """Install an approved record pushed by `sen cal push` (checked as the gateway loads
        records: schema, content hash, status); the file appears atomically under its usual name."""
        import json
        import os
        import secrets

        from sen.calibration.records import default_name, load  # lazy: scipy, only when records are shown
        if self.dir is None:
            raise SenError("this gateway has no calibration records directory",
                           "set [calibration] records_dir in gateway.toml")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".incoming-{secrets.token_hex(6)}.json.tmp"
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
        try:
            rec = load(tmp)
            if rec.status != "approved":
                raise SenError(f"{rec.id} is a draft; a gateway takes approved records only",
                               f"approve it first: sen cal approve <file> --by NAME")
            dest = self.dir / default_name(rec.node, rec.channel, rec.version)
            if dest.exists():
                there = json.loads(dest.read_text())
                if there.get("hash") != doc.get("hash"):
                    raise SenError(f"this gateway already holds a different {rec.id}",
                                   "a new curve needs a new version: re-fit it")
                if there.get("status") == "approved":
                    return {"id": rec.id, "file": dest.name, "already": True}
            os.replace(tmp, dest)  # atomic: a gateway scanning the directory never reads half a file
            return {"id": rec.id, "file": dest.name, "already": False}
        finally:
            tmp.unlink(missing_ok=True)
