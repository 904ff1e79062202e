"""A node on a 15-minute cycle runs 24 simulated hours in-process; the run report adds up."""
import json
import time

import pytest

from sen.emulator import board_signals as sig
from sen.emulator.board_def import write_device_json
from sen.emulator.inprocess import Device
from sen.emulator.report import write_report
from sen.paths import FIRMWARE

from .node_fw import MAIN_PY


def _airtime_us(n):
    import importlib.util
    spec = importlib.util.spec_from_file_location("fw_airtime", FIRMWARE / "airtime.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m.time_on_air_us(n, sf=9, bw_hz=125000, cr=1, preamble=8, crc=True)


def test_a_day_of_15_minute_cycles(tmp_path, capsys):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "main.py").write_text(MAIN_PY)
    (tmp_path / "flash").mkdir()
    write_device_json("esp32-rfm95", tmp_path / "flash")
    wall = time.perf_counter()
    with Device("esp32-rfm95", fs_root=tmp_path / "flash", firmware=fw) as dev:
        ends = dev.run_cycles(96)
        dev.boot()
        import esp32
        import machine
        boots = int.from_bytes(machine.RTC().memory(), "little")
        ctr = esp32.NVS("sen").get_i32("ctr")
    wall = time.perf_counter() - wall
    with capsys.disabled():
        print("\n24 simulated hours (96 cycles) in-process: %.2f s wall" % wall)
    assert all(isinstance(e, sig.DeepSleep) for e in ends)
    assert boots == 96 and ctr == 96
    boot_s = dev.board.defn["boot_ms"] / 1000
    # the firmware times its sleep from ticks, which start after the boot: each cycle is
    # 15 min + the boot time (a real drift of this firmware, kept on purpose)
    assert dev.clock.now_s() == pytest.approx(96 * (900 + boot_s), abs=1)
    cycles = dev.board.cycles[:96]     # the 97th boot (to read the counters) closed on exit
    assert len(dev.board.cycles) == 97
    assert cycles[0]["reset_cause"] == sig.PWRON_RESET
    assert all(c["reset_cause"] == sig.DEEPSLEEP_RESET for c in cycles[1:])
    toa_ms = _airtime_us(20) / 1000
    for c in cycles:
        assert c["frames"] == 1
        assert c["airtime_ms"] == pytest.approx(toa_ms, abs=0.01)
        assert c["state_ms"]["radio_tx"] == pytest.approx(toa_ms, abs=0.01)
        assert c["end_us"] - c["start_us"] == pytest.approx(900e6 + boot_s * 1e6, abs=2000)
    # awake time is TX wait + polling granularity; the rest of the 15 minutes is deep sleep
    awake = cycles[5]["awake_ms"]
    assert toa_ms + boot_s * 1000 <= awake <= toa_ms + boot_s * 1000 + 15
    table = dev.board.defn["current_ma"]
    rep = dev.board.report()
    avg_ua = rep["average_current_ma"] * 1000
    # hand figure: deep sleep + active (160 MHz, the port's default) + radio over 900 s
    c = cycles[5]
    expect_ua = 1000 * (c["state_ms"]["deep_sleep"] * table["deep_sleep"]
                        + c["state_ms"]["active_160mhz"] * (table["active_80mhz"] + table["active_240mhz"]) / 2
                        + toa_ms * table["radio_tx"]
                        + c["state_ms"].get("radio_standby", 0) * table["radio_standby"]
                        + c["state_ms"].get("radio_sleep", 0) * table["radio_sleep"]) / (900e3 + boot_s * 1e3)
    assert avg_ua == pytest.approx(expect_ua, rel=0.05)
    assert 20 < avg_ua < 80      # a bare-module node at 15 min is in the tens of µA
    text = write_report(tmp_path / "report.json", [dev.board], dev.clock)
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["boards"][0]["cycles"]) == 97
    assert "frames 96" in text and "average current" in text


@pytest.mark.parametrize("board", ["ttgo-lora32-v21", "heltec-wifi-lora32-v2"])
def test_the_same_node_runs_on_the_dev_boards_where_sleep_current_dominates(tmp_path, board, capsys):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "main.py").write_text(MAIN_PY)
    (tmp_path / "flash").mkdir()
    write_device_json(board, tmp_path / "flash")
    with Device(board, fs_root=tmp_path / "flash", firmware=fw) as dev:
        ends = dev.run_cycles(8)
    assert all(isinstance(e, sig.DeepSleep) for e in ends)
    cycles = dev.board.cycles[1:8]
    assert all(c["frames"] == 1 for c in cycles)
    table = dev.board.defn["current_ma"]
    sleep_mas = sum(c["state_ms"]["deep_sleep"] for c in cycles) / 1000 * table["deep_sleep"]
    total_mas = sum(c["charge_mah"] for c in cycles) * 3600
    assert sleep_mas / total_mas > 0.5          # the board's sleep current is most of the charge
    avg_ma = total_mas / sum((c["end_us"] - c["start_us"]) / 1e6 for c in cycles)
    assert avg_ma > table["deep_sleep"]
    with capsys.disabled():
        print("\n%s: average %.3f mA at a 15-minute cycle" % (board, avg_ma))
