"""The seam with the gateway: records pushed with `sen cal push` change what its calibrate step produces."""
import numpy as np

from sen.calibration.records import load
from sen.gateway.calibrate import Calibrator
from sen.channels import BY_NAME

T0 = 1793491200.0


def test_pushed_approved_record_changes_gateway_values(sen, epa_csv, tmp_path):
    recs = tmp_path / "records"
    gw = tmp_path / "gateway-records"
    assert sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs", "pm25_cf1,rh",
               "--out", recs, "--node", "21", "--node-config", "send_raw=true")[0] == 0
    rec_path = recs / "node21-pm25-v1.json"
    # Three samples, each with pm25 (node's own), pm25_cf1 and rh; the last one at RH beyond the fit.
    ch = np.array([BY_NAME[n].id for n in ("pm25", "pm25_cf1", "rh")] * 3)
    raw = np.array([20.0, 30.0, 70.0, 35.0, 50.0, 80.0, 40.0, 60.0, 99.5])
    nodes = np.full(9, 21)
    samples = np.repeat([1, 2, 3], 3)
    times = T0 + 3600 * samples.astype(float)
    gw.mkdir()
    _, before, _, _ = Calibrator(gw).apply_physical(nodes, ch, samples, times, raw)
    assert np.array_equal(before, raw)
    sen("cal", "approve", rec_path, "--by", "QA")
    code, out, err = sen("cal", "push", rec_path, "--gateway", gw)
    assert code == 0, err
    _, after, oor, tag = Calibrator(gw).apply_physical(nodes, ch, samples, times, raw)
    a, b, c = load(rec_path).params
    pm = ch == BY_NAME["pm25"].id
    assert np.allclose(after[pm], a * raw[ch == BY_NAME["pm25_cf1"].id] + b * raw[ch == BY_NAME["rh"].id] + c)
    assert np.array_equal(after[~pm], raw[~pm])          # raw channels are left as they came
    rh_hi = load(rec_path).doc["valid_range"]["rh"][1]
    assert rh_hi < 99.5 and oor[pm].tolist() == [False, False, True]
