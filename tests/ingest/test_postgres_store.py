"""PgStore behind the gateway's own Pipeline: two workers sharing one PostgreSQL database,
copies of one frame split between them, re-deliveries, counter reuse."""
from dataclasses import replace

import pytest

from sen.gateway.counter_state import NodeCounters
from sen.gateway.pipeline import Pipeline
from sen.testkit.synthetic import Fleet
from sen.gateway import uplink_wire as wire
from sen.ingest.postgres_store import PgStore, union_window


class Keys(dict):
    pass


def worker(dsn, name, keys):
    store = PgStore(dsn, name)
    return store, Pipeline(store, keys)


def run(store, pipe, items):
    """What IngestWorker does per batch: refresh the batch's nodes, then the pipeline."""
    store.refresh(pipe.states, {wire.node_of(f) for f, _ in items})
    return pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(items)])


def q(store, sql):
    return store.con.execute(sql).fetchall()


@pytest.fixture
def fleet():
    return Fleet(20, seed=3)


def test_copies_split_between_workers_store_each_reading_once_and_every_rx(pg_dsn, fleet):
    keys = Keys(fleet.keys)
    (sa, pa), (sb, pb) = worker(pg_dsn, "a", keys), worker(pg_dsn, "b", keys)
    sent = list(fleet.frames(200))  # 10 frames per node; counter 0 has BOOT+FULLCNT, the rest 16-bit
    a_items = [(f, replace(m, gateway_id="gw-a", rssi=-90.0)) for f, m in sent]
    b_items = [(f, replace(m, gateway_id="gw-b", rssi=-100.0)) for f, m in sent]
    # interleave: each worker gets alternate halves, so each sees some frames first and some second
    for lo in range(0, 200, 50):
        run(sa, pa, a_items[lo:lo + 50])
        run(sb, pb, b_items[lo:lo + 50])
        run(sa, pa, [])
    assert q(sa, "SELECT count(*), count(DISTINCT (node_id, counter, sample, channel)) FROM readings")[0] == (1200, 1200)
    assert q(sa, "SELECT count(*) FROM frames")[0][0] == 200
    per_gw = dict(q(sa, "SELECT gateway_id, count(*) FROM rx GROUP BY gateway_id"))
    assert per_gw == {"gw-a": 200, "gw-b": 200}
    assert q(sa, "SELECT count(*) FROM rejections")[0][0] == 0
    nodes = q(sa, "SELECT sum(accepted), sum(duplicates), sum(lost), min(last) FROM nodes")[0]
    assert nodes[0] == 200 and nodes[1] == 200 and nodes[2] == 0


def test_concurrent_first_copies_become_duplicates_not_double_readings(pg_dsn, fleet):
    """Both workers judge the same frame NEW (neither has seen the other's commit): the
    store's unique keys make the second a duplicate and keep its rx copy."""
    keys = Keys(fleet.keys)
    (sa, pa), (sb, pb) = worker(pg_dsn, "a", keys), worker(pg_dsn, "b", keys)
    sent = list(fleet.frames(40))
    sa.refresh(pa.states, range(1, 21))
    sb.refresh(pb.states, range(1, 21))
    ra = pa.process([(i, i + 1, f, replace(m, gateway_id="gw-a")) for i, (f, m) in enumerate(sent)])
    # b refreshed before a committed: its view is stale on purpose
    rb = pb.process([(i, i + 1, f, replace(m, gateway_id="gw-b")) for i, (f, m) in enumerate(sent)])
    assert len(ra.accepted) == len(rb.accepted) == 40  # both believed they were first
    assert sb.last_commit.frames == 0 and sb.last_commit.duplicates == 40 and sb.last_commit.readings == 0
    assert q(sa, "SELECT count(*) FROM readings")[0][0] == 240
    assert q(sa, "SELECT count(*) FROM rx")[0][0] == 80
    accepted, dups = q(sa, "SELECT sum(accepted), sum(duplicates) FROM nodes")[0]
    assert (accepted, dups) == (40, 40)
    # b's in-memory state now has the merged view: a re-delivery is a plain duplicate
    rb2 = run(sb, pb, [(f, replace(m, gateway_id="gw-b")) for f, m in sent[:5]])
    assert rb2.duplicates == 5 and q(sa, "SELECT count(*) FROM rx")[0][0] == 80


def test_redelivered_batch_changes_nothing(pg_dsn, fleet):
    keys = Keys(fleet.keys)
    s, p = worker(pg_dsn, "a", keys)
    items = [(f, replace(m, gateway_id="gw-a")) for f, m in fleet.frames(60)]
    run(s, p, items)
    before = q(s, "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM rx), (SELECT max(id) FROM readings)")
    s2, p2 = worker(pg_dsn, "a", keys)  # a restarted worker: empty memory
    run(s2, p2, items)
    assert q(s, "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM rx), (SELECT max(id) FROM readings)") == before


def test_counter_reused_with_other_bytes_is_rejected(pg_dsn):
    from sen.firmware_modules import load

    frame = load("frame")
    key = bytes(range(16))
    f1 = bytes(frame.Framer(7, key).encode(100, frame.UP_BOOT, [(0, [(1, 300, 0)])]))
    f2 = bytes(frame.Framer(7, key).encode(100, frame.UP_BOOT, [(0, [(1, 301, 0)])]))
    keys = Keys({7: key})
    (sa, pa), (sb, pb) = worker(pg_dsn, "a", keys), worker(pg_dsn, "b", keys)
    from sen.gateway.rx_meta import RxMeta
    sa.refresh(pa.states, [7])
    sb.refresh(pb.states, [7])
    pa.process([(0, 1, f1, RxMeta("gw-a"))])
    pb.process([(0, 1, f2, RxMeta("gw-b"))])  # stale view: only the store can see the reuse
    assert q(sa, "SELECT value FROM readings") == [(30.0,)]
    assert dict(q(sa, "SELECT reason, count FROM rejections")) == {"counter_reused": 1}
    assert q(sa, "SELECT gateway_id FROM rx") == [("gw-a",)]


def test_union_window():
    a = NodeCounters(last=100, mask=0b101)  # 100, 98
    b = NodeCounters(last=102, mask=0b11)  # 102, 101
    last, mask = union_window(a, b)
    assert last == 102 and mask == 0b10111  # 102, 101, 100, 98
    assert union_window(NodeCounters(), b) == (102, 0b11)
    far = NodeCounters(last=500, mask=1)
    assert union_window(a, far) == (500, 1)  # a's counters fell out of the window
