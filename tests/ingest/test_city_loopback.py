"""Issue 10's loopback run with real mosquitto and PostgreSQL: 8 gateways with overlapping
coverage, 2,000 nodes, 2 ingest workers (`sen ingest run` processes), one simulated hour.
Mid-run one worker is SIGKILLed (and restarted by its supervisor, here the test), and the
broker is restarted while gateways are still receiving. Afterwards every reading is in
PostgreSQL exactly once, with the right value, and every gateway's copy of every frame is
kept with its RSSI/SNR; the MQTT forwarder delivered every sample."""
import collections
import json
import threading
import time

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions

from sen.channels import BY_ID
from sen.testkit.city_sim import City, EmulatedGateway
from sen.testkit.loopback import WorkerProcess, write_ingest_toml
from sen.gateway.uplink_publisher import session_properties

FEED_S = 40.0  # wall seconds over which the simulated hour arrives at the gateways
N_NODES = 2000
LOG_LEVEL = "WARNING"


class ForwardReceiver:
    """The city platform's side of the MQTT forwarder: a persistent QoS 1 subscriber."""

    def __init__(self, port, topic):
        self.ids = collections.Counter()
        self.rx_counts = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="city-platform", protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, options=SubscribeOptions(qos=1))
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.2, 2)
        self.c.connect("127.0.0.1", port, 30, clean_start=False, properties=session_properties(3600))
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        body = json.loads(msg.payload)
        with self.lock:
            self.ids[body["id"]] += 1
            self.rx_counts[body["id"]] = len(body["rxInfo"])

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def _count(dsn, sql):
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(sql).fetchone()[0]


def _leader(dsn):
    """Index (1 or 2) of the worker holding the MQTT forwarder's advisory lock."""
    from sen.ingest.pg_outbox import leader_sql

    with psycopg.connect(dsn, autocommit=True) as con:
        for app, _key in con.execute(leader_sql()).fetchall():
            return int(app.split(":")[1].rsplit("-", 1)[1])
    return None


def test_city_hour_two_workers_kill_and_broker_restart(tmp_path, pg_dsn, broker):
    city = City(n_nodes=N_NODES, n_gateways=8, interval_s=300, hours=1.0)
    frames = city.frames()
    expected_readings = sum(len(f.readings) for f in frames)
    assert len(frames) == N_NODES * 12 and {len(f.heard) for f in frames} == {1, 2, 3, 4}
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps(city.key_file_json()))
    fwd = f'\n[forwarders.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ntopic_prefix = "city"\n'
    receiver = ForwardReceiver(broker.port, "city/#")
    workers = {i: WorkerProcess(write_ingest_toml(tmp_path / f"ingest-{i}.toml", f"ingest-{i}", broker.port, pg_dsn,
                                                  key_file, fwd, log_level=LOG_LEVEL), tmp_path / f"ingest-{i}.log").start()
               for i in (1, 2)}
    # Before the first worker ever subscribes, the broker drops what gateways publish (no
    # subscriber, no session). Once subscribed, the sessions persist and queue everything.
    deadline = time.monotonic() + 60
    while _count(pg_dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'workers'") == 0 or \
            _count(pg_dsn, "SELECT count(*) FROM workers WHERE subscribed IS NOT NULL") < 2:
        assert time.monotonic() < deadline, "ingest workers did not subscribe within 60 s"
        time.sleep(0.2)
    gws = [EmulatedGateway(g, tmp_path / "gw", "127.0.0.1", broker.port, fsync=False).start()
           for g in city.gateway_ids()]
    events = {}
    try:
        # --- feed the hour, minute by simulated minute, paced over FEED_S wall seconds
        start = time.monotonic()
        t0 = frames[0].t
        i = 0
        minute = 0
        while i < len(frames):
            minute += 1
            per_gw = collections.defaultdict(list)
            while i < len(frames) and frames[i].t < t0 + 60 * minute:
                f = frames[i]
                for g, rssi, snr in f.heard:
                    per_gw[g].append((f.frame, city.rx_meta(f, g, rssi, snr)))
                i += 1
            for g, items in per_gw.items():
                gws[g].receive(items)
            progress = i / len(frames)
            if "kill" not in events and progress >= 1 / 3:
                stored = _count(pg_dsn, "SELECT count(*) FROM readings")
                # kill the worker that leads the MQTT forwarder, so the kill also tests the take-over
                leader = _leader(pg_dsn)
                victim = leader or 1
                pid = workers[victim].proc.pid
                workers[victim].kill()  # SIGKILL: no drain, records in flight unacknowledged
                events["kill"] = (progress, stored, pid, victim)
                events["killed_forwarder_leader"] = leader is not None
                time.sleep(1.0)
                workers[victim].start()  # what systemd's Restart=always does
            if "broker" not in events and progress >= 2 / 3:
                lag = sum(gw.publisher.lag() for gw in gws)
                stored = _count(pg_dsn, "SELECT count(*) FROM readings")
                broker.restart(down_s=1.5)  # gateways keep receiving into their raw logs meanwhile
                events["broker"] = (progress, stored, lag)
            sleep = start + FEED_S * progress - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        # --- wait until everything is through
        deadline = time.monotonic() + 150
        stored, last_change, last_stored = 0, time.monotonic(), -1
        while time.monotonic() < deadline and time.monotonic() - last_change < 45:
            stored = _count(pg_dsn, "SELECT count(*) FROM readings")
            if stored != last_stored:
                last_change, last_stored = time.monotonic(), stored
            if stored >= expected_readings and all(gw.caught_up() for gw in gws) and \
                    len(receiver.ids) >= len(frames):
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - start
        publisher_failures = sum(gw.publisher.failures_total for gw in gws)
        lag = {gw.gateway_id: gw.publisher.lag() for gw in gws if gw.publisher.lag()}
    finally:
        codes = {i: w.stop() for i, w in workers.items()}
        for gw in gws:
            gw.stop()
        receiver.stop()

    with psycopg.connect(pg_dsn, autocommit=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        n_readings, n_distinct = q("SELECT count(*), count(DISTINCT (node_id, counter, sample, channel)) FROM readings")[0]
        stored_frames = {(n, c) for n, c in q("SELECT node_id, counter FROM frames")}
        rx = collections.defaultdict(dict)
        for n, c, g, rssi, snr in q("SELECT node_id, counter, gateway_id, rssi, snr FROM rx"):
            assert g not in rx[(n, c)], "one gateway's copy stored twice"
            rx[(n, c)][g] = (rssi, snr)
        values = {(n, c, ch): (raw, v, qf) for n, c, ch, raw, v, qf in
                  q("SELECT node_id, counter, channel, raw, value, qflags FROM readings")}
        rejections = dict(q("SELECT reason, count FROM rejections"))
        per_worker = {w: (f, pid) for w, f, pid in q("SELECT worker_id, frames, pid FROM workers")}
        copies_handled = int(q("SELECT sum(copies) FROM workers")[0][0])
        parked_left = q("SELECT count(*) FROM parked")[0][0]

    figures = {
        "frames": len(frames), "copies": sum(len(f.heard) for f in frames), "readings_expected": expected_readings,
        "readings_stored": n_readings, "elapsed_s": round(elapsed, 1), "kill": events.get("kill"), "killed_forwarder_leader": events.get("killed_forwarder_leader"),
        "broker_restart": events.get("broker"), "publisher_failures": publisher_failures,
        "worker_frames": {w: f for w, (f, _) in per_worker.items()}, "rejections": rejections,
        "forwarded_samples": len(receiver.ids), "forward_redeliveries": sum(receiver.ids.values()) - len(receiver.ids),
        "worker_exit_codes": codes, "gateway_lag_bytes": lag,
        "copies_handled_incl_redeliveries": copies_handled, "parked_left": parked_left,
    }
    print("ingest loopback figures:", json.dumps(figures))
    for i in (1, 2):  # shown by pytest only when an assertion below fails
        lines = (tmp_path / f"ingest-{i}.log").read_text(errors="replace").splitlines()
        print(f"--- ingest-{i}.log (last 15 of {len(lines)} lines)", *lines[-15:], sep="\n")

    # every reading exactly once, with its value
    assert n_readings == n_distinct == expected_readings
    assert stored_frames == {(f.node_id, f.counter) for f in frames}
    for f in frames:
        for ch, scaled in f.readings:
            raw, value, qflags = values[(f.node_id, f.counter, ch)]
            assert qflags == 0 and abs(raw - scaled * BY_ID[ch].scale) < 1e-9 and value == raw
    # every gateway's copy, with its own RSSI/SNR, and nothing else
    for f in frames:
        got = rx[(f.node_id, f.counter)]
        want = {city.gateways[g][0]: (rssi, snr) for g, rssi, snr in f.heard}
        assert got.keys() == want.keys(), (f.node_id, f.counter)
        for g, (rssi, snr) in want.items():
            assert abs(got[g][0] - rssi) < 0.05 and abs(got[g][1] - snr) < 0.05
    assert rejections == {} or set(rejections.values()) == {0}
    assert parked_left == 0
    # the faults really hit mid-run, and both workers carried load
    kill_progress, stored_at_kill, killed_pid, victim = events["kill"]
    assert 0 < stored_at_kill < expected_readings
    assert per_worker[f"ingest-{victim}"][1] != killed_pid  # the restarted worker stored the later batches
    assert events["killed_forwarder_leader"]  # and the other worker took the forwarder over
    assert all(f > 0 for f, _ in per_worker.values()) and len(per_worker) == 2
    _, stored_at_restart, lag_at_restart = events["broker"]
    assert stored_at_restart < expected_readings
    assert publisher_failures > 0  # gateways saw the broker go away and re-published from their raw logs
    # forwarded through the gateway's MQTT forwarder: every sample reached the platform
    assert set(receiver.ids) == {f"{f.node_id}-{f.counter}-0" for f in frames}
    assert codes == {1: 0, 2: 0}  # SIGTERM drains and exits cleanly
