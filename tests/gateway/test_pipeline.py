"""Store contents, raw-log durability and recovery, fuzzing."""
import os
import random

import numpy as np

from sen.firmware_modules import load
from sen.gateway.frame_decode import Reason
from sen.gateway.raw_log import RawLog, iter_records
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store
from sen.gateway.pipeline import Pipeline
from sen.bench.gateway_bench import resign

frame = load("frame")


def test_readings_stored_raw_and_calibrated_with_units(rig):
    items = list(rig.fleet.frames(50))
    res = rig.feed(items)
    assert len(res.accepted) == 50 and res.readings == 300
    rows = rig.q("SELECT channel, raw, value, cal FROM readings WHERE node_id=1 AND counter=0 ORDER BY channel")
    f = rig.fleet.framers[1]
    # the firmware's own scaled integers, decoded independently of the pipeline
    from sen.gateway.frame_decode import decode_uplink
    up = decode_uplink(items[0][0], rig.fleet.keys[1])
    expect = {r.channel.id: r.value for r in up.samples[0].readings}
    assert [(c, raw) for c, raw, _, _ in rows] == sorted(expect.items())
    assert all(raw == val and cal == "identity" for _, raw, val, cal in rows)
    # 31.2 must be stored as 31.2, not 31.200000000000003
    temp = [raw for c, raw, _, _ in rows if c == 1][0]
    assert repr(temp) == repr(round(temp, 1))


def test_batch_frame_samples_get_their_own_times(rig):
    f = rig.fleet.framers[2].encode(0, frame.UP_BATCH | frame.UP_BOOT,
                                    [(600, [(5, 30, 0)]), (300, [(5, 31, 0)]), (0, [(5, 32, 0), (6, 40, 4)])])
    rig.feed([(f, RxMeta("gw", 1_795_000_000.0))])
    rows = rig.q("SELECT sample, time, channel, raw, qflags FROM readings ORDER BY id")
    assert rows == [(0, 1_794_999_400.0, 5, 30.0, 0), (1, 1_794_999_700.0, 5, 31.0, 0),
                    (2, 1_795_000_000.0, 5, 32.0, 0), (2, 1_795_000_000.0, 6, 40.0, 4)]


def test_missing_value_is_null_with_flag(rig):
    f = rig.fleet.framers[3].encode(0, frame.UP_BOOT, [(0, [(5, None, 1), (7, 190, 0)])])
    rig.feed([(f, RxMeta("gw", 1_795_000_000.0))])
    assert rig.q("SELECT channel, raw, value, qflags FROM readings ORDER BY channel") == [
        (5, None, None, 1), (7, 3.8, 3.8, 0)]
    assert rig.q("SELECT battery, qflags FROM nodes WHERE node_id=3") == [(3.8, 1)]


def test_torn_raw_log_tail_is_cut_and_rest_survives(tmp_path):
    log = RawLog(tmp_path / "raw.log")
    items = [(bytes([i]) * 20, RxMeta("gw", 1.0 + i, rssi=-80 - i, radio="r")) for i in range(10)]
    spans = log.append(items)
    log.close()
    with open(tmp_path / "raw.log", "ab") as f:
        f.write(b"SR\x40\x00\x00\x00")  # half a record: crash mid-append
    log = RawLog(tmp_path / "raw.log")
    assert log.end == spans[-1][1] == os.path.getsize(tmp_path / "raw.log")
    got = list(iter_records(tmp_path / "raw.log"))
    assert [(f, m.rssi, m.gateway_id, m.radio) for _, _, f, m in got] == [(f, m.rssi, "gw", "r") for f, m in items]


def test_records_logged_but_not_processed_are_recovered_once(rig):
    from sen.gateway.config import GatewayConfig
    from sen.gateway.service import GatewayService
    from sen.gateway.radio.base import InjectBackend
    from sen.gateway.config import RadioConfig

    items = list(rig.fleet.frames(40))
    rig.feed(items[:20])
    rig.log.append(items[20:])  # crash after the raw-log fsync, before the store commit
    rig.store.close()
    rig.log.close()
    cfg = GatewayConfig(path=rig.dir / "g.toml", gateway_id="gw", data_dir=rig.dir, key_file=rig.dir / "keys.json")
    svc = GatewayService(cfg, backends=[InjectBackend(RadioConfig("emulated", "r0"), "gw", None)], forwarders=[])
    assert svc.recover() == 20
    assert svc.recover() == 0
    assert svc.store.con.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 40
    assert svc.store.con.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 240
    svc.shutdown(0)


def mutate(rng, f: bytes) -> bytes:
    b = bytearray(f)
    op = rng.randrange(6)
    if op == 0:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == 1:
        del b[rng.randrange(len(b)):]
    elif op == 2:
        b += rng.randbytes(rng.randrange(1, 40))
    elif op == 3:
        i = rng.randrange(len(b))
        b[i:i] = rng.randbytes(rng.randrange(1, 8))
    elif op == 4:
        b[0] = rng.randrange(256)
    else:
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def test_fuzz_random_and_mutated_frames_counted_by_reason(rig):
    """CI size: 30,000 frames; `sen bench gateway --fuzz` runs the full million."""
    rng = random.Random(1234)
    good = [f for f, _ in rig.fleet.frames(200)]
    n = 30_000
    m = RxMeta("gw", 1.0)
    batch, total = [], None
    from collections import Counter
    total = Counter()
    accepted = dup = 0
    for i in range(n):
        if i % 3 == 0:
            f = rng.randbytes(rng.randrange(0, 260))
        else:
            f = mutate(rng, rng.choice(good))
            if i % 3 == 1:
                f = resign(f, rig.fleet.keys)  # valid MIC over a broken body
        batch.append((f, m))
        if len(batch) == 1000:
            res = rig.feed(batch)
            total.update(res.rejections)
            accepted += len(res.accepted)
            dup += res.duplicates
            batch = []
    assert "internal_error" not in total
    assert sum(total.values()) + accepted + dup == n
    assert set(total) <= {r.value for r in Reason}
    stored = dict(rig.q("SELECT reason, count FROM rejections"))
    assert stored == dict(total)
    # random garbage exercises many reasons; any accepted mutant must carry a genuine MIC
    assert {"too_short", "too_long", "bad_version", "bad_mic", "unknown_node", "cbor_malformed", "not_deterministic",
            "unknown_channel", "out_of_range", "bad_type"} <= set(total), total
    print(dict(total), accepted, dup)


def test_a_record_the_store_refuses_does_not_block_the_rest(rig):
    items = list(rig.fleet.frames(20))
    # an inconsistent store: node 3's counter 0 is already there, but its counter state is not
    rig.store.con.execute("INSERT INTO frames(node_id, counter, frame) VALUES (3, 0, x'00')")
    res = rig.feed(items)
    # node 3's BOOT frame is refused, so the gateway has no state for node 3 and its next
    # three (16-bit counter) frames wait for a full counter, as the spec says
    assert res.rejections == {"internal_error": 1, "counter_unknown": 3} and len(res.accepted) == 16
    assert rig.q("SELECT COUNT(*) FROM frames")[0][0] == 17  # 16 + the planted row
    assert rig.store.raw_offset() == rig.log.end
    more = list(rig.fleet.frames(10))
    res = rig.feed(more)
    assert len(res.accepted) == 8 and res.rejections == {"counter_unknown": 2}
