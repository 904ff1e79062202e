"""Throw-away PostgreSQL and mosquitto servers on 127.0.0.1, for the ingest tests and
`sen bench ingest`. Real servers from the Debian packages; each in its own temp dir on a
free port, stopped at the end."""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sen.errors import SenError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def pg_bin_dir() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0]))
    if not dirs:
        raise SenError("PostgreSQL server binaries are not installed", "run `make setup` (installs the Debian package postgresql)")
    return Path(dirs[-1])


class PostgresCluster:
    """initdb into a temp dir and pg_ctl start on a free port. PostgreSQL refuses to run as
    root, so under root the cluster belongs to the `postgres` OS user (runuser)."""

    def __init__(self, fsync: bool = True, port: int | None = None):
        # its own temp dir under /tmp: the postgres user must be able to reach it
        self.base = Path(tempfile.mkdtemp(prefix="sen-pg-"))
        self.data = self.base / "pgdata"
        self.port = port or free_port()
        self.fsync = fsync
        self.bin = pg_bin_dir()
        self.as_user = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise SenError("running as root and there is no `postgres` user",
                               "install the Debian package postgresql, or run as a normal user") from None
            self.as_user = ["runuser", "-u", "postgres", "--"]
            self._owner = (pw.pw_uid, pw.pw_gid)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=sen dbname=postgres"

    def _run(self, *args):
        r = subprocess.run([*self.as_user, *map(str, args)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def start(self):
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            os.chown(self.base, *self._owner)
        if not self.data.exists():
            self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "sen", "-E", "UTF8", "--no-sync")
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=50"
                f" -c shared_buffers=64MB -c fsync={'on' if self.fsync else 'off'}"
                f" -c synchronous_commit={'on' if self.fsync else 'off'} -c full_page_writes=off")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.base / "postgres.log", "-w", "-t", "60", "start")
        return self

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Mosquitto:
    """mosquitto with persistence in its temp dir, so a restart keeps sessions and queues."""

    def __init__(self, base_dir: Path, port: int | None = None, extra: str = ""):
        self.base = Path(base_dir)
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.base / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}"
            f"persistence true\npersistence_location {self.base}/\nautosave_interval 60\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nmax_keepalive 60\n" + extra)
        self.proc = None

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.log = open(self.base / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_s: float = 1.0):
        self.stop()
        time.sleep(down_s)
        # the port was ours a moment ago; wait until the kernel lets us bind it again
        return self.start()


def write_ingest_toml(path: Path, worker_id: str, broker_port: int, dsn: str, key_file: Path, extra: str = "",
                      window_ms: int = 200, batch_max: int = 1000, group: str = "sen-ingest",
                      log_level: str = "WARNING") -> Path:
    path.write_text(
        f'[ingest]\nworker_id = "{worker_id}"\nwindow_ms = {window_ms}\nbatch_max = {batch_max}\n\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker_port}\ngroup = "{group}"\nreceive_maximum = {max(2000, batch_max * 2)}\n\n'
        f'[postgres]\ndsn = "{dsn}"\n\n[keys]\nfile = "{key_file}"\n\n[log]\nlevel = "{log_level}"\n' + extra)
    return path


class WorkerProcess:
    """`sen ingest run -c <toml>` as a child process, so a test can SIGKILL it."""

    def __init__(self, config: Path, log_path: Path):
        self.config = config
        self.log_path = log_path
        self.proc = None

    def start(self):
        import sys
        sen = Path(sys.executable).with_name("sen")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(sen), "ingest", "run", "-c", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None
