"""The JSON documents behind each page. Plain functions of (reader, context, now) so tests and
the benchmark can call them without HTTP."""
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from sen.channels import BY_ID, BY_NAME, qflag_names
from sen.gateway.status_page import air_quality, series, water_rain
from sen.gateway.status_page.queries import StoreReader
from sen.gateway.status_page.records_view import RecordsView
from sen.gateway.status_page.settings import StatusPageSettings

AIR_CH = {4, 5, 6, 38, 39, 40}
WATER_CH = {8, 9, 10, 11, 12, 13, 32, 33, 34, 35, 36, 37}
RAIN_CH = {14, 15, 16}
WINDOWS = {"24h": 86400, "7d": 7 * 86400}
DEFAULT_INTERVAL_S = 900  # firmware/config.py's default interval_s


@dataclass
class Context:
    reader: StoreReader
    settings: StatusPageSettings
    nodes: dict = field(default_factory=dict)          # [nodes.<id>] tables
    records: RecordsView = field(default_factory=lambda: RecordsView(None))
    runners: dict = field(default_factory=dict)        # forwarder name -> ForwarderRunner (optional)
    gateway_id: str = ""
    throughput: "Throughput" = None

    def __post_init__(self):
        self.tz = ZoneInfo(self.settings.timezone)
        if self.throughput is None:
            self.throughput = Throughput()
        # Per-node results that only change when the node sends a frame, keyed by what it last
        # sent: every open page re-reads on every store change, and most nodes did not change.
        self.cache: dict = {}

    def cached(self, kind: str, n: dict, extra, compute):
        key = (n["node_id"], n["last"], n.get("epoch"), n["last_seen"], n["accepted"], n["duplicates"], extra)
        got = self.cache.get((kind, n["node_id"]))
        if got is not None and got[0] == key:
            return got[1]
        value = compute()
        self.cache[(kind, n["node_id"])] = (key, value)
        return value


def infer_kind(channels) -> str:
    ch = set(channels)
    if ch & AIR_CH:
        return "air"
    if ch & WATER_CH:
        return "water"
    if ch & RAIN_CH:
        return "rain"
    return "other"


def infer_interval(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    gaps = [a - b for a, b in zip(times, times[1:]) if a > b]
    return statistics.median(gaps) if gaps else None


def node_row(ctx: Context, n: dict, now: float) -> dict:
    nid = n["node_id"]
    info = ctx.nodes.get(nid, {})
    stored = None if n["last"] is None else n["last"] | ((n.get("epoch") or 0) << 32)

    def lookups():
        return (ctx.reader.channels(nid), info.get("interval_s") or infer_interval(ctx.reader.recent_frame_times(nid)),
                ctx.reader.best_copy(nid, stored))

    chans, interval, best = ctx.cached("row", n, None, lookups)
    last_seen = n["last_seen"]
    age = None if last_seen is None else max(0.0, now - last_seen)
    # until a node's spacing is known, judge it by the firmware's default interval
    silent = last_seen is None or age > ctx.settings.silent_intervals * (interval or DEFAULT_INTERVAL_S)
    battery = n["battery"]
    low_batt = battery is not None and battery < ctx.settings.low_battery_v
    q = n["qflags"] or 0
    mic = n["mic_failures"] or 0
    problems = [p for p, on in (("silent", silent), ("low_battery", low_batt), ("sensor_flags", q != 0),
                                ("mic_failures", mic > 0)) if on]
    return {
        "id": nid, "name": info.get("name") or info.get("station") or f"node {nid}",
        "kind": info.get("kind") or infer_kind(chans), "channels": [BY_ID[c].name for c in chans if c in BY_ID],
        "last_seen": last_seen, "age_s": age, "interval_s": interval,
        "rssi": best["rssi"] if best else n["rssi"], "snr": best["snr"] if best else n["snr"],
        "copies": best["copies"] if best else None, "best_gateway": best["gateway_id"] if best else None,
        "battery": None if battery is None else round(battery, 2), "counter": n["last"],
        "reboots": n["reboots"] or 0, "lost": n["lost"] or 0, "accepted": n["accepted"] or 0,
        "duplicates": n["duplicates"] or 0, "mic_failures": mic, "qflags": q,
        "flags": [] if q == 0 else qflag_names(q), "problems": problems,
    }


def overview(ctx: Context, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    rows = [node_row(ctx, n, now) for n in ctx.reader.nodes()]
    # a node known only from MIC failures (never accepted) still shows, so forgeries stand out
    return {"now": now, "gateway_id": ctx.gateway_id, "tz": ctx.settings.timezone, "nodes": rows,
            "problems": sum(1 for r in rows if r["problems"]), "rejections": ctx.reader.rejections(),
            "readings": ctx.reader.head(), "low_battery_v": ctx.settings.low_battery_v,
            "silent_intervals": ctx.settings.silent_intervals}


def node_detail(ctx: Context, node_id: int, window: str = "24h", now: float | None = None) -> dict | None:
    now = time.time() if now is None else now
    n = ctx.reader.node(node_id)
    if n is None:
        return None
    span = WINDOWS[window]
    row = node_row(ctx, n, now)
    # a node that went quiet shows its last day/week of data rather than an empty plot
    t1 = now if n["last_seen"] is None or n["last_seen"] > now - span else n["last_seen"] + 60
    t0 = t1 - span
    recs = ctx.records.for_node(node_id, now, seen={BY_ID[c].name for c in ctx.reader.channels(node_id) if c in BY_ID})
    # one aggregate pass (per channel and time bucket, inside SQLite); channels with few
    # readings in the window are then read point by point
    agg, marks = ctx.reader.buckets(node_id, t0, t1, series.BUCKETS)
    by_ch: dict = {}
    for r in agg:
        by_ch.setdefault(r[0], [[], []])[0].append(r[1:])
    for m in marks:
        by_ch.setdefault(m[0], [[], []])[1].append(m[1:])
    small = [c for c, (rows, _) in by_ch.items() if sum(x[1] for x in rows) <= series.MAX_POINTS]
    exact = ctx.reader.series_all(node_id, small, t0, t1) if small else {}
    # channels seen in the window or lately (a channel sent only in calibration mode still shows)
    chans = sorted((set(by_ch) | set(ctx.reader.channels(node_id))) & set(BY_ID))
    latest = ctx.reader.latest_all(node_id, chans)
    out_ch = []
    for cid in chans:
        ch = BY_ID[cid]
        if cid in exact:
            shaped = series.shape(*exact[cid], t0, t1)
        elif cid in by_ch and by_ch[cid][0]:
            shaped = series.from_buckets(by_ch[cid][0], by_ch[cid][1], t0, t1)
        else:
            e = np.zeros(0)
            shaped = series.shape(e, e, e, np.zeros(0, np.int64), t0, t1)
        out_ch.append({"id": cid, "name": ch.name, "quantity": ch.quantity, "unit": ch.unit,
                       "latest": latest.get(cid), "series": shaped,
                       "calibration": recs["channels"].get(ch.name)})
    return {"now": now, "node": row, "window": {"name": window, "t0": t0, "t1": t1},
            "channels": out_ch, "records_dir": recs["dir"], "record_problems": recs["problems"]}


def _kind_nodes(ctx: Context, kind: str, now: float):
    for n in ctx.reader.nodes():
        row = node_row(ctx, n, now)
        if row["kind"] == kind:
            yield n, row


def air(ctx: Context, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    stations = []
    hour = int(now // 3600)
    for n, row in _kind_nodes(ctx, "air", now):
        st = dict(ctx.cached("air", n, hour, lambda: air_quality.station(ctx.reader, n["node_id"], now, ctx.tz)))
        st.update(id=row["id"], name=row["name"], last_seen=row["last_seen"], problems=row["problems"])
        stations.append(st)
    return {"now": now, "tz": ctx.settings.timezone, "stations": stations, "categories": air_quality.categories()}


def water(ctx: Context, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    target = ctx.settings.water_class
    ws, rs = [], []
    for n in ctx.reader.nodes():
        row = node_row(ctx, n, now)
        chans = [c.id for c in map(BY_NAME.get, row["channels"]) if c]
        if row["kind"] == "water" or set(chans) & WATER_CH:
            ws.append({"id": row["id"], "name": row["name"], "last_seen": row["last_seen"],
                       "values": water_rain.water_station(ctx.reader, row["id"], chans, target)})
        if row["kind"] == "rain" or set(chans) & RAIN_CH:
            r = dict(ctx.cached("rain", n, int(now // 3600),
                                lambda: water_rain.rain_station(ctx.reader, row["id"], chans, now, ctx.tz)))
            r.update(id=row["id"], name=row["name"], last_seen=row["last_seen"])
            rs.append(r)
    return {"now": now, "tz": ctx.settings.timezone, "water_class": target, "water": ws, "rain": rs,
            "limits": {k: {c: list(v) for c, v in t.items()} for k, t in water_rain.QCVN08.items()}}


class Throughput:
    """Samples each forwarder's delivered count over time; rate over the last few minutes."""

    def __init__(self, horizon_s: float = 300.0):
        self.horizon = horizon_s
        self._hist: dict[str, deque] = {}
        self._lock = threading.Lock()

    def observe(self, name: str, sent: int, now: float):
        with self._lock:
            h = self._hist.setdefault(name, deque())
            if not h or now - h[-1][0] >= 0.5:
                h.append((now, sent))
            while len(h) > 2 and now - h[0][0] > self.horizon:
                h.popleft()

    def per_min(self, name: str) -> float | None:
        with self._lock:
            h = self._hist.get(name)
            if not h or len(h) < 2 or h[-1][0] - h[0][0] < 1.0:
                return None
            (ta, sa), (tb, sb) = h[0], h[-1]
            return max(0.0, (sb - sa) / (tb - ta) * 60.0)


def forwarders(ctx: Context, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    head = ctx.reader.head()
    rows = []
    for ob in ctx.reader.outboxes():
        name = ob["name"]
        ctx.throughput.observe(name, ob["sent"] or 0, now)
        runner = ctx.runners.get(name)
        oldest = ctx.reader.first_time_after(ob["cursor"]) if head > ob["cursor"] else None
        err_recent = ob["last_error_time"] is not None and (ob["last_ok"] is None or ob["last_error_time"] > ob["last_ok"])
        healthy = runner.healthy if runner is not None else not err_recent
        rows.append({
            "name": name, "cursor": ob["cursor"], "head": head, "depth": max(0, head - ob["cursor"]),
            "oldest_pending": oldest, "lag_s": None if oldest is None else max(0.0, now - oldest),
            "sent": ob["sent"] or 0, "dropped": ob["dropped"] or 0, "last_ok": ob["last_ok"],
            "last_error": ob["last_error"], "last_error_time": ob["last_error_time"],
            "healthy": bool(healthy), "failures": getattr(runner, "failures", None),
            "throughput_per_min": ctx.throughput.per_min(name),
        })
    return {"now": now, "forwarders": rows, "head": head}
