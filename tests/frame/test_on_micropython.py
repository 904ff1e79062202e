"""The firmware encoder runs unmodified in real MicroPython 1.27 and matches the vectors."""
import shutil
import subprocess
from pathlib import Path

from sen.paths import FIRMWARE, FRAME_VECTORS, REPO

HERE = Path(__file__).parent


def test_firmware_frame_matches_vectors_in_real_micropython():
    assert shutil.which("node"), "Node.js is needed for the MicroPython runtime"
    out = subprocess.run(
        ["node", str(REPO / "host_tools" / "run_in_micropython.mjs"), str(FIRMWARE), str(HERE / "vectors_on_device.py"), str(FRAME_VECTORS)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    bad, total = map(int, last.split()[1:])
    assert bad == 0, out.stdout
    assert total >= 15
