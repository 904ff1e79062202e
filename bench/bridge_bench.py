"""The emulator's CPU bridge: how fast a client reaches the emulated board.

Starts the real `sen emulate` (MicroPython under Node, the bridge, the board host) and
measures over its pty:
  - raw-REPL exec round trip (send `x = 1` + Ctrl-D, read to the prompt), no mpremote;
  - one shim call (time.ticks_us(): MicroPython -> Node -> board host -> back);
  - soft reset to the raw-REPL prompt (fresh VM, shims, boot.py);
  - deep-sleep cycles (main.py: RTC memory count, machine.deepsleep(15 min));
  - the whole `mpremote exec pass` command, with and without its soft reset.
Run:  .venv/bin/python -m sen.bench.bridge_bench [--board ttgo-lora32-v21]
Printed: one line per figure; the last line is one JSON object.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

BIN = Path(sys.executable).parent

MAIN_PY = """import machine
rtc = machine.RTC()
m = rtc.memory()
n = int(m) if m else 0
if n < {cycles}:
    rtc.memory(str(n + 1).encode())
    machine.deepsleep(15 * 60 * 1000)
print('CYCLES DONE', n)
"""


def _until(s, marker, timeout=60.0):
    buf = b""
    end = time.monotonic() + timeout
    while marker not in buf:
        if time.monotonic() > end:
            raise RuntimeError(f"{marker!r} not seen; got {buf[-200:]!r}")
        n = s.in_waiting
        if n:
            buf += s.read(n)
        else:
            time.sleep(0.0002)
    return buf


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def run(board="ttgo-lora32-v21", execs=300, calls=5000, resets=30, cycles=96, mpremote_runs=10):
    tmp = Path(tempfile.mkdtemp(prefix="sen-bridge-bench-"))
    flash = tmp / "flash"
    proc = subprocess.Popen([str(BIN / "sen"), "emulate", "--board", board, "--flash", str(flash)],
                            stdout=subprocess.PIPE, text=True)
    out = {"board": board}
    try:
        port = proc.stdout.readline().split()[1]
        s = serial.serial_for_url(port, baudrate=115200, timeout=0)
        s.write(b"\r\x03\r\x01")
        _until(s, b"raw REPL; CTRL-B to exit\r\n>")

        ts = []
        for _ in range(execs):
            t = time.monotonic()
            s.write(b"x = 1\x04")
            _until(s, b"\x04\x04>")
            ts.append(time.monotonic() - t)
        out["exec_ms_median"] = round(statistics.median(ts) * 1e3, 3)
        out["exec_ms_p90"] = round(_pct(ts, 0.9) * 1e3, 3)
        print(f"raw-REPL exec round trip ({execs} runs): median {out['exec_ms_median']} ms, p90 {out['exec_ms_p90']} ms")

        code = (f"import _sen, time\nbt = _sen.builtin_time\nt = bt.ticks_us()\n"
                f"for i in range({calls}): time.ticks_us()\nprint(bt.ticks_diff(bt.ticks_us(), t))\x04")
        s.write(code.encode())
        reply = _until(s, b"\x04\x04>")
        us = int(reply.split(b"OK", 1)[1].split(b"\r\n", 1)[0])
        out["shim_call_us"] = round(us / calls, 1)
        print(f"shim call round trip, time.ticks_us() x {calls}: {out['shim_call_us']} us per call")

        ts = []
        for _ in range(resets):
            t = time.monotonic()
            s.write(b"\x04")
            _until(s, b"raw REPL; CTRL-B to exit\r\n>")
            ts.append(time.monotonic() - t)
        out["soft_reset_ms_median"] = round(statistics.median(ts) * 1e3, 1)
        print(f"soft reset to raw prompt ({resets} runs): median {out['soft_reset_ms_median']} ms")

        (flash / "main.py").write_text(MAIN_PY.format(cycles=cycles))
        s.write(b"\x02")
        _until(s, b">>> ")
        t = time.monotonic()
        s.write(b"import machine; machine.reset()\r")
        _until(s, b"CYCLES DONE", timeout=600)
        wall = time.monotonic() - t
        (flash / "main.py").unlink()
        out["deepsleep_cycles"] = cycles
        out["deepsleep_cycle_ms"] = round(wall / cycles * 1e3, 1)
        print(f"{cycles} deep-sleep cycles (15 min each, {cycles * 15 / 60:.0f} simulated h) in {wall:.2f} s wall: "
              f"{out['deepsleep_cycle_ms']} ms per cycle")
        s.close()

        for label, args in (("mpremote_exec_s", ["exec", "pass"]), ("mpremote_resume_exec_s", ["resume", "exec", "pass"])):
            ts = []
            for _ in range(mpremote_runs):
                t = time.monotonic()
                r = subprocess.run([str(BIN / "mpremote"), "connect", port, *args], capture_output=True, timeout=60)
                ts.append(time.monotonic() - t)
                if r.returncode != 0:
                    raise RuntimeError(f"mpremote {args} failed: {r.stderr.decode()}")
            out[label] = round(statistics.median(ts), 3)
            print(f"mpremote connect PORT {' '.join(args)} (whole process, {mpremote_runs} runs): median {out[label]} s")
        t = time.monotonic()
        subprocess.run([str(BIN / "mpremote"), "--version"], capture_output=True)
        out["mpremote_start_s"] = round(time.monotonic() - t, 3)
        print(f"mpremote --version (its own start-up, for comparison): {out['mpremote_start_s']} s")
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
        print(f"host load average during the run: {out['load_avg_1m']}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ttgo-lora32-v21")
    ap.add_argument("--cycles", type=int, default=96)
    a = ap.parse_args(argv)
    run(board=a.board, cycles=a.cycles)


if __name__ == "__main__":
    main()
