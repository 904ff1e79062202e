"""HIL suite set-up: emulated boards by default, real boards with pytest-embedded's options.

    pytest hil_tests                                    # starts `sen emulate`, world included
    pytest hil_tests --embedded-services serial --port /dev/ttyUSB0 --board ttgo-lora32-v21

With no --port, one emulated board (and the real gateway on the emulator's radio medium)
is started for the session, and its pty is handed to pytest-embedded as --port, so the
`dut` fixture is pytest-embedded's own serial DUT either way. Tests that need the emulated
world (fault injection, the gateway's store) carry the `emulated_world` mark and are
skipped, with that reason, on real boards.
"""
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sen.paths import DOCS

HERE = Path(__file__).parent
SEN = str(Path(sys.executable).with_name("sen"))
SPEED = "600"  # world hours per 6 s of test: faults in hil_scenario.toml are timed for it

GATEWAY_TOML = (DOCS / "gateway.emulated.toml").read_text()


def pytest_addoption(parser):
    group = parser.getgroup("sen")
    group.addoption("--board", default="ttgo-lora32-v21", help="Board id of the board(s) under test.")
    group.addoption("--gateway-config", default=None,
                    help="Real boards: a gateway.toml to register keys with (its store is read by gateway tests).")


class Bench:
    """What the suite knows about the boards under test."""

    def __init__(self, board: str, emulated: bool, workdir: Path, gateway_config: Path | None):
        self.board = board
        self.emulated = emulated
        self.workdir = workdir
        self.gateway_config = gateway_config
        self.proc = None

    @property
    def store(self) -> Path:
        return self.workdir / "data" / "gateway.db"


def pytest_configure(config):
    config.addinivalue_line("markers", "emulated_world: needs the emulator's world (faults, truth, its gateway)")
    work = Path(tempfile.mkdtemp(prefix="sen-hil-"))
    if config.getoption("port", None) or not _collecting_hil(config):
        gw = config.getoption("gateway_config", None)
        config._sen_bench = Bench(config.getoption("board"), False, work, Path(gw) if gw else None)
        return
    (work / "gateway.toml").write_text(GATEWAY_TOML)
    (work / "keys.json").write_text('{"nodes": {}}')
    os.chmod(work / "keys.json", 0o600)
    config._sen_bench = Bench(config.getoption("board"), True, work, work / "gateway.toml")
    config.option.embedded_services = "serial"


@pytest.fixture(scope="session", autouse=True)
def _emulated_board(pytestconfig):
    """Start the emulated board when the first HIL test runs, not at start-up: the world's
    clock starts with it, and hil_scenario.toml times its faults from there."""
    bench = pytestconfig._sen_bench
    if not bench.emulated:
        yield
        return
    work = bench.workdir
    bench.proc = subprocess.Popen(
        [SEN, "emulate", "--board", bench.board, "--scenario", str(HERE / "hil_scenario.toml"), "--flash",
         str(work / "flash"), "--gateway", str(work / "gateway.toml"), "--speed", SPEED],
        stdout=subprocess.PIPE, stderr=open(work / "emulator.log", "wb"), text=True, cwd=work, start_new_session=True)
    line = bench.proc.stdout.readline()
    if not line.startswith("PORT "):
        pytest.fail(f"sen emulate did not start: {line!r}; see {work / 'emulator.log'}")
    pytestconfig.option.port = line.split()[1]
    yield
    _stop(bench)


def _collecting_hil(config) -> bool:
    args = [str(a) for a in config.args] or [str(p) for p in config.getini("testpaths")]
    return any("hil_tests" in a or a in (".", str(HERE.parent)) for a in args)


def _stop(bench):
    if bench.proc is not None and bench.proc.poll() is None:
        os.killpg(bench.proc.pid, signal.SIGTERM)
        try:
            bench.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(bench.proc.pid, signal.SIGKILL)


def pytest_unconfigure(config):
    bench = getattr(config, "_sen_bench", None)
    if bench is not None:
        _stop(bench)


def pytest_collection_modifyitems(config, items):
    bench = config._sen_bench
    if bench.emulated:
        return
    skip = pytest.mark.skip(reason="needs the emulated world (fault injection, truth, the emulator's gateway); "
                                   "real boards run every other test")
    for item in items:
        if "emulated_world" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bench(pytestconfig) -> Bench:
    return pytestconfig._sen_bench
