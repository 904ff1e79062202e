"""MQTT forwarder against a real mosquitto: payload layout, unreachable broker at start-up,
a simulated 24 h outage that loses nothing and drains far faster than frames arrive."""
import json
import math
import time

from sen.bench.gateway_receivers import Mosquitto, MqttCollector, free_port
from sen.gateway.forwarders.mqtt import MqttForwarder
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway


def test_mqtt_payloads_topics_and_rx_metadata(tmp_path, mosquitto):
    sub = MqttCollector(mosquitto.port)
    fleet = Fleet(4, seed=3)
    gw = LiveGateway(tmp_path, fleet, [MqttForwarder("127.0.0.1", mosquitto.port, "gw-test")]).start()
    items = list(fleet.frames(40))
    # a second radio hears node 1's first frame too: one message, two rxInfo entries
    f0, m0 = items[0]
    from dataclasses import replace
    gw.inject_all([items[0], (f0, replace(m0, rssi=-60.0, radio="r1", gateway_id="gw-test"))] + items[1:])
    gw.wait_stored(40)
    assert sub.wait_for(40, 20)
    gw.stop()
    sub.close()
    assert set(sub.deliveries.values()) == {1}
    msg = sub.by_id["1-0-0"]
    assert sub.topics["1-0-0"] == "sen/gateway/gw-test/node/1/event/up"
    assert msg["nodeId"] == 1 and msg["counter"] == 0 and msg["time"].endswith("Z")
    assert {r["channel"] for r in msg["readings"]} == {"air_temp", "rh", "pressure", "pm25", "pm10", "battery"}
    units = {r["channel"]: r["unit"] for r in msg["readings"]}
    assert units["pm25"] == "µg/m³" and units["air_temp"] == "°C" and units["pressure"] == "hPa"
    assert all(r["flags"] == ["ok"] and r["value"] == r["raw"] for r in msg["readings"])
    assert sorted(c["rssi"] for c in msg["rxInfo"]) == sorted([m0.rssi, -60.0])
    assert msg["txInfo"]["frequency"] == 921_400_000
    assert msg["txInfo"]["modulation"]["lora"]["spreadingFactor"] == 7


def test_24h_outage_loses_nothing_and_drains_10x_faster(tmp_path):
    port = free_port()
    # The collector's QoS 1 session exists before the outage (the broker keeps it across its
    # restart), so what the forwarder sends the instant the broker is back is queued for it
    # rather than published to nobody before the collector could subscribe.
    broker = Mosquitto(tmp_path, port, persistence=True).start()
    MqttCollector(port).close()
    broker.stop()
    # 30 nodes, one frame every 5 minutes, for a simulated 24 h while the broker is down
    fleet = Fleet(30, seed=4, interval_s=300)
    n = 30 * 288
    gw = LiveGateway(tmp_path, fleet, [MqttForwarder("127.0.0.1", port, "gw-test")]).start()
    items = list(fleet.frames(n))
    span_s = items[-1][1].time - items[0][1].time
    assert span_s >= 86_000
    gw.inject_all(items)
    gw.wait_stored(n, 60)
    time.sleep(0.5)
    assert gw.depth() == {"mqtt": n * 6}  # everything waits in the outbox
    broker.start()
    try:
        sub = MqttCollector(port)
        t0 = time.monotonic()
        assert sub.wait_for(n, 120), f"only {len(sub.by_id)} of {n} delivered"
        drain_s = time.monotonic() - t0
        gw.stop()
        sub.close()
    finally:
        broker.stop()
    assert len(sub.by_id) == n and set(sub.deliveries.values()) == {1}
    arrival_rate = n / span_s
    drain_rate = n / drain_s
    print(f"\noutage: {n} frames over {span_s / 3600:.1f} simulated h; drained in {drain_s:.2f}s "
          f"({drain_rate:.0f}/s vs {arrival_rate:.2f}/s arriving, x{drain_rate / arrival_rate:.0f})")
    assert drain_rate >= 10 * arrival_rate


def _strict(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_radio_metadata_still_gives_strict_json(tmp_path, mosquitto):
    """Radios that report inf/nan RSSI or SNR: every message parses with a strict JSON parser
    (Python's json.loads refusing NaN/Infinity), and the unknown figure is null."""
    from dataclasses import replace
    sub = MqttCollector(mosquitto.port, client_id="strict-collector")
    fleet = Fleet(3, seed=8)
    gw = LiveGateway(tmp_path, fleet, [MqttForwarder("127.0.0.1", mosquitto.port, "gw-test")]).start()
    bad = [math.inf, -math.inf, math.nan]
    items = [(f, replace(m, rssi=bad[i % 3], snr=bad[(i + 1) % 3])) for i, (f, m) in enumerate(fleet.frames(30))]
    gw.inject_all(items)
    gw.wait_stored(30)
    assert sub.wait_for(30, 20)
    gw.stop()
    sub.close()
    assert len(sub.payloads) >= 30
    msgs = [_strict(p) for p in sub.payloads]
    rx = [c for m in msgs for c in m["rxInfo"]]
    assert len(rx) >= 30 and all(c["rssi"] is None and c["snr"] is None for c in rx)


def test_shared_encoder_nulls_non_finite_everywhere():
    from sen.gateway.json_out import dumps
    doc = {"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": (2, "x")}
    assert _strict(dumps(doc)) == {"a": None, "b": [1.5, None, {"c": None}], "d": [2, "x"]}
