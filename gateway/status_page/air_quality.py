"""VN_AQI per air station for the page: hourly (PM NowCast over 12 h) and daily, with the
Decision 1459/QĐ-TCMT category names and colours, plus the QCVN 05:2023 24-h PM limits.

The arithmetic belongs to the gateway's derived-products module (sen.gateway.aqi); this file
only gathers hourly means from the store and asks that module. Until it exists, a minimal
table-driven fallback below keeps the page working (same table as domain-facts.md).
"""
import datetime as dt
import math

PM = (("pm25", 5), ("pm10", 6))

# English names as used in the English version of Decision 1459.
CATEGORIES = [
    (0, 50, "Tốt", "Good", (0, 228, 0)),
    (51, 100, "Trung bình", "Moderate", (255, 255, 0)),
    (101, 150, "Kém", "Poor", (255, 126, 0)),
    (151, 200, "Xấu", "Bad", (255, 0, 0)),
    (201, 300, "Rất xấu", "Very bad", (143, 63, 151)),
    (301, 500, "Nguy hại", "Hazardous", (126, 0, 35)),
]
_I = (0, 50, 100, 150, 200, 300, 400, 500)
_BP = {"pm25": (0, 25, 50, 80, 150, 250, 350, 500), "pm10": (0, 50, 150, 250, 350, 420, 500, 600)}


def _fallback_sub_index(param: str, c: float) -> float | None:
    bp = _BP[param]
    if c is None or c != c or c < 0:
        return None
    if c >= bp[-1]:
        return 500.0
    for i in range(1, len(bp)):
        if c <= bp[i]:
            return _I[i - 1] + (_I[i] - _I[i - 1]) * (c - bp[i - 1]) / (bp[i] - bp[i - 1])
    return 500.0


def _fallback_nowcast(hourly_newest_first: list) -> float | None:
    c = hourly_newest_first[:12]
    if sum(x is not None for x in c[:3]) < 2:
        return None
    vals = [x for x in c if x is not None]
    cmax, cmin = max(vals), min(vals)
    w = max(cmin / cmax, 0.5) if cmax > 0 else 1.0
    num = sum(w ** i * x for i, x in enumerate(c) if x is not None)
    den = sum(w ** i for i, x in enumerate(c) if x is not None)
    return num / den


def _impl():
    """(sub_index(param, conc), nowcast(list newest first)) from sen.gateway.aqi when it offers them."""
    try:
        from sen.gateway import aqi as gw_aqi
    except ImportError:
        return _fallback_sub_index, _fallback_nowcast, "fallback"
    sub = getattr(gw_aqi, "sub_index", None)
    now = getattr(gw_aqi, "nowcast", None)
    if callable(sub) and callable(now):
        return sub, now, "sen.gateway.aqi"
    return _fallback_sub_index, _fallback_nowcast, "fallback"


def category(aqi: float | None) -> dict | None:
    if aqi is None:
        return None
    a = int(round(aqi))
    for i, (lo, hi, vi, en, rgb) in enumerate(CATEGORIES):
        if a <= hi:
            return {"index": i, "vi": vi, "en": en, "rgb": list(rgb)}
    lo, hi, vi, en, rgb = CATEGORIES[-1]
    return {"index": len(CATEGORIES) - 1, "vi": vi, "en": en, "rgb": list(rgb)}


def qcvn05_limits(day: dt.date) -> dict:
    """QCVN 05:2023/BTNMT 24-h limits, µg/Nm³ (PM2.5 tightens from 2026-01-01)."""
    return {"pm25": 45.0 if day >= dt.date(2026, 1, 1) else 50.0, "pm10": 100.0}


def _aqi_of(subs: list) -> float | None:
    subs = [s for s in subs if s is not None]
    return float(round(max(subs))) if subs else None


def station(reader, node_id: int, now: float, tz: dt.tzinfo, hours: int = 24, days: int = 7) -> dict:
    sub_index, nowcast, source = _impl()
    hour_end = math.floor(now / 3600) * 3600 + 3600  # end of the current hour
    t0 = hour_end - (hours + 12) * 3600
    means = {name: reader.bucket_means(node_id, ch, t0, hour_end, 3600) for name, ch in PM}
    hourly = []
    for h in range(hours):
        b = int((hour_end - (hours - h) * 3600) // 3600)  # bucket index of this hour
        row = {"t": b * 3600, "pm25": None, "pm10": None, "nowcast": {}, "aqi": None}
        subs = []
        for name, _ in PM:
            seq = [means[name].get(b - i, (None, 0))[0] for i in range(12)]
            row[name] = None if seq[0] is None else round(seq[0], 1)
            nc = nowcast(seq)
            row["nowcast"][name] = None if nc is None else round(nc, 1)
            subs.append(None if nc is None else sub_index(name, nc))
        row["aqi"] = _aqi_of(subs)
        row["category"] = category(row["aqi"])
        hourly.append(row)
    # daily: calendar days in the station's time zone, 24-h means of unflagged readings
    today = dt.datetime.fromtimestamp(now, tz).date()
    daily = []
    for k in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=k)
        start = dt.datetime.combine(day, dt.time(0), tz).timestamp()
        end = start + 86400
        row = {"day": day.isoformat(), "t": start}
        subs = []
        for name, ch in PM:
            m = reader.bucket_means(node_id, ch, start, end, 86400, offset_s=-start)
            mean, n = m.get(0, (None, 0))
            row[name] = None if mean is None else round(mean, 1)
            row[name + "_n"] = n
            subs.append(None if mean is None else sub_index(name, mean))
        row["aqi"] = _aqi_of(subs)
        row["category"] = category(row["aqi"])
        row["partial"] = day == today
        daily.append(row)
    limits = qcvn05_limits(today)
    last24 = {}
    for name, ch in PM:
        m = reader.bucket_means(node_id, ch, now - 86400, now + 1, 86400 * 2, offset_s=-(now - 86400))
        mean, n = m.get(0, (None, 0))
        last24[name] = {"mean": None if mean is None else round(mean, 1), "n": n, "limit": limits[name],
                        "exceeds": None if mean is None else mean > limits[name]}
    current = next((r for r in reversed(hourly) if r["aqi"] is not None), None)
    return {"hourly": hourly, "daily": daily, "current": current, "qcvn05_24h": last24, "aqi_source": source}


def categories() -> list[dict]:
    return [{"lo": lo, "hi": hi, "vi": vi, "en": en, "rgb": list(rgb)} for lo, hi, vi, en, rgb in CATEGORIES]
