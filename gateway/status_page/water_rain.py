"""Water values against QCVN 08:2023/BTNMT (surface water, Table 2 classes for rivers) where a
limit applies, and rain intensity with daily totals.

Limits used (from the published QCVN 08:2023/BTNMT text; only parameters a Sen node measures):
pH class A 6.5–8.5, classes B and C 6.0–8.5; dissolved oxygen class A ≥ 6.0 mg/L,
B ≥ 5.0, C ≥ 4.0. Turbidity, conductivity, water temperature and level have no limit there.
"""
import datetime as dt

from sen.channels import BY_NAME

CLASSES = ("A", "B", "C")
QCVN08 = {
    "ph": {"A": (6.5, 8.5), "B": (6.0, 8.5), "C": (6.0, 8.5)},
    "dissolved_oxygen": {"A": (6.0, None), "B": (5.0, None), "C": (4.0, None)},
}
WATER_CHANNELS = ("ph", "dissolved_oxygen", "turbidity", "conductivity", "water_temp", "water_level")


def _within(v, lim):
    lo, hi = lim
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def judge(name: str, value: float | None, target: str) -> dict | None:
    table = QCVN08.get(name)
    if table is None:
        return None
    lo, hi = table[target]
    out = {"target_class": target, "min": lo, "max": hi, "ok": None, "class_met": None}
    if value is None:
        return out
    out["ok"] = _within(value, table[target])
    out["class_met"] = next((c for c in CLASSES if _within(value, table[c])), "D")
    return out


def water_station(reader, node_id: int, channels: list[int], target: str) -> list[dict]:
    rows = []
    wanted = [BY_NAME[n].id for n in WATER_CHANNELS if BY_NAME[n].id in channels]
    latest = reader.latest_all(node_id, wanted)
    for name in WATER_CHANNELS:
        ch = BY_NAME[name]
        if ch.id not in channels:
            continue
        last = latest.get(ch.id)
        value = None if last is None else last["value"]
        if value is not None:
            value = round(value, ch.decimals + 1)
        rows.append({"channel": name, "unit": ch.unit, "value": value,
                     "raw": None if last is None else last["raw"],
                     "time": None if last is None else last["time"],
                     "qflags": None if last is None else last["qflags"],
                     "limit": judge(name, value, target)})
    return rows


def rain_station(reader, node_id: int, channels: list[int], now: float, tz: dt.tzinfo, days: int = 7) -> dict:
    depth = BY_NAME["rain_depth"].id
    inten = BY_NAME["rain_intensity"].id
    out = {"intensity": None, "daily": [], "hourly": []}
    if inten in channels:
        last = reader.latest_all(node_id, [inten]).get(inten)
        if last:
            out["intensity"] = {"value": last["value"], "time": last["time"], "qflags": last["qflags"]}
    if depth not in channels:
        return out
    today = dt.datetime.fromtimestamp(now, tz).date()
    first = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(0), tz).timestamp()
    hour_end = (now // 3600 + 1) * 3600
    # one pass: hourly sums of rain depth (missing or out-of-range readings left out)
    sums = reader.bucket_sum_counts(node_id, depth, min(first, hour_end - 24 * 3600), hour_end, 3600, qmask=3)

    def total(a, b):
        got = [sums[k] for k in range(int(a // 3600), int(b // 3600)) if k in sums]
        return (round(sum(x[0] for x in got), 1) if got else None), sum(x[1] for x in got)

    for k in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=k)
        start = dt.datetime.combine(day, dt.time(0), tz).timestamp()
        tot, n = total(start, start + 86400)
        out["daily"].append({"day": day.isoformat(), "t": start, "total_mm": tot, "n": n, "partial": day == today})
    for h in range(24):
        a = hour_end - (24 - h) * 3600
        out["hourly"].append({"t": a, "total_mm": total(a, a + 3600)[0]})
    return out


__all__ = ["judge", "water_station", "rain_station", "QCVN08"]
