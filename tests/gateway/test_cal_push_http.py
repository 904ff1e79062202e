"""`sen cal push --gateway http://…` against a running gateway's status server: the approved
record is installed (token required, 401 without) and applied to the frames that follow."""
import csv
import subprocess
import sys
import time
from pathlib import Path

from sen.gateway.store import connect
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway

SEN = str(Path(sys.executable).with_name("sen"))
TOKEN = "sen-test-operator-token-0123456789"
GAIN, OFFSET = 0.5, 3.0


def sen(*args, cwd):
    return subprocess.run([SEN, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def pm25_rows(db, node):
    c = connect(db, readonly=True)
    rows = c.execute("SELECT counter, raw, value FROM readings WHERE node_id=? AND channel=5 ORDER BY counter",
                     (node,)).fetchall()
    c.close()
    return rows


def test_push_installs_an_approved_record_on_a_running_gateway(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    fleet = Fleet(2, seed=21)
    gw = LiveGateway(tmp_path, fleet, [])
    gw.cfg.calibration_dir = records
    gw.cfg.status = {"port": 0, "token": TOKEN}
    gw.start()
    deadline = time.monotonic() + 20
    while getattr(gw.svc, "status_server", None) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    url = gw.svc.status_server.url.rstrip("/")
    items = list(fleet.frames(20))
    gw.inject_all(items[:10])
    gw.wait_stored(10)
    calibrator = gw.svc.pipeline.calibrator

    data = tmp_path / "colocation.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "pm25", "ref_pm25"])
        for h in range(300):
            raw = (h * 37) % 300
            w.writerow([f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:00:00+07:00", raw, GAIN * raw + OFFSET])
    fit = sen("cal", "fit", str(data), "--model", "linear", "--target", "ref_pm25", "--inputs", "pm25", "--node", "1",
              "--channel", "pm25", "--valid-from", "2000-01-01T00:00:00+00:00", "--out", str(tmp_path / "drafts"),
              cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    record = next((tmp_path / "drafts").glob("*.json"))

    draft = sen("cal", "push", str(record), "--gateway", url, "--token", TOKEN, cwd=tmp_path)
    assert draft.returncode == 2 and "draft" in draft.stderr  # refused before it leaves the laptop
    assert sen("cal", "approve", str(record), "--by", "crew-7", cwd=tmp_path).returncode == 0

    no_token = sen("cal", "push", str(record), "--gateway", url, cwd=tmp_path)
    assert no_token.returncode == 2 and "--token" in no_token.stderr and "Traceback" not in no_token.stderr
    wrong = sen("cal", "push", str(record), "--gateway", url, "--token", "not-the-token", cwd=tmp_path)
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    # the endpoint itself answers 401 to a request without the token
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{url}/api/calibration/records", data=record.read_bytes(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("accepted without a token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    assert not list(records.glob("*.json"))

    ok = sen("cal", "push", str(record), "--gateway", url, "--token", TOKEN, cwd=tmp_path)
    assert ok.returncode == 0 and "HTTP 201" in ok.stdout, ok.stderr
    assert [p.name for p in records.glob("*.json")] == ["node1-pm25-v1.json"]
    again = sen("cal", "push", str(record), "--gateway", url, "--token", TOKEN, cwd=tmp_path)
    assert again.returncode == 0 and "already on the gateway" in again.stdout

    deadline = time.monotonic() + 20  # the service reloads its records between batches
    while gw.svc.pipeline.calibrator is calibrator and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.inject_all(items[10:])
    gw.wait_stored(20)
    gw.stop()
    rows = pm25_rows(gw.cfg.store_path, 1)
    assert len(rows) == 10
    for counter, raw, value in rows:
        if counter < 5:  # node 1's frames before the push: as measured
            assert value == raw
        else:  # after: corrected by the pushed record
            assert abs(value - (GAIN * raw + OFFSET)) < 0.05, (counter, raw, value)
    assert all(v == r for _, r, v in pm25_rows(gw.cfg.store_path, 2))  # node 2 has no record
