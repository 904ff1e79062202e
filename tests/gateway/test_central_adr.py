"""The central ingest's ADR advice in a running gateway's ACKs (docs/frame-format.md section 9):
a GatewayService in uplink mode on a real mosquitto gets retained advice through its uplink
publisher's subscription, and its ACKs carry it when it is fresh, at an SF the gateway's
radios hear, and not overruled by a pin; otherwise the gateway's own ADR decides, as before.
A malformed advice message is dropped with one warning and changes nothing."""
import json
import logging
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from sen import adr_advice
from sen.gateway.config import GatewayConfig, RadioConfig
from sen.gateway.downlink_decode import decode_downlink
from sen.gateway.key_store import KeyStore
from sen.gateway.link_history import LinkHistory
from sen.gateway.radio.base import InjectBackend
from sen.gateway.rx_meta import RxMeta
from sen.gateway.status_data import status_data
from sen.gateway.store import Store
from sen.firmware_modules import load
from sen.testkit.synthetic import Fleet

frame = load("frame")
T0 = 1767225600.4
OWN = {"sf": 9, "tx_backoff_db": 0}  # own ADR at SNR -9 dB: SF10 wanted, SF9 the slowest heard


class UplinkGateway:
    """GatewayService in uplink mode, two radios (SF7 and SF9), frames handed in per radio."""

    def __init__(self, tmp, port, fleet):
        from sen.gateway.service import GatewayService
        self.fleet = fleet
        keys = KeyStore(tmp / "keys.json", create=True)
        fleet.write_keys(keys)
        self.cfg = GatewayConfig(path=tmp / "gateway.toml", gateway_id="gw-c", data_dir=tmp / "data",
                                 key_file=tmp / "keys.json", fsync=False, mode="uplink",
                                 uplink={"host": "127.0.0.1", "port": port})
        self.radios = {sf: InjectBackend(RadioConfig("emulated", f"r{sf}", sf=sf), "gw-c", None) for sf in (7, 9)}
        self.svc = GatewayService(self.cfg, backends=list(self.radios.values()), forwarders=[])
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()

    def send(self, node, counter, sf=9, snr=-9.0, confirmed=True):
        flags = (frame.UP_BOOT if counter == 0 else 0) | (frame.UP_CONFIRMED if confirmed else 0)
        radio = self.radios[sf]
        n = len(radio.sent)
        f = self.fleet.framers[node].encode(counter, flags, [(0, [(5, 30, 0)])])
        self.svc.on_frame(f, RxMeta("gw-c", T0 + 60 * counter, sf=sf, snr=snr, rssi=-100.0, radio=radio.name))
        if not confirmed:
            return None
        deadline = time.monotonic() + 10
        while len(radio.sent) == n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(radio.sent) == n + 1, "no ACK"
        return decode_downlink(radio.sent[-1], node, self.fleet.keys[node], counter).config

    def history(self, node):
        """An ADR history of 4 frames at SF9, -9 dB (counters 0-3, the last one confirmed)."""
        for c in range(3):
            self.send(node, c, confirmed=False)
        return self.send(node, 3)

    def acks(self, source):
        return self.svc.metrics.registry.get_sample_value("sen_gateway_adr_acks_total", {"source": source})

    def stop(self):
        self.svc.stopping.set()
        self.thread.join(30)
        assert self.svc.stopped.is_set()


class Central:
    """The ingest's side of the topic, as a plain MQTT client: retained QoS 1 publishes."""

    def __init__(self, port):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="central-test", protocol=mqtt.MQTTv5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def publish(self, topic, payload: bytes):
        self.c.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def advise(self, node, sf, backoff, age_s=0.0):
        topic = adr_advice.topic("sen", node)
        payload = adr_advice.encode(adr_advice.Advice(node, sf, backoff, 20, time.time() - age_s))
        self.publish(topic, payload)
        return adr_advice.decode(topic, payload)  # as the gateway will hold it (computed to the ms)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def rig(tmp_path, mosquitto):
    central = Central(mosquitto.port)
    gw = UplinkGateway(tmp_path, mosquitto.port, Fleet(8, seed=5))
    yield gw, central
    gw.stop()
    central.stop()


def test_fresh_hearable_advice_goes_into_the_ack_and_own_adr_takes_over_after(rig):
    gw, central = rig
    book = gw.svc.acks.central
    assert gw.history(1) == OWN  # no advice yet: the gateway's own ADR, as before
    a = central.advise(1, 7, 4)
    assert _wait(lambda: book.get(1) == a), "advice did not reach the gateway"
    assert gw.send(1, 4) == {"sf": 7, "tx_backoff_db": 4}
    # the node follows (SF7, through the SF7 radio): still the central choice
    assert gw.send(1, 5, sf=7, snr=-1.0) == {"sf": 7, "tx_backoff_db": 4}
    link, _ = LinkHistory(gw.svc.store.con).load(1)
    assert (link.commanded.sf, link.commanded.tx_backoff_db) == (7, 4)  # own ADR knows what the node was told
    assert status_data(gw.cfg)["nodes"][0]["link"]["source"] == "central"
    # new advice replaces the old one
    b = central.advise(1, 7, 8)
    assert _wait(lambda: book.get(1) == b)
    assert gw.send(1, 6, sf=7, snr=-1.0) == {"sf": 7, "tx_backoff_db": 8}
    # the node stopped hearing ACKs at SF7 and went back to SF9 on its own: the advice from
    # before must not send it straight back; own ADR waits for 4 new frames
    assert "sf" not in gw.send(1, 9, sf=9, snr=-9.0)
    assert gw.acks("central") == 3 and gw.acks("own") == 1


def test_stale_or_unhearable_advice_falls_back_to_own_adr(rig):
    gw, central = rig
    book = gw.svc.acks.central
    stale = central.advise(2, 7, 4, age_s=3700)  # [adr] central_max_age_s is 3600
    unhearable = central.advise(3, 8, 4)  # the gateway's radios hear SF7 and SF9 only
    assert _wait(lambda: book.get(2) == stale and book.get(3) == unhearable)
    assert gw.history(2) == OWN
    assert gw.history(3) == OWN
    assert status_data(gw.cfg)["nodes"][1]["link"]["source"] == "own"
    # the same advice, younger than a shorter limit of this gateway's: used
    gw.svc.acks.central_max_age_s = 7200
    assert gw.send(2, 4) == {"sf": 7, "tx_backoff_db": 4}
    assert gw.acks("central") == 1 and gw.acks("own") == 2


def test_central_false_and_a_pin_win_over_advice(rig):
    gw, central = rig
    book = gw.svc.acks.central
    a4, a5 = central.advise(4, 7, 4), central.advise(5, 7, 4)
    assert _wait(lambda: book.get(4) == a4 and book.get(5) == a5)
    # the operator's pin (`sen gateway node-config 4 --sf 9`, another process)
    other = Store(gw.cfg.store_path, check=False)
    LinkHistory(other.con).set_pin(4, 9)
    other.close()
    assert gw.history(4) == {"sf": 9, "tx_backoff_db": 0}
    gw.svc.acks.central_enabled = False  # [adr] central = false
    assert gw.history(5) == OWN
    gw.svc.acks.central_enabled = True
    assert gw.send(5, 4) == {"sf": 7, "tx_backoff_db": 4}
    sources = {n["node"]: n["link"]["source"] for n in status_data(gw.cfg)["nodes"]}
    assert sources == {4: "pinned", 5: "central"}
    assert (gw.acks("pinned"), gw.acks("own"), gw.acks("central")) == (1, 1, 1)


def test_withdrawn_advice_is_forgotten(rig):
    gw, central = rig
    book = gw.svc.acks.central
    a = central.advise(6, 7, 4)
    assert _wait(lambda: book.get(6) == a)
    central.publish(adr_advice.topic("sen", 6), b"")  # the ingest deletes the retained advice
    assert _wait(lambda: book.get(6) is None)
    assert gw.history(6) == OWN


def test_malformed_retained_advice_is_logged_and_dropped(tmp_path, mosquitto, caplog):
    central = Central(mosquitto.port)
    bad = {
        "sen/adr/1": b"{not json",
        "sen/adr/2": json.dumps({"node": 2, "sf": 13, "tx_backoff_db": 4, "frames": 20, "computed": time.time(),
                                 "v": 1}).encode(),
        "sen/adr/3": json.dumps({"node": 4, "sf": 7, "tx_backoff_db": 4, "frames": 20, "computed": time.time(),
                                 "v": 1}).encode(),
        "sen/adr/003": adr_advice.encode(adr_advice.Advice(3, 7, 4, 20, time.time())),
    }
    for topic, payload in bad.items():  # on the broker before the gateway subscribes: retained
        central.publish(topic, payload)
    with caplog.at_level(logging.WARNING, logger="sen.gateway.adr"):
        gw = UplinkGateway(tmp_path, mosquitto.port, Fleet(8, seed=5))
        try:
            book = gw.svc.acks.central
            assert _wait(lambda: book.refused == 4), book.refused
            good = central.advise(5, 7, 4)  # and a valid one after them still arrives
            assert _wait(lambda: book.get(5) == good)
            assert len(book) == 1 and gw.thread.is_alive()
            assert gw.history(1) == OWN and gw.history(5) == {"sf": 7, "tx_backoff_db": 4}
        finally:
            gw.stop()
            central.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "sen.gateway.adr"]
    assert len(lines) == 4, lines
    want = {"sen/adr/1": "payload is not JSON", "sen/adr/2": "sf 13 is outside 7..12",
            "sen/adr/3": "payload is for node 4, the topic for node 3", "sen/adr/003": "is not <prefix>/adr/<node>"}
    for topic, problem in want.items():
        assert any(f"on {topic} dropped" in line and problem in line for line in lines), (topic, lines)
