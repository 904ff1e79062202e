"""A node with the AS923-2 channel plan (`radio.channels`): each uplink on a pseudo-random
channel of the eight, heard by a concentrator (SX1302 model) that listens on all of them,
and the ACK received on the uplink's channel (RX1), timed by the concentrator's counter."""
import base64
import contextlib
import io
from pathlib import Path

import pytest

from sen.emulator.chips.sx1302 import AS923_2, SX1302
from sen.firmware_modules import load
from sen.gateway.downlink_encode import encode_downlink
from sen.gateway.frame_decode import parse_header
from sen.gateway.radio.downlink_plan import Copy, txpk
from tests.firmware.rig import Station

SCEN = Path(__file__).parent / "scenarios" / "confirmed.toml"


def test_node_hops_channels_and_gets_its_ack_on_the_uplink_channel(tmp_path):
    st = Station(tmp_path, SCEN, "water", node_cfg={"confirmed": True, "ack_every": 1, "radio": {"channels": "as923-2"}},
                 gateway_ack=False)
    conc = SX1302(st.clock, "conc", std_channel=None, tmst_offset=123_456)
    gw = st.world.gateways[0]
    st.medium.attach(conc, (gw["xy"][0] + 2.0, gw["xy"][1]), gw["antenna_gain_dbi"], "conc")
    heard, last = [], {}

    def on_rx(rxpk):
        payload = base64.b64decode(rxpk["data"])
        h = parse_header(payload)
        if h.flags & 8:
            c = h.counter_field
        else:
            d = (h.counter_field - last["c"]) & 0xFFFF
            c = last["c"] + d
        last["c"] = max(c, last.get("c", 0))
        ack = encode_downlink(st.node_id, st.key, c, None)
        sf = int(rxpk["datr"][2:rxpk["datr"].index("BW")])
        cp = Copy("conc", rxpk["tmst"], 0.0, rxpk["rssi"], rxpk["lsnr"], int(round(rxpk["freq"] * 1e6)), sf,
                  125_000, rxpk["codr"])
        heard.append((rxpk["freq"], c, conc.schedule(txpk(cp, ack, 0.1, 14))))

    conc.on_rx = on_rx
    log = io.StringIO()
    with st.device, contextlib.redirect_stdout(log):
        st.run_until(1.4 * 3600)
    cycles = [ln for ln in log.getvalue().splitlines() if ln.startswith("[sen] cycle")]
    assert len(cycles) >= 5
    assert all(" ack=yes " in ln for ln in cycles), cycles  # every first try ACKed: no retries
    assert len(heard) == len(cycles) and all(err is None for *_, err in heard), heard
    freqs = [f for f, *_ in heard]
    assert set(freqs) <= {f / 1e6 for f in AS923_2} and len(set(freqs)) >= 3, freqs
    # the ACKs went out on the uplinks' channels
    downs = [f["freq_hz"] for f in st.medium.frames if f["sender"] == "conc"]
    assert [round(f / 1e6, 6) for f in downs] == freqs


@pytest.mark.parametrize("bad, needle", [("eu868", "must be"), ([], "must be"), ([923_200_000], "is not in"),
                                         ([921_400_000.5], "is not in")])
def test_channel_plan_config_errors_name_the_key(bad, needle):
    config = load("config")
    with pytest.raises(config.ConfigError, match=needle):
        config.check_node({"node_id": 1, "key": "00" * 16, "kind": "air", "radio": {"channels": bad}})
    ok = config.check_node({"node_id": 1, "key": "00" * 16, "kind": "air"})
    assert ok["radio"]["channels"] == [921_400_000]  # one-channel plan: single-channel gateways hear it
