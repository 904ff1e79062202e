"""US EPA's 2021 piecewise PurpleAir PM2.5 correction, in its published blended form.

Source: US EPA, "AirNow Fire and Smoke Map: Questions and Answers" (October 2021,
https://document.airnow.gov/airnow-fire-and-smoke-map-questions-and-answers.pdf), the
correction documented with Barkjohn et al., "Correction and Accuracy of PurpleAir PM2.5
Measurements for Extreme Wildfire Smoke", Sensors 22 (2022) 9669. With x = PA_cf1 and RH in %:

    x < 30         0.524·x − 0.0862·RH + 5.75
    30 ≤ x < 50    [0.786·s1 + 0.524·(1 − s1)]·x − 0.0862·RH + 5.75,           s1 = x/20 − 3/2
    50 ≤ x < 210   0.786·x − 0.0862·RH + 5.75
    210 ≤ x < 260  [0.69·s2 + 0.786·(1 − s2)]·x − 0.0862·RH·(1 − s2)
                   + 2.966·s2 + 5.75·(1 − s2) + 8.84e-4·x²·s2,                  s2 = x/50 − 21/5
    x ≥ 260        2.966 + 0.69·x + 8.84e-4·x²

The weights s1, s2 run 0 → 1 across 30–50 and 210–260, so the curve has no jump where the
earlier form switched hard to a quadratic (above 343). Written with s1, s2 clipped to [0, 1]
the whole curve is linear in its seven coefficients, so a local co-location refits them by
OLS; a coefficient whose term the data does not reach (e.g. the smoke range) keeps EPA's value.
"""
import numpy as np


PUBLISHED = {"a_low": 0.524, "a_mid": 0.786, "b_rh": -0.0862, "c": 5.75, "d_high": 0.69, "e_high": 8.84e-4,
             "f_high": 2.966}
NAMES = list(PUBLISHED)
BLEND_LOW = (30.0, 50.0)     # a_low → a_mid
BLEND_HIGH = (210.0, 260.0)  # linear with RH → quadratic without
MIN_SUPPORT = 10             # points where a term is non-zero before it is fitted


def weights(x):
    s1 = np.clip((x - BLEND_LOW[0]) / (BLEND_LOW[1] - BLEND_LOW[0]), 0.0, 1.0)
    s2 = np.clip((x - BLEND_HIGH[0]) / (BLEND_HIGH[1] - BLEND_HIGH[0]), 0.0, 1.0)
    return s1, s2


def basis(x, rh) -> np.ndarray:
    """Columns in NAMES order: the curve is basis @ coefficients."""
    x = np.asarray(x, float)
    s1, s2 = weights(x)
    lo = 1.0 - s2
    return np.column_stack([x * (1 - s1) * lo, x * s1 * lo, np.asarray(rh, float) * lo, lo, x * s2, x * x * s2, s2])


def correct(x, rh, coef=None) -> np.ndarray:
    """The published curve (or one with refitted coefficients)."""
    c = np.array([PUBLISHED[n] for n in NAMES] if coef is None else coef, float)
    return basis(x, rh) @ c
