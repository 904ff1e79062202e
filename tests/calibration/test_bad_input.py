"""Bad input gets one line naming the problem and the fix, and no record is written."""
import re

import numpy as np
import pytest

from sen.testkit import cal_synthetic as synthetic

from cal_helpers import one_error_line


def _fit(sen, data, out, model="linear", target="ref", inputs="pm25_cf1", *extra):
    return sen("cal", "fit", data, "--model", model, "--target", target, "--inputs", inputs, "--out", out,
               "--node", "9", *extra)


def _assert_refused(result, out_dir, *words):
    code, out, err = result
    assert code == 2
    line = one_error_line(err)
    for w in words:
        assert w in line, line
    assert not any(out_dir.glob("*.json")), "a record was written despite the error"
    return line


def test_empty_file(sen, tmp_path):
    data = tmp_path / "empty.csv"
    data.write_text("")
    _assert_refused(_fit(sen, data, tmp_path / "rec"), tmp_path / "rec", "empty")


def test_header_only(sen, tmp_path):
    data = tmp_path / "h.csv"
    data.write_text("time,pm25_cf1,ref\n")
    _assert_refused(_fit(sen, data, tmp_path / "rec"), tmp_path / "rec", "no data rows")


def test_one_point_fit(sen, tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("time,pm25_cf1,ref\n2026-11-01T00:00:00Z,30,20\n")
    _assert_refused(_fit(sen, data, tmp_path / "rec"), tmp_path / "rec", "one data point")


def test_singular_design_constant_rh(sen, tmp_path):
    t, c = synthetic.epa_colocation(np.random.default_rng(1), days=3)
    c["rh"] = np.full(t.size, 80.0)    # RH logger stuck: RH is collinear with the intercept
    data = synthetic.write_csv(tmp_path / "stuck.csv", t, c)
    _assert_refused(_fit(sen, data, tmp_path / "rec", "epa_pa", "ref_pm25", "pm25_cf1,rh"), tmp_path / "rec",
                    "singular design")


def test_non_monotone_pchip_standards(sen, tmp_path):
    rows = ["time,turbidity_raw,ntu"]
    t = 0
    for ntu, mv in ((0, 2950), (100, 2600), (400, 2650), (1000, 1500)):   # 400 NTU reads higher than 100
        for k in range(5):
            t += 1
            rows.append(f"{1793491200 + t},{mv + k * 0.5},{ntu}")
    data = tmp_path / "std.csv"
    data.write_text("\n".join(rows) + "\n")
    line = _assert_refused(_fit(sen, data, tmp_path / "rec", "turbidity_pchip", "ntu", "turbidity_raw"),
                           tmp_path / "rec", "not monotone", "100 NTU", "400 NTU")
    assert "re-make the dilution" in line


def test_naive_timestamps_refused_with_lines(sen, tmp_path):
    data = tmp_path / "naive.csv"
    data.write_text("time,pm25_cf1,ref\n2026-11-01 07:00,30,20\n2026-11-01T08:00Z,31,21\n2026-11-01 09:00,32,22\n")
    line = _assert_refused(_fit(sen, data, tmp_path / "rec"), tmp_path / "rec", "no time zone", "lines 2, 4", "--tz")


def test_rh_as_fraction_is_a_unit_mismatch(sen, tmp_path):
    t, c = synthetic.epa_colocation(np.random.default_rng(2), days=3)
    c["rh"] = c["rh"] / 100
    data = synthetic.write_csv(tmp_path / "frac.csv", t, c)
    _assert_refused(_fit(sen, data, tmp_path / "rec", "epa_pa", "ref_pm25", "pm25_cf1,rh"), tmp_path / "rec",
                    "unit mismatch", "rh[fraction]")
    # Saying so in the header converts it, and the conversion is reported.
    data2 = synthetic.write_csv(tmp_path / "frac2.csv", t, c, units={"rh": "fraction"})
    code, out, err = _fit(sen, data2, tmp_path / "rec", "epa_pa", "ref_pm25", "pm25_cf1,rh")
    assert code == 0, err
    assert "converted fraction → %" in out


def test_unknown_unit_refused(sen, tmp_path):
    data = tmp_path / "u.csv"
    data.write_text("time,pm25_cf1[ppm],ref\n" + "".join(f"{1793491200 + 60 * i},{i},{i}\n" for i in range(10)))
    _assert_refused(_fit(sen, data, tmp_path / "rec"), tmp_path / "rec", "'ppm'", "no conversion")


def test_bad_rows_reported_with_count_and_lines(sen, tmp_path):
    t, c = synthetic.epa_colocation(np.random.default_rng(4), days=3)
    data = synthetic.write_csv(tmp_path / "bad.csv", t, c)
    lines = data.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[1], "NaN?")       # line 5: not a number
    lines[9] = lines[9].rsplit(",", 1)[0]                              # line 10: a field short
    lines[20] = "yesterday," + lines[20].split(",", 1)[1]             # line 21: bad time
    lines[30] = lines[29]                                              # line 31: duplicate time
    data.write_text("\n".join(lines) + "\n")
    code, out, err = _fit(sen, data, tmp_path / "rec", "epa_pa", "ref_pm25", "pm25_cf1,rh")
    assert code == 0, err
    assert "bad_row: 1 row(s) excluded — wrong number of fields (header has 5) (lines 10)" in out
    assert "bad_row: 1 row(s) excluded — time not ISO 8601 or Unix seconds (lines 21)" in out
    assert "missing_value: 1 row(s) excluded — column pm25_cf1 empty or not a number (lines 5)" in out
    assert "duplicate_time: 1 row(s) excluded" in out and "(lines 31)" in out


def test_time_zone_shift_detected(sen, tmp_path):
    t, c = synthetic.epa_colocation(np.random.default_rng(5), days=14)
    c["ref_pm25"] = np.roll(c["ref_pm25"], 7)      # reference logged in +07:00 but written as UTC
    data = synthetic.write_csv(tmp_path / "tz.csv", t, c)
    _assert_refused(_fit(sen, data, tmp_path / "rec", "epa_pa", "ref_pm25", "pm25_cf1,rh"), tmp_path / "rec",
                    "+7 h", "time-zone")


@pytest.mark.parametrize("args,words", [
    (("--model", "nope"), ("unknown model", "epa_pa")),
    (("--node", "0"), ("node id", "1–65535")),
    (("--inputs", "pm25_cf1"), ("needs exactly 2 input",)),
])
def test_bad_options(sen, epa_csv, tmp_path, args, words):
    base = {"--model": "epa_pa", "--target": "ref_pm25", "--inputs": "pm25_cf1,rh", "--node": "4"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["cal", "fit", epa_csv, "--out", tmp_path / "rec"] + [x for kv in base.items() for x in kv]
    _assert_refused(sen(*argv), tmp_path / "rec", *words)


def test_buffers_too_close_refused(sen, tmp_path):
    t, c = synthetic.ph_two_point(np.random.default_rng(1), buffers=(6.86, 7.00))
    data = synthetic.write_csv(tmp_path / "b.csv", t, c)
    _assert_refused(_fit(sen, data, tmp_path / "rec", "ph_nernst", "buffer_ph", "ph_raw,water_temp"),
                    tmp_path / "rec", "less than 3 pH apart")


def test_semicolon_decimal_comma_csv(sen, tmp_path):
    """vi-VN spreadsheets: `;` separators and decimal commas are read, not rejected."""
    rows = ["time;pm25_cf1;ref"]
    for h in range(12):
        pm = 10.5 + h
        ref = 5 + 0.5 * pm + (0.01 if h % 2 else -0.01)
        rows.append(f"2026-11-01T{h:02d}:00:00+07:00;{pm:.1f};{ref:.2f}".replace(".", ","))
    data = tmp_path / "vn.csv"
    data.write_text("\n".join(rows) + "\n")
    code, out, err = sen("cal", "fit", data, "--model", "linear", "--target", "ref", "--inputs", "pm25_cf1",
                         "--channel", "pm25", "--out", tmp_path / "r.json", "--node", "2")
    assert code == 0, err
    assert re.search(r"b1 = 0\.50\d* ±", out), out


def test_existing_record_not_overwritten(sen, epa_csv, tmp_path):
    args = ("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs", "pm25_cf1,rh",
            "--out", tmp_path / "r.json", "--node", "2")
    assert sen(*args)[0] == 0
    before = (tmp_path / "r.json").read_text()
    code, out, err = sen(*args)
    assert code == 2 and "never overwritten" in one_error_line(err)
    assert (tmp_path / "r.json").read_text() == before
