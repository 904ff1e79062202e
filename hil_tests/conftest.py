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

HERE = Path(__file__).parent
SEN = str(Path(sys.executable).with_name("sen"))
SPEED = "600"  # world hours per 6 s of test: faults in hil_scenario.toml are timed for it

GATEWAY_TOML = """
[gateway]
id = "hil-gw"
data_dir = "data"

[keys]
file = "keys.json"

[[radio]]
backend = "emulated"
name = "emu0"
frequency_hz = 921400000
sf = 9
bw_hz = 125000
sync_word = 0x12
"""


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
    if config.getoption("port", None) or not _collecting_hil(config):
        gw = config.getoption("gateway_config", None)
        config._sen_bench = Bench(config.getoption("board"), False, Path(tempfile.mkdtemp(prefix="sen-hil-")),
                                  Path(gw) if gw else None)
        return
    work = Path(tempfile.mkdtemp(prefix="sen-hil-"))
    (work / "gateway.toml").write_text(GATEWAY_TOML)
    (work / "keys.json").write_text('{"nodes": {}}')
    os.chmod(work / "keys.json", 0o600)
    bench = Bench(config.getoption("board"), True, work, work / "gateway.toml")
    bench.proc = subprocess.Popen(
        [SEN, "emulate", "--board", bench.board, "--scenario", str(HERE / "hil_scenario.toml"), "--flash",
         str(work / "flash"), "--gateway", str(work / "gateway.toml"), "--speed", SPEED],
        stdout=subprocess.PIPE, stderr=open(work / "emulator.log", "wb"), text=True, cwd=work, start_new_session=True)
    line = bench.proc.stdout.readline()
    if not line.startswith("PORT "):
        raise pytest.UsageError(f"sen emulate did not start: {line!r}; see {work / 'emulator.log'}")
    config.option.port = line.split()[1]
    config.option.embedded_services = "serial"
    config._sen_bench = bench


def _collecting_hil(config) -> bool:
    args = [str(a) for a in config.args] or [str(p) for p in config.getini("testpaths")]
    return any("hil_tests" in a or a in (".", str(HERE.parent)) for a in args)


def pytest_unconfigure(config):
    bench = getattr(config, "_sen_bench", None)
    if bench is not None and bench.proc is not None:
        os.killpg(bench.proc.pid, signal.SIGTERM)
        try:
            bench.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(bench.proc.pid, signal.SIGKILL)


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
