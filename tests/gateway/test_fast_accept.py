"""Differential test: whenever the fast accept path accepts a frame, the reference decoder
(frame_decode, the spec's implementation) accepts it with the same readings."""
import random

import cbor2

from sen.firmware_modules import load
from sen.channels import BY_ID
from sen.gateway.fast_accept import INT32_MAX, INT32_MIN, MicKeys, body_readings, header_of, scaled_bounds
from sen.gateway.frame_decode import FrameRejected, compute_mic, decode_uplink
from sen.testkit.synthetic import Fleet

frame = load("frame")


def resign(f: bytes, key: bytes) -> bytes:
    """Give a mutated frame a valid MIC, so the body checks are what is tested."""
    full = f[0] & 8
    if len(f) < (12 if full else 10):
        return f
    c32 = int.from_bytes(f[3:7] if full else f[3:5], "big")
    return f[:-4] + compute_mic(key, c32, f[:-4])


def test_fast_path_never_accepts_what_the_reference_rejects():
    rng = random.Random(77)
    fleet = Fleet(3, seed=2)
    keys = fleet.keys
    mics = MicKeys(keys)
    cases = [f for f, _ in fleet.frames(300)]
    fr = fleet.framers[1]
    cases += [fr.encode(70000 + i, frame.UP_FULLCNT, [(0, [(5, rng.randint(-5, 1200), rng.choice((0, 0, 2)))])])
              for i in range(300)]
    cases += [fr.encode(80000 + i, frame.UP_BATCH | frame.UP_FULLCNT, [(60, [(5, 3, 0)]), (0, [(5, 4, 0)])])
              for i in range(50)]
    # hand-made bodies: non-canonical ints, floats, tags, bools, nested values, trailing bytes
    bodies = [b"\xa1\x05\x18\x23", b"\xa1\x05\xfb\x40\x41\x80\x00\x00\x00\x00\x00", b"\xa1\x05\xf5", b"\xa1\x05\xc1\x01",
              b"\xa2\x06\x01\x05\x01", b"\xa1\x05\x01\x00", b"\xa1\x19\x00\x05\x01", b"\xa1\x05\x82\x01\x00",
              b"\xbf\x05\x01\xff", b"\xa0", b"\xa1\x05\x3a\x7f\xff\xff\xff", b"\xa1\x0e\x1b\x00\x00\x00\x01\x00\x00\x00\x00"]
    for i, body in enumerate(bodies * 5):
        head = bytes([0x20 | 8]) + (1).to_bytes(2, "big") + (90000 + i).to_bytes(4, "big")
        cases.append(resign(head + body + b"\0\0\0\0", keys[1]))
    base = list(cases)
    for _ in range(20000):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
        f = bytes(b)
        node = int.from_bytes(f[1:3], "big") if len(f) >= 3 else 0
        cases.append(resign(f, keys[node]) if node in keys and rng.random() < 0.8 else f)
    accepted = 0
    for f in cases:
        h = header_of(f)
        if h is None or keys.get(h.node_id) is None:
            continue
        c32 = h.counter_field  # the counter as sent (state-free for this test)
        mc = mics.states(h.node_id)
        if MicKeys.mic(mc, c32, f[:-4]) != f[-4:]:
            continue
        assert MicKeys.mic(mc, c32, f[:-4]) == compute_mic(keys[h.node_id], c32, f[:-4])
        obj = body_readings(f, 7 if h.counter_bits == 32 else 5)
        if obj is None:
            continue
        accepted += 1
        try:
            up = decode_uplink(f, keys[h.node_id], c32)
        except FrameRejected as exc:
            raise AssertionError(f"fast path accepted {f.hex()} but the reference says {exc}")
        assert len(up.samples) == 1 and up.samples[0].offset_s == 0
        assert {r.channel.id: (r.scaled, r.qflags) for r in up.samples[0].readings} == {k: (v, 0) for k, v in obj.items()}
    assert accepted > 500  # the fast path does take the common frames


def test_integer_bounds_are_the_channel_ranges():
    """The fast path checks scaled integers against precomputed bounds; they must be exactly
    the values Channel.in_range (the reference decoder's check) accepts."""
    for c in BY_ID.values():
        lo, hi = scaled_bounds(c)
        assert c.in_range(lo) and c.in_range(hi), c.name
        assert lo == INT32_MIN or not c.in_range(lo - 1), c.name
        assert hi == INT32_MAX or not c.in_range(hi + 1), c.name
