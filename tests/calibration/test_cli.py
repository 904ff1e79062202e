"""Field-crew commands: check, list, approve, push (directory and HTTP)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from sen.testkit import cal_synthetic as synthetic
from sen.calibration.apply import load_records

from cal_helpers import one_error_line, read_json


@pytest.fixture
def ph_record(sen, ph_csv, tmp_path):
    p = tmp_path / "recs" / "ph.json"
    code, out, err = sen("cal", "fit", ph_csv, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", p, "--node", "3", "--node-config", "send_raw=true")
    assert code == 0, err
    return p


def test_check_ph7_buffer_pass_and_fail(sen, ph_record):
    # E7 ≈ 12 mV: a probe reading 12.5 mV in pH 7 buffer at 25 °C passes, 20 mV (0.14 pH off) fails.
    code, out, _ = sen("cal", "check", "--expected", "7.00", "--record", ph_record, "--raw", "12.5", "--temp", "25")
    assert code == 0 and out.startswith("PASS pH 7 check buffer: expected 7") and "≤ 0.1" in out
    code, out, _ = sen("cal", "check", "--expected", "7.00", "--record", ph_record, "--raw", "20", "--temp", "25")
    assert code == 1 and out.startswith("FAIL pH 7 check buffer") and "> 0.1" in out
    code, out, _ = sen("cal", "check", "--expected", "1413", "--measured", "1398", "--tolerance", "30",
                       "--what", "KCl 0.01 M")
    assert code == 0 and out.strip() == "PASS KCl 0.01 M: expected 1413, measured 1398.000, |Δ| 15.000 ≤ 30"
    code, _, err = sen("cal", "check", "--expected", "7", "--record", ph_record, "--raw", "12")
    assert code == 2 and "--temp" in one_error_line(err)


def test_list_approve_push_directory(sen, ph_record, tmp_path):
    code, out, _ = sen("cal", "list", ph_record.parent)
    assert code == 0 and "ph_nernst" in out and "draft" in out
    gw = tmp_path / "gateway" / "records"
    code, out, err = sen("cal", "push", ph_record, "--gateway", gw)
    assert code == 2 and "is a draft" in one_error_line(err) and "sen cal approve" in err
    assert not gw.exists() or not any(gw.iterdir())
    before = read_json(ph_record)["hash"]
    code, out, err = sen("cal", "approve", ph_record, "--by", "Pham QA")
    assert code == 0 and "approved node3/ph/v1" in out
    doc = read_json(ph_record)
    assert doc["status"] == "approved" and doc["approved_by"] == "Pham QA" and doc["hash"] == before
    code, out, err = sen("cal", "push", ph_record, "--gateway", gw)
    assert code == 0 and "pushed node3/ph/v1" in out
    recs = load_records(gw)
    assert [r.id for r in recs] == ["node3/ph/v1"] and recs[0].status == "approved"
    code, out, _ = sen("cal", "push", ph_record, "--gateway", f"file://{gw}")
    assert code == 0 and "already on the gateway" in out


def test_approve_refuses_failing_acceptance(sen, tmp_path):
    t, c = synthetic.ph_two_point(np.random.default_rng(8))
    c["ph_raw"] = 12.0 + (c["ph_raw"] - 12.0) * 0.8      # aged electrode: ~77 % of Nernst
    data = synthetic.write_csv(tmp_path / "old.csv", t, c)
    rec = tmp_path / "old.json"
    code, out, err = sen("cal", "fit", data, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--out", rec, "--node", "3", "--node-config", "send_raw=true")
    assert code == 0 and "FAIL slope" in out
    code, out, err = sen("cal", "approve", rec, "--by", "QA")
    assert code == 2 and "fails slope" in one_error_line(err)
    assert read_json(rec)["status"] == "draft"
    code, out, err = sen("cal", "approve", rec, "--by", "QA", "--override", "spare probe on order; interim use")
    assert code == 0 and read_json(rec)["approval_note"] == "spare probe on order; interim use"


def test_push_http(sen, ph_record):
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, json.loads(body), self.headers.get("Authorization")))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        sen("cal", "approve", ph_record, "--by", "QA")
        url = f"http://127.0.0.1:{srv.server_port}"
        code, out, err = sen("cal", "push", ph_record, "--gateway", url)
        assert code == 2 and "--token" in one_error_line(err)
        code, out, err = sen("cal", "push", ph_record, "--gateway", url, "--token", "t0k")
        assert code == 0, err
        assert "HTTP 201" in out
        assert got[0][0] == "/api/calibration/records" and got[0][1]["hash"] == read_json(ph_record)["hash"]
        assert got[0][2] == "Bearer t0k"
    finally:
        srv.shutdown()
        srv.server_close()
    code, out, err = sen("cal", "push", ph_record, "--gateway", url, "--token", "t0k")
    assert code == 2 and "cannot reach" in one_error_line(err)
