"""`sen emulate --gateway` gives the same result at any --speed: an air node flashed as a
technician leaves it, the real gateway on the scenario's medium, one virtual hour at `max`
and at 1800x real time (where the gateway's work and the pacing both run on the host's
clock). Same store content, same emulator report."""
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sen.emulator.city_run import provision
from sen.gateway.key_store import KeyStore
from sen.host_tools.bundle import build

SEN = str(Path(sys.executable).with_name("sen"))
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "node_tools" / "bench_scenario.toml"
KEY = bytes(range(16))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "air"
    build("ttgo-lora32-v21", "air", out)
    return out


def emulate(root: Path, bundle: Path, speed: str) -> dict:
    flash, gw = root / "flash", root / "gw"
    provision(flash, bundle, {"node_id": 101, "kind": "air", "key": KEY.hex(), "interval_s": 300, "confirmed": True})
    gw.mkdir(parents=True)
    shutil.copy(REPO / "docs" / "gateway.emulated.toml", gw / "gateway.toml")
    KeyStore(gw / "keys.json", create=True).add(101, KEY)
    res = subprocess.run([SEN, "emulate", "--board", "ttgo-lora32-v21", "--scenario", str(SCENARIO),
                          "--flash", str(flash), "--gateway", str(gw / "gateway.toml"), "--speed", speed,
                          "--stop-after", "3600", "--report", str(root / "report.json")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    db = sqlite3.connect(f"file:{gw / 'data' / 'gateway.db'}?mode=ro", uri=True)
    fp = {}
    try:
        for table in ("frames", "readings", "rx"):
            rows = db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            fp[table] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    finally:
        db.close()
    fp["report"] = hashlib.sha256(json.dumps(json.loads((root / "report.json").read_text()),
                                             sort_keys=True).encode()).hexdigest()
    return fp


def test_same_store_and_report_at_max_and_at_1800x(bundle, tmp_path):
    fast = emulate(tmp_path / "max", bundle, "max")
    paced = emulate(tmp_path / "paced", bundle, "1800")
    assert fast["frames"][0] >= 10, fast  # an hour at a 5-minute interval, confirmed
    assert fast == paced
