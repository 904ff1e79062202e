"""Class 11: node config. `sen node flash --set` with a typo or a wrong type is refused by the
firmware's own loader (run on the host) before any board is touched: one line naming the key,
exit 2. The firmware's loader refuses the same on the node."""
import pytest

from sen.firmware_modules import load
from tests.faults.helpers import one_line_error, sen


@pytest.mark.parametrize("setting, says", [
    ("intervl_s=600", "intervl_s"),
    ("confirmed=yes", "confirmed"),
    ("radio.sff=10", "radio.sff"),
    ("radio.sf=fast", "radio.sf"),
    ("interval_s=5", "interval_s"),
])
def test_bad_set_is_refused_before_the_board_is_touched(tmp_path, setting, says):
    r = sen("node", "flash", "--port", tmp_path / "no-such-port", "--node-id", "5", "--board", "ttgo-lora32-v21",
            "--kind", "air", "--set", setting, cwd=tmp_path, timeout=120)
    assert one_line_error(r) and says in r.stderr, r.stderr
    assert "no-such-port" not in r.stderr  # judged before any attempt to open the port


def test_the_firmware_loader_refuses_unknown_keys_and_non_booleans():
    cfg = load("config")
    base = {"node_id": 5, "kind": "air", "key": "00" * 16}
    cfg.check_node(dict(base, interval_s=600, confirmed=True))
    for bad in ({"intervl_s": 600}, {"confirmed": "yes"}, {"radio": {"sff": 10}}):
        with pytest.raises(cfg.ConfigError):
            cfg.check_node(dict(base, **bad))


def test_reflash_keeps_the_node_config_unless_reset(tmp_path):
    """On an emulated board (`sen emulate`, real mpremote): flash with --set interval_s=600,
    re-flash without --set (the config stays), then with --reset-config (defaults again)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from sen.paths import DOCS
    here = Path(__file__).resolve().parent.parent / "node_tools"
    bin_dir = Path(sys.executable).parent
    (tmp_path / "gateway.toml").write_text((DOCS / "gateway.emulated.toml").read_text())
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    os.chmod(tmp_path / "keys.json", 0o600)
    proc = subprocess.Popen([str(bin_dir / "sen"), "emulate", "--board", "ttgo-lora32-v21", "--count", "1",
                             "--scenario", str(here / "bench_scenario.toml"), "--flash", str(tmp_path / "flash"),
                             "--speed", "300", "--gateway", str(tmp_path / "gateway.toml")],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "emulator.log", "wb"), text=True,
                            cwd=tmp_path, start_new_session=True)
    try:
        port = proc.stdout.readline().split()[1]

        def flash(*extra):
            r = sen("node", "flash", "--port", port, "--node-id", "101", "--board", "ttgo-lora32-v21", "--kind",
                    "air", "--boot-log", "2", "--gateway", "gateway.toml", *extra, cwd=tmp_path, timeout=240)
            assert r.returncode == 0, r.stderr + r.stdout
            out = subprocess.run([str(bin_dir / "mpremote"), "connect", port, "fs", "cat", ":node.json"],
                                 capture_output=True, text=True, timeout=60).stdout
            return json.loads(out)

        assert flash("--set", "interval_s=600", "--set", "confirmed=true")["interval_s"] == 600
        kept = flash()
        assert kept["interval_s"] == 600 and kept["confirmed"] is True
        reset = flash("--reset-config")
        assert "interval_s" not in reset and "confirmed" not in reset
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
