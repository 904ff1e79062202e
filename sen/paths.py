"""Where the non-Python parts of Sen live: firmware sources, board definitions, scenarios.

They are package data of `sen` (in the source tree `sen/firmware` etc. are links to the
top-level folders), so a wheel install and a checkout find them the same way, through
importlib.resources. REPO is the source checkout, for tests and tools that only make
sense there (docs, node_modules); it is None in an installed wheel.
"""
from importlib.resources import files
from pathlib import Path

_DATA = Path(str(files("sen")))

FIRMWARE = (_DATA / "firmware").resolve()
BOARDS = (_DATA / "boards").resolve()
SCENARIOS = (_DATA / "scenarios").resolve()

_checkout = _DATA.resolve().parent
REPO = _checkout if (_checkout / "pyproject.toml").is_file() else None
DOCS = REPO / "docs" if REPO else None
NODE_MODULES = REPO / "node_modules" if REPO else None
FRAME_VECTORS = DOCS / "frame-vectors.json" if DOCS else None
