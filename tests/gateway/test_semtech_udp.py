"""`sen gateway run` with the semtech_udp backend, over real UDP on loopback, against
stand-in packet forwarders and a stand-in LoRaWAN network server whose datagrams are made and
read by pamoja-gateway (tests/gateway/semtech_standins.py)."""
import base64
import json
import os
import subprocess
import time
import urllib.request

import pytest
from pamoja.gateway import Crc, PacketKind, Stat, Txpk
from pamoja.lora import link

from sen.firmware_modules import load
from sen.testkit.synthetic import Fleet, air_readings

from .conftest import free_port
from .semtech_standins import SEN, JIT_LEAD_US, GatewayProcess, StandInForwarder, StandInNetworkServer, udp_port

frame = load("frame")
GW_A, GW_B, GW_C = "aa555a0000000001", "aa555a0000000002", "aa555a0000000003"


@pytest.fixture
def fleet():
    return Fleet(4, seed=17)


def confirmed(fleet, node, counter):
    import random
    return fleet.framers[node].encode(counter, frame.UP_CONFIRMED | (frame.UP_BOOT if counter == 0 else 0),
                                      [(0, air_readings(random.Random(counter)))])


def test_acks_in_window_too_late_retry_and_one_frame_from_two_gateways(tmp_path, fleet):
    metrics_port = free_port()
    # nodes flashed for this gateway listen 300 ms late (node_rx_late_ms): a loaded test host
    # may take longer than the default window's 100 ms to store a frame and answer
    gw = GatewayProcess(tmp_path, fleet, extra=f'node_rx_late_ms = 300\n[metrics]\nbind = "127.0.0.1"\nport = {metrics_port}')
    a = StandInForwarder(GW_A, gw.server, tmst0=4_294_000_000)  # wraps around during the test
    b = StandInForwarder(GW_B, gw.server, tmst0=1_000_000)
    try:
        gw.wait_up(a)
        b.pull()
        assert b.wait(lambda: b.acks)
        # 1. one gateway, confirmed uplink: ACK as PULL_RESP in the node's window
        up = confirmed(fleet, 1, 0)
        rx = a.rxpk(up, rssi=-97, snr=-3.5, freq_hz=922_000_000, sf=10)
        push = a.push([rx], Stat(received=1, received_ok=1, forwarded=1, acknowledged_percent=100.0,
                                 latitude_deg=16.07, longitude_deg=108.22, altitude_m=12))
        assert a.wait(lambda: a.downlinks), gw.log()
        raw, p, arrived, verdict = a.downlinks[0]
        assert verdict == "NONE"  # lead >= 42.5 ms at the forwarder's own counter
        t = p.transmit
        delay = (t.timestamp_us - rx.timestamp_us) & 0xFFFFFFFF
        assert 100_000 <= delay <= 400_000  # inside the window of nodes flashed for this gateway (rx_late_ms 300)
        assert (t.timestamp_us - arrived) & 0xFFFFFFFF >= JIT_LEAD_US
        assert not t.immediate and t.invert_polarity is False  # Sen nodes listen with IQ upright
        assert t.frequency_hz == 922_000_000 and t.link.spreading_factor == 10 and t.link.bandwidth_hz == 125_000
        flags, _ = frame.parse_downlink(t.payload, 1, fleet.framers[1].mic, 0)
        assert flags & frame.DN_ACK
        assert (PacketKind.PUSH_ACK, int.from_bytes(push[1:3], "big")) in a.acks
        # 2. two gateways hear one frame: stored once, both copies' RSSI/SNR kept; the ACK
        # goes through the better one (B, SNR 7.5)
        up2 = confirmed(fleet, 2, 0)
        a.push([a.rxpk(up2, rssi=-110, snr=-8.0)])
        b.push([b.rxpk(up2, rssi=-88, snr=7.5)])
        assert b.wait(lambda: b.downlinks), gw.log()
        assert gw.wait_frames(2)
        assert gw.q("SELECT COUNT(*) FROM frames WHERE node_id = 2") == [(1,)]
        copies = gw.q("SELECT gateway_id, rssi, snr FROM frames WHERE node_id = 2 UNION ALL "
                      "SELECT gateway_id, rssi, snr FROM rx WHERE node_id = 2")
        assert sorted(copies) == [(GW_A, -110.0, -8.0), (GW_B, -88.0, 7.5)]
        assert len(a.downlinks) == 1  # only the first uplink's ACK went through A
        # 3. the best gateway answers TOO_LATE: Sen logs, counts, and sends through the other
        a.refuse = "TOO_LATE"
        up3 = confirmed(fleet, 3, 0)
        ra, rb = a.rxpk(up3, rssi=-80, snr=9.0), b.rxpk(up3, rssi=-100, snr=1.0)
        a.push([ra])
        b.push([rb])
        assert b.wait(lambda: len(b.downlinks) == 2), gw.log()
        assert len(a.downlinks) == 2 and a.downlinks[1][3] == "TOO_LATE"
        tb = b.downlinks[1][1].transmit
        assert b.downlinks[1][3] == "NONE" and 100_000 <= (tb.timestamp_us - rb.timestamp_us) & 0xFFFFFFFF <= 400_000
        assert frame.parse_downlink(tb.payload, 3, fleet.framers[3].mic, 0)[0] & frame.DN_ACK
        assert "refused an ACK: TOO_LATE" in gw.log()
        # 4. bad CRC is counted, not decoded; stat shows in the status file
        a.refuse = None
        a.push([a.rxpk(confirmed(fleet, 4, 0), crc=Crc.FAILED)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = {g["eui"]: g for g in gw.status()["gateways"]}
            if st.get(GW_A, {}).get("counts", {}).get("crc_bad"):
                break
            time.sleep(0.2)
        assert st[GW_A]["counts"]["crc_bad"] == 1 and st[GW_A]["counts"]["tx_error:TOO_LATE"] == 1
        assert st[GW_A]["stat"]["lati"] == 16.07 and st[GW_A]["stat"]["rxok"] == 1 and st[GW_A]["online"]
        assert st[GW_B]["counts"]["tx_ok"] == 2
        assert gw.q("SELECT COUNT(*) FROM frames WHERE node_id = 4") == [(0,)]
        out = subprocess.run([str(SEN), "gateway", "status", "-c", str(tmp_path / "gateway.toml"), "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        shown = json.loads(out.stdout)["concentrators"][0]
        assert {g["eui"] for g in shown["gateways"]} == {GW_A, GW_B}
        out = subprocess.run([str(SEN), "gateway", "status", "-c", str(tmp_path / "gateway.toml")],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})
        assert out.returncode == 0 and GW_A in out.stdout and "TOO_LATE 1" in out.stdout, out.stdout + out.stderr
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        from prometheus_client.parser import text_string_to_metric_families
        got = {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
               for fam in text_string_to_metric_families(body) for smp in fam.samples}
        lab = (("gateway", GW_A), ("radio", "udp"))
        assert got[("sen_gateway_concentrator_online", lab)] == 1
        assert got[("sen_gateway_concentrator_stat_rx_crc_ok", lab)] == 1
        assert got[("sen_gateway_concentrator_latitude", lab)] == 16.07
        pk = "sen_gateway_concentrator_packets_total"
        assert got[(pk, tuple(sorted(lab + (("what", "tx_error"), ("error", "TOO_LATE")))))] == 1
        assert got[(pk, tuple(sorted(lab + (("what", "crc_bad"), ("error", "")))))] == 1
    finally:
        a.close()
        b.close()
        rc = gw.stop()
    assert rc == 0


def test_bad_input_one_line_each_and_no_crash(tmp_path, fleet):
    gw = GatewayProcess(tmp_path, fleet, extra=f'gateways = ["{GW_A}", "{GW_B}"]\noffline_after_s = 3\n'
                                               f'[radio.lorawan_upstream]\naddress = "127.0.0.1:{udp_port()}"')
    a = StandInForwarder(GW_A, gw.server)
    c = StandInForwarder(GW_C, gw.server)  # not in the allow-list
    try:
        gw.wait_up(a)
        eui = bytes.fromhex(GW_A)
        good = {"tmst": 1, "freq": 921.4, "datr": "SF9BW125", "rssi": -90, "lsnr": 5, "stat": 1, "modu": "LORA"}
        bad = [
            b"\x02\x01",  # too short
            b"\x07\x00\x01\x00" + eui + b"{}",  # unknown protocol version
            b"\x02\x00\x01\x09" + eui,  # unknown message type
            b"\x02\x00\x01\x00" + eui + b"{not json",
            b"\x02\x00\x01\x00" + eui + json.dumps({"rxpk": [dict(good, data="@@not base64@@")]}).encode(),
            b"\x02\x00\x01\x00" + eui + json.dumps({"rxpk": [{k: v for k, v in good.items() if k != "tmst"} |
                                                             {"data": "IAABAgMEBQYHCAk="}]}).encode(),
            b"\x02\x00\x01\x00" + eui + json.dumps({"rxpk": [dict(good, datr="SF99BW1", data="IAABAgMEBQYHCAk=")]}).encode(),
        ]
        for d in bad:
            a.send_raw(d)
        c.pull()
        a.push([a.rxpk(bytes(20))])  # LoRaWAN-looking, relayed to an upstream that is down
        time.sleep(0.5)
        up = confirmed(fleet, 1, 0)
        a.pull()
        a.push([a.rxpk(up)])
        assert a.wait(lambda: a.downlinks), gw.log()  # still running, still ACKing
        assert gw.wait_frames(1)
        log = gw.log()
        lines = [ln for ln in log.splitlines() if "ignored datagram" in ln]
        assert len(lines) == len(bad) + 1, log
        for needle in ("too short", "protocol version 7 is not supported", "message type 0x09 is unknown",
                       "no valid JSON", "'data' is not base64", "has no 'tmst'", "is not a LoRa data rate",
                       f"gateway {GW_C} is not in"):
            assert sum(needle in ln for ln in lines) == 1, (needle, log)
        assert log.count("LoRaWAN upstream") == 1 and "is not answering" in log
        assert "Traceback" not in log
        assert not c.acks  # a gateway not allowed gets no answer
        # A stops sending PULL_DATA: shown offline (after offline_after_s), no more ACKs through it
        assert a.wait(lambda: gw.gateway(GW_A).get("online") is False, 15)
        a.push([a.rxpk(confirmed(fleet, 2, 0))])
        assert gw.wait_frames(2) and not a.wait(lambda: len(a.downlinks) > 1, 1.0)
        assert a.wait(lambda: gw.status()["counts"].get("ack_no_gateway") == 1, 5)
    finally:
        a.close()
        c.close()
        rc = gw.stop()
    assert rc == 0


def test_lorawan_relayed_byte_for_byte_and_downlinks_to_the_right_gateway(tmp_path, fleet):
    ns = StandInNetworkServer()
    gw = GatewayProcess(tmp_path, fleet, extra=f'[radio.lorawan_upstream]\naddress = "127.0.0.1:{ns.address[1]}"')
    a = StandInForwarder(GW_A, gw.server)
    b = StandInForwarder(GW_B, gw.server)
    try:
        gw.wait_up(a)
        b.pull()
        assert ns_wait(lambda: GW_A in ns.pull_addr and GW_B in ns.pull_addr)
        # the server sees each gateway from its own address, and its PULL_DATA unchanged
        assert ns.pull_addr[GW_A] != ns.pull_addr[GW_B]
        lorawan = bytes([0x40, 0x01, 0x02, 0x03, 0x26, 0x00, 0x05, 0x00, 0x07]) + bytes(range(20))  # unconfirmed up
        only_lw = a.push([a.rxpk(lorawan, rssi=-101, snr=-2.0)], Stat(received=3, received_ok=2, forwarded=2))
        assert ns_wait(lambda: any(d == only_lw for d, _ in ns.got)), ns.got
        # mixed: the Sen frame stays with Sen, the LoRaWAN one and the stat go up unchanged
        sen_up = confirmed(fleet, 1, 0)
        lw_rx = b.rxpk(bytes([0x80]) + lorawan[1:], snr=3.0)  # confirmed data up
        mixed = b.push([b.rxpk(sen_up), lw_rx], Stat(received=2, received_ok=2, forwarded=2))
        assert gw.wait_frames(1)
        from pamoja.gateway import parse
        ups = [parse(d) for d, addr in ns.got if addr == ns.pull_addr[GW_B] and d[3] == 0]
        assert ups, ns.got
        relayed = ups[-1]
        assert [bytes(r.payload) for r in relayed.packets] == [bytes([0x80]) + lorawan[1:]]
        assert relayed.gateway == GW_B and relayed.status.received == 2
        assert json.loads(mixed[12:])["rxpk"][1] == json.loads(
            [d for d, addr in ns.got if addr == ns.pull_addr[GW_B] and d[3] == 0][-1][12:])["rxpk"][0]
        assert not any(sen_up == base64.b64decode(r["data"]) for d, _ in ns.got if d[3] == 0
                       for r in json.loads(d[12:]).get("rxpk", []))
        # the server's downlink for B reaches B unchanged, and B's TX_ACK reaches the server
        tx = Txpk(922_000_000, b"\x60" + bytes(12), link=link(9, 125_000), immediate=False,
                  timestamp_us=b.counter() + 500_000, invert_polarity=True)
        sent = ns.send_downlink(GW_B, 0x4242, tx)
        assert b.wait(lambda: any(raw == sent for raw, *_ in b.downlinks)), gw.log()
        assert not any(raw == sent for raw, *_ in a.downlinks)
        assert ns_wait(lambda: any(d[3] == 5 and d[1:3] == b"\x42\x42" and addr == ns.pull_addr[GW_B]
                                   for d, addr in ns.got))
    finally:
        a.close()
        b.close()
        rc = gw.stop()
        ns.close()
    assert rc == 0


def ns_wait(what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.02)
    return bool(what())
