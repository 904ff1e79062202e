"""`sen demo`: the end-to-end demo on embedded defaults.

Today it runs the part of the data path that exists end to end: three nodes (air, water,
rain) make a day of frames with the firmware's own encoder; the gateway's decoder verifies
and decodes them, and they are stored in SQLite (WAL). Later stages (emulated boards,
radio, calibration, forwarders) join as they land.
"""
import json
import math
import random
import sqlite3
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress

from sen.firmware_modules import load
from sen.gateway.frame_decode import FrameRejected, decode_uplink

NODES = [
    (101, "air", "Nguyễn Văn Linh road, Đà Nẵng"),
    (201, "water", "Hàn river, Đà Nẵng"),
    (301, "rain", "Bà Nà hills"),
]


def truth(kind: str, t_h: float, rng: random.Random) -> list[tuple[str, float]]:
    day = math.sin((t_h - 9) / 24 * 2 * math.pi)
    if kind == "air":
        rush = math.exp(-((t_h % 24 - 8) ** 2) / 2) + math.exp(-((t_h % 24 - 18) ** 2) / 2)
        return [("air_temp", 28 + 4 * day + rng.gauss(0, 0.2)), ("rh", min(100, 75 - 12 * day + rng.gauss(0, 1))),
                ("pressure", 1008 + 1.5 * math.sin(t_h / 12 * math.pi)), ("pm25", max(0, 25 + 30 * rush + rng.gauss(0, 3))),
                ("pm10", max(0, 40 + 45 * rush + rng.gauss(0, 4))), ("battery", 3.95 - 0.002 * t_h)]
    if kind == "water":
        return [("battery", 3.7 - 0.001 * t_h), ("water_temp", 27 + 1.2 * day), ("ph", 7.2 + 0.05 * day),
                ("conductivity", 480 + 30 * day), ("turbidity", 40 + 5 * rng.random()), ("water_level", 1.2 + 0.3 * math.sin(t_h / 12.4 * 2 * math.pi))]
    storm = max(0.0, 30 * math.exp(-((t_h - 15) ** 2) / 3))
    return [("battery", 4.1), ("rain_depth", storm / 4), ("rain_intensity", storm)]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Where the database and summary go.")
@click.option("--hours", type=click.IntRange(1, 24 * 14), default=24, show_default=True, help="Simulated hours.")
@click.option("--interval", "interval_s", type=click.IntRange(60, 86400), default=900, show_default=True,
              help="Reporting interval of every node, seconds.")
def demo(out_dir: Path, hours: int, interval_s: int):
    """Run the end-to-end demo: nodes' frames -> gateway verify/decode -> SQLite."""
    frame, channels = load("frame"), load("channels")
    console = Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "sen-demo.sqlite"
    db_path.unlink(missing_ok=True)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE readings (node INTEGER, counter INTEGER, t REAL, channel TEXT, value REAL, unit TEXT, qflags INTEGER)")
    rng = random.Random(2026)
    keys = {node: rng.randbytes(16) for node, _, _ in NODES}
    framers = {node: frame.Framer(node, keys[node]) for node, _, _ in NODES}
    counters = {node: 0 for node, _, _ in NODES}
    stats = {"frames": 0, "bytes": 0, "readings": 0, "rejected": 0}
    steps = hours * 3600 // interval_s
    started = time.monotonic()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=steps)
        for step in range(steps):
            t_s = step * interval_s
            for node, kind, _ in NODES:
                rd = sorted((channels.CHANNELS[n][0],) + channels.scaled(n, v) for n, v in truth(kind, t_s / 3600, rng))
                counters[node] += 1
                flags = frame.UP_BOOT if step == 0 else 0
                raw = framers[node].encode(counters[node], flags, [(0, rd)])
                stats["frames"] += 1
                stats["bytes"] += len(raw)
                try:
                    up = decode_uplink(raw, keys[node], counters[node])
                except FrameRejected:
                    stats["rejected"] += 1
                    continue
                rows = [(node, up.counter, t_s, r.channel.name, r.value, r.channel.unit, r.qflags) for r in up.samples[0].readings]
                db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?)", rows)
                stats["readings"] += len(rows)
            db.commit()
            progress.advance(task)
    summary = {**stats, "nodes": len(NODES), "hours": hours, "mean_frame_bytes": round(stats["bytes"] / stats["frames"], 1),
               "wall_s": round(time.monotonic() - started, 2), "database": str(db_path)}
    for node, kind, place in NODES:
        row = db.execute("SELECT COUNT(DISTINCT counter) FROM readings WHERE node=?", (node,)).fetchone()
        console.print(f"node {node:>4} {kind:<5} {place}: {row[0]} frames stored")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    console.print(f"database: {db_path}\nsummary:  {out_dir / 'summary.json'}")
    print(json.dumps(summary))
