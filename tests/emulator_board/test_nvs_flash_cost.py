"""The emulated NVS charges flash time per commit: program time per 32-byte entry and a
sector erase each time a 4 KiB page of 126 entries fills (the wear the firmware causes)."""
import pytest

from sen.emulator.nvs_store import ENTRIES_PER_PAGE, T_SECTOR_ERASE_US, NvsStore, entries_of, program_us
from sen.emulator.power_meter import PowerMeter


def test_blob_entries_and_program_time(tmp_path):
    nvs = NvsStore(tmp_path / "n.json")
    nvs.set("sen", "q", "blob", bytes(100))
    us = nvs.commit("sen")
    assert entries_of(["blob", "00" * 100]) == 1 + 4
    assert us == pytest.approx(5 * (program_us(32) + 2 * program_us(1)))
    assert 0.5e3 < us < 1e3  # well under a millisecond: no erase yet
    assert nvs.erases == 0
    assert nvs.commit("sen") == 0.0  # nothing pending, nothing written


def test_page_fill_costs_an_erase(tmp_path):
    nvs = NvsStore(tmp_path / "n.json")
    costs = []
    for i in range(60):  # 60 commits of 5 entries = 300 entries: two fresh pages
        nvs.set("sen", "q", "blob", bytes([i]) * 100)
        costs.append(nvs.commit("sen"))
    assert nvs.entries_written == 300
    assert nvs.erases == 300 // ENTRIES_PER_PAGE
    assert sum(1 for c in costs if c > T_SECTOR_ERASE_US) == nvs.erases
    assert NvsStore(tmp_path / "n.json").get("sen", "q", "blob") == bytes([59]) * 100


def test_power_meter_add_counts_time_and_charge():
    m = PowerMeter({"deep_sleep": 0.01})
    m.set("mcu", "deep_sleep", 0)
    m.add("flash_write", 45_000, 20.0)
    rec = m.close_cycle(1_000_000)
    assert rec["state_ms"]["flash_write"] == pytest.approx(45.0)
    assert rec["charge_mah"] * 3600 == pytest.approx(20.0 * 0.045 + 0.01 * 1.0)
