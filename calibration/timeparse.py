"""Timestamps in calibration files: ISO 8601 with a zone, or Unix seconds. Nothing naive.

A timestamp without a zone is the classic co-location mistake (reference loggers in
local time +07:00, nodes in UTC), so it is refused unless the crew states the zone.
"""
import re
from datetime import datetime, timedelta, timezone

from sen.errors import SenError

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_tz(text: str | None):
    """'+07:00', 'UTC+7', 'Z' -> tzinfo; None -> None."""
    if text is None:
        return None
    t = text.strip()
    if t.upper() in ("Z", "UTC"):
        return timezone.utc
    m = _OFFSET.match(t)
    if not m:
        raise SenError(f"time zone {text!r} is not an offset", "write it like +07:00 or Z")
    sign = 1 if m.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))


def parse_time(text: str, default_tz=None) -> tuple[float, int | None]:
    """Return (unix seconds, UTC offset in minutes or None when the zone came from default_tz).

    Raises ValueError for unparseable text and NaiveTime when there is no zone at all.
    """
    t = text.strip()
    if not t:
        raise ValueError("empty time")
    try:
        return float(t), 0  # Unix seconds are UTC by definition
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace(" ", "T", 1) if "T" not in t and " " in t else t)
    except ValueError:
        dt = _spreadsheet(t)
    if dt.tzinfo is None:
        if default_tz is None:
            raise NaiveTime(t)
        return dt.replace(tzinfo=default_tz).timestamp(), None
    return dt.timestamp(), int(dt.utcoffset().total_seconds() // 60)


# Spreadsheet date formats (Excel in vi-VN writes day first: 01/11/2026 07:00). They carry
# no zone, so they are only read with an explicit --tz.
_SHEET_FORMATS = [f"{d}{sep}{tm}" for d in ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d")
                  for sep in (" ",) for tm in ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")]


def _spreadsheet(t: str) -> datetime:
    for f in _SHEET_FORMATS:
        try:
            return datetime.strptime(t, f)
        except ValueError:
            continue
    raise ValueError(f"time {t!r} is not ISO 8601, a spreadsheet date (DD/MM/YYYY hh:mm) or Unix seconds")


class NaiveTime(ValueError):
    pass


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> float:
    """'1h', '24h', '5min', '30s', '0' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)?\s*", text or "")
    if not m:
        raise SenError(f"duration {text!r} is not understood", "write it like 30s, 5min, 1h or 24h")
    mult = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, None: 1}[m.group(2)]
    return float(m.group(1)) * mult
