"""The charge split (bench/charge_split.py) regroups the power meter's time x current products:
its categories add up to the measured charge, and 'boot' is exactly the board's boot_ms estimate."""
import pytest

from sen.bench import charge_split
from sen.emulator.board_def import load_board
from sen.emulator.power_meter import PowerMeter, current_ma

TABLE = load_board("esp32-rfm95")["current_ma"]


def _cycle():
    """A synthetic cycle through the meter: 300 ms boot at 160 MHz, 200 ms firmware at 240 MHz
    with the sensor rail on, 250 ms TX, 500 ms RX, a light sleep, then deep sleep."""
    m = PowerMeter(TABLE, 0)
    m.set("mcu", "active_160mhz", 0)
    m.set("radio", "radio_sleep", 0)
    m.set("mcu", "active_240mhz", 300_000)
    m.set("sensors", "sensors", 300_000)
    m.set("sensors", None, 400_000)
    m.set("radio", "radio_tx", 500_000)
    m.set("mcu", "light_sleep", 500_000)
    m.set("radio", "radio_rx", 750_000)
    m.set("radio", "radio_standby", 1_250_000)
    m.set("mcu", "active_240mhz", 1_250_000)
    m.set("radio", "radio_sleep", 1_300_000)
    m.set("mcu", "deep_sleep", 1_300_000)
    rec = m.close_cycle(900_000_000)
    rec["boot_ms"] = 300.0
    return rec


def test_split_adds_up_to_the_measured_charge():
    rec = _cycle()
    cat, other = charge_split.split_cycle(rec, TABLE)
    assert sum(cat.values()) == pytest.approx(rec["charge_mah"], rel=1e-12)
    assert cat["boot"] == pytest.approx(300 * current_ma(TABLE, "active_160mhz") / 3.6e6)
    assert cat["cpu"] == pytest.approx(250 * TABLE["active_240mhz"] / 3.6e6)
    assert cat["tx"] == pytest.approx(250 * TABLE["radio_tx"] / 3.6e6)
    assert cat["rx"] == pytest.approx(500 * TABLE["radio_rx"] / 3.6e6)
    assert set(other) == {"light_sleep", "sensors", "radio_standby"}
    assert cat["other"] == pytest.approx(sum(other.values()))
    ua = charge_split.average_ua([rec], TABLE)
    assert sum(ua[c] for c in charge_split.CATEGORIES) == pytest.approx(ua["total"])
    assert ua["total"] == pytest.approx(rec["charge_mah"] / 0.25 * 1000)


def test_a_split_that_does_not_add_up_is_refused():
    rec = _cycle()
    rec["charge_mah"] *= 1.01
    with pytest.raises(AssertionError):
        charge_split.average_ua([rec], TABLE)


def test_split_of_a_real_node_run_adds_up_and_boot_is_the_boards_estimate():
    """The water node's firmware on the emulated esp32-rfm95, two intervals: every cycle's
    split adds up to its measured charge within rounding; after each reset the MCU spends
    boot_ms at the reset-default 160 MHz, which is 'boot', plus boot.py's first steps before
    it sets 240 MHz, which are 'cpu'."""
    from sen.bench import node_bench as nb
    bd = load_board("esp32-rfm95")
    recs, log = nb.run_one("esp32-rfm95", "water", cycles=2)
    assert len(recs) >= 3, log[-2000:]
    for r in recs:
        cat, _ = charge_split.split_cycle(r, bd["current_ma"])
        assert sum(cat.values()) == pytest.approx(r["charge_mah"], rel=1e-9, abs=1e-12)
        # boot_ms, then boot.py's first steps until machine.freq(240 MHz) (0.25 ms a wake) count as CPU
        assert bd["boot_ms"] <= r["state_ms"]["active_160mhz"] <= bd["boot_ms"] + (40 if r["reset_cause"] == 1 else 1)
        assert cat["boot"] == pytest.approx(bd["boot_ms"] * current_ma(bd["current_ma"], "active_160mhz") / 3.6e6)
    s = nb.summarize(bd, "water", recs)
    sp = s["charge_split_ua"]
    assert sum(sp[c] for c in charge_split.CATEGORIES) == pytest.approx(s["avg_current_ua"], abs=0.05)
    assert sp["tx"] > 0 and sp["rx"] == 0   # unconfirmed: no ACK window
