"""Where the non-Python parts of the source tree live (firmware, boards, docs)."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
DOCS = REPO / "docs"
SCENARIOS = REPO / "scenarios"
NODE_MODULES = REPO / "node_modules"
FRAME_VECTORS = DOCS / "frame-vectors.json"
