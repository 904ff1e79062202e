"""Property tests: the firmware encoder and the gateway decoder agree over the whole registry."""
from hypothesis import given, settings
from hypothesis import strategies as st

import channels  # firmware/channels.py
import frame  # firmware/frame.py
from sen.channels import BY_ID, Q_ALL
from sen.gateway.frame_decode import decode_uplink

IDS = sorted(BY_ID)


def reading_for(cid):
    ch = BY_ID[cid]
    lo, hi = round(ch.min / ch.scale), round(ch.max / ch.scale)
    ok = st.integers(lo, hi).map(lambda v: (cid, v, 0))
    flagged = st.tuples(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), st.integers(1, Q_ALL)).map(
        lambda t: (cid, t[0], t[1] | (1 if t[0] is None else 0)))
    return st.one_of(ok, flagged)


readings = st.lists(st.sampled_from(IDS), min_size=1, max_size=8, unique=True).flatmap(
    lambda ids: st.tuples(*[reading_for(c) for c in sorted(ids)])).map(list)

keys = st.binary(min_size=16, max_size=16)
node_ids = st.integers(1, 65535)
counters = st.integers(0, 2**32 - 1)


@settings(max_examples=400, deadline=None)
@given(node_ids, keys, counters, st.booleans(), st.booleans(), readings)
def test_single_sample_roundtrip(node_id, key, counter, confirmed, boot, rd):
    flags = (frame.UP_CONFIRMED if confirmed else 0) | (frame.UP_BOOT if boot else 0)
    raw = frame.Framer(node_id, key).encode(counter, flags, [(0, rd)])
    up = decode_uplink(raw, key, counter)
    assert up.header.node_id == node_id and up.counter == counter
    assert up.header.confirmed == confirmed and up.header.boot == boot
    assert [(r.channel.id, r.scaled, r.qflags) for r in up.samples[0].readings] == rd


@settings(max_examples=200, deadline=None)
@given(node_ids, keys, counters, st.lists(readings, min_size=1, max_size=4), st.integers(0, 3600))
def test_batch_roundtrip(node_id, key, counter, batch, step):
    dts = [(len(batch) - 1 - i) * (step + 1) for i in range(len(batch))]
    raw = frame.Framer(node_id, key).encode(counter, frame.UP_BATCH, list(zip(dts, batch)))
    up = decode_uplink(raw, key, counter)
    assert [s.offset_s for s in up.samples] == dts
    assert [[(r.channel.id, r.scaled, r.qflags) for r in s.readings] for s in up.samples] == batch


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(channels.CHANNELS)), st.floats(-1e6, 1e6, allow_nan=False))
def test_firmware_scaling_flags_out_of_range_and_decodes(name, value):
    cid, scale, lo, hi = channels.CHANNELS[name]
    scaled, q = channels.scaled(name, value)
    assert (q == channels.Q_OUT_OF_RANGE) == (value < lo or value > hi)
    raw = frame.Framer(1, bytes(16)).encode(1, 0, [(0, [(cid, scaled, q)])])
    r = decode_uplink(raw, bytes(16), 1).samples[0].readings[0]
    if q == 0:
        assert abs(r.value - value) <= scale / 2 + 1e-9 * abs(value)
