"""Bad input to `sen emulate` gets one line naming the problem and the fix."""
import subprocess

from .emu import SEN


def run(*args):
    return subprocess.run([SEN, "emulate", *args], capture_output=True, text=True, timeout=30)


def test_list_names_every_board():
    r = run("--list")
    assert r.returncode == 0, r.stderr
    ids = [ln.split("\t")[0] for ln in r.stdout.splitlines()]
    assert ids == ["esp32-rfm95", "heltec-wifi-lora32-v2", "ttgo-lora32-v21"]


def test_unknown_board_is_one_line_naming_known_boards():
    r = run("--board", "esp8266-nodemcu")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sen: error: unknown board 'esp8266-nodemcu'")
    for b in ("ttgo-lora32-v21", "heltec-wifi-lora32-v2", "esp32-rfm95"):
        assert b in lines[0]
    assert "PORT" not in r.stdout


def test_missing_board_bad_speed_and_count():
    for args, word in ((["--speed", "fast", "--board", "esp32-rfm95"], "--speed"),
                       (["--speed", "-2", "--board", "esp32-rfm95"], "--speed"),
                       (["--count", "0", "--board", "esp32-rfm95"], "--count"),
                       ([], "no board")):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sen: error:") and word in lines[0], r.stderr


def test_missing_scenario_file(tmp_path):
    r = run("--board", "esp32-rfm95", "--scenario", str(tmp_path / "none.toml"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "scenario" in r.stderr
