"""Strict decoder for Sen v1 uplink frames (docs/frame-format.md), built on cbor2.

Everything that can go wrong comes out as FrameRejected with a Reason, never as any other
exception: the gateway counts rejections by reason and keeps running.
"""
import hashlib
import hmac
import io
from dataclasses import dataclass
from enum import StrEnum

import cbor2

from sen.channels import BY_ID, Q_ALL, Channel

VERSION = 1
FLAG_CONFIRMED = 1
FLAG_BATCH = 2
FLAG_BOOT = 4
FLAG_FULLCNT = 8
MIN_FRAME = 10
MAX_FRAME = 222
MIC_LEN = 4
MAX_READINGS = 23
MAX_SAMPLES = 16
MAX_DT = 604800
INT32 = (-(2**31), 2**31 - 1)


class Reason(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    BAD_VERSION = "bad_version"
    WRONG_DIRECTION = "wrong_direction"
    BAD_NODE_ID = "bad_node_id"
    UNKNOWN_NODE = "unknown_node"
    COUNTER_UNKNOWN = "counter_unknown"
    BAD_MIC = "bad_mic"
    REPLAY = "replay"
    COUNTER_REUSED = "counter_reused"
    CBOR_MALFORMED = "cbor_malformed"
    NOT_DETERMINISTIC = "not_deterministic"
    TRAILING_BYTES = "trailing_bytes"
    BAD_TYPE = "bad_type"
    EMPTY_BODY = "empty_body"
    TOO_MANY_READINGS = "too_many_readings"
    UNKNOWN_CHANNEL = "unknown_channel"
    OUT_OF_RANGE = "out_of_range"
    BAD_QFLAGS = "bad_qflags"
    BATCH_TOO_LONG = "batch_too_long"
    BAD_OFFSET = "bad_offset"
    BAD_CONFIG = "bad_config"


class FrameRejected(Exception):
    """A frame the gateway refuses, with the spec's reason code and a human detail."""

    def __init__(self, reason: Reason, detail: str = ""):
        self.reason = Reason(reason)
        self.detail = detail
        super().__init__(f"{self.reason.value}: {detail}" if detail else self.reason.value)


@dataclass(frozen=True, slots=True)
class UplinkHeader:
    flags: int
    node_id: int
    counter_field: int
    counter_bits: int  # 16 or 32
    body: bytes
    signed: bytes  # everything the MIC covers after C32
    mic: bytes

    @property
    def confirmed(self) -> bool:
        return bool(self.flags & FLAG_CONFIRMED)

    @property
    def batch(self) -> bool:
        return bool(self.flags & FLAG_BATCH)

    @property
    def boot(self) -> bool:
        return bool(self.flags & FLAG_BOOT)

    @property
    def full_counter(self) -> int | None:
        return self.counter_field if self.counter_bits == 32 else None


@dataclass(frozen=True, slots=True)
class Reading:
    channel: Channel
    scaled: int | None
    value: float | None
    qflags: int


@dataclass(frozen=True, slots=True)
class Sample:
    offset_s: int  # seconds before the frame was sent
    readings: tuple[Reading, ...]


@dataclass(frozen=True, slots=True)
class Uplink:
    header: UplinkHeader
    counter: int
    samples: tuple[Sample, ...]


def parse_header(frame: bytes) -> UplinkHeader:
    """Split an uplink into header fields, body and MIC; checks only what needs no key."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise FrameRejected(Reason.BAD_TYPE, "frame is not bytes")
    frame = bytes(frame)
    n = len(frame)
    if n < MIN_FRAME:
        raise FrameRejected(Reason.TOO_SHORT, f"{n} bytes, minimum {MIN_FRAME}")
    if n > MAX_FRAME:
        raise FrameRejected(Reason.TOO_LONG, f"{n} bytes, maximum {MAX_FRAME}")
    fhdr = frame[0]
    if fhdr >> 5 != VERSION:
        raise FrameRejected(Reason.BAD_VERSION, f"version {fhdr >> 5}")
    if fhdr & 0x10:
        raise FrameRejected(Reason.WRONG_DIRECTION, "downlink frame on the uplink path")
    flags = fhdr & 0x0F
    node_id = int.from_bytes(frame[1:3], "big")
    if node_id == 0:
        raise FrameRejected(Reason.BAD_NODE_ID, "node id 0 is reserved")
    bits = 32 if flags & FLAG_FULLCNT else 16
    start = 3 + bits // 8
    if n < start + 1 + MIC_LEN:
        raise FrameRejected(Reason.TOO_SHORT, "no room for a body")
    return UplinkHeader(
        flags=flags,
        node_id=node_id,
        counter_field=int.from_bytes(frame[3:start], "big"),
        counter_bits=bits,
        body=frame[start : n - MIC_LEN],
        signed=frame[: n - MIC_LEN],
        mic=frame[n - MIC_LEN :],
    )


def compute_mic(key: bytes, c32: int, signed: bytes) -> bytes:
    return hmac.new(key, c32.to_bytes(4, "big") + signed, hashlib.sha256).digest()[:MIC_LEN]


def verify_mic(header: UplinkHeader, key: bytes, c32: int) -> None:
    if not hmac.compare_digest(compute_mic(key, c32, header.signed), header.mic):
        raise FrameRejected(Reason.BAD_MIC, f"node {header.node_id} counter {c32}")


def _screen(body: bytes) -> None:
    """One linear walk over the CBOR heads before cbor2 sees the body: the spec allows no tags
    and no indefinite lengths, and cbor2 would expand some tags (value sharing, 28/29) before
    any later check could refuse them. Each head consumes at least one byte, so this costs
    O(len(body)) whatever the declared counts; with it, decoding a frame of at most 222 bytes
    stays under a millisecond or so (`sen bench gateway --cost-only` reports the worst case found)."""
    i, n = 0, len(body)
    while i < n:
        ib = body[i]
        major, ai = ib >> 5, ib & 31
        i += 1
        if ai >= 28:
            if ai == 31 and major in (2, 3, 4, 5):
                raise FrameRejected(Reason.NOT_DETERMINISTIC, "indefinite-length item (the spec wants definite lengths)")
            raise FrameRejected(Reason.CBOR_MALFORMED, f"additional information {ai} in major type {major}")
        size = (1 << (ai - 24)) if ai >= 24 else 0
        arg = int.from_bytes(body[i:i + size], "big") if size else ai
        i += size
        if major == 6:
            raise FrameRejected(Reason.BAD_TYPE, f"CBOR tag {arg} (the spec allows no tags)")
        if major in (2, 3):
            i += arg  # string bytes hold no heads


def _load_body(body: bytes):
    _screen(body)
    fp = io.BytesIO(body)
    try:
        obj = cbor2.CBORDecoder(fp).decode()
    except Exception as exc:  # cbor2 raises several types on garbage; all mean the same here
        raise FrameRejected(Reason.CBOR_MALFORMED, type(exc).__name__) from None
    if fp.tell() != len(body):
        raise FrameRejected(Reason.TRAILING_BYTES, f"{len(body) - fp.tell()} bytes after the body")
    try:
        canonical = cbor2.dumps(obj, canonical=True)
    except Exception:
        raise FrameRejected(Reason.BAD_TYPE, "body holds values outside the spec") from None
    if canonical != body:
        raise FrameRejected(Reason.NOT_DETERMINISTIC, "body is not in core deterministic CBOR")
    return obj


def _is_int(x) -> bool:
    return type(x) is int  # bool is an int subclass in Python; CBOR true/false are not values here


def _readings(obj) -> tuple[Reading, ...]:
    if type(obj) is not dict:
        raise FrameRejected(Reason.BAD_TYPE, "readings must be a map")
    if not obj:
        raise FrameRejected(Reason.EMPTY_BODY, "a sample with no readings")
    if len(obj) > MAX_READINGS:
        raise FrameRejected(Reason.TOO_MANY_READINGS, f"{len(obj)} readings, maximum {MAX_READINGS}")
    out = []
    for key, item in obj.items():
        if not _is_int(key):
            raise FrameRejected(Reason.BAD_TYPE, "channel id must be an unsigned integer")
        channel = BY_ID.get(key)
        if channel is None:
            raise FrameRejected(Reason.UNKNOWN_CHANNEL, f"channel {key}")
        if _is_int(item):
            scaled, q = item, 0
        elif type(item) is list and len(item) == 2:
            scaled, q = item
            if not _is_int(q) or q <= 0 or q & ~Q_ALL:
                raise FrameRejected(Reason.BAD_QFLAGS, f"channel {channel.name} qflags {q!r}")
            if scaled is not None and not _is_int(scaled):
                raise FrameRejected(Reason.BAD_TYPE, f"channel {channel.name} value")
        else:
            raise FrameRejected(Reason.BAD_TYPE, f"channel {channel.name} reading")
        if scaled is not None:
            if not INT32[0] <= scaled <= INT32[1]:
                raise FrameRejected(Reason.OUT_OF_RANGE, f"channel {channel.name} exceeds int32")
            if q == 0 and not channel.in_range(scaled):
                raise FrameRejected(
                    Reason.OUT_OF_RANGE, f"channel {channel.name} = {channel.physical(scaled)} unflagged"
                )
        out.append(Reading(channel, scaled, None if scaled is None else channel.physical(scaled), q))
    return tuple(out)


def decode_body(header: UplinkHeader) -> tuple[Sample, ...]:
    obj = _load_body(header.body)
    if not header.batch:
        return (Sample(0, _readings(obj)),)
    if type(obj) is not list:
        raise FrameRejected(Reason.BAD_TYPE, "a batch must be an array")
    if not obj:
        raise FrameRejected(Reason.EMPTY_BODY, "empty batch")
    if len(obj) > MAX_SAMPLES:
        raise FrameRejected(Reason.BATCH_TOO_LONG, f"{len(obj)} samples, maximum {MAX_SAMPLES}")
    samples, last_dt = [], None
    for entry in obj:
        if type(entry) is not list or len(entry) != 2 or not _is_int(entry[0]):
            raise FrameRejected(Reason.BAD_TYPE, "a batch sample must be [dt, readings]")
        dt = entry[0]
        if not 0 <= dt <= MAX_DT or (last_dt is not None and dt >= last_dt):
            raise FrameRejected(Reason.BAD_OFFSET, f"dt {dt} after {last_dt}")
        last_dt = dt
        samples.append(Sample(dt, _readings(entry[1])))
    return tuple(samples)


def decode_uplink(frame: bytes, key: bytes, counter: int | None = None) -> Uplink:
    """Header, MIC and body in one call. `counter` is the reconstructed 32-bit counter;
    it may be omitted only for FULLCNT frames. Counter-state checks are verify's job."""
    header = parse_header(frame)
    c32 = header.full_counter if header.full_counter is not None else counter
    if c32 is None:
        raise FrameRejected(Reason.COUNTER_UNKNOWN, "16-bit counter and no node state")
    verify_mic(header, key, c32)
    return Uplink(header, c32, decode_body(header))
