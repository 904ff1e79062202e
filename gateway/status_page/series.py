"""Shape one channel's readings for a plot: all points when few, else a per-bucket mean
with its min/max envelope, so a week at one reading a minute stays a light JSON document.
Flagged readings are kept apart (one marker per bucket and flag set), so downsampling never
hides a quality problem."""
import numpy as np

MAX_POINTS = 1500
BUCKETS = 720
MAX_FLAG_MARKS = 1500


def _clean(a: np.ndarray, nd: int = 4) -> list:
    return [None if x != x else x for x in np.round(a, nd).tolist()]


def shape(t: np.ndarray, raw: np.ndarray, cal: np.ndarray, q: np.ndarray, t0: float, t1: float) -> dict:
    n = int(t.size)
    flagged = np.nonzero(q != 0)[0]
    out = {"n": n, "n_flagged": int(flagged.size), "downsampled": False}
    if n <= MAX_POINTS:
        out.update(t=_clean(t, 1), raw=_clean(raw), cal=_clean(cal))
        marks = flagged
    else:
        width = (t1 - t0) / BUCKETS
        b = np.clip(((t - t0) / width).astype(np.int64), 0, BUCKETS - 1)
        ok = np.isfinite(cal)
        counts = np.bincount(b, minlength=BUCKETS)
        used = np.nonzero(counts)[0]

        def mean_of(v):
            good = np.isfinite(v)
            s = np.bincount(b[good], weights=v[good], minlength=BUCKETS)
            c = np.bincount(b[good], minlength=BUCKETS)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(c > 0, s / np.maximum(c, 1), np.nan)

        lo = np.full(BUCKETS, np.inf)
        hi = np.full(BUCKETS, -np.inf)
        np.minimum.at(lo, b[ok], cal[ok])
        np.maximum.at(hi, b[ok], cal[ok])
        lo[~np.isfinite(lo)] = np.nan
        hi[~np.isfinite(hi)] = np.nan
        tm = mean_of(t)
        out.update(downsampled=True, bucket_s=round(width, 1), t=_clean(tm[used], 1),
                   raw=_clean(mean_of(raw)[used]), cal=_clean(mean_of(cal)[used]),
                   lo=_clean(lo[used]), hi=_clean(hi[used]))
        # one marker per (bucket, flag set): the first such reading
        if flagged.size:
            key = b[flagged] * 64 + q[flagged]
            _, first = np.unique(key, return_index=True)
            marks = flagged[np.sort(first)]
        else:
            marks = flagged
    marks = marks[:MAX_FLAG_MARKS]
    out["flags"] = [[round(float(t[i]), 1), None if raw[i] != raw[i] else round(float(raw[i]), 4),
                     None if cal[i] != cal[i] else round(float(cal[i]), 4), int(q[i])] for i in marks]
    return out
