# Rain accounting in RTC memory: cumulative tips, tips at the last report, and the peak
# tips in one clock minute during the reporting interval (for the 1-minute intensity).
import state as st


def add_tip(state, now_s, n=1):
    minute = int(now_s) // 60
    if state.get("<I", st.O_RAIN_MINUTE) == minute:
        c = state.get("<H", st.O_RAIN_MIN_COUNT) + n
    else:
        state.put("<I", st.O_RAIN_MINUTE, minute)
        c = n
    c = min(c, 65535)
    state.put("<H", st.O_RAIN_MIN_COUNT, c)
    if c > state.get("<H", st.O_RAIN_PEAK):
        state.put("<H", st.O_RAIN_PEAK, c)
    state.put("<I", st.O_RAIN_TOTAL, state.get("<I", st.O_RAIN_TOTAL) + n)


def report(state, cfg, gauge=None, now_s=None):
    """Close the interval: returns (cumulative tips, depth mm, peak intensity mm/h)."""
    if gauge is not None:
        n = gauge.take()
        if n:
            import time
            add_tip(state, time.time() if now_s is None else now_s, n)
    mm = cfg["sensors"].get("mm_per_tip", 0.2)
    total = state.get("<I", st.O_RAIN_TOTAL)
    depth = (total - state.get("<I", st.O_RAIN_REPORTED)) * mm
    inten = state.get("<H", st.O_RAIN_PEAK) * mm * 60
    state.put("<I", st.O_RAIN_REPORTED, total)
    state.put("<H", st.O_RAIN_PEAK, 0)
    return total, depth, inten
