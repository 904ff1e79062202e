"""`sen bench cpu-model`: the emulator's CPU time measure, counted work units, against the
published ESP32 figures it is calibrated on (emulator/work_counter.py, docs/boards.md).

Runs pystone_lowmem (micropython-lib's, fetched from PyPI into the user cache on first use)
and a reference loop on the counting MicroPython module, prints units per pystone and per
loop iteration, the ESP32 time they stand for, and the spread the published figures allow.
Fails (exit 1) if the module no longer counts what work_counter.PYSTONE_UNITS says."""
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sen.emulator import work_counter as wc
from sen.emulator.node_process import find_micropython_mjs, find_node
from sen.errors import SenError

PYSTONE = "micropython-pystone_lowmem"
SCRIPT = Path(__file__).with_name("cpu_model.mjs")
# Published pystone_lowmem figures (pystones/s) and the 1.18 speed-up range, see work_counter.
PUBLISHED_240 = {"micropython#5673 (1.12, 240 MHz)": 1661.0, "micropython#6565 (1.12, 240 MHz)": 1602.0,
                 "ulab#296 (1.13, 160 MHz, x1.5)": 1075.0 * 1.5}
SPEEDUP_RANGE = (1.54, 3.08)  # micropython#7850 perf_bench gains, min and max
LOOPS = 500
BENCH = """
import _work, pystone_lowmem
def ref(n):
    x = 0
    for i in range(n):
        x += i
a = _work.units(); pystone_lowmem.pystones(%d); b = _work.units()
c = _work.units(); ref(10000); d = _work.units()
print('{"pystone": %%d, "ref_loop": %%d}' %% (b - a, d - c))
""" % LOOPS


def _pystone_source() -> bytes:
    cache = wc.cache_dir() / "pystone_lowmem.py"
    if cache.exists():
        return cache.read_bytes()
    try:
        meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{PYSTONE}/json", timeout=30))
        url = meta["urls"][0]["url"]
        data = urllib.request.urlopen(url, timeout=60).read()
    except (OSError, KeyError, IndexError, ValueError) as e:
        raise SenError(f"cannot fetch {PYSTONE} from PyPI: {e}", "check the network to PyPI, or place "
                       f"pystone_lowmem.py in {cache.parent}") from None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/pystone_lowmem.py"))
        src = tar.extractfile(member).read()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(src)
    return src


def run():
    console = Console()
    mjs, node = find_micropython_mjs(), find_node()
    wasm = wc.counted_wasm(mjs, node)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "pystone_lowmem.py").write_bytes(_pystone_source())
        bench = Path(d) / "bench.py"
        bench.write_text(BENCH)
        # the runner mounts one file; put pystone in beside it through the bench module
        bench.write_text("import sys\nsys.path.insert(0, '/')\n"
                         f"open('/pystone_lowmem.py', 'wb').write({(Path(d) / 'pystone_lowmem.py').read_bytes()!r})\n"
                         + BENCH)
        r = subprocess.run([node, str(SCRIPT), str(mjs), str(wasm), str(bench)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SenError(f"the counting runtime failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}",
                       "run `make setup` and try again")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    per_pystone = got["pystone"] / LOOPS
    per_ref = got["ref_loop"] / 10000
    v112 = sum(PUBLISHED_240.values()) / len(PUBLISHED_240)
    lo, hi = (1e6 / (v112 * s) for s in (SPEEDUP_RANGE[1], SPEEDUP_RANGE[0]))
    t = Table(title="CPU time measure: counted work units (MicroPython 1.27, WebAssembly)")
    for c in ("figure", "value"):
        t.add_column(c)
    t.add_row("units per pystone (measured now)", f"{per_pystone:.1f}")
    t.add_row("units per pystone (work_counter.PYSTONE_UNITS)", str(wc.PYSTONE_UNITS))
    t.add_row("units per reference loop iteration", f"{per_ref:.2f}")
    for k, v in PUBLISHED_240.items():
        t.add_row(f"published pystones/s at 240 MHz: {k}", f"{v:.0f}")
    t.add_row("x median perf_bench gain of micropython#7850 (1.18)", f"{wc.SPEEDUP_SINCE_V112}")
    t.add_row("pystones/s at 240 MHz used", f"{wc.PYSTONES_PER_S_240:.0f}")
    t.add_row("µs per unit at 240 MHz", f"{wc.US_PER_UNIT_240:.5f}")
    t.add_row("µs per pystone, used (range from the 1.18 gains)", f"{1e6 / wc.PYSTONES_PER_S_240:.0f} ({lo:.0f}-{hi:.0f})")
    t.add_row("µs per reference loop iteration at 240 MHz", f"{per_ref * wc.US_PER_UNIT_240:.2f}")
    console.print(t)
    ok = abs(per_pystone - wc.PYSTONE_UNITS) <= 0.01 * wc.PYSTONE_UNITS
    console.print(f"calibration count current: {'yes' if ok else 'NO: update work_counter.PYSTONE_UNITS'}")
    print(json.dumps({"units_per_pystone": round(per_pystone, 1), "pystone_units_in_use": wc.PYSTONE_UNITS,
                      "units_per_ref_loop": round(per_ref, 2), "us_per_unit_240": wc.US_PER_UNIT_240,
                      "pystones_per_s_240": round(wc.PYSTONES_PER_S_240), "us_per_pystone_range": [round(lo), round(hi)],
                      "calibration_current": ok}))
    if not ok:
        sys.exit(1)
