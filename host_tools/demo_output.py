"""`sen demo`'s output: the figures on the console, the JSON-lines export of every reading,
the forwarders' outbox counts and the firmware heap figure from `sen bench`."""
import json
import logging
import sqlite3
from pathlib import Path

from rich.table import Table

log = logging.getLogger("sen.demo")


def forwarders(db_path: Path):
    """Per forwarder: samples sent, dropped, last error (the store's outbox table)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [{"forwarder": n, "samples_sent": s, "dropped": d, "last_error": e}
                for n, s, d, e in db.execute("SELECT name, sent, dropped, last_error FROM outbox ORDER BY name")]
    finally:
        db.close()


def heap_kb(nodes):
    """Firmware heap per cycle per kind, by sen bench's measurement (a cycle under
    MicroPython's own allocator; ~1 s each). None if it cannot run here."""
    try:
        from sen.bench.node_bench import heap_per_kind  # lazy: CLI start-up
        return {k: heap_per_kind(k) for k in sorted({n["cfg"]["kind"] for n in nodes})}
    except Exception as e:  # a figure missing from the report, not a failed demo
        log.warning("heap per cycle not measured: %s", e)
        return None


def export_jsonl(db_path: Path, out: Path):
    """Every stored reading, calibrated, as JSON lines (the file export of the demo)."""
    from sen.channels import BY_ID  # lazy: CLI start-up
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    with open(out, "w") as f:
        for nid, counter, t, ch, raw, value, q, cal in db.execute(
                "SELECT node_id, counter, time, channel, raw, value, qflags, cal FROM readings ORDER BY id"):
            c = BY_ID.get(ch)
            f.write(json.dumps({"node": nid, "counter": counter, "time": t, "channel": c.name if c else ch,
                                "unit": c.unit if c else None, "raw": raw, "value": value, "qflags": q, "cal": cal}) + "\n")
    db.close()


def print_summary(console, s, out_dir):
    t = Table(title="delivery")
    for c in ("node", "mode", "frames sent", "heard by gateway radio", "frames stored", "samples stored/cycles",
              "counter gaps"):
        t.add_column(c)
    for d in s["delivery"]:
        heard = d.get("frames_heard_by_gateway")
        t.add_row(d["node"], d["mode"], str(d["frames_sent"]),
                  "-" if heard is None else f"{heard} (lost on air {d['on_air_loss_pct']} %)",
                  f"{d['frames_stored']} ({d['frames_stored_pct']} %)",
                  f"{d['samples_stored']}/{d['sampling_cycles']}", str(d["counter_gaps"]))
    console.print(t)
    t = Table(title="checks (the project's targets)")
    for c in ("figure", "value", "target", "pass"):
        t.add_column(c)
    for r in s["checks"]:
        v = r["value"]
        t.add_row(r["figure"], f"{v:.4g}" if isinstance(v, float) else str(v), str(r["target"]),
                  "n/a" if r["pass"] is None else "[green]yes[/]" if r["pass"] else "[red]no[/]")
    console.print(t)
    t = Table(title="budgets (emulator report; heap per cycle from sen bench's measurement)")
    for c in ("node", "board", "heap/cycle KB", "CPU-active ms mean/max", "wake-to-sleep ms max", "avg current µA",
              "duty cycle %"):
        t.add_column(c)
    for b in s["budgets"]:
        t.add_row(b["node"], b["board_id"], str(b["heap_per_cycle_kb"]), f"{b['cpu_active_ms_mean']}/{b['cpu_active_ms_max']}",
                  str(b["wake_to_sleep_ms_max"]),
                  str(b["average_current_ua"]), str(b["duty_cycle_pct"]))
    console.print(t)
    from sen.host_tools.demo_link import print_tables  # the charge split and SF history
    print_tables(console, s)
    console.print(f"calibration: {s['calibration'].get('status')} {s['calibration'].get('coefficients', '')}")
    console.print(f"gateway radio: {s['gateway_radio']['description']}")
    console.print(f"wall time {s['wall_s']} s for {s['hours']:g} simulated hours; gateway restarts {s['gateway_restarts']}")
    for k, v in s["files"].items():
        console.print(f"  {k:16} {out_dir / v}")
    console.print(f"  {'circular10 files':16} {s['circular10_files']}")
    for f in s["forwarders"]:
        console.print(f"  forwarder {f['forwarder']}: {f['samples_sent']} samples sent, {f['dropped']} dropped"
                      + (f", last error {f['last_error']}" if f["last_error"] else ""))
