"""The README's field-crew block, run word for word with the files it produces, against a real
gateway (GatewayService, SQLite store, MQTT forwarder to a real mosquitto) fed with frames
made by the firmware's own encoder (firmware/frame.py).

A PM2.5 node sends pm25, pm25_cf1 and rh every 10 minutes (send_raw on). The truth is known:
the reference (a BAM, hourly, local time, decimal commas, as such files come) reads the true
concentration, and the sensor's cf1 relates to it by the EPA form. After export, join, fit,
report, approve and push, the gateway applies the curve to new frames, `recalibrate` changes
exactly the stored PM2.5 history and rewinds the forwarders to its first reading, and a second
`recalibrate` changes nothing and rewinds nothing.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sen.bench.gateway_receivers import MqttCollector
from sen.firmware_modules import load as load_firmware
from sen.gateway.config import load
from sen.gateway.forwarders.mqtt import MqttForwarder
from sen.gateway.key_store import KeyStore
from sen.gateway.rx_meta import RxMeta
from sen.gateway.service import GatewayService
from sen.gateway.store import connect

ROOT = Path(__file__).resolve().parents[2]
NODE = 101
T0 = 1793491200.0            # 2026-11-01T00:00Z
STEP = 600                   # one frame every 10 minutes
DAYS = 8
A, B, C = 0.55, -0.09, 6.0   # truth = A·cf1 + B·RH + C (the EPA form, local coefficients)
KEY = bytes(range(16))


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Field crews: calibrate", 1)[1].split("\n## ", 1)[0]
    return [ln for ln in re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines() if ln.strip()]


class World:
    def __init__(self, seed=19):
        self.rng = np.random.default_rng(seed)
        self.framer = load_firmware("frame").Framer(NODE, KEY)
        self.counter = 0

    def frames(self, t_start, n):
        """n frames from t_start; returns [(frame, meta)] and the true concentration per frame."""
        t = t_start + STEP * np.arange(n)
        hour = (t / 3600 + 7) % 24
        truth = np.clip(25 + 12 * np.sin(2 * np.pi * (hour - 8) / 24) + 8 * np.sin(2 * np.pi * t / 86400 / 3.1)
                        + self.rng.normal(0, 2, n), 3, 150)
        rh = np.clip(78 - 14 * np.cos(2 * np.pi * (hour - 4) / 24) + self.rng.normal(0, 4, n), 40, 99)
        cf1 = np.round((truth - B * rh - C) / A + self.rng.normal(0, 1.0, n))
        out = []
        for i in range(n):
            readings = [(2, int(round(rh[i] * 2)), 0), (5, int(round(cf1[i] * 0.8)), 0), (39, int(cf1[i]), 0)]
            f = self.framer.encode(self.counter, 0, [(0, readings)])
            self.counter += 1
            out.append((f, RxMeta("gw-crew", float(t[i]), 921_400_000, 9, 125_000, -95.0, 4.0, "r0")))
        return out, truth


class Gateway:
    def __init__(self, toml, port):
        self.svc = GatewayService(load(toml), forwarders=[MqttForwarder("127.0.0.1", port, "gw-crew")])
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()

    def feed(self, items, sub, expect_ids):
        for f, m in items:
            self.svc.on_frame(f, m)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not expect_ids(sub):
            time.sleep(0.2)
        self.svc.stopping.set()
        self.thread.join(30)


def run(line, cwd, transcript):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    res = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    transcript.append(f"$ {line}\n{res.stdout}{res.stderr}")
    assert res.returncode == 0, "\n".join(transcript)
    return res.stdout


def write_bam(path, t_frames, truth, rng):
    """Hourly means of the truth, hour-beginning stamps in local time (DD/MM/YYYY hh:mm), decimal commas."""
    hours = np.floor(t_frames / 3600).astype(int)
    lines = ["time,bam_pm25"]
    for h in np.unique(hours):
        local = time.gmtime(h * 3600 + 7 * 3600)
        v = truth[hours == h].mean() + rng.normal(0, 0.3)
        comma = f"{v:.1f}".replace(".", ",")
        lines.append(f'{time.strftime("%d/%m/%Y %H:%M", local)},"{comma}"')
    path.write_text("\n".join(lines) + "\n")


def pm25_of(msg):
    return next(r for r in msg["readings"] if r["channel"] == "pm25")


def test_readme_field_crew_block_end_to_end(tmp_path, mosquitto):
    block = readme_block()
    verbs = [ln.split()[1] + " " + ln.split()[2] for ln in block]
    assert verbs == ["gateway export", "cal join", "cal fit", "cal report", "cal approve", "cal push",
                     "gateway recalibrate", "cal check", "cal models"], verbs
    (tmp_path / "calibration").mkdir()
    toml = tmp_path / "gateway.toml"
    toml.write_text('[gateway]\nid = "gw-crew"\ndata_dir = "data"\nfsync = false\n[keys]\nfile = "keys.json"\n'
                    '[calibration]\nrecords_dir = "calibration"\n[[radio]]\nbackend = "serial"\nname = "r0"\n'
                    'port = "/dev/null"\n')
    KeyStore(tmp_path / "keys.json", create=True).add(NODE, KEY)
    world = World()
    n_hist = DAYS * 86400 // STEP
    history, truth = world.frames(T0, n_hist)
    write_bam(tmp_path / "bam.csv", T0 + STEP * np.arange(n_hist), truth, world.rng)
    sub = MqttCollector(mosquitto.port)
    Gateway(toml, mosquitto.port).feed(history, sub, lambda s: len(s.by_id) >= n_hist)
    assert len(sub.by_id) == n_hist
    before = {i: pm25_of(m)["value"] for i, m in sub.by_id.items()}

    transcript = []
    for line in block[:6]:   # export, join, fit, report, approve, push
        run(line, tmp_path, transcript)
    rec = (tmp_path / "calibration" / "node101-pm25-v1.json")
    doc = json.loads(rec.read_text())
    assert doc["status"] == "approved" and doc["inputs"] == ["pm25_cf1", "rh"]
    coef = {c["name"]: c["value"] for c in doc["coefficients"]}
    assert abs(coef["a"] - A) < 0.02 and abs(coef["b"] - B) < 0.03 and abs(coef["c"] - C) < 2.0
    cv = doc["cross_validation"]
    assert cv["points"]["rmse"] < doc["uncorrected"]["points"]["rmse"]
    html = (tmp_path / "pm25.html").read_text()
    assert "cross-validated" in html and "uncorrected pm25_cf1" in html

    # New frames: the gateway (restarted, it loads the pushed record) applies the curve.
    new, _ = world.frames(T0 + n_hist * STEP, 30)
    Gateway(toml, mosquitto.port).feed(new, sub, lambda s: len(s.by_id) >= n_hist + 30)
    fresh = [m for i, m in sub.by_id.items() if i not in before]
    assert len(fresh) == 30
    for m in fresh:
        by = {r["channel"]: r for r in m["readings"]}
        want = coef["a"] * by["pm25_cf1"]["raw"] + coef["b"] * by["rh"]["raw"] + coef["c"]
        assert abs(by["pm25"]["value"] - want) < 1e-6 and by["pm25"]["value"] != by["pm25"]["raw"]

    cfg = load(toml)
    con = connect(cfg.store_path, readonly=True)
    first_pm25, n_pm25_hist, total = con.execute(
        "SELECT MIN(id), COUNT(*), (SELECT COUNT(*) FROM readings) FROM readings WHERE node_id=? AND channel=5 AND time < ?",
        (NODE, T0 + n_hist * STEP)).fetchone()
    con.close()
    assert n_pm25_hist == n_hist

    out = run(block[6], tmp_path, transcript)   # recalibrate
    assert f"recalibrated {n_pm25_hist} of {total} readings" in out, out
    assert f"forwarders re-send from reading {first_pm25} " in out, out
    con = connect(cfg.store_path, readonly=True)
    assert con.execute("SELECT cursor FROM outbox").fetchall() == [(first_pm25 - 1,)]
    con.close()
    for line in block[7:]:
        run(line, tmp_path, transcript)

    # The forwarder re-sends history with the corrected values under the same ids.
    g = Gateway(toml, mosquitto.port)
    g.feed([], sub, lambda s: all(s.deliveries[i] >= 2 for i in before))
    assert all(sub.deliveries[i] == 2 for i in before)
    assert all(pm25_of(sub.by_id[i])["value"] != before[i] for i in before)
    con = connect(cfg.store_path, readonly=True)
    cursor_after = con.execute("SELECT cursor FROM outbox").fetchone()[0]
    con.close()

    out = run(block[6], tmp_path, transcript)   # again: nothing changes, nothing is rewound
    assert f"recalibrated 0 of {total} readings" in out and "forwarders not rewound" in out, out
    con = connect(cfg.store_path, readonly=True)
    assert con.execute("SELECT cursor FROM outbox").fetchone()[0] == cursor_after
    con.close()
    sub.close()
    (Path(os.environ.get("SEN_TRANSCRIPT", tmp_path / "transcript.txt"))).write_text("\n".join(transcript))
