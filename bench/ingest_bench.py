"""`sen bench ingest`: central ingest throughput, readings stored per second with 1 and
with 2 `sen ingest run` workers, real mosquitto and PostgreSQL on this machine.

Workload: the loopback test's city (8 gateways, 2,000 air nodes, one hour at 5 min; each
frame heard by 1–4 gateways). For each worker count, the gateways' copies are first
queued in the broker for the workers' persistent shared-subscription sessions, then the
workers start and the clock runs from the first stored reading to the last. PostgreSQL
runs with fsync on. Everything (broker, database, workers) shares the machine's cores.
The machine's CPU utilisation during each run is printed: when one worker already keeps
the cores busy (worker + broker + database), a second worker cannot add much here; the
ratio measures this machine, not the design. Last line: one JSON object.
"""
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def _count(dsn, sql):
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(sql).fetchone()[0]


def _queue_copies(port, city, frames) -> int:
    from sen.gateway import uplink_wire as wire

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-gateways", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    n, infos = 0, []
    for f in frames:
        for g, rssi, snr in f.heard:
            meta = city.rx_meta(f, g, rssi, snr)
            infos.append(c.publish(wire.topic_for("sen", meta.gateway_id, f.node_id), wire.encode(f.frame, meta), qos=1))
        if len(infos) >= 1000:
            for i in infos:
                i.wait_for_publish(60)
            n += len(infos)
            infos = []
    for i in infos:
        i.wait_for_publish(60)
    c.loop_stop()
    c.disconnect()
    return n + len(infos)


def _one(n_workers, base, pg, broker, city, frames, key_file, expected, out):
    from sen.testkit.loopback import WorkerProcess, write_ingest_toml

    db = f"bench_w{n_workers}"
    with psycopg.connect(pg.dsn, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {db}")
        con.execute(f"CREATE DATABASE {db}")
    dsn = f"host=127.0.0.1 port={pg.port} user=sen dbname={db}"
    workers = [WorkerProcess(write_ingest_toml(base / f"w{n_workers}-{i}.toml", f"bench{n_workers}-{i}", broker.port,
                                               dsn, key_file, window_ms=200, batch_max=2000,
                                               group=f"bench{n_workers}"), base / f"w{n_workers}-{i}.log")
               for i in range(n_workers)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while True:  # sessions exist once each worker's shared subscription is granted
        try:
            if _count(dsn, "SELECT count(*) FROM workers WHERE subscribed IS NOT NULL") == n_workers:
                break
        except psycopg.Error:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("ingest workers did not subscribe within 60 s")
        time.sleep(0.2)
    for w in workers:
        w.stop()
    t = time.monotonic()
    copies = _queue_copies(broker.port, city, frames)
    out(f"  {n_workers} worker(s): {copies} copies queued in the broker in {time.monotonic() - t:.1f} s")
    for w in workers:
        w.start()
    t_first = n_first = None
    cpu0 = _cpu_times()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        n = _count(dsn, "SELECT count(*) FROM readings")
        now = time.monotonic()
        if n and t_first is None:
            t_first, n_first = now, n
            cpu0 = _cpu_times()
        if n >= expected:
            break
        time.sleep(0.1)
    t_end = time.monotonic()
    cpu1 = _cpu_times()
    busy = (cpu1[0] - cpu0[0]) / max(1.0, cpu1[1] - cpu0[1])
    for w in workers:
        w.stop()
    stored = _count(dsn, "SELECT count(*) FROM readings")
    if stored != expected:
        raise RuntimeError(f"{n_workers} worker(s) stored {stored} of {expected} readings")
    rate = (expected - n_first) / max(1e-6, t_end - t_first)
    split = {w: (f, c) for w, f, c in psycopg.connect(dsn, autocommit=True).execute(
        "SELECT worker_id, frames, copies FROM workers ORDER BY worker_id").fetchall()}
    out(f"  {n_workers} worker(s): {expected} readings in {t_end - t_first:.1f} s -> {rate:,.0f} readings/s "
        f"(worker: (frames first stored, copies handled) {split}); machine CPU busy {busy:.0%}")
    return rate, busy


def run(nodes: int = 2000, hours: float = 1.0, out=print) -> dict:
    from sen.testkit.city_sim import City
    from sen.testkit.loopback import Mosquitto, PostgresCluster

    load0 = os.getloadavg()[0]  # other work on the machine skews every figure below
    base = Path(tempfile.mkdtemp(prefix="sen-bench-ingest-"))
    pg = PostgresCluster(fsync=True).start()
    broker = Mosquitto(base / "mosquitto").start()
    try:
        city = City(n_nodes=nodes, n_gateways=8, interval_s=300, hours=hours)
        frames = city.frames()
        expected = sum(len(f.readings) for f in frames)
        copies = sum(len(f.heard) for f in frames)
        key_file = base / "keys.json"
        key_file.write_text(json.dumps(city.key_file_json()))
        out(f"ingest bench: {len(frames)} frames, {copies} gateway copies ({copies / len(frames):.2f} per frame), "
            f"{expected} readings; {os.cpu_count()} cores (load average {load0:.1f} at start); "
            "mosquitto + PostgreSQL (fsync on) on this machine")
        r1, busy1 = _one(1, base, pg, broker, city, frames, key_file, expected, out)
        r2, busy2 = _one(2, base, pg, broker, city, frames, key_file, expected, out)
    finally:
        broker.stop()
        pg.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    result = {"bench": "ingest", "frames": len(frames), "copies": copies, "readings": expected,
              "readings_per_s_1_worker": round(r1), "readings_per_s_2_workers": round(r2),
              "scaling_ratio": round(r2 / r1, 2), "cores": os.cpu_count(),
              "cpu_busy_1_worker": round(busy1, 2), "cpu_busy_2_workers": round(busy2, 2),
              "load_avg_at_start": round(load0, 2)}
    out(f"scaling 1 -> 2 workers: x{r2 / r1:.2f}")
    out(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
