"""The Semtech UDP packet-forwarder protocol (GWMP), datagram by datagram, as written in
../shared/standards/semtech-udp/PROTOCOL.md (sx1302_hal V2.1.0). No sockets here. Both sides
use it: the gateway's `semtech_udp` backend and LoRaWAN relay (server side), and the
emulator's concentrator packet forwarder (gateway side). Tests check it against an
independent implementation (pamoja-gateway).

Every problem with a datagram raises BadDatagram, whose message is one line naming what is
wrong, so the backend can log it and carry on.
"""
import base64
import binascii
import json
import re
from dataclasses import dataclass

PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0, 1, 2, 3, 4, 5
KIND_NAMES = {PUSH_DATA: "PUSH_DATA", PUSH_ACK: "PUSH_ACK", PULL_DATA: "PULL_DATA", PULL_RESP: "PULL_RESP",
              PULL_ACK: "PULL_ACK", TX_ACK: "TX_ACK"}
# v1 lacks TX_ACK and the rxpk fields added since, but its datagrams have the same layout
VERSIONS = (1, 2)
TX_ERRORS = ("TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON", "TX_FREQ", "TX_POWER",
             "GPS_UNLOCKED")
_WITH_EUI = (PUSH_DATA, PULL_DATA, TX_ACK)
_DATR = re.compile(r"SF(\d{1,2})BW(\d{3})$")


class BadDatagram(Exception):
    """One line: what is wrong with the datagram."""


@dataclass
class Datagram:
    version: int
    token: int
    kind: int
    eui: str | None  # 16 lower-case hex digits, for the kinds a gateway sends
    body: dict | None  # the JSON object, if the kind carries one and it is there
    raw: bytes

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


def parse(data: bytes) -> Datagram:
    if len(data) < 4:
        raise BadDatagram(f"{len(data)}-byte datagram is too short for a Semtech UDP header (4 bytes)")
    version, kind = data[0], data[3]
    if version not in VERSIONS:
        raise BadDatagram(f"protocol version {version} is not supported (1 and 2 are); is this a Semtech UDP "
                          f"packet forwarder? LoRa Basics Station speaks another protocol")
    if kind not in KIND_NAMES:
        raise BadDatagram(f"message type 0x{kind:02x} is unknown")
    token = int.from_bytes(data[1:3], "big")
    eui, start = None, 4
    if kind in _WITH_EUI:
        if len(data) < 12:
            raise BadDatagram(f"{KIND_NAMES[kind]} of {len(data)} bytes has no 8-byte gateway EUI")
        eui, start = data[4:12].hex(), 12
    body = None
    rest = data[start:].rstrip(b"\x00")  # the forwarder may append a C string terminator
    if kind in (PUSH_DATA, PULL_RESP) or (kind == TX_ACK and rest):
        try:
            body = json.loads(rest.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadDatagram(f"{KIND_NAMES[kind]} carries no valid JSON object ({exc.__class__.__name__}: "
                              f"{str(exc)[:80]})") from None
        if not isinstance(body, dict):
            raise BadDatagram(f"{KIND_NAMES[kind]} JSON is a {type(body).__name__}, not an object")
    return Datagram(version, token, kind, eui, body, bytes(data))


def header(version: int, token: int, kind: int) -> bytes:
    return bytes([version]) + token.to_bytes(2, "big") + bytes([kind])


def ack_for(d: Datagram) -> bytes:
    """PUSH_ACK for a PUSH_DATA, PULL_ACK for a PULL_DATA: same version and token."""
    return header(d.version, d.token, PUSH_ACK if d.kind == PUSH_DATA else PULL_ACK)


def pull_resp(version: int, token: int, txpk: dict) -> bytes:
    # v1 forwarders ignore the token of a PULL_RESP (and send no TX_ACK)
    return header(version, token if version >= 2 else 0, PULL_RESP) + json.dumps(
        {"txpk": txpk}, separators=(",", ":")).encode()


def push_data(version: int, token: int, eui: str, body: dict) -> bytes:
    return header(version, token, PUSH_DATA) + bytes.fromhex(eui) + json.dumps(body, separators=(",", ":")).encode()


def pull_data(version: int, token: int, eui: str) -> bytes:
    return header(version, token, PULL_DATA) + bytes.fromhex(eui)


def tx_ack(version: int, token: int, eui: str, error: str | None = None) -> bytes:
    """The forwarder's verdict on a PULL_RESP; no JSON when it was accepted (PROTOCOL.md 5.5)."""
    body = b"" if error is None else json.dumps({"txpk_ack": {"error": error}}, separators=(",", ":")).encode()
    return header(version, token, TX_ACK) + bytes.fromhex(eui) + body


def tx_ack_result(d: Datagram) -> tuple[str | None, str | None]:
    """(error, warning) of a TX_ACK; (None, None) when the downlink was accepted."""
    ack = (d.body or {}).get("txpk_ack")
    if d.body is not None and not isinstance(ack, dict):
        raise BadDatagram("TX_ACK JSON has no txpk_ack object")
    ack = ack or {}
    err = ack.get("error")
    err = None if err in (None, "NONE", "") else str(err)
    warn = ack.get("warn")
    return err, None if warn in (None, "NONE", "") else f"{warn}={ack.get('value')}"


@dataclass
class Rx:
    """One rxpk: a received LoRa packet and its concentrator metadata."""
    payload: bytes
    tmst: int
    freq_hz: int
    sf: int
    bw_hz: int
    codr: str
    rssi: float
    snr: float
    stat: int
    meta: dict  # the rxpk's metadata as the gateway sent it (without data), for the record

    @property
    def datr(self) -> str:
        return f"SF{self.sf}BW{self.bw_hz // 1000}"


def parse_datr(datr) -> tuple[int, int]:
    m = _DATR.match(datr) if isinstance(datr, str) else None
    if m is None or not 5 <= int(m.group(1)) <= 12 or int(m.group(2)) not in (125, 250, 500):
        raise BadDatagram(f"datr {datr!r} is not a LoRa data rate like 'SF9BW125'")
    return int(m.group(1)), int(m.group(2)) * 1000


def _num(obj, key, where, typ=(int, float)):
    v = obj.get(key)
    if v is None:
        raise BadDatagram(f"{where} has no '{key}'")
    if not isinstance(v, typ) or isinstance(v, bool):
        raise BadDatagram(f"{where} '{key}' is {v!r}, not a number")
    return v


def parse_rxpk(obj, where: str = "rxpk") -> Rx | None:
    """An Rx for a LoRa rxpk; None for FSK (never a Sen frame: relayed as it is)."""
    if not isinstance(obj, dict):
        raise BadDatagram(f"{where} is a {type(obj).__name__}, not an object")
    if obj.get("modu", "LORA") != "LORA":
        return None
    data = obj.get("data")
    if not isinstance(data, str):
        raise BadDatagram(f"{where} has no 'data' string")
    try:
        payload = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadDatagram(f"{where} 'data' is not base64: {data[:40]!r}") from None
    size = obj.get("size")
    if size is not None and size != len(payload):
        raise BadDatagram(f"{where} 'size' {size} differs from the {len(payload)} bytes of 'data'")
    tmst = _num(obj, "tmst", where, int)
    if not 0 <= tmst <= 0xFFFFFFFF:
        raise BadDatagram(f"{where} 'tmst' {tmst} is not a 32-bit counter value")
    freq = _num(obj, "freq", where)
    sf, bw = parse_datr(obj.get("datr"))
    rssi = obj.get("rssis", obj.get("rssi"))  # the signal's RSSI where the concentrator gives it
    if rssi is None:
        _num(obj, "rssi", where)
    stat = obj.get("stat", 1)
    meta = {k: v for k, v in obj.items() if k != "data"}
    return Rx(payload, tmst, int(round(freq * 1e6)), sf, bw, str(obj.get("codr", "4/5")), float(rssi),
              float(obj.get("lsnr", 0.0)), stat if isinstance(stat, int) else 1, meta)
