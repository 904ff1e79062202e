"""Board definitions: every shipped TOML validates, converts to the device JSON, and bad
definitions are refused with a one-line error naming the fix."""
import json
import tomllib

import pytest

from sen.emulator.board_def import device_json, list_boards, load_board, validate
from sen.errors import SenError
from sen.paths import BOARDS

IDS = ["ttgo-lora32-v21", "heltec-wifi-lora32-v2", "esp32-rfm95"]


def test_the_three_boards_are_listed():
    assert set(IDS) <= set(list_boards())


@pytest.mark.parametrize("board", IDS)
def test_board_validates_and_round_trips_to_device_json(board):
    bd = load_board(board)
    assert bd["id"] == board
    back = json.loads(device_json(bd))
    assert back["lora"] == bd["lora"] and back["current_ma"] == bd["current_ma"]
    # ext0 wake needs an RTC GPIO; probes must be ADC1
    assert bd["rain_gauge"]["pin"] in {0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39}
    assert all(32 <= p <= 39 for p in bd["adc"]["probes"].values())


def test_published_radio_pinouts():
    t = load_board("ttgo-lora32-v21")["lora"]
    assert (t["sck"], t["miso"], t["mosi"], t["cs"], t["reset"], t["dio0"]) == (5, 19, 27, 18, 23, 26)
    h = load_board("heltec-wifi-lora32-v2")["lora"]
    assert (h["sck"], h["miso"], h["mosi"], h["cs"], h["reset"], h["dio0"]) == (5, 19, 27, 18, 14, 26)


def test_bare_module_sleeps_at_datasheet_current_and_dev_boards_worse():
    bare = load_board("esp32-rfm95")["current_ma"]["deep_sleep"]
    assert bare == pytest.approx(0.010)
    assert load_board("heltec-wifi-lora32-v2")["current_ma"]["deep_sleep"] == pytest.approx(0.9)
    assert 11 <= load_board("ttgo-lora32-v21")["current_ma"]["deep_sleep"] <= 14


def _broken(**changes):
    d = tomllib.loads((BOARDS / "esp32-rfm95.toml").read_text())
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return d


@pytest.mark.parametrize("changes, words", [
    ({"rain_gauge__pin": 5}, "not an RTC GPIO"),
    ({"lora__cs": 34}, "input-only"),
    ({"adc__probes__ph": 4}, "not an ADC1 pin"),
    ({"i2c__sda": 26}, "used twice"),
    ({"lora__sck": 7}, "SPI flash"),
    ({"current_ma__deep_sleep": None}, "missing 'deep_sleep'"),
    ({"cpu_mhz": 100}, "not an ESP32 CPU frequency"),
    ({"i2c__bme280_address": 0x40}, "0x76 or 0x77"),
])
def test_broken_definitions_are_refused_with_the_fix(changes, words):
    with pytest.raises(SenError) as e:
        validate(_broken(**changes), "test.toml")
    assert words in str(e.value) and "—" in str(e.value) and "\n" not in str(e.value)


def test_unknown_board_names_the_known_ones():
    with pytest.raises(SenError) as e:
        load_board("arduino-uno")
    assert "esp32-rfm95" in str(e.value)
