"""Wire integers to physical units: the one scale table, for every path that stores a value.

The pipeline's vectorised calibrate step, its per-reading identity path and the SQLite
store's compact SQL all scale through here, so a reading stores the same double whichever
path it took (a test replays one log both ways and compares).

Scales are 10^-k or 1/2 or 1/50; dividing by the integer reciprocal gives the correctly
rounded decimal (312 / 10 == 31.2) where multiplying by 0.1 would not.
"""
import numpy as np

from sen.channels import BY_ID

IDENTITY = "identity"  # the `cal` tag of a value that is the scaled integer in physical units, uncalibrated

_MUL = np.ones(256)
_DIV = np.ones(256)
for _ch in BY_ID.values():
    if _ch.scale >= 1:
        _MUL[_ch.id] = _ch.scale
    else:
        _DIV[_ch.id] = round(1 / _ch.scale)

# The same table as Python floats: indexing a numpy array per reading costs several times a
# list lookup, and the hot per-reading paths are scalar.
MUL: list[float] = [float(x) for x in _MUL]
DIV: list[float] = [float(x) for x in _DIV]


def to_physical(channels: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """Vectorised; scaled may hold NaN for missing values, and NaN stays NaN."""
    return scaled * _MUL[channels] / _DIV[channels]


def physical(channel_id: int, scaled) -> float:
    """One reading, by the same arithmetic as to_physical."""
    return scaled * MUL[channel_id] / DIV[channel_id]


def sql_physical(operand: str, channel_id: int) -> str:
    """An SQL expression for `operand` in physical units; SQLite computes it in doubles with
    the same two operations, so the stored value is bit-identical to physical()."""
    return f"{operand}*{MUL[channel_id]!r}/{DIV[channel_id]!r}"
