"""Apply calibration records to readings, vectorised. The gateway's calibrate step imports this.

Stable API (documented in docs/calibration-records.md §5):

    load_records(directory) -> list[Record]
    apply_records(records, node_id, channel_name, times_s, raw_values, covariates)
        -> (values, out_of_range_mask)
    select_records(records, node_id, channel_name, times_s) -> (index array, list[Record])
    calibrated_channels(records, node_id) -> {channel: [input channels]}

* channel_name is the channel being calibrated (record["channel"], e.g. "pm25", "ph"), and
  raw_values are that channel's readings as received (physical units, aligned with times_s).
* covariates maps other channel names read in the same sample (e.g. "pm25_cf1", "rh",
  "water_temp", "ph_raw") to aligned arrays. A record input equal to channel_name takes
  raw_values; every other input is looked up in covariates.
* Only approved records count. At each time the record with valid_from <= t < valid_to
  applies; where approved records overlap, the highest version wins.
* Where no approved record applies, values == raw_values and the mask is False (identity).
* Where a record applies, values are the curve's output and the mask is True when an input
  lay outside the record's calibrated range, or the curve has no value there (turbidity
  PCHIP does not extrapolate), or an input the record needs is missing/NaN. In those cases
  the value is the curve's value if it has one, else raw_values; the gateway sets the
  out-of-range quality bit instead of trusting it silently.
"""
import numpy as np

from .records import Record, load_records  # noqa: F401  (re-exported for the gateway)

__all__ = ["apply_records", "calibrated_channels", "load_records", "select_records", "Record"]


def select_records(records, node_id, channel_name, times_s):
    """For each time, the index into `chosen` of the record that applies, or -1. Returns (idx, chosen)."""
    t = np.asarray(times_s, dtype=float)
    chosen = [r for r in records if r.status == "approved" and r.node == int(node_id) and r.channel == channel_name]
    chosen.sort(key=lambda r: r.version)  # later (higher) versions overwrite earlier ones below
    idx = np.full(t.shape, -1, dtype=np.int64)
    for i, r in enumerate(chosen):
        idx[(t >= r.valid_from_s) & (t < r.valid_to_s)] = i
    return idx, chosen


def calibrated_channels(records, node_id) -> dict:
    """{channel: inputs of its newest approved record} for one node, so a gateway can also
    produce channels that are computed from raw ones (e.g. ph from ph_raw and water_temp)."""
    out = {}
    for r in sorted(records, key=lambda r: r.version):
        if r.status == "approved" and r.node == int(node_id):
            out[r.channel] = r.inputs
    return out


def apply_records(records, node_id, channel_name, times_s, raw_values, covariates=None):
    covariates = covariates or {}
    raw = np.asarray(raw_values, dtype=float)
    idx, chosen = select_records(records, node_id, channel_name, times_s)
    values = raw.copy()
    oor = np.zeros(raw.shape, dtype=bool)
    for i, r in enumerate(chosen):
        sel = idx == i
        if not sel.any():
            continue
        X = []
        for name in r.inputs:
            if name == channel_name:
                X.append(raw[sel])
            elif name in covariates:
                X.append(np.asarray(covariates[name], dtype=float)[sel])
            else:
                X.append(np.full(int(sel.sum()), np.nan))
        finite = np.all(np.isfinite(np.vstack(X)), axis=0)
        v = raw[sel].copy()
        inr = np.zeros(v.shape, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            if finite.any():
                Xf = [x[finite] for x in X]
                out = r.predict(Xf)
                good = np.isfinite(out)
                vf = v[finite]
                vf[good] = out[good]
                v[finite] = vf
                inr_f = r.in_range(Xf) & good
                inr[finite] = inr_f
        values[sel] = v
        oor[sel] = ~inr
    return values, oor
