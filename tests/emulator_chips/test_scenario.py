import math

import pytest

from sen.emulator.scenario import load_scenario, parse_scenario
from sen.errors import SenError
from sen.paths import SCENARIOS

MINI = """
[scenario]
seed = 42
start = 2026-11-23T00:00:00+07:00
duration_h = 24

[[gateway]]
id = "gw"
location = { x_m = 0, y_m = 0 }

[[station]]
id = "air-1"
kind = "air"
board = "ttgo-lora32-v21"
location = { x_m = 1000, y_m = 0 }
[station.truth.air_temp]
mean = 25
amplitude = 4
peak_hour = 14
noise_sd = 0.5
[station.truth.rh]
mean = 70
[station.truth.pressure]
mean = 1010
[station.truth.pm25]
mean = 20
noise_sd = 2
[station.truth.pm10]
ratio_of = "pm25"
ratio = 1.5
[station.truth.pm1]
ratio_of = "pm25"
ratio = 0.7
[station.reference.pm25]
noise_sd = 1.0

[[event]]
kind = "pollution_episode"
stations = ["air-1"]
start_h = 10
duration_h = 2
peak = { pm25 = 50 }

[[fault]]
station = "air-1"
target = "bme280"
kind = "nack"
rate = 0.5
start_h = 1
end_h = 2

[[fault]]
station = "air-1"
kind = "power_loss"
start_h = 3
duration_min = 10
"""


def test_city_day_loads_with_the_three_stations_and_a_reference():
    w = load_scenario(SCENARIOS / "city-day.toml")
    assert {s.kind for s in w.stations.values()} == {"air", "water", "rain"}
    assert w.duration_s == 86400 and w.radio["loss_percent"] == 20
    ref = w.reference_series("air-1", "pm25")
    assert len(ref) == 24
    # the pollution episode (13-17 h) lifts the hourly reference well above the morning
    assert max(v for t, v in ref if 14 * 3600 < t <= 17 * 3600) > max(v for t, v in ref if t <= 5 * 3600) + 30
    rain = w.integral("rain-1", "rain_intensity", 0, 86400)
    assert 60 < rain < 140
    assert w.truth("water-1", "water_level", 14 * 3600) > w.truth("water-1", "water_level", 6 * 3600) + 1.0


def test_truth_is_deterministic_and_order_free():
    a, b = parse_scenario(MINI), parse_scenario(MINI)
    ts = [5000.0, 100.0, 40000.0, 100.0]
    va = [a.truth("air-1", "air_temp", t) for t in ts]
    vb = [b.truth("air-1", "air_temp", t) for t in reversed(ts)][::-1]
    assert va == vb and va[1] == va[3]
    other = parse_scenario(MINI.replace("seed = 42", "seed = 43"))
    assert other.truth("air-1", "air_temp", 5000.0) != va[0]


def test_diurnal_events_ratio_and_faults():
    w = parse_scenario(MINI)
    # noise aside, 14:00 is warmer than 02:00 by about 2*amplitude
    assert w.truth("air-1", "air_temp", 14 * 3600) - w.truth("air-1", "air_temp", 2 * 3600) > 5
    assert w.truth("air-1", "pm25", 11 * 3600) > 55  # mid-episode
    assert math.isclose(w.truth("air-1", "pm10", 7777), 1.5 * w.truth("air-1", "pm25", 7777))
    assert w.faults("air-1", "bme280", 1.5 * 3600).nack_rate == 0.5
    assert not w.faults("air-1", "bme280", 2.5 * 3600)
    assert not w.powered("air-1", 3 * 3600 + 300) and w.powered("air-1", 3 * 3600 + 700)


@pytest.mark.parametrize("mutate, words", [
    (lambda s: s.replace("seed = 42", "seed = \"x\""), "seed"),
    (lambda s: s.replace("mean = 70", "maen = 70"), "maen"),
    (lambda s: s.replace('kind = "air"', 'kind = "soil"'), "kind"),
    (lambda s: s.replace("[station.truth.pressure]\nmean = 1010\n", ""), "pressure"),
    (lambda s: s.replace('stations = ["air-1"]', 'stations = ["air-9"]'), "air-9"),
    (lambda s: s.replace('target = "bme280"', 'target = "sht31"'), "sht31"),
    (lambda s: s.replace("start_h = 1\nend_h = 2", "start_h = 2\nend_h = 1"), "end"),
    (lambda s: s.replace("duration_h = 24", "duration_h = 24\nduration_h = 2"), "TOML"),
    (lambda s: s.replace('location = { x_m = 1000, y_m = 0 }', 'location = { x = 1 }'), "location"),
])
def test_broken_scenarios_give_one_line_errors_naming_the_fix(mutate, words):
    with pytest.raises(SenError) as e:
        parse_scenario(mutate(MINI), source="mini.toml")
    msg = str(e.value)
    assert "\n" not in msg and " — " in msg and words in msg


def test_missing_file_is_a_sen_error(tmp_path):
    with pytest.raises(SenError, match="not found"):
        load_scenario(tmp_path / "nope.toml")
