import pytest

from sen.emulator.chips.sx1276 import SX1276, snr_from_register
from sen.emulator.clock import VirtualClock
from sen.emulator.path_loss import LinkBudget
from sen.emulator.radio_medium import RadioMedium

from .lora_node import configure, r, read_packet, send, start_rx, w


def air(n_nodes=1, positions=None, loss=0.0, seed=1):
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=3.0), loss_percent=loss, seed=seed)
    gw = SX1276(clock, "gw")
    medium.attach(gw, (0, 0), 3.0, "gw")
    nodes = []
    for i in range(n_nodes):
        n = SX1276(clock, "n%d" % i)
        medium.attach(n, (positions or [(500.0 * (i + 1), 0.0)])[i] if positions else (500.0 * (i + 1), 0.0), 0.0, "n%d" % i)
        nodes.append(n)
    return clock, medium, gw, nodes


@pytest.mark.parametrize("sf, n, ms", [(7, 20, 56.58), (7, 51, 102.66), (12, 20, 1318.91), (12, 51, 2465.79)])
def test_tx_done_after_semtech_time_on_air(sf, n, ms):
    clock, medium, gw, (node,) = air()
    configure(node, sf=sf)
    send(node, bytes(n))
    t0 = clock.now_us()
    clock.advance(int(ms * 1000) - 50)
    assert node.dio[0].level() == 0 and node.mode_name() == "tx"
    clock.advance(100)
    assert node.dio[0].level() == 1 and r(node, 0x12)[0] & 0x08
    assert node.mode_name() == "stdby"
    assert abs(node.tx_log[-1][1] / 1000 - ms) < 0.01
    w(node, 0x12, 0x08)  # write-1-to-clear drops DIO0
    assert node.dio[0].level() == 0 and clock.now_us() - t0 >= ms * 1000


def test_registers_version_defaults_and_readonly():
    clock = VirtualClock()
    sx = SX1276(clock)
    assert r(sx, 0x42)[0] == 0x12
    assert r(sx, 0x01)[0] == 0x09  # POR: FSK standby, LF mode on
    w(sx, 0x42, 0x99)
    assert r(sx, 0x42)[0] == 0x12
    configure(sx)
    assert r(sx, 0x1D)[0] == 0x72 and r(sx, 0x39)[0] == 0x12
    old = sx.transfer(bytes([0x39 | 0x80, 0x34]))[1]
    assert old == 0x12 and r(sx, 0x39)[0] == 0x34  # MISO returns the old value during a write
    # LongRangeMode only changes in sleep
    w(sx, 0x01, 0x81)
    w(sx, 0x01, 0x01)
    assert r(sx, 0x01)[0] & 0x80
    # NRESET low then high: power-on defaults
    sx.nreset.driven(0)
    sx.nreset.driven(1)
    assert r(sx, 0x01)[0] == 0x09
    w(sx, 0x01, 0x80)
    assert r(sx, 0x39)[0] == 0x12 and r(sx, 0x1D)[0] == 0x72


def test_rx_continuous_two_packets_fifo_pointers_and_irq_mask():
    clock, medium, gw, (node,) = air()
    configure(gw)
    configure(node)
    start_rx(gw)
    send(node, b"first")
    clock.advance(1_000_000)
    assert gw.dio[0].level() == 1
    assert r(gw, 0x10)[0] == 0 and r(gw, 0x13)[0] == 5
    send(node, b"second!")
    clock.advance(1_000_000)
    assert r(gw, 0x10)[0] == 5  # the next packet lands after the first in continuous RX
    flags, data = read_packet(gw)
    assert flags & 0x40 and flags & 0x10 and not flags & 0x20 and data == b"second!"
    assert (r(gw, 0x16, 2)[1]) == 2
    # mask RxDone: the flag is never raised, DIO0 stays low
    w(gw, 0x11, 0x40)
    send(node, b"masked")
    clock.advance(1_000_000)
    assert gw.dio[0].level() == 0 and not r(gw, 0x12)[0] & 0x40


def test_rx_single_times_out_and_returns_to_standby():
    clock, medium, gw, (node,) = air()
    configure(gw, sf=9)
    w(gw, 0x1F, 20)  # 20 symbols of 4.096 ms
    w(gw, 0x40, 0x00)
    start_rx(gw, single=True)
    clock.advance(80_000)
    assert gw.mode_name() == "rxsingle"
    clock.advance(5_000)
    assert gw.mode_name() == "stdby" and r(gw, 0x12)[0] & 0x80 and gw.dio[1].level() == 1


def test_collision_capture_and_half_duplex():
    # near node 400 m, far node 2 km from the gateway: ~21 dB apart -> the near one is captured
    clock, medium, gw, (near, far) = air(2, positions=[(400.0, 0.0), (2000.0, 0.0)])
    for sx in (gw, near, far):
        configure(sx)
    start_rx(gw)
    send(far, b"far frame")
    clock.advance(20_000)
    send(near, b"near frame")
    clock.advance(2_000_000)
    assert r(gw, 0x12)[0] & 0x40 and r(gw, 0x12)[0] & 0x20  # locked on the far one: CRC error
    assert medium.counts["collision"] == 1
    # equal-strength nodes that overlap: both lost
    clock, medium, gw, (a, b) = air(2, positions=[(1000.0, 0.0), (0.0, 1000.0)])
    for sx in (gw, a, b):
        configure(sx)
    start_rx(gw)
    send(a, b"A" * 10)
    send(b, b"B" * 10)
    clock.advance(2_000_000)
    assert r(gw, 0x12)[0] & 0x20
    # capture: the strong frame first, the weak one starts later -> strong one survives
    clock, medium, gw, (near, far) = air(2, positions=[(400.0, 0.0), (2000.0, 0.0)])
    for sx in (gw, near, far):
        configure(sx)
    start_rx(gw)
    send(near, b"near frame")
    clock.advance(20_000)
    send(far, b"far frame")
    clock.advance(2_000_000)
    flags, data = read_packet(gw)
    assert flags & 0x40 and not flags & 0x20 and data == b"near frame"


def test_random_loss_percent_is_seeded_and_close_to_the_setting():
    lost = []
    for seed in (1, 1, 2):
        clock, medium, gw, (node,) = air(loss=20.0, seed=seed)
        configure(gw, sf=7)
        configure(node, sf=7)
        got = 0
        for i in range(400):
            start_rx(gw)
            send(node, bytes([i & 0xFF]) * 8)
            clock.advance(100_000)
            if r(gw, 0x12)[0] & 0x40:
                got += 1
        lost.append(400 - got)
    assert lost[0] == lost[1]
    assert all(50 <= n <= 110 for n in lost), lost  # 20 % of 400 = 80


def test_cad_detects_a_frame_on_air():
    clock, medium, gw, (node,) = air()
    configure(gw, sf=9)
    configure(node, sf=9)
    w(gw, 0x40, 0x80)  # DIO0 = CadDone
    w(gw, 0x01, 0x87)
    clock.advance(10_000)
    assert gw.dio[0].level() == 1 and r(gw, 0x12)[0] & 0x04 and not r(gw, 0x12)[0] & 0x01
    w(gw, 0x12, 0xFF)
    send(node, bytes(30))
    clock.advance(5_000)
    w(gw, 0x01, 0x87)
    clock.advance(10_000)
    assert r(gw, 0x12)[0] & 0x05 == 0x05


def test_ldro_mismatch_and_inverted_iq():
    clock, medium, gw, (node,) = air()
    configure(gw, sf=12, ldro=1)
    configure(node, sf=12, ldro=0)
    start_rx(gw)
    send(node, b"garbled")
    clock.advance(3_000_000)
    assert r(gw, 0x12)[0] & 0x60 == 0x60
    # IQ inverted on TX (bit0 = 0) is not heard by a normal-IQ receiver
    configure(gw, sf=9)
    configure(node, sf=9)
    w(node, 0x33, 0x26)
    start_rx(gw)
    send(node, b"downlink")
    clock.advance(1_000_000)
    assert not r(gw, 0x12)[0] & 0x40
    w(gw, 0x33, 0x67)  # RX inverted
    start_rx(gw)
    send(node, b"downlink")
    clock.advance(1_000_000)
    assert read_packet(gw)[1] == b"downlink"


def test_leaving_tx_early_aborts_the_frame():
    clock, medium, gw, (node,) = air()
    configure(gw)
    configure(node)
    start_rx(gw)
    send(node, bytes(40))
    clock.advance(10_000)
    w(node, 0x01, 0x80)  # sleep mid-frame
    clock.advance(2_000_000)
    assert not r(gw, 0x12)[0] & 0x40 and not node.dio[0].level()


def test_rssi_register_sees_a_frame_on_air():
    clock, medium, gw, (node,) = air()
    configure(gw)
    configure(node)
    start_rx(gw)
    quiet = r(gw, 0x1B)[0] - 157
    assert abs(quiet - LinkBudget().noise_floor_dbm(125000)) <= 1
    send(node, bytes(40))
    clock.advance(5_000)
    loud = r(gw, 0x1B)[0] - 157
    assert loud > quiet + 20
    clock.advance(2_000_000)
    assert snr_from_register(r(gw, 0x19)[0]) > 20


def test_receiver_catches_a_frame_only_during_its_preamble():
    for late_symbols, heard in ((2, True), (12, False)):
        clock, medium, gw, (node,) = air()
        configure(gw, sf=9)
        configure(node, sf=9)
        w(gw, 0x01, 0x81)
        send(node, bytes(20))
        clock.advance(int(late_symbols * 4096))
        start_rx(gw)
        clock.advance(1_000_000)
        assert bool(r(gw, 0x12)[0] & 0x40) == heard, late_symbols


def test_a_receiver_that_starts_listening_in_the_preamble_meets_the_same_random_loss():
    # a node opens its ACK window a moment after the gateway's ACK began: the loss drawn for
    # that link when the frame started still applies
    heard = 0
    clock, medium, gw, (node,) = air(loss=50.0, seed=3)
    configure(gw, sf=9)
    configure(node, sf=9)
    for _ in range(200):
        w(node, 0x01, 0x81)
        w(node, 0x12, 0xFF)
        send(gw, bytes(11))
        clock.advance(2 * 4096)
        start_rx(node)
        clock.advance(400_000)
        heard += bool(r(node, 0x12)[0] & 0x40)
    assert 70 <= heard <= 130, heard
    assert medium.counts["random_loss"] >= 70


def test_power_off_silences_the_chip():
    clock, medium, gw, (node,) = air()
    configure(gw)
    configure(node)
    start_rx(gw)
    send(node, bytes(30))
    clock.advance(10_000)
    node.set_powered(False)
    assert r(node, 0x42)[0] == 0  # no SPI answers without supply
    clock.advance(1_000_000)
    assert not r(gw, 0x12)[0] & 0x40
    node.set_powered(True)
    assert r(node, 0x42)[0] == 0x12 and r(node, 0x01)[0] == 0x09


def test_per_station_radio_loss_fault():
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(), seed=3)
    gw, node = SX1276(clock, "gw"), SX1276(clock, "node")
    medium.attach(gw, (0, 0), 3.0, "gw")
    medium.attach(node, (300, 0), 0.0, "node", loss_fn=lambda t_s: 100.0 if t_s < 10 else 0.0)
    configure(gw)
    configure(node)
    start_rx(gw)
    send(node, b"during the fault")
    clock.advance(2_000_000)
    assert not r(gw, 0x12)[0] & 0x40 and medium.counts["random_loss"] == 1
    clock.advance_to(11_000_000)
    send(node, b"after")
    clock.advance(2_000_000)
    assert read_packet(gw)[1] == b"after"
    rec = medium.frames[-1]
    assert rec["sender"] == "node" and rec["receivers"]["gw"]["outcome"] == "ok" and rec["length"] == 5
