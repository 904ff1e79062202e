"""`sen emulate --report FILE`: per board and per cycle, what the firmware cost.

The JSON file holds, for each board: every cycle (boot to next boot) with its reset cause,
wake reason, peak MicroPython heap (live heap after gc.collect(), reported by the shims at
each sleep point; firmware_heap subtracts the runtime's own baseline when the runner
reported it with _board.mark_baseline()), time in each power state (ms; MCU states and radio/PMS/sensor loads), awake time,
charge (mAh, from the board's [current_ma] table), frames sent and their time on air, and
the CPU time charged; then totals and the average current. A short text summary goes to
FILE with .txt appended (and is returned).
"""
import json
from pathlib import Path

CELL_MAH = 3000.0


def firmware_active_ms(cycle):
    """CPU-active time of one cycle that the firmware is answerable for, as issue 4's budget
    counts it: from boot.py to sleep, every active CPU state (code, busy waits, UART and I2C
    transfers), light sleep apart. The ROM, bootloader and interpreter start-up before
    boot.py is not run by the emulator: it is the board table's boot_ms estimate, part of
    awake_ms (wake-to-sleep) and of the charge, and is shown apart."""
    return cycle["awake_ms"] - cycle.get("boot_ms", 0.0)


def build_report(boards, clock=None):
    out = {"virtual_time_s": clock.now_s() if clock is not None else None, "boards": []}
    for b in boards:
        out["boards"].append(b.report())
    return out


def summary(report):
    lines = []
    for b in report["boards"]:
        cyc = b["cycles"]
        lines.append("%s (%s): %d cycles, %.1f s virtual" % (b["board"], b["board_id"], len(cyc), b["total_time_s"]))
        if not cyc:
            continue
        heaps = [c["peak_heap"] for c in cyc if c["peak_heap"] is not None]
        fw = [c["firmware_heap"] for c in cyc if c.get("firmware_heap") is not None]
        awake = [c["awake_ms"] for c in cyc]
        frames = sum(c["frames"] for c in cyc)
        air = sum(c["airtime_ms"] for c in cyc)
        lines.append("  peak live heap %s B (firmware above the runtime baseline: %s B); awake per cycle mean %.1f ms, max %.1f ms"
                     % (max(heaps) if heaps else "n/a", max(fw) if fw else "n/a", sum(awake) / len(awake), max(awake)))
        lines.append("  frames %d, time on air %.1f ms; charge %.4f mAh" % (frames, air, b["total_charge_mah"]))
        avg = b["average_current_ma"]
        if avg:
            lines.append("  average current %.4f mA -> %.0f days on a %d mAh cell"
                         % (avg, CELL_MAH / avg / 24.0, CELL_MAH))
    return "\n".join(lines) + "\n"


def write_report(path, boards, clock=None):
    rep = build_report(boards, clock)
    path = Path(path)
    path.write_text(json.dumps(rep, indent=1, sort_keys=True))
    text = summary(rep)
    Path(str(path) + ".txt").write_text(text)
    return text
