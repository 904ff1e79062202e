"""EPA metrics checked against an independent hand computation (plain Python, no numpy)."""
import csv
import math
from datetime import datetime

import numpy as np

from sen.calibration.metrics import epa_metrics, judge, precision

from cal_helpers import read_json


def _hand_metrics(pairs):
    """slope, intercept, R², RMSE, NRMSE, bias of (sensor, reference) pairs, written out longhand."""
    n = len(pairs)
    sx = sum(r for _, r in pairs)
    sy = sum(s for s, _ in pairs)
    mx, my = sx / n, sy / n
    sxx = sum((r - mx) ** 2 for _, r in pairs)
    syy = sum((s - my) ** 2 for s, _ in pairs)
    sxy = sum((r - mx) * (s - my) for s, r in pairs)
    slope = sxy / sxx
    rmse = math.sqrt(sum((s - r) ** 2 for s, r in pairs) / n)
    return {"n": n, "slope": slope, "intercept": my - slope * mx, "r2": sxy * sxy / (sxx * syy), "rmse": rmse,
            "nrmse": 100 * rmse / mx, "bias": sum(s - r for s, r in pairs) / n}


def _hand_average(rows, hours, need):
    """rows: (epoch seconds, sensor, ref). Group by whole period; keep groups with >= need rows."""
    groups = {}
    for t, s, r in rows:
        groups.setdefault(int(t // (hours * 3600)), []).append((s, r))
    out = []
    for key in sorted(groups):
        g = groups[key]
        if len(g) >= need:
            out.append((sum(s for s, _ in g) / len(g), sum(r for _, r in g) / len(g)))
    return out


def test_record_metrics_match_hand_computation(sen, epa_csv, tmp_path):
    # Knock out 10 hours of one day so the 75 % completeness rule must drop that day.
    lines = epa_csv.read_text().splitlines()
    del lines[1 + 24 * 5 + 3: 1 + 24 * 5 + 13]
    epa_csv.write_text("\n".join(lines) + "\n")
    code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs",
                         "pm25_cf1,rh", "--out", tmp_path / "rec.json", "--node", "5")
    assert code == 0, err
    rec = read_json(tmp_path / "rec.json")
    a, b, c = (x["value"] for x in rec["coefficients"])
    rows = []
    with open(epa_csv) as fh:
        for row in csv.DictReader(fh):
            t = datetime.fromisoformat(row["time"]).timestamp()
            corrected = a * float(row["pm25_cf1"]) + b * float(row["rh"]) + c
            rows.append((t, corrected, float(row["ref_pm25"])))
    for label, hours, need in (("1h", 1, 1), ("24h", 24, 18)):
        hand = _hand_metrics(_hand_average(rows, hours, need))
        got = rec["metrics"][label]
        assert got["n"] == hand["n"]
        for k in ("slope", "intercept", "r2", "rmse", "nrmse", "bias"):
            assert math.isclose(got[k], hand[k], rel_tol=1e-7, abs_tol=1e-9), (label, k, got[k], hand[k])
    assert rec["metrics"]["24h"]["n"] == 29          # 30 days, one below 75 % complete
    assert rec["metrics"]["1h"]["n"] == 710
    # The gap is reported, with the line before it.
    gap = [i for i in rec["data"]["issues"] if i["kind"] == "gap"]
    assert gap and gap[0]["lines"] == str(1 + 24 * 5 + 3)


def test_precision_sd_cv_by_hand():
    units = np.array([[10.0, 20.0, 30.0, np.nan], [12.0, 18.0, 33.0, 5.0], [11.0, 22.0, 27.0, 6.0]])
    got = precision(units)
    full = [[10, 12, 11], [20, 18, 22], [30, 33, 27]]   # the NaN day is dropped: not all units report
    means = [sum(d) / 3 for d in full]
    ss = sum((x - m) ** 2 for d, m in zip(full, means) for x in d)
    sd = math.sqrt(ss / (3 * 3 - 1))
    assert math.isclose(got["sd"], sd) and math.isclose(got["cv"], 100 * sd / (sum(means) / 3))


def test_targets_judged_with_target_beside_each():
    rows = {r["metric"]: r for r in judge("pm25", {"slope": 1.4, "intercept": -4.9, "r2": 0.69, "rmse": 8.0,
                                                   "nrmse": 29.0, "sd": 5.1, "cv": 12.0, "bias": 3.0})}
    assert rows["slope"]["pass"] is False and rows["slope"]["target"] == "1.0 ± 0.35"
    assert rows["intercept"]["pass"] is True
    assert rows["r2"]["pass"] is False
    assert rows["rmse"]["pass"] is True and rows["nrmse"]["pass"] is True   # NRMSE ≤ 30 % rescues RMSE 8
    assert rows["sd"]["pass"] is False and rows["cv"]["pass"] is True
    assert rows["bias"]["pass"] is None
    assert all(r["pass"] is None for r in judge("ph", {"slope": 1.0}))


def test_report_metrics_use_other_units_for_sd_cv():
    t = 1793491200.0 + 3600.0 * np.arange(24 * 10)
    rng = np.random.default_rng(3)
    ref = 20 + 5 * np.sin(t / 20000)
    s1 = ref + rng.normal(0, 1, t.size)
    s2 = ref + rng.normal(0, 1, t.size)
    m = epa_metrics(t, s1, ref, "pm25", others=[(t, s2)])
    assert m["24h"]["units"] == 2 and m["24h"]["sd"] is not None
    m1 = epa_metrics(t, s1, ref, "pm25")
    assert m1["24h"]["sd"] is None
