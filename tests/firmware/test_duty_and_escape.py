"""Duty cycle on air, maintenance escape, safe mode after repeated crashes, the self-test."""
import contextlib
import io
import json
from pathlib import Path

from sen.emulator import board_signals as sig
from sen.emulator.chips.pins import OutputPin
from tests.firmware.rig import Station

QUIET = Path(__file__).parent / "scenarios" / "quiet.toml"


def _run(st, hours):
    log = io.StringIO()
    with st.device, contextlib.redirect_stdout(log):
        ends = st.run_until(hours * 3600)
    return log.getvalue(), ends


def test_sf12_every_90_s_stays_within_one_percent_and_batches_what_it_holds(tmp_path):
    # 40 single frames an hour at SF12 would need 53 s on air; batches need about 20 s.
    st = Station(tmp_path, QUIET, "rain", node_cfg={"interval_s": 90, "radio": {"sf": 12}})
    st.gw.setup_radio(sf=12)
    text, _ = _run(st, 2)
    cycles = [ln for ln in text.splitlines() if ln.startswith("[sen] cycle")]
    assert len(cycles) >= 75
    assert not any("dropped=" in ln for ln in cycles)
    # Every sliding hour: at most 36 s on air (1 %).
    sent = [(t, a / 1e6) for t, _, a in st.sent]
    assert sum(a for _, a in sent) > 60  # it did use the budget
    for t0, _ in sent:
        on = sum(a for t, a in sent if t0 - 3600 < t <= t0)
        assert on <= 36.0 + 1e-6, (t0, on)
    assert any("ack=held" in ln for ln in cycles)
    frames = st.decoded()
    assert any(up.header.batch and len(up.samples) >= 8 for _, _, up in frames)
    # Nothing lost: every sample taken is delivered except those still queued at the end.
    times = {round(t - s.offset_s) for t, c, up in frames for s in up.samples}
    queued = int(cycles[-1].split(" q=")[1].split()[0])
    assert len(times) == len(cycles) - queued


def test_ctrl_c_in_the_boot_window_stops_the_cycle_and_keeps_the_repl(tmp_path):
    st = Station(tmp_path, QUIET, "water")
    with st.device:
        st.device.boot()
        log = io.StringIO()
        st.device.ctrl_c()
        with contextlib.redirect_stdout(log):
            end = st.device.run("main")
        assert end is None  # main.py returned: the REPL is up, no deep sleep
        assert "maintenance" in log.getvalue()
        assert st.sent == []
        # No watchdog was started: an hour at the REPL does not reset the board.
        st.device.exec("import time\ntime.sleep(3600)")
        assert st.board.reset_cause == sig.PWRON_RESET


def test_maintenance_strap_pin_stops_the_cycle_even_after_deep_sleep(tmp_path):
    st = Station(tmp_path, QUIET, "rain")
    text, ends = _run(st, 0.6)
    assert isinstance(ends[-1], sig.DeepSleep)
    jumper = OutputPin("maint-jumper", 0)  # a jumper from the maintenance pin to GND
    st.board.attach_pin(st.board.defn["maintenance"]["pin"], jumper)
    n_sent = len(st.sent)
    text, ends = _run(st, 2)
    assert ends[-1] is None and "strap pin" in text
    assert len(st.sent) == n_sent


def test_repeated_crashes_lead_to_safe_mode_that_still_reports(tmp_path):
    # A transfer curve with a text value crashes the water cycle every time.
    st = Station(tmp_path, QUIET, "water", node_cfg={"sensors": {"transfer": {"ph": {"gain": "x"}}}})
    text, ends = _run(st, 3)
    assert text.count("restarting in 5 s") >= 3
    assert "SAFE MODE" in text
    frames = st.decoded()
    assert frames, "safe mode sends status frames"
    last = frames[-1][2]
    names = {r.channel.name for s in last.samples for r in s.readings}
    assert names == {"battery"}
    counters = [c for _, c, _ in st.decoded(st.sent)]
    assert counters == sorted(set(counters))


def test_selftest_reports_each_check(tmp_path):
    st = Station(tmp_path, QUIET, "air")
    with st.device:
        st.device.boot()
        log = io.StringIO()
        import os
        cwd = os.getcwd()
        os.chdir(st.fs)
        try:
            with contextlib.redirect_stdout(log):
                st.device.exec("import selftest\nselftest.run()")
        finally:
            os.chdir(cwd)
    out = log.getvalue()
    for check in ("config", "bme280", "pms5003", "battery", "radio", "test frame"):
        assert "[selftest] PASS " + check in out, out
    assert "SX127x version 0x12" in out
    assert "[selftest] RESULT PASS" in out
    assert len(st.gw.heard) == 1  # the test frame reached the gateway
    assert st.decoded()[0][2].header.boot
