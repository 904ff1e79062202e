"""The SX1302 concentrator model on the radio medium: 8 multi-SF channels + 1, 16 demodulators,
sync word, IQ, its 1 MHz counter and the just-in-time transmit queue."""
import base64

from sen.emulator.chips.sx1276 import SX1276
from sen.emulator.chips.sx1302 import AS923_2, DEMODULATORS, SX1302
from sen.emulator.clock import VirtualClock
from sen.emulator.path_loss import LinkBudget
from sen.emulator.radio_medium import RadioMedium

from .lora_node import configure, read_packet, send, start_rx


def site(n_nodes, lorawan_public=False):
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=3.0), seed=3)
    gw = SX1302(clock, "gw", lorawan_public=lorawan_public, tmst_offset=4_294_967_000)
    medium.attach(gw, (0, 0), 3.0, "gw")
    got = []
    gw.on_rx = got.append
    nodes = []
    for i in range(n_nodes):
        n = SX1276(clock, f"n{i}")
        medium.attach(n, (300.0 + 10 * i, 0.0), 0.0, f"n{i}")
        nodes.append(n)
    return clock, medium, gw, nodes, got


def test_eight_channels_times_six_sfs_at_once_up_to_sixteen_demodulators():
    combos = [(f, sf) for sf in (7, 8) for f in AS923_2] + [(921_400_000, 9)]  # 17 distinct channel/SF pairs
    clock, medium, gw, nodes, got = site(len(combos))
    for n, (f, sf) in zip(nodes, combos):
        configure(n, freq_hz=f, sf=sf)
    for i, n in enumerate(nodes):
        send(n, bytes([0x20, 0, i + 1]) + bytes(12))
    clock.advance(3_000_000)
    assert len(got) == DEMODULATORS and gw.counts["no_demodulator"] == 1
    assert sorted(base64.b64decode(r["data"])[2] for r in got) == list(range(1, 17))  # the 17th found none
    for r in got:
        i = base64.b64decode(r["data"])[2] - 1
        assert r["freq"] == combos[i][0] / 1e6 and r["datr"] == f"SF{combos[i][1]}BW125" and r["stat"] == 1
        assert r["chan"] == AS923_2.index(combos[i][0])


def test_sync_word_iq_off_plan_and_collisions():
    clock, medium, gw, nodes, got = site(5)
    configure(nodes[0], sync=0x34)  # public: not heard by a private concentrator
    configure(nodes[1], freq_hz=923_400_000)  # not one of its channels
    configure(nodes[2], freq_hz=921_600_000, sf=10)
    configure(nodes[3], freq_hz=921_600_000, sf=10)  # same channel, same SF, same power: collide
    configure(nodes[4], freq_hz=922_800_000, sf=12)
    for n in nodes:
        send(n, bytes([0x20]) + bytes(14))
    clock.advance(3_000_000)
    assert [(r["freq"], r["datr"], r["stat"]) for r in got if r["stat"] == 1] == [(922.8, "SF12BW125", 1)]
    assert gw.counts["rx_crc_bad"] == 2 and gw.counts["rx_ok"] == 1


def test_tmst_wraps_and_downlink_goes_out_at_its_counter_value_or_is_refused():
    clock, medium, gw, (node,), got = site(1)
    configure(node, freq_hz=922_000_000, sf=9)
    send(node, bytes([0x20, 0, 1]) + bytes(12))
    while not got:
        clock.advance(1000)
    (rx,) = got
    start_rx(node)
    tmst = rx["tmst"]
    # the counter at the frame's end (wrapped past 2^32)
    assert tmst == (4_294_967_000 + node.tx_log[0][0] + int(round(node.tx_log[0][1]))) & 0xFFFFFFFF < 1_000_000
    txpk = {"imme": False, "tmst": (tmst + 100_000) & 0xFFFFFFFF, "freq": 922.0, "powe": 14, "modu": "LORA",
            "datr": "SF9BW125", "codr": "4/5", "ipol": False, "size": 11,
            "data": base64.b64encode(bytes([0x31]) + bytes(10)).decode()}
    # at 40 ms before the slot: under the JIT queue's 42.5 ms
    late_clock, _, late_gw, _, _ = site(0)
    late_clock.advance(100)
    assert late_gw.schedule(dict(txpk, tmst=late_gw.counter() + 40_000)) == "TOO_LATE"
    assert late_gw.schedule(dict(txpk, tmst=late_gw.counter() + 4_000_000)) == "TOO_EARLY"
    assert late_gw.schedule(dict(txpk, freq=925.0, tmst=late_gw.counter() + 100_000)) == "TX_FREQ"
    assert gw.schedule(txpk) is None
    assert gw.schedule(dict(txpk, tmst=(tmst + 110_000) & 0xFFFFFFFF)) == "COLLISION_PACKET"
    clock.advance(1_000_000)
    flags, data = read_packet(node)
    assert flags & 0x40 and data == bytes([0x31]) + bytes(10)
    sent = [f for f in medium.frames if f["sender"] == "gw"]
    assert len(sent) == 1 and (sent[0]["t_start_us"] + 4_294_967_000) & 0xFFFFFFFF == (tmst + 100_000) & 0xFFFFFFFF
