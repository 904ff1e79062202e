"""Out-of-sample judgement (blocked cross-validation), the approval gate, and records the gateway
could never apply."""
import csv

import numpy as np
from cal_helpers import one_error_line, read_json

from sen.calibration.crossval import blocks
from sen.calibration.fitting import build_record
from sen.calibration.inputs import Table
from sen.calibration.metrics import core

T0 = 1793491200.0
DAYS = 10
# A crew that feeds every channel of the frame into one multilinear curve.
COVARIATES = ["air_temp", "pressure", "battery", "battery_adc", "pm1", "pm10", "pm1_cf1", "pm10_cf1"]


def ou(rng, n, tau_h, sd):
    """Ornstein–Uhlenbeck series: weather-like covariates and sensor drift with a memory of tau_h hours."""
    a = np.exp(-1.0 / tau_h)
    e = rng.normal(0, sd * np.sqrt(1 - a * a), n)
    x = np.empty(n)
    x[0] = rng.normal(0, sd)
    for i in range(1, n):
        x[i] = a * x[i - 1] + e[i]
    return x


def colocation(rng):
    """Hourly co-location with known truth; the sensor drifts (offset wanders ±15 µg/m³) after the first half."""
    n = DAYS * 24
    truth = np.clip(30 * np.exp(ou(rng, n, 12, 0.4)), 3, 300)
    rh = np.clip(75 + ou(rng, n, 36, 8) + rng.normal(0, 2, n), 30, 99)
    drift = ou(rng, n, 24, 15.0) * (np.arange(n) >= n // 2)
    cols = {"pm25_cf1": 1.8 * truth + drift + rng.normal(0, 1.0, n), "rh": rh}
    cols |= {c: ou(rng, n, 24, 1.0) for c in COVARIATES}
    cols["ref_pm25"] = truth
    return T0 + 3600.0 * np.arange(n), cols


def test_blocks_are_contiguous_and_cover_every_row_once():
    b = blocks(240, 5)
    assert [len(x) for x in b] == [48] * 5
    assert np.array_equal(np.concatenate(b), np.arange(240))
    assert all(np.all(np.diff(x) == 1) for x in b)


def test_cross_validated_rmse_tracks_error_on_held_back_truth_while_in_sample_does_not():
    """Known truth, drift after the first half, an over-flexible curve. The held-back truth is fresh
    co-location data from the same process (5 replicates per fit) that the curve never saw."""
    inputs = ["pm25_cf1", "rh"] + COVARIATES
    ins, cv, held = [], [], []
    for seed in range(20):
        t, cols = colocation(np.random.default_rng(seed))
        table = Table(t, cols, np.arange(2, t.size + 2), [], [], "synthetic", "")
        rec = build_record(table, "multilinear", "ref_pm25", inputs, node=7, channel="pm25")
        ins.append(rec.doc["metrics"]["points"]["rmse"])
        cv.append(rec.doc["cross_validation"]["points"]["rmse"])
        errs = []
        for r in range(5):
            _, new = colocation(np.random.default_rng(10_000 + 100 * seed + r))
            errs.append(core(rec.predict([new[n] for n in inputs]), new["ref_pm25"])["rmse"] ** 2)
        held.append(np.sqrt(np.mean(errs)))
    ins, cv, held = np.mean(ins), np.mean(cv), np.mean(held)
    print(f"mean over 20 fits: in-sample RMSE {ins:.2f}, cross-validated {cv:.2f}, held-back truth {held:.2f}")
    assert abs(cv - held) <= 0.2 * held, (ins, cv, held)
    assert ins < 0.6 * held, (ins, cv, held)


def _write(path, t, cols):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time"] + list(cols))
        for i, ti in enumerate(t):
            w.writerow([f"{int(ti)}"] + [f"{cols[c][i]:.3f}" for c in cols])
    return path


def test_approve_refuses_a_curve_worse_than_the_raw_sensor_out_of_sample_unless_accept_worse(sen, tmp_path):
    # The raw sensor already reads the reference (noise only); a degree-5 polynomial on two days
    # fits the noise, so out of sample it is worse than doing nothing.
    rng = np.random.default_rng(3)
    n = 48
    t = T0 + 3600.0 * np.arange(n)
    ref = np.clip(20 + 10 * np.sin(np.arange(n) / 5) + rng.normal(0, 3, n), 2, None)
    data = _write(tmp_path / "c.csv", t, {"pm25_cf1": ref + rng.normal(0, 2.0, n), "ref": ref})
    code, out, err = sen("cal", "fit", data, "--model", "polynomial", "--degree", "5", "--target", "ref",
                         "--inputs", "pm25_cf1", "--node", "5", "--channel", "pm25", "--node-config", "send_raw=true",
                         "--out", tmp_path / "r.json")
    assert code == 0, err
    doc = read_json(tmp_path / "r.json")
    assert doc["cross_validation"]["points"]["rmse"] > doc["uncorrected"]["points"]["rmse"]
    assert "cross-validated" in out and "uncorrected pm25_cf1" in out and "--accept-worse" in out
    code, out, err = sen("cal", "approve", tmp_path / "r.json", "--by", "QA", "--override", "short run")
    line = one_error_line(err)
    assert code == 2 and "worse than the uncorrected sensor" in line and "--accept-worse" in line
    assert read_json(tmp_path / "r.json")["status"] == "draft"
    code, out, err = sen("cal", "approve", tmp_path / "r.json", "--by", "QA", "--override", "short run",
                         "--accept-worse", "stop-gap until the week-long co-location")
    assert code == 0, err
    after = read_json(tmp_path / "r.json")
    assert after["status"] == "approved" and after["accepted_worse"] == "stop-gap until the week-long co-location"
    assert after["hash"] == doc["hash"]


def test_a_record_on_channels_the_node_does_not_send_is_refused_with_the_fix(sen, epa_csv, tmp_path):
    code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs", "pm25_cf1,rh",
                         "--node", "12", "--out", tmp_path / "recs")
    assert code == 0 and "WARNING: node12/pm25/v1 reads pm25_cf1" in out
    rec = tmp_path / "recs" / "node12-pm25-v1.json"
    assert read_json(rec)["node_frame"]["kind"] == "air" and "pm25_cf1" not in read_json(rec)["node_frame"]["channels"]
    code, out, err = sen("cal", "approve", rec, "--by", "QA")
    line = one_error_line(err)
    assert code == 2 and "normal frames do not carry" in line
    assert "--inputs pm25,rh" in line and "sen node config --port PORT --set send_raw=true" in line
    assert read_json(rec)["status"] == "draft"
    # Told the node sends its raw channel always, the same data gives an approvable record.
    code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs", "pm25_cf1,rh",
                         "--node", "12", "--node-config", "send_raw=true", "--out", tmp_path / "recs")
    assert code == 0 and "WARNING" not in out
    assert sen("cal", "approve", tmp_path / "recs" / "node12-pm25-v2.json", "--by", "QA")[0] == 0


def test_push_refuses_a_record_the_gateway_cannot_apply(sen, ph_csv, tmp_path):
    code, out, err = sen("cal", "fit", ph_csv, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--node", "3", "--out", tmp_path / "ph.json")
    assert code == 0
    # An approved record from before this check (no node_frame kept) is judged by the kind's defaults.
    doc = read_json(tmp_path / "ph.json")
    from sen.calibration.records import Record
    doc.pop("node_frame")
    doc["status"] = "approved"
    Record(doc).save(tmp_path / "old.json")
    code, out, err = sen("cal", "push", tmp_path / "old.json", "--gateway", tmp_path / "gw")
    line = one_error_line(err)
    assert code == 2 and "ph_raw" in line and "push refused" in line and "send_raw=true" in line
    assert not (tmp_path / "gw").exists() or not any((tmp_path / "gw").iterdir())
