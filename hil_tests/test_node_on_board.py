"""A node on a board, end to end: provisioning, boot, sensors, frames, escape, faults.

Runs on the emulated board by default and on a real board with --port (see conftest.py).
The tests build on each other in file order, as a technician's session does.
"""
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

SEN = str(Path(sys.executable).with_name("sen"))
NODE_ID = 101


def sen(*args, cwd, timeout=300):
    return subprocess.run([SEN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def store_rows(bench, sql, args=()):
    con = sqlite3.connect(f"file:{bench.store}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_for(predicate, timeout_s, what):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


# hil_scenario.toml's start: the world clock the emulated board runs on
WORLD_START = datetime(2026, 11, 23, 6, 0, tzinfo=timezone(timedelta(hours=7))).timestamp()


def wait_for_world(bench, predicate, world_h, what, wall_cap_s=900):
    """Wait in world time, not wall time: a loaded host runs the emulated world slower than
    --speed asks, and what the world does must not depend on that. Fails once the world (the
    latest frame the gateway stored) is past `world_h` hours without `predicate`, or when the
    host is so slow that `wall_cap_s` of wall time passes first."""
    end = time.monotonic() + wall_cap_s
    while True:
        value = predicate()
        if value:
            return value
        latest = store_rows(bench, "SELECT max(rx_time) FROM frames WHERE node_id=?", (NODE_ID,))[0][0]
        world = None if latest is None else (latest - WORLD_START) / 3600
        if world is not None and world > world_h:
            pytest.fail(f"the world reached {world:.1f} h (past {world_h} h) without {what}")
        if time.monotonic() > end:
            pytest.fail(f"the host ran the world only to {world} h in {wall_cap_s} s, waiting for {what}")
        time.sleep(0.5)


def test_provisioning_with_sen_node_flash(dut, bench):
    extra = ["--gateway", str(bench.gateway_config)] if bench.gateway_config else ["--records", str(bench.workdir)]
    with dut.serial.disable_redirect_thread():
        res = sen("node", "flash", "--port", dut.serial.port, "--node-id", str(NODE_ID), "--board", bench.board,
                  "--kind", "air", "--boot-log", "1", *extra, cwd=bench.workdir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "RESULT PASS" in res.stdout


def test_boot_banner_and_cycle_log(dut):
    dut.serial.proc.write(b"\x03\x03")  # whatever the node does now, stop it …
    time.sleep(0.5)
    dut.serial.proc.write(b"\x04")      # … and soft-reset from the REPL, as a power-up runs it
    dut.expect(re.compile(rb"MicroPython v1\.27\.\d+ on [\d-]+; .*ESP32"), timeout=30)
    dut.expect_exact(b"[sen] boot window", timeout=30)
    m = dut.expect(re.compile(rb"\[sen\] cycle (\d+) air T=([-\d.]+) RH=([\d.]+) P=([\d.]+).* frame (\d+)B cnt=(\d+)"),
                   timeout=60)
    t, rh, p = float(m.group(2)), float(m.group(3)), float(m.group(4))
    assert -40 < t < 85 and 0 <= rh <= 100 and 300 < p < 1100
    # an air set (plus flags while a sensor warms up) is <= 38 B; a Ctrl-C that landed after a
    # sample was taken leaves it queued, and this frame carries it too (a batch): at most one
    # sample per cycle since power-on
    assert int(m.group(5)) <= (30 + 8) * int(m.group(1))


def test_every_fitted_sensor_answers(dut, bench):
    with dut.serial.disable_redirect_thread():
        res = sen("node", "selftest", "--port", dut.serial.port, cwd=bench.workdir)
    assert res.returncode == 0, res.stdout + res.stderr
    for check in ("bme280", "pms5003", "battery", "radio"):
        assert re.search(rf"PASS {check}\b", res.stdout), (check, res.stdout)
    assert "SX127x version 0x12" in res.stdout


@pytest.mark.emulated_world
def test_frames_reach_the_gateway_with_a_valid_mic(bench):
    rows = wait_for(lambda: store_rows(bench, "SELECT counter, rssi FROM frames WHERE node_id=?", (NODE_ID,)),
                    60, "frames from the node in the gateway store")
    assert len(rows) >= 1 and all(r[1] < 0 for r in rows)
    bad = store_rows(bench, "SELECT reason, count FROM rejections WHERE reason IN ('bad_mic', 'counter_reused')")
    assert not any(count for _, count in bad), bad


def test_maintenance_escape(dut):
    dut.expect(re.compile(rb"sleep=\d+s"), timeout=60)  # the node is cycling, so mostly in deep sleep
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dut.serial.proc.write(b"\x03")
        try:
            dut.expect_exact(b"[sen] maintenance", timeout=2)
            break
        except Exception:
            continue
    else:
        pytest.fail("the node never entered maintenance")
    dut.serial.proc.write(b"\r\n")
    dut.expect_exact(b">>> ", timeout=10)
    dut.serial.proc.write(b"\x04")  # resume the cycle for the tests after this one
    dut.expect(re.compile(rb"\[sen\] cycle \d+"), timeout=60)


def test_downlink_config_change_takes_effect(dut, bench):
    if bench.gateway_config is None:
        pytest.skip("needs a gateway: pass --gateway-config with real boards")
    with dut.serial.disable_redirect_thread():
        res = sen("node", "config", "--port", dut.serial.port, "--set", "confirmed=true", cwd=bench.workdir)
    assert res.returncode == 0, res.stdout + res.stderr
    res = sen("gateway", "node-config", str(NODE_ID), "--interval-s", "600", "-c", str(bench.gateway_config),
              cwd=bench.workdir)
    assert res.returncode == 0, res.stdout + res.stderr
    # The change rides on the ACK of a confirmed uplink; the node logs its new interval.
    dut.expect(re.compile(rb"ack=yes"), timeout=90)
    dut.expect(re.compile(rb"sleep=(5\d\d|600)s"), timeout=90)


@pytest.mark.emulated_world
def test_injected_fault_sets_missing_flag_then_recovers(bench):
    # hil_scenario.toml detaches the BME280 from 6 h to 10 h of world time (36–60 s after the board starts).
    def flagged_then_ok():
        rows = store_rows(bench, "SELECT r.time, r.qflags FROM readings r WHERE r.node_id=? AND r.channel=1 "
                                 "ORDER BY r.counter", (NODE_ID,))
        missing = [t for t, q in rows if q is not None and q & 1]
        if not missing:
            return None
        after = [q for t, q in rows if t > max(missing)]
        return (missing, after) if after and after[-1] == 0 else None

    missing, after = wait_for_world(bench, flagged_then_ok, 12, "air_temp flagged MISSING, then OK again")
    assert len(missing) >= 1 and after[-1] == 0


@pytest.mark.emulated_world
def test_counters_never_repeat_across_power_cuts(bench):
    # hil_scenario.toml cuts power at 14.0 h and 16.3 h of world time (start 06:00+07:00).
    start = WORLD_START
    cuts_h = (14.0, 16.3)

    def boots_after_cuts():
        boots = [t for (t,) in store_rows(bench, "SELECT rx_time FROM frames WHERE node_id=? AND flags & 4", (NODE_ID,))]
        hits = [any(start + h * 3600 <= t <= start + (h + 0.5) * 3600 for t in boots) for h in cuts_h]
        return all(hits) and boots

    wait_for_world(bench, boots_after_cuts, 18, "a BOOT frame after each power cut")
    counters = [c for (c,) in store_rows(bench, "SELECT counter FROM frames WHERE node_id=? ORDER BY rowid", (NODE_ID,))]
    assert len(counters) == len(set(counters))
    assert counters == sorted(counters)
    rejected = dict(store_rows(bench, "SELECT reason, count FROM rejections"))
    assert rejected.get("counter_reused", 0) == 0 and rejected.get("replay", 0) == 0, rejected
