"""docs/mosquitto.conf.example and docs/mosquitto-acl.example on a real mosquitto: TLS,
per-gateway passwords, topic ACLs. Gateways publish through the uplink publisher, the
ingest reads through its shared subscription; a gateway cannot publish as another, nor
forge the central ADR advice."""
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from sen import adr_advice
from sen.gateway.central_adr import CentralAdvice
from sen.gateway.raw_log import RawLog
from sen.testkit.synthetic import Fleet
from sen.gateway import uplink_wire as wire
from sen.testkit.loopback import free_port, wait_port
from sen.ingest.mqtt_consumer import SharedConsumer
from sen.gateway.uplink_publisher import UplinkPublisher

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _certs(d: Path):
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sen-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "broker.crt")


@pytest.fixture
def secure_broker(tmp_path):
    d = tmp_path / "broker"
    d.mkdir()
    _certs(d)
    pw = d / "sen.passwd"
    for user, password in (("gw-01", "pw-gw-01"), ("gw-02", "pw-gw-02"), ("ingest", "pw-ingest")):
        subprocess.run(["mosquitto_passwd", *(["-c"] if not pw.exists() else []), "-b", str(pw), user, password],
                       check=True, capture_output=True)
    port = free_port()
    conf = (DOCS / "mosquitto.conf.example").read_text()
    conf = (conf.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
            .replace("listener 1883 127.0.0.1\n", "")
            .replace("/etc/mosquitto/certs/", f"{d}/")
            .replace("/etc/mosquitto/sen.passwd", str(pw))
            .replace("/etc/mosquitto/sen.acl", str(DOCS / "mosquitto-acl.example"))
            .replace("/var/lib/mosquitto/", f"{d}/")
            .replace("log_dest syslog", "log_dest stdout")) + "user root\n"
    assert "allow_anonymous false" in conf and "acl_file" in conf and "certfile" in conf
    (d / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")], stdout=open(d / "log", "wb"),
                            stderr=subprocess.STDOUT)
    wait_port(port)
    yield port, str(d / "ca.crt")
    proc.terminate()
    proc.wait(10)


def _wait(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_tls_passwords_and_acls(tmp_path, secure_broker):
    port, ca = secure_broker
    consumer = SharedConsumer("127.0.0.1", port, "ingest-t", username="ingest", password="pw-ingest", tls=True,
                              ca_file=ca).start()
    assert _wait(consumer.subscribed.is_set), consumer.last_error
    log = RawLog(tmp_path / "gw-01" / "raw.log", fsync=False)
    fleet = Fleet(5, seed=4, gateway_id="gw-01")
    items = list(fleet.frames(20))
    log.append(items)
    pub = UplinkPublisher(log.path, "gw-01", "127.0.0.1", port, username="gw-01", password="pw-gw-01", tls=True,
                          ca_file=ca).start()
    try:
        got = []
        assert _wait(lambda: pub.cursor.value == log.end), pub.last_error
        assert _wait(lambda: consumer.queue.qsize() >= 20)
        while not consumer.queue.empty():
            got.append(consumer.queue.get())
        consumer.ack(got)
        decoded = [wire.decode(m.topic, m.payload) for m in got]
        assert [f for f, _ in decoded] == [f for f, _ in items]
        assert {m.topic for m in got} == {f"sen/uplink/gw-01/{n}" for n in range(1, 6)}

        # gw-01's password cannot publish as gw-02 (ACL pattern sen/uplink/%u/+) ...
        spoof = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spoof", protocol=mqtt.MQTTv5)
        spoof.username_pw_set("gw-01", "pw-gw-01")
        spoof.tls_set(ca_certs=ca)
        spoof.connect("127.0.0.1", port)
        spoof.loop_start()
        f, m = items[0]
        spoof.publish("sen/uplink/gw-02/1", wire.encode(f, replace(m, gateway_id="gw-02")), qos=1).wait_for_publish(5)
        # ... and a record claiming gw-02 on gw-01's own topic is refused by the ingest
        spoof.publish("sen/uplink/gw-01/1", wire.encode(f, replace(m, gateway_id="gw-02")), qos=1).wait_for_publish(5)
        assert _wait(lambda: consumer.queue.qsize() >= 1)
        time.sleep(0.5)
        late = []
        while not consumer.queue.empty():
            late.append(consumer.queue.get())
        assert [x.topic for x in late] == ["sen/uplink/gw-01/1"]
        with pytest.raises(wire.BadUplink) as exc:
            wire.decode(late[0].topic, late[0].payload)
        assert exc.value.reason == wire.GATEWAY_MISMATCH
        spoof.loop_stop()
        spoof.disconnect()

        # a wrong password, or no TLS, gets no connection at all; the right ones do
        def connects(user, password, tls):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{user}-{tls}", protocol=mqtt.MQTTv5)
            c.username_pw_set(user, password)
            if tls:
                c.tls_set(ca_certs=ca)
            try:
                c.connect("127.0.0.1", port)
            except Exception:
                return False
            c.loop_start()
            ok = _wait(c.is_connected, 3)
            c.loop_stop()
            c.disconnect()
            return ok

        assert connects("gw-02", "pw-gw-02", tls=True)
        assert not connects("gw-02", "wrong", tls=True)
        assert not connects("gw-02", "pw-gw-02", tls=False)
    finally:
        pub.stop()
        consumer.stop()
        log.close()


def test_only_the_ingest_writes_adr_advice_and_gateways_read_it(tmp_path, secure_broker):
    """docs/mosquitto-acl.example: <prefix>/adr/<node> is the ingest's to write; a gateway
    reads it through its uplink publisher, and its own password cannot forge advice."""
    port, ca = secure_broker
    book = CentralAdvice()
    log = RawLog(tmp_path / "gw-01" / "raw.log", fsync=False)
    pub = UplinkPublisher(log.path, "gw-01", "127.0.0.1", port, username="gw-01", password="pw-gw-01", tls=True,
                          ca_file=ca, advice=book).start()
    clients = []

    def client(user, password):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"adr-{user}", protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        c.tls_set(ca_certs=ca)
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append(c)
        return c

    try:
        assert _wait(pub.connected.is_set), pub.last_error
        forged = adr_advice.encode(adr_advice.Advice(7, 12, 0, 20, time.time()))
        client("gw-02", "pw-gw-02").publish(adr_advice.topic("sen", 7), forged, qos=1, retain=True).wait_for_publish(5)
        real = adr_advice.encode(adr_advice.Advice(8, 7, 4, 20, time.time()))
        client("ingest", "pw-ingest").publish(adr_advice.topic("sen", 8), real, qos=1, retain=True).wait_for_publish(5)
        assert _wait(lambda: book.get(8) is not None)
        assert book.get(8) == adr_advice.decode("sen/adr/8", real)
        time.sleep(0.5)
        assert book.get(7) is None and len(book) == 1  # the gateway's forgery never reached anyone
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        pub.stop()
        log.close()
