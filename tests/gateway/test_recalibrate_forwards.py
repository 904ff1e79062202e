"""Calibration loop end to end: a record fitted, approved and pushed with `sen cal …` changes
what the gateway forwards, and `sen gateway recalibrate` re-sends stored history corrected,
under the same idempotent ids (updates upstream, no duplicates). Real mosquitto."""
import csv
import subprocess
import sys
import threading
import time
from pathlib import Path

from sen.bench.gateway_receivers import MqttCollector
from sen.gateway.config import load
from sen.gateway.forwarders.mqtt import MqttForwarder
from sen.gateway.key_store import KeyStore
from sen.gateway.service import GatewayService
from sen.testkit.synthetic import Fleet

SEN = str(Path(sys.executable).with_name("sen"))
GAIN, OFFSET = 0.5, 3.0  # the reference reads 0.5·raw + 3 µg/m³


def sen(*args, cwd):
    res = subprocess.run([SEN, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


class Gateway:
    def __init__(self, toml: Path, port: int):
        self.svc = GatewayService(load(toml), forwarders=[MqttForwarder("127.0.0.1", port, "gw-cal")])
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()

    def stop(self):
        self.svc.stopping.set()
        self.thread.join(30)


def pm25(msg):
    return next(r for r in msg["readings"] if r["channel"] == "pm25")


def test_pushed_record_changes_forwarded_values_and_recalibration_updates_history(tmp_path, mosquitto):
    (tmp_path / "records").mkdir()
    toml = tmp_path / "gateway.toml"
    toml.write_text('[gateway]\nid = "gw-cal"\ndata_dir = "data"\nfsync = false\n[keys]\nfile = "keys.json"\n'
                    '[calibration]\nrecords_dir = "records"\n[[radio]]\nbackend = "serial"\nname = "r0"\n'
                    'port = "/dev/null"\n')
    fleet = Fleet(4, seed=9)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    items = list(fleet.frames(48))
    sub = MqttCollector(mosquitto.port)

    gw = Gateway(toml, mosquitto.port)
    for f, m in items[:40]:
        gw.svc.on_frame(f, m)
    assert sub.wait_for(40, 30)
    gw.stop()
    before = {i: pm25(m)["value"] for i, m in sub.by_id.items()}
    assert all(pm25(m)["value"] == pm25(m)["raw"] for m in sub.by_id.values())

    # Field crew: co-location data for node 1 -> fit, approve, push to the gateway.
    data = tmp_path / "colocation.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "pm25", "ref_pm25"])
        for h in range(300):
            raw = (h * 37) % 300  # spans the node's whole range: outside it, readings are flagged, not corrected
            w.writerow([f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:00:00+07:00", raw, GAIN * raw + OFFSET])
    sen("cal", "fit", str(data), "--model", "linear", "--target", "ref_pm25", "--inputs", "pm25", "--node", "1",
        "--channel", "pm25", "--valid-from", "2000-01-01T00:00:00+00:00", "--out", str(tmp_path / "drafts"), cwd=tmp_path)
    record = next((tmp_path / "drafts").glob("*.json"))
    sen("cal", "approve", str(record), "--by", "crew-7", cwd=tmp_path)
    sen("cal", "push", str(record), "--gateway", str(tmp_path / "records"), cwd=tmp_path)

    out = sen("gateway", "recalibrate", "-c", str(toml), cwd=tmp_path)
    assert "forwarders re-send" in out
    n_node1 = sum(1 for i in before if i.startswith("1-"))
    assert f"recalibrated {n_node1} of" in out  # only node 1's pm25 changed

    gw = Gateway(toml, mosquitto.port)  # forwarders resume from the rewound cursor
    for f, m in items[40:]:
        gw.svc.on_frame(f, m)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(sub.by_id) < 48 or any(
            sub.deliveries[i] < 2 for i in before if i.startswith("1-"))):
        time.sleep(0.2)
    gw.stop()
    sub.close()

    assert len(sub.by_id) == 48  # one reading set per id upstream: corrections are updates
    for i, msg in sub.by_id.items():
        p = pm25(msg)
        if i.startswith("1-"):
            assert abs(p["value"] - (GAIN * p["raw"] + OFFSET)) < 0.05, (i, p, dict(sub.deliveries), out)
            if i in before:
                assert sub.deliveries[i] == 2 and p["value"] != before[i]
        else:
            assert p["value"] == p["raw"]
