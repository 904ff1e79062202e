"""One logging set-up for every command: JSON lines when systemd runs it (INVOCATION_ID),
readable text otherwise; `sen emulate --gateway` included."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sen.paths import DOCS, REPO

SEN = str(Path(sys.executable).with_name("sen"))


def _emulate_with_gateway(tmp_path, env) -> list[str]:
    shutil.copy(DOCS / "gateway.emulated.toml", tmp_path / "gateway.toml")
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    proc = subprocess.Popen([SEN, "emulate", "--board", "ttgo-lora32-v21", "--scenario",
                             str(REPO / "tests" / "node_tools" / "bench_scenario.toml"), "--gateway", "gateway.toml",
                             "--log-level", "INFO"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "err", "w"), text=True)
    try:
        deadline = time.monotonic() + 60
        while "running:" not in (tmp_path / "err").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "err").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return [ln for ln in (tmp_path / "err").read_text().splitlines() if ln.strip()]


@pytest.fixture
def clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM", "SEN_LOG_FORMAT")}


def test_emulate_gateway_logs_json_under_systemd(tmp_path, clean_env):
    lines = _emulate_with_gateway(tmp_path, dict(clean_env, INVOCATION_ID="0123456789abcdef"))
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert any(r["logger"] == "sen.gateway" and "running" in r["msg"] and r["level"] == "info" for r in records)
    # every log record is JSON; the only other line is the command's own banner
    assert all(ln.startswith("{") or ln.startswith("sen emulate:") for ln in lines), lines


def test_emulate_gateway_logs_text_on_a_terminal(tmp_path, clean_env):
    lines = _emulate_with_gateway(tmp_path, clean_env)
    running = [ln for ln in lines if "running:" in ln]
    assert running and not running[0].startswith("{") and " INFO " in running[0] and "sen.gateway:" in running[0]


def test_journal_stream_must_name_our_stderr(tmp_path, clean_env):
    """systemd.exec(5): JOURNAL_STREAM is device:inode of the stream; a stale value inherited
    by a child whose stderr goes elsewhere must not switch it to JSON."""
    code = "from sen.logs import wants_json; import sys, os; st = os.fstat(2); print(wants_json(), f'{st.st_dev}:{st.st_ino}')"
    py = str(Path(sys.executable))
    with open(tmp_path / "err", "w") as err:
        out = subprocess.run([py, "-c", code], env=dict(clean_env, JOURNAL_STREAM="1:2"), stderr=err,
                             capture_output=False, stdout=subprocess.PIPE, text=True).stdout.split()
        assert out[0] == "False"
        out2 = subprocess.run([py, "-c", code], env=dict(clean_env, JOURNAL_STREAM=out[1]), stderr=err,
                              stdout=subprocess.PIPE, text=True).stdout.split()
    assert out2[0] == "True"
