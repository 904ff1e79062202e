"""`sen demo --concentrator`: the city day with one emulated SX1302 concentrator, its packet
forwarder speaking Semtech UDP over loopback to the gateway's semtech_udp radio, instead of
the single-channel radio; the nodes hop over the AS923-2 channels. The demo's own checks
must pass, and the UDP path must not make the world depend on the host: a second run of the
same scenario and seed, with a core kept busy, gives the same bytes."""
import json
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import run_demo
from tests.determinism.test_same_world import fingerprint

pytestmark = pytest.mark.slow
HOURS = "2"  # the gateway restart (55 %) and the calibration (75 %) both fall inside
AS923_2 = {921_400_000 + 200_000 * i for i in range(8)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-concentrator") / "out"
    return out, run_demo(out, "--concentrator", "--hours", HOURS)


def test_city_day_through_a_concentrator_passes_the_checks(run):
    out, res = run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["checks"] and not [c for c in s["checks"] if c["pass"] is False], s["checks"]
    assert json.loads(res.stdout.strip().splitlines()[-1])["checks"] == s["checks"]
    assert s["gateway_radio"]["backend"] == "semtech_udp" and "SX1302" in s["gateway_radio"]["description"]
    assert s["gateway_restarts"] and s["gateway_restarts"][0]["raw_log_records_recovered"] >= 1
    eui = s["gateway_radio"]["eui"]
    db = sqlite3.connect(f"file:{out / 'gateway' / 'data' / 'gateway.db'}?mode=ro", uri=True)
    try:
        frames = db.execute("SELECT node_id, radio, gateway_id, freq_hz FROM frames").fetchall()
    finally:
        db.close()
    assert {n for n, *_ in frames} == {101, 201, 202, 301}
    assert {(r, g) for _, r, g, _ in frames} == {("udp", eui)}  # every frame came through the concentrator
    used = {f for *_, f in frames}
    assert used <= AS923_2 and len(used) > 1, used
    for name in ("air-1", "water-1", "rain-1"):
        d = next(d for d in s["delivery"] if d["node"] == name)
        # a confirmed node keeps each sample until an ACK names its frame (ack_every 4): what
        # it still held at the end (its last q=) arrives after the run, nothing else is missing
        assert d["samples_stored"] + d["samples_queued_at_end"] == d["sampling_cycles"], d
        assert d["samples_queued_at_end"] <= 8, d
    # the ACKs went out as PULL_RESP and the forwarder took them (TX_ACK without error); two
    # ACKs due at once on one transmitter may meet COLLISION_PACKET, as on a real gateway
    st = json.loads((out / "gateway" / "data" / "concentrators-udp.json").read_text())
    (gw,) = st["gateways"]
    assert gw["eui"] == eui and gw["online"] and gw["counts"]["tx_ok"] > 0, gw
    assert gw["counts"]["tx_ok"] >= 0.9 * gw["counts"]["tx_requested"], gw["counts"]


def test_same_seed_same_bytes_with_a_core_busy(run, tmp_path):
    out, res = run
    assert res.returncode == 0, res.stderr[-3000:]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        again = run_demo(tmp_path / "again", "--concentrator", "--hours", HOURS)
    finally:
        hog.kill()
        hog.wait()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    first, second = fingerprint(out), fingerprint(tmp_path / "again")
    assert first == second, {k: (first[k], second.get(k)) for k in first if first[k] != second.get(k)}
