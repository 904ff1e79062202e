"""Calibration inputs: co-location CSVs, gateway store exports and reference files.

Every row that is left out is reported (kind, count, line numbers); gaps, duplicate or
out-of-order times, unit conversions and suspected time-zone shifts are reported too.

Co-location CSV: a header row with a time column (time/timestamp/datetime; ISO 8601 with a
zone, or Unix seconds) and one column per quantity, optionally with a unit: `pm25_cf1[ug/m3]`.

Gateway export CSV (`sen gateway export`): columns time,node,channel,value,flags — one
reading per row, flags being the quality bits of docs/frame-format.md (0 = ok).
"""
import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sen.errors import SenError

from .issues import Issue, line_list
from .numbers import number_style, parse_number
from .timeparse import NaiveTime, parse_time
from .units import plausibility, split_header, to_channel_unit

_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
TIME_NAMES = ("time", "timestamp", "datetime", "date_time", "time_utc")

Q_CALIBRATING = 16  # docs/frame-format.md quality flag


@dataclass
class Table:
    times: np.ndarray                 # Unix seconds, UTC, sorted
    cols: dict                        # name -> float64 array, aligned with times
    lines: np.ndarray                 # source line number of each kept row (0 when synthesised)
    issues: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    source: str = ""
    sha256: str = ""

    def __len__(self):
        return len(self.times)

    def require(self, names):
        missing = [n for n in names if n not in self.cols]
        if missing:
            raise SenError(f"{self.source or 'data'} has no column(s) {', '.join(missing)}",
                           f"columns present: {', '.join(self.cols) or 'none'}")


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _open_rows(path):
    p = Path(path)
    if not p.exists():
        raise SenError(f"{path}: no such file", "check the path")
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    if not text.strip():
        raise SenError(f"{path} is empty", "export the data with a header row and at least a few readings")
    first = text.splitlines()[0]
    # Spreadsheets in the vi-VN locale write `;` between fields and a decimal comma.
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delim))
    if delim == ";":
        rows = [[c.replace(",", ".") if _DECIMAL_COMMA.match(c) else c for c in r] for r in rows]
    rows = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise SenError(f"{path} has a header but no data rows", "export a time window that contains readings")
    return rows


def read_colocation(path, needed, tz=None, optional=(), mapping=None) -> Table:
    """Read a co-location CSV, keeping the columns in `needed` (all numeric) and those of `optional` present.

    `mapping` {header or column name: channel[unit]} reads a logger's own column names as channels.
    """
    rows = _open_rows(path)
    header_line, header = rows[0]
    mapping = dict(mapping or {})
    names, units = [], {}
    for h in header:
        target = mapping.pop(h.strip(), None)
        n, u = split_header(h)
        if target is None:
            target = mapping.pop(n, None)
        if target is not None:
            n, u2 = split_header(target)
            u = u2 or u
        names.append(n)
        if u:
            units[n] = u
    if mapping:
        raise SenError(f"{path}: --map names column(s) {', '.join(map(repr, mapping))} not in the header",
                       f"columns present: {', '.join(h.strip() for h in header)}")
    needed = list(dict.fromkeys(list(needed) + [n for n in optional if n in names]))
    tcol = next((i for i, n in enumerate(names) if n.lower() in TIME_NAMES), None)
    if tcol is None:
        raise SenError(f"{path}: no time column in the header", f"name one column {' or '.join(TIME_NAMES[:3])}")
    idx = {}
    for n in needed:
        if n not in names:
            raise SenError(f"{path} has no column {n!r}", f"columns present: {', '.join(names)}")
        idx[n] = names.index(n)

    issues = []
    bad_width, bad_time, naive, bad_value = [], [], [], {n: [] for n in needed}
    times, lines, offsets = [], [], []
    data = {n: [] for n in needed}
    styles = {n: number_style(r[i] for _, r in rows[1:] if len(r) == len(names)) for n, i in idx.items()}
    for line, r in rows[1:]:
        if len(r) != len(names):
            bad_width.append(line)
            continue
        try:
            t, off = parse_time(r[tcol], tz)
        except NaiveTime:
            naive.append(line)
            continue
        except ValueError:
            bad_time.append(line)
            continue
        vals, ok = {}, True
        for n, i in idx.items():
            try:
                v = parse_number(r[i], styles[n])
                if not np.isfinite(v):
                    raise ValueError
                vals[n] = v
            except ValueError:
                bad_value[n].append(line)
                ok = False
        if not ok:
            continue
        times.append(t)
        lines.append(line)
        offsets.append(off)
        for n in needed:
            data[n].append(vals[n])

    if naive:
        raise SenError(f"{path}: {len(naive)} timestamp(s) have no time zone (lines {line_list(naive)})",
                       "write times with Z or +07:00, or pass --tz +07:00 to state the zone")
    if bad_width:
        issues.append(Issue("bad_row", f"wrong number of fields (header has {len(names)})", bad_width))
    if bad_time:
        issues.append(Issue("bad_row", "time not ISO 8601 or Unix seconds", bad_time))
    for n, ls in bad_value.items():
        if ls:
            issues.append(Issue("missing_value", f"column {n} empty or not a number", ls))
    kinds = {o for o in offsets if o is not None}
    if len(kinds) > 1:
        issues.append(Issue("timezone", "rows use different UTC offsets "
                            f"({', '.join(f'{o/60:+g} h' for o in sorted(kinds))}); check the logger clock",
                            [ln for ln, o in zip(lines, offsets) if o != offsets[0]], excluded=False))
    if not times:
        raise SenError(f"{path}: no usable rows ({sum(i.count for i in issues)} bad)",
                       "; ".join(i.one_line() for i in issues) or "check the file")

    table = _finish(np.array(times), {n: np.array(v) for n, v in data.items()}, np.array(lines), issues)
    table.source, table.sha256 = str(Path(path).resolve()), file_sha256(path)
    for n in needed:
        conv, note = to_channel_unit(n, units.get(n), table.cols[n])
        table.cols[n] = conv
        if note:
            table.notes.append(note)
        warn = plausibility(n, conv)
        if warn:
            raise SenError(f"{path}: unit mismatch — {warn.split(' — ')[0]}",
                           warn.split(" — ")[1] if " — " in warn else "check the column's unit")
    return table


def _finish(times, cols, lines, issues) -> Table:
    """Sort by time, report out-of-order and duplicate rows, report gaps."""
    order = np.argsort(times, kind="stable")
    if np.any(np.diff(order) < 0):
        moved = lines[order][np.r_[False, np.diff(lines[order]) < 0]]
        issues.append(Issue("out_of_order", "times go backwards; rows were sorted", list(moved), excluded=False))
    times, lines = times[order], lines[order]
    cols = {k: v[order] for k, v in cols.items()}
    dup = np.r_[False, np.diff(times) == 0]
    if dup.any():
        issues.append(Issue("duplicate_time", "same timestamp as the previous row; first one kept", list(lines[dup])))
        keep = ~dup
        times, lines = times[keep], lines[keep]
        cols = {k: v[keep] for k, v in cols.items()}
    if len(times) > 3:
        dt = np.diff(times)
        step = float(np.median(dt))
        big = np.nonzero(dt > 3 * step)[0]
        if big.size:
            longest = dt[big].max() / 3600
            issues.append(Issue("gap", f"{big.size} gap(s) longer than 3× the {step:g} s sampling step "
                                f"(longest {longest:.1f} h); line numbers are the row before each gap",
                                list(lines[big]), excluded=False))
    return Table(times, cols, lines, issues)


def read_gateway_export(path, node=None) -> dict:
    """Read `sen gateway export` CSV -> {channel: Table with one column 'value'}; flagged rows reported."""
    rows = _open_rows(path)
    header = [h.strip().lower() for h in rows[0][1]]
    want = ["time", "node", "channel", "value", "flags"]
    if header[:5] != want:
        raise SenError(f"{path}: header is {','.join(header)!r}, not a gateway export",
                       "produce it with `sen gateway export` (columns time,node,channel,value,flags)")
    per = {}
    bad, flagged, empty, other_node = [], [], [], 0
    for line, r in rows[1:]:
        if len(r) < 5:
            bad.append(line)
            continue
        if not r[3].strip():
            empty.append(line)
            continue
        try:
            t, _ = parse_time(r[0])
            n = int(r[1])
            v = float(r[3])
            f = int(r[4] or 0)
        except (ValueError, NaiveTime):
            bad.append(line)
            continue
        if node is not None and n != int(node):
            other_node += 1
            continue
        # CALIBRATING only says the crew put the node in calibration mode, which is exactly
        # when co-location data is taken; every other flag makes the reading unusable.
        if f & ~Q_CALIBRATING or not np.isfinite(v):
            flagged.append(line)
            continue
        per.setdefault(r[2].strip(), ([], [], []))
        per[r[2].strip()][0].append(t)
        per[r[2].strip()][1].append(v)
        per[r[2].strip()][2].append(line)
    if not per:
        raise SenError(f"{path}: no usable readings" + (f" for node {node}" if node is not None else ""),
                       "check --node and the exported time window")
    out = {}
    for ch, (t, v, ls) in per.items():
        issues = []
        tab = _finish(np.array(t), {"value": np.array(v)}, np.array(ls), issues)
        tab.source, tab.sha256 = str(path), file_sha256(path)
        out[ch] = tab
    shared = []
    if bad:
        shared.append(Issue("bad_row", "unparseable time, node, value or flags", bad))
    if empty:
        shared.append(Issue("missing_value", "no value stored for the reading", empty))
    if flagged:
        shared.append(Issue("flagged", "quality flags set (missing, out of range, warming up, stuck)",
                            flagged))
    for tab in out.values():
        tab.issues[:0] = shared
    return out


def average(times, values, period_s, min_fraction=0.75):
    """Mean per period bin (bin start times), keeping bins at least `min_fraction` complete.

    Completeness follows EPA practice (75 %); the expected count comes from the median step.
    """
    if period_s <= 0 or len(times) == 0:
        return times, values
    step = float(np.median(np.diff(times))) if len(times) > 1 else period_s
    expected = max(1, int(round(period_s / max(step, 1e-9))))
    key = np.floor(times / period_s).astype(np.int64)
    uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    vals = np.atleast_2d(values)
    sums = np.zeros((vals.shape[0], uniq.size))
    for i in range(vals.shape[0]):
        sums[i] = np.bincount(inv, weights=vals[i], minlength=uniq.size)
    keep = counts >= np.ceil(min_fraction * expected)
    means = sums[:, keep] / counts[keep]
    out_t = uniq[keep].astype(float) * period_s
    return out_t, (means[0] if np.ndim(values) == 1 else means)


def check_time_shift(times, x, y, max_hours=14):
    """Return (shift_h, r_at_shift, r_at_zero) when y correlates clearly better with x shifted by whole hours.

    A reference logged in local time but marked UTC shows up as a clean 7 h shift in Vietnam.
    """
    t_h, m = average(times, np.vstack([x, y]), 3600.0, min_fraction=0.0)
    if len(t_h) < 48:
        return None
    hours = np.round(t_h / 3600).astype(np.int64)
    base = hours - hours.min()
    grid = np.full((2, base.max() + 1), np.nan)
    grid[:, base] = m

    def r_at(s):
        L = grid.shape[1]
        a, b = (grid[0, :L - s], grid[1, s:]) if s >= 0 else (grid[0, -s:], grid[1, :L + s])
        n = min(a.size, b.size)
        a, b = a[:n], b[:n]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 24 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            return -1.0
        return float(np.corrcoef(a[ok], b[ok])[0, 1])

    r0 = r_at(0)
    best = max(range(-max_hours, max_hours + 1), key=r_at)
    rb = r_at(best)
    if best != 0 and abs(best) >= 1 and rb > 0.5 and rb - r0 > 0.15:
        return best, rb, r0
    return None


def shift_error(shift, what):
    """SenError for a detected whole-hour shift: 1 h is hour-ending stamps, more is a zone mistake."""
    h, rb, r0 = shift
    cause = ("hour-ending vs hour-beginning timestamps?" if abs(h) == 1
             else "a time-zone mistake (local +07:00 written as Z?)")
    return SenError(f"{what} only when shifted by {h:+d} h (r={rb:.2f} vs {r0:.2f} unshifted) — {cause}",
                    f"fix the logger's time stamps, or pass --ref-offset {-h:+d}h if the shift is known")


def read_reference(path, column, tz=None, mapping=None) -> Table:
    return read_colocation(path, [column], tz=tz, mapping=mapping)


def join_export(export: dict, reference: Table, ref_column: str, target: str, channels,
                period_s: float, tolerance_s: float) -> Table:
    """Join node channels to a reference: averaged per period, or nearest within tolerance when period is 0."""
    issues = []
    for ch in channels:
        if ch not in export:
            raise SenError(f"the export has no readings for channel {ch!r}",
                           f"channels present: {', '.join(sorted(export))}")
    for tab in export.values():
        for i in tab.issues:
            if i not in issues:
                issues.append(i)
    issues += reference.issues
    if period_s > 0:
        series = {}
        for ch in channels:
            series[ch] = dict(zip(*average(export[ch].times, export[ch].cols["value"], period_s)))
        rt, rv = average(reference.times, reference.cols[ref_column], period_s)
        series[target] = dict(zip(rt, rv))
        keys = sorted(set.intersection(*(set(s) for s in series.values())))
        lost = len(rt) - len(set(rt) & set(keys))
        if lost:
            issues.append(Issue("unmatched", f"{lost} reference period(s) had no complete node average", [],
                                excluded=True))
        if not keys:
            raise SenError("no period has both node and reference averages",
                           "check that the export and the reference cover the same time window and zone")
        times = np.array(keys)
        cols = {k: np.array([s[t] for t in keys]) for k, s in series.items()}
        lines = np.zeros(len(keys), dtype=int)
    else:
        rt, rv, rl = reference.times, reference.cols[ref_column], reference.lines
        cols = {target: []}
        for ch in channels:
            cols[ch] = []
        times, lines, unmatched = [], [], []
        for t, v, ln in zip(rt, rv, rl):
            picked = {}
            for ch in channels:
                et = export[ch].times
                j = np.searchsorted(et, t)
                cand = [k for k in (j - 1, j) if 0 <= k < et.size]
                k = min(cand, key=lambda k: abs(et[k] - t)) if cand else None
                if k is None or abs(et[k] - t) > tolerance_s:
                    break
                picked[ch] = export[ch].cols["value"][k]
            if len(picked) != len(channels):
                unmatched.append(ln)
                continue
            times.append(t)
            lines.append(ln)
            cols[target].append(v)
            for ch in channels:
                cols[ch].append(picked[ch])
        if unmatched:
            issues.append(Issue("unmatched", f"reference rows with no node reading within {tolerance_s:g} s",
                                unmatched))
        if not times:
            raise SenError(f"no reference row has a node reading within {tolerance_s:g} s",
                           "raise --tolerance or check both files use the same time zone")
        times, lines = np.array(times), np.array(lines)
        cols = {k: np.array(v) for k, v in cols.items()}
    table = Table(times, cols, lines, issues)
    table.source = f"{reference.source} joined to gateway export"
    return table


def write_table(table: Table, path, order):
    """Write a joined table as a co-location CSV that `sen cal fit` reads back."""
    from .timeparse import iso
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time"] + list(order))
        for i, t in enumerate(table.times):
            w.writerow([iso(t)] + [f"{table.cols[c][i]:.6g}" for c in order])
