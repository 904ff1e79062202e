"""`sen node flash` against emulated boards with real mpremote, and an emulated gateway.

One emulator (two boards on one medium, the gateway in-process) serves the whole module:
provisioning is slow enough that every test builds on the state the previous one left,
in the order a technician would meet them.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from sen.paths import DOCS, FIRMWARE

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
SEN = str(BIN / "sen")
MPREMOTE = str(BIN / "mpremote")
BOARD = "ttgo-lora32-v21"

GATEWAY_TOML = (DOCS / "gateway.emulated.toml").read_text()


def start_emulator(tmp: Path, scenario: Path, count: int, gateway: Path | None = None):
    # 300x real time: a 15-minute cycle every 3 s, so the node is mostly deep-sleeping
    # when a flash starts, as on a pole, and the world does not run out during the module.
    args = [SEN, "emulate", "--board", BOARD, "--count", str(count), "--scenario", str(scenario),
            "--flash", str(tmp / "flash"), "--speed", "300"]
    if gateway is not None:
        args += ["--gateway", str(gateway)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(tmp / "emulator.log", "wb"), text=True,
                            cwd=tmp, start_new_session=True)
    ports = [proc.stdout.readline().split()[1] for _ in range(count)]
    return proc, ports


def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def sen(*args, cwd, timeout=240):
    return subprocess.run([SEN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def flash(port, cwd, *extra, node_id=101, kind="air"):
    return sen("node", "flash", "--port", port, "--node-id", str(node_id), "--board", BOARD, "--kind", kind,
               "--boot-log", "2", *extra, cwd=cwd)


def one_line_error(res, *words):
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sen: error: ") and " — " in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def board_hashes(port):
    """SHA-256 of every file on the board, through real mpremote."""
    # In 4 KB pieces, as a real ESP32 must (a full board's log is larger than its heap); one
    # read() of it also grows its buffer in small steps on the emulated port: 40 s on a busy host.
    code = ("import os, hashlib, binascii\n"
            "buf = bytearray(4096)\n"
            "def h(p):\n"
            "    s = hashlib.sha256()\n"
            "    with open(p, 'rb') as f:\n"
            "        while True:\n"
            "            n = f.readinto(buf)\n"
            "            if not n:\n"
            "                return binascii.hexlify(s.digest()).decode()\n"
            "            s.update(memoryview(buf)[:n])\n"
            "def w(d):\n"
            "    for e in os.ilistdir(d):\n"
            "        p = d.rstrip('/') + '/' + e[0]\n"
            "        if e[1] == 0x4000:\n"
            "            yield from w(p)\n"
            "        else:\n"
            "            yield p, h(p)\n"
            "print(repr(dict(w('/'))))\n")
    out = subprocess.run([MPREMOTE, "connect", port, "exec", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    files = eval(out.stdout.strip().splitlines()[-1])
    # the node's own data (its queue, firmware/flashq.py) changes with every cycle it runs
    return {p: h for p, h in files.items() if p not in ("/sq.bin", "/sq.bin.tmp")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    (tmp / "gateway.toml").write_text(GATEWAY_TOML)
    (tmp / "keys.json").write_text('{"nodes": {}}')
    os.chmod(tmp / "keys.json", 0o600)
    proc, ports = start_emulator(tmp, HERE / "bench_scenario.toml", 2, tmp / "gateway.toml")
    yield tmp, ports
    stop(proc)


def test_fresh_board_is_provisioned_and_its_frame_reaches_the_gateway(bench):
    tmp, (port, _) = bench
    res = flash(port, tmp, "--gateway", "gateway.toml")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "RESULT PASS" in res.stdout
    assert re.search(r"heard by gw-emulated: frame \d+, RSSI -\d+ dBm", res.stdout), res.stdout
    assert "files" in res.stdout and "copied" in res.stdout
    keys = json.loads((tmp / "keys.json").read_text())["nodes"]
    on_board = json.loads(subprocess.run([MPREMOTE, "connect", port, "fs", "cat", ":node.json"],
                                         capture_output=True, text=True, timeout=60).stdout)
    assert on_board["node_id"] == 101 and keys["101"]["key"] == on_board["key"]
    assert on_board["key"] not in res.stdout  # never printed unless asked


def test_reflash_of_a_cycling_node_changes_nothing(bench):
    tmp, (port, _) = bench
    before = board_hashes(port)  # (mpremote leaves the board at its REPL, as on a real ESP32)
    # Put the node back into its cycle and wait until it deep-sleeps: the escape must get in.
    with serial.Serial(port, 115200, timeout=0.2) as s:
        s.write(b"\x04")
        log = b""
        # a wall-time cap only: a loaded host runs the emulated boot window and cycle slower
        end = time.monotonic() + 90
        while b"sleep=" not in log and time.monotonic() < end:
            log += s.read(4096)
    assert b"[sen] cycle" in log and b"sleep=" in log, log[-500:]
    res = flash(port, tmp, "--gateway", "gateway.toml")
    assert res.returncode == 0, res.stderr
    assert "nothing changed" in res.stdout and "key          unchanged" in res.stdout
    after = board_hashes(port)
    assert {p: h for p, h in after.items() if p != "/node.json"} == {p: h for p, h in before.items() if p != "/node.json"}
    assert after["/node.json"] == before["/node.json"]


def test_a_changed_firmware_file_is_the_only_file_copied(bench, tmp_path):
    tmp, (port, _) = bench
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, fw)
    with open(fw / "filters.py", "a") as f:
        f.write("\n\ndef bench_change():\n    return 1\n")  # a code change (comments compile away)
    assert sen("node", "build", "--board", BOARD, "--kind", "air", "--out", str(tmp_path / "b"), "--firmware", str(fw),
               cwd=tmp).returncode == 0
    res = flash(port, tmp, "--gateway", "gateway.toml", "--bundle", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr
    assert re.search(r"1 copied: filters\.mpy\b", res.stdout), res.stdout
    # and back to the checkout's firmware: again exactly that file
    res = flash(port, tmp, "--gateway", "gateway.toml")
    assert re.search(r"1 copied: filters\.mpy\b", res.stdout), res.stdout


def test_mismatched_mpy_version_is_refused_and_nothing_changes(bench, tmp_path):
    tmp, (port, _) = bench
    assert sen("node", "build", "--board", BOARD, "--kind", "air", "--out", str(tmp_path / "b"), cwd=tmp).returncode == 0
    mpy = tmp_path / "b" / "frame.mpy"
    data = bytearray(mpy.read_bytes())
    data[1] = 5  # as mpy-cross 1.18 writes
    mpy.write_bytes(bytes(data))
    before = board_hashes(port)
    res = flash(port, tmp, "--bundle", str(tmp_path / "b"))
    one_line_error(res, ".mpy v5", "rebuild")
    assert board_hashes(port) == before


def test_full_board_is_refused_before_anything_is_written(bench, tmp_path):
    tmp, (port, _) = bench
    free = int(subprocess.run([MPREMOTE, "connect", port, "exec", "import os; s=os.statvfs('/'); print(s[0]*s[3])"],
                              capture_output=True, text=True, timeout=60).stdout.split()[-1])
    # Fill the flash on the device itself, as months of logs would (mpremote cp of MBs is slow).
    fill = (f"n = {max(0, free - 20 * 1024)}\nb = bytes(4096)\nwith open('logs.bin', 'wb') as f:\n"
            "    while n > 0:\n        f.write(b[:min(n, 4096)])\n        n -= 4096\n")
    assert subprocess.run([MPREMOTE, "connect", port, "exec", fill], capture_output=True, timeout=300).returncode == 0
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, fw)
    (fw / "drivers" / "sx127x.py").write_text((FIRMWARE / "drivers" / "sx127x.py").read_text() + "\n_PAD = " + repr("x" * 60000) + "\n")
    assert sen("node", "build", "--board", BOARD, "--kind", "air", "--out", str(tmp_path / "b"), "--firmware", str(fw),
               cwd=tmp).returncode == 0
    before = board_hashes(port)
    res = flash(port, tmp, "--bundle", str(tmp_path / "b"))
    one_line_error(res, "board is full")
    assert board_hashes(port) == before
    subprocess.run([MPREMOTE, "connect", port, "fs", "rm", ":logs.bin"], capture_output=True, timeout=60)


def test_wrong_port_busy_port_and_silent_port(bench, tmp_path):
    tmp, (port, _) = bench
    one_line_error(flash("/dev/ttyUSB97", tmp), "no serial port /dev/ttyUSB97")
    with serial.Serial(port, 115200, exclusive=True):
        one_line_error(flash(port, tmp), "busy")
    master, slave = os.openpty()  # a port with nothing behind it
    try:
        one_line_error(flash(os.ttyname(slave), tmp, "--wait", "3"), "no MicroPython REPL answered")
    finally:
        os.close(master)
        os.close(slave)


def test_receiver_board_is_provisioned_without_a_key(bench):
    tmp, (_, rx_port) = bench
    res = flash(rx_port, tmp, node_id=9001, kind="receiver")
    assert res.returncode == 0, res.stderr
    assert "RESULT PASS" in res.stdout
    cfg = json.loads(subprocess.run([MPREMOTE, "connect", rx_port, "fs", "cat", ":node.json"],
                                    capture_output=True, text=True, timeout=60).stdout)
    assert cfg["kind"] == "receiver" and "key" not in cfg


def test_selftest_failure_restores_the_previous_firmware(tmp_path):
    proc, (port,) = start_emulator(tmp_path, HERE / "detached_scenario.toml", 1)
    try:
        res = flash(port, tmp_path, "--keep-on-selftest-failure")
        assert res.returncode == 0 and "FAIL bme280" in res.stdout, res.stdout + res.stderr
        v1 = board_hashes(port)
        fw = tmp_path / "firmware"
        shutil.copytree(FIRMWARE, fw)
        with open(fw / "sampling.py", "a") as f:
            f.write("\n\ndef v2():\n    return 2\n")
        assert sen("node", "build", "--board", BOARD, "--kind", "air", "--out", str(tmp_path / "b"), "--firmware",
                   str(fw), cwd=tmp_path).returncode == 0
        res = flash(port, tmp_path, "--bundle", str(tmp_path / "b"))
        one_line_error(res, "self-test failed", "bme280", "previous firmware was restored")
        after = board_hashes(port)
        assert {p: h for p, h in after.items() if not p.startswith("/.sen")} == v1
        # the restored firmware boots into its cycle (mpremote above left it at the REPL)
        with serial.Serial(port, 115200, timeout=0.2) as s:
            s.write(b"\x04")
            log, end = b"", time.monotonic() + 30
            while b"[sen] cycle" not in log and time.monotonic() < end:
                log += s.read(4096)
        assert b"[sen] cycle" in log, log[-400:]
    finally:
        stop(proc)
