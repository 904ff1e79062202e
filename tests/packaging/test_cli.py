"""The installed `sen` console script: version, help for every role, one-line errors."""
import subprocess
import sys
from pathlib import Path

import pytest

SEN = str(Path(sys.executable).with_name("sen"))


def run(*args):
    return subprocess.run([SEN, *args], capture_output=True, text=True, timeout=60)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("sen, version ")


@pytest.mark.parametrize("role", ["node", "cal", "gateway", "ingest", "emulate", "bench", "demo"])
def test_every_role_has_help(role):
    top = run("--help")
    assert role in top.stdout
    out = run(role, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage: sen " + role in out.stdout


def test_unknown_role_is_one_line_not_a_traceback():
    out = run("florp")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "No such command" in out.stderr


def test_missing_node_is_one_line_naming_the_debian_packages(tmp_path):
    env = {"PATH": str(Path(SEN).parent), "HOME": str(tmp_path)}  # no node, no npm
    out = subprocess.run([SEN, "emulate", "--board", "ttgo-lora32-v21"], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "nodejs and npm" in out.stderr, out.stderr
