import errno

import pytest

from sen.emulator.chips.bme280 import BME280, Compensation
from sen.emulator.chips.faults import FaultState
from sen.emulator.clock import VirtualClock
from sen.emulator.devices import BusFault


def rig(faults=None, truth=(21.5, 55.0, 1005.0)):
    clock = VirtualClock()
    chip = BME280(clock, lambda t: truth, faults=faults, seed=4)
    clock.advance(3000)
    return clock, chip


def reg(chip, a, n=1):
    chip.write(bytes([a]))
    return chip.read(n)


def decode(chip):
    d = reg(chip, 0xF7, 8)
    comp = Compensation(chip.calib)
    adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
    tf = comp.t_fine_i(adc_t)
    return (((tf * 5 + 128) >> 8) / 100.0, comp.humidity_i((d[6] << 8) | d[7], tf) / 1024.0,
            comp.pressure_i((d[0] << 12) | (d[1] << 4) | (d[2] >> 4), tf) / 25600.0)


def test_id_reset_and_skipped_measurements():
    clock, chip = rig()
    assert reg(chip, 0xD0)[0] == 0x60
    assert reg(chip, 0xF7, 8) == bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
    chip.write(b"\xE0\xB6")
    assert reg(chip, 0xF3)[0] & 0x01  # im_update while the NVM is copied
    clock.advance(2500)
    assert reg(chip, 0xF3)[0] == 0


def test_forced_measurement_timing_and_return_to_sleep():
    clock, chip = rig()
    chip.write(bytes([0xF2, 0x01, 0xF4, (1 << 5) | (1 << 2) | 1]))
    # typical time x1/x1/x1: 1 + 2 + 2.5 + 2.5 = 8 ms
    clock.advance(7_900)
    assert reg(chip, 0xF3)[0] & 0x08
    clock.advance(200)
    assert not reg(chip, 0xF3)[0] & 0x08
    assert reg(chip, 0xF4)[0] & 0x03 == 0
    t, h, p = decode(chip)
    assert abs(t - 21.5) < 0.05 and abs(h - 55.0) < 0.2 and abs(p - 1005.0) < 0.1


def test_ctrl_hum_needs_a_ctrl_meas_write():
    clock, chip = rig()
    chip.write(bytes([0xF4, (1 << 5) | (1 << 2) | 1]))  # humidity skipped (osrs_h = 0)
    clock.advance(20_000)
    assert reg(chip, 0xFD, 2) == b"\x80\x00"
    chip.write(bytes([0xF2, 0x01]))  # not yet active
    clock.advance(20_000)
    assert reg(chip, 0xFD, 2) == b"\x80\x00"
    chip.write(bytes([0xF4, (1 << 5) | (1 << 2) | 1]))
    clock.advance(20_000)
    assert reg(chip, 0xFD, 2) != b"\x80\x00"


def test_normal_mode_keeps_updating():
    truth = [20.0, 50.0, 1000.0]
    clock = VirtualClock()
    chip = BME280(clock, lambda t: tuple(truth), seed=1)
    chip.write(bytes([0xF5, 0x00, 0xF2, 0x01, 0xF4, (1 << 5) | (1 << 2) | 3]))  # t_sb 0.5 ms
    clock.advance(50_000)
    assert abs(decode(chip)[0] - 20.0) < 0.05
    truth[0] = 30.0
    clock.advance(50_000)
    assert abs(decode(chip)[0] - 30.0) < 0.05
    assert reg(chip, 0xF4)[0] & 0x03 == 3


def test_detached_nack_stuck_spike_faults():
    state = {"f": FaultState(detached=True)}
    clock, chip = rig(faults=lambda t: state["f"])
    with pytest.raises(BusFault) as e:
        chip.write(b"")
    assert e.value.errno == errno.ENODEV
    state["f"] = FaultState()
    assert reg(chip, 0xD0)[0] == 0x60  # reattached, answers again from a fresh power-up
    state["f"] = FaultState(nack_rate=0.5)
    fails = 0
    for _ in range(200):
        try:
            chip.write(b"\xD0")
        except BusFault:
            fails += 1
    assert 60 < fails < 140
    state["f"] = FaultState()
    chip.write(bytes([0xF2, 0x01, 0xF4, (1 << 5) | (1 << 2) | 1]))
    clock.advance(10_000)
    first = reg(chip, 0xF7, 8)
    state["f"] = FaultState(stuck=True)
    chip.write(bytes([0xF4, (1 << 5) | (1 << 2) | 1]))
    clock.advance(10_000)
    assert reg(chip, 0xF7, 8) == first
    state["f"] = FaultState(spike_rate=1.0, spike_magnitude=10.0)
    chip.write(bytes([0xF4, (1 << 5) | (1 << 2) | 1]))
    clock.advance(10_000)
    assert abs(decode(chip)[0] - 21.5) > 9


def test_iir_filter_smooths_a_step_and_power_cycle_resets():
    truth = [20.0, 50.0, 1000.0]
    clock = VirtualClock()
    chip = BME280(clock, lambda t: tuple(truth), seed=1, noise=False)
    chip.write(bytes([0xF5, 4 << 2, 0xF2, 0x01, 0xF4, (1 << 5) | (1 << 2) | 3]))  # filter 16, normal
    clock.advance(300_000)
    assert abs(decode(chip)[0] - 20.0) < 0.05
    truth[0] = 30.0
    clock.advance(10_000)  # one new sample through a 16x filter: 1/16 of the step
    t = decode(chip)[0]
    assert 20.3 < t < 21.5
    clock.advance(2_000_000)
    assert abs(decode(chip)[0] - 30.0) < 0.05
    chip.set_powered(False)
    with pytest.raises(BusFault):
        chip.read(1)
    chip.set_powered(True)
    assert reg(chip, 0xF4)[0] == 0 and reg(chip, 0xF5)[0] == 0  # registers back to reset values
