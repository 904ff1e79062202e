"""Data problems found while reading calibration inputs: what, how many, which lines.

Nothing is dropped silently: every excluded row is listed here, and the list travels
into the record and the report.
"""
from dataclasses import dataclass, field


def line_list(lines, limit=12) -> str:
    """'5, 9, 12–20, 31 …(+40 more)': compact line numbers for one-line messages."""
    lines = sorted(set(int(n) for n in lines))
    runs = []
    for n in lines:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in runs]
    text = ", ".join(parts[:limit])
    if len(parts) > limit:
        text += f" …(+{len(parts) - limit} more runs)"
    return text


@dataclass
class Issue:
    kind: str            # bad_row, missing_value, duplicate_time, out_of_order, gap, unit, timezone, flagged
    message: str
    lines: list = field(default_factory=list)
    excluded: bool = True  # True when the rows were left out of the fit

    @property
    def count(self) -> int:
        return len(self.lines)

    def one_line(self) -> str:
        where = f" (lines {line_list(self.lines)})" if self.lines else ""
        what = "excluded" if self.excluded else "kept"
        return f"{self.kind}: {self.count} row(s) {what} — {self.message}{where}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "count": self.count, "message": self.message,
                "lines": line_list(self.lines, limit=40), "excluded": self.excluded}
