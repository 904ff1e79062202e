"""The city-day demo's figures: delivery, accuracy against the scenario's truth, budgets;
written as summary.json and a self-contained summary.html (inline SVG plots, no CDN)."""
import base64
import html
import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np

from sen.gateway.channels import BY_ID

BY_NAME = {c.name: c for c in BY_ID.values()}
Q_CALIBRATING = 16
# Targets from issue 8 ("Done when").
TARGETS = {"air_temp_rmse_c": 0.3, "pm25_hourly_rmse_ugm3": 3.0, "ph_rmse": 0.1, "conductivity_rms_pct": 2.0,
           "rain_total_error_pct": 2.0, "duty_cycle_pct": 1.0}


def readings(db: sqlite3.Connection, node_id: int, channel: str, ok_flags=Q_CALIBRATING):
    """(sample times, values) of one node's channel, one row per sample (deduped by sample
    time), leaving out readings flagged anything but `ok_flags`."""
    ch = BY_NAME[channel].id
    rows = db.execute("SELECT time, value, qflags FROM readings WHERE node_id=? AND channel=? AND value IS NOT NULL "
                      "ORDER BY time", (node_id, ch)).fetchall()
    seen, t, v = set(), [], []
    for tm, val, q in rows:
        if (q or 0) & ~ok_flags or tm in seen:
            continue
        seen.add(tm)
        t.append(tm)
        v.append(val)
    return np.asarray(t, float), np.asarray(v, float)


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2))) if len(a) else None


def hourly_means(world, station, quantity, t_rel, values, hours):
    """Per whole hour with ≥ 3 of its 4 samples: (hour end s, node mean, truth mean)."""
    out = []
    for h in range(int(math.floor(hours))):
        a, b = h * 3600.0, (h + 1) * 3600.0
        m = (t_rel >= a) & (t_rel < b)
        if m.sum() < 3:
            continue
        truth = float(np.mean(world.truth_array(station, quantity, np.linspace(a, b, 361))))
        out.append((b, float(np.mean(values[m])), truth))
    return out


def accuracy(db, world, nodes, hours):
    """Figures per quantity against the world's truth at each sample's time."""
    t0 = world.start_epoch_s
    acc, series = {}, {}
    by_station = {}
    for n in nodes:
        by_station.setdefault(n["station"], n)  # the first node at a station (confirmed) is scored

    def pts(name, channel, quantity):
        n = by_station[name]
        t, v = readings(db, n["cfg"]["node_id"], channel)
        rel = t - t0
        truth = world.truth_array(name, quantity, rel) if len(rel) else np.array([])
        series[channel] = {"t_h": (rel / 3600).tolist(), "stored": v.tolist(), "truth": np.asarray(truth).tolist()}
        return rel, v, truth

    rel, v, tr = pts("air-1", "air_temp", "air_temp")
    acc["air_temp_rmse_c"] = _rmse(v, tr)
    acc["air_temp_n"] = len(v)
    rel, v, tr = pts("air-1", "pm25", "pm25")
    hm = hourly_means(world, "air-1", "pm25", rel, v, hours)
    acc["pm25_hourly_rmse_ugm3"] = _rmse([x[1] for x in hm], [x[2] for x in hm])
    acc["pm25_hours"] = len(hm)
    series["pm25_hourly"] = {"t_h": [x[0] / 3600 for x in hm], "stored": [x[1] for x in hm], "truth": [x[2] for x in hm]}
    rel_c, v_c, _ = pts("air-1", "pm25_cf1", "pm25")
    hm_raw = hourly_means(world, "air-1", "pm25", rel_c, v_c, hours)
    acc["pm25_cf1_hourly_rmse_ugm3"] = _rmse([x[1] for x in hm_raw], [x[2] for x in hm_raw])
    rel, v, tr = pts("water-1", "ph", "ph")
    acc["ph_rmse"] = _rmse(v, tr)
    rel, v, tr = pts("water-1", "conductivity", "conductivity")
    acc["conductivity_rms_pct"] = (float(np.sqrt(np.mean(((v - tr) / tr) ** 2))) * 100) if len(v) else None
    rel, v, tr = pts("water-1", "water_temp", "water_temp")
    acc["water_temp_rmse_c"] = _rmse(v, tr)
    n = by_station["rain-1"]
    t, depth = readings(db, n["cfg"]["node_id"], "rain_depth")
    end_s = min(hours * 3600.0, world.duration_s)
    truth_mm = world.integral("rain-1", "rain_intensity", 0.0, end_s)
    stored_mm = float(depth.sum())
    acc["rain_total_mm"] = stored_mm
    acc["rain_truth_mm"] = truth_mm
    acc["rain_total_error_pct"] = (stored_mm - truth_mm) / truth_mm * 100 if truth_mm > 0.1 else None
    series["rain_cumulative"] = {"t_h": ((t - t0) / 3600).tolist(), "stored": np.cumsum(depth).tolist(),
                                 "truth": [world.integral("rain-1", "rain_intensity", 0.0, max(1.0, x)) for x in (t - t0)]}
    return acc, series


def delivery(db, nodes, report_boards):
    """Per node: frames the radio sent (retries included), distinct frames stored, samples
    taken (cycles) and distinct samples stored."""
    out = []
    for n, rep in zip(nodes, report_boards):
        nid = n["cfg"]["node_id"]
        sent = sum(c["frames"] for c in rep["cycles"])
        stored = db.execute("SELECT COUNT(*) FROM frames WHERE node_id=?", (nid,)).fetchone()[0]
        samples = db.execute("SELECT COUNT(DISTINCT time) FROM readings WHERE node_id=?", (nid,)).fetchone()[0]
        st = db.execute("SELECT lost, duplicates, reboots FROM nodes WHERE node_id=?", (nid,)).fetchone() or (0, 0, 0)
        # a sampling cycle is a timer wake or a power-on; rain-gauge tip wakes only count tips
        cycles = sum(1 for c in rep["cycles"] if c.get("wake_reason") != 2)
        out.append({"node": n["name"], "node_id": nid, "kind": n["cfg"]["kind"],
                    "mode": "confirmed" if n["cfg"].get("confirmed") else "unconfirmed",
                    "frames_sent": sent, "frames_stored": stored,
                    "frames_stored_pct": round(100.0 * stored / sent, 1) if sent else None,
                    "samples_stored": samples, "sampling_cycles": cycles,
                    "counter_gaps": st[0], "duplicates": st[1], "reboots": st[2]})
    return out


def budgets(report_boards):
    out = []
    for b in report_boards:
        cyc = b["cycles"]
        total_s = b["total_time_s"] or 1.0
        tx_ms = sum(c["state_ms"].get("radio_tx", 0.0) for c in cyc)
        heaps = [c["firmware_heap"] for c in cyc if c.get("firmware_heap") is not None]
        out.append({"node": b["board"], "board_id": b["board_id"], "cycles": len(cyc),
                    "peak_heap_bytes": max((c["peak_heap"] for c in cyc if c["peak_heap"] is not None), default=None),
                    "peak_firmware_heap_bytes": max(heaps) if heaps else None,
                    "cpu_active_ms_per_cycle": round(float(np.mean([c["cpu_ms"] for c in cyc])), 1) if cyc else None,
                    "awake_ms_per_cycle": round(float(np.mean([c["awake_ms"] for c in cyc])), 1) if cyc else None,
                    "average_current_ma": b["average_current_ma"],
                    "duty_cycle_pct": round(100.0 * tx_ms / 1000.0 / total_s, 4),
                    "airtime_s": round(tx_ms / 1000.0, 2)})
    return out


def checks(summary):
    acc = summary["accuracy"]
    rows = []
    for k, target in TARGETS.items():
        if k == "duty_cycle_pct":
            worst = max((b["duty_cycle_pct"] for b in summary["budgets"]), default=None)
            rows.append({"figure": "worst duty cycle %", "value": worst, "target": target,
                         "pass": worst is not None and worst <= target})
            continue
        v = acc.get(k)
        # None: nothing to score in this run (e.g. no rain fell in a short run)
        rows.append({"figure": k, "value": v, "target": target, "pass": None if v is None else abs(v) <= target})
    for d in summary["delivery"]:
        if d["mode"] == "confirmed":
            ok = d["samples_stored"] >= d["sampling_cycles"]
            rows.append({"figure": f"{d['node']} samples stored / taken", "value": f"{d['samples_stored']}/{d['sampling_cycles']}",
                         "target": "all", "pass": ok})
        else:
            loss = summary["radio_loss_percent"] / 100.0
            v = d["frames_stored"] / d["frames_sent"] if d["frames_sent"] else 0.0
            rows.append({"figure": f"{d['node']} frames stored / sent", "value": round(v, 3), "target": f">= {1 - loss:.2f}",
                         "pass": v >= 1 - loss})
    return rows


# ------------------------------------------------------------------ HTML
def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plots(series):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    spec = [("air_temp", "Air temperature (°C), air-1"), ("pm25_hourly", "PM2.5 hourly mean (µg/m³), calibrated"),
            ("pm25_cf1", "PM2.5 raw CF=1 (µg/m³) vs dry truth"), ("ph", "pH, water-1"),
            ("conductivity", "Conductivity (µS/cm), water-1"), ("rain_cumulative", "Cumulative rain (mm), rain-1")]
    for key, title in spec:
        s = series.get(key)
        if not s or not s["t_h"]:
            continue
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.plot(s["t_h"], s["truth"], "-", color="#444", lw=1.2, label="truth")
        ax.plot(s["t_h"], s["stored"], ".", color="#c0392b", ms=4, label="stored at the gateway")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hours after start")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out.append(_svg(fig))
        plt.close(fig)
    return out


def _table(rows):
    if not rows:
        return ""
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[k]))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_html(path: Path, summary: dict, series: dict):
    acc_rows = [{"figure": k, "value": v} for k, v in summary["accuracy"].items()]
    parts = [f"<h1>Sen city-day demo: {html.escape(summary['scenario'])}</h1>",
             f"<p>{summary['hours']} simulated hours in {summary['wall_s']} s wall time; "
             f"radio loss {summary['radio_loss_percent']} %; gateway restarts: "
             f"{html.escape(json.dumps(summary['gateway_restarts']))}</p>",
             "<h2>Checks against issue 8's targets</h2>", _table(summary["checks"]),
             "<h2>Delivery</h2>", _table(summary["delivery"]),
             "<h2>Accuracy against the scenario's truth</h2>", _table(acc_rows),
             "<h2>Calibration</h2>", f"<pre>{html.escape(json.dumps(summary['calibration'], indent=1))}</pre>",
             "<h2>Budgets (emulator report)</h2>", _table(summary["budgets"]),
             "<h2>Plots</h2>"] + [f"<div>{s}</div>" for s in plots(series)]
    css = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
           "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Sen demo</title><style>{css}</style>"
                    f"</head><body>{''.join(parts)}</body></html>", encoding="utf-8")


def build_summary(db_path: Path, world, nodes, report, hours, **extra):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        acc, series = accuracy(db, world, nodes, hours)
        summary = {"scenario": world.name, "hours": hours, "radio_loss_percent": world.radio["loss_percent"],
                   **extra, "delivery": delivery(db, nodes, report["boards"]), "accuracy": acc,
                   "budgets": budgets(report["boards"])}
    finally:
        db.close()
    summary["checks"] = checks(summary)
    return summary, series
