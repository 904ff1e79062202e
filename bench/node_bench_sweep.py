"""`sen bench node --sf-sweep`: the esp32-rfm95 rain and water nodes at SF7..SF12.

Each SF is a full bench run of the node (real firmware, emulated board) with node.json's
radio.sf set; the average current is over the dry reporting intervals as in `sen bench
node`. The budget "an unconfirmed node within 2 km draws <= 40 µA" is read at the SF an
ADR keeping a 10 dB SNR margin would choose at 2 km in the bench world's link model
(bench/node_bench_link.py adr_sf_at); the SF the gateway's own ADR picks may differ, and
the whole row is printed so it can be read at any SF.
"""
import json
import time

from sen.bench import node_bench as nb
from sen.bench import node_bench_link as link

BOARD = "esp32-rfm95"
KINDS = ("water", "rain")
BUDGET_2KM_UA = 40.0
BUDGET_DISTANCE_M = 2000.0


def run_sweep(boards=None, cycles=nb.CYCLES, confirmed=False, loss=None, distance_m=None, gateway=False, sfs=link.SFS):
    from rich.console import Console
    from rich.table import Table
    from sen.bench.charge_split import CATEGORIES
    from sen.emulator.board_def import load_board
    from sen.emulator.scenario import load_scenario
    console = Console()
    board = (boards or [BOARD])[0]
    bd = load_board(board)
    t0 = time.monotonic()
    rows = []
    for sf in sfs:
        row = {"sf": sf}
        for k in KINDS:
            recs, log = nb.run_one(board, k, cycles + (3 if k == "rain" else 0), sf=sf, confirmed=confirmed,
                                   loss=loss, distance_m=distance_m, gateway=gateway)
            s = nb.summarize(bd, k, recs)
            if s is None:
                raise RuntimeError(f"{board}/{k} at SF{sf}: no complete cycle ran; log tail:\n{log[-2000:]}")
            row[f"{k}_ua"] = round(s["avg_current_ua"], 2)
            row[f"{k}_airtime_ms"] = round(s["airtime_ms"], 1)
            row[f"{k}_split_ua"] = s["charge_split_ua"]
        rows.append(row)
        console.print(f"SF{sf}: water {row['water_ua']:.2f} uA (on air {row['water_airtime_ms']:.0f} ms), "
                      f"rain {row['rain_ua']:.2f} uA (on air {row['rain_airtime_ms']:.0f} ms)")
    table = Table(title=f"{board} average current by SF ({nb.INTERVAL_S // 60}-min interval, "
                        f"{'confirmed' if confirmed else 'unconfirmed'})")
    for c in ("SF", "water uA", "water on air ms", "rain uA", "rain on air ms",
              *(f"water uA {c}" for c in ("tx", "cpu", "boot", "sleep"))):
        table.add_column(c, justify="right")
    for r in rows:
        sp = r["water_split_ua"]
        table.add_row(str(r["sf"]), f"{r['water_ua']:.2f}", f"{r['water_airtime_ms']:.0f}", f"{r['rain_ua']:.2f}",
                      f"{r['rain_airtime_ms']:.0f}", *(f"{sp[c]:.1f}" for c in ("tx", "cpu", "boot", "sleep")))
    console.print(table)
    world = load_scenario(nb.WORLD)
    budget = {}
    for k in KINDS:
        snr, sf = link.adr_sf_at(world, nb.STATIONS[k], BUDGET_DISTANCE_M)
        r = next((x for x in rows if x["sf"] == sf), None)
        ua = r[f"{k}_ua"] if r else None
        budget[k] = {"snr_db_at_2km": round(snr, 1), "adr_sf_at_2km": sf, "avg_current_ua": ua,
                     "met": ua is not None and ua <= BUDGET_2KM_UA}
        console.print(f"{k}: mean SNR at {BUDGET_DISTANCE_M:g} m in the bench world's link model {snr:.1f} dB -> "
                      f"SF{sf} with a {link.ADR_MARGIN_DB:g} dB margin: {ua} uA, budget <= {BUDGET_2KM_UA:g} uA "
                      f"{'met' if budget[k]['met'] else 'NOT MET'}")
    console.print(f"wall time {time.monotonic() - t0:.1f} s")
    out = {"interval_s": nb.INTERVAL_S, "board": board, "sf_sweep": [{k: v for k, v in r.items()} for r in rows],
           "budget_unconfirmed_within_2km_le_40ua": budget,
           "adr_margin_db": link.ADR_MARGIN_DB, "categories": list(CATEGORIES)}
    print(json.dumps(out))
    return out
