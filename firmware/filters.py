# Per-channel filters. Each takes the N raw samples of one cycle (a list of floats,
# None for a failed read) and returns one value or None. Lists are sorted in place:
# the caller owns a scratch list per channel, so a cycle allocates almost nothing.

HAMPEL_K = 3.0
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 sigma


def _valid(xs):
    # Drop failed reads without building a new list.
    i = 0
    while i < len(xs):
        if xs[i] is None:
            xs.pop(i)
        else:
            i += 1
    return xs


def _median_sorted(xs):
    n = len(xs)
    m = n >> 1
    if n & 1:
        return xs[m]
    return (xs[m - 1] + xs[m]) / 2


def median_hampel(xs, k=HAMPEL_K, floor=0.0):
    """Median after dropping samples more than k robust sigmas from the median.

    `floor` is the smallest sigma worth trusting (sensor resolution), so a run of identical
    samples with one real step does not turn every other sample into an outlier.
    """
    xs = _valid(xs)
    if not xs:
        return None
    xs.sort()
    med = _median_sorted(xs)
    devs = [abs(x - med) for x in xs]
    devs.sort()
    sigma = MAD_TO_SIGMA * _median_sorted(devs)
    if sigma < floor:
        sigma = floor
    lim = k * sigma
    # xs is sorted, so inliers are one contiguous run.
    lo = 0
    hi = len(xs)
    while lo < hi and med - xs[lo] > lim:
        lo += 1
    while hi > lo and xs[hi - 1] - med > lim:
        hi -= 1
    if hi - lo == len(xs):
        return med
    return _median_sorted(xs[lo:hi])


def trimmed_mean(xs):
    """Mean with the single smallest and largest sample dropped (Sensor.Community style)."""
    xs = _valid(xs)
    n = len(xs)
    if n == 0:
        return None
    if n < 3:
        return sum(xs) / n
    s = 0.0
    lo = xs[0]
    hi = xs[0]
    for x in xs:
        s += x
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    return (s - lo - hi) / (n - 2)


def mean(xs):
    xs = _valid(xs)
    if not xs:
        return None
    return sum(xs) / len(xs)


def ewma(prev, x, alpha):
    """One EWMA step; prev None (first cycle or after a gap) starts from x."""
    if x is None:
        return prev
    if prev is None:
        return x
    return prev + alpha * (x - prev)


FILTERS = {"median": median_hampel, "trimmed_mean": trimmed_mean, "mean": mean}


def reduce(kind, xs, floor=0.0):
    """Apply the named per-cycle filter ('median', 'trimmed_mean', 'mean'); 'ewma' reduces
    the cycle by median first and is smoothed across cycles by the caller."""
    if kind == "median" or kind == "ewma":
        return median_hampel(xs, HAMPEL_K, floor)
    f = FILTERS.get(kind)
    if f is None:
        raise ValueError("unknown filter " + str(kind))
    return f(xs)
