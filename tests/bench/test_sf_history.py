"""SF history from the radio medium's frame records (bench/sf_history.py)."""
from sen.bench.sf_history import json_ready, sf_history, steps


def _f(sender, t_s, sf, air_ms, power=14, seq=0, aborted=False):
    return {"seq": seq, "sender": sender, "t_start_us": int(t_s * 1e6), "airtime_us": int(air_ms * 1000), "sf": sf,
            "power_dbm": power, "aborted": aborted}


FRAMES = [_f("n1", 10, 9, 200), _f("gw.emu0", 10.5, 9, 100, 16), _f("n1", 910, 9, 200),
          _f("n1", 3600 + 10, 7, 50), _f("n2", 20, 12, 1500), _f("n1", 3600 * 2, 7, 50, power=11),
          _f("n1", 3600 * 2 + 900, 7, 50, power=11, aborted=True)]


def test_changes_frames_and_airtime_per_sf():
    h = sf_history(FRAMES, senders=["n1", "n2"])
    assert set(h) == {"n1", "n2"}   # the gateway's ACKs are left out
    n1 = h["n1"]
    assert n1["changes"] == [[0.003, 9, 14], [1.003, 7, 14], [2.0, 7, 11]]
    assert n1["frames_per_sf"] == {7: 2, 9: 2}
    assert n1["airtime_s_per_sf"] == {7: 0.1, 9: 0.4}
    assert n1["frames"] == 4 and n1["airtime_s"] == 0.5
    assert (n1["sf_last"], n1["power_dbm_last"]) == (7, 11)
    assert h["n2"]["changes"] == [[0.006, 12, 14]]


def test_unsorted_records_and_missing_power():
    frames = [dict(f) for f in reversed(FRAMES) if f["sender"] == "n1"]
    for f in frames:
        f.pop("power_dbm")
    h = sf_history(frames, include_aborted=True)["n1"]
    assert [c[1] for c in h["changes"]] == [9, 7]
    assert h["changes"][0][2] is None and h["frames"] == 5


def test_json_and_steps():
    h = json_ready(sf_history(FRAMES, senders=["n1"]))["n1"]
    assert h["frames_per_sf"] == {"7": 2, "9": 2}
    xs, ys = steps(h["changes"], 3.0)
    assert xs == [0.003, 1.003, 1.003, 2.0, 2.0, 3.0] and ys == [9, 9, 7, 7, 7, 7]
