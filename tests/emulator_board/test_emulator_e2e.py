"""Through the real emulator (`sen emulate`: MicroPython under Node, the bridge, this board
host): a main.py that deep-sleeps is woken by virtual time with its RTC memory intact, an
ext0 rain-gauge pin is configured, and the run report adds up."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

SEN = str(Path(sys.executable).parent / "sen")

MAIN_PY = r'''
import machine, time, esp32
m = machine.RTC().memory()
n = int(m) + 1 if m else 1
machine.RTC().memory(str(n).encode())
nvs = esp32.NVS("t")
nvs.set_i32("n", n)
if n % 2:
    nvs.commit()
keep = bytearray(4096 * n)   # the heap figure must see this grow by 4 KB a boot
print("BOOT", n, machine.reset_cause(), machine.wake_reason(), time.time())
if n < 4:
    machine.deepsleep(60000)
print("DONE", n, nvs.get_i32("n"))
'''


def test_deep_sleeping_main_wakes_by_virtual_time_with_rtc_memory(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(MAIN_PY)
    report = tmp_path / "report.json"
    p = subprocess.Popen([SEN, "emulate", "--board", "esp32-rfm95", "--flash", str(flash), "--report", str(report)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = p.stdout.readline().strip()
        assert line.startswith("PORT /dev/pts/"), (line, p.stderr.read() if p.poll() is not None else "")
        port = serial.Serial(line.split()[1], 115200, timeout=0.2)
        buf, t0 = b"", time.monotonic()
        while b">>> " not in buf and time.monotonic() - t0 < 60:
            buf += port.read(4096)
        wall = time.monotonic() - t0
        port.close()
    finally:
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=30)
    text = buf.decode(errors="replace")
    boots = [ln.split() for ln in text.splitlines() if ln.startswith("BOOT")]
    assert [b[1] for b in boots] == ["1", "2", "3", "4"], text
    assert boots[0][2:4] == ["1", "0"]                                  # PWRON_RESET, no wake
    assert all(b[2:4] == ["4", "4"] for b in boots[1:])                 # DEEPSLEEP_RESET, TIMER_WAKE
    secs = [int(b[4]) for b in boots]
    assert all(59 <= b - a <= 62 for a, b in zip(secs, secs[1:])), secs   # RTC ran through deep sleep
    assert "DONE 4 4" in text
    assert wall < 30, wall                                              # 3 minutes virtual, far less wall
    assert p.returncode == 0, err
    data = json.loads(report.read_text())
    cycles = data["boards"][0]["cycles"]
    assert len(cycles) == 4
    for c in cycles[:3]:
        assert c["state_ms"]["deep_sleep"] == pytest.approx(60000, abs=2)
        assert c["reset_cause"] in (1, 4)
        assert 4096 < c["peak_heap"] < 200_000     # live heap incl. the emulator's runtime
    peaks = [c["peak_heap"] for c in cycles[:3]]
    assert all(3584 <= b - a <= 4608 for a, b in zip(peaks, peaks[1:])), peaks
    assert (tmp_path / "report.json.txt").read_text().startswith("esp32-rfm95#0")
