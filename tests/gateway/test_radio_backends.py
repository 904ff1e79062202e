"""Radio backends on the emulator's SX1276 model and radio medium: the real pyLoRa package
(through the spidev/RPi.GPIO doubles) in the sx127x backend, the register-level emulated
backend, receive watchdog, and ACK downlinks reaching the node's radio."""
import time

import pytest

from sen.testkit import pi_doubles
from sen.emulator.chips.sx1276 import FSTEP, SX1276
from sen.emulator.clock import VirtualClock
from sen.emulator.path_loss import LinkBudget
from sen.emulator.radio_medium import RadioMedium
from sen.firmware_modules import load
from sen.gateway.config import RadioConfig
from sen.gateway.frame_decode import decode_uplink

frame = load("frame")
airtime = load("airtime")


def w(sx, addr, *values):
    sx.transfer(bytes([addr | 0x80]) + bytes(values))


def r(sx, addr, n=1):
    return sx.transfer(bytes([addr]) + bytes(n))[1:]


def node_send(sx, payload, sf=9, freq_hz=921.4e6, sync=0x12):
    """What a node's driver writes to send one frame (SX1276 datasheet register sequence)."""
    w(sx, 0x01, 0x80)
    frf = int(round(freq_hz / FSTEP))
    w(sx, 0x06, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)
    w(sx, 0x1D, (7 << 4) | (1 << 1))
    w(sx, 0x1E, (sf << 4) | 0x04)
    w(sx, 0x26, 0x04 | (0x08 if sf >= 11 else 0))
    w(sx, 0x20, 0, 8)
    w(sx, 0x39, sync)
    w(sx, 0x09, 0x8E)
    w(sx, 0x01, 0x81)
    w(sx, 0x0E, 0x00)
    w(sx, 0x0D, 0x00)
    w(sx, 0x00, *payload)
    w(sx, 0x22, len(payload))
    w(sx, 0x40, 0x40)
    w(sx, 0x12, 0xFF)
    w(sx, 0x01, 0x83)
    return airtime.time_on_air_us(len(payload), sf, 125000)


def node_listen(sx):
    w(sx, 0x40, 0x00)
    w(sx, 0x0F, 0x00)
    w(sx, 0x0D, 0x00)
    w(sx, 0x12, 0xFF)
    w(sx, 0x01, 0x85)


def node_read(sx):
    n = r(sx, 0x13)[0]
    w(sx, 0x0D, r(sx, 0x10)[0])
    return bytes(r(sx, 0x00, n))


@pytest.fixture
def world():
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=3.0), loss_percent=0.0, seed=5)
    node = SX1276(clock, "node")
    medium.attach(node, (800.0, 200.0), 0.0, "node")
    return clock, medium, node


def frames_for(n, node_id=21):
    key = bytes(range(16))
    f = frame.Framer(node_id, key)
    return key, [f.encode(c, frame.UP_BOOT if c == 0 else 0, [(0, [(5, 30 + c, 0), (7, 190, 0)])]) for c in range(n)]


def test_sx127x_backend_runs_real_pylora_on_the_medium(world):
    clock, medium, node = world
    pi_doubles.install()
    gw_chip = SX1276(clock, "gw")
    medium.attach(gw_chip, (0.0, 0.0), 3.0, "gw")
    pi_doubles.detach_all()
    pi_doubles.attach_radio(gw_chip)
    from sen.gateway.radio.sx127x import Sx127xBackend
    got = []
    rc = RadioConfig("sx127x", "hat0", sf=9, watchdog_s=0)
    be = Sx127xBackend(rc, "gw-pi", lambda f, m: got.append((f, m))).start()
    be.stop_event.set()  # the test drives the watchdog by hand
    key, frames = frames_for(3)
    for f in frames:
        clock.advance(node_send(node, f) + 1000)
    assert [f for f, _ in got] == frames
    expected = medium.expected_link(node, gw_chip, 16.0, 921.4e6, 125000)
    for f, m in got:
        assert m.radio == "hat0" and m.sf == 9 and m.gateway_id == "gw-pi"
        assert abs(m.rssi - expected["rssi_dbm"]) <= 1.0 and abs(m.snr - expected["snr_db"]) <= 0.25
        assert decode_uplink(f, key, decode_counter(f)).header.node_id == 21
    # wrong SF: not heard
    clock.advance(node_send(node, frames[0], sf=10) + 1000)
    assert len(got) == 3
    # the watchdog: after silence the chip is reset and re-initialised, and receives again
    rc.watchdog_s = 0.2
    time.sleep(0.3)
    assert be.check_watchdog() and be.reinits == 1
    assert gw_chip.transfer(bytes([0x01, 0]))[1] & 0x07 == 0x05  # RXCONTINUOUS again
    clock.advance(node_send(node, frames[1]) + 1000)
    assert len(got) == 4
    # an ACK goes out on air and the node hears it in its receive window
    from sen.gateway.downlink_encode import encode_downlink
    node_listen(node)
    ack = encode_downlink(21, key, 2, {"interval_s": 300})
    be.transmit(ack)
    clock.advance(airtime.time_on_air_us(len(ack), 9, 125000) + 1000)
    assert node_read(node) == ack
    fr = frame.Framer(21, key)
    flags, cfg = frame.parse_downlink(ack, 21, fr.mic, 2)
    assert cfg == {"interval_s": 300}
    be.stop()
    pi_doubles.detach_all()


def decode_counter(f):
    return int.from_bytes(f[3:7], "big") if f[0] & 8 else int.from_bytes(f[3:5], "big")


def test_emulated_backends_two_radios_feed_one_pipeline(world, rig):
    """Two gateways' emulated radios hear the same node: one reading set, two rx copies."""
    from sen.host_tools.emulated_gateway import EmulatedBackend
    clock, medium, node = world
    got = []
    a = EmulatedBackend(RadioConfig("emulated", "north", sf=9, options={"position": [0.0, 0.0]}), "gw-a",
                        lambda f, m: got.append((f, m)), medium).start()
    b = EmulatedBackend(RadioConfig("emulated", "south", sf=9, options={"position": [1500.0, 0.0]}), "gw-b",
                        lambda f, m: got.append((f, m)), medium).start()
    key, frames = frames_for(4, node_id=1)
    rig.keys.rotate(1, key)
    for f in frames:
        clock.advance(node_send(node, f) + 1000)
    assert len(got) == 8 and {m.gateway_id for _, m in got} == {"gw-a", "gw-b"}
    assert all(m.time == pytest.approx(clock.epoch_s(), abs=5) for _, m in got)
    res = rig.feed(got)
    assert len(res.accepted) == 4 and res.duplicates == 4 and not res.rejections
    rows = rig.q("SELECT f.gateway_id, r.gateway_id FROM frames f JOIN rx r USING (node_id, counter)")
    assert len(rows) == 4 and all({x, y} == {"gw-a", "gw-b"} for x, y in rows)
    assert rig.q("SELECT COUNT(*) FROM readings")[0][0] == 8
    # downlink from gateway a reaches the node
    node_listen(node)
    from sen.gateway.downlink_encode import encode_downlink
    ack = encode_downlink(1, key, 3)
    a.transmit(ack)
    clock.advance(airtime.time_on_air_us(len(ack), 9, 125000) + 1000)
    assert node_read(node) == ack
    a.stop()
    b.stop()
