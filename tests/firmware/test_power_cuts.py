"""THE power-cut test: the real firmware (MicroPython in the emulator) on a confirmed node
(esp32-rfm95, ack_every 4, 20 % loss each way) with the real gateway service in the loop, and
the node's power cut at a few hundred seeded random instants: half anywhere (mostly deep
sleep, some boot windows and cycles), half just after one of its uplinks (receive window, ACK
handling, the second flash rewrite). Cuts last 1-10 min (less than the 15-minute interval).

Afterwards: every sample the node logged is in the gateway's store, dated within one interval
of when it was taken; no counter reused (the store's counter_reused count is 0 and counters
rise); and the node kept the 1 % duty cycle in every sliding hour of the medium's records."""
import random
import re
import sqlite3
from pathlib import Path

import pytest

from sen.emulator.board import load_world
from sen.emulator.city_run import CityRun
from sen.emulator.clock import VirtualClock
from sen.emulator.radio_medium import world_medium
from sen.gateway.key_store import KeyStore
from sen.host_tools import emulated_gateway
from sen.host_tools.bundle import build as build_bundle

REPO = Path(__file__).resolve().parents[2]
SCEN = Path(__file__).parent / "scenarios" / "power_cuts.toml"
KEY = bytes(range(16, 32))
NODE_ID = 121
INTERVAL_S = 900
HOURS = 45.0  # per run (180 cycles, ~110 cuts); two runs (seeds): >= 200 cuts in all
CUTS_PER_RUN = 100


class StampedLog:
    """The board's console, line by line with the virtual time each line ended."""

    def __init__(self, clock):
        self.clock, self.buf, self.lines = clock, b"", []

    def write(self, data):
        self.buf += bytes(data)
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.lines.append((self.clock.now_s(), line.decode("utf-8", "replace").rstrip("\r")))

    def flush(self):
        pass

    def close(self):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22])
def test_power_cuts_lose_no_sample_reuse_no_counter_and_keep_the_duty_cycle(tmp_path, seed):
    clock = VirtualClock()
    world = load_world(str(SCEN), clock)
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    KeyStore(gw_dir / "keys.json", create=True).add(NODE_ID, KEY)
    (gw_dir / "gateway.toml").write_text((REPO / "docs" / "gateway.emulated.toml").read_text())
    nodes = [{"name": "water-1", "station": "water", "cfg": {
        "node_id": NODE_ID, "kind": "water", "key": KEY.hex(), "interval_s": INTERVAL_S, "confirmed": True,
        "ack_every": 4}}]
    run = CityRun(world, clock, tmp_path / "boards", gw_dir / "gateway.toml", nodes, gateway=emulated_gateway,
                  build_bundle=build_bundle)
    board, session = run.boards[0], run.sessions[0]
    log = StampedLog(clock)
    session.console_log = log
    medium = world_medium(world, clock)
    rng = random.Random(seed)
    cuts = []

    def cut(off_ms):
        cuts.append((clock.now_s(), off_ms))
        board.cut_power(off_ms)

    def at(t_s, off_ms):
        clock.call_at(int(t_s * 1e6), lambda: cut(off_ms))

    # Each cut is armed once the node's clock is synced again (a TIME since its last power-on):
    # then at a random instant within the next 0.8 interval (deep sleep, boot, sampling, the
    # first rewrite), or, one time in two, just after its next uplink (receive window, ACK,
    # the second rewrite). Cuts a session without TIME would stack up can only date its
    # samples late (frame-format.md section 9), which this test does not measure.
    armed = [False]

    def arm():
        armed[0] = True
        if rng.random() < 0.5:
            at(clock.now_s() + rng.uniform(0.05, 0.8 * INTERVAL_S), rng.randint(60_000, 600_000))
        else:
            after_tx[0] = True

    after_tx = [False]

    def observe(rec):
        if rec["sender"] == "water-1" and after_tx[0]:
            after_tx[0] = False
            at(clock.now_s() + rng.uniform(0.0, 0.6), rng.randint(60_000, 600_000))
    medium.observers.append(observe)
    real_write = log.write

    def write(data):
        n = len(log.lines)
        real_write(data)
        for t, line in log.lines[n:]:
            if line.startswith("[sen] cycle") and (" clock+" in line or " clock-" in line) and not armed[0]:
                arm()
            if "POWERON_RESET" in line:
                armed[0] = False
    log.write = write
    try:
        run.run(HOURS)
    finally:
        run.close()

    # every sample the node logged (one per cycle line) is stored, once, dated within an interval
    taken = []
    for t, line in log.lines:
        m = re.match(r"\[sen\] cycle \d+ water .* level=(-?[0-9.]+) ", line)
        if m:
            taken.append((t, float(m.group(1))))
    assert len(taken) > HOURS * 3600 / INTERVAL_S * 0.6, len(taken)
    db = sqlite3.connect(f"file:{gw_dir / 'data' / 'gateway.db'}?mode=ro", uri=True)
    try:
        stored = db.execute("SELECT time, value FROM readings WHERE node_id = ? AND channel = 12 ORDER BY time",
                            (NODE_ID,)).fetchall()
        counters = [c for c, in db.execute("SELECT counter FROM frames WHERE node_id = ? ORDER BY rowid", (NODE_ID,))]
        reused = db.execute("SELECT count FROM rejections WHERE reason = 'counter_reused'").fetchone()
        resent = db.execute("SELECT resent_samples FROM nodes WHERE node_id = ?", (NODE_ID,)).fetchone()[0]
    finally:
        db.close()
    t0 = clock.start_epoch_s
    import json
    (tmp_path / "diag.json").write_text(json.dumps({"log": log.lines, "stored": stored, "cuts": cuts, "t0": t0,
                                                    "counters": counters}))
    missing = []
    for t, level in taken:
        # logged at the cycle's end; taken up to a few seconds before (sensors, TX, window)
        if not any(abs(v - level) < 0.0006 and -INTERVAL_S <= (t0 + t) - ts <= INTERVAL_S for ts, v in stored):
            missing.append((round(t, 1), level))
    times = [ts for ts, _ in stored]
    # A copy the gateway failed to recognise as re-sent: the same reading stored twice within
    # 30 s. Distinct samples are further apart: a cut lasts >= 60 s. (Samples taken in a cycle
    # cut before its log line are stored but not in `taken`, so counts are not compared.)
    twice = sum(1 for i, (a, va) in enumerate(stored) for b, vb in stored[i + 1:i + 4]
                if b - a < 30 and abs(va - vb) < 0.0005)
    # counters never reused
    assert reused is None or reused[0] == 0
    assert counters == sorted(set(counters))
    # 1 % in every sliding hour, on the medium's own TX records
    tx = sorted((f["t_start_us"], f["airtime_us"]) for f in medium.frames if f["sender"] == "water-1")
    worst = 0
    for i, (a, _) in enumerate(tx):
        used = sum(d for s, d in tx[i:] if s < a + 3600e6)
        worst = max(worst, used)
    assert worst <= 36e6, worst
    print(f"power cuts {len(cuts)}, logged {len(taken)}, missing or misdated {len(missing)}, stored {len(stored)}, "
          f"re-sent {resent}, worst hour {worst / 1e6:.1f} s")
    assert not missing, (len(missing), missing[:10])
    assert not twice, twice
    assert len(cuts) >= CUTS_PER_RUN, len(cuts)
    print(f"power cuts {len(cuts)}, samples logged {len(taken)}, stored {len(stored)}, re-sent {resent}, "
          f"frames {len(counters)}, worst hour on air {worst / 1e6:.1f} s")
