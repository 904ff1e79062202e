"""Calibration records: one versioned JSON file per curve, with a content hash.

The format is documented in docs/calibration-records.md. The hash covers everything that
defines the curve and its evidence; status and approval fields are outside it, so approving
a record does not change its hash, while editing a coefficient by hand does (and is refused).
"""
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sen.errors import SenError

from . import models
from .timeparse import iso, parse_time

SCHEMA = "sen.calibration.record/1"
UNHASHED = ("hash", "status", "approved_by", "approved_at", "approval_note", "accepted_worse")
STATUSES = ("draft", "approved")


def _clean(o):
    """JSON-safe: numpy scalars to Python, NaN to None."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def content_hash(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k not in UNHASHED}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Record:
    doc: dict
    path: Path | None = None

    # Convenience views used by apply and the CLI.
    @property
    def node(self) -> int:
        return int(self.doc["node"])

    @property
    def channel(self) -> str:
        return self.doc["channel"]

    @property
    def version(self) -> int:
        return int(self.doc["version"])

    @property
    def status(self) -> str:
        return self.doc["status"]

    @property
    def inputs(self) -> list:
        return list(self.doc["inputs"])

    @property
    def model(self) -> models.Model:
        return models.get(self.doc["model"])

    @property
    def params(self) -> np.ndarray:
        return np.array([c["value"] for c in self.doc["coefficients"]], dtype=float)

    @property
    def cov(self) -> np.ndarray:
        k = len(self.doc["coefficients"])
        return np.array(self.doc.get("covariance") or np.zeros((k, k)), dtype=float).reshape(k, k)

    @property
    def valid_from_s(self) -> float:
        return parse_time(self.doc["valid_from"])[0]

    @property
    def valid_to_s(self) -> float:
        vt = self.doc.get("valid_to")
        return float("inf") if vt is None else parse_time(vt)[0]

    @property
    def id(self) -> str:
        return f"node{self.node}/{self.channel}/v{self.version}"

    def predict(self, X: list) -> np.ndarray:
        return self.model.predict(self.params, X, self.doc.get("options", {}), self.doc.get("knots", {}))

    def in_range(self, X: list) -> np.ndarray:
        ok = np.ones(np.shape(X[0]), dtype=bool)
        for name, x in zip(self.inputs, X):
            lo, hi = self.doc["valid_range"][name]
            ok &= (x >= lo) & (x <= hi)
        return ok

    def save(self, path) -> Path:
        self.doc["hash"] = content_hash(self.doc)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(_clean(self.doc), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(p)
        self.path = p
        return p


def default_name(node, channel, version) -> str:
    return f"node{int(node)}-{channel}-v{int(version)}.json"


def next_version(directory, node, channel) -> int:
    d = Path(directory)
    best = 0
    if d.is_dir():
        for p in d.glob("*.json"):
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if doc.get("schema") == SCHEMA and int(doc.get("node", -1)) == int(node) and doc.get("channel") == channel:
                best = max(best, int(doc.get("version", 0)))
    return best + 1


def load(path) -> Record:
    p = Path(path)
    if not p.is_file():
        raise SenError(f"{path}: no such record", "give the path of a .json record written by `sen cal fit`")
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise SenError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})", "restore it from the original") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SenError(f"{path} is not a Sen calibration record", f"expected schema {SCHEMA!r}")
    missing = [k for k in ("node", "channel", "version", "model", "inputs", "coefficients", "valid_range",
                           "valid_from", "status", "hash") if k not in doc]
    if missing:
        raise SenError(f"{path} lacks {', '.join(missing)}", "re-create it with `sen cal fit`")
    if doc["status"] not in STATUSES:
        raise SenError(f"{path}: status {doc['status']!r} is unknown", f"use one of {', '.join(STATUSES)}")
    if content_hash(doc) != doc["hash"]:
        raise SenError(f"{path}: content hash does not match (edited by hand?)",
                       "re-fit with `sen cal fit`; records are not edited, they are superseded by a new version")
    models.get(doc["model"])
    return Record(doc, p)


def load_records(directory, on_error=None) -> list:
    """Every record in a directory (sorted by node, channel, version).

    A bad file raises SenError; with on_error(path, message) given, it is reported there and
    skipped instead, so one damaged file cannot stop a running gateway.
    """
    d = Path(directory)
    if not d.is_dir():
        raise SenError(f"{directory}: not a directory of calibration records", "give the records directory")
    out = []
    for p in sorted(d.glob("*.json")):
        try:
            out.append(load(p))
        except SenError as exc:
            if on_error is None:
                raise
            on_error(p, str(exc))
    return sorted(out, key=lambda r: (r.node, r.channel, r.version))


def now_iso() -> str:
    return iso(datetime.now(timezone.utc).timestamp())


_NODE = re.compile(r"^\d+$")


def check_node(node) -> int:
    if node is None or not _NODE.match(str(node)) or not 1 <= int(node) <= 65535:
        raise SenError(f"node id {node!r} is not 1–65535", "pass --node with the node's numeric id")
    return int(node)
