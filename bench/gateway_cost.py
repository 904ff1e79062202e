"""Worst-case CPU per input, found by a small fuzzer (issue 16's bounded cost): inputs of at
most 1 MiB on the serial link (through the backend's line splitter and SENRX parser, in the
chunks a read returns), and frames of at most 222 bytes with a valid MIC (header, MIC and
strict CBOR decode). Target: no input costs more than 100 ms of CPU. Figures are thread CPU
time (time.thread_time), so other load on the machine does not inflate them much."""
import random
import time

from sen.gateway.frame_decode import FrameRejected, MAX_FRAME, compute_mic, decode_uplink, parse_header
from sen.gateway.config import RadioConfig
from sen.gateway.radio.base import Backend
from sen.gateway.radio.serial_backend import MAX_LINE, LineSplitter, SerialBackend
from sen.testkit.synthetic import Fleet

TARGET_MS = 100.0
MIB = 1 << 20


class _Sink(SerialBackend):
    """The serial backend's own line handling, with frames handed to a no-op."""

    def __init__(self):
        Backend.__init__(self, RadioConfig("serial", "bench", options={"port": "loop://"}), "bench", lambda f, m: None)
        self.bad_lines = 0
        self.lines = LineSplitter()


def _serial_cost(data: bytes, chunk: int) -> float:
    be = _Sink()
    be.on_frame = lambda f, m: None
    t0 = time.thread_time()
    for i in range(0, len(data), chunk):
        be._lines(be.lines.feed(data[i:i + chunk]))
    return (time.thread_time() - t0) * 1000


def serial_inputs(rng: random.Random, n_random: int):
    good = b"SENRX -80.5 7.2 " + b"ab" * 222 + b"\n"
    yield "one 1 MiB line, no newline", b"x" * MIB
    yield "one 1 MiB hex SENRX line", b"SENRX -80 7 " + b"ab" * ((MIB - 13) // 2) + b"\n"
    yield "1 MiB of newlines", b"\n" * MIB
    yield "1 MiB of spaces", b" " * MIB
    yield "1 MiB of CRLF", b"\r\n" * (MIB // 2)
    yield "1 MiB of one-byte lines", b"a\n" * (MIB // 2)
    yield "1 MiB of 'SENRX ' lines", b"SENRX \n" * (MIB // 7)
    yield "lines just over the cap", (b"SENRX " + b"a" * (MAX_LINE - 5) + b"\n") * (MIB // (MAX_LINE + 2))
    yield "lines at the cap, bad hex", (b"SENRX 1 2 " + b"zz" * ((MAX_LINE - 11) // 2) + b"\n") * (MIB // MAX_LINE)
    yield "1 MiB of good SENRX lines", good * (MIB // len(good))
    yield "1 MiB of whitespace-split tokens", b"a " * (MIB // 2)
    for i in range(n_random):
        kind = rng.randrange(3)
        if kind == 0:
            data = rng.randbytes(rng.randrange(1, MIB + 1))
        elif kind == 1:
            parts = [good, b"\n", b" ", b"SENRX", b"ff" * rng.randrange(1, 4000), b"-1e308 ", b"nan "]
            data = b"".join(rng.choice(parts) for _ in range(rng.randrange(1, 3000)))[:MIB]
        else:
            data = (rng.choice([b"a", b"\n", b" ", b"SENRX "]) * rng.randrange(1, MIB // 6))[:MIB]
        yield f"random #{i} ({len(data)} bytes)", data


def frame_inputs(rng: random.Random, n_random: int, fleet: Fleet):
    base = [f for f, _ in fleet.frames(50)]

    def signed(frame: bytes, body: bytes) -> bytes:
        h = parse_header(frame)
        head = frame[:len(frame) - len(h.body) - 4]
        body = body[:MAX_FRAME - 4 - len(head)]
        return head + body + compute_mic(fleet.keys[h.node_id], h.counter_field, head + body)

    share = [bytes([0xD8, 28, 0x82, 0, 0])] + [bytes([0xD8, 28, 0x82, 0xD8, 29, k - 1, 0xD8, 29, k - 1])
                                                  for k in range(1, 24)]
    bodies = {
        "value-sharing bomb (tags 28/29)": bytes([0xA1, 1, 0x97]) + b"".join(share),
        "nested arrays to the limit": b"\x81" * 200 + b"\x00",
        "nested maps to the limit": b"\xa1\x01" * 100 + b"\x00",
        "array declaring 2^64-1 items": b"\x9b" + b"\xff" * 8,
        "byte string declaring 2^63": b"\x5b\x7f" + b"\xff" * 7,
        "bignum tag 2": b"\xc2\x58\xc8" + b"\xff" * 200,
        "regex tag 35": b"\xd8\x23\x78\xc0" + b"(a+)+" * 38 + b"!!",
        "indefinite arrays": b"\x9f" * 200 + b"\xff" * 10,
        "200 floats": b"\x98\xc8" + b"\xf9\x3c\x00" * 66,
        "map of 100 int keys": b"\xb8\x64" + b"".join(bytes([0x18, k, 0]) for k in range(24, 124))[:210],
    }
    for name, body in bodies.items():
        yield name, signed(rng.choice(base), body)
    for i in range(n_random):
        f = bytearray(rng.choice(base))
        for _ in range(rng.randrange(1, 8)):
            op = rng.randrange(3)
            if op == 0:
                f[rng.randrange(len(f))] = rng.randrange(256)
            elif op == 1:
                f += rng.randbytes(rng.randrange(1, 60))
            else:
                at = rng.randrange(len(f))
                f[at:at] = rng.choice([b"\xd8\x1c", b"\xd8\x1d\x00", b"\x9f", b"\xc2", b"\x81" * 20])
        f = bytes(f[:MAX_FRAME])
        h = None
        try:
            h = parse_header(f)
        except FrameRejected:
            pass
        if h is not None and h.node_id in fleet.keys:
            f = f[:-4] + compute_mic(fleet.keys[h.node_id], h.counter_field, f[:-4])
        yield f"mutated #{i}", f


def _frame_cost(frame: bytes, keys: dict) -> float:
    t0 = time.thread_time()
    try:
        h = parse_header(frame)
        decode_uplink(frame, keys.get(h.node_id, b"\0" * 16), h.counter_field)
    except FrameRejected:
        pass
    return (time.thread_time() - t0) * 1000


def run(n_serial: int = 30, n_frames: int = 20_000, seed: int = 16, log=print) -> dict:
    rng = random.Random(seed)
    worst_s = (0.0, "", 0)
    for name, data in serial_inputs(rng, n_serial):
        for chunk in (4096, 65536):
            ms = _serial_cost(data, chunk)
            if ms > worst_s[0]:
                worst_s = (ms, name, chunk)
    log(f"serial link: worst {worst_s[0]:.1f} ms CPU for '{worst_s[1]}' read in {worst_s[2]}-byte chunks "
        f"(inputs <= 1 MiB; target <= {TARGET_MS:.0f} ms)")
    fleet = Fleet(5, seed=seed)
    worst_f = (0.0, "", b"")
    for name, frame in frame_inputs(rng, n_frames, fleet):
        ms = _frame_cost(frame, fleet.keys)
        if ms > worst_f[0]:
            worst_f = (ms, name, frame)
    log(f"frames: worst {worst_f[0]:.2f} ms CPU for '{worst_f[1]}' ({len(worst_f[2])} bytes; frames <= 222 bytes "
        f"with a valid MIC; target <= {TARGET_MS:.0f} ms)")
    return {"cost_serial_worst_ms": round(worst_s[0], 2), "cost_serial_worst_input": worst_s[1],
            "cost_frame_worst_ms": round(worst_f[0], 3), "cost_frame_worst_input": worst_f[1],
            "cost_frame_worst_hex": worst_f[2].hex(), "cost_target_ms": TARGET_MS,
            "cost_within_target": worst_s[0] <= TARGET_MS and worst_f[0] <= TARGET_MS}


if __name__ == "__main__":
    import json
    print(json.dumps(run()))
