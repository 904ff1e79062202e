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

    def __init__(self, tmp, fleet, gateway_id="gw-test", metrics_port=None, forwarders=()):
        from sen.gateway.service import GatewayService
        keys = KeyStore(tmp / "keys.json", create=True)
        fleet.write_keys(keys)
        self.cfg = GatewayConfig(path=tmp / "gateway.toml", gateway_id=gateway_id, data_dir=tmp / "data",
                                 key_file=tmp / "keys.json", fsync=False,
                                 metrics=None if metrics_port is None else {"port": metrics_port})
        self.radio = InjectBackend(RadioConfig("emulated", "r0"), gateway_id, None)
        self.svc = GatewayService(self.cfg, backends=[self.radio], forwarders=list(forwarders))
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


class Board:
    """Plays a receiver board (docs/receiver-serial-protocol.md) behind a socket:// URL: accepts
    the gateway's connection, records what it writes, sends what the test gives it."""

    def __init__(self, port=0):
        import socket
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(4)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conn = None
        self.heard = bytearray()
        self.accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conn = conn
            self.accepted.set()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        try:
            while True:
                b = conn.recv(65536)
                if not b:
                    return
                self.heard += b
        except OSError:
            return

    def send(self, data: bytes, timeout=60, after_cfg=True):
        """after_cfg: wait for the gateway's SENCFG first, as a real board starts listening then."""
        assert self.accepted.wait(timeout), "the gateway never connected"
        deadline = time.monotonic() + timeout
        while after_cfg and b"SENCFG" not in self.heard and time.monotonic() < deadline:
            time.sleep(0.02)
        self.conn.sendall(data)

    @staticmethod
    def senrx(frame: bytes, rssi=-80.0, snr=7.5) -> bytes:
        return b"SENRX %.1f %.1f %s\n" % (rssi, snr, frame.hex().encode())

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.sock.close()


class GatewayProcess:
    """`sen gateway run` as a real subprocess on tmp/gateway.toml; stderr goes to a file."""

    def __init__(self, tmp, extra_toml=""):
        import subprocess
        import sys
        from pathlib import Path
        self.tmp = tmp
        self.err_path = tmp / f"gateway-{time.monotonic_ns()}.err"
        cfg = tmp / "gateway.toml"
        if extra_toml:
            cfg.write_text(cfg.read_text() + extra_toml)
        exe = Path(sys.executable).with_name("sen")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([str(exe), "gateway", "run", "-c", str(cfg)], cwd=tmp, stderr=self.err,
                                     stdout=subprocess.DEVNULL)

    def log(self) -> str:
        return self.err_path.read_text()

    def wait_log(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.05)
        return False

    def stop(self, sig=None):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            self.proc.wait(60)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()
        return self.proc.returncode


def board_and_gateway(tmp, extra_toml=""):
    """A Board playing the receiver and `sen gateway run` reading it (tmp/gateway.toml written
    for the board's URL): -> (board, gateway process). The caller closes and stops both."""
    board = Board()
    write_toml(tmp, board.url)
    return board, GatewayProcess(tmp, extra_toml)


def frames_in(store_path) -> set:
    from pathlib import Path
    if not Path(store_path).exists():
        return set()
    c = connect(store_path, readonly=True)
    try:
        return set(c.execute("SELECT node_id, counter FROM frames").fetchall())
    except Exception:
        return set()
    finally:
        c.close()


def wait_frames(store_path, keys, timeout=60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(keys) <= frames_in(store_path):
            return True
        time.sleep(0.1)
    return False


def http_get(url, timeout=10) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()
