"""Forwarder objects from gateway.toml's [forwarders.*] tables."""
import logging

log = logging.getLogger("sen.gateway")


def build_forwarders(cfg):
    """Forwarder objects from config; an unreachable MQTT broker is logged, not fatal."""
    out = []
    nodes = cfg.nodes
    for name, t in cfg.forwarders.items():
        if name == "mqtt":
            from sen.gateway.forwarders.mqtt import MqttForwarder, broker_reachable  # lazy: paho-mqtt only when configured
            host, port = t["host"], int(t.get("port", 1883))
            if not broker_reachable(host, port):
                log.warning("forwarders.mqtt: broker %s:%s is unreachable at start-up — the gateway keeps receiving "
                            "and queues; check [forwarders.mqtt] host/port or start the broker", host, port)
            out.append(MqttForwarder(host, port, cfg.gateway_id, t.get("topic_prefix", "sen"), t.get("username"),
                                     t.get("password"), tls=bool(t.get("tls", False))))
        elif name == "ngsi_ld":
            from sen.gateway.forwarders.ngsi_ld import NgsiLdForwarder  # lazy: its client library only when configured
            out.append(NgsiLdForwarder(t["url"], nodes, cfg.location, t.get("tenant")))
        elif name == "sensorthings":
            from sen.gateway.forwarders.sensorthings import SENSOR_DOC, SensorThingsForwarder  # lazy: its client library only when configured
            out.append(SensorThingsForwarder(t["url"], nodes, cfg.location, t.get("version"),
                                             sensor_doc=t.get("sensor_metadata", SENSOR_DOC)))
        elif name == "circular10":
            from sen.gateway.forwarders.circular10 import Circular10Forwarder  # lazy: its client library only when configured
            out.append(Circular10Forwarder(t["host"], int(t.get("port", 21)), t.get("user", "anonymous"),
                                           t.get("password", ""), t.get("province", "DN"), t.get("facility", "SEN"),
                                           nodes))
    return out
