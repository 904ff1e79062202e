"""Strict decoder for downlinks (docs/frame-format.md section 5), the gateway's own check of
what it sends and the reference the firmware's parse_downlink is tested against.

Reasons match firmware/frame.py parse_downlink: a ValueError whose text is the reason code.
"""
import hmac
from dataclasses import dataclass, field

import cbor2

from sen.gateway.downlink_encode import (FLAG_ACK, FLAG_CONFIG, FLAG_RANGE, FLAG_TIME, KEY_NAMES,
                                         check_config_value)
from sen.gateway.frame_decode import MAX_FRAME, MIC_LEN, VERSION, compute_mic

KNOWN_FLAGS = FLAG_ACK | FLAG_CONFIG | FLAG_TIME | FLAG_RANGE


@dataclass(frozen=True)
class Downlink:
    flags: int
    counter: int
    time_s: int | None = None
    range_bits: int | None = None
    config: dict = field(default_factory=dict)  # by name, e.g. {"sf": 9}

    def stored_before(self) -> list[int]:
        """Counters the RANGE bitmap names as stored, newest first."""
        bits = self.range_bits or 0
        return [self.counter - 1 - i for i in range(16) if bits >> i & 1]


def decode_downlink(frame: bytes, node_id: int, key: bytes, counter: int) -> Downlink:
    n = len(frame)
    if n < 11:
        raise ValueError("too_short")
    if n > MAX_FRAME:
        raise ValueError("too_long")
    h = frame[0]
    if h >> 5 != VERSION:
        raise ValueError("bad_version")
    if not h & 0x10:
        raise ValueError("wrong_direction")
    if int.from_bytes(frame[1:3], "big") != node_id:
        raise ValueError("not_for_me")
    if int.from_bytes(frame[3:7], "big") != counter:
        raise ValueError("replay")
    if not hmac.compare_digest(compute_mic(key, counter, frame[:n - MIC_LEN]), frame[n - MIC_LEN:]):
        raise ValueError("bad_mic")
    flags = h & 0x0F
    if flags & ~KNOWN_FLAGS:
        raise ValueError("bad_flags")
    i, end = 7, n - MIC_LEN
    time_s = range_bits = None
    if flags & FLAG_TIME:
        if i + 4 > end:
            raise ValueError("too_short")
        time_s, i = int.from_bytes(frame[i:i + 4], "big"), i + 4
    if flags & FLAG_RANGE:
        if i + 2 > end:
            raise ValueError("too_short")
        range_bits, i = int.from_bytes(frame[i:i + 2], "big"), i + 2
    config = {}
    if flags & FLAG_CONFIG:
        body = bytes(frame[i:end])
        try:
            raw = cbor2.loads(body)
        except Exception:
            raise ValueError("bad_config") from None
        if not isinstance(raw, dict) or not raw:
            raise ValueError("bad_config")
        for k, v in raw.items():
            if type(k) is not int or k not in KEY_NAMES:
                raise ValueError("bad_config")
            try:
                check_config_value(KEY_NAMES[k], v)
            except ValueError:
                raise ValueError("bad_config") from None
            config[KEY_NAMES[k]] = v
        # one encoding per map: a re-encode must give the same bytes (this also refuses trailing bytes)
        if cbor2.dumps(raw, canonical=True) != body:
            raise ValueError("bad_config")
    elif i != end:
        raise ValueError("trailing_bytes")
    return Downlink(flags, counter, time_s, range_bits, config)
