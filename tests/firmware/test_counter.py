"""Frame counters never repeat: deep sleep, resets, and power cuts at every possible instant."""
import random

import pytest

import counter as cnt
import state as st
from tests.firmware.doubles import NVS, RTC, Power, PowerCut


def boot(nvs, rtc, deep):
    s = st.State(rtc)
    valid = s.load()
    c = cnt.Counter(nvs, s, block=16)
    c.start(deep and valid)
    return s, c


def test_deep_sleep_continues_without_flash_writes():
    p = Power()
    nvs, rtc = NVS(p), RTC(p)
    s, c = boot(nvs, rtc, deep=False)
    used = [c.take()]
    commits = 0
    for _ in range(40):
        s, c = boot(nvs, rtc, deep=True)
        used.append(c.take())
    assert used == list(range(41))
    # One reservation per 16 frames, not one per frame.
    assert cnt.Counter(nvs, s).nvs_limit() == 48


def test_restart_skips_the_rest_of_the_block():
    p = Power()
    nvs, rtc = NVS(p), RTC(p)
    s, c = boot(nvs, rtc, deep=False)
    first = [c.take() for _ in range(3)]
    s, c = boot(nvs, rtc, deep=False)  # soft/hard reset: RTC kept but not trusted
    after = c.take()
    assert first == [0, 1, 2]
    assert after == 16


def test_corrupted_rtc_block_is_not_trusted():
    p = Power()
    nvs, rtc = NVS(p), RTC(p)
    s, c = boot(nvs, rtc, deep=False)
    for _ in range(5):
        c.take()
    mem = bytearray(rtc.mem)
    mem[st.O_NEXT_CNT] = 0  # a flipped bit in the counter
    rtc.mem = bytes(mem)
    s, c = boot(nvs, rtc, deep=True)
    assert c.take() >= 16


@pytest.mark.parametrize("seed", range(6))
def test_power_cut_at_any_instant_never_reuses_a_counter(seed):
    rng = random.Random(seed)
    p = Power()
    nvs, rtc = NVS(p), RTC(p)
    on_air = []  # counters that left the node (possibly just before a cut)
    deep = False
    cuts = 0
    for _ in range(600):
        if rng.random() < 0.15:
            p.cut_at = p.ops + rng.randint(1, 4)
        try:
            s, c = boot(nvs, rtc, deep)
            for _ in range(rng.randint(1, 3)):
                k = c.take()
                on_air.append(k)
            deep = rng.random() < 0.8
            if not deep and rng.random() < 0.5:
                rtc.power_loss()
        except PowerCut:
            cuts += 1
            nvs.power_loss()
            rtc.power_loss()
            deep = False
        p.cut_at = None
    assert cuts > 20
    assert len(on_air) == len(set(on_air))
    assert on_air == sorted(on_air)


def test_counter_exhaustion_is_an_error_not_a_wrap():
    p = Power()
    nvs, rtc = NVS(p), RTC(p)
    nvs.set_blob(cnt.KEY, (0xFFFFFFF0).to_bytes(4, "big"))
    nvs.commit()
    s, c = boot(nvs, rtc, deep=False)
    with pytest.raises(OverflowError):
        c.take()


def test_power_cuts_at_random_instants_of_emulated_cycles_never_repeat_a_counter(tmp_path):
    """The real firmware on an emulated board, power cut at random instants inside its awake
    time (boot, sampling, NVS reservation, transmission): every frame it ever put on air
    carries a fresh counter, and each restart shows as BOOT with a forward jump."""
    import contextlib
    import io
    from pathlib import Path

    from tests.firmware.rig import Station

    st = Station(tmp_path, Path(__file__).parent / "scenarios" / "quiet.toml", "rain",
                 node_cfg={"interval_s": 60})
    rng = random.Random(3)
    cuts = []
    t = 200.0
    while t < 1.5 * 3600:
        # cycles start on a 60 s grid after the first (boot window ~3.3 s); awake ~0.5 s
        base = 3.3 + 60 * round((t - 3.3) / 60)
        at = base + rng.uniform(0.0, 0.6)
        cuts.append(at)
        st.clock.call_at(int(at * 1e6), lambda: st.board.cut_power(rng.randint(0, 3000)))
        t += rng.uniform(180, 420)
    with st.device, contextlib.redirect_stdout(io.StringIO()):
        st.run_until(1.6 * 3600)
    sent = st.decoded(st.sent)
    assert len(sent) == len(st.sent)  # every frame on air is well-formed with a valid MIC
    counters = [c for _, c, _ in sent]
    assert counters == sorted(set(counters))
    boots = [c for _, c, up in sent if up.header.boot]
    assert len(boots) >= len(cuts) // 2  # cuts during the boot itself send nothing yet
    assert len(cuts) >= 12
