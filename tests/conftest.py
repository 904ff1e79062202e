"""Shared test set-up: firmware modules import as the device imports them (root = firmware/)."""
import sys

from sen.paths import FIRMWARE

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))


import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SEN = str(Path(sys.executable).with_name("sen"))
CITY_DAY_HOURS = 6
CITY_DAY_ARGS = ("--hours", str(CITY_DAY_HOURS), "--colocation-h", "3")


def run_demo(out, *args, timeout=600):
    return subprocess.run([SEN, "demo", "--out", str(out), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def city_day_run(tmp_path_factory):
    """One 6-hour `sen demo` for the whole session: the demo's tests read it, and the
    determinism tests compare it with a run made under load."""
    out = tmp_path_factory.mktemp("city-day") / "out"
    res = run_demo(out, *CITY_DAY_ARGS)
    return out, res
