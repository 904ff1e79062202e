"""EPA 2021 sensor performance metrics, on 1-h and 24-h averages, each judged against its target.

Definitions follow US EPA "Performance Testing Protocols, Metrics, and Target Values for
Fine Particulate Matter Air Sensors" (2021):
  slope, intercept, R²  — OLS of sensor (y) on reference (x)
  RMSE  = sqrt(mean((sensor − ref)²));  NRMSE = RMSE / mean(ref) × 100
  bias  = mean(sensor − ref)  (informational; EPA sets no target)
  SD    = sqrt(Σ_d Σ_j (x_dj − x̄_d)² / (M·N − 1)) over periods d where all M units report
  CV    = SD / mean(x̄_d) × 100
SD and CV need at least two co-located units, so a single-unit fit reports them as n/a.
"""
import numpy as np

from .inputs import average

# Targets apply to PM2.5 (the EPA table); other channels get metrics without a verdict.
PM25_TARGETS = {
    "slope": ("1.0 ± 0.35", lambda v: 0.65 <= v <= 1.35),
    "intercept": ("−5 to 5 µg/m³", lambda v: -5.0 <= v <= 5.0),
    "r2": ("≥ 0.70", lambda v: v >= 0.70),
    "rmse": ("≤ 7 µg/m³ (or NRMSE ≤ 30 %)", None),
    "nrmse": ("≤ 30 % (or RMSE ≤ 7 µg/m³)", None),
    "sd": ("≤ 5 µg/m³", lambda v: v <= 5.0),
    "cv": ("≤ 30 %", lambda v: v <= 30.0),
    "bias": ("no EPA target (informational)", None),
}
PM_CHANNELS = {"pm25", "pm25_cf1"}
PERIODS = {"1h": 3600.0, "24h": 86400.0}


def core(sensor: np.ndarray, ref: np.ndarray) -> dict:
    """Slope, intercept, R², RMSE, NRMSE, bias of paired values (no averaging)."""
    x, y = np.asarray(ref, float), np.asarray(sensor, float)
    n = int(x.size)
    out = {"n": n}
    if n < 3 or np.ptp(x) == 0:
        return out | {k: None for k in ("slope", "intercept", "r2", "rmse", "nrmse", "bias")}
    mx, my = x.mean(), y.mean()
    sxx = ((x - mx) ** 2).sum()
    sxy = ((x - mx) * (y - my)).sum()
    syy = ((y - my) ** 2).sum()
    slope = sxy / sxx
    rmse = float(np.sqrt(np.mean((y - x) ** 2)))
    out.update(slope=float(slope), intercept=float(my - slope * mx),
               r2=float(sxy ** 2 / (sxx * syy)) if syy > 0 else None,
               rmse=rmse, nrmse=float(rmse / mx * 100.0) if mx != 0 else None, bias=float(np.mean(y - x)))
    return out


def precision(units: np.ndarray) -> dict:
    """SD and CV across co-located units: array shape (M units, N periods), NaN where missing."""
    u = np.asarray(units, float)
    if u.ndim != 2 or u.shape[0] < 2:
        return {"sd": None, "cv": None, "units": int(u.shape[0]) if u.ndim == 2 else 1}
    full = np.all(np.isfinite(u), axis=0)
    u = u[:, full]
    M, N = u.shape
    if N < 2:
        return {"sd": None, "cv": None, "units": M}
    mean_d = u.mean(axis=0)
    sd = float(np.sqrt(((u - mean_d) ** 2).sum() / (M * N - 1)))
    return {"sd": sd, "cv": float(sd / mean_d.mean() * 100.0), "units": M}


def judge(channel: str, m: dict) -> list:
    """Rows of (metric, value, target, pass) for a metrics dict; pass None when no target applies."""
    rows = []
    targeted = channel in PM_CHANNELS
    for key in ("slope", "intercept", "r2", "rmse", "nrmse", "sd", "cv", "bias"):
        v = m.get(key)
        target, test = PM25_TARGETS[key] if targeted else ("no target for this channel", None)
        verdict = None
        if v is not None and targeted:
            if key in ("rmse", "nrmse"):
                r, nr = m.get("rmse"), m.get("nrmse")
                verdict = bool((r is not None and r <= 7.0) or (nr is not None and nr <= 30.0))
            elif test is not None:
                verdict = bool(test(v))
        rows.append({"metric": key, "value": v, "target": target, "pass": verdict})
    return rows


def epa_metrics(times, sensor, ref, channel: str, others=None) -> dict:
    """Metrics on 1-h and 24-h averages. `others`: corrected series of further co-located units."""
    result = {}
    for label, period in PERIODS.items():
        t_avg, pair = average(times, np.vstack([sensor, ref]), period)
        m = core(pair[0], pair[1]) if pair.size else core([], [])
        unit_series = [dict(zip(t_avg, pair[0]))]
        for ot, ov in (others or []):
            at, av = average(ot, ov, period)
            unit_series.append(dict(zip(at, av)))
        if len(unit_series) > 1:
            keys = sorted(set().union(*unit_series))
            mat = np.array([[s.get(k, np.nan) for k in keys] for s in unit_series])
            m |= precision(mat)
        else:
            m |= {"sd": None, "cv": None, "units": 1}
        m["rows"] = judge(channel, m)
        result[label] = m
    return result


def epa_metrics_together(times, sensors: dict, ref, channel: str) -> dict:
    """epa_metrics for several sensor series on the same rows (in-sample, cross-validated, raw),
    averaging them in one pass per period; single-unit, so SD/CV are n/a."""
    names = list(sensors)
    out = {n: {} for n in names}
    for label, period in PERIODS.items():
        _, m = average(times, np.vstack([sensors[n] for n in names] + [ref]), period)
        for i, n in enumerate(names):
            mm = (core(m[i], m[-1]) if m.size else core([], [])) | {"sd": None, "cv": None, "units": 1}
            mm["rows"] = judge(channel, mm)
            out[n][label] = mm
    return out
