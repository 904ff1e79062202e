"""Fit a model to co-location data and build the draft record (coefficients, ranges, metrics)."""
import numpy as np
from scipy import stats

from sen.errors import SenError
from sen.channels import BY_NAME as CHANNELS

from . import models
from .crossval import DEFAULT_FOLDS, judge_all
from .metrics import core, epa_metrics
from .node_frames import frame_profile
from .records import SCHEMA, Record, check_node, now_iso
from .timeparse import iso

# Raw channel -> the calibrated channel its curve produces.
OUTPUT_OF = {"pm25_cf1": "pm25", "pm1_cf1": "pm1", "pm10_cf1": "pm10", "ph_raw": "ph", "ec_raw": "conductivity",
             "turbidity_raw": "turbidity", "level_raw": "water_level", "water_temp_raw": "water_temp",
             "do_raw": "dissolved_oxygen", "rain_intensity": "rain_intensity", "pm25": "pm25"}


def resolve_channel(channel, inputs, target):
    if channel:
        name = channel
    elif inputs[0] in OUTPUT_OF:
        name = OUTPUT_OF[inputs[0]]
    elif target in CHANNELS:
        name = target
    else:
        raise SenError("cannot tell which channel this curve calibrates", "pass --channel (e.g. pm25, ph, turbidity)")
    if name not in CHANNELS:
        raise SenError(f"channel {name!r} is not in the frame-format registry",
                       "use a channel name from docs/frame-format.md section 4")
    return name


def check_inputs(inputs):
    for n in inputs:
        if n not in CHANNELS:
            raise SenError(f"input column {n!r} is not a channel the gateway knows",
                           "rename the column to its channel name from docs/frame-format.md section 4 (e.g. pm25_cf1, rh)")


def fit_arrays(times, X, y, model_name, options=None):
    """Fit only: returns (model, Fit). Raises SenError on bad input (nothing written)."""
    options = dict(options or {})
    model = models.get(model_name)
    n = len(y)
    if n == 0:
        raise SenError("no data rows to fit", "check the file and the column names")
    if n == 1:
        raise SenError("one data point cannot define a curve", "collect more points across the working range")
    return model, model.fit([np.asarray(x, float) for x in X], np.asarray(y, float), options)


def coefficient_rows(fit: models.Fit):
    t = stats.t.ppf(0.975, max(fit.dof, 1))
    se = np.sqrt(np.maximum(np.diag(fit.cov), 0.0)) if fit.cov.size else np.zeros(0)
    rows = []
    for i, name in enumerate(fit.names):
        fixed = name in fit.fixed
        s = 0.0 if fixed else float(se[i])
        v = float(fit.params[i])
        rows.append({"name": name, "value": v, "se": s, "ci95": [v - t * s, v + t * s], "fixed": fixed})
    return rows


def build_record(table, model_name, target, inputs, *, node, channel=None, options=None, crew="", reference="",
                 valid_from=None, valid_to=None, version=1, others=None, node_config=None,
                 folds=DEFAULT_FOLDS) -> Record:
    node = check_node(node)
    check_inputs(inputs)
    channel = resolve_channel(channel, inputs, target)
    model = models.get(model_name)
    model.check_inputs(inputs)
    table.require([target] + list(inputs))
    X = [table.cols[n] for n in inputs]
    y = table.cols[target]
    model, fit = fit_arrays(table.times, X, y, model_name, options)
    options = dict(options or {})
    pred = model.predict(fit.params, X, options, fit.extra)
    metrics, cv, raw = judge_all(table.times, pred, y, channel, model, X, options, inputs[0], folds)
    if metrics is None or others:
        ok = np.isfinite(pred)
        metrics = {"points": core(pred[ok], y[ok]) | {"rows": []}}
        metrics |= epa_metrics(table.times[ok], pred[ok], y[ok], channel, others)
    valid_range = {n: [float(np.min(x)), float(np.max(x))] for n, x in zip(inputs, X)}
    for i, n in enumerate(inputs[1:], start=1):
        # Physics-based compensation ranges, unless the model fitted that term from the data.
        if n in model.physical_ranges and not (model.name == "conductivity" and str(options.get("alpha")) == "fit"):
            valid_range[n] = list(model.physical_ranges[n])
    if fit.method == "PCHIP":
        knots = {k: v for k, v in fit.extra.items() if k.startswith("knots")}
    else:
        knots = {}
    doc = {
        "schema": SCHEMA,
        "node": node,
        "channel": channel,
        "version": int(version),
        "model": model.name,
        "model_summary": model.summary,
        "method": fit.method,
        "options": options,
        "inputs": list(inputs),
        "target": target,
        "coefficients": coefficient_rows(fit),
        "covariance": fit.cov.tolist(),
        "knots": knots,
        "residual_sd": fit.resid_sd,
        "dof": int(fit.dof),
        "n": int(fit.n),
        "valid_range": valid_range,
        "output_range": [float(np.min(y)), float(np.max(y))],
        "valid_from": valid_from or iso(table.times[0]),
        "valid_to": valid_to,
        "crew": crew,
        "reference": reference,
        "metrics": metrics,
        "cross_validation": cv,
        "uncorrected": raw,
        "node_frame": frame_profile(node, channel, inputs, node_config),
        "acceptance": fit.extra.get("acceptance", []),
        "data": {"path": str(table.source), "sha256": table.sha256, "rows_used": int(len(table)),
                 "first": iso(table.times[0]), "last": iso(table.times[-1]),
                 "issues": [i.to_json() for i in table.issues], "notes": list(table.notes)},
        "created": now_iso(),
        "status": "draft",
        "approved_by": None,
        "approved_at": None,
    }
    if valid_to is not None and doc["valid_to"] <= doc["valid_from"]:
        raise SenError("valid-to is not after valid-from", "give --valid-to later than --valid-from")
    return Record(doc)
