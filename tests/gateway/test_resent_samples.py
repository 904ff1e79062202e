"""A confirmed node whose ACK was lost re-sends its queued samples in the next cycle's batch
frame under a new counter. The gateway stores and forwards each sample once, counts the
re-sends per node and logs them. Frames come from the firmware's own encoder; the store is
a real SQLite file."""
import logging

import pytest

from sen.firmware_modules import load
from sen.gateway.key_store import KeyStore
from sen.gateway.outbox import Outbox
from sen.gateway.pipeline import Pipeline
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store

frame = load("frame")
CONF, BATCH, BOOT = frame.UP_CONFIRMED, frame.UP_BATCH, frame.UP_BOOT
E = 1_795_000_000  # when the node's first cycle began (the node's clock is the gateway's here)
A = [(1, 281, 0), (2, 150, 0), (5, 12, 0), (7, 190, 0)]
B = [(1, 283, 0), (2, 151, 0), (5, 14, 0), (7, 190, 0)]
C = [(1, 290, 0), (2, 149, 0), (5, 20, 0), (7, 189, 0)]


def feed_each(rig, items, how):
    """Feed frames in one batch, one batch each, or one batch each with a gateway restart between."""
    if how == "one batch":
        return [rig.feed(items)]
    out = []
    for item in items:
        if how == "restart":
            rig.store.close()
            rig.store = Store(rig.dir / "gateway.db")
            rig.pipe = Pipeline(rig.store, KeyStore(rig.dir / "keys.json"))
        out.append(rig.feed([item]))
    return out


def samples(rig, node=1):
    """(counter, sample, time, {channel: raw}) per stored sample."""
    got = {}
    for counter, si, t, ch, raw in rig.q("SELECT counter, sample, time, channel, raw FROM readings WHERE node_id=?"
                                         " ORDER BY id", node):
        got.setdefault((counter, si, t), {})[ch] = raw
    return [(c, si, t, r) for (c, si, t), r in got.items()]


@pytest.mark.parametrize("how", ["one batch", "separate batches", "restart"])
def test_samples_resent_after_a_lost_ack_are_stored_and_forwarded_once(rig, how, caplog):
    fr = rig.fleet.framers[1]
    # cycle 1: A sampled at E, sent 32 s later (PMS warm-up) as a single-sample frame; the ACK is lost
    f1 = fr.encode(0, BOOT | CONF, [(0, A)])
    # cycle 2 at E+900: B sampled, both queued samples sent at E+931 with dt = now - sample time
    f2 = fr.encode(1, CONF | BATCH, [(931, A), (31, B)])
    # that ACK is lost too: cycle 3 at E+1800 sends A, B and the new C
    f3 = fr.encode(2, CONF | BATCH, [(1831, A), (931, B), (31, C)])
    with caplog.at_level(logging.INFO, logger="sen.gateway.pipeline"):
        results = feed_each(rig, [(f1, RxMeta("gw", E + 32.4)), (f2, RxMeta("gw", E + 931.6)),
                                  (f3, RxMeta("gw", E + 1831.5))], how)
    got = samples(rig)
    assert [(c, si, t) for c, si, t, _ in got] == [(0, 0, E + 32.4), (1, 1, E + 900.6), (2, 2, E + 1800.5)]
    assert [r for *_, r in got] == [{1: 28.1, 2: 75.0, 5: 12.0, 7: 3.8}, {1: 28.3, 2: 75.5, 5: 14.0, 7: 3.8},
                                    {1: 29.0, 2: 74.5, 5: 20.0, 7: 3.78}]
    assert sum(r.resent_samples for r in results) == 3
    assert sum(len(r.accepted) for r in results) == 3  # every frame is still accepted (counters, ACKs)
    assert rig.q("SELECT resent_samples, accepted, duplicates FROM nodes WHERE node_id=1") == [(3, 3, 0)]
    # each frame row names exactly the readings it added
    assert rig.q("SELECT counter, n_readings FROM frames WHERE node_id=1 ORDER BY counter") == [(0, 4), (1, 4), (2, 4)]
    # a forwarder's outbox holds each sample once, under its idempotent id
    ob = Outbox(rig.store.path, "mqtt")
    out, _ = ob.fetch(1000)
    ob.close()
    assert [s.id for s in out] == ["1-0-0", "1-1-1", "1-2-2"]
    logged = [r for r in caplog.records if getattr(r, "event", None) == "resent_samples"]
    assert [(r.node, r.counter, r.resent) for r in logged] == [(1, 1, 1), (1, 2, 2)]
    assert logged[0].times == [E + 0.6]


def test_a_new_sample_with_the_same_readings_a_minute_later_is_kept(rig):
    """A rain gauge at the 60 s minimum interval sends the same readings every cycle while
    it is dry: the re-sent copy goes, the next cycle's own sample stays."""
    fr = rig.fleet.framers[2]
    dry = [(7, 190, 0), (14, 120, 0), (15, 0, 0), (16, 0, 0)]
    f1 = fr.encode(0, BOOT | CONF, [(0, dry)])  # sampled at E, sent at once; ACK lost
    f2 = fr.encode(1, CONF | BATCH, [(60, dry), (0, dry)])  # next cycle, E+60
    res = rig.feed([(f1, RxMeta("gw", E + 0.3)), (f2, RxMeta("gw", E + 60.4))])
    assert [(c, si, t) for c, si, t, _ in samples(rig, 2)] == [(0, 0, E + 0.3), (1, 1, E + 60.4)]
    assert res.resent_samples == 1


def test_same_time_different_readings_is_not_a_resend(rig):
    fr = rig.fleet.framers[3]
    f1 = fr.encode(0, BOOT | CONF, [(0, A)])
    other = [(1, 281, 0), (2, 150, 0), (5, 13, 0), (7, 190, 0)]  # one reading differs
    f2 = fr.encode(1, CONF | BATCH, [(931, other), (31, B)])
    res = rig.feed([(f1, RxMeta("gw", E + 32.4)), (f2, RxMeta("gw", E + 931.6))])
    assert res.resent_samples == 0
    assert len(samples(rig, 3)) == 3


def test_other_nodes_samples_are_not_resends(rig):
    f1 = rig.fleet.framers[4].encode(0, BOOT | CONF, [(0, A)])
    f2 = rig.fleet.framers[5].encode(0, BOOT | CONF | BATCH, [(931, A), (31, B)])
    res = rig.feed([(f1, RxMeta("gw", E + 32.4)), (f2, RxMeta("gw", E + 931.6))])
    assert res.resent_samples == 0
    assert len(samples(rig, 4)) == 1 and len(samples(rig, 5)) == 2


def test_a_resend_heard_on_a_retry_is_still_recognised(rig):
    """A retry repeats its first attempt's bytes (dt included) but is received seconds
    later: the re-sent copy is then dated later than the first one by the retry delay
    (4.7 s here, as the city-day demo showed), and must still be recognised."""
    fr = rig.fleet.framers[1]
    f1 = fr.encode(0, BOOT | CONF, [(0, A)])               # heard at once, ACK lost
    f2 = fr.encode(1, CONF | BATCH, [(900, A), (0, B)])     # heard on its 3rd attempt
    rig.feed([(f1, RxMeta("gw", E + 0.3))])
    r = rig.feed([(f2, RxMeta("gw", E + 900.3 + 4.7))])
    assert r.resent_samples == 1
    assert [(c, si) for c, si, *_ in samples(rig)] == [(0, 0), (1, 1)]
