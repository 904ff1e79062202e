"""Every model's record goes through fit → report without error, with its own plot content."""
import numpy as np
import pytest

from sen.testkit.cal_synthetic import write_csv

T0 = 1793491200.0
RNG = np.random.default_rng(77)


def _data(model):
    n = 240
    t = T0 + 3600.0 * np.arange(n)
    if model == "turbidity_pchip":
        ntu = np.repeat([0.0, 100.0, 400.0, 1000.0, 4000.0], 8)
        mv = np.interp(ntu, [0, 100, 400, 1000, 4000], [2950, 2600, 2200, 1500, 700]) + RNG.normal(0, 3, ntu.size)
        return T0 + np.arange(ntu.size), {"turbidity_raw": mv, "ntu": ntu}, "ntu", "turbidity_raw", ()
    if model == "conductivity":
        V = RNG.uniform(50, 2500, n)
        T = RNG.uniform(20, 32, n)
        return t, {"ec_raw": V, "water_temp": T, "ec25": (1.6 * V + 12) / (1 + 0.02 * (T - 25)) + RNG.normal(0, 5, n)}, \
            "ec25", "ec_raw,water_temp", ()
    if model == "rain_power":
        Im = RNG.uniform(1, 150, n)
        return t, {"rain_intensity": Im, "ref_i": 0.97 * Im ** 1.03 * (1 + RNG.normal(0, 0.02, n))}, "ref_i", \
            "rain_intensity", ("--channel", "rain_intensity")
    x = RNG.uniform(5, 120, n)
    rh = RNG.uniform(45, 98, n)
    if model in ("epa_piecewise", "kohler"):
        y = 0.6 * x - 0.08 * rh + 4 + RNG.normal(0, 2, n) if model == "epa_piecewise" else \
            0.9 * x / (1 + (0.35 / 1.65) / (100 / np.minimum(rh, 95) - 1)) + RNG.normal(0, 1, n)
        return t, {"pm25_cf1": x, "rh": rh, "ref": y}, "ref", "pm25_cf1,rh", ()
    y = 3 + 0.8 * x + RNG.normal(0, 3, n)
    return t, {"pm25_cf1": x + RNG.normal(0, 3, n), "ref": y, "rh": rh}, "ref", "pm25_cf1", ()


@pytest.mark.parametrize("model", ["turbidity_pchip", "conductivity", "rain_power", "epa_piecewise", "kohler",
                                   "deming", "odr", "polynomial", "multilinear"])
def test_fit_and_report_each_model(sen, tmp_path, model):
    t, cols, target, inputs, extra = _data(model)
    if model == "multilinear":
        inputs = "pm25_cf1,rh"
    data = write_csv(tmp_path / "d.csv", t, cols)
    code, out, err = sen("cal", "fit", data, "--model", model, "--target", target, "--inputs", inputs, "--out",
                         tmp_path / "r.json", "--node", "40", *extra)
    assert code == 0, err
    code, out, err = sen("cal", "report", tmp_path / "r.json", "--out", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    has_cov = any(c in cols for c in ("rh", "air_temp", "water_temp"))
    assert html.count("<svg") == (3 if has_cov else 2) and f"model <b>{model}</b>" in html
    assert has_cov or "residual plots skipped" in html
    if model == "turbidity_pchip":
        assert "standards (mean raw)" in html
