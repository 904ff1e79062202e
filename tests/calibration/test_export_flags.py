"""Co-location data comes from nodes in calibration mode: the CALIBRATING flag must not drop
rows from a gateway export, while every other quality flag does (and is reported)."""
from sen.calibration.inputs import read_gateway_export


def test_calibrating_rows_are_kept_other_flags_are_reported(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("time,node,channel,value,flags\n"
                   "2026-11-23T00:00:00Z,101,pm25_cf1,40,16\n"   # calibrating: usable
                   "2026-11-23T01:00:00Z,101,pm25_cf1,42,0\n"
                   "2026-11-23T02:00:00Z,101,pm25_cf1,44,24\n"   # calibrating + stuck: not usable
                   "2026-11-23T03:00:00Z,101,pm25_cf1,46,20\n")  # calibrating + warming up: not usable
    tab = read_gateway_export(csv, node=101)["pm25_cf1"]
    assert list(tab.cols["value"]) == [40.0, 42.0]
    flagged = [i for i in tab.issues if i.kind == "flagged"]
    assert flagged and flagged[0].lines == [4, 5]
