"""The node's flash queue (firmware/flashq.py), time sync, ack_every with RANGE bookkeeping and
the link back-off (firmware/link.py), in CPython on doubles: a fake clock, a radio that records
what goes out and answers with the gateway's own downlink encoder."""
import os
import time

import pytest

from sen.firmware_modules import load
from sen.gateway.downlink_encode import encode_downlink
from tests.firmware.doubles import NVS, RTC, Power

st = load("state")
flashq = load("flashq")
link_mod = load("link")
node_mod = load("node")
counter_mod = load("counter")
duty_mod = load("duty")
cfgmod = load("config")

KEY = bytes(range(16))
UNIX_2000 = 946684800


class Clock:
    def __init__(self, t=0.0):
        self.t = t
        self.sets = []

    def now(self):
        return self.t

    def set(self, epoch):
        self.sets.append((self.t, epoch))
        self.t = float(epoch)


@pytest.fixture(autouse=True)
def micropython_time(monkeypatch):
    """node.py's ticks and light sleep, on the test's clock."""
    clock = Clock(1000.0)
    monkeypatch.setattr(time, "ticks_ms", lambda: int(clock.t * 1000), raising=False)
    monkeypatch.setattr(time, "ticks_diff", lambda a, b: a - b, raising=False)
    monkeypatch.setattr(node_mod, "lightsleep", lambda ms: setattr(clock, "t", clock.t + ms / 1000))
    return clock


class Radio:
    """Sends instantly; `answer(counter)` gives the downlink for an asking frame or None."""

    def __init__(self, clock, answer):
        self.clock, self.answer = clock, answer
        self.sent = []  # (t, flags, counter, bytes)
        self.windows = []

    def send(self, data, toa_ms):
        self.clock.t += toa_ms / 1000
        c = int.from_bytes(data[3:7], "big") if data[0] & 8 else int.from_bytes(data[3:5], "big")
        self.sent.append((self.clock.t, data[0] & 0x0F, c, bytes(data)))
        return True

    def receive(self, window_ms):
        self.windows.append(window_ms)
        c = self.sent[-1][2]
        dl = self.answer(c)
        if dl is None:
            self.clock.t += window_ms / 1000
            return None
        self.clock.t += 0.1
        return dl, -80, 7.0

    def sleep(self):
        pass

    def set_frequency(self, f):
        pass


class Sampler:
    errors = ()

    def __init__(self):
        self.n = 0

    def sample(self, safe):
        self.n += 1
        return [("water_level", self.n / 1000, 0)]


def make_node(tmp_path, clock, answer, **cfg_over):
    cfg = {"node_id": 7, "key": KEY.hex(), "kind": "water", "confirmed": True}
    cfg.update(cfg_over)
    cfg = cfgmod.check_node(cfg)
    state = st.State(RTC())
    state.load()
    nvs = NVS(Power())
    cnt = counter_mod.Counter(nvs, state)
    cnt.start(False)
    fq = flashq.FlashQ(state, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    radio = Radio(clock, answer)
    n = node_mod.Node(cfg, state, cnt, duty_mod.Duty(state), radio, Sampler(), log=lambda m: None,
                      now=clock.now, fq=fq)
    return n, radio


def cycle(n, clock, interval=900):
    n.cycle(False)
    assert n.state.buf[st.O_CYCLE_WRITES] <= 2  # the wear bound: two rewrites per cycle at most
    clock.t = (int(clock.t) // interval + 1) * interval


# --- flash queue ---

def test_flash_file_restores_queue_duty_and_clock_after_a_power_cut(tmp_path, micropython_time):
    clock = micropython_time
    s = st.State(RTC())
    s.load()
    fq = flashq.FlashQ(s, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    s.q_push(900, [(12, 1641, 0)])
    s.q_push(1800, [(12, 1650, 0), (7, None, 1)], st.QF_UNSYNCED)
    duty_mod.Duty(s).spend(1800, 740)
    clock.t = 1805
    fq.save()
    # a cut while the next rewrite was being written: only the temporary file is torn
    (tmp_path / "sq.bin.tmp").write_bytes(b"SQ01 torn")
    s2 = st.State(RTC())
    s2.load()
    clock.t = 0  # the RTC starts at 2000-01-01 at power-on
    fq2 = flashq.FlashQ(s2, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    assert fq2.restore() == 2
    assert clock.t == 1805 and not fq2.synced()  # the clock restarts at the last saved time
    assert list(s2.q_items()) == [(900, [(12, 1641, 0)]), (1800, [(12, 1650, 0), (7, None, 1)])]
    assert all(fl & st.QF_OLD for _, _, fl, _, _ in s2.q_recs())  # held until a TIME comes
    assert fq2.holding_old()
    assert duty_mod.Duty(s2).used_ms() == 740
    assert s2.get("<I", st.O_FLASH_WRITES) == 1


def test_a_damaged_or_missing_file_is_not_restored(tmp_path, micropython_time):
    s = st.State(RTC())
    s.load()
    fq = flashq.FlashQ(s, micropython_time.now, micropython_time.set, path=str(tmp_path / "sq.bin"))
    assert fq.restore() == -1
    s.q_push(900, [(12, 1, 0)])
    fq.save()
    raw = bytearray((tmp_path / "sq.bin").read_bytes())
    raw[-6] ^= 1
    (tmp_path / "sq.bin").write_bytes(bytes(raw))
    assert flashq.FlashQ(st.State(RTC()), micropython_time.now, micropython_time.set,
                         path=str(tmp_path / "sq.bin")).restore() == -1


def test_rename_is_the_commit_point(tmp_path, micropython_time, monkeypatch):
    s = st.State(RTC())
    s.load()
    fq = flashq.FlashQ(s, micropython_time.now, micropython_time.set, path=str(tmp_path / "sq.bin"))
    s.q_push(900, [(12, 1, 0)])
    fq.save()
    s.q_push(1800, [(12, 2, 0)])

    def cut(a, b):
        raise OSError("power cut before rename")
    monkeypatch.setattr(os, "rename", cut)
    with pytest.raises(OSError):
        fq.save()
    monkeypatch.undo()
    s2 = st.State(RTC())
    assert flashq.FlashQ(s2, micropython_time.now, micropython_time.set, path=str(tmp_path / "sq.bin")).restore() == 1


# --- time ---

def test_time_sync_rebases_unsynced_samples_and_releases_held_ones(tmp_path, micropython_time):
    clock = micropython_time
    s = st.State(RTC())
    s.load()
    fq = flashq.FlashQ(s, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    s.q_push(500, [(12, 1, 0)], st.QF_OLD)                    # synced before the cut, exact
    s.q_push(900, [(12, 2, 0)], st.QF_OLD | st.QF_UNSYNCED)   # two cuts without TIME
    s.q_push(1000, [(12, 3, 0)], st.QF_UNSYNCED)              # this session, unsynced clock
    duty_mod.Duty(s).spend(1000, 300)
    clock.t = 1010
    err = fq.sync(5000)
    assert err == 3990 and clock.t == 5000 and fq.synced()
    recs = [(e, fl) for _, e, fl, _, _ in s.q_recs()]
    assert recs == [(500, 0), (900 + 3990, 0), (1000 + 3990, 0)]
    assert not fq.holding_old()
    assert duty_mod.Duty(s).allows(5000, 0) and duty_mod.Duty(s).used_ms() == 300  # this session's air time, counted now


def test_ack_with_time_sets_the_clock_and_held_samples_go_after(tmp_path, micropython_time):
    clock = micropython_time
    true_unix = 1_780_000_000

    def answer(c):
        return encode_downlink(7, KEY, c, None, time_s=true_unix + int(clock.t - 1000), range_bits=0xFFFF)
    n, radio = make_node(tmp_path, clock, answer, ack_every=4)
    n.state.q_push(true_unix - UNIX_2000 - 600, [(12, 5, 0)], st.QF_OLD)  # from before a power cut, synced then
    cycle(n, clock)
    # holding old samples: the frame asks (a time request) but does not carry them
    flags, c = radio.sent[0][1], radio.sent[0][2]
    assert flags & 1 and n.fq.synced()
    assert abs(clock.sets[0][1] - (true_unix - UNIX_2000)) < 2
    cycle(n, clock)
    assert len(radio.sent[1][3]) > len(radio.sent[0][3])  # the released sample went in a batch


# --- ack_every and RANGE ---

def test_ack_every_4_asks_on_every_4th_frame_and_resends_what_range_shows_missing(tmp_path, micropython_time):
    clock = micropython_time
    stored = set()

    def answer(c):
        bits = sum(1 << i for i in range(16) if c - 1 - i in stored)
        stored.add(c)
        return encode_downlink(7, KEY, c, None, time_s=1_780_000_000, range_bits=bits)
    n, radio = make_node(tmp_path, clock, answer, ack_every=4)
    for i in range(4):
        cycle(n, clock)
        if i != 1:
            stored.add(radio.sent[-1][2])  # the gateway missed frame 1
    asks = [fl & 1 for _, fl, _, _ in radio.sent]
    assert asks == [0, 0, 0, 1]
    assert len(radio.windows) == 1  # frames that do not ask open no receive window
    # frame 3's ACK: frames 0 and 2 stored, 1 missing: only frame 1's sample stays, to be sent again
    assert n.state.q_count() == 1
    (_, _, fl, ctr, _), = list(n.state.q_recs())
    assert not fl & st.QF_SENT
    cycle(n, clock)
    assert radio.sent[-1][1] & 2  # a batch: the missing sample and the new one, under a new counter
    assert radio.sent[-1][2] == 4


def test_ack_every_1_is_the_old_behaviour_with_retries(tmp_path, micropython_time):
    n, radio = make_node(tmp_path, micropython_time, lambda c: None, ack_every=1)
    cycle(n, micropython_time)
    assert [fl & 1 for _, fl, _, _ in radio.sent] == [1, 1, 1]  # three tries of one frame
    assert len({c for _, _, c, _ in radio.sent}) == 1
    assert n.state.q_count() == 1 and "ack" in n.last and n.last["ack"] == "no"


def test_receive_window_is_short(tmp_path, micropython_time):
    n, radio = make_node(tmp_path, micropython_time, lambda c: None, ack_every=1)
    assert n.link.rx_timing() == (80, 100 + 60 + 83 - 80)  # SF9: 163 ms of listening
    n.state.buf[st.O_LINK_SF] = 7
    assert n.link.rx_timing() == (80, 101)
    n.state.buf[st.O_LINK_SF] = 12
    assert n.link.rx_timing() == (80, 744)


# --- link settings and back-off ---

def _link(**over):
    cfg = {"node_id": 7, "key": KEY.hex(), "kind": "water", "confirmed": True}
    cfg.update(over)
    cfg = cfgmod.check_node(cfg)
    s = st.State(RTC())
    s.load()
    return link_mod.Link(cfg, s)


def test_adr_settings_apply_and_power_respects_eirp():
    lk = _link(radio={"tx_dbm": 17, "antenna_gain_dbi": 3})
    assert lk.tx_dbm() == 13
    assert lk.heard({"sf": 7, "tx_backoff_db": 6})
    assert (lk.sf(), lk.tx_dbm()) == (7, 7)
    lk.heard({"sf": 7, "tx_backoff_db": 20})
    assert lk.tx_dbm() == 2  # never below 2 dBm
    assert lk.radio_cfg()["radio"]["sf"] == 7 and lk.cfg["radio"]["sf"] == 9  # node.json keeps its own


def test_confirmed_back_off_power_first_then_sfs_that_answered_then_explores():
    lk = _link()
    lk.heard({"sf": 8, "tx_backoff_db": 4})    # heard at node.json's SF9, told SF8
    assert not any(lk.unanswered() for _ in range(3))   # three unanswered requests: nothing yet
    assert lk.unanswered() and lk.backoff_db() == 0 and lk.sf() == 8   # 4th: power to the maximum
    assert lk.unanswered() and lk.sf() == 9    # the SF a downlink came at before
    # SF9 is the slowest that ever answered: a single-channel gateway hears it only, so the
    # node stays there until the 8th unanswered request in a row
    assert not lk.unanswered() and not lk.unanswered() and lk.sf() == 9
    assert lk.unanswered() and lk.sf() == 10
    lk.unanswered(), lk.unanswered()
    assert lk.sf() == 12
    assert lk.unanswered() and lk.sf() == 9    # past SF12: back to the slowest SF that answered
    lk.heard({})
    assert lk.state.buf[st.O_LINK_MISS] == 0


def test_over_reached_node_goes_straight_back_to_an_sf_that_worked():
    lk = _link()
    lk.heard({"sf": 10})                       # heard at SF9
    lk.heard({"sf": 7})                        # heard at SF10; ADR over-reaches to SF7
    for _ in range(3):
        lk.unanswered()
    assert lk.unanswered() and lk.sf() == 9    # skips SF8, which never answered
    assert lk.unanswered() and lk.sf() == 10


def test_unconfirmed_link_check_and_lost_link():
    lk = _link(confirmed=False)
    asks, steps = [], []
    for i in range(1, 200):
        a = lk.wants_ack(False)
        asks.append(a)
        if lk.sent(a):
            steps.append(i)
    assert [i + 1 for i, a in enumerate(asks) if a] == list(range(16, 200, 16))
    assert steps[:4] == [96, 112, 128, 144]  # then on every further link check without a reply
    assert lk.sf() == 12  # 96 -> SF10, 112 -> 11, 128 -> 12, 144 -> node.json SF9, 160 -> 10, 176 -> 11, 192 -> 12


def test_sync_ages_the_history_from_before_the_cut_and_recounts_this_sessions_air_time(tmp_path, micropython_time):
    clock = micropython_time
    s = st.State(RTC())
    s.load()
    fq = flashq.FlashQ(s, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    duty_mod.Duty(s).spend(9_700, 5000)      # on a synced clock, before the cut (an earlier bucket)
    clock.t = 10_100
    fq.save()
    s2 = st.State(RTC())
    s2.load()
    fq2 = flashq.FlashQ(s2, clock.now, clock.set, path=str(tmp_path / "sq.bin"))
    fq2.restore()                            # clock back at 10_100, unsynced
    duty_mod.Duty(s2).spend(10_130, 400)     # this session, unsynced
    clock.t = 10_140
    fq2.sync(10_140 + 1800)                  # it was off half an hour
    d = duty_mod.Duty(s2)
    assert d.used_ms() == 5400               # nothing lost, nothing counted twice
    clock.t += 3300
    assert d.allows(int(clock.t), 0) and d.used_ms() <= 400  # the old air time aged on the true clock
