import threading
import time

import pytest

from sen.bench.gateway_receivers import Mosquitto, free_port, wait_port  # noqa: F401  (re-exported)
from sen.gateway.config import GatewayConfig, RadioConfig
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.gateway.radio.base import InjectBackend
from sen.gateway.raw_log import RawLog
from sen.gateway.store import Store
from sen.testkit.synthetic import Fleet


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


@pytest.fixture
def mosquitto(tmp_path):
    m = Mosquitto(tmp_path).start()
    yield m
    m.stop()


class LiveGateway:
    """GatewayService in a thread with an in-process radio; frames go in through inject()."""

    def __init__(self, tmp, fleet, forwarders, nodes=None, gateway_id="gw-test"):
        from sen.gateway.service import GatewayService
        keys = KeyStore(tmp / "keys.json", create=True)
        fleet.write_keys(keys)
        self.cfg = GatewayConfig(path=tmp / "gateway.toml", gateway_id=gateway_id, data_dir=tmp / "data",
                                 key_file=tmp / "keys.json", nodes=nodes or {}, fsync=False)
        self.radio = InjectBackend(RadioConfig("emulated", "r0"), gateway_id, None)
        self.svc = GatewayService(self.cfg, backends=[self.radio], forwarders=forwarders)
        self.radio.on_frame = self.svc.on_frame
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def inject_all(self, items):
        for f, m in items:
            self.svc.on_frame(f, m)

    def wait_stored(self, n_frames, timeout=30):
        con = self.svc.store.con
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            from sen.gateway.store import connect
            c = connect(self.cfg.store_path, readonly=True)
            got = c.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
            c.close()
            if got >= n_frames:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"only {got} of {n_frames} frames stored")

    def depth(self):
        from sen.gateway.store import connect
        c = connect(self.cfg.store_path, readonly=True)
        head = c.execute("SELECT COALESCE(MAX(id),0) FROM readings").fetchone()[0]
        rows = dict(c.execute("SELECT name, ? - cursor FROM outbox", (head,)).fetchall())
        c.close()
        return rows

    def stop(self):
        self.svc.stopping.set()
        self.thread.join(30)
        assert self.svc.stopped.is_set()
