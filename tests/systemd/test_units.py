"""The shipped systemd units, judged by systemd's own tools: `systemd-analyze security
--offline=true` (exposure score, 0 best .. 10) and `systemd-analyze verify`."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sen.paths import REPO

UNITS = sorted((REPO / "gateway" / "systemd").glob("*.service"))


def test_both_units_ship():
    assert {u.name for u in UNITS} == {"sen-gateway.service", "sen-ingest.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_exposure_score_is_ok(unit):
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", res.stdout)
    assert m, res.stdout[-2000:] + res.stderr
    print(unit.name, m.group(1), m.group(2))
    assert float(m.group(1)) <= 2.5 and m.group(2) == "OK", res.stdout[-4000:]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_verify_passes(unit, tmp_path):
    """Every directive parses; ExecStart points at this venv's `sen` instead of /opt/sen
    (the Debian package test verifies the installed unit as shipped)."""
    text = unit.read_text().replace("/opt/sen/bin/sen", str(Path(sys.executable).with_name("sen")))
    copy = tmp_path / unit.name
    copy.write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


def test_gateway_unit_is_a_watchdogged_notify_service():
    text = (REPO / "gateway" / "systemd" / "sen-gateway.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "ProtectSystem=strict", "ReadWritePaths=/var/lib/sen", "UMask=0077",
                 "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "NoNewPrivileges=true"):
        assert line in text, line
    assert shutil.which("systemd-analyze")
