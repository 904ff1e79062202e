"""`sen bench gateway`: the gateway's throughput and latency on frames made by the firmware
encoder, against a floor of the bare work in the same run.

- frames_per_s: batch replay of a raw log through verify, decode, dedupe, calibrate and store;
- floor_frames_per_s: the same frames with nothing but cbor2 decode + HMAC verify + SQLite
  executemany of their readings (one row per reading, same journal settings);
- ratio = frames_per_s / floor_frames_per_s (goal >= 0.5);
- live_p99_ms: radio IRQ (frame handed over by the backend) to durable commit (raw log
  fsync + store commit) for frames arriving one by one (goal <= 10 ms).

--fuzz N runs N random and mutated frames; --kill-test runs the full kill -9 test.
"""
import hashlib
import hmac
import functools
import json
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import cbor2

from sen.gateway.store import WAL_AUTOCHECKPOINT_PAGES
from sen.testkit.synthetic import Fleet


def _records(tmp: Path, n_frames: int, n_nodes: int):
    from sen.gateway.raw_log import RawLog, iter_records
    fleet = Fleet(n_nodes, seed=42)
    items = list(fleet.frames(n_frames))
    log = RawLog(tmp / "raw.log", fsync=False)
    log.append(items)
    log.close()
    return fleet, list(iter_records(tmp / "raw.log"))


def measure_replay(tmp: Path, fleet, records, batch=2000, adr=False) -> float:
    """Frames/s through the pipeline; adr: also the ADR link history the service keeps per
    batch (gateway/link_history.py), as a gateway with confirmed nodes runs it."""
    from sen.gateway.key_store import KeyStore
    from sen.gateway.link_history import LinkHistory
    from sen.gateway.pipeline import Pipeline
    from sen.gateway.store import Store
    keys = KeyStore(tmp / "keys.json", create=True)
    fleet.write_keys(keys)
    name = "replay-adr.db" if adr else "replay.db"
    store = Store(tmp / name)
    pipe = Pipeline(store, keys)
    links = LinkHistory(store.con) if adr else None
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        res = pipe.process(records[i:i + batch])
        if links is not None:
            links.observe(res.accepted)
    dt = time.perf_counter() - t0
    n = store.con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    store.close()
    assert n == len(records), f"replay stored {n} of {len(records)}"
    return len(records) / dt


def measure_floor(tmp: Path, fleet, records, batch=2000) -> float:
    """The least any gateway must do per frame: decode, check the MIC, insert its readings."""
    con = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    # the store's journal settings (measured: no effect on this index-free table)
    con.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    con.execute("CREATE TABLE readings(node INTEGER, counter INTEGER, channel INTEGER, value INTEGER)")
    keys = fleet.keys
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        rows = []
        for _, _, f, _ in records[i:i + batch]:
            node = int.from_bytes(f[1:3], "big")
            full = f[0] & 8
            counter = int.from_bytes(f[3:7], "big") if full else int.from_bytes(f[3:5], "big")
            body = f[7 if full else 5:-4]
            mic = hmac.new(keys[node], counter.to_bytes(4, "big") + f[:-4], hashlib.sha256).digest()[:4]
            if not hmac.compare_digest(mic, f[-4:]):
                continue  # (16-bit counters here are below 65536, so they are the full counter)
            for ch, v in cbor2.loads(body).items():
                rows.append((node, counter, ch, v))
        con.execute("BEGIN")
        con.executemany("INSERT INTO readings VALUES (?,?,?,?)", rows)
        con.execute("COMMIT")
    dt = time.perf_counter() - t0
    n = con.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    con.close()
    assert n == 6 * len(records), f"floor stored {n} readings"
    return len(records) / dt


def measure_live(tmp: Path, n_frames=1500, rate=150.0) -> list[float]:
    from sen.gateway.config import GatewayConfig, RadioConfig
    from sen.gateway.key_store import KeyStore
    from sen.gateway.radio.base import InjectBackend
    from sen.gateway.service import GatewayService
    fleet = Fleet(100, seed=7)
    KeyStore(tmp / "live-keys.json", create=True)
    fleet.write_keys(KeyStore(tmp / "live-keys.json"))
    cfg = GatewayConfig(path=tmp / "g.toml", gateway_id="bench", data_dir=tmp / "live", key_file=tmp / "live-keys.json",
                        fsync=True)
    radio = InjectBackend(RadioConfig("emulated", "r0"), "bench", None)
    svc = GatewayService(cfg, backends=[radio], forwarders=[])
    radio.on_frame = svc.on_frame
    th = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    th.start()
    frames = [f for f, _ in fleet.frames(n_frames)]
    rng = random.Random(1)
    for f in frames:
        radio.inject(f)  # meta.time = now: the IRQ moment
        time.sleep(rng.expovariate(rate))
    time.sleep(0.5)
    svc.stopping.set()
    th.join(30)
    return list(svc.metrics.recent_latencies)


def resign(f: bytes, keys: dict) -> bytes:
    """Give a (mutated) frame the MIC its node's key gives it at its own counter field."""
    from sen.gateway.frame_decode import compute_mic
    if len(f) < 10:
        return f
    node = int.from_bytes(f[1:3], "big")
    full = f[0] & 8
    if node not in keys or len(f) < (12 if full else 10):
        return f
    c32 = int.from_bytes(f[3:7] if full else f[3:5], "big")
    return f[:-4] + compute_mic(keys[node], c32, f[:-4])


def fuzz(tmp: Path, n: int, log=print) -> dict:
    from sen.gateway.key_store import KeyStore
    from sen.gateway.pipeline import Pipeline
    from sen.gateway.rx_meta import RxMeta
    from sen.gateway.store import Store
    fleet = Fleet(20, seed=9)
    keys = KeyStore(tmp / "fuzz-keys.json", create=True)
    fleet.write_keys(keys)
    store = Store(tmp / "fuzz.db")
    pipe = Pipeline(store, keys)
    good = [f for f, _ in fleet.frames(2000)]
    rng = random.Random(99)
    meta = RxMeta("fuzz", 1.0)
    totals = Counter()
    t0 = time.perf_counter()
    batch = []
    off = 0
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            f = rng.randbytes(rng.randrange(0, 260))
        elif r < 0.35:
            f = rng.choice(good)  # replays and copies of genuine frames
        else:
            b = bytearray(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                op = rng.randrange(4)
                if op == 0 and b:
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                elif op == 1 and b:
                    del b[rng.randrange(len(b)):]
                elif op == 2:
                    b += rng.randbytes(rng.randrange(1, 30))
                elif b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            f = bytes(b)
            if rng.random() < 0.4:
                f = resign(f, fleet.keys)  # a valid MIC over a broken body: the decoder's own checks
        batch.append((off, off + 1, f, meta))
        off += 1
        if len(batch) == 5000:
            res = pipe.process(batch)
            totals.update(res.rejections)
            totals["accepted"] += len(res.accepted)
            totals["duplicate"] += res.duplicates
            batch = []
            if (i + 1) % 200_000 == 0:
                log(f"  fuzz: {i + 1} frames")
    if batch:
        res = pipe.process(batch)
        totals.update(res.rejections)
        totals["accepted"] += len(res.accepted)
        totals["duplicate"] += res.duplicates
    dt = time.perf_counter() - t0
    store.close()
    assert sum(totals.values()) == n, "every frame is counted exactly once"
    return {"fuzz_frames": n, "fuzz_s": round(dt, 1), "fuzz_internal_errors": totals.get("internal_error", 0),
            "fuzz_outcomes": dict(sorted(totals.items()))}


def run(frames: int = 100_000, nodes: int = 500, fuzz_n: int = 0, kill_test: bool = False,
        kill_frames: int = 100_000, kills: int = 20, cost_only: bool = False) -> dict:
    from sen.bench.gateway_cost import run as worst_cost
    if cost_only:
        out = worst_cost()
        print(json.dumps(out))
        return out
    with tempfile.TemporaryDirectory(prefix="sen-bench-gw-") as d:
        tmp = Path(d)
        print(f"gateway bench: {frames} frames from {nodes} nodes (firmware encoder), air set of 6 readings")
        fleet, records = _records(tmp, frames, nodes)
        replay, floor, with_adr = [], [], []
        adr_replay = functools.partial(measure_replay, adr=True)
        for i in range(3):  # interleaved, best of three: other work on the machine hits all alike
            for name, fn, out in (("r", measure_replay, replay), ("f", measure_floor, floor),
                                  ("a", adr_replay, with_adr)):
                (tmp / f"{name}{i}").mkdir()
                out.append(fn(tmp / f"{name}{i}", fleet, records))
        fps, floor_fps, adr_fps = max(replay), max(floor), max(with_adr)
        print(f"batch replay      {fps:10.0f} frames/s  (runs: {', '.join(f'{x:.0f}' for x in replay)})")
        print(f"  + ADR history   {adr_fps:10.0f} frames/s  (the service's per-batch link history too; runs: "
              f"{', '.join(f'{x:.0f}' for x in with_adr)})")
        print(f"floor             {floor_fps:10.0f} frames/s  (cbor2 decode + HMAC + executemany; runs: "
              f"{', '.join(f'{x:.0f}' for x in floor)})")
        print(f"ratio             {fps / floor_fps:10.2f}  (goal >= 0.5)")
        lat = sorted(measure_live(tmp))
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(0.99 * (len(lat) - 1))] * 1000
        print(f"live IRQ->commit  p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1] * 1000:.2f} ms over {len(lat)} frames "
              f"(raw log fdatasync + SQLite WAL commit; goal p99 <= 10 ms)")
        out = {"frames": frames, "frames_per_s": round(fps), "floor_frames_per_s": round(floor_fps),
               "ratio": round(fps / floor_fps, 3),
               "frames_per_s_with_adr_history": round(adr_fps), "live_p50_ms": round(p50, 3), "live_p99_ms": round(p99, 3)}
        out.update(worst_cost())  # bounded cost: worst CPU per serial input and per frame
        if fuzz_n:
            print(f"fuzzing {fuzz_n} random and mutated frames …")
            fz = fuzz(tmp, fuzz_n)
            print(f"fuzz: {fz['fuzz_frames']} frames in {fz['fuzz_s']} s, internal errors {fz['fuzz_internal_errors']}")
            for k, v in fz["fuzz_outcomes"].items():
                print(f"  {k:20s} {v}")
            out.update(fz)
    if kill_test:
        from sen.bench.gateway_kill import run_kill_test
        print(f"kill test: {kill_frames} frames, {kills} kill -9 …")
        # 1,500 nodes at 500 frames/s: each node sends every 3 s (one Circular 10 file per
        # station and second) and more than 64 frames (a second full counter). With four
        # forwarders a 2-core machine keeps up with about that; a faster feed piles up in the
        # loopback socket's buffer (a USB serial link would stall the receiver board instead),
        # and each kill throws that backlog away before the gateway ever reads it.
        kt = run_kill_test(n_frames=kill_frames, kills=kills, n_nodes=max(100, kill_frames // 66), rate=500.0)
        for k, v in kt.items():
            print(f"  {k:30s} {v}")
        out["kill_test"] = {k: v for k, v in kt.items() if k != "workdir"}
    print(json.dumps(out))
    return out


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m sen.bench.gateway_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--fuzz", type=int, default=0, metavar="N", help="also fuzz N frames (the issue asks 1000000)")
    ap.add_argument("--kill-test", action="store_true", help="also run the kill -9 test")
    ap.add_argument("--kill-frames", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=20)
    a = ap.parse_args(argv)
    run(a.frames, a.nodes, a.fuzz, a.kill_test, a.kill_frames, a.kills)


if __name__ == "__main__":
    main()
