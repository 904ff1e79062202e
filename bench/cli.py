"""`sen bench …`: benchmarks. Each prints human-readable figures, then one JSON object as its last line."""
import importlib

import click

from sen.errors import SenError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bench():
    """Benchmarks that measure real work and print their figures (last line JSON)."""


def _run(module: str, **kwargs):
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise SenError(f"benchmark module {module} is missing ({exc.name})", "reinstall with `make setup`") from None
    return mod.run(**kwargs)


@bench.command("frame")
def frame_cmd():
    """Bytes and time on air: Sen frames versus LoRaWAN + Cayenne LPP."""
    _run("sen.bench.frame_size")


@bench.command("cal")
def cal_cmd():
    """Calibration fits: 1,000 co-location sets of 30 days of hourly data (EPA form)."""
    _run("sen.bench.cal_bench")


@bench.command("status-page")
def status_page_cmd():
    """Status page under load: server time per page with 10,000 readings per channel."""
    _run("sen.bench.status_page_bench")


@bench.command("cpu-model")
def cpu_model_cmd():
    """The emulator's CPU time measure (counted work) against published ESP32 pystone figures."""
    _run("sen.bench.cpu_model")


def _number(name, text, conv, lo, hi):
    try:
        v = conv(str(text).strip())
    except ValueError:
        raise SenError(f"{name} {text!r} is not a number", f"give {lo}..{hi}") from None
    if not lo <= v <= hi:
        raise SenError(f"{name} {text!r} is out of range", f"give {lo}..{hi}")
    return v


@bench.command("node")
@click.option("--sf", metavar="7..12", default=None, help="Spreading factor (node.json radio.sf; default the firmware's, 9).")
@click.option("--confirmed", is_flag=True, help="Confirmed mode; the real gateway runs in the loop to ACK.")
@click.option("--loss", metavar="PCT", default=None, help="Radio loss on every link, percent (bench world: 0).")
@click.option("--distance-m", metavar="M", default=None, help="Each station's distance from the gateway (bench world: 600-800 m).")
@click.option("--gateway", is_flag=True, help="Run the real gateway in the loop also for unconfirmed nodes (its link settings apply).")
@click.option("--sf-sweep", is_flag=True, help="esp32-rfm95 rain and water average current at SF7..SF12 instead.")
@click.option("--batch", metavar="1..4", default=None, help="node.json batch: samples per frame while the link is good.")
@click.option("--cycles", metavar="N", default="4", show_default=True, help="Reporting intervals to run (1..200).")
@click.option("--settle-h", metavar="H", default="0", help="Leave the first H hours out of the averages.")
@click.option("--board", "boards", multiple=True, help="Only this board (repeatable; default every board).")
@click.option("--kind", "kinds", multiple=True, help="Only this kind: air, water or rain (repeatable).")
def node_cmd(sf, confirmed, loss, distance_m, gateway, sf_sweep, batch, cycles, settle_h, boards, kinds):
    """Each node kind on each board in the emulator: heap, CPU-active time, airtime, current (split by
    sleep, boot, CPU, TX, RX, other), life, SF used."""
    from sen.bench.node_bench_link import parse_options
    sf, loss, distance_m = parse_options(sf, loss, distance_m)
    if sf_sweep and sf is not None:
        raise SenError("--sf-sweep runs every SF: leave out --sf", "give one of --sf N or --sf-sweep")
    from sen.emulator.board_def import list_boards
    batch = None if batch is None else _number("--batch", batch, int, 1, 4)
    cycles = _number("--cycles", cycles, int, 1, 200)
    settle_h = _number("--settle-h", settle_h, float, 0, 48)
    bad_kind = [k for k in kinds if k not in ("air", "water", "rain")]
    if bad_kind:
        raise SenError(f"--kind {bad_kind[0]!r} is not a node kind", "give air, water or rain")
    unknown = [b for b in boards if b not in list_boards()]
    if unknown:
        raise SenError(f"--board {unknown[0]!r} is not a board definition", "give one of " + ", ".join(list_boards()))
    if settle_h * 3600 >= cycles * 900:
        raise SenError(f"--settle-h {settle_h:g} leaves none of the {cycles} intervals", "run more --cycles or settle less")
    _run("sen.bench.node_bench", sf=sf, confirmed=confirmed, loss=loss, distance_m=distance_m, gateway=gateway,
         sf_sweep=sf_sweep, batch=batch, cycles=cycles, settle_h=settle_h, boards=list(boards) or None,
         kinds=tuple(kinds) or None)


@bench.command("ingest")
def ingest_cmd():
    """Central ingest: readings/s with 1 and 2 workers (real mosquitto + PostgreSQL)."""
    _run("sen.bench.ingest_bench")


@bench.command("virtual-time")
def virtual_time_cmd():
    """Wall time for a node on a 15-minute cycle to run 24 simulated hours in the real emulator."""
    from sen.bench.virtual_time import main

    main()


@bench.command("gateway")
@click.option("--frames", type=int, default=100_000, show_default=True, help="Frames for batch replay.")
@click.option("--fuzz", "fuzz_n", type=int, default=0, show_default=True, help="Random and mutated frames to fuzz with.")
@click.option("--kill-test", is_flag=True, help="Also run the kill -9 test (20 kills during a 100,000-frame ingest).")
@click.option("--cost-only", is_flag=True, help="Only the worst-case CPU per serial input (<= 1 MiB) and per frame.")
def gateway_cmd(frames, fuzz_n, kill_test, cost_only):
    """Gateway throughput vs the bare decode+HMAC+SQLite floor, live IRQ->commit p99, worst-case
    cost per input (a small fuzzer; target <= 100 ms CPU), fuzz, kill test."""
    _run("sen.bench.gateway_bench", frames=frames, fuzz_n=fuzz_n, kill_test=kill_test, cost_only=cost_only)


@bench.command("bridge")
def bridge_cmd():
    """Emulator bridge: raw-REPL round trip, shim call cost, soft reset, deep-sleep cycles."""
    _run("sen.bench.bridge_bench")


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a comma-separated list of integers", param_hint=what) from None
    if not out or min(out) < 1:
        raise click.BadParameter("give at least one positive number, e.g. 100,1000", param_hint=what)
    return out


@bench.command("radio")
@click.option("--nodes", default="100,1000,5000", show_default=True, help="Node counts, comma-separated.")
@click.option("--sf", "sfs", default="7,8,9,10", show_default=True, help="Spreading factors, comma-separated.")
@click.option("--hours", type=click.FloatRange(0.05, 48), default=1.0, show_default=True,
              help="Hours of sampling (a 30-minute drain follows).")
@click.option("--seed", type=int, default=1, show_default=True)
def radio_cmd(nodes, sfs, hours, seed):
    """Nodes at a 15-minute interval on one 8-channel concentrator vs one single-channel gateway:
    frame delivery vs pure ALOHA, sample delivery in confirmed mode, gateway downlink duty."""
    sizes, sf_list = _ints(nodes, "--nodes"), _ints(sfs, "--sf")
    if not set(sf_list) <= set(range(7, 13)):
        raise click.BadParameter("spreading factors are 7..12", param_hint="--sf")
    _run("sen.bench.radio_capacity", sizes=sizes, sfs=sf_list, hours=hours, seed=seed)
