"""docs/frame-format.md's channel table is the truth; firmware and gateway copies must match it."""
import re

import channels as fw_channels  # firmware/channels.py
from sen import channels as gw_channels
from sen.paths import DOCS


def spec_rows():
    text = (DOCS / "frame-format.md").read_text()
    table = text.split("<!-- channel-table:start -->")[1].split("<!-- channel-table:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((int(cells[0]), cells[1], cells[2], cells[3], float(cells[4]), float(cells[5]), float(cells[6])))
    return rows


def test_spec_table_has_every_required_quantity():
    names = {r[1] for r in spec_rows()}
    for required in ["air_temp", "rh", "pressure", "pm1", "pm25", "pm10", "battery", "water_temp", "ph",
                     "conductivity", "turbidity", "water_level", "dissolved_oxygen", "rain_tips", "rain_depth"]:
        assert required in names
    assert any(r[3] == "mV" for r in spec_rows()) and any(r[3] == "counts" for r in spec_rows())


def test_gateway_registry_matches_spec():
    got = [(c.id, c.name, c.quantity, c.unit, float(c.scale), float(c.min), float(c.max)) for c in gw_channels.BY_ID.values()]
    assert sorted(got) == sorted(spec_rows())


def test_firmware_registry_matches_spec():
    got = [(cid, name, float(scale), float(lo), float(hi)) for name, (cid, scale, lo, hi) in fw_channels.CHANNELS.items()]
    assert sorted(got) == sorted((r[0], r[1], r[4], r[5], r[6]) for r in spec_rows())


def test_quality_flags_match_spec():
    text = (DOCS / "frame-format.md").read_text()
    for name in ["MISSING", "OUT_OF_RANGE", "WARMING_UP", "STUCK", "CALIBRATING"]:
        value = int(re.search(rf"\| \d \| (\d+) \| `{name}` \|", text).group(1))
        assert getattr(fw_channels, "Q_" + name) == value == getattr(gw_channels, "Q_" + name)
