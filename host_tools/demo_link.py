"""`sen demo`'s link and energy figures: per node, where the charge went (sleep, boot, CPU,
TX, RX, other; bench/charge_split.py says what each holds) and which spreading factor and TX
power the node used over the day (from the radio medium's frame records; the gateway's ADR
moves them), next to its delivery. Written into summary.json ("charge_split", "sf_history"),
the HTML report (a table and an SF-over-time plot) and the console summary.
"""
import html

from sen.bench import charge_split
from sen.bench.sf_history import json_ready, sf_history, steps
from sen.emulator.board_def import load_board
from sen.emulator.board_signals import DEEPSLEEP_RESET


def steady_cycles(cycles):
    """The cycles the demo's average_current_ua is over: complete deep-sleep wakes."""
    return [c for c in cycles[:-1] if c.get("reset_cause") == DEEPSLEEP_RESET and c.get("end_us")]


def charge_splits(report_boards, nodes):
    """Per node: the average current split (µA) over the steady-state cycles (the budget's
    figure, average_current_ua) and over the whole run (average_current_ua_run)."""
    out = []
    for n, b in zip(nodes, report_boards):
        table = load_board(b["board_id"])["current_ma"]
        cyc = b["cycles"]
        out.append({"node": n["name"], "board_id": b["board_id"],
                    "steady_ua": charge_split.rounded(charge_split.average_ua(steady_cycles(cyc), table)),
                    "run_ua": charge_split.rounded(charge_split.average_ua(cyc, table))})
    return out


def sf_histories(frames, nodes):
    """Per node name: SF and TX power over the run, frames and time on air per SF."""
    hist = json_ready(sf_history(frames, senders=[n["name"] for n in nodes]))
    return {n["name"]: hist[n["name"]] for n in nodes if n["name"] in hist}


def link_rows(summary):
    """One row per node: SF use next to delivery (for the table in the report)."""
    dl = {d["node"]: d for d in summary.get("delivery", [])}
    rows = []
    for name, h in summary.get("sf_history", {}).items():
        d = dl.get(name, {})
        rows.append({"node": name, "mode": d.get("mode"),
                     "SF changes (h, SF, dBm)": "; ".join(f"{c[0]:g} h SF{c[1]} {c[2]:g} dBm" if c[2] is not None
                                                          else f"{c[0]:g} h SF{c[1]}" for c in h["changes"]),
                     "frames per SF": ", ".join(f"SF{k}: {v}" for k, v in h["frames_per_sf"].items()),
                     "time on air per SF (s)": ", ".join(f"SF{k}: {v:.1f}" for k, v in h["airtime_s_per_sf"].items()),
                     "frames stored %": d.get("frames_stored_pct"),
                     "samples stored/cycles": f"{d.get('samples_stored')}/{d.get('sampling_cycles')}"})
    return rows


def split_rows(summary):
    rows = []
    for s in summary.get("charge_split", []):
        sp = s["steady_ua"]
        if sp is None:
            continue
        rows.append({"node": s["node"], "avg µA": sp["total"], **{c: sp[c] for c in charge_split.CATEGORIES},
                     "other holds": ", ".join(f"{k} {v:g}" for k, v in sp["other_detail"].items() if v >= 0.01),
                     "avg µA whole run": s["run_ua"]["total"] if s["run_ua"] else None})
    return rows


def sf_plot(summary):
    """An SVG step plot of each node's SF over the run (the demo report's style)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sen.host_tools.demo_report import _svg

    hist = summary.get("sf_history") or {}
    if not hist:
        return ""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    for i, (name, h) in enumerate(sorted(hist.items())):
        xs, ys = steps(h["changes"], summary["hours"])
        ax.plot(xs, [y + 0.06 * (i - len(hist) / 2) for y in ys], "-", lw=1.6, label=name)  # offset: no overlap
    ax.set_ylim(6.5, 12.5)
    ax.set_yticks(range(7, 13))
    ax.set_title("Spreading factor per node (frames on air)", fontsize=10)
    ax.set_xlabel("hours after start")
    ax.set_ylabel("SF")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def html_sections(summary, table):
    """HTML for the report: the charge split and the SF history with delivery (table: the
    report's table renderer)."""
    return ["<h2>Where the charge goes (average current, µA, steady-state cycles)</h2>",
            f"<p>{html.escape(charge_split.describe())}</p>", table(split_rows(summary)),
            "<h2>Spreading factor, TX power and delivery per node</h2>", table(link_rows(summary)),
            f"<div>{sf_plot(summary)}</div>"]


def print_tables(console, summary):
    from rich.table import Table
    t = Table(title="average current split, µA (steady-state cycles)")
    for c in ("node", "avg µA") + charge_split.CATEGORIES:
        t.add_column(c, justify="right")
    for r in split_rows(summary):
        t.add_row(r["node"], f"{r['avg µA']:.1f}", *(f"{r[c]:.1f}" for c in charge_split.CATEGORIES))
    console.print(t)
    console.print(charge_split.describe())
    t = Table(title="spreading factor per node")
    for c in ("node", "SF changes (h, SF, dBm)", "frames per SF", "frames stored %"):
        t.add_column(c)
    for r in link_rows(summary):
        t.add_row(r["node"], r["SF changes (h, SF, dBm)"], r["frames per SF"], str(r["frames stored %"]))
    console.print(t)
