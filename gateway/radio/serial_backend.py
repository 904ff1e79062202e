"""Serial backend: a second board running firmware/receiver.py forwards every frame it hears
over USB serial (protocol in docs/receiver-serial-protocol.md):

    board -> host   SENRDY <freq_hz> <sf> <bw_hz> <sync>      after (re)configuration
    board -> host   SENRX <rssi> <snr> <hex frame>           one line per frame
    host  -> board  SENCFG <freq_hz> <sf> <bw_hz> <sync>     (re)configure and listen
    host  -> board  SENTX <hex frame>                        send a downlink now

`port` may be a device path or any pyserial URL (socket://host:port works for tests and
for a receiver behind ser2net). The receive watchdog re-sends SENCFG after `watchdog_s`
of silence; a lost serial link is reopened with back-off.
"""
import logging
import re
import select
import socket
import threading
import time

import serial

from sen.gateway.backoff import Backoff
from sen.gateway.radio.base import Backend

log = logging.getLogger("sen.gateway.radio.serial")
REOPEN = Backoff(0.5, 10.0, jitter=False)  # a lost serial link: 0.5, 1, 2 ... 10 s between reopen attempts


# a SENRX line of a 255-byte frame is about 540 bytes; anything longer is not the protocol
MAX_LINE = 1024
PARTIAL_WAIT_S = 1.0  # how long the rest of a line may take before its first part is taken alone
# A whole SENRX line: RSSI, SNR, and a frame of 10..255 bytes in hex (shorter is no frame).
_RX = re.compile(rb"(?m)^SENRX (-?[0-9]{1,4}(?:\.[0-9]{1,3})?) (-?[0-9]{1,3}(?:\.[0-9]{1,3})?) "
                 rb"((?:[0-9a-fA-F]{2}){10,255})\r?$")
# lines that are neither a SENRX line, a status line (SENRDY), a comment nor blank
_BAD = re.compile(rb"(?m)^(?!SENRX -?[0-9]{1,4}(?:\.[0-9]{1,3})? -?[0-9]{1,3}(?:\.[0-9]{1,3})? (?:[0-9a-fA-F]{2}){10,255}"
                  rb"\r?$|SENRDY|#|[ \t\r]*$)")


class LineSplitter:
    """Whole lines of a byte stream, each at most `max_line` bytes, as one block per chunk: a
    longer line is dropped whole (counted in `over_long`) without ever being held. All the
    per-line work is done by C code (rfind, a regex), so the cost is linear in the input and
    small per byte, whatever the input holds (`sen bench gateway` measures the worst case)."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self.long = re.compile(rb"(?m)^[^\n]{%d,}" % (max_line + 1))
        self.buf = bytearray()
        self.skipping = False  # inside an over-long line: drop up to its newline
        self.over_long = 0

    def feed(self, chunk: bytes) -> bytes:
        """The lines `chunk` completes, joined by newlines (b"" when none)."""
        nl = chunk.rfind(b"\n")
        tail = chunk if nl == -1 else chunk[nl + 1:]
        block = b""
        if nl != -1:
            head = chunk[:nl]
            if self.skipping:
                first = head.find(b"\n")
                head = b"" if first == -1 else head[first:]  # the rest of an over-long line
                self.skipping = False
            elif self.buf:
                head = bytes(self.buf) + head
            self.buf.clear()
            block, n = self.long.subn(b"", head)
            self.over_long += n
        if not self.skipping:
            if len(self.buf) + len(tail) > self.max_line:
                self.over_long += 1
                self.buf.clear()
                self.skipping = True
            else:
                self.buf += tail
        return block

    def reset(self):
        self.buf.clear()
        self.skipping = False


def parse_line(line: bytes):
    """-> (rssi, snr, frame) for a SENRX line, else None."""
    m = _RX.match(line.strip())
    return None if m is None else (float(m[1]), float(m[2]), bytes.fromhex(m[3].decode()))


class SerialBackend(Backend):
    def __init__(self, rc, gateway_id, on_frame):
        super().__init__(rc, gateway_id, on_frame)
        self.port = rc.options["port"]
        self.baud = int(rc.options.get("baud", 115200))
        self.ser = None
        self.lock = threading.Lock()
        self.bad_lines = 0
        self.lines = LineSplitter()
        self.partial_since = None  # when a peeked socket:// link last showed a line without its newline
        self.thread = threading.Thread(target=self._run, name=f"radio-{self.name}", daemon=True)

    def _open(self):
        ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0, do_not_open=True)
        # pyserial's open() resets the input buffer: frames the board sent while the link was
        # down (or in the instant after connecting) would be thrown away, so keep them
        ser.reset_input_buffer = lambda: None
        ser.open()
        del ser.reset_input_buffer
        self.ser = ser
        sock = getattr(ser, "_socket", None)  # socket:// has no fileno(); its socket does
        self._fd = sock if sock is not None else ser.fileno() if hasattr(ser, "fileno") else None
        self._configure()

    def _read(self) -> bytes:
        """What the link holds now, after waiting up to 0.2 s for the first byte: one read of
        up to 64 KiB, so a burst costs one call (not one per byte, as in_waiting on socket://
        would give) and a lone frame is not held back waiting for more."""
        if self._fd is not None:
            if not select.select([self._fd], [], [], 0.2)[0]:
                return b""
            sock = getattr(self.ser, "_socket", None)
            if sock is not None:
                # socket:// (ser2net, tests): peek, and consume only once the frames are in
                # the raw log (_consume), so until then a kill leaves them in the kernel's buffer
                chunk = sock.recv(65536, socket.MSG_PEEK)
                if not chunk:
                    raise serial.SerialException("socket disconnected")
                return chunk
            return self.ser.read(65536)
        chunk = self.ser.read(65536)
        if not chunk:
            self.stop_event.wait(0.02)
        return chunk

    def _whole_lines(self, chunk: bytes) -> bytes:
        """On a peeked socket:// link, what `chunk` holds up to its last newline: a line's first
        part stays in the kernel (where the kill test counts it) until its newline comes. A part
        that waits longer than PARTIAL_WAIT_S (a board reset mid-line) or is longer than any
        line is taken as it is, so the link never spins on it."""
        if not chunk or getattr(self.ser, "_socket", None) is None:
            return chunk
        cut = chunk.rfind(b"\n") + 1
        if cut:
            self.partial_since = None
            return chunk[:cut]
        if len(chunk) > MAX_LINE:
            return chunk
        if self.partial_since is None:
            self.partial_since = time.monotonic()
        if time.monotonic() - self.partial_since > PARTIAL_WAIT_S:
            self.partial_since = None
            return chunk
        self.stop_event.wait(0.005)  # the kernel still holds it: select() would return at once
        return b""

    def _consume(self, n: int):
        """Take the peeked bytes off a socket:// link (its frames are durable by now)."""
        sock = getattr(self.ser, "_socket", None)
        while sock is not None and n > 0:
            got = sock.recv(n)
            if not got:
                raise serial.SerialException("socket disconnected")
            n -= len(got)

    def _configure(self):
        rc = self.rc
        self._write(f"SENCFG {rc.frequency_hz} {rc.sf} {rc.bw_hz} {rc.sync_word}\n".encode())
        self.last_rx = time.monotonic()

    def _write(self, data: bytes):
        with self.lock:
            self.ser.write(data)
            self.ser.flush()

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        failures = 0
        while not self.stop_event.is_set():
            try:
                if self.ser is None:
                    self._open()
                    self.mark_up(log)
                    failures = 0
                chunk = self._whole_lines(self._read())
                if chunk:
                    self._lines(self.lines.feed(chunk))
                    self._consume(len(chunk))
                elif self.rc.watchdog_s and self.silent_for() > self.rc.watchdog_s:
                    log.warning("radio %s silent for %.0fs; re-initialising the receiver", self.name, self.silent_for())
                    self.reinits += 1
                    self._configure()
            except Exception as exc:  # noqa: BLE001 — whatever breaks the link, the thread lives and retries
                self.mark_down(log, f"{type(exc).__name__}: {exc}", 10.0)
                try:
                    if self.ser is not None:
                        self.ser.close()
                except Exception:
                    pass
                self.ser = None
                self.lines.reset()
                failures += 1
                self.stop_event.wait(REOPEN.delay(failures))

    def _lines(self, block: bytes):
        if not block:
            return
        got = [(bytes.fromhex(m[3].decode()), float(m[1]), float(m[2])) for m in _RX.finditer(block)]
        n_rx = len(got)
        if got:
            self.deliver_many(got)
        lines = block.count(b"\n") + 1
        # a burst of hundreds of lines that are not frames is junk as a whole (blank lines
        # too): counted without looking at each, which would cost more than the lines do
        self.bad_lines += len(_BAD.findall(block)) if lines <= 512 else lines - n_rx

    @property
    def over_long_lines(self) -> int:
        return self.lines.over_long

    def stop(self):
        super().stop()
        self.thread.join(3)
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:
                pass

    def transmit(self, frame: bytes):
        if self.ser is not None:
            self._write(b"SENTX " + frame.hex().encode() + b"\n")
