"""The per-user cache (~/.cache/sen, or $SEN_CACHE_DIR): what is slow to make and the same
every time, made once per machine. Entries are named by a hash of everything they depend
on, so a changed input is a new entry and nothing stale is ever used."""
import hashlib
import os
import shutil
import subprocess
from pathlib import Path


def user_cache_dir(*parts) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("SEN_CACHE_DIR") or Path(base) / "sen").joinpath(*parts)


def _tool_id(exe: str) -> str:
    st = os.stat(exe)
    return f"{os.path.realpath(exe)}:{st.st_size}:{st.st_mtime_ns}"


def mpy_cross(exe: str, src: Path, dest: Path, args=()) -> subprocess.CompletedProcess:
    """`mpy-cross *args -o dest src`, from the cache when the same tool has compiled the same
    source with the same arguments before (a demo or bench compiles ~70 modules; each run
    of the tool costs ~0.1 s). Failures are not cached."""
    src, dest = Path(src), Path(dest)
    h = hashlib.sha256()
    for part in (_tool_id(exe), *args):
        h.update(str(part).encode() + b"\0")
    h.update(src.read_bytes())
    hit = user_cache_dir("mpy") / (h.hexdigest()[:32] + ".mpy")
    if hit.exists():
        shutil.copyfile(hit, dest)
        return subprocess.CompletedProcess([exe], 0, "", "")
    res = subprocess.run([exe, *args, "-o", str(dest), str(src)], capture_output=True, text=True)
    if res.returncode == 0 and dest.exists():
        hit.parent.mkdir(parents=True, exist_ok=True)
        tmp = hit.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(dest, tmp)
        os.replace(tmp, hit)
    return res
