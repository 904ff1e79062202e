"""Class 3: a frame the gateway has read is durable before anything else happens to it.
20,000 frames stream through the serial backend over a socket URL; 10 times the gateway is
frozen (SIGSTOP), the bytes still in kernel socket buffers are counted, and it is killed
(SIGKILL). Every frame missing from the raw log must be one that was still in those buffers
when it died; every frame in the raw log is stored exactly once."""
import os
import random
import signal
import socket
import sqlite3
import threading
import time

from sen.gateway.key_store import KeyStore
from sen.gateway.raw_log import iter_log
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import GatewayProcess, write_toml

N_FRAMES, KILLS, RATE = 20_000, 10, 1500.0


class Feeder:
    """The receiver board: SENRX lines at RATE frames/s, each frame's byte span recorded per
    connection so a kill can be matched against the kernel's buffers."""

    def __init__(self, frames):
        self.frames = frames
        self.sent = 0
        self.lock = threading.Lock()  # held by the test while it freezes and kills the gateway
        self.conn = None
        self.conn_bytes = 0
        self.spans = []  # (frame index, end byte on its connection)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connected = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        rng = random.Random(5)
        while self.sent < len(self.frames):
            conn, _ = self.sock.accept()
            with self.lock:
                self.conn, self.conn_bytes, self.spans = conn, 0, []
            self.connected.set()
            t_next = time.monotonic()
            try:
                while self.sent < len(self.frames):
                    with self.lock:
                        if self.conn is not conn:  # the test killed the gateway on this connection
                            raise OSError("gateway killed")
                        chunk = self.frames[self.sent:self.sent + 10]
                        lines = [b"SENRX -%d %.2f %s\n" % (rng.randint(60, 120), rng.uniform(-9, 9), f.hex().encode())
                                 for f in chunk]
                        conn.sendall(b"".join(lines))
                        for i, line in enumerate(lines):
                            self.conn_bytes += len(line)
                            self.spans.append((self.sent + i, self.conn_bytes))
                        self.sent += len(chunk)
                    t_next += len(chunk) / RATE
                    time.sleep(max(0.0, t_next - time.monotonic()))
            except OSError:
                self.connected.clear()


def _rx_queue(local_port: int, peer_port: int) -> int:
    """Bytes waiting in the receive queue of the gateway's socket (/proc/net/tcp). Only an
    ESTABLISHED entry counts: a closed socket of an earlier gateway on the same ports (a
    TIME_WAIT that loopback may reuse) lists an empty queue and would hide the live one."""
    want_local, want_peer = f"0100007F:{local_port:04X}", f"0100007F:{peer_port:04X}"
    with open("/proc/net/tcp") as f:
        found = [int(p[4].split(":")[1], 16) for p in (line.split() for line in f.readlines()[1:])
                 if p[1] == want_local and p[2] == want_peer and p[3] == "01"]
    assert len(found) == 1, f"{len(found)} established sockets for the gateway's connection in /proc/net/tcp"
    return found[0]


def _freeze(pid: int):
    """SIGSTOP, then wait until every thread has stopped: kill() returns before they do, and a
    thread still running could take bytes off the socket after they were counted."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:  # a thread that ended meanwhile
                pass
        if all(st in "tT" for st in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"gateway {pid} did not stop within 10 s of SIGSTOP")


def _send_queue(conn) -> int:
    import fcntl
    import struct
    import termios
    return struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def test_kill_9_loses_only_what_the_kernel_still_buffers(tmp_path):
    fleet = Fleet(400, seed=7)
    frames = [f for f, _ in fleet.frames(N_FRAMES)]
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    feeder = Feeder(frames)
    write_toml(tmp_path, feeder.url)
    (tmp_path / "gateway.toml").write_text((tmp_path / "gateway.toml").read_text().replace("fsync = false", "fsync = true")
                                           + 'watchdog_s = 0\n[log]\nlevel = "WARNING"\n')
    rng = random.Random(11)
    kill_at = sorted(rng.sample(range(N_FRAMES // 20, N_FRAMES - N_FRAMES // 20), KILLS))
    in_kernel = set()  # frames provably still in kernel buffers at a kill
    kernel_bytes = []
    gw = None
    try:
        for k in range(KILLS):
            gw = GatewayProcess(tmp_path)
            assert feeder.connected.wait(60), gw.log()
            while feeder.sent < kill_at[k]:
                time.sleep(0.002)
            with feeder.lock:
                _freeze(gw.proc.pid)
                conn = feeder.conn
                queued = _rx_queue(conn.getpeername()[1], conn.getsockname()[1]) + _send_queue(conn)
                boundary = feeder.conn_bytes - queued
                in_kernel |= {i for i, end in feeder.spans if end > boundary}
                kernel_bytes.append(queued)
                os.kill(gw.proc.pid, signal.SIGKILL)
                gw.proc.wait()
                gw.err.close()
                feeder.connected.clear()
                feeder.conn = None  # what the feeder would write next goes to the next gateway
        gw = GatewayProcess(tmp_path)
        deadline = time.monotonic() + 300
        db = tmp_path / "data" / "gateway.db"
        while time.monotonic() < deadline and feeder.sent < N_FRAMES:
            time.sleep(0.2)
        time.sleep(3)
    finally:
        code = gw.stop() if gw else None
    received = [f for _, _, f, _ in iter_log(tmp_path / "data")]
    index = {f: i for i, f in enumerate(frames)}
    got = {index[f] for f in received}
    lost = set(range(N_FRAMES)) - got
    lost_read = lost - in_kernel
    con = sqlite3.connect(db)
    stored = con.execute("SELECT COUNT(*), COUNT(DISTINCT node_id || '-' || counter) FROM frames").fetchone()
    con.close()
    print(f"kill test: {N_FRAMES} frames, {KILLS} kills; lost {len(lost)}, of which provably in kernel buffers "
          f"{len(lost & in_kernel)} (bytes in kernel buffers at each kill: {kernel_bytes}); lost after the gateway "
          f"read them: {len(lost_read)}; frames stored {stored[0]} (distinct {stored[1]}), in raw log {len(got)}")
    assert code == 0
    assert not lost_read, sorted(lost_read)[:20]
    assert stored[0] == stored[1] == len(got)


def test_a_half_received_line_stays_in_the_kernel_until_its_newline(tmp_path):
    """A SENRX line split across two reads: the gateway must not take its first half off the
    socket (into its own memory, where a kill would lose it) before the line is whole."""
    from tests.faults.helpers import board_and_gateway, wait_frames
    fleet = Fleet(1, seed=8)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    board, gw = board_and_gateway(tmp_path)
    try:
        frame, _ = next(fleet.frames(1))
        line = board.senrx(frame)
        half = line[:len(line) // 2]
        board.send(half)
        time.sleep(0.5)  # the gateway has peeked the half line by now (it polls every 0.2 s)
        peer = board.conn.getpeername()[1]
        _freeze(gw.proc.pid)
        queued = _rx_queue(peer, board.sock.getsockname()[1])
        os.kill(gw.proc.pid, signal.SIGCONT)
        assert queued == len(half), f"{queued} of the half line's {len(half)} bytes still in the kernel"
        board.conn.sendall(line[len(half):])
        assert wait_frames(tmp_path / "data" / "gateway.db", [(1, 0)]), gw.log()
    finally:
        code = gw.stop()
        board.close()
    assert code == 0, gw.log()
    assert len([f for _, _, f, _ in iter_log(tmp_path / "data")]) == 1  # the line once, not its half again
