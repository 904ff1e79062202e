"""RTC block (queue of unsent samples, EWMA slots) and the 1 %-per-hour duty-cycle budget."""
import random

import duty
import state as st
from tests.firmware.doubles import RTC


def test_queue_survives_deep_sleep_and_keeps_order_and_missing_values():
    rtc = RTC()
    s = st.State(rtc)
    s.load()
    s.q_push(1000, [(1, 312, 0), (2, None, 1), (3, -5, 2)])
    s.q_push(1900, [(14, 7, 0)])
    s.save()
    s2 = st.State(rtc)
    assert s2.load()
    items = list(s2.q_items())
    assert items == [(1000, [(1, 312, 0), (2, None, 1), (3, -5, 2)]), (1900, [(14, 7, 0)])]
    s2.q_drop(1)
    assert list(s2.q_items()) == [(1900, [(14, 7, 0)])]
    assert s2.q_count() == 1


def test_queue_is_bounded_and_drops_the_oldest():
    s = st.State(RTC())
    s.load()
    for i in range(200):
        s.q_push(i * 900, [(ch, i, 0) for ch in range(1, 8)])
    items = list(s.q_items())
    assert len(items) <= st.QUEUE_MAX_SAMPLES
    assert s.get("<H", st.O_Q_USED) <= st.QUEUE_BYTES
    assert items[-1][0] == 199 * 900  # newest kept
    assert [e for e, _ in items] == sorted(e for e, _ in items)
    assert s.get("<I", st.O_Q_DROPPED) == 200 - len(items)


def test_power_on_garbage_and_a_corrupted_block_are_rejected():
    rtc = RTC()
    rtc.mem = bytes(random.Random(1).getrandbits(8) for _ in range(st.SIZE))
    s = st.State(rtc)
    assert not s.load()
    s.q_push(5, [(1, 1, 0)])
    s.save()
    mem = bytearray(rtc.mem)
    mem[st.O_QUEUE + 6] ^= 0x40
    rtc.mem = bytes(mem)
    assert not st.State(rtc).load()


def test_ewma_slots_round_trip():
    s = st.State(RTC())
    s.load()
    assert s.ewma_get(8) is None
    s.ewma_put(8, 27.25)
    s.ewma_put(12, 1.5)
    s.ewma_put(8, 27.5)
    assert s.ewma_get(8) == 27.5 and s.ewma_get(12) == 1.5


def test_duty_never_exceeds_one_percent_in_any_hour():
    s = st.State(RTC())
    s.load()
    d = duty.Duty(s)
    rng = random.Random(7)
    sends = []
    t = 10_000
    for _ in range(3000):
        t += rng.randint(1, 120)
        toa = rng.choice((164.9, 206.0, 370.7, 1318.9))
        if d.allows(t, toa):
            d.spend(t, toa)
            sends.append((t, toa))
    assert len(sends) > 100
    j = 0
    total = 0.0
    for i, (ti, toa) in enumerate(sends):
        total += toa
        while sends[j][0] <= ti - 3600:
            total -= sends[j][1]
            j += 1
        assert total <= duty.HOUR_MS + 1e-6, (ti, total)


def test_duty_budget_holds_from_time_zero():
    # A node without a time source starts its RTC at 0 (2000-01-01) on power-on.
    s = st.State(RTC())
    s.load()
    d = duty.Duty(s)
    n = 0
    t = 0
    while t < 1800:
        if d.allows(t, 1000):
            d.spend(t, 1000)
            n += 1
        t += 10
    assert n == 36


def test_duty_refills_after_an_hour():
    s = st.State(RTC())
    s.load()
    d = duty.Duty(s)
    t = 3_600_000
    n = 0
    while d.allows(t, 1000):
        d.spend(t, 1000)
        n += 1
    assert n == 36
    assert not d.allows(t + 1800, 1000)
    assert d.allows(t + 3600 + 300, 1000)
