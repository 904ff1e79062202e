"""On-site point checks: a standard of known value read by the node, judged against a tolerance."""
import numpy as np

from sen.errors import SenError

from .records import load

# Default tolerances per calibrated channel; pH follows the "third buffer within 0.1 pH" rule.
DEFAULT_TOLERANCE = {"ph": 0.1}


def point_check(expected, *, measured=None, record_path=None, raw=None, temp=None, rh=None, tolerance=None, what=""):
    """Return (passed, one line). Either `measured` (calibrated) or `record_path` + `raw` (+ covariates)."""
    channel = None
    outside = []
    if measured is None:
        if record_path is None or raw is None:
            raise SenError("nothing to check", "give --measured VALUE, or --record RECORD with --raw VALUE")
        rec = load(record_path)
        channel = rec.channel
        covs = {"water_temp": temp, "air_temp": temp, "rh": rh}
        X = [np.array([raw], float)]
        for name in rec.inputs[1:]:
            if covs.get(name) is None:
                flag = "--temp" if "temp" in name else f"--{name}"
                raise SenError(f"record {rec.id} needs {name}", f"pass {flag} VALUE")
            X.append(np.array([covs[name]], float))
        for name, x in zip(rec.inputs, X):
            lo, hi = rec.doc["valid_range"][name]
            if not lo <= float(x[0]) <= hi:
                outside.append(f"{name} {float(x[0]):g} lies outside the calibrated range {lo:g}–{hi:g} of {rec.id}")
        with np.errstate(invalid="ignore", divide="ignore"):
            measured = float(rec.predict(X)[0])
        if not np.isfinite(measured):
            raise SenError(f"raw {raw:g} is outside the curve of {rec.id}"
                           + (f" ({'; '.join(outside)})" if outside else ""), "re-calibrate over this range")
    if tolerance is None:
        if channel not in DEFAULT_TOLERANCE:
            raise SenError("no default tolerance for this check", "pass --tolerance VALUE")
        tolerance = DEFAULT_TOLERANCE[channel]
    if what == "" and channel == "ph":
        what = f"pH {expected:g} check buffer"
    diff = measured - expected
    ok = abs(diff) <= tolerance + 1e-12
    label = what or f"check standard {expected:g}"
    line = (f"{'PASS' if ok else 'FAIL'} {label}: expected {expected:g}, measured {measured:.3f}, "
            f"|Δ| {abs(diff):.3f} {'≤' if ok else '>'} {tolerance:g}")
    if outside:
        # An extrapolated value says little about the probe: the crew needs to know why.
        line += " — " + "; ".join(outside) + " (extrapolated: re-calibrate over this range)"
    return ok, line
