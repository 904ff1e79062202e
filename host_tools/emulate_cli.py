"""`sen emulate …`: emulated boards on ptys, for mpremote and pytest-embedded.

It lives in the host tools because --gateway runs the real gateway beside the boards: the
emulator itself does not import the gateway."""
import importlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from sen.errors import SenError


def _board_host():
    """emulator/board.py, or a test's stand-in named by SEN_EMULATOR_BOARD=module."""
    name = os.environ.get("SEN_EMULATOR_BOARD", "sen.emulator.board")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name not in (name, name.rsplit(".", 1)[0]):
            raise
        return None


def _fs_roots(flash, count):
    """One directory per board. --flash DIR persists; otherwise a temp dir, removed at exit."""
    if flash is None:
        tmp = tempfile.mkdtemp(prefix="sen-emulate-")
        roots = [Path(tmp) / f"board{i}" for i in range(count)]
    else:
        tmp = None
        base = Path(flash)
        if base.exists() and not base.is_dir():
            raise SenError(f"--flash {flash} is not a directory", "give a directory (it is created if missing)")
        roots = [base] if count == 1 else [base / f"board{i}" for i in range(count)]
    for r in roots:
        r.mkdir(parents=True, exist_ok=True)
    return roots, tmp


def _print_boards():
    from sen.emulator.board_def import list_boards, load_board  # lazy: CLI start-up
    for b in list_boards():
        try:
            name = load_board(b).get("name", "")
        except SenError as e:
            name = f"(invalid: {e.problem})"
        click.echo(f"{b}\t{name}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--board", help="Board id from boards/, e.g. ttgo-lora32-v21 (see --list).")
@click.option("--list", "list_boards", is_flag=True, help="List the boards and exit.")
@click.option("--scenario", type=click.Path(dir_okay=False), help="World scenario file (TOML).")
@click.option("--flash", type=click.Path(file_okay=False), help="Keep each board's flash filesystem in this directory (persists across runs).")
@click.option("--count", default=1, show_default=True, help="Number of boards (one port each).")
@click.option("--speed", default="max", show_default=True, help="Virtual time per wall time: a number (1 = real time) or `max`.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the run report (heap, power states, charge, frames) here at exit.")
@click.option("--gateway", "gateway_config", type=click.Path(dir_okay=False, path_type=Path),
              help="Also run the gateway of this gateway.toml on the scenario's radio medium (backend = \"emulated\", or \"semtech_udp\" with concentrator [[gateway]] sites at --speed 1).")
@click.option("--log-level", default="WARNING", show_default=True, help="Host log level (stderr).")
@click.option("--stop-after", "stop_after_s", type=float, default=None, metavar="SECONDS",
              help="Stop after this much virtual time (then write --report and exit 0).")
def emulate(board, list_boards, scenario, flash, count, speed, report, log_level, gateway_config=None,
            stop_after_s=None):
    """Run emulated boards. Prints `PORT /dev/pts/N` per board, then serves until SIGINT/SIGTERM."""
    from sen.logs import setup  # lazy: CLI start-up
    setup(getattr(logging, str(log_level).upper(), logging.WARNING))
    if list_boards:
        _print_boards()
        return
    from sen.emulator.board_def import list_boards as known, load_board  # lazy: CLI start-up
    if not board:
        raise SenError("no board given", f"pass --board with one of: {', '.join(known())}")
    board_def = load_board(board)
    if count < 1 or count > 64:
        raise SenError(f"--count {count} is out of range", "give 1 to 64 boards")
    from sen.emulator.bridge import Bridge, default_shim_dirs, parse_speed  # lazy: CLI start-up
    from sen.emulator.clock import VirtualClock  # lazy: CLI start-up
    from sen.emulator.node_process import find_micropython_mjs, find_node  # lazy: CLI start-up
    from sen.emulator.session import BoardSession  # lazy: CLI start-up
    speed_v = parse_speed(speed)
    if stop_after_s is not None and not stop_after_s > 0:
        raise SenError(f"--stop-after {stop_after_s:g} is not a duration", "give a positive number of seconds")
    find_node(), find_micropython_mjs()
    host = _board_host()
    if scenario is not None and not Path(scenario).is_file():
        raise SenError(f"scenario file {scenario} not found", "give the path of a scenario TOML file")
    if scenario is not None and (host is None or not hasattr(host, "load_world")):
        raise SenError("this build cannot load world scenarios (no board host)", "run without --scenario")
    if report is not None and (host is None or not hasattr(host, "write_report")):
        raise SenError("this build cannot write run reports (no board host)", "run without --report")
    clock = VirtualClock()
    world = host.load_world(scenario, clock) if host is not None and hasattr(host, "load_world") else None
    roots, tmp = _fs_roots(flash, count)
    heap = int(board_def.get("heap_kb", 160)) * 1024
    fs_bytes = max(1 << 20, int(board_def.get("flash_kb", 4096)) * 1024 - (2 << 20))
    from sen.emulator.shim_cache import compile_shims  # lazy: CLI start-up
    shim_dirs = default_shim_dirs()
    cache = compile_shims(shim_dirs)
    sessions, boards = [], []
    try:
        for i in range(count):
            bd = dict(board_def, _index=i, _name=f"{board_def.get('id', board)}#{i}")
            b = host.Board(bd, world, clock, str(roots[i])) if host is not None else None
            boards.append(b)
            sessions.append(BoardSession(
                name=bd["_name"], board_name=board_def.get("name", board), board=b, clock=clock,
                fs_root=roots[i], shim_dirs=shim_dirs, shim_cache=cache, heap_bytes=heap, fs_bytes=fs_bytes))
        gw = None
        if gateway_config is not None:
            # only --gateway pays for importing the gateway service and its forwarders
            from sen.host_tools.emulated_gateway import start_gateway  # lazy: CLI start-up
            gw = start_gateway(gateway_config, world, clock)
        for s in sessions:
            click.echo(f"PORT {s.port.path}")
        sys.stdout.flush()
        click.echo(f"sen emulate: {count} x {board_def.get('id', board)} at --speed {speed}"
                   f"{'' if flash is None else f', flash in {flash}'}; SIGINT/SIGTERM stops", err=True)
        bridge = Bridge(sessions, clock, speed_v, hold=gw[0].pending if gw is not None else None,
                        end_us=None if stop_after_s is None else int(stop_after_s * 1e6))
        try:
            bridge.run()
        finally:
            if gw is not None:
                from sen.host_tools.emulated_gateway import stop_gateway  # lazy: CLI start-up
                stop_gateway(*gw)
            bridge.close()
            for b in boards:
                if b is not None and hasattr(b, "close"):
                    b.close()
            if report is not None:
                host.write_report(report, boards, clock)
    finally:
        for s in sessions:
            s.port.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
