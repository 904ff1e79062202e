"""The layers hold: lint-imports (import-linter) with the contracts in pyproject.toml, on a view
of the sen.* tree as the wheel lays it out, and a forbidden import added to that view fails it.
The firmware is MicroPython modules, not a package import-linter can read: its import graph is
checked here from the source."""
import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _view(dest: Path) -> Path:
    """sen/ with each sen.* package's folder in place (package-dir in pyproject.toml): the
    source tree keeps gateway/, emulator/ … at the top, which grimp cannot see as sen.*."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dirs = cfg["tool"]["setuptools"]["package-dir"]
    for pkg, folder in sorted(dirs.items()):
        target = dest.joinpath(*pkg.split("."))
        src = ROOT / folder
        for py in src.rglob("*.py"):
            rel = py.relative_to(src)
            if pkg == "sen" and len(rel.parts) > 1:
                continue  # sen/'s own subfolders are data links (firmware, boards, scenarios)
            if any(p in ("node_modules", "__pycache__") for p in rel.parts):
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(py, out)
    return dest


def _lint(view: Path):
    return subprocess.run([LINT, str(ROOT / "pyproject.toml"), "--no-cache"], cwd=view,
                          env={"PYTHONPATH": str(view), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    return _view(tmp_path_factory.mktemp("sen-view"))


def test_the_layer_contracts_hold(view):
    res = _lint(view)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 3 kept, 0 broken." in res.stdout, res.stdout


@pytest.mark.parametrize("module, forbidden, contract", [
    ("gateway/store.py", "import sen.host_tools.cli", "One-way layers"),
    ("calibration/fitting.py", "from sen.gateway import pipeline", "One-way layers"),
    ("emulator/clock.py", "import sen.gateway.service", "The emulator runs boards"),
    ("gateway/service.py", "import sen.testkit.synthetic", "The product does not import its test support"),
    ("adr_advice.py", "from sen.gateway import uplink_wire", "One-way layers"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, forbidden, contract):
    view = _view(tmp_path / "view")
    path = view / "sen" / module
    assert path.exists(), path
    path.write_text(path.read_text() + f"\n{forbidden}  # added by the test\n")
    res = _lint(view)
    assert res.returncode != 0, res.stdout
    assert contract in res.stdout and "BROKEN" in res.stdout, res.stdout


def _firmware_imports() -> dict[str, set[str]]:
    fw = ROOT / "firmware"
    names = {p.stem for p in fw.glob("*.py")} | {f"drivers.{p.stem}" for p in (fw / "drivers").glob("*.py")}
    graph = {}
    for py in list(fw.glob("*.py")) + list((fw / "drivers").glob("*.py")):
        me = py.stem if py.parent == fw else f"drivers.{py.stem}"
        deps = set()
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
        graph[me] = {d for d in deps if d in names and d != me}
    return graph


def test_firmware_imports_run_one_way():
    graph = _firmware_imports()
    assert "receiver" not in graph["app"] and "app" not in graph["receiver"], graph
    seen, stack = set(), []

    def visit(m):
        if m in stack:
            pytest.fail("firmware import circle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in seen:
            return
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        visit(m)
