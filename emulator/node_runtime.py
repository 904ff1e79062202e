"""Node.js and the pinned MicroPython WebAssembly runtime the emulated boards run on.

The runtime's package.json and package-lock.json ship inside the package
(emulator/runtime/). A checkout uses its own `npm ci` tree (make setup); an installed
wheel installs the same locked tree once into a per-user cache with `npm ci`, so pip and
pipx installs need nothing beyond Node.js and npm on the machine.
"""
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sen.errors import SenError
from sen.paths import NODE_MODULES

MP_PACKAGE = "@micropython/micropython-webassembly-pyscript"
PIN_DIR = Path(__file__).resolve().parent / "runtime"
NODE_HINT = "install the Debian packages nodejs and npm: sudo apt-get install nodejs npm"
log = logging.getLogger("sen.emulator.runtime")


def find_node() -> str:
    node = shutil.which("node")
    if not node:
        raise SenError("Node.js is not installed (no `node` on PATH)", NODE_HINT)
    return node


def cache_dir() -> Path:
    """One directory per lock file, so a new pin never reuses an old tree."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256((PIN_DIR / "package-lock.json").read_bytes()).hexdigest()[:12]
    return base / "sen" / f"micropython-runtime-{digest}"


def _mjs(node_modules: Path) -> Path:
    return node_modules / MP_PACKAGE / "micropython.mjs"


def _installed() -> Path | None:
    bases = [Path(p) for p in (os.environ.get("SEN_NODE_MODULES"), NODE_MODULES) if p]
    bases += [cache_dir() / "node_modules", Path.cwd() / "node_modules"]
    for base in bases:
        if _mjs(base).is_file():
            return _mjs(base)
    return None


def install(target: Path) -> Path:
    """`npm ci` the packaged lock file into target (under a lock: parallel boards wait)."""
    npm = shutil.which("npm")
    if not npm:
        raise SenError("npm is not installed, so the MicroPython WebAssembly runtime cannot be fetched", NODE_HINT)
    find_node()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / (target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _mjs(target / "node_modules").is_file():
            return _mjs(target / "node_modules")
        log.warning("first use: installing the MicroPython WebAssembly runtime (%s, pinned by the packaged "
                    "package-lock.json) into %s with `npm ci`", MP_PACKAGE, target)
        work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(PIN_DIR / name, work / name)
            res = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise SenError(f"`npm ci` of the MicroPython runtime failed: {last}",
                               "check the network access to the npm registry, then run the command again")
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.warning("installed the MicroPython WebAssembly runtime in %s", target)
        return _mjs(target / "node_modules")


def find_micropython_mjs() -> Path:
    """The runtime's entry module: an existing tree, else a first-use install into the cache."""
    return _installed() or install(cache_dir())
