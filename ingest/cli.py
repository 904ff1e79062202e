"""`sen ingest …`: central ingest workers.

Imports sit inside the commands that use them, marked lazy: `sen ingest status` should not
load the worker, paho-mqtt and the gateway pipeline."""
import json
import signal
import threading
import time
from pathlib import Path

import click

from sen.errors import SenError

CONFIG_OPT = click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default="ingest.toml",
                          show_default=True, help="ingest.toml")


def _config(path):
    from sen.ingest import config  # lazy: CLI start-up
    return config.load(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def ingest():
    """City operators: central ingest workers behind the MQTT broker cluster."""


@ingest.command()
@CONFIG_OPT
def run(config_path):
    """Consume gateways' uplinks (shared subscription), verify, decode, calibrate, store in
    PostgreSQL and forward, until SIGTERM (which drains the batch in hand)."""
    from sen.logs import setup as setup_logging  # lazy: CLI start-up
    from sen.ingest.worker import IngestWorker  # lazy: CLI start-up

    cfg = _config(config_path)
    setup_logging(cfg.log_level)
    IngestWorker(cfg).run()


@ingest.command("init-db")
@CONFIG_OPT
def init_db(config_path):
    """Create the tables (workers also do this at start; safe to repeat)."""
    from sen.ingest.postgres_store import connect, ensure_schema  # lazy: CLI start-up

    cfg = _config(config_path)
    con = connect(cfg.dsn)
    ensure_schema(con)
    con.close()
    click.echo("schema ready")


def _age(t):
    if t is None:
        return "never"
    s = time.time() - t
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def gather_status(dsn: str, adr_params=None) -> dict:
    """adr_params: ingest.toml's [adr] margins, so the links shown are the advice published."""
    from sen.ingest.postgres_store import connect  # lazy: CLI start-up

    con = connect(dsn)
    try:
        q = lambda sql, *a: con.execute(sql, a).fetchall()  # noqa: E731
        frames, copies = q("SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM rx)")[0]
        out = {
            "frames": frames, "rx_copies": copies,
            "copies_per_frame": round(copies / frames, 3) if frames else None,
            "readings": q("SELECT count(*) FROM readings")[0][0],
            "nodes": q("SELECT count(*) FROM nodes WHERE last IS NOT NULL")[0][0],
            "lost_frames": int(q("SELECT COALESCE(sum(lost), 0) FROM nodes")[0][0]),
            "parked": q("SELECT count(*) FROM parked")[0][0],
            "rejections": dict(q("SELECT reason, count FROM rejections ORDER BY count DESC")),
            "gateways": [{"gateway": g, "copies": n, "nodes": nn, "rssi_avg": round(r, 1), "snr_avg": round(s, 1),
                          "last": t} for g, n, nn, r, s, t in
                         q("SELECT gateway_id, count(*), count(DISTINCT node_id), avg(rssi), avg(snr), max(time)"
                           " FROM rx GROUP BY gateway_id ORDER BY gateway_id")],
            "workers": [{"worker": w, "host": h, "pid": p, "started": st, "last_batch": lb, "batches": b,
                         "copies": c, "frames": f, "duplicates": d, "readings": r} for w, h, p, st, lb, b, c, f, d, r in
                        q("SELECT worker_id, host, pid, started, last_batch, batches, copies, frames, duplicates,"
                          " readings FROM workers ORDER BY worker_id")],
            "forwarders": [],
        }
        head = q("SELECT COALESCE(max(id), 0) FROM readings")[0][0]
        for name, cursor, sent, dropped, ok, err, err_t in q(
                "SELECT name, cursor, sent, dropped, last_ok, last_error, last_error_time FROM outbox ORDER BY name"):
            depth = q("SELECT count(*) FROM readings WHERE id > %s AND id <= %s", cursor, head)[0][0]
            out["forwarders"].append({"name": name, "depth": depth, "sent": sent, "dropped": dropped, "last_ok": ok,
                                      "last_error": err if err_t and (ok is None or err_t > ok) else None})
        from sen.ingest.link_report import link_report  # lazy: CLI start-up
        out["links"] = link_report(con) if adr_params is None else link_report(con, adr_params)
        return out
    finally:
        con.close()


@ingest.command()
@CONFIG_OPT
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def status(config_path, as_json):
    """Workers, per-gateway copies and signal, totals, rejections and forwarder backlogs."""
    from rich.console import Console  # lazy: CLI start-up
    from rich.table import Table  # lazy: CLI start-up

    cfg = _config(config_path)
    st = gather_status(cfg.dsn, cfg.adr_params)
    if as_json:
        click.echo(json.dumps(st))
        return
    con = Console()
    con.print(f"frames {st['frames']}  readings {st['readings']}  rx copies {st['rx_copies']}"
              f" ({st['copies_per_frame']} per frame)  nodes {st['nodes']}  lost {st['lost_frames']}"
              f"  parked {st['parked']} (16-bit counters waiting for their node's full counter)")
    t = Table(title="workers")
    for c in ("worker", "host", "pid", "last batch", "copies", "frames", "duplicates", "readings"):
        t.add_column(c)
    for w in st["workers"]:
        t.add_row(w["worker"], w["host"] or "", str(w["pid"] or ""), _age(w["last_batch"]), str(w["copies"]),
                  str(w["frames"]), str(w["duplicates"]), str(w["readings"]))
    con.print(t)
    t = Table(title="gateways")
    for c in ("gateway", "copies", "nodes", "RSSI avg", "SNR avg"):
        t.add_column(c)
    for g in st["gateways"]:
        t.add_row(g["gateway"], str(g["copies"]), str(g["nodes"]), str(g["rssi_avg"]), str(g["snr_avg"]))
    con.print(t)
    t = Table(title="links (ADR over the best copy per frame, all gateways)")
    for c in ("node", "SF", "ADR SF", "tx back-off dB", "SNR max", "SNR spread", "loss %"):
        t.add_column(c)
    for k in st["links"]:
        t.add_row(str(k["node"]), str(k["sf"]), str(k["adr_sf"] or "-"), str(k["adr_tx_backoff_db"] or "-"),
                  str(k["snr_max"]), str(k["snr_spread_db"]), str(k["loss_pct"]))
    con.print(t)
    if st["rejections"]:
        con.print("rejections: " + ", ".join(f"{k} {v}" for k, v in st["rejections"].items()))
    for f in st["forwarders"]:
        con.print(f"forwarder {f['name']}: depth {f['depth']}, sent {f['sent']}, dropped {f['dropped']}, "
                  f"last ok {_age(f['last_ok'])}" + (f", error: {f['last_error']}" if f["last_error"] else ""))


@ingest.command()
@click.option("--raw-log", type=click.Path(path_type=Path), required=True, help="The gateway's raw.log")
@click.option("--gateway-id", required=True, help="This gateway's id (the broker ACL ties it to the username)")
@click.option("--host", required=True, help="MQTT broker host")
@click.option("--port", type=int, default=None, help="Broker port [8883 with --tls, else 1883]")
@click.option("--username", default=None)
@click.option("--password-file", type=click.Path(path_type=Path), default=None)
@click.option("--tls", is_flag=True, help="Connect with TLS")
@click.option("--ca-file", type=click.Path(path_type=Path), default=None)
@click.option("--topic-prefix", default="sen", show_default=True)
def uplink(raw_log, gateway_id, host, port, username, password_file, tls, ca_file, topic_prefix):
    """Publish a gateway's raw log to the broker (uplink mode as a side-car), until SIGTERM."""
    from sen.logs import setup as setup_logging  # lazy: CLI start-up
    from sen.gateway import uplink_wire as wire  # lazy: CLI start-up
    from sen.gateway.uplink_publisher import UplinkPublisher  # lazy: CLI start-up

    setup_logging()
    if not raw_log.is_file():
        raise SenError(f"raw log {raw_log} does not exist", "point --raw-log at the gateway's data_dir/raw.log")
    try:
        wire.check_gateway_id(gateway_id)
    except ValueError as exc:
        raise SenError(str(exc), "use letters, digits, - and _") from None
    password = None
    if password_file:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            raise SenError(f"cannot read {password_file}: {exc.strerror}", "give the gateway's password file") from None
    if ca_file and not ca_file.is_file():
        raise SenError(f"CA file {ca_file} does not exist", "give the broker's CA certificate")
    pub = UplinkPublisher(raw_log, gateway_id, host, port or (8883 if tls else 1883), topic_prefix=topic_prefix,
                          username=username, password=password, tls=tls, ca_file=str(ca_file) if ca_file else None)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pub.start()
    while not stop.wait(1.0):
        pass
    pub.stop()
