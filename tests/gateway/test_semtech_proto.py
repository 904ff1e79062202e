"""Semtech UDP datagrams: Sen's reader and writer (sen/semtech_udp.py) against the
protocol document's own examples and against pamoja-gateway, an independent implementation."""
import base64
import json
import random
from pathlib import Path

import pytest
from pamoja.gateway import Crc, Packet, PacketKind, Rxpk, Stat, TxStatus, encode, parse
from pamoja.lora import link

from sen import semtech_udp as sp
from sen.gateway.radio.downlink_plan import Copy, DutyCycle, airtime_s, txpk
from sen.gateway.radio.semtech_udp import classify
from sen.paths import FRAME_VECTORS

EUI = "aa555a0000000000"
# PROTOCOL.md section 4, third rxpk (LoRa, SF10), and the stat example
DOC_RXPK = """{"time":"2013-03-31T16:21:17.532038Z","tmst":3316387610,"chan":0,"rfch":0,"freq":863.00981,
"stat":1,"modu":"LORA","datr":"SF10BW125","codr":"4/7","rssi":-38,"lsnr":5.5,"size":32,
"data":"ysgRl452xNLep9S1NTIg2lomKDxUgn3DJ7DE+b00Ass"}"""
DOC_FSK = """{"time":"2013-03-31T16:21:17.530974Z","tmst":3512348514,"chan":9,"rfch":1,"freq":869.1,"stat":1,
"modu":"FSK","datr":50000,"rssi":-75,"size":16,"data":"VEVTVF9QQUNLRVRfMTIzNA=="}"""
DOC_STAT = """{"time":"2014-01-12 08:59:28 GMT","lati":46.24000,"long":3.25230,"alti":145,"rxnb":2,"rxok":2,
"rxfw":2,"ackr":100.0,"dwnb":2,"txnb":2,"temp": 23.2}"""


def test_protocol_document_examples():
    body = ('{"rxpk":[%s,%s],"stat":%s}' % (DOC_RXPK, DOC_FSK, DOC_STAT)).encode()
    d = sp.parse(bytes([2, 0xAB, 0xCD, 0]) + bytes.fromhex(EUI) + body)
    assert (d.version, d.token, d.kind, d.eui) == (2, 0xABCD, sp.PUSH_DATA, EUI)
    rx = sp.parse_rxpk(d.body["rxpk"][0])
    assert (rx.tmst, rx.freq_hz, rx.sf, rx.bw_hz, rx.codr, rx.rssi, rx.snr, rx.stat) == (
        3316387610, 863_009_810, 10, 125_000, "4/7", -38.0, 5.5, 1)
    assert len(rx.payload) == 32 and rx.meta["time"] == "2013-03-31T16:21:17.532038Z" and "data" not in rx.meta
    assert sp.parse_rxpk(d.body["rxpk"][1]) is None  # FSK: never a Sen frame
    assert d.body["stat"]["rxok"] == 2
    assert sp.ack_for(d) == bytes([2, 0xAB, 0xCD, sp.PUSH_ACK])


@pytest.mark.parametrize("version", [1, 2])
def test_pamoja_datagrams_read_by_sen_and_sen_answers_read_by_pamoja(version):
    rng = random.Random(version)
    heard = [Rxpk(921_400_000 + 200_000 * i, rng.randbytes(rng.randint(10, 60)), link=link(7 + i, 125_000),
                  rssi_dbm=-60 - 10 * i, snr_db=7.5 - 3 * i, timestamp_us=rng.randrange(2 ** 32), channel=i,
                  crc=Crc.OK if i < 3 else Crc.FAILED) for i in range(4)]
    stat = Stat(received=4, received_ok=3, forwarded=4, acknowledged_percent=100.0, latitude_deg=16.07,
                longitude_deg=108.22, altitude_m=9, downlinks=1, transmitted=1)
    raw = bytearray(encode(Packet(PacketKind.PUSH_DATA, 0x1234, gateway=EUI, packets=heard, status=stat)))
    raw[0] = version  # v1 datagrams have the same layout
    d = sp.parse(bytes(raw))
    assert (d.version, d.kind, d.token, d.eui) == (version, sp.PUSH_DATA, 0x1234, EUI)
    for h, obj in zip(heard, d.body["rxpk"]):
        rx = sp.parse_rxpk(obj)
        assert rx.payload == bytes(h.payload) and rx.tmst == h.timestamp_us and rx.freq_hz == h.frequency_hz
        assert (rx.sf, rx.bw_hz) == (h.link.spreading_factor, h.link.bandwidth_hz)
        assert rx.rssi == h.rssi_dbm and rx.snr == pytest.approx(h.snr_db) and rx.meta["chan"] == h.channel
        assert rx.stat == (1 if h.crc == Crc.OK else -1)
    assert d.body["stat"]["lati"] == 16.07 and d.body["stat"]["rxok"] == 3
    pull = bytearray(encode(Packet(PacketKind.PULL_DATA, 0x0102, gateway=EUI)))
    pull[0] = version
    p = sp.parse(bytes(pull))
    assert (p.kind, p.eui) == (sp.PULL_DATA, EUI)
    # answers carry the gateway's version; pamoja 0.2.0 reads version 2 only
    assert sp.ack_for(d) == bytes([version, 0x12, 0x34, 1]) and sp.ack_for(p) == bytes([version, 1, 2, 4])
    if version == 2:
        back = parse(sp.ack_for(d))
        assert (PacketKind(back.kind), back.token) == (PacketKind.PUSH_ACK, 0x1234)
        back = parse(sp.ack_for(p))
        assert (PacketKind(back.kind), back.token) == (PacketKind.PULL_ACK, 0x0102)
    # Sen's re-encoded PUSH_DATA (the relay's, with Sen's rxpk taken out) reads the same in pamoja
    again = parse(sp.push_data(2, 0x1234, EUI, {"rxpk": d.body["rxpk"][1:],
                                                                              "stat": d.body["stat"]}))
    assert [bytes(r.payload) for r in again.packets] == [bytes(h.payload) for h in heard[1:]]
    assert again.gateway == EUI and again.status.received_ok == 3


def test_pull_resp_read_by_pamoja_and_tx_ack_from_pamoja_read_by_sen():
    c = Copy(EUI, 0xFFFF_0000, 0.0, -90.0, 5.0, 922_200_000, 10, 125_000, "4/5")
    payload = bytes(range(14))
    raw = sp.pull_resp(2, 0x0BAD, txpk(c, payload, 0.1, 14))
    p = parse(raw)
    t = p.transmit
    assert (PacketKind(p.kind), p.token) == (PacketKind.PULL_RESP, 0x0BAD)
    assert t.timestamp_us == (0xFFFF_0000 + 100_000) & 0xFFFFFFFF  # wraps like the concentrator's counter
    assert not t.immediate and not t.invert_polarity and not t.without_crc
    assert (t.frequency_hz, t.link.spreading_factor, t.link.bandwidth_hz, t.power_dbm) == (922_200_000, 10, 125_000, 14)
    assert bytes(t.payload) == payload and t.preamble_symbols == 8
    assert sp.pull_resp(1, 0x0BAD, {})[1:3] == b"\x00\x00"  # v1: no token, no TX_ACK
    for status in TxStatus:
        d = sp.parse(encode(Packet(PacketKind.TX_ACK, 0x0BAD, gateway=EUI, tx_status=status)))
        assert (d.kind, d.token, d.eui) == (sp.TX_ACK, 0x0BAD, EUI)
        assert sp.tx_ack_result(d) == ((None, None) if status == TxStatus.NONE else (status.value, None))
    # the forwarder's own forms: no JSON at all, and a warning (PROTOCOL.md section 6)
    assert sp.tx_ack_result(sp.parse(bytes([2, 0, 1, 5]) + bytes.fromhex(EUI))) == (None, None)
    warn = sp.parse(bytes([2, 0, 1, 5]) + bytes.fromhex(EUI) + b'{"txpk_ack":{"warn":"TX_POWER","value":20}}\x00')
    assert sp.tx_ack_result(warn) == (None, "TX_POWER=20")


def test_sen_frames_and_lorawan_frames_told_apart():
    vectors = json.loads(Path(FRAME_VECTORS).read_text())
    ups = [bytes.fromhex(v["frame"]) for v in vectors["uplink_valid"]]
    downs = [bytes.fromhex(v["frame"]) for v in vectors["downlink_valid"]]
    assert ups and all(classify(f) == "sen" for f in ups)
    assert downs and all(classify(f) == "sen_downlink" for f in downs if len(f) >= 10)
    rng = random.Random(5)
    for mtype in range(8):  # every LoRaWAN MType with Major = LoRaWAN R1 and RFU = 0
        mhdr = mtype << 5
        f = bytes([mhdr]) + rng.randbytes(20)
        assert classify(f) == ("sen" if mhdr == 0x20 else "other")  # 0x20 = Join-Accept, a downlink
    assert classify(bytes([0x31]) + bytes(15)) == "sen_downlink"


def test_duty_cycle_keeps_a_gateway_under_ten_percent():
    d = DutyCycle(0.10)
    c = Copy(EUI, 0, 0.0, -90.0, 5.0, 921_400_000, 12, 125_000, "4/5")
    air = airtime_s(20, c)  # ~1.3 s at SF12
    sent = 0
    while d.allows(air, now=100.0):
        d.add(air, now=100.0)
        sent += 1
    assert sent == int(360 // air) and d.used(now=100.0) <= 0.10
    assert d.allows(air, now=100.0 + 3601)  # an hour later the window has emptied


def test_bad_datagrams_name_the_problem():
    cases = {b"\x02": "too short", b"\x03\x00\x00\x00": "version 3", b"\x02\x00\x00\x00\x01": "no 8-byte gateway EUI",
             b"\x02\x00\x00\x00" + bytes(8) + b"[1]": "not an object", b"\x02\x00\x00\x09": "0x09 is unknown"}
    for raw, needle in cases.items():
        with pytest.raises(sp.BadDatagram, match=needle):
            sp.parse(raw)
    ok = {"tmst": 5, "freq": 921.4, "datr": "SF9BW125", "rssi": -80, "data": base64.b64encode(bytes(12)).decode()}
    for change, needle in (({"size": 13}, "differs"), ({"tmst": -1}, "32-bit"), ({"freq": "x"}, "not a number"),
                           ({"datr": "SF9"}, "LoRa data rate"), ({"data": "!!"}, "not base64")):
        with pytest.raises(sp.BadDatagram, match=needle):
            sp.parse_rxpk(ok | change)


def test_ack_start_is_refused_past_the_nodes_window():
    # the node listens for an ACK starting by 100 ms + rx_late_ms (60 by default) after TxDone
    from sen.gateway.radio.downlink_plan import WINDOW_S, Copy, choose_delay
    c = Copy(eui="aa555a0000000001", tmst=0, freq_hz=921_400_000, sf=9, bw_hz=125_000, codr="4/5", rssi=-90.0,
             snr=5.0, arrived=10.0)
    assert WINDOW_S == 0.16
    assert choose_delay(c, 10.02, 0.1, 0.06) == 0.1                # fast: the configured delay
    assert choose_delay(c, 10.1, 0.1, 0.06) == pytest.approx(0.16)  # just in time
    assert choose_delay(c, 10.11, 0.1, 0.06) is None               # the node stopped listening
    assert choose_delay(c, 10.11, 0.1, 0.06, window_s=0.4) == pytest.approx(0.17)  # nodes with rx_late_ms 300
