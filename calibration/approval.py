"""Approval: one set of checks for `sen cal approve` and the status page's approve action.

A record is approved only if (1) the gateway can apply it (its inputs are in the node's
frames), (2) its acceptance checks and in-sample 24-h targets pass, or `override` gives a
reason, and (3) out of sample it beats the raw sensor and meets EPA targets, or
`accept_worse` gives a reason. Both reasons are kept in the record (outside its hash).
"""
from sen.errors import SenError

from .crossval import gate_failures
from .node_frames import check_applicable, frame_profile
from .records import now_iso


def failed_checks(doc: dict) -> list:
    failed = [a["name"] for a in doc.get("acceptance", []) if not a.get("pass")]
    failed += [f"24h {row['metric']}" for row in doc.get("metrics", {}).get("24h", {}).get("rows", [])
               if row.get("pass") is False]
    return failed


def check_approvable(rec, override=None, accept_worse=None):
    d = rec.doc
    check_applicable(rec.id, rec.node, rec.inputs, d.get("node_frame") or frame_profile(rec.node, rec.channel,
                                                                                         rec.inputs, None), "approval")
    failed = failed_checks(d)
    if failed and not override:
        raise SenError(f"{rec.path or rec.id}: fails {', '.join(failed)}",
                       "re-calibrate, or pass --override 'reason' to approve anyway (the reason is recorded)")
    worse = gate_failures(d)
    if worse and not accept_worse:
        raise SenError(f"{rec.path or rec.id}: {'; '.join(worse)}",
                       "co-locate longer or use a simpler curve, or pass --accept-worse 'reason' (it is recorded)")


def approve(rec, by, override=None, accept_worse=None, path=None):
    """Checks, then marks approved and saves; returns False when it already was approved."""
    if rec.status == "approved":
        return False
    check_approvable(rec, override, accept_worse)
    rec.doc.update(status="approved", approved_by=by, approved_at=now_iso())
    if override:
        rec.doc["approval_note"] = override
    if accept_worse and gate_failures(rec.doc):
        rec.doc["accepted_worse"] = accept_worse
    rec.save(path or rec.path)
    return True
