"""Virtual CPU time from counted work, never from the host's clocks.

The emulated board's CPU is the official MicroPython WebAssembly module, made to count
its own work once per host (emulator/runtime/count_work.mjs): one unit per function entry
and per loop iteration of the interpreter's C code. The count for the same firmware, input
and seed is the same on every host and under any load, so virtual time, frames and
results are too.

A unit is converted to ESP32 time with US_PER_UNIT_240, calibrated on pystone_lowmem (the
MicroPython benchmark whose ESP32 figures are published; `sen bench cpu-model` repeats the
count and shows the calibration):
  - ESP32 at 240 MHz, MicroPython 1.12: 1661 pystones/s (micropython/micropython#5673),
    1602/s (micropython#6565); 1075/s at the 160 MHz default (v923z/micropython-ulab#296),
    i.e. 1613/s at 240 MHz. Mean 1625/s.
  - MicroPython 1.18 moved the ESP32's VM and hot runtime paths to IRAM and built with -O2
    (micropython/micropython#7850): its perf_bench scores rose x1.54 to x3.08, median x2.06.
    So 1.27 on an ESP32 at 240 MHz runs about 1625 x 2.06 = 3350 pystones/s.
  - One pystone is PYSTONE_UNITS units in this counted module (MicroPython 1.27).
Units scale with 240 / f_MHz at other clock speeds. Error bars: docs/boards.md ("CPU time").
"""
import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from sen.cache import user_cache_dir
from sen.errors import SenError

PYSTONE_UNITS = 3447          # units per pystone in the counted module (sen bench cpu-model)
PYSTONES_PER_S_240_V112 = 1625.0   # published ESP32 figures above, MicroPython 1.12
SPEEDUP_SINCE_V112 = 2.06          # median perf_bench gain of micropython#7850 (1.18)
PYSTONES_PER_S_240 = PYSTONES_PER_S_240_V112 * SPEEDUP_SINCE_V112
US_PER_UNIT_240 = 1e6 / PYSTONES_PER_S_240 / PYSTONE_UNITS
SCRIPT = Path(__file__).resolve().parent / "runtime" / "count_work.mjs"
FORMAT = "1"  # bump when count_work.mjs changes what it counts


def cache_dir() -> Path:
    return user_cache_dir("runtime")


def counted_wasm(mjs: Path, node: str) -> Path:
    """The counting copy of the MicroPython module next to `mjs`, built on first use (about
    2 s) and cached per content; several boards starting at once build it once."""
    src = Path(mjs).with_name("micropython.wasm")
    try:
        digest = hashlib.sha256(src.read_bytes() + SCRIPT.read_bytes()).hexdigest()[:16]
    except OSError as e:
        raise SenError(f"cannot read the MicroPython runtime {src}: {e.strerror}",
                       "run `make setup` (npm ci) in the repository") from None
    out = cache_dir() / f"micropython-counted-{FORMAT}-{digest}.wasm"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        # binaryen sits in the same node_modules as the runtime (npm ci installs both)
        r = subprocess.run([node, str(SCRIPT), str(src), str(tmp), str(Path(mjs).parents[2])],
                           capture_output=True, text=True)
        if r.returncode != 0 or not tmp.exists():
            tmp.unlink(missing_ok=True)
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise SenError(f"cannot build the counting MicroPython module: {last}",
                           "run `make setup` (npm ci installs binaryen) and try again")
        os.replace(tmp, out)
    return out
