"""Test doubles for the Semtech UDP tests: a packet forwarder and a LoRaWAN network server,
each on its own loopback UDP socket. Every datagram they send is built, and every datagram
they receive is read, by pamoja-gateway (PyPI), an implementation Sen did not write, so Sen's
side of the protocol is checked against a second opinion on every message type.

The forwarder keeps a concentrator counter (1 MHz, 32 bits) and applies the just-in-time
queue's rule from lora_pkt_fwd: a downlink with less than 42.5 ms of lead is TOO_LATE.
"""
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pamoja.gateway import Crc, Packet, PacketKind, Rxpk, Stat, TxStatus, encode, parse
from pamoja.lora import link

from sen.gateway.key_store import KeyStore
from sen.gateway.store import connect

SEN = Path(sys.executable).with_name("sen")
JIT_LEAD_US = 42_500  # TX_START_DELAY + TX_MARGIN_DELAY + TX_JIT_DELAY in lora_pkt_fwd


class StandInForwarder:
    def __init__(self, eui: str, server: tuple, tmst0: int = 3_000_000_000, refuse: str | None = None):
        self.eui = eui
        self.server = server
        self.tmst0 = tmst0
        self.t0 = time.monotonic()
        self.refuse = refuse  # answer every PULL_RESP with this TX_ACK error
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.acks: list = []  # (kind, token) of PUSH_ACK / PULL_ACK
        self.downlinks: list = []  # (raw datagram, pamoja Packet, counter at arrival, verdict)
        self.raw_in: list[bytes] = []
        self.token = 0x100
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def counter(self) -> int:
        return (self.tmst0 + int((time.monotonic() - self.t0) * 1e6)) & 0xFFFFFFFF

    def _next(self) -> int:
        self.token = (self.token + 1) & 0xFFFF
        return self.token

    def send_raw(self, data: bytes):
        self.sock.sendto(data, self.server)

    def pull(self):
        self.send_raw(encode(Packet(PacketKind.PULL_DATA, self._next(), gateway=self.eui)))

    def rxpk(self, payload: bytes, rssi=-90.0, snr=5.0, freq_hz=921_400_000, sf=9, tmst=None, crc=Crc.OK):
        return Rxpk(freq_hz, payload, link=link(sf, 125_000), rssi_dbm=rssi, snr_db=snr, crc=crc,
                    timestamp_us=self.counter() if tmst is None else tmst, channel=0)

    def push(self, rxpks=(), stat: Stat | None = None) -> bytes:
        data = encode(Packet(PacketKind.PUSH_DATA, self._next(), gateway=self.eui, packets=list(rxpks), status=stat))
        self.send_raw(data)
        return data

    def _run(self):
        while not self.stop_event.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            now = self.counter()
            self.raw_in.append(data)
            p = parse(data)
            kind = PacketKind(p.kind)
            if kind in (PacketKind.PUSH_ACK, PacketKind.PULL_ACK):
                self.acks.append((kind, p.token))
            elif kind == PacketKind.PULL_RESP:
                lead = (p.transmit.timestamp_us - now) & 0xFFFFFFFF
                verdict = self.refuse or ("TOO_LATE" if lead < JIT_LEAD_US or lead > 2 ** 31 else "NONE")
                self.downlinks.append((data, p, now, verdict))
                self.send_raw(encode(Packet(PacketKind.TX_ACK, p.token, gateway=self.eui,
                                            tx_status=TxStatus(verdict))))

    def wait(self, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = what()
            if got:
                return got
            time.sleep(0.01)
        return what()

    def close(self):
        self.stop_event.set()
        self.thread.join(2)
        self.sock.close()


class StandInNetworkServer:
    """A LoRaWAN network server's UDP endpoint: acknowledges as the protocol says, records
    what it gets (raw bytes and source address), and can send a PULL_RESP to a gateway."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.got: list = []  # (raw, source address)
        self.pull_addr: dict = {}  # gateway EUI -> address its PULL_DATA came from
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.got.append((data, addr))
            p = parse(data)
            kind = PacketKind(p.kind)
            if kind == PacketKind.PUSH_DATA:
                self.sock.sendto(encode(Packet(PacketKind.PUSH_ACK, p.token)), addr)
            elif kind == PacketKind.PULL_DATA:
                self.pull_addr[p.gateway] = addr
                self.sock.sendto(encode(Packet(PacketKind.PULL_ACK, p.token)), addr)

    def send_downlink(self, eui: str, token: int, txpk) -> bytes:
        data = encode(Packet(PacketKind.PULL_RESP, token, transmit=txpk))
        self.sock.sendto(data, self.pull_addr[eui])
        return data

    def close(self):
        self.stop_event.set()
        self.thread.join(2)
        self.sock.close()


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`sen gateway run` in its own process, its log in a file."""

    def __init__(self, tmp: Path, fleet, extra: str = ""):
        self.tmp = tmp
        self.port = udp_port()
        KeyStore(tmp / "keys.json", create=True)
        fleet.write_keys(KeyStore(tmp / "keys.json"))
        (tmp / "gateway.toml").write_text(f"""
[gateway]
id = "gw-concentrators"
data_dir = "data"
fsync = false
[keys]
file = "keys.json"
[[radio]]
backend = "semtech_udp"
name = "udp"
bind = "127.0.0.1:{self.port}"
{extra}
""")
        self.log_path = tmp / "gateway.log"
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(SEN), "gateway", "run", "-c", str(tmp / "gateway.toml")],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        self.server = ("127.0.0.1", self.port)

    def wait_up(self, fwd: StandInForwarder, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            fwd.pull()
            if fwd.wait(lambda: any(k == PacketKind.PULL_ACK for k, _ in fwd.acks), 0.3):
                return
        raise AssertionError("gateway never answered PULL_DATA\n" + self.log())

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text()

    def q(self, sql, *args):
        con = connect(self.tmp / "data" / "gateway.db", readonly=True)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def wait_frames(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.q("SELECT COUNT(*) FROM frames")[0][0] >= n:
                    return True
            except Exception:  # the store may not exist yet
                pass
            time.sleep(0.05)
        return False

    def status(self) -> dict:
        return json.loads((self.tmp / "data" / "concentrators-udp.json").read_text())

    def gateway(self, eui) -> dict:
        return {g["eui"]: g for g in self.status()["gateways"]}.get(eui, {})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.log_file.close()
        return rc
