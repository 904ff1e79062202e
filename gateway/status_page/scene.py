"""A small city scene for tests, the benchmark and demos: air, water and rain nodes over the
last days, framed by the firmware's own encoder (firmware/frame.py) exactly as nodes send
them, with the things an operator must notice: a silent node, a low battery, sensor flags,
forged frames (MIC failures), a reboot and copies heard by two gateways.

`Scene(now, days).frames()` gives (frame, RxMeta) in time order; `feed(dir, ...)` pushes
them through the gateway's real raw log + pipeline into a store.
"""
import math
import random
from pathlib import Path

from sen.firmware_modules import load
from sen.gateway.calibrate import Calibrator
from sen.gateway.key_store import KeyStore
from sen.gateway.pipeline import Pipeline
from sen.gateway.raw_log import RawLog
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store

NODES = {
    101: {"name": "Cầu Rồng", "kind": "air", "interval_s": 300},
    102: {"name": "Sơn Trà", "kind": "air", "interval_s": 300},
    201: {"name": "Sông Hàn", "kind": "water", "interval_s": 600},
    301: {"name": "Hoà Vang", "kind": "rain", "interval_s": 300},
    401: {"name": "Ngũ Hành Sơn", "kind": "air", "interval_s": 300},
}
SILENT_NODE = 401
LOW_BATTERY_NODE = 102
FORGED_NODE = 102
REBOOT_NODE = 101


def key_of(node: int) -> bytes:
    return random.Random(node * 104729).randbytes(16)


class Scene:
    def __init__(self, now: float, days: float = 2.0, seed: int = 7, gateway_id: str = "gw-danang",
                 nodes: dict | None = None, tz_offset_h: float = 7.0):
        frame = load("frame")
        self.frame_mod = frame
        self.now = now
        self.days = days
        self.rng = random.Random(seed)
        self.gateway_id = gateway_id
        self.nodes = dict(NODES if nodes is None else nodes)
        self.keys = {n: key_of(n) for n in self.nodes}
        self.framers = {n: frame.Framer(n, self.keys[n]) for n in self.nodes}
        self.counters = {n: 0 for n in self.nodes}
        self.tz_offset_h = tz_offset_h
        self.tips = 0.0
        self._end = now

    # --- readings per kind ----------------------------------------------------------------
    def _hour(self, t):
        return ((t / 3600.0) + self.tz_offset_h) % 24

    def air(self, node, t, k):
        r = self.rng
        h = self._hour(t)
        base = 38 if node == 102 else 24
        pm25 = base + 18 * math.sin((h - 7) / 24 * 2 * math.pi) + 10 * math.sin(t / 86400 * 1.7) + r.gauss(0, 3)
        pm25 = max(1, pm25)
        pm10 = pm25 * 1.6 + r.gauss(0, 3)
        temp = 27 + 4 * math.sin((h - 9) / 24 * 2 * math.pi) + r.gauss(0, 0.2)
        rh = min(99, max(30, 78 - 12 * math.sin((h - 9) / 24 * 2 * math.pi) + r.gauss(0, 1)))
        batt = (3.34 if node == LOW_BATTERY_NODE else 3.97) - 0.00002 * k  # a slow drain
        q_pm = 4 if k == 0 else 0  # first frame after boot: PMS5003 still warming up
        # the PM sensor of 102 sticks now and then, and again in the last quarter hour
        stuck = node == 102 and (40 <= k % 200 < 44 or self._end - t < 900)
        rd = [(1, round(temp * 10), 0), (2, round(rh * 2), 0), (3, round((1008 + r.gauss(0, 1)) * 10), 0),
              (5, round(pm25), q_pm | (8 if stuck else 0)), (6, round(max(1, pm10)), q_pm),
              (7, round(batt * 50), 0)]
        return rd

    def water(self, node, t, k):
        r = self.rng
        h = self._hour(t)
        ph = 7.1 + 0.25 * math.sin((h - 14) / 24 * 2 * math.pi) + r.gauss(0, 0.03)
        do = 4.7 + 0.9 * math.sin((h - 15) / 24 * 2 * math.pi) + r.gauss(0, 0.05)
        rd = [(7, round(3.9 * 50), 0), (8, round((28.5 + 1.2 * math.sin((h - 15) / 24 * 2 * math.pi)) * 100), 0),
              (9, round(ph * 100), 0), (10, round(340 + r.gauss(0, 5)), 0),
              (11, round((22 + 6 * abs(math.sin(t / 50000)) + r.gauss(0, 0.5)) * 10), 0),
              (12, round((1.2 + 0.35 * math.sin(t / 44714 * 2 * math.pi)) * 1000), 0),
              (13, None, 1) if k % 97 == 50 else (13, round(do * 100), 0)]
        return rd

    def rain(self, node, t, k, interval):
        h = self._hour(t)
        day = int((t / 3600 + self.tz_offset_h) // 24)
        # afternoon convective storms on most days, heavier every third day
        storm = 14.0 <= h < 17.5 and day % 4 != 1
        peak = (45.0 if day % 3 == 0 else 18.0) * math.sin((h - 14.0) / 3.5 * math.pi) if storm else 0.0
        peak = max(0.0, peak + (self.rng.gauss(0, 2) if storm else 0))
        depth = round(peak * 0.7 * interval / 3600.0, 1)
        self.tips += depth / 0.2
        return [(7, round(3.9 * 50), 0), (14, int(self.tips), 0), (15, round(depth * 10), 0), (16, round(peak * 10), 0)]

    # --- frames ---------------------------------------------------------------------------
    def frames(self, start: float | None = None, end: float | None = None):
        """(frame, RxMeta) in time order from now − days to `end` (default now)."""
        end = self.now if end is None else end
        start = self.now - self.days * 86400 if start is None else start
        events = []
        for node, info in self.nodes.items():
            iv = info["interval_s"]
            stop = end - 3 * 3600 if node == SILENT_NODE else end
            t = start + (node % 7) * 17.0
            while t <= stop:
                events.append((t, node))
                t += iv
        events.sort()
        out = []
        frame = self.frame_mod
        self.accepted_frames = len(events)  # every real frame is accepted once; copies and forgeries are not
        mid = (start + end) / 2
        rebooted = False
        self._end = end
        for t, node in events:
            info = self.nodes[node]
            k = self.counters[node]
            flags = frame.UP_BOOT if k == 0 else 0
            if node == REBOOT_NODE and not rebooted and t >= mid:
                rebooted = True
                flags = frame.UP_BOOT  # a watchdog reset: the firmware skips to its next counter block
                self.counters[node] = k = k + 100
            kind = info["kind"]
            if kind == "air":
                rd = self.air(node, t, k if not flags else 0)
            elif kind == "water":
                rd = self.water(node, t, k)
            else:
                rd = self.rain(node, t, k, info["interval_s"])
            f = self.framers[node].encode(k, flags, [(0, rd)])
            self.counters[node] = k + 1
            rssi = -70.0 - (node % 50) * 0.6 + self.rng.gauss(0, 2)
            snr = 8.0 - (node % 50) * 0.1 + self.rng.gauss(0, 1)
            out.append((f, RxMeta(self.gateway_id, t, 921_400_000, 7, 125_000, round(rssi, 1), round(snr, 1), "r0")))
            if node == 201 and k % 3 == 0:  # a second gateway hears the water station too, better
                out.append((f, RxMeta("gw-sontra", t + 0.05, 921_400_000, 7, 125_000, round(rssi + 9, 1),
                                      round(snr + 2, 1), "r0")))
            if node == FORGED_NODE and k % 150 == 75:
                forged = bytearray(f)
                forged[-1] ^= 0x5A  # someone replaying with a made-up MIC
                out.append((bytes(forged), RxMeta(self.gateway_id, t + 1, 921_400_000, 7, 125_000, -110.0, -4.0, "r0")))
        return out

    def one_frame(self, node: int, t: float, readings: list, flags: int = 0):
        """A single extra frame for node at time t (the live-update test)."""
        k = self.counters[node]
        f = self.framers[node].encode(k, flags, [(0, readings)])
        self.counters[node] = k + 1
        return f, RxMeta(self.gateway_id, t, 921_400_000, 7, 125_000, -71.0, 7.5, "r0")

    def write_keys(self, key_store):
        for n, k in self.keys.items():
            if n in key_store.entries():
                key_store.rotate(n, k)
            else:
                key_store.add(n, k)


def feed(directory: Path, items, keys: dict, batch: int = 2000, calibration_dir=None):
    """Push (frame, meta) items through the gateway's raw log + pipeline into directory/gateway.db."""

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ks = KeyStore(directory / "keys.json", create=True)
    for n, k in keys.items():
        if ks.get(n) != k:
            (ks.rotate if n in ks.entries() else ks.add)(n, k)
    store = Store(directory / "gateway.db")
    log = RawLog(directory / "raw.log", fsync=False)
    pipe = Pipeline(store, ks, Calibrator(calibration_dir))
    totals = {"accepted": 0, "readings": 0, "rejected": 0, "duplicates": 0}
    try:
        items = list(items)
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            spans = log.append(chunk)
            res = pipe.process([(a, b, f, m) for (a, b), (f, m) in zip(spans, chunk)])
            totals["accepted"] += len(res.accepted)
            totals["readings"] += res.readings
            totals["rejected"] += sum(res.rejections.values())
            totals["duplicates"] += res.duplicates
    finally:
        store.close()
        log.close()
    return totals


def make_record(directory: Path, node: int, channel: str, version: int, *, b0: float, b1: float,
                valid_from: str, status: str = "approved", approved_by: str | None = "Nguyễn Văn An",
                passes: bool = True) -> Path:
    """A linear calibration record in the calibration area's format (sen.calibration.records),
    with EPA-style 24 h metric rows, written with its content hash."""
    from sen.calibration.records import SCHEMA, Record, default_name  # lazy: scipy, only when a record is made

    rows = [{"metric": "slope", "value": 0.97 if passes else 1.52, "target": "1.0 ± 0.35", "pass": passes},
            {"metric": "intercept", "value": 1.2, "target": "−5 to 5 µg/m³", "pass": True},
            {"metric": "r2", "value": 0.91 if passes else 0.55, "target": "≥ 0.70", "pass": passes},
            {"metric": "rmse", "value": 3.1, "target": "≤ 7 µg/m³ or NRMSE ≤ 30 %", "pass": True}]
    doc = {
        "schema": SCHEMA, "node": node, "channel": channel, "version": version, "model": "linear",
        "model_summary": "y = b0 + b1·x", "method": "OLS", "options": {}, "inputs": [channel], "target": "ref_" + channel,
        "coefficients": [{"name": "b0", "value": b0, "se": 0.4, "ci95": [b0 - 0.8, b0 + 0.8], "fixed": False},
                         {"name": "b1", "value": b1, "se": 0.01, "ci95": [b1 - 0.02, b1 + 0.02], "fixed": False}],
        "covariance": [[0.16, 0.0], [0.0, 0.0001]], "knots": {}, "residual_sd": 3.0, "dof": 718, "n": 720,
        "valid_range": {channel: [0.0, 500.0]}, "output_range": [0.0, 400.0],
        "valid_from": valid_from, "valid_to": None, "crew": "Đội hiệu chuẩn 2", "reference": "BAM-1020 Liên Chiểu",
        "metrics": {"24h": {"rows": rows}}, "acceptance": [], "data": {}, "created": valid_from,
        "status": status, "approved_by": approved_by if status == "approved" else None,
        "approved_at": valid_from if status == "approved" else None,
    }
    rec = Record(doc)
    return rec.save(Path(directory) / default_name(node, channel, version))
