"""Each model recovers a known curve from noisy data within its reported 95 % intervals."""
import numpy as np
import pytest

from sen.calibration.fitting import coefficient_rows, fit_arrays
from sen.calibration.models import kohler_growth
from sen.errors import SenError

RNG = np.random.default_rng(2026)


def _check(fit, truth):
    rows = {r["name"]: r for r in coefficient_rows(fit)}
    for name, v in truth.items():
        lo, hi = rows[name]["ci95"]
        assert lo <= v <= hi, (name, v, rows[name])
    return rows


def test_conductivity_cell_constant_fixed_and_fitted_alpha():
    n = 200
    V = RNG.uniform(50, 2500, n)
    T = RNG.uniform(18, 34, n)
    k, c, alpha = 1.6, 12.0, 0.0191
    ec25 = (k * V + c) / (1 + alpha * (T - 25)) + RNG.normal(0, 5, n)
    _, fit = fit_arrays(None, [V, T], ec25, "conductivity", {"alpha": "fit"})
    _check(fit, {"k": k, "c": c, "alpha": alpha})
    _, fit = fit_arrays(None, [V, T], ec25, "conductivity", {"alpha": alpha})
    _check(fit, {"k": k, "c": c})
    with pytest.raises(SenError, match="too little to fit α"):
        fit_arrays(None, [V, np.full(n, 25.0)], ec25, "conductivity", {"alpha": "fit"})


def test_rain_dynamic_correction():
    Im = RNG.uniform(2, 180, 150)
    a, b = 0.97, 1.035
    I = a * Im ** b * (1 + RNG.normal(0, 0.02, Im.size))
    _, fit = fit_arrays(None, [np.r_[Im, 0.0, 0.0]], np.r_[I, 0.0, 0.0], "rain_power")
    _check(fit, {"a": a, "b": b})
    assert fit.extra["dry_rows_left_out"] == 2


def test_deming_and_odr_undo_regression_dilution():
    n = 400
    truth = RNG.uniform(5, 80, n)
    x = truth + RNG.normal(0, 8, n)           # the node's reading is noisy too
    y = 2.0 + 0.8 * truth + RNG.normal(0, 8 * 0.8, n)
    _, ols = fit_arrays(None, [x], y, "linear")
    lam = (4 * 0.8) ** 2 / 4 ** 2
    _, dem = fit_arrays(None, [x], y, "deming", {"lam": lam})
    _, odr = fit_arrays(None, [x], y, "odr", {"lam": lam})
    assert ols.params[1] < 0.8 - 4 * np.sqrt(ols.cov[1, 1])   # OLS is biased low, confidently
    _check(dem, {"b0": 2.0, "b1": 0.8})
    _check(odr, {"b0": 2.0, "b1": 0.8})
    assert abs(dem.params[1] - odr.params[1]) < 0.01


def test_kohler_growth_recovered():
    n = 500
    rh = RNG.uniform(40, 99, n)
    dry = RNG.lognormal(3, 0.5, n)
    kappa, s = 0.38, 0.9
    pm = dry * kohler_growth(rh, kappa) / s * (1 + RNG.normal(0, 0.03, n))
    _, fit = fit_arrays(None, [pm, rh], dry, "kohler")
    _check(fit, {"s": s, "kappa": kappa})
    assert kohler_growth(np.array([99.0]), 0.4)[0] == pytest.approx(1 + (0.4 / 1.65) / (1 / 0.95 - 1))


def test_polynomial_and_multilinear():
    x = RNG.uniform(0, 10, 200)
    z = RNG.uniform(20, 35, 200)
    y = 1 + 0.5 * x + 0.08 * x ** 2 + RNG.normal(0, 0.2, 200)
    _, fit = fit_arrays(None, [x], y, "polynomial", {"degree": 2})
    _check(fit, {"b0": 1, "b1": 0.5, "b2": 0.08})
    y2 = 3 + 1.1 * x - 0.2 * z + RNG.normal(0, 0.2, 200)
    _, fit = fit_arrays(None, [x, z], y2, "multilinear")
    _check(fit, {"b0": 3, "b1": 1.1, "b2": -0.2})
    with pytest.raises(SenError, match="singular design"):
        fit_arrays(None, [x, 2 * x + 1], y2, "multilinear")
