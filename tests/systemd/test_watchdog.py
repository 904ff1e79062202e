"""`sen gateway run` under a systemd-style supervisor: this test is the NOTIFY_SOCKET end
(a unix datagram socket, as systemd's is) and reads READY=1 and the WATCHDOG=1 pings
(protocol: sd_notify(3)). Holding the store's write lock from outside stalls the service
loop inside a store write, as a hung disk would: the pings must stop while the process
and its watchdog thread live on, and come back when the store does."""
import os
import pty
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SEN = str(Path(sys.executable).with_name("sen"))


def _messages(sock, until: float) -> list[str]:
    out = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def _wait_for(sock, text: str, timeout: float) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _messages(sock, min(deadline, time.monotonic() + 0.5))
        seen += got
        if any(text in m for m in got):
            return seen
    raise AssertionError(f"no {text!r} from the gateway; got {seen}")


def test_pings_stop_while_the_store_is_stuck_and_resume_after(tmp_path):
    master, slave = pty.openpty()  # the receiver board's serial port
    (tmp_path / "gateway.toml").write_text(
        f'[gateway]\nid = "gw-wd"\ndata_dir = "data"\n[keys]\nfile = "keys.json"\n'
        f'[[radio]]\nbackend = "serial"\nname = "usb0"\nport = "{os.ttyname(slave)}"\n')
    subprocess.run([SEN, "gateway", "keys", "add", "101", "-c", str(tmp_path / "gateway.toml")], check=True,
                   capture_output=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="2000000")
    err = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([SEN, "gateway", "run", "-c", str(tmp_path / "gateway.toml")], cwd=tmp_path, env=env,
                            stderr=err, stdout=subprocess.DEVNULL)
    try:
        _wait_for(notify, "READY=1", 60)
        _wait_for(notify, "WATCHDOG=1", 10)
        db = sqlite3.connect(tmp_path / "data" / "gateway.db", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # the store's write lock, held
        os.write(master, b"SENRX -90.0 3.0 " + b"0102030405" * 2 + b"\n")  # a frame-sized line the loop must store (as a rejection)
        deadline = time.monotonic() + 20
        while "not pinging systemd" not in Path(tmp_path / "stderr").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, Path(tmp_path / "stderr").read_text()
            time.sleep(0.1)
        assert "service loop" in Path(tmp_path / "stderr").read_text()
        _messages(notify, time.monotonic() + 0.2)  # a ping sent just before the log line
        stalled = _messages(notify, time.monotonic() + 3)  # six ping periods of 0.5 s
        assert not any("WATCHDOG=1" in m for m in stalled), stalled
        assert proc.poll() is None  # the process lives; only the pings stopped
        db.execute("ROLLBACK")
        db.close()
        _wait_for(notify, "WATCHDOG=1", 30)
        proc.terminate()
        assert proc.wait(30) == 0
        assert any("STOPPING=1" in m for m in _messages(notify, time.monotonic() + 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
        notify.close()
