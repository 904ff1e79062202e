"""The gateway says per node and channel why an approved record does not apply (inputs its
frames do not carry), in `sen gateway status`, its JSON and the status page's record view."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sen.calibration.fitting import build_record
from sen.calibration.inputs import Table
from sen.gateway.config import load
from sen.gateway.key_store import KeyStore
from sen.gateway.service import GatewayService
from sen.gateway.status_page.records_view import RecordsView
from sen.gateway.store import connect
from sen.testkit.synthetic import Fleet

SEN = str(Path(sys.executable).with_name("sen"))


def _record(node, inputs, recs):
    rng = np.random.default_rng(node)
    n = 200
    cols = {"pm25_cf1": rng.uniform(5, 150, n), "pm25": rng.uniform(5, 150, n), "rh": rng.uniform(40, 95, n)}
    cols["ref"] = 0.5 * cols[inputs[0]] - 0.05 * cols["rh"] + 4 + rng.normal(0, 1, n)
    table = Table(1793491200.0 + 3600.0 * np.arange(n), cols, np.arange(n), [], [], "t", "")
    model = "epa_pa" if len(inputs) == 2 else "linear"
    rec = build_record(table, model, "ref", inputs, node=node, channel="pm25", valid_from="2000-01-01T00:00:00Z",
                       node_config={"send_raw": True})
    rec.doc["status"] = "approved"
    rec.save(recs / f"node{node}-pm25-v1.json")


def test_status_says_why_a_record_does_not_apply(tmp_path):
    recs = tmp_path / "records"
    recs.mkdir()
    toml = tmp_path / "gateway.toml"
    toml.write_text('[gateway]\nid = "gw-s"\ndata_dir = "data"\nfsync = false\n[keys]\nfile = "keys.json"\n'
                    '[calibration]\nrecords_dir = "records"\n[[radio]]\nbackend = "serial"\nname = "r0"\n'
                    'port = "/dev/null"\n')
    fleet = Fleet(2, seed=3)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    svc = GatewayService(load(toml), forwarders=[])
    th = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    th.start()
    for f, m in fleet.frames(20):
        svc.on_frame(f, m)
    def stored():
        con = connect(svc.cfg.store_path, readonly=True)
        try:
            return con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        finally:
            con.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and stored() < 20:
        time.sleep(0.1)
    svc.stopping.set()
    th.join(30)
    # Approved records arrive after the history was stored, as after a push.
    _record(1, ["pm25_cf1", "rh"], recs)   # the fleet's frames carry no pm25_cf1
    _record(2, ["pm25"], recs)             # pm25 is in every frame

    res = subprocess.run([SEN, "gateway", "status", "-c", str(toml), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    cal = {c["node"]: c for c in json.loads(res.stdout)["calibration"]}
    assert cal[1]["applies"] is False and cal[1]["record"] == "node1/pm25/v1"
    assert "carry no pm25_cf1" in cal[1]["reason"] and "send_raw=true" in cal[1]["reason"]
    assert cal[2]["applies"] is True
    res = subprocess.run([SEN, "gateway", "status", "-c", str(toml)], capture_output=True, text=True,
                         env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and "does not apply" in res.stdout

    view = RecordsView(recs).for_node(1, seen={"pm25", "rh", "air_temp"})
    active = view["channels"]["pm25"]["active"]
    assert active["applies"] is False and "pm25_cf1" in active["applies_reason"]
    assert RecordsView(recs).for_node(2, seen={"pm25"})["channels"]["pm25"]["active"]["applies"] is True

    # recalibrate: node 2's curve changes its 10 pm25 values; node 1's cannot apply, so its 10
    # readings keep their values (only flagged) and are neither counted nor re-sent.
    res = subprocess.run([SEN, "gateway", "recalibrate", "-c", str(toml)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    con = connect(load(toml).store_path, readonly=True)
    first2, total = con.execute("SELECT MIN(id), (SELECT COUNT(*) FROM readings) FROM readings"
                                " WHERE node_id=2 AND channel=5").fetchone()
    con.close()
    assert f"recalibrated 10 of {total} readings" in res.stdout and f"re-send from reading {first2} " in res.stdout
    assert "10 more had only their flags or calibration tag updated (not re-sent)" in res.stdout
    assert "node1/pm25/v1: does not apply" in res.stdout
