"""`sen gateway …` commands."""
import csv
import json
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import click

from sen.errors import SenError

CONFIG_OPT = click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default="gateway.toml",
                          show_default=True, help="gateway.toml")


# attributes every LogRecord has; anything else came in through `extra=` and is data
def setup_logging(level="INFO"):
    from sen.logs import setup
    setup(level)


def _config(path):
    from sen.gateway import config
    return config.load(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def gateway():
    """Gateway operators: run, inspect and replay the gateway."""


@gateway.command()
@CONFIG_OPT
def run(config_path):
    """Receive, verify, store and forward until SIGTERM (which drains cleanly)."""
    from sen.gateway.service import GatewayService

    cfg = _config(config_path)
    setup_logging(cfg.log_level)
    GatewayService(cfg).run()


def _fmt_age(t):
    if t is None:
        return "never"
    s = time.time() - t
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def status_data(cfg) -> dict:
    from sen.gateway.store import connect
    con = connect(cfg.store_path, readonly=True)
    try:
        # a store the upgraded gateway has not opened yet has no resent_samples column
        cols = {r[1] for r in con.execute("PRAGMA table_info(nodes)")}
        resent = "resent_samples" if "resent_samples" in cols else "0"
        nodes = [dict(zip(("node", "last_seen", "rssi", "snr", "battery", "counter", "reboots", "lost", "accepted",
                           "late", "duplicates", "mic_failures", "qflags", "resent_samples"), r)) for r in con.execute(
            "SELECT node_id, last_seen, rssi, snr, battery, last, reboots, lost, accepted, late, duplicates,"
            f" mic_failures, qflags, COALESCE({resent}, 0) FROM nodes ORDER BY node_id")]
        head = con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
        outbox = [dict(zip(("forwarder", "depth", "sent", "dropped", "last_ok", "last_error", "last_error_time"),
                           (n, head - c, s, d, ok, err, et))) for n, c, s, d, ok, err, et in con.execute(
            "SELECT name, cursor, sent, dropped, last_ok, last_error, last_error_time FROM outbox ORDER BY name")]
        rejections = dict(con.execute("SELECT reason, count FROM rejections ORDER BY reason").fetchall())
        frames = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        node_config = _node_config_state(con)
        from sen.gateway.cal_status import record_states
        calibration = record_states(cfg.calibration_dir, con)
    finally:
        con.close()
    concentrators = []
    for rc in cfg.radios:  # written every 2 s by a running semtech_udp backend
        f = cfg.data_dir / f"concentrators-{rc.name}.json"
        if rc.backend == "semtech_udp" and f.is_file():
            try:
                concentrators.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
    return {"gateway": cfg.gateway_id, "frames": frames, "readings": head, "nodes": nodes, "outbox": outbox,
            "rejections": rejections, "node_config": node_config, "calibration": calibration,
            "concentrators": concentrators}


def _node_config_state(con) -> list[dict]:
    """Per node: the change still sent in ACKs, and the last one an uplink showed applied."""
    import sqlite3
    out: dict[int, dict] = {}
    blank = {"pending": None, "pending_since": None, "confirmed": None, "confirmed_at": None,
             "confirmed_counter": None, "evidence": None}
    for n, c, created in con.execute("SELECT node_id, config, created FROM pending_config"):
        out.setdefault(n, dict(blank, node=n)).update(pending=json.loads(c), pending_since=created)
    try:  # a store from before config_confirmed existed has no such table until the gateway runs
        rows = con.execute("SELECT node_id, config, confirmed, counter, evidence FROM config_confirmed").fetchall()
    except sqlite3.OperationalError:
        rows = []
    for n, c, at, counter, ev in rows:
        out.setdefault(n, dict(blank, node=n)).update(confirmed=json.loads(c), confirmed_at=at, confirmed_counter=counter,
                                                      evidence=json.loads(ev) if ev else None)
    return [out[n] for n in sorted(out)]


@gateway.command()
@CONFIG_OPT
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def status(config_path, as_json):
    """Nodes, last seen, RSSI/SNR, battery, counters, outbox depth, forwarder health."""
    from rich.console import Console
    from rich.table import Table

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
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from sen.gateway.calibrate import Calibrator
    from sen.gateway.key_store import KeyStore
    from sen.gateway.pipeline import Pipeline
    from sen.gateway.raw_log import iter_records, segments
    from sen.gateway.store import Store

    logs: dict[Path, dict[Path, int]] = {}  # log (its active path) -> {segment: base}
    for p in rawlog:
        if not p.exists():
            raise SenError(f"raw log {p} does not exist", "give the gateway's data directory, its raw.log or segments")
        if p.is_file() and p.name.rsplit(".", 1)[-1].isdigit():
            family = p.with_name(p.name.rsplit(".", 1)[0])
        else:
            family = p / "raw.log" if p.is_dir() else p
        logs.setdefault(family.resolve(), {}).update({seg.resolve(): base for base, seg in segments(p)})
    from sen.gateway.lock import DataDirLock

    cfg = _config(config_path)
    # a store a running gateway writes: its counter state would race ours (false MIC failures)
    lock = DataDirLock(Path(db).parent if db else cfg.data_dir, "cannot replay into its store")
    store = Store(db or cfg.store_path)
    pipe = Pipeline(store, KeyStore(cfg.key_file), Calibrator(cfg.calibration_dir))
    plan = []  # (cursor key, start, [(base, segment)])
    for family, segs in logs.items():
        key = f"replay:{family}"
        start = store.raw_offset(key)
        plan.append((key, start, sorted((b, s) for s, b in segs.items())))
    total = sum(max(0, s.stat().st_size - max(0, start - b)) for _, start, segs in plan for b, s in segs
                if b + s.stat().st_size > start)
    t0 = time.perf_counter()
    n, done = 0, 0
    totals = {}
    with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} bytes"),
                  TimeRemainingColumn(), transient=not sys.stderr.isatty()) as prog:
        task = prog.add_task("replay", total=total)
        for key, start, segs in plan:
            pipe.cursor_key = key
            for base, seg in segs:
                if base + seg.stat().st_size <= start:
                    continue
                local0 = max(0, start - base)
                chunk = []
                for a, b, f, m in iter_records(seg, local0):
                    chunk.append((base + a, base + b, f, m))
                    if len(chunk) >= batch:
                        res = pipe.process(chunk)
                        n += len(chunk)
                        prog.update(task, completed=done + b - local0)
                        chunk = []
                        for k, v in res.rejections.items():
                            totals[k] = totals.get(k, 0) + v
                if chunk:
                    res = pipe.process(chunk)
                    n += len(chunk)
                    for k, v in res.rejections.items():
                        totals[k] = totals.get(k, 0) + v
                done += seg.stat().st_size - local0
                prog.update(task, completed=done)
    dt = time.perf_counter() - t0
    click.echo(f"replayed {n} frames in {dt:.2f}s ({n / dt if dt else 0:.0f} frames/s); accepted "
               f"{pipe.totals['accepted']}, duplicates {pipe.totals['duplicates']}, rejected "
               f"{sum(totals.values())} {json.dumps(totals)}")
    store.close()
    lock.release()


@gateway.command()
@CONFIG_OPT
def rebuild(config_path):
    """Rebuild a damaged store from the raw log (the gateway must be stopped).

    The damaged gateway.db is moved aside as gateway.db.damaged-<time>, never deleted."""
    from sen.gateway.rebuild import rebuild as run_rebuild

    from sen.gateway.lock import DataDirLock

    cfg = _config(config_path)
    lock = DataDirLock(cfg.data_dir, "cannot rebuild the store")
    r = run_rebuild(cfg)
    lock.release()
    click.echo(f"rebuilt {cfg.store_path} from {r['records']} raw-log records: {r['accepted']} frames stored, "
               f"{r['duplicates']} duplicates, {r['corrupt_regions_skipped']} corrupt region(s) skipped; damaged store "
               f"kept as {r['damaged_store_moved_to']}; carried over: {', '.join(r['carried_over']) or 'nothing'}")
    click.echo(json.dumps(r))


def _parse_time(text, opt):
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise SenError(f"{opt} {text!r} is not an ISO date/time", f"e.g. {opt} 2026-11-01T00:00:00+07:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


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
    from sen.channels import BY_ID, BY_NAME
    from sen.gateway.store import connect

    cfg = _config(config_path)
    for c in channel:
        if c not in BY_NAME:
            raise SenError(f"--channel {c} is unknown", f"use channel names such as {', '.join(list(BY_NAME)[:6])}")
    where, args = ["1"], []
    if node:
        where.append(f"node_id IN ({','.join('?' * len(node))})")
        args += node
    if channel:
        where.append(f"channel IN ({','.join('?' * len(channel))})")
        args += [BY_NAME[c].id for c in channel]
    for opt, val, op in (("--since", since, ">="), ("--until", until, "<")):
        t = _parse_time(val, opt)
        if t is not None:
            where.append(f"time {op} ?")
            args.append(t)
    col = "raw" if values == "raw" else "value"
    con = connect(cfg.store_path, readonly=True)
    out = open(output, "w", newline="") if output else sys.stdout
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["time", "node", "channel", "value", "flags"])
        n = 0
        for t, nd, ch, v, q in con.execute(
                f"SELECT time, node_id, channel, {col}, qflags FROM readings WHERE {' AND '.join(where)}"
                " ORDER BY time, node_id, channel", args):
            w.writerow([datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z"), nd,
                        BY_ID[ch].name, "" if v is None else v, q])
            n += 1
    finally:
        if output:
            out.close()
        con.close()
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
    import numpy as np
    from rich.progress import Progress

    from sen.gateway.calibrate import Calibrator
    from sen.gateway.store import connect

    cfg = _config(config_path)
    cal = Calibrator(cfg.calibration_dir)
    con = connect(cfg.store_path)
    where = f"WHERE node_id IN ({','.join('?' * len(node))})" if node else ""
    total = con.execute(f"SELECT COUNT(*) FROM readings {where}", node).fetchone()[0]
    if not total:
        click.echo("no readings to recalibrate")
        return
    changed, touched, first_changed, last_id = 0, 0, None, -1
    chunk = 50_000
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("recalibrating", total=total)
        while True:
            clause = f"{where} {'AND' if where else 'WHERE'} id > ?"
            rows = con.execute(f"SELECT id, node_id, counter, sample, time, channel, raw, value, qflags, cal FROM readings "
                               f"{clause} ORDER BY id LIMIT {chunk}", (*node, last_id)).fetchall()
            if not rows:
                break
            last_id = rows[-1][0]
            a = np.array([(r[1], r[2], r[3], r[5]) for r in rows], np.int64)
            raw = np.array([np.nan if r[6] is None else r[6] for r in rows], float)
            times = np.array([r[4] for r in rows], float)
            _, values, oor, tag = cal.apply_physical(a[:, 0], a[:, 3], a[:, 1] * 64 + a[:, 2], times, raw)
            updates, first_here, n_changed = [], None, 0
            for v, o, r in zip(values.tolist(), oor.tolist(), rows):
                v = None if v != v else v
                q = (r[8] or 0) | (2 if o else 0)
                same = (v is None and r[7] is None) or (v is not None and r[7] is not None and abs(v - r[7]) <= 1e-9 * max(1.0, abs(v)))
                if not same:
                    n_changed += 1
                    first_here = r[0] if first_here is None else first_here
                if not (same and q == (r[8] or 0) and tag == r[9]):
                    updates.append((v, tag, q, r[0]))
            if updates:
                con.execute("BEGIN IMMEDIATE")
                con.executemany("UPDATE readings SET value=?, cal=?, qflags=? WHERE id=?", updates)
                # Only a changed value is news downstream; a new tag or flag alone is kept locally.
                if first_here is not None and (first_changed is None or first_here < first_changed):
                    first_changed = first_here
                    con.execute("UPDATE outbox SET cursor=MIN(cursor, ?)", (first_changed - 1,))
                con.execute("COMMIT")
                changed += n_changed
                touched += len(updates) - n_changed
            progress.advance(task, len(rows))
    note = f"; {touched} more had only their flags or calibration tag updated (not re-sent)" if touched else ""
    if changed:
        click.echo(f"recalibrated {changed} of {total} readings with {cal.tag}; forwarders re-send from reading "
                   f"{first_changed} under the same ids{note}")
    else:
        click.echo(f"recalibrated 0 of {total} readings with {cal.tag}: no value changed, forwarders not rewound{note}")
    from sen.gateway.cal_status import problems
    for line in problems(cfg):
        click.echo(f"  {line}")


# --- keys -----------------------------------------------------------------------------
def _key_store(config_path, keys_path, create):
    from sen.gateway.key_store import KeyStore
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
        from sen.gateway.store import Store
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
    from sen.gateway.key_store import parse_key, parse_node_id
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
    from sen.gateway.key_store import parse_key
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


@gateway.command("node-config")
@click.argument("node_id", type=int)
@CONFIG_OPT
@click.option("--interval-s", type=int, help="reporting interval, 60..86400 s")
@click.option("--confirmed/--unconfirmed", default=None, help="ask for ACKs")
@click.option("--calibration-mode/--no-calibration-mode", default=None)
@click.option("--clear", is_flag=True, help="drop the pending change")
def node_config(node_id, config_path, interval_s, confirmed, calibration_mode, clear):
    """Queue a config change for a node; it rides on the ACK of its next confirmed uplinks."""
    from sen.gateway.downlink_encode import _config_map
    from sen.gateway.key_store import parse_node_id
    from sen.gateway.store import Store

    node_id = parse_node_id(node_id, "NODE_ID")
    cfg = _config(config_path)
    store = Store(cfg.store_path)
    try:
        if clear:
            store.clear_pending_config(node_id)
            click.echo(f"node {node_id}: pending config cleared")
            return
        change = {k: v for k, v in (("interval_s", interval_s), ("confirmed", confirmed),
                                    ("calibration_mode", calibration_mode)) if v is not None}
        if not change:
            raise SenError("no change given", "pass --interval-s, --confirmed/--unconfirmed or --calibration-mode")
        try:
            _config_map(change)
        except ValueError as exc:
            raise SenError(str(exc), "see `sen gateway node-config --help`") from None
        store.set_pending_config(node_id, change)
        click.echo(f"node {node_id}: pending {json.dumps(change)} (sent with the ACK of every confirmed uplink until "
                   "an uplink shows it applied; see `sen gateway status`)")
    finally:
        store.close()
