"""A live gateway's /metrics, judged by Prometheus's own linter (`promtool check metrics`,
Debian package prometheus): HELP and TYPE on every family, conventional names and units."""
import shutil
import subprocess
import time
import urllib.request

from sen.gateway.forwarders.mqtt import MqttForwarder
from sen.gateway.rx_meta import RxMeta
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway


def test_promtool_accepts_a_live_gateways_metrics(tmp_path, mosquitto):
    fleet = Fleet(3, seed=5)
    gw = LiveGateway(tmp_path, fleet, [MqttForwarder("127.0.0.1", mosquitto.port, "gw-test")])
    gw.cfg.metrics = {"bind": "127.0.0.1", "port": 0}
    gw.start()
    try:
        gw.inject_all(list(fleet.frames(20)) + [(b"\x01\x02garbage", RxMeta("gw-test", time.time(), radio="r0"))])
        gw.wait_stored(20)
        deadline = time.monotonic() + 10
        while gw.depth().get("mqtt", 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        body = urllib.request.urlopen(f"http://127.0.0.1:{gw.svc.metrics_port}/metrics", timeout=5).read().decode()
    finally:
        gw.svc.stopping.set()
        gw.thread.join(30)
    # every kind of family is there, with data: counters, gauges, histograms, per node, per forwarder
    for needle in ('sen_gateway_frames_total{outcome="accepted",reason=""} 20.0',
                   'sen_gateway_rejections_total{reason="too_short"}', 'sen_gateway_outbox_sent_total{forwarder="mqtt"}',
                   'sen_gateway_node_last_seen_timestamp_seconds{node="1"}', 'sen_gateway_rx_rssi_dbm_bucket{le="-135.0",radio="r0"}',
                   'sen_gateway_rx_snr_db_count{radio="r0"} 21.0', "sen_gateway_ingest_latency_seconds_count 21.0",
                   "process_resident_memory_bytes"):
        assert needle in body, needle
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make setup installs the Debian package prometheus"
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    print(res.stdout, res.stderr)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr
