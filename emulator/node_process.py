"""One MicroPython interpreter: a Node process running emulator/runtime/board.mjs.

Killing the process is the emulator's model of a hard reset, a power cut or deep sleep:
whatever the firmware was doing stops at that instant, and only the flash survives.
"""
import json
import os
import subprocess
from pathlib import Path

from sen.emulator.node_runtime import find_micropython_mjs, find_node
from sen.emulator.work_counter import counted_wasm

RUNTIME = Path(__file__).resolve().parent / "runtime" / "board.mjs"


class NodeProcess:
    """Spawned with its console on stdin/stdout and a request/reply pipe pair."""

    def __init__(self, cfg: dict):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        mjs, node = find_micropython_mjs(), find_node()
        cfg = dict(cfg, req_fd=req_w, rep_fd=rep_r, mp_module=str(mjs), mp_wasm=str(counted_wasm(mjs, node)))
        self.proc = subprocess.Popen(
            [node, str(RUNTIME), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(req_w, rep_r),
            close_fds=True, start_new_session=True)
        os.close(req_w)
        os.close(rep_r)
        self.req = req_r
        self.rep = rep_w
        self.out = self.proc.stdout.fileno()
        self.inp = self.proc.stdin.fileno()
        for fd in (self.req, self.out, self.inp):
            os.set_blocking(fd, False)
        # Replies stay blocking: the interpreter is always waiting for exactly that line.
        self._req_buf = b""
        self._in_queue = b""

    def go(self, cause: int) -> None:
        """Boot the prepared interpreter with this reset cause."""
        self.reply({"go": {"cause": cause}})

    def alive(self) -> bool:
        return self.proc.poll() is None

    # console
    def queue_input(self, data: bytes) -> None:
        self._in_queue += data
        self.pump_input()

    def wants_write(self) -> bool:
        return bool(self._in_queue)

    def pump_input(self) -> None:
        while self._in_queue:
            try:
                n = os.write(self.inp, self._in_queue)
            except (BlockingIOError, BrokenPipeError):
                return
            self._in_queue = self._in_queue[n:]

    def read_output(self) -> bytes | None:
        """Console bytes, b"" if none now, None at end of file (process gone)."""
        try:
            data = os.read(self.out, 65536)
        except BlockingIOError:
            return b""
        return data or None

    # requests
    def read_messages(self) -> list[dict] | None:
        try:
            data = os.read(self.req, 65536)
        except BlockingIOError:
            return []
        if not data:
            return None
        self._req_buf += data
        *lines, self._req_buf = self._req_buf.split(b"\n")
        return [json.loads(ln) for ln in lines if ln]

    def reply(self, obj: dict) -> None:
        self.reply_text(json.dumps(obj, separators=(",", ":")))

    def reply_text(self, text: str) -> None:
        data = (text + "\n").encode()
        try:
            while data:
                data = data[os.write(self.rep, data):]
        except BrokenPipeError:
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        for fd in (self.req, self.rep):
            try:
                os.close(fd)
            except OSError:
                pass
