"""Field files as they come: a logger's own column names (--map), quoted decimal commas and
thousands separators, spreadsheet dates with an explicit --tz; and `sen cal check` naming the
calibrated range when the raw value lies outside it."""
import pytest
from cal_helpers import one_error_line, read_json

from sen.calibration.numbers import number_style, parse_number


@pytest.mark.parametrize("column,values", [
    (['"33,1"', '"12,0"'], [33.1, 12.0]),                 # vi-VN decimal comma
    (["1,234.5", "3.2"], [1234.5, 3.2]),                  # en-US thousands separator
    (["1.234,5", "2,1"], [1234.5, 2.1]),                  # de/vi thousands dot, decimal comma
    (["1,234,567", "12"], [1234567.0, 12.0]),
    (["1 234,5", "7"], [1234.5, 7.0]),
])
def test_numbers_by_column_style(column, values):
    cells = [c.strip('"') for c in column]
    style = number_style(cells)
    assert [parse_number(c, style) for c in cells] == values


def _logger_csv(path):
    # What a BAM export and a node logger look like after a spreadsheet: own column names, local
    # time day-first without a zone, quoted decimal commas, a thousands separator.
    rows = ['Date/Time,PM2.5 CF1 (ug/m3),Humidity %,BAM PM2.5']
    for h in range(30):
        cf1 = 20 + h * 1.5 if h != 7 else 1234.0
        ref = 0.5 * cf1 - 0.08 * (70 + h % 5) + 5 + (0.3 if h % 2 else -0.3)
        cf1_txt = "1.234,0" if h == 7 else f"{cf1:.1f}".replace(".", ",")
        ref_txt = f"{ref:.2f}".replace(".", ",")
        rows.append(f'{1 + h // 24:02d}/11/2026 {h % 24:02d}:00,"{cf1_txt}","{70 + h % 5},0","{ref_txt}"')
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fit_reads_a_logger_file_with_map_decimal_commas_and_spreadsheet_dates(sen, tmp_path):
    data = _logger_csv(tmp_path / "logger.csv")
    base = ("cal", "fit", data, "--model", "epa_pa", "--target", "ref", "--inputs", "pm25_cf1,rh", "--node", "9",
            "--map", "PM2.5 CF1 (ug/m3)=pm25_cf1", "--map", "Humidity %=rh", "--map", "BAM PM2.5=ref",
            "--map", "Date/Time=time")
    code, out, err = sen(*base, "--out", tmp_path / "a.json")
    line = one_error_line(err)
    assert code == 2 and "no time zone" in line and "--tz +07:00" in line
    code, out, err = sen(*base, "--tz", "+07:00", "--out", tmp_path / "a.json")
    assert code == 0, err
    doc = read_json(tmp_path / "a.json")
    assert doc["n"] == 30 and doc["data"]["first"] == "2026-10-31T17:00:00Z"   # 01/11 00:00 at +07:00
    assert doc["valid_range"]["pm25_cf1"] == [20.0, 1234.0]                    # "1.234,0" read as 1234
    a = next(c for c in doc["coefficients"] if c["name"] == "a")
    assert a["value"] == pytest.approx(0.5, abs=0.01)


def test_map_naming_a_column_that_is_not_there_is_one_line(sen, tmp_path):
    data = _logger_csv(tmp_path / "logger.csv")
    code, out, err = sen("cal", "fit", data, "--model", "linear", "--target", "ref", "--inputs", "pm25_cf1",
                         "--node", "9", "--map", "PM25=pm25_cf1", "--tz", "+07:00", "--out", tmp_path / "a.json")
    line = one_error_line(err)
    assert code == 2 and "'PM25'" in line and "PM2.5 CF1 (ug/m3)" in line


def test_check_says_when_raw_lies_outside_the_calibrated_range(sen, ph_csv, tmp_path):
    code, out, err = sen("cal", "fit", ph_csv, "--model", "ph_nernst", "--target", "buffer_ph", "--inputs",
                         "ph_raw,water_temp", "--node", "3", "--out", tmp_path / "ph.json")
    assert code == 0
    lo, hi = read_json(tmp_path / "ph.json")["valid_range"]["ph_raw"]
    code, out, err = sen("cal", "check", "--record", tmp_path / "ph.json", "--raw", str(hi + 150), "--temp", "27",
                         "--expected", "4.01")
    assert code == 1 and out.startswith("FAIL")
    assert f"ph_raw {hi + 150:g} lies outside the calibrated range {lo:g}–{hi:g} of node3/ph/v1" in out
    inside = (lo + hi) / 2
    code, out, err = sen("cal", "check", "--record", tmp_path / "ph.json", "--raw", str(inside), "--temp", "27",
                         "--expected", "5.5", "--tolerance", "5")
    assert code == 0 and "calibrated range" not in out
