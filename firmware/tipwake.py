# Fast path for a rain-gauge tip that woke the node from deep sleep before its cycle is
# due: count the tip in RTC memory and go back to sleep, without reading the JSON config
# or building the node (a tip wake is ~40 % of a cycle's CPU work otherwise). app.py
# leaves the gauge's pin, polarity and pull in the RTC block for this.
import time
import machine
import state as st
from nap import lightsleep


def run():
    """True if the tip was handled (the chip is going back to deep sleep)."""
    s = st.State(machine.RTC())
    if not s.load():
        return False
    pin_no = s.buf[st.O_RAIN_PIN]
    if pin_no == 0xFF:
        return False
    now = int(time.time())
    nxt = s.get("<I", st.O_NEXT_CYCLE)
    import rain
    rain.add_tip(s, now)
    from drivers.rain_gauge import RainGauge
    cfg = s.buf[st.O_RAIN_CFG]
    g = RainGauge(pin_no, cfg & 1 == 1, pull=("up", "down", "none")[(cfg >> 1) & 3])
    g.mark()
    if not g.wait_released(sleep=lightsleep):
        s.buf[st.O_FLAGS] |= st.F_RAIN_STUCK
    if nxt <= now + 1:
        s.save()
        return False  # the cycle is due: run it (it reports this tip too)
    s.save()
    g.arm_wake()
    machine.deepsleep((nxt - now) * 1000)
    return True
