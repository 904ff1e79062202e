"""100,000 random and mutated frames: only FrameRejected (or a valid decode) may come out."""
import json
import random
from collections import Counter

from sen.gateway.frame_decode import FrameRejected, compute_mic, decode_uplink
from sen.paths import FRAME_VECTORS

N = 100_000


def test_decoder_survives_100k_random_and_mutated_frames():
    vectors = json.loads(FRAME_VECTORS.read_text())["uplink_valid"]
    seeds = [(bytes.fromhex(v["frame"]), bytes.fromhex(v["key"]), v["counter"]) for v in vectors]
    rng = random.Random(20261123)
    reasons = Counter()
    for i in range(N):
        base, key, counter = seeds[i % len(seeds)]
        mode = i % 4
        resign = mode == 3  # a buggy node with a good key: exercises the body checks behind the MIC
        if mode == 0:
            data = rng.randbytes(rng.randint(0, 260))
        else:
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                pos = rng.randrange(len(data)) if data else 0
                if op < 0.5 and data:
                    data[pos] ^= 1 << rng.randrange(8)
                elif op < 0.7:
                    data[pos:pos] = rng.randbytes(rng.randint(1, 8))
                elif op < 0.9 and len(data) > 1:
                    del data[pos:pos + rng.randint(1, 4)]
                else:
                    data = data[: rng.randint(0, len(data))]
            data = bytes(data)
            if resign and len(data) > 8:
                data = data[:-4] + compute_mic(key, counter, data[:-4])
        try:
            decode_uplink(data, key, counter)
            reasons["accepted" if data == base or resign else "forged_accepted"] += 1
        except FrameRejected as exc:
            reasons[exc.reason.value] += 1
    assert sum(reasons.values()) == N
    # Any change without the key must be caught: only untouched or re-signed frames get through.
    assert reasons["forged_accepted"] == 0, reasons
    assert reasons["bad_mic"] > N / 4 and reasons["too_short"] > 0 and reasons["bad_version"] > 0
    for body_reason in ("cbor_malformed", "not_deterministic", "bad_type", "trailing_bytes"):
        assert reasons[body_reason] > 0, (body_reason, reasons)
