import shutil
import socket
import subprocess
import time

import pytest

from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.gateway.raw_log import RawLog
from sen.gateway.store import Store
from sen.gateway.synthetic import Fleet


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


class Rig:
    """Raw log + store + pipeline in a temp dir, fed with the firmware encoder's frames."""

    def __init__(self, tmp, n_nodes=5, seed=1):
        self.dir = tmp
        self.fleet = Fleet(n_nodes, seed=seed)
        self.keys = KeyStore(tmp / "keys.json", create=True)
        self.fleet.write_keys(self.keys)
        self.store = Store(tmp / "gateway.db")
        self.log = RawLog(tmp / "raw.log", fsync=False)
        self.pipe = Pipeline(self.store, self.keys)

    def feed(self, items):
        spans = self.log.append(items)
        return self.pipe.process([(a, b, f, m) for (a, b), (f, m) in zip(spans, items)])

    def q(self, sql, *args):
        return self.store.con.execute(sql, args).fetchall()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.store.close()
    r.log.close()


class Mosquitto:
    def __init__(self, tmp, port=None):
        self.port = port or free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
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


@pytest.fixture
def mosquitto(tmp_path):
    m = Mosquitto(tmp_path).start()
    yield m
    m.stop()
