"""MQTT forwarder (paho-mqtt): one JSON message per sample, QoS 1, topic and payload as
documented in docs/mqtt-topics.md, with per-gateway rx metadata the way ChirpStack gives it."""
import logging
import socket
import threading
import time

import paho.mqtt.client as mqtt

from sen.channels import qflag_names
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.json_out import dumps

log = logging.getLogger("sen.gateway.forwarders.mqtt")


def topic_for(prefix: str, gateway_id: str, node_id: int) -> str:
    return f"{prefix}/gateway/{gateway_id}/node/{node_id}/event/up"


def payload_for(sample, gateway_id: str) -> dict:
    return {
        "id": sample.id,
        "gatewayId": gateway_id,
        "nodeId": sample.node_id,
        "counter": sample.counter,
        "sample": sample.sample,
        "time": iso(sample.time),
        "readings": [
            {"id": sample.reading_id(r), "channel": r.channel.name, "channelId": r.channel.id, "unit": r.channel.unit,
             "value": r.value, "raw": r.raw, "qflags": r.qflags, "flags": qflag_names(r.qflags)}
            for r in sample.readings],
        "object": {r.channel.name: r.value for r in sample.readings},
        "rxInfo": [dict(c, time=iso(c["time"])) for c in sample.rx],
        "txInfo": {"frequency": sample.tx.get("frequency"),
                   "modulation": {"lora": {"bandwidth": sample.tx.get("bandwidth"),
                                           "spreadingFactor": sample.tx.get("spreadingFactor"),
                                           "codeRate": "CR_4_5"}}},
    }


def broker_reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class MqttForwarder(Forwarder):
    kind = "mqtt"
    # send() waits up to 1 s for paho's own (capped) reconnect, so the runner may retry often:
    # its probe is that local wait, not a hit on the broker
    max_retry_s = 0.5
    batch_readings = 3000

    def __init__(self, host: str, port: int, gateway_id: str, topic_prefix: str = "sen", username: str | None = None,
                 password: str | None = None, client_id: str | None = None, keepalive: int = 30,
                 ack_timeout: float = 10.0, tls: bool = False):
        self.gateway_id = gateway_id
        self.prefix = topic_prefix
        self.ack_timeout = ack_timeout
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"sen-gw-{gateway_id}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        # capped at 2 s: a reconnect to a LAN broker is cheap, and delivery must resume within
        # 2 s of the broker's return however long it was away (paho's default grows to 120 s)
        self.client.reconnect_delay_set(0.5, 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.down_since = None
        # connect_async + loop_start: an unreachable broker at start-up never blocks reception
        self.client.connect_async(host, port, keepalive)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc.is_failure:
            return
        if self.down_since is not None:
            log.warning("forwarders.mqtt: broker connection recovered after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, rc, props=None):
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.connected.clear()

    def send(self, samples):
        if not self.connected.wait(1.0):
            raise ConnectionError("not connected to the MQTT broker")
        infos = []
        for s in samples:
            body = dumps(payload_for(s, self.gateway_id))
            info = self.client.publish(topic_for(self.prefix, self.gateway_id, s.node_id), body, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
            infos.append(info)
        for info in infos:
            info.wait_for_publish(self.ack_timeout)
            if not info.is_published():
                raise TimeoutError("broker did not acknowledge a QoS 1 publish")

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
