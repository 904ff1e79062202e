"""Batching in the emulator (docs/node-config.md `batch`): the real firmware on an emulated
esp32-rfm95 water node at SF7 behind the real gateway. After its first answered link check
the node sends two samples per frame; the gateway stores every sample once, dated a
reporting interval apart; wakes that only hold a sample leave the radio alone."""
import re
import sqlite3
import statistics

from sen.bench import node_bench
from sen.emulator.report import firmware_active_ms

CYCLES = 28
INTERVAL = node_bench.INTERVAL_S


def test_water_node_batches_on_a_good_link_and_the_gateway_stores_every_sample(tmp_path):
    frames = []
    recs, log = node_bench.run_one("esp32-rfm95", "water", CYCLES, workdir=tmp_path, sf=7, gateway=True,
                                   batch=2, frames_out=frames)
    lines = [ln for ln in log.splitlines() if ln.startswith("[sen] cycle")]
    held = [ln for ln in lines if "ack=batch" in ln]
    assert len(lines) >= CYCLES and len(held) >= 6, lines[-6:]
    # a held wake is followed by a frame carrying both samples: never two holds in a row
    acks = [re.search(r"ack=(\S+)", ln).group(1) for ln in lines]
    assert all(not (a == b == "batch") for a, b in zip(acks, acks[1:]))
    con = sqlite3.connect(tmp_path / "gateway" / "data" / "gateway.db")
    times = sorted(t for (t,) in con.execute("SELECT DISTINCT time FROM readings WHERE channel = 12"))
    n_frames = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    con.close()
    last_held = 1 if acks[-1] == "batch" else 0
    assert len(times) == len(lines) - last_held  # every sample stored once, none lost
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(abs(g - INTERVAL) <= 60 for g in gaps), gaps
    assert n_frames == len(lines) - len(held)  # one frame per wake that did not hold
    # holding wakes build no radio and frame nothing: less CPU than the wakes that send
    wakes = [r for r in recs if r["reset_cause"] != 1 and r["wake_reason"] == 4]
    cpu = [firmware_active_ms(r) for r in wakes]
    sending = [c for c, r in zip(cpu, wakes) if r["airtime_ms"] > 0]
    holding = [c for c, r in zip(cpu, wakes) if r["airtime_ms"] == 0]
    assert holding and sending
    assert statistics.median(holding) + 30 < statistics.median(sending), (holding, sending)
