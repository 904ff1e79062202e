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
from sen.channels import BY_NAME as CHANNELS

from .metrics import core, epa_metrics_together

DEFAULT_FOLDS = 5


def blocks(n: int, k: int) -> list:
    """k contiguous index blocks of near-equal size over n time-sorted rows."""
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [np.arange(edges[i], edges[i + 1]) for i in range(k)]


def out_of_fold(model, X, y, options, k=DEFAULT_FOLDS):
    """(predictions, folds, error): each contiguous block predicted by a curve fitted on the others."""
    n = len(y)
    k = int(min(k, n // 3))  # each training set keeps at least two thirds of the rows
    if k < 2:
        return None, k, f"{n} rows are too few for blocked cross-validation"
    pred = np.full(n, np.nan)
    for held in blocks(n, k):
        train = np.ones(n, bool)
        train[held] = False
        try:
            fit = model.fit([x[train] for x in X], y[train], options)
        except SenError as exc:
            return None, k, f"a fold without rows {held[0] + 1}–{held[-1] + 1} cannot be fitted ({exc.problem})"
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            pred[held] = model.predict(fit.params, [x[held] for x in X], options, fit.extra)
    return pred, k, None


def judge_all(times, pred, y, channel, model, X, options, raw_input, k=DEFAULT_FOLDS):
    """In-sample, cross-validated and uncorrected metrics on the same rows: (in_sample, cv, raw).

    in_sample is None when the caller must compute it itself (predictions not finite everywhere)."""
    cv_pred, folds, error = out_of_fold(model, X, y, options, k)
    raw = X[0] if raw_comparable(raw_input, channel) else None
    series = {"in": pred}
    if cv_pred is not None:
        series["cv"] = cv_pred
    if raw is not None:
        series["raw"] = raw
    ok = np.all(np.isfinite(np.vstack(list(series.values()))), axis=0)
    if not ok.all():
        series.pop("in")
    together = epa_metrics_together(times[ok], {n: v[ok] for n, v in series.items()}, y[ok], channel) if series else {}
    points = {n: core(v[ok], y[ok]) | {"rows": []} for n, v in series.items()}
    cv = ({"folds": folds, "error": error} if cv_pred is None else
          {"folds": folds, "predicted": int(ok.sum()), "points": points["cv"]} | together["cv"])
    unc = None if raw is None else {"input": raw_input, "points": points["raw"]} | together["raw"]
    ins = {"points": points["in"]} | together["in"] if "in" in series else None
    return ins, cv, unc


def raw_comparable(raw_input: str, channel: str) -> bool:
    """The raw input can stand for the calibrated channel (same unit, e.g. pm25_cf1 for pm25)."""
    a, b = CHANNELS.get(raw_input), CHANNELS.get(channel)
    return a is not None and b is not None and a.unit == b.unit


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
