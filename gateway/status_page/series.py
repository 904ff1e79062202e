"""Shape one channel's readings for a plot: all points when few (shape), else per time
bucket the mean with its min/max envelope, aggregated by SQLite (from_buckets), so a week at
one reading a minute stays a light JSON document. Flagged readings are kept apart (the first
of each bucket and flag set is marked), so downsampling never hides a quality problem."""
import numpy as np

MAX_POINTS = 1500
BUCKETS = 720
MAX_FLAG_MARKS = 1500


def _clean(a: np.ndarray, nd: int = 4) -> list:
    return [None if x != x else x for x in np.round(a, nd).tolist()]


def shape(t: np.ndarray, raw: np.ndarray, cal: np.ndarray, q: np.ndarray, t0: float, t1: float) -> dict:
    """Every point of a channel with at most MAX_POINTS readings in the window."""
    flagged = np.nonzero(q != 0)[0][:MAX_FLAG_MARKS]
    return {"n": int(t.size), "n_flagged": int(np.count_nonzero(q)), "downsampled": False,
            "t": _clean(t, 1), "raw": _clean(raw), "cal": _clean(cal),
            "flags": [[round(float(t[i]), 1), None if raw[i] != raw[i] else round(float(raw[i]), 4),
                       None if cal[i] != cal[i] else round(float(cal[i]), 4), int(q[i])] for i in flagged]}


def from_buckets(rows: list, marks: list, t0: float, t1: float, n_buckets: int = BUCKETS) -> dict:
    """The downsampled shape of shape(), from SQL aggregates of one channel:
    rows (b, count, mean t, mean raw, mean cal, min cal, max cal, flagged count);
    marks (b, qflags, t, raw, cal)."""
    rows = sorted(rows)
    n = sum(r[1] for r in rows)
    marks = sorted(marks, key=lambda m: m[2])[:MAX_FLAG_MARKS]

    def num(x, nd=4):
        return None if x is None or x != x else round(float(x), nd)

    return {
        "n": n, "n_flagged": sum(r[7] for r in rows), "downsampled": True, "bucket_s": round((t1 - t0) / n_buckets, 1),
        "t": [num(r[2], 1) for r in rows], "raw": [num(r[3]) for r in rows], "cal": [num(r[4]) for r in rows],
        "lo": [num(r[5]) for r in rows], "hi": [num(r[6]) for r in rows],
        "flags": [[num(m[2], 1), num(m[3]), num(m[4]), int(m[1])] for m in marks],
    }
