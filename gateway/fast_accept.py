"""Fast accept path for the common frame: one sample of bare integer readings, well formed,
valid MIC. Anything else (batches, flagged readings, any doubt at all) returns None and the
pipeline runs the reference decoder (frame_decode), which also names the rejection reason.

Why: the reference decoder builds dataclasses per reading and re-parses through a stream
decoder, several times the cost of the bare work; most frames need none of that. The
differential test (tests/gateway/test_fast_accept.py) checks that whenever this path
accepts, the reference decoder accepts the same readings.
"""
import hashlib
import hmac

import cbor2

from sen.channels import BY_ID, Channel

_SHA = hashlib.sha256
_IPAD = bytes(range(256)).translate(bytes((x ^ 0x36) for x in range(256)))
_OPAD = bytes(range(256)).translate(bytes((x ^ 0x5C) for x in range(256)))
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def scaled_bounds(c: Channel) -> tuple[int, int]:
    """The int32 scaled values c.in_range accepts, as [lo, hi]: two integer compares per
    reading instead of a float product. Float multiplication by a positive scale is
    monotone, so stepping from the rounded quotient finds the exact edges."""
    lo = max(INT32_MIN, round(c.min / c.scale))
    while lo > INT32_MIN and (lo - 1) * c.scale >= c.min:
        lo -= 1
    while lo * c.scale < c.min:
        lo += 1
    hi = min(INT32_MAX, round(c.max / c.scale))
    while hi < INT32_MAX and (hi + 1) * c.scale <= c.max:
        hi += 1
    while hi * c.scale > c.max:
        hi -= 1
    return lo, hi


_BOUNDS = {c.id: scaled_bounds(c) for c in BY_ID.values()}


class Header:
    """The header fields the counter rules read, without the reference parser's copies."""

    __slots__ = ("node_id", "flags", "counter_field", "counter_bits")
    batch = False  # header_of takes single-sample frames only

    def __init__(self, node_id, flags, counter_field, counter_bits):
        self.node_id = node_id
        self.flags = flags
        self.counter_field = counter_field
        self.counter_bits = counter_bits

    @property
    def boot(self):
        return bool(self.flags & 4)

    @property
    def confirmed(self):
        return bool(self.flags & 1)


class MicKeys:
    """HMAC-SHA256 with each node's padded-key hash states computed once (RFC 2104)."""

    def __init__(self, keys):
        self.keys = keys
        self._cache: dict[int, tuple] = {}

    def states(self, node_id):
        key = self.keys.get(node_id)
        if key is None:
            return None
        c = self._cache.get(node_id)
        if c is None or c[0] != key:
            k = key.ljust(64, b"\0") if len(key) <= 64 else _SHA(key).digest().ljust(64, b"\0")
            c = self._cache[node_id] = (key, _SHA(k.translate(_IPAD)), _SHA(k.translate(_OPAD)))
        return c

    @staticmethod
    def mic(c, c32: int, signed) -> bytes:
        h = c[1].copy()
        h.update(c32.to_bytes(4, "big"))
        h.update(signed)
        o = c[2].copy()
        o.update(h.digest())
        return o.digest()[:4]


def header_of(frame) -> Header | None:
    """Header of a plausible single-sample uplink, else None."""
    n = len(frame)
    if n < 10 or n > 222:
        return None
    fhdr = frame[0]
    if fhdr & 0xF2 != 0x20:  # version 1, uplink, BATCH clear
        return None
    node = (frame[1] << 8) | frame[2]
    if node == 0:
        return None
    if fhdr & 8:
        if n < 12:
            return None
        return Header(node, fhdr & 0x0F, int.from_bytes(frame[3:7], "big"), 32)
    return Header(node, fhdr & 0x0F, (frame[3] << 8) | frame[4], 16)


def body_readings(frame, start: int):
    """{channel id: scaled} of a deterministic single-sample body of bare in-range integers, else None."""
    body = frame[start:-4]
    try:
        obj = cbor2.loads(body)
        # cbor2 always writes shortest-form integers and definite lengths and keeps the map's
        # order, so a plain re-encode that matches, with keys ascending (checked below), is
        # the core deterministic encoding, at a third of the cost of canonical=True
        if type(obj) is not dict or not 0 < len(obj) <= 23 or cbor2.dumps(obj) != body:
            return None
    except Exception:
        return None
    prev = -1
    for k, v in obj.items():
        b = _BOUNDS.get(k)
        if b is None or type(k) is not int or type(v) is not int or k <= prev or not b[0] <= v <= b[1]:
            return None
        prev = k
    return obj
