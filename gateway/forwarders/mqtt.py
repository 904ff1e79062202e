"""MQTT forwarder (paho-mqtt): one JSON message per sample, QoS 1, topic and payload as
documented in docs/mqtt-topics.md, with per-gateway rx metadata the way ChirpStack gives it."""
import socket
import threading

import paho.mqtt.client as mqtt

from sen.gateway.channels import qflag_names
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.json_out import dumps


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
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda c, u, f, rc, p=None: self.connected.clear()
        # connect_async + loop_start: an unreachable broker at start-up never blocks reception
        self.client.connect_async(host, port, keepalive)
        self.client.loop_start()

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
