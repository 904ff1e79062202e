import math

import numpy as np

from sen.emulator.chips.analog_probes import (ECProbe, LevelProbe, PHProbe, TurbidityProbe, WaterTempProbe,
                                              nernst_slope_mv)
from sen.emulator.chips.faults import FaultState
from sen.emulator.chips.rain_gauge import RainGauge, undercatch
from sen.emulator.clock import VirtualClock


def const(v):
    return lambda t: v


def test_ph_follows_nernst_with_temperature():
    clock = VirtualClock()
    p7 = PHProbe(clock, const(7.0), temp=const(25.0), noise_v=0.0)
    p4 = PHProbe(clock, const(4.0), temp=const(25.0), noise_v=0.0)
    p4_hot = PHProbe(clock, const(4.0), temp=const(35.0), noise_v=0.0)
    assert abs(nernst_slope_mv(25.0) - 59.16) < 0.01
    assert abs(p7.volts() - (1.5 + 3.0 * 0.004)) < 1e-9
    slope = (p4.volts() - p7.volts()) / 3 / 3.0 * 1000  # mV per pH at the electrode
    assert abs(slope - 0.97 * 59.16) < 0.05
    assert p4_hot.volts() > p4.volts()  # steeper slope when warmer


def test_ec_has_2_percent_per_degree_and_turbidity_falls():
    clock = VirtualClock()
    e25 = ECProbe(clock, const(1413.0), temp=const(25.0), noise_v=0.0).volts()
    e30 = ECProbe(clock, const(1413.0), temp=const(30.0), noise_v=0.0).volts()
    assert abs((e30 - 0.02) / (e25 - 0.02) - 1.10) < 1e-9
    vs = [TurbidityProbe(clock, const(n), noise_v=0.0).volts() for n in (0, 10, 100, 1000, 3000)]
    assert all(a > b for a, b in zip(vs, vs[1:]))
    assert abs(vs[0] / 0.66 - 4.2) < 0.01
    for n in (5.0, 250.0, 2500.0):
        v = TurbidityProbe.sensor_volts(n)
        assert abs(TurbidityProbe.ntu_of_sensor_volts(v) - n) < 1e-6


def test_level_and_ntc():
    clock = VirtualClock()
    assert abs(LevelProbe(clock, const(0.0), noise_v=0.0).volts() - 0.48) < 1e-9
    assert abs(LevelProbe(clock, const(5.0), noise_v=0.0).volts() - 2.40) < 1e-9
    assert abs(LevelProbe(clock, const(-3.0), noise_v=0.0).volts() - 0.456) < 1e-9  # 3.8 mA floor
    assert abs(WaterTempProbe(clock, const(25.0), noise_v=0.0).volts() - 1.65) < 1e-9
    assert WaterTempProbe(clock, const(10.0), noise_v=0.0).volts() > 1.65  # NTC: colder = more ohms


def test_probe_faults():
    clock = VirtualClock()
    state = {"f": FaultState(detached=True)}
    p = PHProbe(clock, const(7.0), temp=const(25.0), faults=lambda t: state["f"])
    assert p.volts() < 0.05
    state["f"] = FaultState()
    normal = p.volts()
    state["f"] = FaultState(stuck=True)
    assert p.volts() == p.volts() == normal
    state["f"] = FaultState(spike_rate=1.0, spike_magnitude=3.0)
    assert abs(p.volts() - normal) > 0.4


def test_rain_gauge_tips_bounce_and_undercatch():
    clock = VirtualClock()
    intensity = 36.0  # mm/h for one hour
    g = RainGauge(clock, lambda ts: np.where(np.asarray(ts) < 3600, intensity, 0.0), seed=2)
    edges = []
    g.watch(lambda level: edges.append((clock.now_us(), level)))
    clock.advance_to(2 * 3600 * 10**6)
    expect_mm = intensity * (1 - float(undercatch(intensity)))
    assert abs(len(g.tip_times) * 0.2 - expect_mm) <= 0.2 + 1e-9
    assert 0.015 < float(undercatch(intensity)) < 0.02
    assert abs(float(undercatch(20.0)) - 0.01) < 0.001 and abs(float(undercatch(175.0)) - 0.09) < 0.003
    # every tip: a falling edge, then bounces within ~5 ms, contact open by ~90 ms
    falls = [t for t, lv in edges if lv == 0]
    first = int(g.tip_times[0] * 1e6)
    burst = [t for t in falls if first <= t < first + 5_000]
    assert len(burst) >= 3
    assert g.level() is None  # open at the end
    tips_seen = 0
    last = -10**12
    for t, lv in edges:  # debounce at 20 ms recovers the tip count
        if lv == 0 and t - last > 20_000:
            tips_seen += 1
        if lv == 0:
            last = t
    assert tips_seen == len(g.tip_times)
    assert len(falls) > 2 * len(g.tip_times)  # without debouncing, bounces would over-count
    assert math.isclose(g.caught_mm(0, 7200), len(g.tip_times) * 0.2)


def test_rain_gauge_detached_loses_pulses():
    clock = VirtualClock()
    g = RainGauge(clock, lambda ts: np.full(np.shape(ts), 60.0), faults=lambda t: FaultState(detached=t < 1800))
    edges = []
    g.watch(lambda level: edges.append(clock.now_us()))
    clock.advance_to(3600 * 10**6)
    assert g.pulses < len(g.tip_times) and all(t >= 1800e6 for t in edges)
