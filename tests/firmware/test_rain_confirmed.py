"""A confirmed rain node through a storm: retries and ACK windows keep it awake for seconds
each cycle, and it must still count every tip (tips while the frame goes out, and a tip
in progress as it goes to sleep, which used to leave the gauge unarmed for 15 minutes)."""
import bisect
import contextlib
import io
import re
from pathlib import Path

from tests.firmware.rig import Station

CITY_DAY = Path(__file__).resolve().parents[2] / "scenarios" / "city-day.toml"


def test_confirmed_rain_node_counts_every_tip_through_the_storm(tmp_path):
    st = Station(tmp_path, CITY_DAY, "rain-1", node_cfg={"confirmed": True})
    log = io.StringIO()
    with st.device, contextlib.redirect_stdout(log):
        st.run_until(12 * 3600)
    gauge = st.board.chips["rain_gauge"]
    lines = [ln for ln in log.getvalue().splitlines() if ln.startswith("[sen] cycle")]
    # the cycles that reported: deep-sleep wakes (timer, or a tip when the cycle was due)
    # that sent a frame, in order
    starts = [c["start_us"] / 1e6 for c in st.board.cycles if c["frames"] > 0 and c["reset_cause"] == 4]
    assert len(starts) == len(lines) - 1  # the power-on cycle is not a timer wake
    retried = sum(1 for ln in lines if "ack=no" in ln or re.search(r"toa=(4|5|6|7|8|9)\d\dms", ln))
    assert retried >= 5  # the storm ran with the 20 % loss: the send phase was long often
    stormy = 0
    for t, ln in zip(starts, lines[1:]):
        counted = int(re.search(r"tips=(\d+)", ln).group(1))
        pulses = bisect.bisect_left(gauge.tip_times, t + 0.3)  # reported ~0.3 s after waking
        assert abs(pulses - counted) <= 1, (t / 3600, pulses, counted, ln)
        stormy += pulses > 0
    assert stormy >= 10 and gauge.pulses > 300
