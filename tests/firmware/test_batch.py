"""Batching (node.json `batch`, docs/node-config.md): on a good link a node holds a sample for
a later frame, and never holds what a city wants at once. CPython on the doubles of
test_flashq_link.py; tests/firmware/test_batch_emulated.py runs it in the emulator."""
import pytest

from sen.firmware_modules import load
from sen.gateway.downlink_encode import encode_downlink
from sen.gateway.frame_decode import decode_uplink
from tests.firmware.test_flashq_link import KEY, cycle, make_node, micropython_time  # noqa: F401

st = load("state")


def _ok(c):
    return encode_downlink(7, KEY, c, None, time_s=1_780_000_000)


def _samples(radio):
    """Samples per frame sent, from the gateway's own decoder."""
    return [len(decode_uplink(d, KEY, c).samples) for _, _, c, d in radio.sent]


class Levels:
    """water_level in mm per cycle (the sampler double), with optional flags."""
    errors = ()

    def __init__(self, levels, flags=None):
        self.levels, self.flags, self.n = list(levels), flags or {}, 0

    def sample(self, safe):
        i = self.n
        self.n += 1
        return [("water_level", self.levels[i] / 1000, self.flags.get(i, 0))]


def _node(tmp_path, clock, levels=None, flags=None, answer=_ok, **cfg):
    base = dict(confirmed=False, batch=2, link_check_every=2, radio={"sf": 7})
    base.update(cfg)
    n, radio = make_node(tmp_path, clock, answer, **base)
    n.sampler = Levels(levels or [1000] * 40, flags)
    return n, radio


def test_good_link_sends_two_samples_per_frame_and_loses_none(tmp_path, micropython_time):
    clock = micropython_time
    n, radio = _node(tmp_path, clock)
    for _ in range(20):
        cycle(n, clock)
    per_frame = _samples(radio)
    # before the first answered link check every sample goes at once; after it, two per frame
    assert per_frame[:2] == [1, 1]
    assert per_frame[2:] and set(per_frame[2:]) == {2}
    assert sum(per_frame) + n.state.q_count() == 20 and n.state.q_count() <= 1
    assert len(radio.sent) < 13


def test_batch_1_and_a_slow_sf_send_every_sample(tmp_path, micropython_time):
    clock = micropython_time
    for over in ({"batch": 1}, {"radio": {"sf": 9}}):
        n, radio = _node(tmp_path, clock, **over)
        for _ in range(8):
            cycle(n, clock)
        assert _samples(radio) == [1] * 8, over
        (tmp_path / "sq.bin").unlink(missing_ok=True)


def test_unanswered_link_check_ends_batching(tmp_path, micropython_time):
    clock = micropython_time
    answering = [True]
    n, radio = _node(tmp_path, clock, answer=lambda c: _ok(c) if answering[0] else None)
    for _ in range(6):
        cycle(n, clock)
    assert 2 in _samples(radio)
    answering[0] = False
    before = len(radio.sent)
    for _ in range(8):
        cycle(n, clock)
    after = _samples(radio)[before:]
    # once a link check has gone unanswered (no downlink within its span) each sample goes alone
    assert after[-4:] == [1, 1, 1, 1]
    assert n.state.get("<H", st.O_SINCE_DL) > 2


@pytest.mark.parametrize("levels,flags,at", [
    ([1000] * 6 + [1060] + [1060] * 5, None, 6),   # a 60 mm rise: flood news goes at once
    ([1000] * 6 + [940] + [940] * 5, None, 6),     # a fall too
    ([1000] * 12, {6: 1}, 6),                      # a flagged reading
])
def test_news_is_never_held(tmp_path, micropython_time, levels, flags, at):
    clock = micropython_time
    n, radio = _node(tmp_path, clock, levels, flags)
    sent_at = []
    for i in range(len(levels)):
        k = len(radio.sent)
        cycle(n, clock)
        if len(radio.sent) > k:
            sent_at.append(i)
    assert at in sent_at
    # and the sample before it, if it was held, went in the same frame
    _, _, c, d = radio.sent[sent_at.index(at)]
    assert round(decode_uplink(d, KEY, c).samples[-1].readings[0].value * 1000) == levels[at]


def test_confirmed_node_batches_and_keeps_samples_until_acked(tmp_path, micropython_time):
    clock = micropython_time
    n, radio = _node(tmp_path, clock, confirmed=True, ack_every=2)
    for _ in range(16):
        cycle(n, clock)
    per_frame = _samples(radio)
    assert 2 in per_frame and sum(per_frame) >= 15
