"""The wheel as a user gets it: built from the sdist (`python -m build`), installed into a
fresh virtualenv outside the checkout, run from an empty directory with nothing of the
checkout on sys.path. The MicroPython runtime comes from a first-use `npm ci` into a
per-user cache the test points at an empty directory."""
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

import pytest

from sen.firmware_modules import load
from sen.paths import REPO

pytestmark = pytest.mark.slow
KEY = "000102030405060708090a0b0c0d0e0f"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    res = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheel = next(dist.glob("sen-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # dependencies come from PyPI through pip's own cache (the checkout's venv filled it)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEN_NODE_MODULES", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return {"venv": venv, "sen": str(venv / "bin" / "sen"), "cwd": cwd, "env": env, "tmp": tmp, "dist": dist}


def sen(inst, *args, timeout=120):
    return subprocess.run([inst["sen"], *args], cwd=inst["cwd"], env=inst["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_sdist_and_wheel_carry_the_firmware_boards_scenarios_and_runtime(installed):
    import tarfile
    import zipfile
    names = set(zipfile.ZipFile(next(installed["dist"].glob("*.whl"))).namelist())
    for f in ("sen/firmware/main.py", "sen/firmware/drivers/sx127x.py", "sen/boards/ttgo-lora32-v21.toml",
              "sen/scenarios/city-day.toml", "sen/emulator/runtime/board.mjs", "sen/emulator/runtime/package-lock.json",
              "sen/emulator/runtime/package.json", "sen/emulator/mpy/machine.py", "sen/emulator/runtime/mpy/_sen.py",
              "sen/gateway/status_page/assets/index.html"):
        assert f in names, f
    firmware = {p.name for p in (REPO / "firmware").glob("*.py")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("sen/firmware/") and n.count("/") == 2} == firmware
    sdist = tarfile.open(next(installed["dist"].glob("sen-*.tar.gz")))
    assert any(m.name.endswith("sen/firmware/main.py") and m.isfile() for m in sdist.getmembers())


def test_nothing_comes_from_the_checkout(installed):
    py = str(installed["venv"] / "bin" / "python")
    out = subprocess.run([py, "-c", "import sys, sen, sen.paths as p; print(sen.__file__); print(p.FIRMWARE);"
                          " print(p.REPO); print(sys.path)"],
                         cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True, check=True).stdout
    assert str(REPO) not in out, out
    assert str(installed["venv"]) in out.splitlines()[1]


def test_version_and_boards(installed):
    out = sen(installed, "--version")
    assert out.returncode == 0 and out.stdout.startswith("sen, version "), out.stderr
    out = sen(installed, "emulate", "--list")
    assert out.returncode == 0, out.stderr
    assert {ln.split("\t")[0] for ln in out.stdout.splitlines()} == {p.stem for p in (REPO / "boards").glob("*.toml")}


def test_two_hour_demo_passes_its_checks(installed):
    out_dir = installed["tmp"] / "demo"
    res = sen(installed, "demo", "--hours", "2", "--out", str(out_dir), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    # first use fetched the runtime into the (empty) per-user cache and said so
    assert "npm ci" in res.stderr and (installed["tmp"] / "cache" / "sen").is_dir()
    summary = json.loads((out_dir / "summary.json").read_text())
    judged = [c for c in summary["checks"] if c["pass"] is not None]
    failed = [c for c in judged if c["pass"] is not True]  # the exit status says the same
    assert len(judged) >= 10 and not failed, failed
    assert all(d["samples_stored"] > 0 for d in summary["delivery"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_until(fd, token: bytes, deadline: float) -> bytes:
    buf = b""
    os.set_blocking(fd, False)
    while token not in buf:
        assert time.monotonic() < deadline, buf
        try:
            buf += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.05)
    return buf


def test_gateway_with_a_serial_receiver_stores_a_frame_and_drains_on_sigterm(installed):
    """The receiver board is a pty this test drives with the protocol of
    docs/receiver-serial-protocol.md; the frame is the firmware's own encoder's."""
    gw = installed["tmp"] / "gw"
    gw.mkdir()
    master, slave = pty.openpty()
    port = _free_port()
    (gw / "gateway.toml").write_text(
        f'[gateway]\nid = "gw-wheel"\ndata_dir = "data"\n[keys]\nfile = "keys.json"\n'
        f'[[radio]]\nbackend = "serial"\nname = "usb0"\nport = "{os.ttyname(slave)}"\n'
        f'[metrics]\nbind = "127.0.0.1"\nport = {port}\n')
    assert sen(installed, "gateway", "keys", "add", "101", "--key", KEY, "-c", str(gw / "gateway.toml")).returncode == 0
    proc = subprocess.Popen([installed["sen"], "gateway", "run", "-c", str(gw / "gateway.toml")], cwd=installed["cwd"],
                            env=installed["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        assert b"SENCFG" in _read_until(master, b"\n", deadline)
        os.write(master, b"SENRDY 921400000 9 125000 18\n")
        frame, channels = load("frame"), load("channels")
        rd = [(channels.CHANNELS["air_temp"][0],) + channels.scaled("air_temp", 24.5)]
        data = frame.Framer(101, bytes.fromhex(KEY)).encode(1, frame.UP_BOOT, [(0, rd)])  # a boot frame: full counter
        os.write(master, f"SENRX -87.0 7.5 {bytes(data).hex()}\n".encode())
        text = ""
        while 'sen_gateway_frames_total{outcome="accepted",reason=""} 1.0' not in text:
            assert time.monotonic() < deadline and proc.poll() is None, text
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                pass
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
    db = tomllib.loads((gw / "gateway.toml").read_text())["gateway"]["data_dir"]
    import sqlite3
    con = sqlite3.connect(gw / db / "gateway.db")
    assert con.execute("SELECT COUNT(*) FROM frames WHERE node_id=101").fetchone()[0] == 1
    con.close()
