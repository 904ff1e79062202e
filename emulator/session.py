"""One emulated board: its serial port, its interpreter (a Node process) and its Board.

Owns the life cycle (power-on, soft reset, hard reset, deep sleep, power cut) and the
console rules a real ESP32 has: Ctrl-C reaches running firmware only at its sleep and
I/O points (every shim call), and bytes typed while the chip is off wait in the UART.
The clock itself is moved by emulator/bridge.py, which sees every board.
"""
import json
import os
import logging
import sys
import time
import traceback

from sen.emulator import board_signals as sig
from sen.emulator.node_process import NodeProcess
from sen.emulator.pty_port import PtyPort

log = logging.getLogger("sen.emulator")
CTRL_C = 0x03


def _decode_args(text: str):
    def hook(d):
        if len(d) == 1 and "$b" in d:
            return bytes.fromhex(d["$b"])
        return d
    return json.loads(text, object_hook=hook)


def _bytes_default(o):
    if isinstance(o, (bytes, bytearray, memoryview)):
        return {"$b": bytes(o).hex()}
    raise TypeError(f"board result not JSON-able: {type(o).__name__}")


class BoardSession(sig.BoardHost):
    def __init__(self, *, name, board_name, board, clock, fs_root, shim_dirs, heap_bytes, fs_bytes,
                 shim_cache=None, console_log=None):
        """console_log: a file path that also gets everything the board prints (the serial
        log a technician would capture), or None."""
        self.name = name
        self.console_log = open(console_log, "ab") if console_log else None
        self.board_name = board_name
        self.board = board
        self.clock = clock
        self.fs_root = str(fs_root)
        self.shim_dirs = [str(d) for d in shim_dirs]
        self.shim_cache = shim_cache
        self.heap_bytes = heap_bytes
        self.fs_bytes = fs_bytes
        self.port = PtyPort()
        self.node = None
        self.sent = 0        # console bytes given to this interpreter
        self.acked = 0       # ... and taken by it so far
        self.booting = False
        self.wait = None     # a parked board_signals.Wait
        self.kbd = False     # a Ctrl-C not yet delivered ...
        self.kbd_pos = 0     # ... and its index in this interpreter's input stream
        self.kbd_off = False  # micropython.kbd_intr(-1): Ctrl-C is data (mpremote mount)
        self.off = None      # (until_us or None, wake callable or None, cause) while powered off
        self.cut = None      # power_cut(off_ms) requested, handled by the bridge loop
        self.shielded = False  # the runtime is loading the shims: hold Ctrl-C back
        self.held_input = b""
        self.boots = 0
        self.parked = False  # self.node left its VM (deep sleep, reset) and waits for a go
        if board is not None and hasattr(board, "attach"):
            board.attach(self)

    # ---- BoardHost, for the Board
    def ctrl_c_pending(self) -> bool:
        return self.kbd and not self.shielded

    def power_cut(self, off_ms: int = 0) -> None:
        self.cut = max(0, int(off_ms))

    # ---- state
    def busy(self) -> bool:
        """Firmware is running right now (so virtual time must not move under it)."""
        return (self.node is not None and self.off is None and self.wait is None
                and (self.booting or self.sent > self.acked))

    def start(self, cause: int) -> None:
        if self.board is not None and hasattr(self.board, "on_boot"):
            self.board.on_boot(cause)
        self.off = None
        self.boots += 1
        if self.node is not None and self.parked and self.node.alive():
            # the same process already holds a fresh VM, waiting for this go
            self.parked = False
            self.node.go(cause)
        else:
            # first power-on, or the last process was killed (power cut while running)
            if self.node is not None:
                self.stop()
            self.node = self._spawn()
            self.node.go(cause)
            self.sent = self.acked = 0
        self.booting = True
        self.shielded = True
        self.wait = None
        self.kbd = False
        self.kbd_off = False
        if self.held_input:
            data, self.held_input = self.held_input, b""
            self._forward(data)

    def _spawn(self) -> NodeProcess:
        return NodeProcess({
            "mode": "friendly", "board_name": self.board_name,
            "fs_root": self.fs_root, "shim_dirs": self.shim_dirs, "shim_cache": self.shim_cache,
            "heap_bytes": self.heap_bytes, "fs_bytes": self.fs_bytes,
            "shim_frames": bool(os.environ.get("SEN_EMULATOR_SHIM_FRAMES"))})

    def stop(self) -> None:
        if self.node is not None:
            self.drain_output()
            self.node.kill()
            self.node = None
        self.parked = False
        self.wait = None
        self.booting = False

    def power_off(self, until_us, wake, cause) -> None:
        """The chip goes off until the clock reaches until_us (or wake() fires)."""
        if self.node is not None and self.wait is not None and not self.parked:
            self._park()  # blocked in a call: leave the VM from there, keep the process
        else:
            self.stop()  # running or idle: killing the process is the power cut
        self.off = (until_us, wake, cause)

    def _park(self) -> None:
        self.drain_output()
        self.node.reply({"off": 1})
        self.parked = True
        self.wait = None
        self.booting = False

    def close(self) -> None:
        self.stop()
        self.port.close()
        if self.console_log is not None:
            self.console_log.close()
            self.console_log = None

    # ---- console
    def _forward(self, data: bytes) -> None:
        """Console bytes go to the interpreter in order, Ctrl-C included. A Ctrl-C that
        arrives while firmware runs is also noted, so the next shim call (or the sleep it
        is blocked in) raises KeyboardInterrupt; the runtime then drops that byte, as the
        ESP32's UART handler does. If the firmware makes no call before reading the byte
        at the REPL, the REPL gets it as a plain Ctrl-C."""
        if not data:
            return
        if self.node is None or self.off is not None or self.parked:
            self.held_input += data
            return
        i = -1 if self.kbd_off else data.find(CTRL_C)
        if i >= 0:
            if self.wait is not None and not self.shielded:
                self.kbd, self.kbd_pos = True, self.sent + i
                self._reply({"k": 1})
                self.kbd = False
            elif not self.kbd and (self.booting or self.sent > self.acked):
                self.kbd, self.kbd_pos = True, self.sent + i
        self.sent += len(data)
        self.node.queue_input(data)
        if self.wait is not None and self.wait.console:
            self._send_result(1)  # the firmware was waiting to read the console

    def on_port_input(self, data: bytes) -> None:
        self._forward(data)

    def drain_output(self) -> None:
        if self.node is None:
            return
        while True:
            out = self.node.read_output()
            if not out:
                return
            self.port.write(out)
            if self.console_log is not None:
                self.console_log.write(out)

    # ---- messages from the interpreter
    def on_messages(self, msgs) -> None:
        for m in msgs:
            if self.node is None:
                return
            t = m.get("t")
            if t == "idle":
                self.acked = m["n"]
                self.booting = False
                if self.kbd and self.acked > self.kbd_pos:
                    self.kbd = False  # the REPL took it as a keystroke
            elif t == "call":
                self._call(m["op"], m.get("a") or "{}", m.get("n", 0))
            elif t == "off":
                pass  # the runtime has a fresh VM ready; start() sends its go
            elif t == "fatal":
                log.error("%s: interpreter failed: %s", self.name, m.get("msg"))
                self.port.write(b"\r\nemulator: interpreter failed, rebooting\r\n")
                self.stop()
                self.start(sig.PWRON_RESET)

    def on_node_exit(self) -> None:
        log.error("%s: interpreter exited unexpectedly, rebooting", self.name)
        self.stop()
        self.start(sig.PWRON_RESET)

    def _reply(self, obj: dict) -> None:
        self.wait = None
        self.node.reply(obj)

    def _call(self, op: str, args_text: str, consumed: int = 0) -> None:
        if self.kbd and not self.shielded:
            self.kbd = False
            if consumed <= self.kbd_pos:  # the Ctrl-C byte came before this call
                self._reply({"k": 1})
                return
        if op == "_boot":
            args = json.loads(args_text)
            self.shielded = True
            self.kbd_off = False
            if args.get("soft") and self.board is not None and hasattr(self.board, "on_boot"):
                self.board.on_boot(sig.SOFT_RESET)
            self._reply({"r": {}})
            return
        if op == "_stdin":
            # The firmware reads or polls the console and the runtime has nothing left to
            # give it: parked (time goes on) until more input comes, as on a UART, or until
            # the poll's timeout (ms; -1 or none: no timeout) on the virtual clock.
            ms = json.loads(args_text).get("ms", -1)
            if self.sent > consumed:
                self._reply({"r": 1})
            elif ms == 0:
                self._reply({"r": 0})
            else:
                self.wait = sig.Wait(None, result=0, console=True)
                if ms is not None and ms >= 0:
                    self.wait.wall_deadline = time.monotonic() + ms / 1000.0
            return
        if op == "_kbd_intr":  # micropython.kbd_intr(c): c = -1 makes Ctrl-C plain data
            self.kbd_off = json.loads(args_text).get("c", 3) < 0
            self._reply({"r": None})
            return
        if op == "_firmware":  # shims loaded; boot.py starts: Ctrl-C may land from now on
            self.shielded = False
            self._reply({"r": {}})
            return
        if self.board is None:
            self._reply({"x": f"board host unavailable (no emulator/board.py); op {op!r}"})
            return
        try:
            result = self.board.call(op, _decode_args(args_text))
        except sig.Wait as w:
            self.wait = w
            self.resolve_wait()
            return
        except sig.DeepSleep as d:
            until = None if d.ms is None else self.clock.now_us() + d.ms * 1000
            self._park()
            self.off = (until, d.wake, sig.DEEPSLEEP_RESET)
            return
        except sig.HardReset as h:
            self._park()
            self.start(h.cause)
            return
        except sig.PowerLoss as p:
            self._park()
            self.off = (self.clock.now_us() + p.off_ms * 1000, None, sig.PWRON_RESET)
            return
        except sig.Interrupt:
            self._reply({"k": 1})
            return
        except OSError as e:
            self._reply({"e": e.errno if isinstance(e.errno, int) else 5})
            return
        except Exception as e:  # a bug in a model must not take the board down
            traceback.print_exc(file=sys.stderr)
            self._reply({"x": f"board: {type(e).__name__}: {e}"})
            return
        if self.cut is not None:
            return  # the bridge cuts power before this call ever returns
        try:
            text = json.dumps({"r": result}, default=_bytes_default, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            self._reply({"x": f"board: {e}"})
            return
        self.wait = None
        self.node.reply_text(text)

    # ---- time
    def resolve_wait(self) -> bool:
        """Finish a parked Wait if its time came or its wake fired. True if it did."""
        w = self.wait
        if w is None:
            return False
        if w.wake is not None:
            v = w.wake()
            if v is not None:
                self._send_result(v)
                return True
        if w.until_us is not None and self.clock.now_us() >= w.until_us:
            self._send_result(w.result)
            return True
        return False

    def console_timeout(self, now_wall: float):
        """Seconds until a console poll's timeout; at it the poll answers 'no input'."""
        w = self.wait
        if w is None or w.wall_deadline is None:
            return None
        if now_wall >= w.wall_deadline:
            self._send_result(w.result)
            return None
        return w.wall_deadline - now_wall

    def _send_result(self, v) -> None:
        self.wait = None
        self.node.reply_text(json.dumps({"r": v}, default=_bytes_default, separators=(",", ":")))

    def resolve_off(self) -> bool:
        """Power back on if the deep-sleep timer or a wake source fired."""
        if self.off is None:
            return False
        until, wake, cause = self.off
        if (until is not None and self.clock.now_us() >= until) or (wake is not None and wake()):
            self.start(cause)
            return True
        return False
