"""Shared pieces of the fault-injection suite: a gateway service on real files in a temp
directory (in a thread, restartable), and log capture."""
import logging
import threading
import time

from sen.gateway.config import GatewayConfig, RadioConfig
from sen.gateway.key_store import KeyStore
from sen.gateway.radio.base import InjectBackend
from sen.gateway.store import connect


class Gateway:
    """GatewayService on `tmp`/data; start()/stop() is a full start-up and drain."""

    def __init__(self, tmp, fleet, gateway_id="gw-test"):
        from sen.gateway.service import GatewayService
        keys = KeyStore(tmp / "keys.json", create=True)
        fleet.write_keys(keys)
        self.cfg = GatewayConfig(path=tmp / "gateway.toml", gateway_id=gateway_id, data_dir=tmp / "data",
                                 key_file=tmp / "keys.json", fsync=False)
        self.radio = InjectBackend(RadioConfig("emulated", "r0"), gateway_id, None)
        self.svc = GatewayService(self.cfg, backends=[self.radio], forwarders=[])
        self.radio.on_frame = self.svc.on_frame
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()

    def stored(self, keys):
        """How many of the (node, counter) pairs are in the store."""
        c = connect(self.cfg.store_path, readonly=True)
        try:
            have = set(c.execute("SELECT node_id, counter FROM frames").fetchall())
        finally:
            c.close()
        return sum(1 for k in keys if k in have)

    def wait_stored(self, keys, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stored(keys) == len(keys):
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.svc.stopping.set()
        self.thread.join(30)
        assert self.svc.stopped.is_set()


def readings(store_path):
    c = connect(store_path, readonly=True)
    try:
        return set(c.execute("SELECT node_id, counter, sample, channel, raw FROM readings").fetchall())
    finally:
        c.close()


class Lines(logging.Handler):
    """Collects formatted log lines of one logger (and its children)."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []
        self.logger = logging.getLogger(name)

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))

    def __enter__(self):
        self.logger.addHandler(self)
        self._level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


GATEWAY_TOML = """[gateway]
id = "gw-test"
data_dir = "data"
fsync = false

[keys]
file = "keys.json"

[[radio]]
backend = "serial"
name = "r0"
port = "{port}"
"""


def write_toml(tmp, port="socket://127.0.0.1:9"):
    p = tmp / "gateway.toml"
    p.write_text(GATEWAY_TOML.format(port=port))
    return p


def sen(*args, cwd=None, timeout=120, **kw):
    """Run the real `sen` console script; -> CompletedProcess with text output."""
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).with_name("sen")
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


def one_line_error(r):
    """The run refused with exit 2 and one `sen: error:` line, no traceback."""
    err = r.stderr.strip()
    return r.returncode == 2 and "Traceback" not in err and err.startswith("sen: error:") and len(err.splitlines()) == 1
