"""`sen bench node`'s options: parsed and handed to the bench; a bad value is one line, exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sen.bench import cli
from sen.bench.node_bench_link import node_config, parse_options, shape_world

SEN = str(Path(sys.executable).with_name("sen"))


def test_options_reach_the_bench(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "_run", lambda module, **kw: seen.update(kw, module=module))
    res = CliRunner().invoke(cli.bench, ["node", "--sf", "7", "--confirmed", "--loss", "20", "--distance-m", "1500"])
    assert res.exit_code == 0, res.output
    assert seen == {"module": "sen.bench.node_bench", "sf": 7, "confirmed": True, "loss": 20.0, "distance_m": 1500.0,
                    "gateway": False, "sf_sweep": False, "batch": None, "cycles": 4, "settle_h": 0.0, "boards": None,
                    "kinds": None}
    res = CliRunner().invoke(cli.bench, ["node"])
    assert res.exit_code == 0 and seen["sf"] is None and seen["loss"] is None   # the default run: as before
    res = CliRunner().invoke(cli.bench, ["node", "--sf-sweep"])
    assert res.exit_code == 0 and seen["sf_sweep"] is True
    res = CliRunner().invoke(cli.bench, ["node", "--sf", "7", "--gateway", "--batch", "2", "--cycles", "28", "--settle-h",
                                         "5", "--board", "esp32-rfm95", "--kind", "water", "--kind", "rain"])
    assert res.exit_code == 0, res.output
    assert (seen["batch"], seen["cycles"], seen["settle_h"], seen["boards"], seen["kinds"]) == (
        2, 28, 5.0, ["esp32-rfm95"], ("water", "rain"))


@pytest.mark.parametrize("args, says", [
    (["--sf", "13"], "--sf '13' is out of range"),
    (["--sf", "nine"], "--sf 'nine' is not a number"),
    (["--loss", "101"], "--loss '101' is out of range"),
    (["--distance-m", "-5"], "--distance-m '-5' is out of range"),
    (["--sf", "9", "--sf-sweep"], "--sf-sweep runs every SF"),
    (["--batch", "9"], "--batch '9' is out of range"),
    (["--cycles", "many"], "--cycles 'many' is not a number"),
    (["--board", "esp32-nope"], "--board 'esp32-nope' is not a board definition"),
    (["--kind", "soil"], "--kind 'soil' is not a node kind"),
    (["--cycles", "8", "--settle-h", "2"], "--settle-h 2 leaves none of the 8 intervals"),
])
def test_a_bad_option_is_one_line_and_exit_code_2(args, says):
    res = subprocess.run([SEN, "bench", "node", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], res.stderr


def test_link_options_shape_config_and_world():
    from sen.bench.node_bench import WORLD
    from sen.emulator.scenario import load_scenario
    assert parse_options("8", "5.5", "2000") == (8, 5.5, 2000.0)
    assert parse_options() == (None, None, None)
    assert node_config() == {}
    assert node_config(10, True) == {"radio": {"sf": 10}, "confirmed": True}
    assert node_config(batch=2) == {"batch": 2}
    w = shape_world(load_scenario(WORLD), "water", loss=30, distance_m=2000)
    assert w.radio["loss_percent"] == 30
    assert w.station("water").xy == pytest.approx((0.0, 2000.0))
