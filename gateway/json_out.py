"""The one JSON encoder for everything that leaves the gateway (MQTT, HTTP forwarders, the
status API). JSON has no NaN or Infinity: Python's json module would write the bare words
`NaN`/`Infinity`, which strict parsers (and most platforms) reject. A non-finite float becomes
null, so a reading or a radio figure that is not a number is "unknown", never invalid JSON."""
import json
import math


def finite(x):
    """x when it is a finite number, else None (for radio figures and values before storing)."""
    return x if x is None or math.isfinite(x) else None


def _clean(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(obj, compact: bool = True, **kw) -> str:
    """json.dumps that never emits NaN/Infinity (non-finite floats become null)."""
    kw.setdefault("ensure_ascii", False)
    if compact:
        kw.setdefault("separators", (",", ":"))
    try:  # the common case has nothing to clean: no copy
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        return json.dumps(_clean(obj), allow_nan=False, **kw)
