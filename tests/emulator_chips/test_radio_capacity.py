"""`sen bench radio`'s model, small: on the same air, an 8-channel concentrator delivers far
more than a single-channel gateway, and unconfirmed delivery stays near pure ALOHA's
prediction (a little above it: capture)."""
import json

from sen.bench.radio_capacity import Run, run


def test_concentrator_beats_single_channel_and_tracks_aloha():
    single = Run("single", 600, 10, False, 0.5, 3).run()
    conc = Run("concentrator", 600, 10, False, 0.5, 3).run()
    assert single["frames_sent"] == conc["frames_sent"] > 1000
    assert conc["frame_delivery"] > 0.9 > 0.7 > single["frame_delivery"]
    for r in (single, conc):
        assert r["aloha_prediction"] - 0.05 <= r["frame_delivery"] <= r["aloha_prediction"] + 0.12, r


def test_confirmed_mode_acks_within_duty_and_last_line_is_json():
    lines = []
    out = run(sizes=(300,), sfs=(9,), hours=0.25, log=lines.append)
    assert json.loads(lines[-1]) == out
    conc = [r for r in out["rows"] if r["gateway"] == "concentrator"][0]
    assert conc["sample_delivery_confirmed"] >= 0.99 and 0 < conc["downlink_duty"] <= 0.10
    assert conc["acks_blocked_by_duty"] == 0
