"""VN_AQI (Decision 1459/QĐ-TCMT) against the breakpoint table and hand-worked cases."""
import pytest

from sen.gateway import aqi

TABLE = {  # from domain-facts.md: concentration at each index level
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200), "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630), "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600), "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
}


@pytest.mark.parametrize("param", sorted(TABLE))
def test_breakpoints_map_to_their_levels(param):
    for conc, level in zip(TABLE[param], (0, 50, 100, 150, 200, 300, 400, 500)):
        assert aqi.sub_index(param, conc) == pytest.approx(level)


def test_hand_worked_sub_indices():
    # PM2.5 35 µg/m³: between 25 (50) and 50 (100): 50 + (100-50)/(50-25)*(35-25) = 70
    assert aqi.sub_index("pm25", 35) == pytest.approx(70)
    # PM10 52: between 50 (50) and 150 (100): 50 + 50/100*2 = 51
    assert aqi.sub_index("pm10", 52) == pytest.approx(51)
    # NO2 450: between 200 (100) and 700 (150): 100 + 50/500*250 = 125
    assert aqi.sub_index("no2", 450) == pytest.approx(125)
    # O3 8h 150: between 120 (100) and 170 (150): 130
    assert aqi.sub_index("o3_8h", 150) == pytest.approx(130)
    assert aqi.sub_index("pm25", 900) == 500  # capped above the table


def test_nowcast_hand_worked():
    # newest first: 40, 30, 20 (others missing). w* = 20/40 = 0.5 -> w = 0.5
    # (40 + 0.5*30 + 0.25*20) / (1 + 0.5 + 0.25) = 60 / 1.75 = 34.2857
    assert aqi.nowcast([40, 30, 20]) == pytest.approx(60 / 1.75)
    # steady air: w* = 1, plain mean
    assert aqi.nowcast([30] * 12) == pytest.approx(30)
    # w* = 0.8 over 12 hours of 50, 40 alternating -> weights 0.8^(i-1)
    h = [50, 40] * 6
    w = 0.8
    assert aqi.nowcast(h) == pytest.approx(sum(w ** i * c for i, c in enumerate(h)) / sum(w ** i for i in range(12)))
    # a low hour pulls w to its floor of 0.5
    assert aqi.nowcast([100, 10, 100]) == pytest.approx((100 + 0.5 * 10 + 0.25 * 100) / 1.75)
    # needs 2 of the latest 3 hours
    assert aqi.nowcast([None, None, 30, 30, 30]) is None
    assert aqi.nowcast([30, None, 30]) == pytest.approx(30)
    assert aqi.nowcast([0, 0, 0]) == 0


def test_hourly_and_daily_aqi_categories_and_colours():
    h = aqi.hourly_aqi(pm25_hours=[40, 30, 20], pm10_hours=[60, 60, 60], no2=150)
    # PM2.5 NowCast 34.2857 -> 50 + 2*(34.2857-25) = 68.57 -> 69; PM10 60 -> 55; NO2 150 -> 75
    assert h["sub_indices"] == {"pm25": 69, "pm10": 55, "no2": 75}
    assert h["aqi"] == 75 and h["dominant"] == "no2"
    assert (h["vi"], h["en"], h["rgb"], h["hex"]) == ("Trung bình", "Moderate", (255, 255, 0), "#ffff00")
    d = aqi.daily_aqi(pm25_24h=62.5, pm10_24h=80)
    # PM2.5 62.5: 100 + 50/30*12.5 = 120.83 -> 121 (Kém)
    assert d["aqi"] == 121 and d["vi"] == "Kém" and d["rgb"] == (255, 126, 0)
    assert aqi.daily_aqi(pm25_24h=12)["vi"] == "Tốt"
    assert aqi.category(151)["vi"] == "Xấu" and aqi.category(200)["rgb"] == (255, 0, 0)
    assert aqi.category(201)["vi"] == "Rất xấu" and aqi.category(300)["rgb"] == (143, 63, 151)
    assert aqi.category(301)["vi"] == "Nguy hại" and aqi.category(500)["rgb"] == (126, 0, 35)
    assert aqi.round_half_up(50.5) == 51 and aqi.category(50)["vi"] == "Tốt"
    assert aqi.daily_aqi() is None


def test_hourly_means_from_readings():
    end = 1_795_003_600.0
    times = [end - 100, end - 200, end - 3700, end - 7300, end + 5]
    vals = [10, 20, 30, 40, 99]
    assert aqi.hourly_means(times, vals, end, 3) == [15, 30, 40]
