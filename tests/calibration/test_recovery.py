"""Recovery: fits of synthetic data from known curves land the truth inside the reported 95 % intervals."""
import numpy as np

from sen.testkit import cal_synthetic as synthetic
from sen.calibration.fitting import coefficient_rows, fit_arrays

from cal_helpers import read_json


def test_epa_form_recovered_within_reported_intervals(sen, epa_csv, tmp_path):
    code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs",
                         "pm25_cf1,rh", "--out", tmp_path / "records/", "--node", "12", "--crew", "Nguyen Van A",
                         "--reference", "Met One BAM-1020 #4411")
    assert code == 0, err
    rec = read_json(tmp_path / "records" / "node12-pm25-v1.json")
    assert rec["status"] == "draft" and rec["channel"] == "pm25" and rec["inputs"] == ["pm25_cf1", "rh"]
    got = {c["name"]: c for c in rec["coefficients"]}
    for name, truth in synthetic.EPA_TRUE.items():
        lo, hi = got[name]["ci95"]
        print(f"EPA {name}: true {truth:+.4f}  fitted {got[name]['value']:+.4f} ± {got[name]['se']:.4f}  "
              f"95% CI [{lo:+.4f}, {hi:+.4f}]")
        assert lo <= truth <= hi
        # An interval that covers everything proves nothing: 30 days of hourly data pin these down.
        assert hi - lo < {"a": 0.05, "b": 0.05, "c": 5.0}[name]
    assert 2.0 < rec["residual_sd"] < 3.0   # the generator's reference noise is 2.5 µg/m³


def test_ph_two_point_recovered_within_reported_intervals(sen, ph_csv, tmp_path):
    code, out, err = sen("cal", "fit", ph_csv, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", tmp_path / "ph.json", "--node", "3")
    assert code == 0, err
    rec = read_json(tmp_path / "ph.json")
    got = {c["name"]: c for c in rec["coefficients"]}
    for name, truth in synthetic.PH_TRUE.items():
        lo, hi = got[name]["ci95"]
        print(f"pH {name}: true {truth:.3f}  fitted {got[name]['value']:.3f} ± {got[name]['se']:.3f}  "
              f"95% CI [{lo:.3f}, {hi:.3f}]")
        assert lo <= truth <= hi
        assert hi - lo < 1.0
    acc = {a["name"]: a for a in rec["acceptance"]}
    assert acc["slope"]["pass"] and abs(acc["slope"]["value"] - 56.8 / 59.16 * 100) < 0.5
    assert acc["offset at pH 7"]["pass"]
    assert "PASS slope" in out


def _coverage(make, model, truth, runs, rng):
    hits = {k: 0 for k in truth}
    for _ in range(runs):
        t, X, y = make(rng)
        _, fit = fit_arrays(t, X, y, model)
        for row in coefficient_rows(fit):
            if row["name"] in truth:
                hits[row["name"]] += row["ci95"][0] <= truth[row["name"]] <= row["ci95"][1]
    return {k: v / runs for k, v in hits.items()}


def test_reported_intervals_have_honest_coverage():
    """Across many synthetic data sets the 95 % intervals cover the truth about 95 % of the time."""
    rng = np.random.default_rng(99)

    def epa(rng):
        t, c = synthetic.epa_colocation(rng, days=7)
        return t, [c["pm25_cf1"], c["rh"]], c["ref_pm25"]

    def ph(rng):
        t, c = synthetic.ph_two_point(rng, readings=20)
        return t, [c["ph_raw"], c["water_temp"]], c["buffer_ph"]

    runs = 300
    for make, model, truth in ((epa, "epa_pa", synthetic.EPA_TRUE), (ph, "ph_nernst", synthetic.PH_TRUE)):
        cov = _coverage(make, model, truth, runs, rng)
        print(model, cov)
        for name, frac in cov.items():
            # Binomial SD at 95 % over 300 runs is 1.3 %; 4 SD either side.
            assert 0.90 <= frac <= 1.0 and frac < 0.995, (model, name, frac)


def test_ph_three_point_reads_back_each_buffer(sen, tmp_path):
    t, c = synthetic.ph_two_point(np.random.default_rng(11), buffers=(4.01, 7.00, 10.01))
    ok = synthetic.write_csv(tmp_path / "three.csv", t, c)
    code, out, err = sen("cal", "fit", ok, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", tmp_path / "a.json", "--node", "3")
    assert code == 0 and "PASS worst buffer read-back" in out
    # A bent electrode: the pH 10 buffer reads 20 mV off the line through 4 and 7.
    c["ph_raw"][c["buffer_ph"] == 10.01] += 20.0
    bent = synthetic.write_csv(tmp_path / "bent.csv", t, c)
    code, out, err = sen("cal", "fit", bent, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", tmp_path / "b.json", "--node", "3")
    assert code == 0 and "FAIL worst buffer read-back" in out
