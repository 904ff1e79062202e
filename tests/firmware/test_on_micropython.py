"""The firmware's pure modules (counter, RTC state, queue, filters, duty, config, rain) run
unmodified in real MicroPython 1.27 and give the CPython results."""
import shutil
import subprocess
from pathlib import Path

from sen.paths import FIRMWARE, REPO

HERE = Path(__file__).parent


def test_pure_modules_in_real_micropython():
    assert shutil.which("node"), "Node.js is needed for the MicroPython runtime"
    out = subprocess.run(
        ["node", str(REPO / "host_tools" / "run_in_micropython.mjs"), str(FIRMWARE), str(HERE / "pure_on_device.py")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("RESULT"), out.stdout
    bad, total = map(int, lines[-1].split()[1:])
    assert total >= 11, out.stdout
    assert bad == 0, out.stdout
