"""Confirmed mode: ACK in the receive window, retries with back-off, a queue of unsent
samples that survives deep sleep and goes out in batches, and config by downlink."""
import contextlib
import io
import json
from pathlib import Path

from tests.firmware.rig import Station

SCEN = Path(__file__).parent / "scenarios" / "confirmed.toml"


def test_confirmed_node_loses_no_sample_over_a_radio_outage_and_takes_config(tmp_path):
    change_after_h = 5.0
    st = None

    def config_for(node_id, counter):
        # The operator changed the interval; the gateway sends it with every ACK from then.
        return {"interval_s": 600} if st.clock.now_s() > change_after_h * 3600 else None

    st = Station(tmp_path, SCEN, "water", node_cfg={"confirmed": True, "ack_every": 1}, config_for=config_for)
    log = io.StringIO()
    with st.device, contextlib.redirect_stdout(log):
        st.run_until(8 * 3600)
    text = log.getvalue()
    cycles = [ln for ln in text.splitlines() if ln.startswith("[sen] cycle")]
    assert len(cycles) >= 34
    # During the outage nothing is acknowledged and samples queue up (RTC memory, across
    # deep sleeps); each unacknowledged frame was tried three times.
    assert any("ack=no" in ln and " q=5 " in ln for ln in cycles), cycles
    outage = [t for t, *_ in st.sent if 1.5 * 3600 + 60 < t < 3.0 * 3600 - 60]
    assert len(outage) >= 3 * 5
    # Afterwards they went out as a batch, and every sample the node took arrived once.
    frames = st.decoded()
    batches = [up for t, c, up in frames if up.header.batch and len(up.samples) > 1]
    assert batches and max(len(up.samples) for up in batches) >= 5
    times = sorted({round(t - s.offset_s) for t, c, up in frames for s in up.samples})
    assert len(times) == len(cycles), (len(times), len(cycles))
    assert all(b - a >= 500 for a, b in zip(times, times[1:]))  # no sample twice
    # The downlink config took effect: cycles 600 s apart, and node.json rewritten.
    assert "[sen] downlink config: interval_s=600" in text
    late = [t for t in times if t > change_after_h * 3600 + 1200]
    gaps = {round(b - a) for a, b in zip(late, late[1:])}
    assert gaps and all(abs(g - 600) <= 2 for g in gaps), gaps
    assert json.loads((st.fs / "node.json").read_text())["interval_s"] == 600
    # the outage's 6 cycles, plus up to 3 more while the back-off (SF10-12, then back to SF9:
    # this gateway hears SF9 only) brings the node back to the gateway's SF
    assert st.gw.acks >= len(cycles) - 9


def test_unconfirmed_node_sends_once_per_cycle_and_does_not_listen(tmp_path):
    st = Station(tmp_path, SCEN, "water", node_cfg={"confirmed": False})
    log = io.StringIO()
    with st.device, contextlib.redirect_stdout(log):
        st.run_until(2 * 3600)
    cycles = [ln for ln in log.getvalue().splitlines() if ln.startswith("[sen] cycle")]
    assert len(st.sent) == len(cycles)
    assert st.gw.acks == 0
    rx_ms = sum(c["state_ms"].get("radio_rx", 0) for c in st.board.cycles)
    assert rx_ms == 0
