"""Start `sen emulate` as a user would, and drive it with the real mpremote CLI."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

BIN = Path(sys.executable).parent
SEN = str(BIN / "sen")
MPREMOTE = str(BIN / "mpremote")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TRANSCRIPT = os.environ.get("SEN_MPREMOTE_TRANSCRIPT")  # append every mpremote call here


def stub_env():
    """Environment that swaps in the bridge's own stub board host (fixtures/)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(FIXTURES) + os.pathsep + env.get("PYTHONPATH", "")
    env["SEN_EMULATOR_BOARD"] = "stub_board"
    env["SEN_EMULATOR_SHIMS"] = str(FIXTURES / "mpy")
    return env


class Emulator:
    def __init__(self, *args, env=None, count=1):
        self.args = ["emulate", *args]
        # stderr to a file: an unread pipe could fill and stall the emulator
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([SEN, *self.args], stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, text=True)
        self.ports = []
        deadline = time.monotonic() + 30
        while len(self.ports) < count:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"sen emulate exited: {self.stderr()}")
            m = re.fullmatch(r"PORT (/dev/pts/\d+)\n", line)
            assert m, f"first lines must be PORT /dev/pts/N, got {line!r}"
            self.ports.append(m.group(1))
            assert time.monotonic() < deadline
        self.port = self.ports[0]

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def mp(self, *args, port=None, check=True, timeout=30):
        """One mpremote command line; returns stdout (stderr appended when check=False)."""
        cmd = [MPREMOTE, "connect", port or self.port, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if TRANSCRIPT:
            with open(TRANSCRIPT, "a") as f:
                shown = " ".join(a if " " not in a and "\n" not in a else repr(a) for a in args)
                f.write(f"$ mpremote connect PORT {shown}\n{r.stdout}{r.stderr}")
        if check:
            assert r.returncode == 0, f"mpremote {args} failed ({r.returncode}): {r.stdout}{r.stderr}"
            return r.stdout
        return r.stdout + r.stderr

    def serial(self, port=None):
        return serial.serial_for_url(port or self.port, baudrate=115200, timeout=0.05)


def read_until(ser, marker: bytes, timeout=10.0) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        buf += ser.read(4096)
        if marker in buf:
            return buf
    raise AssertionError(f"{marker!r} not seen in {timeout}s; got {buf[-400:]!r}")


def read_quiet(ser, quiet=0.3, limit=5.0) -> bytes:
    """Everything until the port has been silent for `quiet` seconds."""
    buf = b""
    last = time.monotonic()
    end = last + limit
    while time.monotonic() < end:
        b = ser.read(4096)
        if b:
            buf += b
            last = time.monotonic()
        elif time.monotonic() - last > quiet:
            break
    return buf
