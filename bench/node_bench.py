"""`sen bench node`: each node kind on each board, in the emulator with real MicroPython.

For every (board, kind) the firmware (compiled with mpy-cross, as `sen node build` ships
it) runs on an emulated board whose CPU is MicroPython 1.27 under Node, with the chip
models of a small world (bench/node_bench_world.toml) wired as the board definition says.
After the power-on cycle it runs CYCLES reporting intervals and prints, per cycle:

- peak MicroPython heap: gc.mem_alloc() at every sleep call, highest in the cycle;
- CPU-active time (emulator/report.py firmware_active_ms): virtual time in an active CPU
  state from boot.py to sleep (code, busy waits, transfers), with time in light sleep
  (PMS5003 warm-up, TX wait, ACK window, conversions) counted apart; the budget applies to
  it. Wake-to-sleep adds the board's boot_ms estimate (ROM, bootloader, interpreter start)
  and is what the current figure integrates;
- time on air, from the radio model's TX log;
- average current over the reporting interval, from the board's [current_ma] table
  (emulator/power_meter.py integrates every state change), and the projected life of a
  3,000 mAh cell at that current (no self-discharge, no derating: an upper bound).

The last line is one JSON object. Budgets (issue 4) are checked and printed, never hidden.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sen.cache import mpy_cross as cached_mpy_cross
from sen.paths import FIRMWARE

KINDS = ("air", "water", "rain")
STATIONS = {"air": "air", "water": "water", "rain": "rain"}
HERE = Path(__file__).resolve().parent
WORLD = HERE / "node_bench_world.toml"
INTERVAL_S = 900
CYCLES = 4
CELL_MAH = 3000.0
BUDGET_HEAP_KB = 40.0
BUDGET_CPU_MS = 400.0
BUDGET_UA = 60.0
KEY_HEX = "000102030405060708090a0b0c0d0e0f"


def build_flash(root, board_id, kind, node_id=1, interval_s=INTERVAL_S, extra=None, gc_threshold=None):
    """The device's flash as a technician leaves it: .mpy modules, boot.py/main.py,
    board.json and node.json."""
    from sen.emulator.board_def import device_json, load_board
    root = Path(root)
    (root / "drivers").mkdir(parents=True, exist_ok=True)
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    for src in sorted(FIRMWARE.rglob("*.py")):
        rel = src.relative_to(FIRMWARE)
        if rel.name in ("boot.py", "main.py"):
            shutil.copy(src, root / rel)
            continue
        out = (root / rel).with_suffix(".mpy")
        res = cached_mpy_cross(str(mpy_cross), src, out)
        if res.returncode != 0:
            raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout, res.stderr)
    (root / "board.json").write_bytes(device_json(load_board(board_id)))
    cfg = {"node_id": node_id, "key": KEY_HEX, "kind": kind, "interval_s": interval_s}
    cfg.update(extra or {})
    (root / "node.json").write_text(json.dumps(cfg))
    if gc_threshold:
        (root / "gcdiag").write_text(str(int(gc_threshold)))


def run_one(board_id, kind, cycles=CYCLES, interval_s=INTERVAL_S, workdir=None, wall_limit_s=300, heap_kb=None,
            gc_threshold=None, sf=None, confirmed=False, loss=None, distance_m=None, gateway=False, frames_out=None,
            batch=None):
    """Run one node in the real-MicroPython emulator; returns (per-cycle records, log text).
    sf, confirmed: node.json's radio.sf and confirmed; loss, distance_m: the bench world's
    radio loss and the station's distance from the gateway; gateway: the real gateway in the
    loop (implied by confirmed; bench/node_bench_link.py). frames_out: a list that receives
    the medium's frame records (sender, sf, power_dbm, times)."""
    from sen.bench import node_bench_link as link
    from sen.emulator.board import Board
    from sen.emulator.board_def import load_board
    from sen.emulator.bridge import Bridge, default_shim_dirs
    from sen.emulator.chips import StationWiring
    from sen.emulator.clock import VirtualClock
    from sen.emulator.scenario import load_scenario
    from sen.emulator.session import BoardSession

    world = link.shape_world(load_scenario(WORLD), STATIONS[kind], loss, distance_m)
    clock = VirtualClock(start_epoch_s=world.start_epoch_s)
    from sen.emulator.radio_medium import world_medium
    medium = world_medium(world, clock)   # the one a gateway in the loop joins too
    # the Heltec has no ADC pin left for a water-temperature probe: fit what it carries
    wiring = StationWiring(world, STATIONS[kind], clock, medium, only_fitted=True)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="sen-node-bench-"))
    root = tmp / f"{board_id}-{kind}"
    build_flash(root, board_id, kind, interval_s=interval_s, gc_threshold=gc_threshold,
                extra=link.node_config(sf, confirmed, batch))
    hold, stop_gw = (link.gateway_in_loop(world, clock, tmp, 1, KEY_HEX, sf) if (gateway or confirmed)
                     else (None, None))
    bd = dict(load_board(board_id), _index=0, _name=f"{board_id}#0")
    board = Board(bd, wiring, clock, str(root))
    session = BoardSession(name=bd["_name"], board_name=bd["name"], board=board, clock=clock, fs_root=root,
                           shim_dirs=default_shim_dirs(),
                           heap_bytes=int(heap_kb or bd.get("heap_kb", 160)) * 1024,
                           fs_bytes=max(1 << 20, int(bd.get("flash_kb", 4096)) * 1024 - (2 << 20)))
    console = bytearray()
    bridge = Bridge([session], clock, None, hold=hold)

    def capture(data):
        console.extend(data)
        # The firmware fell back to the REPL (maintenance, config error, crash): stop now
        # rather than wait for virtual time that will never come.
        if b"\n>>> " in console[-200:]:
            from sen.emulator.bridge import Stop
            raise Stop()
    session.port.write = capture
    end_us = int(((cycles + 1) * interval_s + 60) * 1e6)

    def stop():
        bridge._stop = True
    clock.call_at(end_us, stop)

    def wall_limit(*_):
        from sen.emulator.bridge import Stop
        raise Stop()
    old = signal.signal(signal.SIGALRM, wall_limit)
    signal.alarm(wall_limit_s)
    try:
        bridge.run()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        if stop_gw is not None:
            stop_gw()
        if frames_out is not None:
            frames_out.extend(medium.frames)
        bridge.close()
        board.close()
        session.port.close()
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return board.cycles, console.decode("latin1")


def heap_per_kind(kind, board_id="esp32-rfm95"):
    """(code KB, per-cycle allocation KB) of the firmware in real MicroPython: the compiled
    modules a cycle of `kind` imports, and every byte one cycle's data path allocates
    (bench/node_heap_cycle.py; the WebAssembly port cannot collect garbage while Python
    runs, so this is total allocation, an upper bound on the live heap in the cycle)."""
    from sen.emulator.node_runtime import find_micropython_mjs, find_node
    env = dict(os.environ, SEN_MP_MODULE=str(find_micropython_mjs()))
    with tempfile.TemporaryDirectory(prefix="sen-node-heap-") as d:
        d = Path(d)
        build_flash(d, board_id, kind)
        for f in (HERE / "node_heap_stubs").glob("*.py"):
            shutil.copy(f, d / f.name)
        script = d / "_cycle.py"
        script.write_text("KIND = %r\n" % kind + (HERE / "node_heap_cycle.py").read_text())
        out = subprocess.run([find_node(), str(HERE / "node_heap.mjs"), str(d), str(script)],
                             capture_output=True, text=True, timeout=120, env=env)
    for ln in out.stdout.splitlines():
        if ln.startswith("HEAP "):
            code, cyc = map(int, ln.split()[1:])
            return code / 1024.0, cyc / 1024.0
    raise RuntimeError("heap measurement failed: " + (out.stdout + out.stderr)[-1500:])


def summarize(board_def, kind, records, interval_s=INTERVAL_S, settle_h=0.0):
    """Reporting-interval figures from the board's cycle records (one record per boot:
    scheduled wakes, and for rain nodes also the tip wakes in between). Intervals starting
    in the first settle_h hours are left out (a link check or ADR has not acted yet)."""
    # Skip the power-on boot (boot window); group the rest into reporting intervals, each
    # starting at a timer wake (wake_reason 4) and including the tip wakes that follow.
    recs = [r for r in records if r["reset_cause"] != 1]
    groups = []
    for r in recs:
        if r["wake_reason"] == 4 or not groups:
            groups.append([r])
        else:
            groups[-1].append(r)
    rows = []
    from sen.bench import charge_split
    from sen.emulator.report import firmware_active_ms
    t0 = records[0]["start_us"] if records else 0
    for g in groups:
        if g[0]["start_us"] - t0 < settle_h * 3.6e9:
            continue
        span_s = sum(r["end_us"] - r["start_us"] for r in g) / 1e6
        if span_s < 0.9 * interval_s:
            continue  # the run's last, unfinished interval
        charge = sum(r["charge_mah"] for r in g)
        heap = [r["peak_heap"] - (r["heap_base"] or 0) for r in g if r["peak_heap"] is not None]
        cyc = g[0]
        rows.append({
            "emu_alloc_kb": (max(heap) / 1024.0) if heap else None,
            "cpu_active_ms": firmware_active_ms(cyc),
            "wake_to_sleep_ms": cyc["awake_ms"],
            "light_sleep_ms": cyc["state_ms"].get("light_sleep", 0.0),
            "tip_wakes": len(g) - 1,
            "tip_wake_ms": (sum(r["awake_ms"] for r in g[1:]) / (len(g) - 1)) if len(g) > 1 else 0.0,
            "airtime_ms": sum(r["airtime_ms"] for r in g),
            "avg_current_ua": charge / (span_s / 3600.0) * 1000.0,
            "interval_s": span_s,
            "split_ua": charge_split.average_ua(g, board_def["current_ma"], span_s=span_s),
        })
    if not rows:
        return None
    dry = [r for r in rows if r["tip_wakes"] == 0]
    wet = [r for r in rows if r["tip_wakes"] > 0]
    avg = lambda rs: (sum(r["avg_current_ua"] for r in rs) / len(rs)) if rs else None  # noqa: E731
    base_ua = avg(dry) if dry else avg(rows)
    return {
        "board": board_def["id"], "kind": kind, "cycles": len(rows),
        "cpu_active_ms": max(r["cpu_active_ms"] for r in rows),
        "wake_to_sleep_ms": max(r["wake_to_sleep_ms"] for r in rows),
        "light_sleep_ms": max(r["light_sleep_ms"] for r in rows),
        "airtime_ms": max(r["airtime_ms"] for r in rows),
        "emu_alloc_kb": max(r["emu_alloc_kb"] or 0 for r in rows),
        "avg_current_ua": base_ua,
        "avg_current_rain_ua": avg(wet),
        "tip_wakes_per_rain_interval": (sum(r["tip_wakes"] for r in wet) / len(wet)) if wet else None,
        "tip_wake_ms": max((r["tip_wake_ms"] for r in wet), default=None),
        "life_days_3000mah": CELL_MAH / (base_ua / 1000.0) / 24.0,
        # the same intervals as avg_current_ua (dry ones when the run had rain), by category
        "charge_split_ua": _mean_split([r["split_ua"] for r in (dry or rows)]),
        "charge_split_rain_ua": _mean_split([r["split_ua"] for r in wet]) if wet else None,
        "rows": rows,
    }


def _mean_split(splits):
    """The mean of per-interval charge splits (µA), rounded for the report."""
    from sen.bench.charge_split import rounded
    keys = [k for k in splits[0] if k != "other_detail"]
    other = sorted({k for s in splits for k in s["other_detail"]})
    out = {k: sum(s[k] for s in splits) / len(splits) for k in keys}
    out["other_detail"] = {k: sum(s["other_detail"].get(k, 0.0) for s in splits) / len(splits) for k in other}
    return rounded(out)


def _link_note(sf, confirmed, loss, distance_m, gateway):
    parts = [f"SF{sf or 9}", "confirmed" if confirmed else "unconfirmed"]
    if loss is not None:
        parts.append(f"loss {loss:g} %")
    if distance_m is not None:
        parts.append(f"{distance_m:g} m from the gateway")
    if gateway or confirmed:
        parts.append("gateway in the loop")
    return ", ".join(parts)


def run(boards=None, kinds=KINDS, cycles=CYCLES, sf=None, confirmed=False, loss=None, distance_m=None,
        gateway=False, sf_sweep=False, batch=None, settle_h=0.0):
    from rich.console import Console
    from rich.table import Table
    from sen.bench import charge_split
    from sen.bench.sf_history import json_ready, sf_history, sf_text
    from sen.emulator.board_def import list_boards, load_board
    if sf_sweep:
        from sen.bench.node_bench_sweep import run_sweep
        return run_sweep(boards=boards, cycles=cycles, confirmed=confirmed, loss=loss, distance_m=distance_m,
                         gateway=gateway)
    console = Console()
    boards = list(boards or list_boards())
    kinds = kinds or KINDS
    link_kw = dict(sf=sf, confirmed=confirmed, loss=loss, distance_m=distance_m, gateway=gateway)
    note = _link_note(**link_kw) + (f", batch {batch}" if batch else "") + (f", after {settle_h:g} h" if settle_h else "")
    t0 = time.monotonic()
    heap = {}
    for k in kinds:
        heap[k] = heap_per_kind(k)
        console.print(f"{k}: firmware code on the heap {heap[k][0]:.1f} KB (compiled .mpy), "
                      f"allocated per cycle {heap[k][1]:.1f} KB (MicroPython 1.27)")
    results = []
    for b in boards:
        bd = load_board(b)
        for k in kinds:
            n = cycles + (3 if k == "rain" else 0)  # rain: dry intervals, then a shower
            frames = []
            recs, log = run_one(b, k, n, frames_out=frames, batch=batch, **link_kw)
            s = summarize(bd, k, recs, settle_h=settle_h)
            if s is None:
                raise RuntimeError(f"{b}/{k}: no complete cycle ran; log tail:\n{log[-2000:]}")
            s["heap_code_kb"], s["heap_cycle_kb"] = heap[k]
            s["sf_history"] = json_ready(sf_history(frames, senders=[STATIONS[k]])).get(STATIONS[k])
            results.append(s)
            lines = [ln for ln in log.splitlines() if ln.startswith("[sen] cycle")]
            console.print(f"[dim]{b} {k}: {lines[-1] if lines else '(no cycle line)'}[/dim]")
            for i, r in enumerate(s["rows"], 1):
                console.print(f"  {b} {k} interval {i}: CPU-active {r['cpu_active_ms']:.0f} ms "
                              f"(wake-to-sleep {r['wake_to_sleep_ms']:.0f} with boot {bd.get('boot_ms', 0)}), light sleep "
                              f"{r['light_sleep_ms']:.0f} ms, on air {r['airtime_ms']:.0f} ms, "
                              f"{r['avg_current_ua']:.1f} uA"
                              + (f", {r['tip_wakes']} tip wakes of {r['tip_wake_ms']:.0f} ms" if r["tip_wakes"] else ""))
            if s["sf_history"]:
                h = s["sf_history"]
                console.print(f"  {b} {k} on air: " + sf_text({"frames_per_sf": {int(x): v for x, v in h["frames_per_sf"].items()},
                                                                 "airtime_s_per_sf": {int(x): v for x, v in h["airtime_s_per_sf"].items()}})
                              + f"; SF/power changes (h, SF, dBm): {h['changes']}")
    table = Table(title=f"Node cycle figures ({INTERVAL_S // 60}-min interval, {note}, MicroPython 1.27 in the emulator)")
    for col in ("board", "kind", "heap/cycle KB", "CPU-active ms", "wake-to-sleep ms", "light sleep ms", "on air ms",
                "avg uA", "avg uA in rain", "life 3000 mAh (d)"):
        table.add_column(col, justify="right")
    split = Table(title="Average current split, uA (rain: dry intervals; wet: the intervals with rain)")
    for col in ("board", "kind", "avg uA") + charge_split.CATEGORIES:
        split.add_column(col, justify="right")
    other_lines = []
    for s in results:
        for label, sp in ((s["kind"], s["charge_split_ua"]), (s["kind"] + " wet", s["charge_split_rain_ua"])):
            if sp is not None:
                split.add_row(s["board"], label, f"{sp['total']:.1f}", *(f"{sp[c]:.1f}" for c in charge_split.CATEGORIES))
        other_lines.append(f"  other, {s['board']} {s['kind']}: " + ", ".join(
            f"{k} {v:.2f}" for k, v in s["charge_split_ua"]["other_detail"].items() if v >= 0.005))
        table.add_row(s["board"], s["kind"], f"{s['heap_cycle_kb']:.1f}", f"{s['cpu_active_ms']:.0f}",
                      f"{s['wake_to_sleep_ms']:.0f}",
                      f"{s['light_sleep_ms']:.0f}", f"{s['airtime_ms']:.0f}", f"{s['avg_current_ua']:.1f}",
                      "-" if s["avg_current_rain_ua"] is None else f"{s['avg_current_rain_ua']:.1f}",
                      f"{s['life_days_3000mah']:.0f}")
    console.print(table)
    console.print(split)
    for ln in other_lines:
        console.print(ln)
    console.print("CPU-active = boot.py to sleep, active CPU states, as measured in the emulator (the budget); "
                  "wake-to-sleep adds the board's boot_ms estimate for ROM, bootloader and interpreter start "
                  "(stock MicroPython: ~300 ms, see boards/*.toml), which the current figures include. "
                  "Light sleep (PMS5003 warm-up, TX wait, ACK window, conversions) is counted apart. "
                  "heap/cycle = bytes one cycle allocates (upper bound of its live heap); the compiled "
                  "modules add the 'code' figure above unless frozen into the firmware image.")
    console.print(charge_split.describe() + " They add up to avg uA.")
    if not (gateway or confirmed) and (loss is not None or distance_m is not None):
        console.print("note: no gateway in the loop, nothing listens: loss and distance change no figure of an "
                      "unconfirmed node (add --gateway to let the gateway ACK and set its link).")
    budgets = {
        "heap_per_cycle_le_40kb": all(s["heap_cycle_kb"] <= BUDGET_HEAP_KB for s in results),
        "cpu_le_400ms": all(s["cpu_active_ms"] <= BUDGET_CPU_MS for s in results),
        "rfm95_rain_water_le_60ua": all(s["avg_current_ua"] <= BUDGET_UA for s in results
                                        if s["board"] == "esp32-rfm95" and s["kind"] in ("rain", "water")),
    }
    for k, ok in budgets.items():
        console.print(f"budget {k}: {'met' if ok else 'NOT MET'}")
    console.print(f"wall time {time.monotonic() - t0:.1f} s")
    summary = {"interval_s": INTERVAL_S, "link": {"sf": sf or 9, "confirmed": bool(confirmed), "loss_percent": loss,
                                                   "distance_m": distance_m, "gateway": bool(gateway or confirmed),
                                                   "batch": batch or 1, "cycles": cycles, "settle_h": settle_h},
               "budgets": budgets,
               "results": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in s.items() if k != "rows"}
                           for s in results]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    run(sys.argv[1:] or None)
