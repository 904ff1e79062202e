"""The channels `sen cal` expects in a node's normal frames (sen.calibration.node_frames) are
the channels the real firmware sends, on an emulated board, with and without send_raw."""
import pytest

from sen.calibration.node_frames import normal_channels
from tests.firmware.test_emulated_nodes import CALIBRATING, _run

HOURS = 1


def _sent(st):
    out = set()
    for _, _, up in st.decoded(st.sent):
        for s in up.samples:
            for r in s.readings:
                out.add((r.channel.name, r.qflags & CALIBRATING))
    return out


@pytest.mark.parametrize("kind,cfg", [("air", {}), ("air", {"send_raw": True}), ("rain", {})])
def test_frames_carry_exactly_the_expected_channels(tmp_path, kind, cfg):
    sent = _sent(_run(tmp_path, kind, cfg or None, hours=HOURS))
    assert {name for name, _ in sent} == set(normal_channels(kind, cfg))
    assert not any(cal for _, cal in sent)      # send_raw sends raw channels without CALIBRATING
    if cfg.get("send_raw"):
        assert ("pm25_cf1", 0) in sent


def test_water_frames_carry_no_raw_channel_unless_send_raw(tmp_path):
    sent = {name for name, _ in _sent(_run(tmp_path, "water", None, hours=HOURS))}
    expected = set(normal_channels("water", {}))
    assert sent <= expected and "ph" in sent and "ph_raw" not in sent
    raw = {name for name, _ in _sent(_run(tmp_path / "raw", "water", {"send_raw": True}, hours=HOURS))}
    assert "ph_raw" in raw and raw <= set(normal_channels("water", {"send_raw": True}))
