"""Kill test: `kill -9` the gateway (`sen gateway run`, a real subprocess) at random moments
while a receiver board streams frames to it over its serial protocol (pyserial socket://),
restart it each time, then check that nothing it received is missing or doubled — in its
store and at every forwarder's receiver (mosquitto + collector, NGSI-LD and SensorThings
HTTP recorders, pyftpdlib for Circular 10 files).

"Received" means written to the raw log. Frames still in the kernel's socket buffer when
the process dies never reached the gateway; they are reported as `lost_in_flight`.
"""
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sen.bench.gateway_receivers import FtpServer, HttpRecorder, Mosquitto, MqttCollector, free_port
from sen.gateway.raw_log import log_end


class Feeder:
    """Plays the receiver board: accepts the gateway's serial-over-TCP connection and writes
    SENRX lines at `rate` frames/s, resuming with the next frame after a reconnect."""

    def __init__(self, frames: list[bytes], rate: float):
        self.frames = frames
        self.rate = rate
        self.sent = 0
        self.connections = 0
        self.connected = threading.Event()
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a USB serial link buffers a few kB, not the megabytes loopback TCP would
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.rng = random.Random(3)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn = None
        while self.sent < len(self.frames):
            conn, _ = self.sock.accept()
            self.connections += 1
            self.connected.set()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t_next = time.monotonic()
            try:
                while self.sent < len(self.frames):
                    chunk = self.frames[self.sent:self.sent + 20]
                    data = b"".join(b"SENRX -%d %.1f %s\n" % (self.rng.randint(60, 120), self.rng.uniform(-9, 9),
                                                             f.hex().encode()) for f in chunk)
                    conn.sendall(data)
                    self.sent += len(chunk)
                    t_next += len(chunk) / self.rate
                    pause = t_next - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
            except OSError:
                self.connected.clear()
                conn.close()
                conn = None
        self.done.set()
        # Keep the link up until the gateway closes it (SIGTERM at the end). Closing first, with
        # the gateway's SENCFG line unread, would make the kernel send RST, which throws away
        # whatever still sits unread in the gateway's receive buffer.
        if conn is not None:
            conn.settimeout(600)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            conn.close()


def _count(db: Path, sql: str):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_kill_test(n_frames=100_000, kills=20, n_nodes=200, rate=4000.0, workdir=None, forwarders=("mqtt", "ngsi_ld", "sensorthings", "circular10"),
                  drain_timeout=900.0, seed=1, log=print) -> dict:
    from sen.gateway.key_store import KeyStore
    from sen.testkit.synthetic import Fleet

    tmp = Path(workdir or tempfile.mkdtemp(prefix="sen-kill-"))
    rng = random.Random(seed)
    fleet = Fleet(n_nodes, seed=seed)
    frames = [f for f, _ in fleet.frames(n_frames)]
    keys = KeyStore(tmp / "keys.json", create=True)
    fleet.write_keys(keys)
    broker = Mosquitto(tmp).start() if "mqtt" in forwarders else None
    sub = MqttCollector(broker.port, client_id=f"kill-{os.getpid()}") if broker else None
    http = HttpRecorder() if {"ngsi_ld", "sensorthings"} & set(forwarders) else None
    ftp = FtpServer(tmp / "ftp") if "circular10" in forwarders else None
    feeder = Feeder(frames, rate)
    nodes_toml = "".join(f'[nodes.{n}]\nstation = "ST{n}"\nlocation = [108.2, 16.0]\n' for n in fleet.nodes)
    fw = ""
    if broker:
        fw += f'[forwarders.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    if "ngsi_ld" in forwarders:
        fw += f'[forwarders.ngsi_ld]\nurl = "{http.url}"\n'
    if "sensorthings" in forwarders:
        fw += f'[forwarders.sensorthings]\nurl = "{http.url}"\n'
    if ftp:
        fw += f'[forwarders.circular10]\nhost = "127.0.0.1"\nport = {ftp.port}\nuser = "{ftp.user}"\npassword = "{ftp.password}"\n'
    cfg = tmp / "gateway.toml"
    cfg.write_text(f'[gateway]\nid = "gw-kill"\ndata_dir = "data"\n[keys]\nfile = "keys.json"\n'
                   f'[[radio]]\nbackend = "serial"\nname = "usb0"\nport = "socket://127.0.0.1:{feeder.port}"\n'
                   f'watchdog_s = 0\n{fw}{nodes_toml}[log]\nlevel = "WARNING"\n')
    sen = [str(Path(sys.executable).parent / "sen"), "gateway", "run", "-c", str(cfg)]
    errlog = open(tmp / "gateway.stderr", "ab")
    t0 = time.monotonic()
    kill_times = []
    # kill when the feed passes random points spread over the whole ingest (two close points
    # kill a gateway that is still starting up or recovering, which is a moment too)
    kill_at = sorted(rng.sample(range(n_frames // 50, n_frames - n_frames // 50), kills))
    try:
        for k in range(kills + 1):
            proc = subprocess.Popen(sen, stdout=subprocess.DEVNULL, stderr=errlog)
            if k == kills:
                break
            if not feeder.connected.wait(60):
                raise RuntimeError("gateway never connected to the feeder; see gateway.stderr")
            while feeder.sent < kill_at[k] and not feeder.done.is_set() and proc.poll() is None:
                time.sleep(0.002)
            if feeder.done.is_set():
                log(f"feed finished after {k} kills")
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kill_times.append(round(time.monotonic() - t0, 2))
            log(f"kill {k + 1}/{kills} at {kill_times[-1]}s: {feeder.sent} frames sent so far")
        feeder.done.wait(3600)
        ingest_s = time.monotonic() - t0
        db = tmp / "data" / "gateway.db"
        raw = tmp / "data" / "raw.log"
        # let the last run catch up: it reads what is still in the socket buffers (the raw log
        # stops growing), processes every logged frame, and every outbox drains
        deadline = time.monotonic() + drain_timeout
        last_size, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = log_end(raw)  # global: the raw log may rotate during the run
            if size != last_size:
                last_size, still_since = size, time.monotonic()
                time.sleep(0.5)
                continue
            if time.monotonic() - still_since < 2.0:
                time.sleep(0.5)
                continue
            try:
                off = _count(db, "SELECT v FROM meta WHERE k='raw_offset'")
                head = _count(db, "SELECT COALESCE(MAX(id), 0) FROM readings")[0][0]
                lag = _count(db, f"SELECT COALESCE(MAX({head} - cursor), 0) FROM outbox")[0][0]
                n_out = _count(db, "SELECT COUNT(*) FROM outbox")[0][0]
            except sqlite3.Error:
                time.sleep(0.5)
                continue
            if off and int(off[0][0]) == log_end(raw) and lag == 0 and n_out == len(forwarders):
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        drain_s = time.monotonic() - t0 - ingest_s
    finally:
        for p in ("proc",):
            pr = locals().get(p)
            if pr is not None and pr.poll() is None:
                pr.kill()
        errlog.close()
    result = verify(tmp, fleet, frames, sub, http, ftp, forwarders)
    result.update(frames_sent=feeder.sent, kills=len(kill_times), kill_times_s=kill_times, sigterm_exit=rc,
                  ingest_s=round(ingest_s, 1), drain_after_feed_s=round(drain_s, 1), workdir=str(tmp))
    for closer in (sub and sub.close, http and http.close, ftp and ftp.close, broker and broker.stop):
        if closer:
            closer()
    return result


def verify(tmp, fleet, frames, sub, http, ftp, forwarders) -> dict:
    from sen.gateway.key_store import KeyStore
    from sen.gateway.pipeline import Pipeline
    from sen.gateway.raw_log import iter_log
    from sen.gateway.store import Store
    from sen.gateway.forwarders.circular10 import file_for
    from sen.gateway.outbox import Sample

    raw = tmp / "data" / "raw.log"
    records = list(iter_log(raw))  # every segment, global offsets
    sent_set = {f for f in frames}
    received = [f for _, _, f, _ in records]
    # the same raw log processed in one uninterrupted pass is the reference
    ref = Store(tmp / "reference.db")
    Pipeline(ref, KeyStore(tmp / "keys.json")).process(records)
    q = lambda db, sql: sqlite3.connect(db).execute(sql).fetchall()
    db = tmp / "data" / "gateway.db"
    got_frames = set(q(db, "SELECT node_id, counter FROM frames"))
    ref_frames = set(ref.con.execute("SELECT node_id, counter FROM frames").fetchall())
    got_readings = q(db, "SELECT node_id, counter, sample, channel FROM readings")
    ref_readings = ref.con.execute("SELECT node_id, counter, sample, channel FROM readings").fetchall()
    res = {
        "frames_received": len(received),
        "lost_in_flight": len(frames) - len(set(received)),
        "received_not_sent": len(set(received) - sent_set),
        "frames_stored": len(got_frames),
        "missing_from_store": len(ref_frames - got_frames),
        "extra_in_store": len(got_frames - ref_frames),
        "readings_stored": len(got_readings),
        "duplicate_readings_in_store": len(got_readings) - len(set(got_readings)),
        "readings_match_reference": sorted(got_readings) == sorted(ref_readings),
        "rejections": dict(q(db, "SELECT reason, count FROM rejections")),
    }
    sample_ids = {f"{n}-{c}-{s}" for n, c, s, _ in got_readings}
    reading_ids = {f"{n}-{c}-{s}-{ch}" for n, c, s, ch in
                   [(n, c, s, __import__('sen.channels', fromlist=['BY_ID']).BY_ID[ch].name)
                    for n, c, s, ch in got_readings]}
    if sub is not None:
        sub.wait_for(len(sample_ids), 30)
        res["mqtt_missing"] = len(sample_ids - set(sub.by_id))
        res["mqtt_unknown"] = len(set(sub.by_id) - sample_ids)
        res["mqtt_redelivered"] = sum(v - 1 for v in sub.deliveries.values())
    if http is not None and "sensorthings" in forwarders:
        res["sensorthings_missing"] = len(reading_ids - set(http.observations))
        res["sensorthings_unknown"] = len(set(http.observations) - reading_ids)
        res["sensorthings_redelivered"] = sum(v - 1 for v in http.sta_deliveries.values())
    if http is not None and "ngsi_ld" in forwarders:
        # one entity per station: a sample is there when its time is among the entity's history
        # (values written to the entity, as a broker's temporal store keeps them, and instances
        # sent to the temporal interface)
        from sen.gateway.forwarders.base import iso
        want = {(f"ST{n}", iso(t)) for n, t in q(db, "SELECT DISTINCT node_id, time FROM readings")}
        got = {(eid.rsplit(":", 1)[1], inst["observedAt"]) for eid, insts in http.ngsi_temporal.items()
               for _, inst in insts}
        res["ngsi_ld_missing_samples"] = len(want - got)
        res["ngsi_ld_unknown"] = len(got - want)
        res["ngsi_ld_redelivered"] = sum(c - 1 for c in __import__("collections").Counter(
            (eid, a, i["observedAt"]) for eid, insts in http.ngsi_temporal.items() for a, i in insts).values())
    if ftp is not None:
        rows = q(db, "SELECT node_id, counter, sample, time FROM readings GROUP BY node_id, counter, sample")
        from collections import Counter
        names = Counter()
        for n, c, s, t in rows:
            d, name, _ = file_for(Sample(n, c, s, t, readings=[]), "DN", "SEN", f"ST{n}")
            names[f"{d}/{name}"] += 1
        want = set(names)
        # Circular 10 names files by station and second: two samples of one station within one
        # second share a file, merged by parameter symbol (the later value of a symbol wins)
        res["circular10_merged_samples"] = sum(v - 1 for v in names.values())
        have = set(ftp.files())
        res["circular10_missing"] = len(want - have)
        res["circular10_unknown"] = len(have - want)
        res["circular10_redelivered"] = sum(v - 1 for v in ftp.stored.values())
        res["circular10_incomplete_files"] = sum(1 for f in have if not (ftp.root / f).read_bytes().endswith(b"\r\n"))
    ref.close()
    return res
