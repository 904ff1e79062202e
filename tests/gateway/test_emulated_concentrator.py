"""`sen gateway run` (semtech_udp) against emulated concentrator gateways: SX1302 models on
the emulator's radio medium whose packet forwarders speak Semtech UDP over loopback, with
SX1276 nodes sending confirmed frames and listening for their ACKs as the firmware does
(continuous receive from TxDone). Virtual time runs at wall-clock speed meanwhile."""
import base64
import json
import random

from sen.emulator.chips.sx1276 import SX1276
from sen.emulator.chips.sx1302 import AS923_2, SX1302
from sen.emulator.clock import VirtualClock
from sen.emulator.concentrator_forwarder import PacketForwarder, RealTimeRunner, describe
from sen.emulator.path_loss import LinkBudget
from sen.emulator.radio_medium import RadioMedium
from sen.firmware_modules import load
from sen.testkit.synthetic import Fleet, air_readings

from ..emulator_chips.lora_node import configure, read_packet, send, start_rx, w
from .semtech_standins import GatewayProcess

frame = load("frame")
GW_A, GW_B = "aa555a00000000a1", "aa555a00000000b2"
WINDOW_US = 400_000  # the test's nodes: 100 ms + node_rx_late_ms 300 in the gateways' config


class Node:
    """An SX1276 node: send, then listen from TxDone, as firmware/main.py does."""

    def __init__(self, clock, medium, name, pos, freq_hz, sf):
        self.clock = clock
        self.chip = SX1276(clock, name)
        medium.attach(self.chip, pos, 0.0, name)
        configure(self.chip, freq_hz=freq_hz, sf=sf)
        self.tx_done_us = None
        self.ack = None
        self.ack_at_us = None
        self.chip.dio[0].watch(self._dio0)

    def _dio0(self, level):
        if not level:
            return
        if self.tx_done_us is None:
            self.tx_done_us = self.clock.now_us()
            w(self.chip, 0x12, 0xFF)
            start_rx(self.chip)
        else:
            flags, data = read_packet(self.chip)
            if not flags & 0x20:
                self.ack, self.ack_at_us = data, self.clock.now_us()

    def send(self, payload):
        self.tx_done_us = None
        send(self.chip, payload)


def test_confirmed_nodes_get_acks_in_window_through_emulated_concentrators(tmp_path):
    fleet = Fleet(3, seed=29)
    gw = GatewayProcess(tmp_path, fleet, extra="offline_after_s = 10\nnode_rx_late_ms = 300")
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=3.0), seed=7)
    chips = [SX1302(clock, "gwA", tmst_offset=4_294_000_000), SX1302(clock, "gwB", tmst_offset=77)]
    medium.attach(chips[0], (0.0, 0.0), 3.0, "gwA")
    medium.attach(chips[1], (3000.0, 0.0), 3.0, "gwB")
    fwds = [PacketForwarder(chips[0], GW_A, gw.server, keepalive_s=2.0, position=(16.07, 108.22, 10)),
            PacketForwarder(chips[1], GW_B, gw.server, keepalive_s=2.0)]
    fwds[0].tracing = True
    runner = RealTimeRunner(clock, fwds)
    # node 1 near A, node 2 half-way (both gateways hear it), node 3 near B
    nodes = {1: Node(clock, medium, "n1", (300.0, 0.0), AS923_2[1], 9),
             2: Node(clock, medium, "n2", (1500.0, 200.0), AS923_2[4], 10),
             3: Node(clock, medium, "n3", (2700.0, 0.0), AS923_2[7], 8)}
    try:
        assert runner.run_for(30, until=lambda: all(f.stats["pull_ack"] for f in fwds)), gw.log()
        for node_id, n in nodes.items():
            up = fleet.framers[node_id].encode(0, frame.UP_CONFIRMED | frame.UP_BOOT,
                                               [(0, air_readings(random.Random(node_id)))])
            if node_id == 1:
                fwds[0].trace.clear()
            n.send(up)
            assert runner.run_for(3, until=lambda: n.ack is not None), gw.log()
            flags, _ = frame.parse_downlink(n.ack, node_id, fleet.framers[node_id].mic, 0)
            assert flags & frame.DN_ACK
            assert n.ack_at_us - n.tx_done_us <= WINDOW_US + 100_000  # started inside the window
            if node_id == 1:
                runner.run_for(0.3)
                trace = describe(fwds[0].trace)
        assert gw.wait_frames(3)
        rows = gw.q("SELECT node_id, gateway_id FROM frames UNION ALL SELECT node_id, gateway_id FROM rx "
                    "ORDER BY 1, 2")
        assert (1, GW_A) in rows and (3, GW_B) in rows
        assert [r for r in rows if r[0] == 2] == [(2, GW_A), (2, GW_B)]  # stored once, both copies kept
        assert gw.q("SELECT COUNT(*) FROM frames") == [(3,)]
        assert sum(c.counts["tx"] for c in chips) == 3 and not any(f.stats["tx_refused"] for f in fwds)
        kinds = [line.split()[1] for line in trace.splitlines() if "PULL_DATA" not in line and "PULL_ACK" not in line]
        assert kinds == ["PUSH_DATA", "PUSH_ACK", "PULL_RESP", "TX_ACK"], trace
        print("message trace, node 1's confirmed uplink and its ACK:\n" + trace)
    finally:
        for f in fwds:
            f.close()
        rc = gw.stop()
    assert rc == 0


def test_lorawan_device_on_a_shared_concentrator_keeps_its_network_server(tmp_path):
    """lorawan_public gateway shared by a Sen node (sync word 0x34) and a LoRaWAN device: the
    device's uplink reaches the stand-in network server byte for byte, the server's downlink
    (RX1, IQ inverted, 1 s after the uplink) reaches the device over the air; Sen's node gets
    its ACK meanwhile."""
    from pamoja.gateway import Txpk
    from pamoja.lora import link

    from .semtech_standins import StandInNetworkServer
    ns = StandInNetworkServer()
    fleet = Fleet(1, seed=31)
    gw = GatewayProcess(tmp_path, fleet, extra=f'[radio.lorawan_upstream]\naddress = "127.0.0.1:{ns.address[1]}"')
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=3.0), seed=11)
    chip = SX1302(clock, "gwA", lorawan_public=True, tmst_offset=900)
    medium.attach(chip, (0.0, 0.0), 3.0, "gwA")
    fwd = PacketForwarder(chip, GW_A, gw.server, keepalive_s=2.0)
    runner = RealTimeRunner(clock, [fwd])
    sen_node = Node(clock, medium, "sen1", (400.0, 0.0), AS923_2[2], 9)
    configure(sen_node.chip, freq_hz=AS923_2[2], sf=9, sync=0x34)
    device = Node(clock, medium, "lw1", (600.0, 100.0), AS923_2[5], 9)
    configure(device.chip, freq_hz=AS923_2[5], sf=9, sync=0x34)
    try:
        assert runner.run_for(30, until=lambda: fwd.stats["pull_ack"] and GW_A in ns.pull_addr), gw.log()
        # the LoRaWAN device: unconfirmed data up (MHDR 0x40), then listens with IQ inverted
        lorawan_up = bytes([0x40, 0x04, 0x03, 0x02, 0x01, 0x80, 0x01, 0x00, 0x02]) + bytes(range(10, 30))
        device.send(lorawan_up)
        w(device.chip, 0x33, 0x67)  # InvertIQ on receive, as a LoRaWAN device's RX1 window
        assert runner.run_for(3, until=lambda: any(d[3] == 0 and b'"rxpk"' in d for d, _ in ns.got)), gw.log()
        push = [d for d, _ in ns.got if d[3] == 0 and b'"rxpk"' in d][0]
        rx = json.loads(push[12:])["rxpk"][0]
        assert base64.b64decode(rx["data"]) == lorawan_up and push[4:12] == bytes.fromhex(GW_A)
        down = bytes([0x60, 0x04, 0x03, 0x02, 0x01, 0x00, 0x01, 0x00]) + bytes(range(40, 52))
        ns.send_downlink(GW_A, 0x7777, Txpk(int(round(rx["freq"] * 1e6)), down, link=link(9, 125_000),
                                                immediate=False, timestamp_us=(rx["tmst"] + 1_000_000) % 2 ** 32,
                                                invert_polarity=True))
        assert runner.run_for(3, until=lambda: device.ack is not None), gw.log()
        assert device.ack == down  # heard over the air by the device, from the concentrator
        assert runner.run_for(2, until=lambda: any(d[3] == 5 and d[1:3] == b"\x77\x77" for d, _ in ns.got))
        # Sen's node on the same gateway still gets its ACK; its frame never reached the LoRaWAN server
        up = fleet.framers[1].encode(0, frame.UP_CONFIRMED | frame.UP_BOOT, [(0, air_readings(random.Random(5)))])
        sen_node.send(up)
        assert runner.run_for(3, until=lambda: sen_node.ack is not None), gw.log()
        assert frame.parse_downlink(sen_node.ack, 1, fleet.framers[1].mic, 0)[0] & frame.DN_ACK
        runner.run_for(0.5)
        assert not any(base64.b64encode(up) in d for d, _ in ns.got)
    finally:
        fwd.close()
        rc = gw.stop()
        ns.close()
    assert rc == 0


SCENARIO = """
[scenario]
name = "two-concentrators"
seed = 3
start = 2026-11-23T00:00:00+07:00
duration_h = 1
[radio]
loss_percent = 0
[[gateway]]
id = "hai-chau"
kind = "concentrator"
eui = "aa555a00000000c1"
location = { x_m = 0, y_m = 0 }
[[gateway]]
id = "son-tra"
kind = "concentrator"
location = { x_m = 2500, y_m = 0 }
[[station]]
id = "rain"
kind = "rain"
board = "esp32-rfm95"
location = { x_m = 800, y_m = 0 }
[station.truth.rain_intensity]
mean = 0
"""


def test_scenario_concentrators_serve_the_in_process_gateway(tmp_path):
    """`sen emulate --gateway` wiring (host_tools/emulated_gateway.py): a scenario's [[gateway]] sites
    of kind "concentrator" become SX1302 models whose forwarders, pumped by the virtual clock,
    speak Semtech UDP to the in-process gateway's semtech_udp radio."""
    import time

    from sen.host_tools.emulated_gateway import _medium, start_gateway, stop_gateway
    from sen.emulator.scenario import load_scenario
    from sen.gateway.key_store import KeyStore

    from .semtech_standins import udp_port
    fleet = Fleet(1, seed=41)
    KeyStore(tmp_path / "keys.json", create=True)
    fleet.write_keys(KeyStore(tmp_path / "keys.json"))
    (tmp_path / "gateway.toml").write_text(f"""
[gateway]
id = "gw-emulated"
data_dir = "data"
fsync = false
[keys]
file = "keys.json"
[[radio]]
backend = "semtech_udp"
name = "udp"
bind = "127.0.0.1:{udp_port()}"
node_rx_late_ms = 300
""")
    (tmp_path / "world.toml").write_text(SCENARIO)
    world = load_scenario(tmp_path / "world.toml")
    assert [(g["kind"], g["eui"]) for g in world.gateways] == [("concentrator", "aa555a00000000c1"),
                                                                ("concentrator", "aa555a0000000002")]
    clock = VirtualClock()
    service, thread = start_gateway(tmp_path / "gateway.toml", world, clock)
    node = Node(clock, _medium(world, clock), "n1", (900.0, 50.0), AS923_2[3], 9)
    udp = service.backends["udp"]

    def run(seconds, until):  # the emulator's scheduler at --speed 1
        t0, v0 = time.monotonic(), clock.now_us()
        while clock.now_us() - v0 < seconds * 1e6:
            clock.advance_to(min(v0 + int((time.monotonic() - t0) * 1e6), clock.now_us() + 5_000))
            if until():
                return True
            time.sleep(0.001)
        return until()

    try:
        assert run(20, lambda: len([g for g in udp.status()["gateways"] if g["online"]]) == 2)
        up = fleet.framers[1].encode(0, frame.UP_CONFIRMED | frame.UP_BOOT, [(0, air_readings(random.Random(1)))])
        node.send(up)
        assert run(5, lambda: node.ack is not None), udp.status()
        assert frame.parse_downlink(node.ack, 1, fleet.framers[1].mic, 0)[0] & frame.DN_ACK
        assert node.ack_at_us - node.tx_done_us <= WINDOW_US + 100_000
        st = {g["eui"]: g["counts"] for g in udp.status()["gateways"]}
        assert st["aa555a00000000c1"]["sen"] == 1 and st["aa555a0000000002"]["sen"] == 1  # both heard it
        assert sum(c.get("tx_ok", 0) for c in st.values()) == 1
    finally:
        stop_gateway(service, thread)
