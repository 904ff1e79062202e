"""One gateway per data directory: an exclusive flock on <data_dir>/gateway.lock, held for
the life of the process (the kernel drops it when the process dies, even on kill -9).
Commands that write the store a gateway owns (replay, rebuild) take the same lock."""
import fcntl
import os
from pathlib import Path

from sen.errors import SenError
from sen.gateway.disk import disk_full_problem

NAME = "gateway.lock"


class DataDirLock:
    def __init__(self, data_dir: Path, what: str):
        self.path = Path(data_dir) / NAME
        self.fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            full = disk_full_problem(self.path.parent, exc)
            raise SenError(f"cannot create {self.path}: {full or exc.strerror}",
                           f"free space in {self.path.parent}" if full else
                           "set [gateway] data_dir to a writable directory") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.fd)
            raise SenError(f"{what}: a gateway{holder} is running on {self.path.parent}",
                           "stop it first (e.g. systemctl stop sen-gateway), or give this one its own "
                           "[gateway] data_dir") from None
        try:  # the pid is for the message a second gateway prints; the lock holds without it
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass

    def _holder(self) -> str:
        try:
            pid = int(os.pread(self.fd, 32, 0).split()[0])
            return f" (pid {pid})"
        except (OSError, ValueError, IndexError):
            return ""

    def release(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
