"""The example node firmware the board tests run (kept with the virtual-time benchmark)."""
from sen.bench.virtual_time import NODE_MAIN_PY as MAIN_PY  # noqa: F401
