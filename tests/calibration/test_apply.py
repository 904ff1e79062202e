"""apply_records: approved only, by validity time, highest version wins, out-of-range flagged."""
import json

import numpy as np
import pytest

from sen.testkit import cal_synthetic as synthetic
from sen.calibration.apply import apply_records, calibrated_channels, load_records
from sen.calibration.records import load
from sen.errors import SenError

T0 = 1793491200.0  # 2026-11-01T00:00Z


@pytest.fixture
def recdir(sen, epa_csv, tmp_path):
    d = tmp_path / "records"
    for extra in ((), ("--valid-from", "2026-11-20T00:00Z")):
        code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs",
                             "pm25_cf1,rh", "--out", d, "--node", "21", "--node-config", "send_raw=true", *extra)
        assert code == 0, err
    return d


def test_drafts_do_not_apply_then_approved_do(sen, recdir):
    times = T0 + 3600 * np.arange(5)
    cf1 = np.array([20.0, 30.0, 40.0, 50.0, 60.0])
    pm = cf1 * 0.7   # what the node itself reports on pm25
    rh = np.full(5, 80.0)
    v, m = apply_records(load_records(recdir), 21, "pm25", times, pm, {"pm25_cf1": cf1, "rh": rh})
    assert np.array_equal(v, pm) and not m.any()          # drafts: identity
    code, out, err = sen("cal", "approve", recdir / "node21-pm25-v1.json", "--by", "QA Le")
    assert code == 0, err
    recs = load_records(recdir)
    v, m = apply_records(recs, 21, "pm25", times, pm, {"pm25_cf1": cf1, "rh": rh})
    a, b, c = load(recdir / "node21-pm25-v1.json").params
    assert np.allclose(v, a * cf1 + b * rh + c)
    assert not m.any()
    assert calibrated_channels(recs, 21) == {"pm25": ["pm25_cf1", "rh"]}
    # Other node, other channel: untouched.
    v2, _ = apply_records(recs, 22, "pm25", times, pm, {"pm25_cf1": cf1, "rh": rh})
    assert np.array_equal(v2, pm)


def test_validity_time_and_version_precedence(sen, recdir):
    for name in ("node21-pm25-v1.json", "node21-pm25-v2.json"):
        assert sen("cal", "approve", recdir / name, "--by", "QA")[0] == 0
    v1 = load(recdir / "node21-pm25-v1.json")
    v2 = load(recdir / "node21-pm25-v2.json")
    assert v2.version == 2 and v2.doc["valid_from"] == "2026-11-20T00:00:00Z"
    # Make v2's curve distinguishable: a deliberately different record, refitted on shifted data.
    times = np.array([T0 + 86400 * 5, T0 + 86400 * 19.99, T0 + 86400 * 20, T0 + 86400 * 25])
    cf1 = np.full(4, 40.0)
    rh = np.full(4, 70.0)
    v, m = apply_records([v1, v2], 21, "pm25", times, cf1, {"pm25_cf1": cf1, "rh": rh})
    assert np.allclose(v[:2], v1.predict([cf1[:2], rh[:2]]))
    assert np.allclose(v[2:], v2.predict([cf1[2:], rh[2:]]))
    # Before the first record's validity: identity.
    v, m = apply_records([v1, v2], 21, "pm25", np.array([T0 - 10]), np.array([40.0]),
                         {"pm25_cf1": np.array([40.0]), "rh": np.array([70.0])})
    assert v[0] == 40.0 and not m[0]


def test_out_of_range_flagged_not_silent(sen, recdir):
    sen("cal", "approve", recdir / "node21-pm25-v1.json", "--by", "QA")
    rec = load(recdir / "node21-pm25-v1.json")
    lo, hi = rec.doc["valid_range"]["pm25_cf1"]
    cf1 = np.array([lo, hi, hi * 1.5, (lo + hi) / 2, (lo + hi) / 2])
    rh = np.array([80.0, 80.0, 80.0, 80.0, np.nan])
    t = np.full(5, T0 + 3600)
    v, m = apply_records([rec], 21, "pm25", t, cf1, {"pm25_cf1": cf1, "rh": rh})
    assert m.tolist() == [False, False, True, False, True]
    assert np.isclose(v[2], rec.predict([cf1[2:3], rh[2:3]])[0])     # value kept, flagged
    assert v[4] == cf1[4]                                            # missing RH: raw kept, flagged


def test_hand_edited_record_refused(sen, recdir):
    p = recdir / "node21-pm25-v1.json"
    doc = json.loads(p.read_text())
    doc["coefficients"][0]["value"] = 0.9
    p.write_text(json.dumps(doc))
    with pytest.raises(SenError, match="content hash does not match"):
        load_records(recdir)


def test_pchip_turbidity_does_not_extrapolate(sen, tmp_path):
    rows = ["time,turbidity_raw,ntu"]
    rng = np.random.default_rng(0)
    k = 0
    for ntu, mv in ((0, 2950), (100, 2600), (400, 2200), (1000, 1500), (4000, 700)):
        for _ in range(8):
            k += 1
            rows.append(f"{T0 + k},{mv + rng.normal(0, 3):.2f},{ntu}")
    (tmp_path / "std.csv").write_text("\n".join(rows) + "\n")
    code, out, err = sen("cal", "fit", tmp_path / "std.csv", "--model", "turbidity_pchip", "--target", "ntu",
                         "--inputs", "turbidity_raw", "--out", tmp_path / "t.json", "--node", "2", "--node-config", "send_raw=true")
    assert code == 0, err
    sen("cal", "approve", tmp_path / "t.json", "--by", "QA")
    rec = load(tmp_path / "t.json")
    assert rec.channel == "turbidity"
    raw = np.array([2950.0, 2400.0, 1000.0, 650.0, 3100.0])
    v, m = apply_records([rec], 2, "turbidity", np.full(5, T0 + 100), raw, {"turbidity_raw": raw})
    assert m.tolist() == [False, False, False, True, True]
    assert 100 < v[1] < 400 and 1000 < v[2] < 4000
    assert v[3] == 650.0 and v[4] == 3100.0      # no extrapolation: raw kept and flagged
    # Monotone between knots: NTU falls as the mV rises, with no overshoot.
    grid = np.linspace(rec.doc["knots"]["knots_raw"][0], rec.doc["knots"]["knots_raw"][-1], 500)
    assert np.all(np.diff(rec.predict([grid])) <= 1e-9)


def test_ph_record_applies_to_ph_from_raw(sen, ph_csv, tmp_path):
    code, out, err = sen("cal", "fit", ph_csv, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", tmp_path / "ph.json", "--node", "3", "--node-config", "send_raw=true")
    assert code == 0, err
    sen("cal", "approve", tmp_path / "ph.json", "--by", "QA")
    rec = load(tmp_path / "ph.json")
    T = np.array([20.0, 27.0, 32.0])
    true_ph = np.array([4.5, 5.5, 6.5])
    mv = synthetic.PH_TRUE["E7_mV"] + synthetic.PH_TRUE["S25_mV_per_pH"] * (T + 273.15) / 298.15 * (7 - true_ph)
    node_ph = np.full(3, 7.0)
    v, m = apply_records([rec], 3, "ph", np.full(3, T0 + 10), node_ph, {"ph_raw": mv, "water_temp": T})
    assert np.allclose(v, true_ph, atol=0.02) and not m.any()


def test_damaged_file_skipped_when_the_caller_asks(sen, recdir):
    (recdir / "junk.json").write_text("{not json")
    with pytest.raises(SenError, match="not valid JSON"):
        load_records(recdir)
    seen = []
    recs = load_records(recdir, on_error=lambda p, msg: seen.append((p.name, msg)))
    assert len(recs) == 2 and seen[0][0] == "junk.json" and "not valid JSON" in seen[0][1]
