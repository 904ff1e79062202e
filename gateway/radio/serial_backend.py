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
import threading
import time

import serial

from sen.gateway.radio.base import Backend

log = logging.getLogger("sen.gateway.radio.serial")


def parse_line(line: bytes):
    """-> (rssi, snr, frame) for a SENRX line, else None."""
    parts = line.strip().split()
    if len(parts) != 4 or parts[0] != b"SENRX":
        return None
    try:
        return float(parts[1]), float(parts[2]), bytes.fromhex(parts[3].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


class SerialBackend(Backend):
    def __init__(self, rc, gateway_id, on_frame):
        super().__init__(rc, gateway_id, on_frame)
        self.port = rc.options["port"]
        self.baud = int(rc.options.get("baud", 115200))
        self.ser = None
        self.lock = threading.Lock()
        self.bad_lines = 0
        self.thread = threading.Thread(target=self._run, name=f"radio-{self.name}", daemon=True)

    def _open(self):
        self.ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.2)
        self._configure()

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
        delay = 0.5
        buf = b""
        while not self.stop_event.is_set():
            try:
                if self.ser is None:
                    self._open()
                    delay = 0.5
                chunk = self.ser.read(4096) if self.ser.in_waiting == 0 else self.ser.read(self.ser.in_waiting)
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        got = parse_line(line)
                        if got is not None:
                            self.deliver(got[2], got[0], got[1])
                        elif line.strip() and not line.startswith((b"SENRDY", b"#")):
                            self.bad_lines += 1
                elif self.rc.watchdog_s and self.silent_for() > self.rc.watchdog_s:
                    log.warning("radio %s silent for %.0fs; re-initialising the receiver", self.name, self.silent_for())
                    self.reinits += 1
                    self._configure()
            except (serial.SerialException, OSError) as exc:
                if self.ser is not None:
                    log.warning("radio %s: serial link lost (%s); reopening", self.name, exc)
                try:
                    if self.ser is not None:
                        self.ser.close()
                except Exception:
                    pass
                self.ser = None
                buf = b""
                self.stop_event.wait(delay)
                delay = min(delay * 2, 10.0)

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
