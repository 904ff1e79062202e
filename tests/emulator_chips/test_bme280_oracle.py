"""Acceptance: Adafruit's independent BME280 driver reads the world's truth off the model.

adafruit_bme280 imports busio/digitalio from Blinka; on a generic Linux PC that import does
no board detection (it happens only when a busio bus is built), and we never build one: the
driver gets VirtualI2C. Its `sleep` (time.sleep) is pointed at the virtual clock so polling
the status register costs virtual, not wall, time.
"""
import random

import pytest
from adafruit_bme280 import basic as adafruit_bme280

from sen.emulator.chips.bme280 import BME280, Compensation
from sen.emulator.clock import VirtualClock

from .i2c_bus import VirtualI2C


class Truth:
    def __init__(self):
        self.value = (25.0, 50.0, 1013.25)

    def __call__(self, t_s):
        return self.value


def _points(n, seed):
    rng = random.Random(seed)
    corners = [(t, h, p) for t in (-40.0, 85.0) for h in (0.0, 100.0) for p in (300.0, 1100.0)]
    return corners + [(rng.uniform(-40, 85), rng.uniform(0, 100), rng.uniform(300, 1100)) for _ in range(n)]


@pytest.fixture
def rig(monkeypatch):
    clock = VirtualClock()
    truth = Truth()
    chip = BME280(clock, truth, address=0x77, seed=3)
    monkeypatch.setattr(adafruit_bme280, "sleep", lambda s: clock.advance(int(s * 1e6)))
    sensor = adafruit_bme280.Adafruit_BME280_I2C(VirtualI2C(clock, [chip]), address=0x77)
    return clock, truth, chip, sensor


@pytest.mark.parametrize("overscan", ["driver-defaults", "x16"])
def test_adafruit_reads_truth_over_the_range(rig, overscan):
    clock, truth, chip, sensor = rig
    if overscan == "x16":
        sensor.overscan_temperature = adafruit_bme280.OVERSCAN_X16
        sensor.overscan_humidity = adafruit_bme280.OVERSCAN_X16
    err = {"T": 0.0, "RH": 0.0, "P": 0.0}
    for t, h, p in _points(150, seed=11):
        truth.value = (t, h, p)
        err["T"] = max(err["T"], abs(sensor.temperature - t))
        err["RH"] = max(err["RH"], abs(sensor.relative_humidity - h))
        err["P"] = max(err["P"], abs(sensor.pressure - p))
    print("\nBME280 oracle (%s), adafruit-circuitpython-bme280: max |err| T %.4f °C, RH %.4f %%RH, P %.4f hPa"
          % (overscan, err["T"], err["RH"], err["P"]))
    assert err["T"] <= 0.05
    assert err["RH"] <= 0.2
    assert err["P"] <= 0.1


def test_integer_compensation_reads_truth_too(rig):
    """The firmware runs the datasheet's integer compensation; it must agree as well."""
    clock, truth, chip, sensor = rig
    comp = Compensation(chip.calib)
    worst = [0.0, 0.0, 0.0]
    for t, h, p in _points(60, seed=5):
        truth.value = (t, h, p)
        chip.write(bytes([0xF2, 0x01, 0xF4, (1 << 5) | (5 << 2) | 1]))
        clock.advance(50_000)
        chip.write(b"\xF7")
        d = chip.read(8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        tf = comp.t_fine_i(adc_t)
        worst[0] = max(worst[0], abs(((tf * 5 + 128) >> 8) / 100.0 - t))
        worst[1] = max(worst[1], abs(comp.humidity_i(adc_h, tf) / 1024.0 - h))
        worst[2] = max(worst[2], abs(comp.pressure_i(adc_p, tf) / 25600.0 - p))
    print("\nBME280 integer compensation: max |err| T %.4f °C, RH %.4f %%RH, P %.4f hPa" % tuple(worst))
    assert worst[0] <= 0.05 and worst[1] <= 0.2 and worst[2] <= 0.1
