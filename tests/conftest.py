"""Shared test set-up: firmware modules import as the device imports them (root = firmware/)."""
import sys

from sen.paths import FIRMWARE

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))


import fcntl  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SEN = str(Path(sys.executable).with_name("sen"))
CITY_DAY_HOURS = 6
CITY_DAY_ARGS = ("--hours", str(CITY_DAY_HOURS), "--colocation-h", "3")


def run_demo(out, *args, timeout=600):
    return subprocess.run([SEN, "demo", "--out", str(out), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def city_day_run(tmp_path_factory, worker_id):
    """One 6-hour `sen demo` for the whole session: the demo's tests read it, and the
    determinism tests compare it with a run made under load. Under pytest-xdist the workers
    share it: the first to take the lock runs it, the others read its output."""
    if worker_id == "master":
        out = tmp_path_factory.mktemp("city-day") / "out"
        return out, run_demo(out, *CITY_DAY_ARGS)
    shared = tmp_path_factory.getbasetemp().parent / "city-day"
    shared.mkdir(exist_ok=True)
    out, done = shared / "out", shared / "result.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if the run fails
        if not done.exists():
            res = run_demo(out, *CITY_DAY_ARGS)
            done.write_text(json.dumps([res.args, res.returncode, res.stdout, res.stderr]))
    args, code, stdout, stderr = json.loads(done.read_text())
    return out, subprocess.CompletedProcess(args, code, stdout, stderr)


# The files that take longest, first: pytest-xdist (`make test` runs several workers, a file to
# one worker) then fills the other workers with short files instead of ending on a long one.
LONG_FIRST = ("tests/firmware/test_power_cuts.py", "hil_tests/test_node_on_board.py", "tests/firmware/test_adr_moves.py",
              "tests/node_tools/test_flash.py", "tests/gateway/test_kill.py",
              "tests/determinism/test_same_world.py", "tests/demo/test_demo_concentrator.py",
              "tests/ingest/test_city_loopback.py",
              "tests/packaging/test_wheel_install.py", "tests/packaging/test_deb.py", "tests/demo/test_demo.py",
              "tests/gateway/test_forward_sensorthings.py", "tests/firmware/test_emulated_nodes.py",
              "tests/faults/test_raw_log_corruption.py", "tests/firmware/test_confirmed.py",
              "tests/firmware/test_rain_confirmed.py", "tests/firmware/test_counter.py",
              "tests/faults/test_kill_durable.py", "tests/faults/test_node_config.py")


def pytest_collection_modifyitems(config, items):
    rank = {f: i for i, f in enumerate(LONG_FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid.split("::")[0], len(LONG_FIRST)))
