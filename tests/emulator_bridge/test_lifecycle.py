"""Resets, deep sleep and restarts: what survives, and what the board boots into."""
import os
import signal
import textwrap
import time

from .emu import Emulator, read_until


def test_files_survive_soft_reset_hard_reset_and_restart(tmp_path):
    flash = tmp_path / "flash"
    e = Emulator("--board", "heltec-wifi-lora32-v2", "--flash", str(flash))
    try:
        e.mp("exec", "open('keep.txt', 'w').write('kept 1')")
        e.mp("soft-reset")
        assert e.mp("fs", "cat", "keep.txt") == "kept 1"
        e.mp("reset")
        time.sleep(0.2)
        assert e.mp("fs", "cat", "keep.txt") == "kept 1"
        assert e.mp("exec", "import machine; print(machine.reset_cause() in (machine.HARD_RESET, machine.SOFT_RESET))") == "True\n"
    finally:
        assert e.stop() in (0, -15)
    e = Emulator("--board", "heltec-wifi-lora32-v2", "--flash", str(flash))
    try:
        assert e.mp("fs", "cat", "keep.txt") == "kept 1"
    finally:
        e.stop()
    # without --flash, a fresh run starts from an empty filesystem
    e = Emulator("--board", "heltec-wifi-lora32-v2")
    try:
        assert "keep.txt" not in e.mp("fs", "ls")
    finally:
        e.stop()


def test_deepsleep_boots_again_with_rtc_memory_and_virtual_time(tmp_path):
    flash = tmp_path / "flash"
    e = Emulator("--board", "esp32-rfm95", "--flash", str(flash))
    try:
        (flash / "main.py").write_text(textwrap.dedent("""\
            import machine, time
            rtc = machine.RTC()
            m = rtc.memory()
            wakes = int(m) if m else 0
            print('wake', wakes, machine.reset_cause())
            if wakes < 3:
                rtc.memory(str(wakes + 1).encode())
                machine.deepsleep(15 * 60 * 1000)
            """))
        with e.serial() as s:  # pyserial flushes on open: trigger the boots after it
            s.write(b"\r\x03")
            read_until(s, b">>> ")
            s.write(b"import machine; machine.reset()\r")
            out = read_until(s, b"wake 3 4\r\n")
            while not out.endswith(b">>> "):  # the prompt after the last wake's main.py
                out += read_until(s, b">>> ")
        # three 15-minute deep sleeps, each a fresh interpreter booting from DEEPSLEEP_RESET
        assert b"wake 0 2\r\n" in out and b"wake 1 4\r\n" in out and b"wake 3 4\r\n" in out, out
        assert out.count(b"rst:0x5 (DEEPSLEEP_RESET)") == 3, out
        got = e.mp("resume", "exec", "import machine, time; print(wakes, machine.reset_cause(), time.time() >= 45 * 60)")
        assert got == "3 4 True\n"
    finally:
        e.stop()


def test_two_boards_have_their_own_ports_and_flash(tmp_path):
    flash = tmp_path / "flash"
    e = Emulator("--board", "ttgo-lora32-v21", "--count", "2", "--flash", str(flash), count=2)
    try:
        a, b = e.ports
        assert a != b
        e.mp("exec", "open('who', 'w').write('A')", port=a)
        e.mp("exec", "open('who', 'w').write('B')", port=b)
        assert e.mp("fs", "cat", "who", port=a) == "A"
        assert e.mp("fs", "cat", "who", port=b) == "B"
        assert (flash / "board0" / "who").read_text() == "A"
        assert (flash / "board1" / "who").read_text() == "B"
    finally:
        e.stop()


def _children(pid):
    kids = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids |= {int(x) for x in f.read().split()}
    return kids


def test_sigint_stops_cleanly_and_leaves_no_interpreter():
    e = Emulator("--board", "esp32-rfm95", "--count", "2", count=2)
    assert e.mp("eval", "7 * 6") == "42\n"
    kids = _children(e.proc.pid)
    assert len(kids) == 2  # one Node interpreter per board
    e.proc.send_signal(signal.SIGINT)
    assert e.proc.wait(timeout=10) == 0
    for k in kids:
        assert not os.path.exists(f"/proc/{k}") or open(f"/proc/{k}/stat").read().split()[2] == "Z"


def test_scenario_and_report_reach_the_board_host(tmp_path):
    import json

    from sen.paths import REPO
    scan = "from machine import I2C, Pin; print(I2C(0, sda=Pin(21), scl=Pin(22)).scan())"
    report = tmp_path / "run.json"
    e = Emulator("--board", "ttgo-lora32-v21", "--scenario", str(REPO / "scenarios" / "city-day.toml"),
                 "--report", str(report))
    try:
        assert e.mp("exec", scan) == "[118]\n"  # the scenario's BME280 at 0x76
    finally:
        assert e.stop() == 0
    data = json.loads(report.read_text())
    assert [b["board"] for b in data["boards"]] == ["ttgo-lora32-v21#0"]
    e = Emulator("--board", "ttgo-lora32-v21")
    try:
        assert e.mp("exec", scan) == "[]\n"  # no world, no sensors
    finally:
        e.stop()
