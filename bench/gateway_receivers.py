"""Real upstream servers on loopback for the gateway's tests and benchmarks: mosquitto, an
MQTT collector (paho), an HTTP recorder standing in for an NGSI-LD broker and a
SensorThings server (http.server), and a pyftpdlib FTP server. Each receiver keeps what it
got by idempotent id, and counts re-deliveries."""
import json
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
    def __init__(self, tmp: Path, port: int | None = None):
        self.port = port or free_port()
        self.conf = Path(tmp) / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
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
    """NGSI-LD upsert and SensorThings endpoints that keep entities/observations by id."""

    def __init__(self, fail: bool = False):
        self.ngsi: dict[str, dict] = {}
        self.ngsi_deliveries = Counter()
        self.things: dict[str, dict] = {}
        self.datastreams: dict[str, dict] = {}
        self.observations: dict[str, list] = {}
        self.sta_deliveries = Counter()
        self.requests: list[tuple[str, dict, object]] = []
        self.fail = fail
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
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
                status, out = rec.handle(self.path, dict(self.headers), body)
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, path, headers, body):
        with self.lock:
            self.requests.append((path, headers, body))
            if path.startswith("/ngsi-ld/v1/entityOperations/upsert"):
                for e in body:
                    self.ngsi[e["id"]] = e
                    self.ngsi_deliveries[e["id"]] += 1
                return 204, None
            if path == "/v1.0/Things":
                if body["@iot.id"] in self.things:
                    return 409, {"message": "exists"}
                self.things[body["@iot.id"]] = body
                for ds in body.get("Datastreams", []):
                    self.datastreams[ds["@iot.id"]] = ds
                return 201, None
            if path == "/v1.0/CreateObservations":
                out = []
                for group in body:
                    ds = group["Datastream"]["@iot.id"]
                    if ds not in self.datastreams:
                        out += ["error"] * len(group["dataArray"])
                        continue
                    comps = group["components"]
                    for row in group["dataArray"]:
                        obs = dict(zip(comps, row))
                        sid = obs["parameters"]["senId"]
                        self.observations[sid] = [ds, obs]
                        self.sta_deliveries[sid] += 1
                        out.append(f"{self.url}/v1.0/Observations('{sid}')")
                return 201, out
        return 404, {"message": "no such endpoint"}

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
