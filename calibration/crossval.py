"""Out-of-sample judgement: time-blocked k-fold cross-validation, and the uncorrected sensor on the same data.

A curve fitted and judged on the same rows always looks good; what matters is how it does
on time it has not seen. The rows (sorted by time) are cut into k contiguous blocks; each
block is predicted by a curve fitted on the other k − 1, so neighbouring hours that share
weather and drift never sit on both sides. The out-of-fold predictions are then judged with
the same metrics as the in-sample fit (points, 1-h and 24-h averages, EPA verdicts).

The uncorrected sensor (the raw input read as the calibrated quantity) is judged on the
same rows when its unit is the target's, so a crew sees whether the curve beats doing nothing.
"""
import numpy as np

from sen.errors import SenError
from sen.gateway.channels import BY_NAME as CHANNELS

from .metrics import core, epa_metrics

DEFAULT_FOLDS = 5


def blocks(n: int, k: int) -> list:
    """k contiguous index blocks of near-equal size over n time-sorted rows."""
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [np.arange(edges[i], edges[i + 1]) for i in range(k)]


def cross_validate(model, times, X, y, options, channel, k=DEFAULT_FOLDS) -> dict:
    """Out-of-fold metrics: {"folds", "points", "1h", "24h"} or {"folds", "error"} when a fold cannot be fitted."""
    n = len(y)
    k = int(min(k, n // 3))  # each training set keeps at least two thirds of the rows
    if k < 2:
        return {"folds": k, "error": f"{n} rows are too few for blocked cross-validation"}
    pred = np.full(n, np.nan)
    for held in blocks(n, k):
        train = np.ones(n, bool)
        train[held] = False
        try:
            fit = model.fit([x[train] for x in X], y[train], options)
        except SenError as exc:
            return {"folds": k, "error": f"a fold without rows {held[0] + 1}–{held[-1] + 1} cannot be fitted "
                                        f"({exc.problem})"}
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            pred[held] = model.predict(fit.params, [x[held] for x in X], options, fit.extra)
    ok = np.isfinite(pred)
    out = {"folds": k, "predicted": int(ok.sum()), "points": core(pred[ok], y[ok]) | {"rows": []}}
    return out | epa_metrics(times[ok], pred[ok], y[ok], channel)


def raw_comparable(raw_input: str, channel: str) -> bool:
    """The raw input can stand for the calibrated channel (same unit, e.g. pm25_cf1 for pm25)."""
    a, b = CHANNELS.get(raw_input), CHANNELS.get(channel)
    return a is not None and b is not None and a.unit == b.unit


def uncorrected(times, raw, y, raw_input, channel) -> dict | None:
    """Metrics of the raw sensor against the reference on the same rows, or None when not comparable."""
    if not raw_comparable(raw_input, channel):
        return None
    return {"input": raw_input, "points": core(raw, y) | {"rows": []}} | epa_metrics(times, raw, y, channel)


def level_for_targets(m: dict) -> str | None:
    """Where EPA targets are judged out of sample: 24-h averages when there are enough, else 1-h."""
    for label in ("24h", "1h"):
        if (m.get(label) or {}).get("n", 0) >= 3:
            return label
    return None


def gate_failures(doc: dict) -> list:
    """Why approval needs --accept-worse: out-of-sample RMSE worse than raw, or EPA targets failed out of sample."""
    cv = doc.get("cross_validation") or {}
    raw = doc.get("uncorrected") or {}
    if not cv or cv.get("error"):
        return []
    out = []
    r_cv, r_raw = (cv.get("points") or {}).get("rmse"), (raw.get("points") or {}).get("rmse")
    if r_cv is not None and r_raw is not None and r_cv > r_raw:
        out.append(f"out-of-sample RMSE {r_cv:.3g} is worse than the uncorrected sensor's {r_raw:.3g}")
    label = level_for_targets(cv)
    if label:
        failed = [row["metric"] for row in cv[label]["rows"] if row["pass"] is False]
        if failed:
            out.append(f"out of sample ({label}) it misses EPA targets: {', '.join(failed)}")
    return out
