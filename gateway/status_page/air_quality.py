"""VN_AQI per air station for the page: hourly (PM NowCast over 12 h) and daily, with the
Decision 1459/QĐ-TCMT category names and colours, plus the QCVN 05:2023 24-h PM limits.

The arithmetic belongs to the gateway's derived-products module (sen.gateway.aqi); this file
only gathers hourly and daily means of unflagged calibrated readings from the store.
"""
import datetime as dt
import math

from sen.gateway import aqi as gw_aqi

PM = (("pm25", 5), ("pm10", 6))


def category(aqi) -> dict | None:
    """Category of a rounded AQI as the page shows it (names in both languages, RGB)."""
    if aqi is None:
        return None
    c = gw_aqi.category(int(aqi))
    idx = next(i for i, row in enumerate(gw_aqi.CATEGORIES) if row[1] == c["vi"])
    return {"index": idx, "vi": c["vi"], "en": c["en"], "rgb": list(c["rgb"])}


def _from(res: dict | None) -> tuple:
    if res is None:
        return None, None, None
    return res["aqi"], category(res["aqi"]), res.get("dominant")


def qcvn05_limits(day: dt.date) -> dict:
    """QCVN 05:2023/BTNMT 24-h limits, µg/Nm³ (PM2.5 tightens from 2026-01-01)."""
    return {"pm25": 45.0 if day >= dt.date(2026, 1, 1) else 50.0, "pm10": 100.0}


def station(reader, node_id: int, now: float, tz: dt.tzinfo, hours: int = 24, days: int = 7) -> dict:
    """Hourly and daily VN_AQI from one pass per PM channel: hourly sums and counts of unflagged
    calibrated readings. Vietnam's offset is whole hours, so local days are unions of hours."""
    hour_end = math.floor(now / 3600) * 3600 + 3600  # end of the current hour
    today = dt.datetime.fromtimestamp(now, tz).date()
    first_day = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(0), tz).timestamp()
    t0 = min(first_day, hour_end - (hours + 12) * 3600, now - 86400)
    sums = {name: reader.bucket_sum_counts(node_id, ch, t0, hour_end, 3600) for name, ch in PM}

    def mean(name, a, b):
        """Mean over readings in hours [a, b) (unix seconds at hour boundaries)."""
        s = n = 0
        for k in range(int(a // 3600), int(b // 3600)):
            got = sums[name].get(k)
            if got:
                s += got[0]
                n += got[1]
        # a calibration curve's intercept can take clean-air hours a little below zero; the
        # concentration is then zero (the AQI tables start there), not an error
        return (max(0.0, s / n) if n else None), n

    hourly = []
    for h in range(hours):
        b = int((hour_end - (hours - h) * 3600) // 3600)  # hour index of this bar
        row = {"t": b * 3600, "pm25": None, "pm10": None, "nowcast": {}, "aqi": None}
        seqs = {}
        for name, _ in PM:
            seq = [mean(name, (b - i) * 3600, (b - i + 1) * 3600)[0] for i in range(12)]
            seqs[name] = seq if any(x is not None for x in seq) else None
            row[name] = None if seq[0] is None else round(seq[0], 1)
            nc = gw_aqi.nowcast(seq)
            row["nowcast"][name] = None if nc is None else round(nc, 1)
        row["aqi"], row["category"], row["dominant"] = _from(
            gw_aqi.hourly_aqi(pm25_hours=seqs["pm25"], pm10_hours=seqs["pm10"]))
        hourly.append(row)
    daily = []
    for k in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=k)
        start = dt.datetime.combine(day, dt.time(0), tz).timestamp()
        row = {"day": day.isoformat(), "t": start}
        for name, _ in PM:
            m, n = mean(name, start, start + 86400)
            row[name] = None if m is None else round(m, 1)
            row[name + "_n"] = n
        row["aqi"], row["category"], row["dominant"] = _from(
            gw_aqi.daily_aqi(pm25_24h=row["pm25"], pm10_24h=row["pm10"]))
        row["partial"] = day == today
        daily.append(row)
    limits = qcvn05_limits(today)
    last24 = {}
    for name, _ in PM:
        m, n = mean(name, hour_end - 86400, hour_end)  # the last 24 whole-or-current hours
        last24[name] = {"mean": None if m is None else round(m, 1), "n": n, "limit": limits[name],
                        "exceeds": None if m is None else m > limits[name]}
    current = next((r for r in reversed(hourly) if r["aqi"] is not None), None)
    return {"hourly": hourly, "daily": daily, "current": current, "qcvn05_24h": last24}


def categories() -> list[dict]:
    out, lo = [], 0
    for hi, vi, en, rgb in gw_aqi.CATEGORIES:
        out.append({"lo": lo, "hi": hi, "vi": vi, "en": en, "rgb": list(rgb)})
        lo = hi + 1
    return out
