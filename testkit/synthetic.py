"""Synthetic node traffic made with the firmware's own encoder (firmware/frame.py), for
tests, benchmarks, the kill test and the demo: frames exactly as nodes send them."""
import random

from sen.firmware_modules import load
from sen.gateway.rx_meta import RxMeta

AIR = (1, 2, 3, 5, 6, 7)  # air_temp, rh, pressure, pm25, pm10, battery


def node_key(node_id: int, seed: int = 0) -> bytes:
    return random.Random(node_id * 7919 + seed).randbytes(16)


def air_readings(rng: random.Random) -> list[tuple[int, int, int]]:
    return [(1, rng.randint(250, 360), 0), (2, rng.randint(100, 190), 0), (3, rng.randint(10000, 10130), 0),
            (5, rng.randint(5, 180), 0), (6, rng.randint(10, 250), 0), (7, rng.randint(170, 210), 0)]


class Fleet:
    """N air nodes sending one frame per `interval_s`, counters from `start`."""

    def __init__(self, n_nodes: int, seed: int = 1, first_node: int = 1, interval_s: int = 60,
                 t0: float = 1_795_000_000.0, gateway_id: str = "gw-test"):
        frame = load("frame")
        self.rng = random.Random(seed)
        self.nodes = list(range(first_node, first_node + n_nodes))
        self.keys = {n: node_key(n, seed) for n in self.nodes}
        self.framers = {n: frame.Framer(n, self.keys[n]) for n in self.nodes}
        self.counters = {n: 0 for n in self.nodes}
        self.interval_s = interval_s
        self.t0 = t0
        self.gateway_id = gateway_id
        self.flag_boot = frame.UP_BOOT
        self.flag_confirmed = frame.UP_CONFIRMED
        self.flag_batch = frame.UP_BATCH

    def frames(self, n_frames: int):
        """Yields (frame bytes, RxMeta), round-robin over nodes; first frame per node has BOOT."""
        i = 0
        while i < n_frames:
            for n in self.nodes:
                if i >= n_frames:
                    return
                c = self.counters[n]
                flags = self.flag_boot if c == 0 else 0
                t = self.t0 + (c * self.interval_s) + (n % self.interval_s)
                f = self.framers[n].encode(c, flags, [(0, air_readings(self.rng))])
                self.counters[n] = c + 1
                yield f, RxMeta(self.gateway_id, t, 921_400_000, 7, 125_000,
                                round(self.rng.uniform(-120, -60), 1), round(self.rng.uniform(-10, 10), 1), "r0")
                i += 1

    def write_keys(self, key_store):
        for n, k in self.keys.items():
            if key_store.get(n) != k:
                if n in key_store.entries():
                    key_store.rotate(n, k)
                else:
                    key_store.add(n, k)
