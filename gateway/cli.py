"""`sen gateway …` commands: argument handling and output only; the work is in gateway
modules (replay, recalibrate, rebuild, export, status_data, key_store).

Imports of gateway modules sit inside the commands that use them: `sen gateway keys
list` should not pay for numpy, SQLite and paho-mqtt that `sen gateway run` needs.
"""
import csv
import json
import sys
import time
import tomllib
from pathlib import Path

import click

from sen.errors import SenError

CONFIG_OPT = click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default="gateway.toml",
                          show_default=True, help="gateway.toml")


# attributes every LogRecord has; anything else came in through `extra=` and is data
def setup_logging(level="INFO"):
    from sen.logs import setup  # lazy: CLI start-up
    setup(level)


def _config(path):
    from sen.gateway import config  # lazy: CLI start-up
    return config.load(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def gateway():
    """Gateway operators: run, inspect and replay the gateway."""


@gateway.command()
@CONFIG_OPT
def run(config_path):
    """Receive, verify, store and forward until SIGTERM (which drains cleanly)."""
    from sen.gateway.service import GatewayService  # lazy: CLI start-up

    cfg = _config(config_path)
    setup_logging(cfg.log_level)
    GatewayService(cfg).run()


def _fmt_age(t):
    if t is None:
        return "never"
    s = time.time() - t
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


@gateway.command()
@CONFIG_OPT
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def status(config_path, as_json):
    """Nodes, last seen, RSSI/SNR, battery, counters, outbox depth, forwarder health."""
    from rich.console import Console  # lazy: CLI start-up (rich, and the store below)
    from rich.table import Table  # lazy: CLI start-up

    from sen.gateway.status_data import status_data  # lazy: CLI start-up

    data = status_data(_config(config_path))
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    con = Console()
    con.print(f"[bold]gateway {data['gateway']}[/]: {data['frames']} frames, {data['readings']} readings stored")
    t = Table("node", "last seen", "RSSI", "SNR", "battery V", "counter", "reboots", "lost", "dups", "re-sent",
              "MIC fails", "flags")
    for n in data["nodes"]:
        t.add_row(str(n["node"]), _fmt_age(n["last_seen"]), f"{n['rssi']}", f"{n['snr']}", f"{n['battery']}",
                  f"{n['counter']}", f"{n['reboots']}", f"{n['lost']}", f"{n['duplicates']}", f"{n['resent_samples']}",
                  f"{n['mic_failures']}", f"{n['qflags']}")
    con.print(t)
    t = Table("forwarder", "outbox depth", "sent", "dropped", "last success", "last error")
    for o in data["outbox"]:
        healthy = o["last_error_time"] is None or (o["last_ok"] or 0) > o["last_error_time"]
        t.add_row(o["forwarder"], str(o["depth"]), str(o["sent"]), str(o["dropped"]), _fmt_age(o["last_ok"]),
                  "" if healthy else f"[red]{o['last_error']}[/]")
    con.print(t)
    links = [(n["node"], n["link"]) for n in data["nodes"] if n.get("link")]
    if links:
        t = Table("node", "SF", "commanded SF", "tx back-off dB", "chosen by", "SNR max", "SNR spread", "loss %",
                  title="link (ADR)")
        for node, k in links:
            pinned = f" (pinned {k['pinned_sf']})" if k["pinned_sf"] else ""
            t.add_row(str(node), str(k["sf"]), f"{k['commanded_sf'] or '-'}{pinned}", str(k["tx_backoff_db"] or 0),
                      k.get("source") or "-", str(k["snr_max"]), str(k["snr_spread_db"]), str(k["loss_pct"]))
        con.print(t)
    if data["node_config"]:
        t = Table("node", "pending config (sent in every ACK)", "since", "last applied config", "applied", "evidence")
        for c in data["node_config"]:
            t.add_row(str(c["node"]), json.dumps(c["pending"]) if c["pending"] else "-",
                      _fmt_age(c["pending_since"]) if c["pending"] else "",
                      json.dumps(c["confirmed"]) if c["confirmed"] else "-",
                      _fmt_age(c["confirmed_at"]) if c["confirmed"] else "",
                      json.dumps(c["evidence"]) if c["evidence"] else "")
        con.print(t)
    for c in data["concentrators"]:
        t = Table("gateway EUI", "online", "last PULL_DATA", "rx Sen", "rx LoRaWAN", "bad CRC", "ACKs sent",
                  "TX errors", "duty used", "stat rxnb/rxok/txnb", "position",
                  title=f"concentrator gateways on {c['radio']} ({c['bind']})")
        for g in c["gateways"]:
            n, s = g["counts"], g["stat"] or {}
            errs = ", ".join(f"{k.split(':')[1]} {v}" for k, v in n.items() if k.startswith("tx_error:"))
            t.add_row(g["eui"], "[green]yes[/]" if g["online"] else "[red]no[/]",
                      "never" if g["last_pull_s_ago"] is None else f"{g['last_pull_s_ago']:.0f}s ago",
                      str(n.get("sen", 0)), str(n.get("lorawan", 0)), str(n.get("crc_bad", 0)), str(n.get("tx_ok", 0)),
                      errs or "-", f"{100 * g['duty_cycle_used']:.2f} %",
                      f"{s.get('rxnb', '-')}/{s.get('rxok', '-')}/{s.get('txnb', '-')}",
                      f"{s['lati']}, {s['long']}" if "lati" in s and "long" in s else "-")
        con.print(t)
    if data["calibration"]:
        t = Table("node", "channel", "record", "inputs", "applies", "why")
        for c in data["calibration"]:
            mark = {True: "yes", False: "[red]no[/]", None: "?"}[c["applies"]]
            t.add_row(str(c["node"] or ""), c["channel"] or "", c["record"] or "", ",".join(c.get("inputs") or []),
                      mark, c["reason"])
        con.print(t)
    if data["rejections"]:
        con.print("rejected: " + ", ".join(f"{k} {v}" for k, v in data["rejections"].items()))


@gateway.command()
@click.argument("rawlog", nargs=-1, required=True, type=click.Path(path_type=Path))
@CONFIG_OPT
@click.option("--db", type=click.Path(path_type=Path), help="store to fill (default: the gateway's own store)")
@click.option("--batch", default=2000, show_default=True)
def replay(rawlog, config_path, db, batch):
    """Re-process raw-log frames through verify, decode, calibrate and store.

    RAWLOG is the data directory, the active raw.log (with its rotated raw.log.<offset>
    segments), or any segments; they are replayed in log order. Each log remembers how far
    it got, so a second run continues. Stop the gateway first when replaying into its own store."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # lazy: CLI start-up

    from sen.gateway.replay import Replay, log_families  # lazy: CLI start-up

    logs = log_families(rawlog)
    run = Replay(_config(config_path), logs, db, batch)
    try:
        with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} bytes"),
                      TimeRemainingColumn(), transient=not sys.stderr.isatty()) as prog:
            task = prog.add_task("replay", total=run.total)
            r = run.run(lambda done: prog.update(task, completed=done))
    finally:
        run.close()
    click.echo(f"replayed {r.frames} frames in {r.seconds:.2f}s ({r.frames / r.seconds if r.seconds else 0:.0f} frames/s);"
               f" accepted {r.accepted}, duplicates {r.duplicates}, rejected "
               f"{sum(r.rejections.values())} {json.dumps(r.rejections)}")


@gateway.command()
@CONFIG_OPT
def rebuild(config_path):
    """Rebuild a damaged store from the raw log (the gateway must be stopped).

    The damaged gateway.db is moved aside as gateway.db.damaged-<time>, never deleted."""
    from sen.gateway.lock import DataDirLock  # lazy: CLI start-up
    from sen.gateway.rebuild import rebuild as run_rebuild  # lazy: CLI start-up

    cfg = _config(config_path)
    lock = DataDirLock(cfg.data_dir, "cannot rebuild the store")
    r = run_rebuild(cfg)
    lock.release()
    click.echo(f"rebuilt {cfg.store_path} from {r['records']} raw-log records: {r['accepted']} frames stored, "
               f"{r['duplicates']} duplicates, {r['corrupt_regions_skipped']} corrupt region(s) skipped; damaged store "
               f"kept as {r['damaged_store_moved_to']}; carried over: {', '.join(r['carried_over']) or 'nothing'}")
    click.echo(json.dumps(r))


@gateway.command()
@CONFIG_OPT
@click.option("-o", "--output", type=click.Path(path_type=Path), help="CSV file (default: stdout)")
@click.option("--node", type=int, multiple=True, help="only these nodes")
@click.option("--channel", multiple=True, help="only these channel names")
@click.option("--since", help="ISO time (UTC unless an offset is given)")
@click.option("--until", help="ISO time")
@click.option("--values", type=click.Choice(["raw", "calibrated"]), default="raw", show_default=True)
def export(config_path, output, node, channel, since, until, values):
    """CSV `time,node,channel,value,flags` for the calibration tools (flags = qflags integer)."""
    from sen.gateway.export import HEADER, export_rows  # lazy: CLI start-up

    rows = export_rows(_config(config_path), node, channel, since, until, values)
    out = open(output, "w", newline="") if output else sys.stdout
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(HEADER)
        n = 0
        for row in rows:
            w.writerow(row)
            n += 1
    finally:
        rows.close()
        if output:
            out.close()
    if output:
        click.echo(f"wrote {n} readings to {output}", err=True)


@gateway.command()
@CONFIG_OPT
@click.option("--node", type=int, multiple=True, help="only these nodes")
def recalibrate(config_path, node):
    """Recompute calibrated values of stored readings from their raw values with the current records.

    Only readings whose value changes are rewritten. Every forwarder's cursor is moved back
    to the first changed reading, so the platform receives the corrected values under the
    same idempotent ids: updates, not duplicates.
    """
    from rich.progress import Progress  # lazy: CLI start-up (rich, numpy)

    from sen.gateway.cal_status import problems  # lazy: CLI start-up
    from sen.gateway.recalibrate import recalibrate as run_recalibrate  # lazy: CLI start-up

    cfg = _config(config_path)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = None

        def start(total):
            nonlocal task
            task = progress.add_task("recalibrating", total=total)

        r = run_recalibrate(cfg, node, start, lambda n: progress.advance(task, n))
    if not r.total:
        click.echo("no readings to recalibrate")
        return
    note = f"; {r.touched} more had only their flags or calibration tag updated (not re-sent)" if r.touched else ""
    if r.changed:
        click.echo(f"recalibrated {r.changed} of {r.total} readings with {r.tag}; forwarders re-send from reading "
                   f"{r.first_changed} under the same ids{note}")
    else:
        click.echo(f"recalibrated 0 of {r.total} readings with {r.tag}: no value changed, forwarders not rewound{note}")
    for line in problems(cfg):
        click.echo(f"  {line}")


# --- keys -----------------------------------------------------------------------------
def _key_store(config_path, keys_path, create):
    from sen.gateway.key_store import KeyStore  # lazy: CLI start-up
    if keys_path is None:
        try:
            raw = tomllib.loads(Path(config_path).read_text())
        except FileNotFoundError:
            raise SenError(f"config file {config_path} does not exist", "pass -c gateway.toml or --keys FILE") from None
        except tomllib.TOMLDecodeError as exc:
            raise SenError(f"{config_path} is not valid TOML ({exc})", "fix the syntax at the position shown") from None
        f = raw.get("keys", {}).get("file")
        if not f:
            raise SenError(f"{config_path}: keys.file is missing", "add [keys] file = \"keys.json\"")
        keys_path = Path(config_path).parent / f
    return KeyStore(keys_path, create=create)


KEYS_OPT = click.option("--keys", "keys_path", type=click.Path(path_type=Path), help="key file (instead of -c)")


def _forget_counters(config_path, node_id):
    """Rotation means a re-provisioned node: its counters start again."""
    try:
        cfg = _config(config_path)
    except SenError:
        return
    if cfg.store_path.exists():
        from sen.gateway.store import Store  # lazy: CLI start-up
        s = Store(cfg.store_path)
        s.reset_node(node_id)
        s.close()


@gateway.group()
def keys():
    """Node keys: add, rotate, revoke, import, list."""


@keys.command("add")
@click.argument("node_id", type=int)
@click.option("--key", "key_hex", help="32 hex digits (default: a new random key)")
@CONFIG_OPT
@KEYS_OPT
def keys_add(node_id, key_hex, config_path, keys_path):
    from sen.gateway.key_store import parse_key, parse_node_id  # lazy: CLI start-up
    node_id = parse_node_id(node_id, "NODE_ID")
    key = parse_key(key_hex, "--key") if key_hex else None
    key = _key_store(config_path, keys_path, True).add(node_id, key)
    click.echo(f"node {node_id} key {key.hex()}")


@keys.command("rotate")
@click.argument("node_id", type=int)
@click.option("--key", "key_hex", help="32 hex digits (default: a new random key)")
@CONFIG_OPT
@KEYS_OPT
def keys_rotate(node_id, key_hex, config_path, keys_path):
    """New key for a node and a fresh counter state (for a re-provisioned node)."""
    from sen.gateway.key_store import parse_key  # lazy: CLI start-up
    key = parse_key(key_hex, "--key") if key_hex else None
    key = _key_store(config_path, keys_path, False).rotate(node_id, key)
    _forget_counters(config_path, node_id)
    click.echo(f"node {node_id} key {key.hex()} (counter state cleared)")


@keys.command("revoke")
@click.argument("node_id", type=int)
@CONFIG_OPT
@KEYS_OPT
def keys_revoke(node_id, config_path, keys_path):
    _key_store(config_path, keys_path, False).revoke(node_id)
    click.echo(f"node {node_id} revoked: its frames are now rejected as unknown_node")


@keys.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@CONFIG_OPT
@KEYS_OPT
def keys_import(file, config_path, keys_path):
    """Import `node_id key_hex` lines or a JSON {node_id: key_hex} file."""
    n = _key_store(config_path, keys_path, True).import_file(file)
    click.echo(f"imported {n} keys")


@keys.command("list")
@CONFIG_OPT
@KEYS_OPT
@click.option("--show-keys", is_flag=True, help="print the secret keys too")
def keys_list(config_path, keys_path, show_keys):
    for node, e in _key_store(config_path, keys_path, False).entries().items():
        click.echo(f"{node}\t{e['status']}\t{e['key'] if show_keys else e['key'][:4] + '…'}")


def _sf_pin(sf: str | None) -> int | None:
    """--sf: 7..12, or auto (no pin)."""
    if sf is None or sf.strip().lower() == "auto":
        return None
    if not sf.strip().isdigit() or not 7 <= int(sf) <= 12:
        raise SenError(f"--sf {sf!r} is not a spreading factor", "use 7..12, or auto to let ADR choose")
    return int(sf)


@gateway.command("node-config")
@click.argument("node_id", type=int)
@CONFIG_OPT
@click.option("--interval-s", type=int, help="reporting interval, 60..86400 s")
@click.option("--confirmed/--unconfirmed", default=None, help="ask for ACKs")
@click.option("--calibration-mode/--no-calibration-mode", default=None)
@click.option("--ack-every", type=int, help="a confirmed node asks for an ACK on every Nth frame, 1..16")
@click.option("--sf", "sf", help="pin the node's spreading factor, 7..12 (ADR keeps its TX power); auto = unpin")
@click.option("--clear", is_flag=True, help="drop the pending change")
def node_config(node_id, config_path, interval_s, confirmed, calibration_mode, ack_every, sf, clear):
    """Queue a config change for a node; it rides on the ACK of its next confirmed uplinks."""
    from sen.gateway.downlink_encode import _config_map  # lazy: CLI start-up
    from sen.gateway.key_store import parse_node_id  # lazy: CLI start-up
    from sen.gateway.store import Store  # lazy: CLI start-up

    node_id = parse_node_id(node_id, "NODE_ID")
    cfg = _config(config_path)
    store = Store(cfg.store_path)
    try:
        if clear:
            store.clear_pending_config(node_id)
            click.echo(f"node {node_id}: pending config cleared")
            return
        pin = _sf_pin(sf)
        change = {k: v for k, v in (("interval_s", interval_s), ("confirmed", confirmed),
                                    ("calibration_mode", calibration_mode), ("ack_every", ack_every)) if v is not None}
        if not change and sf is None:
            raise SenError("no change given",
                           "pass --interval-s, --confirmed/--unconfirmed, --calibration-mode, --ack-every or --sf")
        if sf is not None:
            from sen.gateway.link_history import LinkHistory  # lazy: CLI start-up
            LinkHistory(store.con).set_pin(node_id, pin)
            click.echo(f"node {node_id}: " + (f"SF pinned to {pin} (sent with every ACK; ADR adapts its TX power)"
                                              if pin else "SF pin removed: ADR chooses the SF"))
            if not change:
                return
        try:
            _config_map(change)
        except ValueError as exc:
            raise SenError(str(exc), "see `sen gateway node-config --help`") from None
        store.set_pending_config(node_id, change)
        click.echo(f"node {node_id}: pending {json.dumps(change)} (sent with the ACK of every confirmed uplink until "
                   "an uplink shows it applied; see `sen gateway status`)")
    finally:
        store.close()
