import struct

from sen.emulator.chips.faults import FaultState
from sen.emulator.chips.pms5003 import PMS5003, command, growth_factor
from sen.emulator.clock import VirtualClock


def parse_frames(buf):
    """Independent parser following the datasheet layout."""
    out = []
    i = 0
    while i + 32 <= len(buf):
        if buf[i:i + 2] != b"\x42\x4d":
            i += 1
            continue
        f = buf[i:i + 32]
        assert struct.unpack(">H", f[2:4])[0] == 28
        assert sum(f[:30]) == struct.unpack(">H", f[30:32])[0], "checksum"
        out.append(struct.unpack(">13H", f[4:30]))
        i += 32
    return out


def rig(pm=(14.0, 20.0, 30.0), rh=50.0, faults=None, **kw):
    clock = VirtualClock()
    pms = PMS5003(clock, lambda t: pm, rh=(lambda t: rh) if rh is not None else None, faults=faults, seed=1, **kw)
    return clock, pms


def test_active_mode_streams_checksummed_frames_at_9600_baud():
    clock, pms = rig()
    clock.advance(1_000_000)
    assert pms.read_available() == b""  # first frame starts at 1 s, not yet on the wire
    clock.advance(20_000)
    part = pms.read_available()
    assert 0 < len(part) < 32  # 20 ms at 9600 baud carries 19 bytes
    clock.advance(20_000)
    rest = pms.read_available()
    assert len(parse_frames(part + rest)) == 1
    clock.advance(10_000_000)
    assert len(parse_frames(pms.read_available())) == 10


def test_passive_mode_answers_read_requests_only():
    clock, pms = rig()
    pms.write(command(0xE1, 0))
    clock.advance(100_000)
    ack = pms.read_available()
    assert ack == bytes([0x42, 0x4D, 0x00, 0x04, 0xE1, 0x00, 0x01, 0x74])
    clock.advance(5_000_000)
    assert pms.read_available() == b""
    pms.write(command(0xE2))
    clock.advance(60_000)
    assert len(parse_frames(pms.read_available())) == 1
    bad = bytearray(command(0xE2))
    bad[-1] ^= 1
    pms.write(bytes(bad))  # wrong LRC: ignored
    clock.advance(60_000)
    assert pms.read_available() == b""


def test_sleep_wake_by_command_and_set_pin_restart_warm_up():
    clock, pms = rig()
    pms.write(command(0xE4, 0))
    clock.advance(100_000)
    assert pms.read_available() == bytes([0x42, 0x4D, 0x00, 0x04, 0xE4, 0x00, 0x01, 0x77])
    clock.advance(5_000_000)
    assert pms.read_available() == b""
    pms.write(command(0xE4, 1))
    woke = clock.now_us()
    clock.advance(3_000_000)
    assert len(parse_frames(pms.read_available())) >= 2 and pms.fan_on_us == woke
    pms.set_pin.driven(0)
    clock.advance(5_000_000)
    pms.read_available()
    clock.advance(5_000_000)
    assert pms.read_available() == b""
    pms.set_pin.driven(1)
    clock.advance(2_100_000)
    assert len(parse_frames(pms.read_available())) == 2


def test_readings_settle_after_30_s_and_carry_the_humidity_overestimate():
    # dry truth PM2.5 = 20; gain 1.5; kappa 0.4 at 80 %RH -> growth 1 + (0.4/1.65)/(1/0.8 - 1)
    g = growth_factor(80.0, 0.4)
    assert abs(g - (1 + (0.4 / 1.65) / 0.25)) < 1e-12
    clock, pms = rig(rh=80.0)
    clock.advance(60_000_000)
    frames = parse_frames(pms.read_available())
    early = [f[1] for f in frames[:10]]   # first 10 s of fan run
    late = [f[1] for f in frames[35:]]    # after 35 s
    expect = 1.5 * 20 * g
    late_mean = sum(late) / len(late)
    assert abs(late_mean - expect) < 2.0, (late_mean, expect)
    spread = lambda xs: max(xs) - min(xs)  # noqa: E731
    assert spread(early) > spread(late)
    assert abs(sum(early) / len(early) - expect) > abs(late_mean - expect) or spread(early) > 3 * spread(late)
    # atmospheric column: equal to CF=1 below 30, lower above
    assert all(f[4] <= f[1] for f in frames)


def test_faults_detached_and_stuck():
    state = {"f": FaultState(detached=True)}
    clock, pms = rig(faults=lambda t: state["f"])
    clock.advance(5_000_000)
    assert pms.read_available() == b""
    state["f"] = FaultState()
    clock.advance(40_000_000)
    pms.read_available()
    state["f"] = FaultState(stuck=True)
    clock.advance(10_000_000)
    frames = parse_frames(pms.read_available())
    assert len(frames) >= 9 and len(set(frames[1:])) == 1


def test_power_cycle_restarts_in_active_mode():
    clock, pms = rig()
    pms.write(command(0xE1, 0))
    clock.advance(5_000_000)
    pms.read_available()
    pms.set_powered(False)
    pms.write(command(0xE2))
    clock.advance(5_000_000)
    assert pms.read_available() == b""
    pms.set_powered(True)
    clock.advance(3_100_000)
    assert len(parse_frames(pms.read_available())) == 3  # active again after power-up
