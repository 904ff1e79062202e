"""Gateway export joined to a reference file by time: averaging, tolerance, reporting, zone mistakes."""
import numpy as np

from sen.testkit import cal_synthetic as synthetic
from sen.calibration.timeparse import iso

from cal_helpers import one_error_line, read_json


def _export(path, t, cols, node=31, flagged=()):
    """`sen gateway export` format: one reading per row, 2-minute samples."""
    lines = ["time,node,channel,value,flags"]
    for i, ti in enumerate(t):
        for ch in ("pm25_cf1", "rh"):
            flag = 4 if (i in flagged and ch == "pm25_cf1") else 0
            lines.append(f"{iso(ti)},{node},{ch},{cols[ch][i]:.3f},{flag}")
        lines.append(f"{iso(ti)},{node + 1},pm25_cf1,999,0")   # another node's reading: ignored
    path.write_text("\n".join(lines) + "\n")
    return path


def _minute_data(days, seed):
    rng = np.random.default_rng(seed)
    th, c = synthetic.epa_colocation(rng, days=days)
    t = th[0] + 120.0 * np.arange(th.size * 30)           # 2-min node samples
    cf1 = np.repeat(c["pm25_cf1"], 30) + rng.normal(0, 1, t.size)
    rh = np.repeat(c["rh"], 30)
    return t, {"pm25_cf1": cf1, "rh": rh}, th, c["ref_pm25"], c


def test_join_hourly_averages_then_fit(sen, tmp_path):
    t, cols, th, ref, c = _minute_data(6, 1)
    exp = _export(tmp_path / "export.csv", t, cols, flagged=(5, 6, 7))
    lines = exp.read_text().splitlines()
    lines[30] = lines[30].rsplit(",", 2)[0] + ",,1"     # a missing reading as the store exports it
    exp.write_text("\n".join(lines) + "\n")
    ref_csv = synthetic.write_csv(tmp_path / "bam.csv", th + 3600, {"bam_pm25": ref})  # hour-ending stamps
    ref_csv.write_text(ref_csv.read_text().replace("T", " ").replace("Z", "+00:00"))
    out = tmp_path / "joined.csv"
    args = ["cal", "join", exp, "--reference", ref_csv, "--ref-column", "bam_pm25", "--node", "31",
            "--channels", "pm25_cf1,rh", "--average", "1h", "--out", out]
    code, text, err = sen(*args)
    assert code == 2 and "hour-ending" in one_error_line(err) and "--ref-offset -1h" in err
    code, text, err = sen(*args, "--ref-offset", "-1h")
    assert code == 0, err
    assert "flagged: 3 row(s) excluded" in text and "lines 17, 20, 23" in text
    assert "missing_value: 1 row(s) excluded — no value stored for the reading (lines 31)" in text
    header = out.read_text().splitlines()[0]
    assert header == "time,bam_pm25,pm25_cf1,rh"
    code, text, err = sen("cal", "fit", out, "--model", "epa_pa", "--target", "bam_pm25", "--inputs", "pm25_cf1,rh",
                          "--out", tmp_path / "r.json", "--node", "31")
    assert code == 0, err
    rec = read_json(tmp_path / "r.json")
    assert rec["n"] == 6 * 24 and rec["residual_sd"] < 3.0   # hourly means of 30 samples, reference noise 2.5


def test_join_nearest_within_tolerance(sen, tmp_path):
    t, cols, th, ref, c = _minute_data(2, 2)
    exp = _export(tmp_path / "export.csv", t, cols)
    ref_csv = synthetic.write_csv(tmp_path / "ref.csv", th + 30, {"ref": ref})       # 30 s off the node clock
    out = tmp_path / "j.csv"
    code, text, err = sen("cal", "join", exp, "--reference", ref_csv, "--ref-column", "ref", "--node", "31",
                          "--channels", "pm25_cf1,rh", "--average", "0", "--tolerance", "45s", "--out", out)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == th.size + 1
    code, text, err = sen("cal", "join", exp, "--reference", ref_csv, "--ref-column", "ref", "--node", "31",
                          "--channels", "pm25_cf1,rh", "--average", "0", "--tolerance", "10s", "--out", out)
    assert code == 2 and "within 10 s" in one_error_line(err)


def test_join_detects_local_time_marked_utc(sen, tmp_path):
    t, cols, th, ref, c = _minute_data(8, 3)
    exp = _export(tmp_path / "export.csv", t, cols)
    ref_csv = synthetic.write_csv(tmp_path / "ref.csv", th + 7 * 3600, {"ref": ref})  # +07:00 clock written as Z
    code, text, err = sen("cal", "join", exp, "--reference", ref_csv, "--ref-column", "ref", "--node", "31",
                          "--channels", "pm25_cf1,rh", "--out", tmp_path / "j.csv")
    assert code == 2
    line = one_error_line(err)
    assert "+7 h" in line and "time-zone" in line
    assert not (tmp_path / "j.csv").exists()


def test_export_header_checked(sen, tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("when,value\n1,2\n")
    ref = tmp_path / "r.csv"
    ref.write_text("time,ref\n2026-11-01T00:00Z,1\n")
    code, _, err = sen("cal", "join", bad, "--reference", ref, "--ref-column", "ref", "--node", "1",
                       "--channels", "pm25_cf1", "--out", tmp_path / "j.csv")
    assert code == 2 and "sen gateway export" in one_error_line(err)
