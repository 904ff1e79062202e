"""VN_AQI per Decision 1459/QĐ-TCMT (2019): sub-indices by linear interpolation between
breakpoints, hourly AQI with NowCast for PM, daily AQI, categories and colours.

Concentrations are µg/m³. Sub-indices above the last breakpoint are capped at 500.
"""
import math

LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS = {
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 120, 170, 210, 400, None, None),
    "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
}
# (upper AQI, Vietnamese name, English name, RGB)
CATEGORIES = (
    (50, "Tốt", "Good", (0, 228, 0)),
    (100, "Trung bình", "Moderate", (255, 255, 0)),
    (150, "Kém", "Poor", (255, 126, 0)),
    (200, "Xấu", "Bad", (255, 0, 0)),
    (300, "Rất xấu", "Very bad", (143, 63, 151)),
    (500, "Nguy hại", "Hazardous", (126, 0, 35)),
)


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def sub_index(param: str, conc: float) -> float | None:
    """Sub-index of one parameter at concentration `conc` (µg/m³), unrounded."""
    if conc is None or conc != conc:
        return None
    if conc < 0:
        raise ValueError(f"negative concentration {conc} for {param}")
    bps = BREAKPOINTS[param]
    pts = [(bp, lv) for bp, lv in zip(bps, LEVELS) if bp is not None]
    for (bp_lo, i_lo), (bp_hi, i_hi) in zip(pts, pts[1:]):
        if conc <= bp_hi:
            return (i_hi - i_lo) / (bp_hi - bp_lo) * (conc - bp_lo) + i_lo
    return 500.0 if pts[-1][1] == 500 else None  # O3 8h ends at 300: above it the 1h index applies


def nowcast(hourly: list) -> float | None:
    """PM NowCast from up to 12 hourly means, newest first (None = missing hour).
    Needs at least 2 of the latest 3 hours."""
    h = list(hourly[:12])
    if sum(1 for c in h[:3] if c is not None) < 2:
        return None
    present = [c for c in h if c is not None]
    cmax = max(present)
    if cmax == 0:
        return 0.0
    w = max(min(present) / cmax, 0.5)
    num = sum(w ** i * c for i, c in enumerate(h) if c is not None)
    den = sum(w ** i for i, c in enumerate(h) if c is not None)
    return num / den


def category(aqi: int) -> dict:
    for upper, vi, en, rgb in CATEGORIES:
        if aqi <= upper:
            return {"aqi": aqi, "vi": vi, "en": en, "rgb": rgb, "hex": "#%02x%02x%02x" % rgb}
    upper, vi, en, rgb = CATEGORIES[-1]
    return {"aqi": aqi, "vi": vi, "en": en, "rgb": rgb, "hex": "#%02x%02x%02x" % rgb}


def _combine(subs: dict) -> dict | None:
    subs = {k: v for k, v in subs.items() if v is not None}
    if not subs:
        return None
    rounded = {k: round_half_up(v) for k, v in subs.items()}
    main = max(rounded, key=rounded.get)
    out = category(rounded[main])
    out["dominant"] = main
    out["sub_indices"] = rounded
    return out


def hourly_aqi(pm25_hours=None, pm10_hours=None, o3_1h=None, co=None, so2=None, no2=None) -> dict | None:
    """Hourly VN_AQI. PM arguments: up to 12 hourly means, newest first (NowCast applies);
    gases: the latest hour's mean."""
    subs = {}
    if pm25_hours:
        subs["pm25"] = sub_index("pm25", nowcast(pm25_hours)) if nowcast(pm25_hours) is not None else None
    if pm10_hours:
        subs["pm10"] = sub_index("pm10", nowcast(pm10_hours)) if nowcast(pm10_hours) is not None else None
    for name, c in (("o3_1h", o3_1h), ("co", co), ("so2", so2), ("no2", no2)):
        if c is not None:
            subs[name] = sub_index(name, c)
    return _combine(subs)


def daily_aqi(pm25_24h=None, pm10_24h=None, o3_1h_max=None, o3_8h_max=None, co_max=None, so2_max=None,
              no2_max=None) -> dict | None:
    """Daily VN_AQI: PM from the 24-hour means; gases from the day's highest hourly (O3 also
    its highest 8-hour mean, whichever index is larger)."""
    subs = {"pm25": sub_index("pm25", pm25_24h) if pm25_24h is not None else None,
            "pm10": sub_index("pm10", pm10_24h) if pm10_24h is not None else None}
    o3 = [x for x in (sub_index("o3_1h", o3_1h_max) if o3_1h_max is not None else None,
                      sub_index("o3_8h", o3_8h_max) if o3_8h_max is not None else None) if x is not None]
    subs["o3"] = max(o3) if o3 else None
    for name, c in (("co", co_max), ("so2", so2_max), ("no2", no2_max)):
        subs[name] = sub_index(name, c) if c is not None else None
    return _combine(subs)


def hourly_means(times, values, end_hour: float, hours: int = 12) -> list:
    """Hourly means newest first for the `hours` hours ending at `end_hour` (unix s at an
    hour boundary); None for hours without data. For feeding nowcast() from the store."""
    sums = [0.0] * hours
    counts = [0] * hours
    for t, v in zip(times, values):
        if v is None or v != v:
            continue
        i = int((end_hour - t) // 3600)
        if 0 <= i < hours and t < end_hour:
            sums[i] += v
            counts[i] += 1
    return [s / n if n else None for s, n in zip(sums, counts)]
