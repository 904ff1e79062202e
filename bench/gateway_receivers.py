"""Real upstream servers on loopback for the gateway's tests and benchmarks: mosquitto, an
MQTT collector (paho), an HTTP recorder standing in for an NGSI-LD broker and a
SensorThings server (http.server), and a pyftpdlib FTP server. Each receiver keeps what it
got by idempotent id, and counts re-deliveries."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


class Mosquitto:
    def __init__(self, tmp: Path, port: int | None = None, persistence: bool = False):
        self.port = port or free_port()
        self.conf = Path(tmp) / f"mosquitto-{self.port}.conf"
        # persistence: sessions (a collector's subscription) outlive a broker restart, saved on stop
        keep = "persistence false\n"
        if persistence:
            store = Path(tmp) / f"mosquitto-{self.port}.d"
            store.mkdir(exist_ok=True)
            keep = f"persistence true\npersistence_location {store}/\n"
            if os.geteuid() == 0:  # else it drops to user mosquitto, who cannot reach a 0700 tmp dir to save
                keep += "user root\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{keep}"
                             "max_queued_messages 1000000\n")
        self.proc = None

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class MqttCollector:
    """Subscribes to `<prefix>/#` with QoS 1 and a persistent session."""

    def __init__(self, port: int, prefix: str = "sen", client_id: str = "sen-test-collector"):
        import paho.mqtt.client as mqtt
        self.by_id: dict[str, dict] = {}
        self.deliveries = Counter()
        self.topics = {}
        self.payloads: list[bytes] = []  # every message as received, for strict parsers
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.first_t = self.last_t = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(f"{prefix}/#", qos=1)
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port, 30)
        c.loop_start()
        self.client = c
        if not self.subscribed.wait(10):
            raise TimeoutError("collector could not subscribe")

    def _on_message(self, client, userdata, msg):
        body = json.loads(msg.payload)
        with self.lock:
            self.payloads.append(bytes(msg.payload))
            now = time.monotonic()
            self.first_t = self.first_t or now
            self.last_t = now
            self.by_id[body["id"]] = body
            self.deliveries[body["id"]] += 1
            self.topics[body["id"]] = msg.topic

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.by_id) >= n:
                return True
            time.sleep(0.05)
        return len(self.by_id) >= n

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a gateway killed mid-request (the kill test) hangs up: not the receiver's error
        import sys
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class HttpRecorder:
    """NGSI-LD and SensorThings endpoints that keep entities/observations by id. Its SensorThings
    side behaves as servers do (server-assigned ids in Location headers, $filter by name and by
    phenomenonTime); tests against a real SensorThings server are in test_forward_sensorthings."""

    def __init__(self, fail: bool = False):
        self.ngsi: dict[str, dict] = {}
        self.ngsi_deliveries = Counter()
        self.ngsi_temporal: dict[str, list] = {}  # entity id -> temporal instances received
        self.things: dict[str, dict] = {}  # by name
        self.datastreams: dict[str, dict] = {}  # by name
        self.sta: dict[str, dict] = {}  # server id -> entity (with "_set")
        self.sta_by_name: dict[tuple[str, str], list[str]] = {}  # (set, name) -> server ids, for $filter
        self.obs_by_ds: dict[str, dict[str, dict]] = {}  # datastream name -> senId -> observation
        self.observations: dict[str, list] = {}  # senId -> [datastream name, observation]
        self.sta_deliveries = Counter()
        self.requests: list[tuple[str, dict, object]] = []
        self.fail = fail
        self.lock = threading.Lock()
        self._next = 0
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status, out, headers=None):
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if rec.fail:
                    self.send_error(503)
                    return
                self._answer(*rec.handle_get(self.path))

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                if rec.fail:
                    self.send_error(503)
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.send_error(400)
                    return
                self._answer(*rec.handle(self.path, dict(self.headers), body))

            def log_message(self, *a):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _sta_path(self, path):
        for v in ("/v1.0", "/v1.1"):
            if path.startswith(v):
                return v, path[len(v):]
        return None, path

    def handle_get(self, path):
        import re
        from urllib.parse import parse_qs, unquote, urlsplit
        u = urlsplit(path)
        ver, p = self._sta_path(u.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        with self.lock:
            if ver and p in ("", "/"):
                return 200, {"serverSettings": {"conformance": [
                    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array"]}, "value": []}
            flt = unquote(q.get("$filter", ""))
            m = re.fullmatch(r"/Datastreams\('([^']*)'\)/Observations", p or "")
            if m:
                t = re.fullmatch(r"phenomenonTime ge (\S+) and phenomenonTime le (\S+)", flt)
                ds = self.sta.get(m.group(1), {}).get("name")
                out = [{"parameters": o["parameters"]} for o in self.obs_by_ds.get(ds, {}).values()
                       if t is None or t.group(1) <= o["phenomenonTime"] <= t.group(2)]
                return 200, {"value": out}
            m = re.fullmatch(r"(?:/Things\('[^']*'\))?/(\w+)", p or "")
            name = re.fullmatch(r"name eq '(.*)'", flt)
            if m and name:
                got = [{"@iot.id": i} for i in self.sta_by_name.get((m.group(1), name.group(1).replace("''", "'")), [])]
                return 200, {"value": got}
        return 404, {"message": "no such endpoint"}

    def handle(self, path, headers, body):
        with self.lock:
            self.requests.append((path, headers, body))
            if path.startswith("/ngsi-ld/v1/entityOperations/upsert"):
                for e in body:
                    merge = "options=update" in path and e["id"] in self.ngsi
                    self.ngsi[e["id"]] = dict(self.ngsi[e["id"]], **e) if merge else e
                    self.ngsi_deliveries[e["id"]] += 1
                    # as a broker's temporal store does (Orion-LD TRoE): each written value is history
                    for attr, v in e.items():
                        if isinstance(v, dict) and "observedAt" in v:
                            self.ngsi_temporal.setdefault(e["id"], []).append((attr, v))
                return 204, None, None
            if path.rstrip("/") == "/ngsi-ld/v1/temporal/entities":
                for attr, v in body.items():
                    for inst in v if isinstance(v, list) else []:
                        self.ngsi_temporal.setdefault(body["id"], []).append((attr, inst))
                return 204, None, None
            ver, p = self._sta_path(path)
            if ver is None:
                return 404, {"message": "no such endpoint"}, None
            if p in ("/Things", "/Sensors", "/ObservedProperties", "/Datastreams"):
                self._next += 1
                sid = f"id-{self._next}"
                self.sta[sid] = dict(body, _set=p[1:])
                self.sta_by_name.setdefault((p[1:], body.get("name")), []).append(sid)
                if p == "/Things":
                    self.things[body["name"]] = body
                if p == "/Datastreams":
                    thing = self.sta[body["Thing"]["@iot.id"]]
                    self.datastreams[body["name"]] = dict(body, Thing=thing["name"],
                                                          Sensor=self.sta[body["Sensor"]["@iot.id"]],
                                                          ObservedProperty=self.sta[body["ObservedProperty"]["@iot.id"]])
                return 201, None, {"Location": f"{self.url}{ver}{p}('{sid}')"}
            if p == "/CreateObservations":
                out = []
                for group in body:
                    ds = self.sta.get(group["Datastream"]["@iot.id"])
                    if ds is None or ds["_set"] != "Datastreams":
                        out += ["error"] * len(group["dataArray"])
                        continue
                    comps = group["components"]
                    for row in group["dataArray"]:
                        obs = dict(zip(comps, row))
                        sid = obs["parameters"]["senId"]
                        old = self.observations.get(sid)
                        if old is not None:  # an update may move it (it never does today): index it once
                            self.obs_by_ds.get(old[0], {}).pop(sid, None)
                        self.observations[sid] = [ds["name"], obs]
                        self.obs_by_ds.setdefault(ds["name"], {})[sid] = obs
                        self.sta_deliveries[sid] += 1
                        out.append(f"{self.url}{ver}/Observations('{sid}')")
                return 201, out, None
        return 404, {"message": "no such endpoint"}, None

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FtpServer:
    def __init__(self, root: Path, user="sen", password="secret"):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer
        import logging

        from pyftpdlib.log import config_logging
        config_logging(level=logging.WARNING)  # pyftpdlib logs every command to stderr otherwise

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stored = Counter()
        auth = DummyAuthorizer()
        auth.add_user(user, password, str(self.root), perm="elradfmwMT")
        rec = self

        class Handler(FTPHandler):
            def on_file_received(self, file):
                rec.stored[str(Path(file).relative_to(rec.root))] += 1

        Handler.authorizer = auth
        Handler.passive_ports = None
        from pyftpdlib.ioloop import IOLoop
        # An own IOLoop, exit event and lock: pyftpdlib shares them process-wide (singleton,
        # class attributes), so a closing server would reset the next server's connections.
        self.server = ThreadedFTPServer(("127.0.0.1", 0), Handler, ioloop=IOLoop())
        self.server._exit = threading.Event()
        self.server._lock = threading.Lock()
        self.server.max_cons = 64
        self.port = self.server.address[1]
        self.user, self.password = user, password
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.2, "blocking": True},
                                       daemon=True)
        self.thread.start()

    def files(self):
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.txt"))

    def close(self):
        self.server.close_all()
