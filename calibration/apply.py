"""Apply calibration records to readings, vectorised. The gateway's calibrate step imports this.

Stable API (documented in docs/calibration-records.md):

    load_records(directory) -> list[Record]
    apply_records(records, node_id, channel_name, times_s, raw_values, covariates)
        -> (values, out_of_range_mask)
    select_records(records, node_id, channel_name, times_s) -> (index array, list[Record])

* channel_name is the calibrated channel (record["channel"], e.g. "pm25", "ph").
* raw_values are the readings of the record's first input (e.g. pm25_cf1, ph_raw);
  covariates maps every further input channel name (e.g. "rh", "water_temp") to an array
  aligned with times_s.
* Only approved records count. At each time the record with valid_from <= t < valid_to
  applies; where approved records overlap, the highest version wins.
* values is NaN where no approved record is valid or a needed covariate is missing/NaN.
* out_of_range_mask is True where a record applied but an input lay outside the
  record's calibrated range (or the curve refuses to extrapolate, e.g. turbidity PCHIP,
  giving NaN). The value is still the curve's value where it has one; the flag tells
  the gateway to set the out-of-range quality bit instead of trusting it silently.
"""
import numpy as np

from .records import Record, load_records  # noqa: F401  (re-exported for the gateway)

__all__ = ["apply_records", "load_records", "select_records", "Record"]


def select_records(records, node_id, channel_name, times_s):
    """For each time, the index into `chosen` of the record that applies, or -1. Returns (idx, chosen)."""
    t = np.asarray(times_s, dtype=float)
    chosen = [r for r in records if r.status == "approved" and r.node == int(node_id) and r.channel == channel_name]
    chosen.sort(key=lambda r: r.version)  # later (higher) versions overwrite earlier ones below
    idx = np.full(t.shape, -1, dtype=np.int64)
    for i, r in enumerate(chosen):
        idx[(t >= r.valid_from_s) & (t < r.valid_to_s)] = i
    return idx, chosen


def apply_records(records, node_id, channel_name, times_s, raw_values, covariates=None):
    covariates = covariates or {}
    raw = np.asarray(raw_values, dtype=float)
    idx, chosen = select_records(records, node_id, channel_name, times_s)
    values = np.full(raw.shape, np.nan)
    oor = np.zeros(raw.shape, dtype=bool)
    for i, r in enumerate(chosen):
        sel = idx == i
        if not sel.any():
            continue
        X = [raw[sel]]
        missing = False
        for name in r.inputs[1:]:
            if name not in covariates:
                missing = True
                break
            X.append(np.asarray(covariates[name], dtype=float)[sel])
        if missing:
            continue  # NaN values: the gateway keeps the raw reading uncalibrated
        finite = np.all(np.isfinite(np.vstack(X)), axis=0)
        v = np.full(X[0].shape, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            v[finite] = r.predict([x[finite] for x in X])
            inr = r.in_range(X)
        values[sel] = v
        oor[sel] = finite & (~inr | ~np.isfinite(v))
    return values, oor
