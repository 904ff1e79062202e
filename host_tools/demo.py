"""`sen demo`: one city day on emulated boards running the real firmware, with the real gateway.

The shipped scenario (scenarios/city-day.toml) runs at full speed: each station is an
emulated board of its own type, provisioned with the firmware bundle, node.json and a key
the gateway knows; a twin of the water node at the same site runs unconfirmed, so both
delivery modes are measured under the scenario's radio loss. The gateway service (raw log,
verify, decode, dedupe, calibrate, SQLite, Circular 10 forwarder into a local folder over a
loopback FTP server) runs in the same process on the scenario's radio medium.

During the run: after the co-location hours the air node's PM2.5 gets a calibration record
(`sen gateway export` -> hourly join with the scenario's reference -> `sen cal fit --model
kohler` -> `sen cal approve`), which the gateway loads; at mid-run the gateway is killed
without draining and a new one starts on the same data directory (it recovers from the raw
log). After it: `sen gateway recalibrate` over the stored history, then the figures.
"""
import csv
import json
import re
import logging
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sen.errors import SenError
from sen.paths import SCENARIOS

SCENARIO = SCENARIOS / "city-day.toml"
SEN = str(Path(sys.executable).with_name("sen"))
INTERVAL_S = 900
# node plan: (board name, station, node id, confirmed); the air node stays in calibration
# mode so it sends raw CF=1 PM for the calibration curve
NODES = [("air-1", "air-1", 101, True), ("water-1", "water-1", 201, True), ("rain-1", "rain-1", 301, True),
         ("water-1u", "water-1", 202, False)]
POWER_ON_S = {"water-1u": 7 * 60 + 30}  # the twin is switched on half a cycle later
SHOW = {"air": ("air_temp", "rh", "pm25"), "water": ("water_temp", "ph", "conductivity", "water_level"),
        "rain": ("rain_depth", "rain_intensity")}
TRUTH_OF = {"rain_depth": None}

log = logging.getLogger("sen.demo")


def _gateway_toml(world, ftp_port, nodes, mqtt=None, concentrator=False):
    g = world.gateways[0]
    lines = ['[gateway]', f'id = "{g["id"]}"', 'data_dir = "data"',
             '[keys]', 'file = "keys.json"',
             '[calibration]', 'records_dir = "records"']
    if concentrator:  # port 0: the forwarder is told the port the radio got
        lines += ['[[radio]]', 'backend = "semtech_udp"', 'name = "udp"', 'bind = "127.0.0.1:0"']
    else:
        lines += ['[[radio]]', 'backend = "emulated"', 'name = "emu0"',
                  f'frequency_hz = {int(round(world.radio["frequency_mhz"] * 1e6))}']
    if ftp_port is not None:
        lines += ['[forwarders.circular10]', 'host = "127.0.0.1"', f'port = {ftp_port}', 'user = "sen"',
                  'password = "demo"', 'province = "DN"', 'facility = "SEN"']
    if mqtt is not None:
        lines += ['[forwarders.mqtt]', f'host = "{mqtt[0]}"', f'port = {mqtt[1]}', 'topic_prefix = "sen"']
    for n in nodes:
        st = world.station(n["station"])
        lat, lon = st.lat_lon
        lines += [f'[nodes.{n["cfg"]["node_id"]}]', f'name = "{n["name"]}"',
                  f'station = "{n["name"].upper().replace("-", "")}"', f'location = [{lon}, {lat}]']
    return "\n".join(lines) + "\n"


def _start_ftp(root: Path):
    """A loopback FTP server (pyftpdlib) for the Circular 10 forwarder: its files land in root."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root.mkdir(parents=True, exist_ok=True)
    auth = DummyAuthorizer()
    auth.add_user("sen", "demo", str(root), perm="elradfmwMT")
    handler = type("DemoFTP", (FTPHandler,), {"authorizer": auth, "banner": "sen demo"})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    th = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True, name="demo-ftp")
    th.start()
    return server, th, port


def _sen(*args, cwd=None):
    res = subprocess.run([SEN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)
    return res


class Calibrate:
    """The co-location step for the air node's PM2.5, run with the clock held at `at_h`."""

    def __init__(self, out: Path, gw_dir: Path, world, node_id: int, run_ref):
        self.out, self.gw_dir, self.world, self.node_id = out, gw_dir, world, node_id
        self.run_ref = run_ref
        self.result = {"status": "not run"}

    def __call__(self):
        world, out = self.world, self.out / "calibration"
        out.mkdir(exist_ok=True)
        now = self.run_ref().clock.now_s()
        exp = out / "colocation-export.csv"
        res = _sen("gateway", "export", "-c", self.gw_dir / "gateway.toml", "--node", self.node_id,
                   "--channel", "pm25_cf1", "--channel", "rh", "-o", exp)
        if res.returncode != 0:
            self.result = {"status": "export failed", "error": res.stderr.strip()[-300:]}
            return
        # join: each node sample (pm25_cf1 and rh of the same sample time) with the reference
        # hour it falls in. `sen cal join` leaves out rows flagged CALIBRATING, which
        # co-location rows are by definition, so the demo joins here; the fit then forms its
        # own 1-h averages from the sample times.
        t0 = world.start_epoch_s
        by_time = {}
        with open(exp, newline="") as f:
            for r in csv.DictReader(f):
                if int(r["flags"] or 0) & ~16 or r["value"] == "":
                    continue
                by_time.setdefault(_parse_time(r["time"]), {})[r["channel"]] = float(r["value"])
        ref = world.reference_series("air-1", "pm25", 0.0, now)
        joined = out / "colocation.csv"
        n = 0
        with open(joined, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time", "pm25_cf1[ug/m3]", "rh[%]", "ref_pm25[ug/m3]"])
            for t_abs in sorted(by_time):
                vals, t = by_time[t_abs], t_abs - t0
                hour = [v for t_end, v in ref if t_end - 3600 <= t < t_end]
                if "pm25_cf1" not in vals or "rh" not in vals or not hour:
                    continue
                stamp = datetime.fromtimestamp(t_abs, timezone.utc).isoformat().replace("+00:00", "Z")
                w.writerow([stamp, f"{vals['pm25_cf1']:g}", f"{vals['rh']:g}", f"{hour[0]:.2f}"])
                n += 1
        records = self.gw_dir / "records"
        before = set(records.glob("*.json"))
        start_iso = datetime.fromtimestamp(t0, timezone.utc).isoformat().replace("+00:00", "Z")
        res = _sen("cal", "fit", joined, "--model", "kohler", "--target", "ref_pm25", "--inputs", "pm25_cf1,rh",
                   "--node", self.node_id, "--channel", "pm25", "--out", records, "--crew", "sen demo",
                   "--node-config", "calibration_mode=true",  # the demo's air nodes send pm25_cf1 in every frame
                   "--reference", "scenario co-located reference (hourly)", "--valid-from", start_iso)
        new = sorted(set(records.glob("*.json")) - before)
        if res.returncode != 0 or not new:
            self.result = {"status": "fit failed", "colocation_rows": n, "error": (res.stderr or res.stdout).strip()[-400:]}
            return
        rec = new[0]
        res = _sen("cal", "approve", rec, "--by", "sen demo")
        override = None
        if res.returncode != 0:
            override = res.stderr.strip()[-300:]
            reason = f"demo: {now / 3600:.1f} h of co-location, fewer than the 24 h the targets need"
            res = _sen("cal", "approve", rec, "--by", "sen demo", "--override", reason, "--accept-worse", reason)
        doc = json.loads(rec.read_text())
        self.result = {"status": doc.get("status"), "record": str(rec), "colocation_rows": n, "colocation_h": round(now / 3600, 2),
                       "coefficients": {c["name"]: round(c["value"], 4) for c in doc.get("coefficients", [])},
                       "residual_sd": doc.get("residual_sd"), "approve_refused": override,
                       "fit_metrics_1h": {r["metric"]: r["value"] for r in doc.get("metrics", {}).get("1h", {}).get("rows", [])}}
        svc = self.run_ref().gw[0]
        svc.control.put(("reload_calibration", None))


def _parse_time(text):
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class LiveView:
    """Console view: per node frames stored, latest values against the truth."""

    def __init__(self, console, db_path, world, nodes, hours):
        self.console, self.db_path, self.world, self.nodes, self.hours = console, db_path, world, nodes, hours
        self.db = None
        self.started = time.monotonic()
        self.run = None
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self.last = 0.0
        self.events = []

    def tick(self):
        if time.monotonic() - self.last < 0.25:
            return
        self.last = time.monotonic()
        self.live.update(self.render())

    def render(self):
        clock = self.run.clock
        hrs = clock.now_s() / 3600
        head = (f"[bold]{self.world.name}[/]  virtual {int(hrs):02d}:{int(hrs * 60) % 60:02d} of {self.hours:g} h  "
                f"wall {time.monotonic() - self.started:5.1f} s")
        t = Table(box=None, pad_edge=False)
        for c in ("node", "id", "mode", "frames", "latest (stored / truth)"):
            t.add_column(c)
        if self.db is None and self.db_path.exists():
            import sqlite3
            self.db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False)
        for n in self.nodes:
            nid = n["cfg"]["node_id"]
            frames, latest = 0, ""
            if self.db is not None:
                try:
                    frames = self.db.execute("SELECT COUNT(*) FROM frames WHERE node_id=?", (nid,)).fetchone()[0]
                    latest = self._latest(n, nid)
                except Exception:
                    pass
            t.add_row(n["name"], str(nid), "confirmed" if n["cfg"]["confirmed"] else "unconfirmed", str(frames), latest)
        return Group(head, t, *self.events[-4:])

    def _latest(self, n, nid):
        from sen.host_tools.demo_report import BY_NAME  # lazy: CLI start-up
        row = self.db.execute("SELECT MAX(time) FROM readings WHERE node_id=?", (nid,)).fetchone()
        if not row or row[0] is None:
            return ""
        tm = row[0]
        vals = dict(self.db.execute("SELECT channel, value FROM readings WHERE node_id=? AND time=?", (nid, tm)).fetchall())
        parts = []
        for ch in SHOW[n["cfg"]["kind"]]:
            v = vals.get(BY_NAME[ch].id)
            if v is None:
                continue
            s = f"{ch}={v:g}"
            if ch in self.world.station(n["station"]).truth:
                s += f"/{self.world.truth(n['station'], ch, tm - self.world.start_epoch_s):.3g}"
            parts.append(s)
        return " ".join(parts)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Where the gateway's data, exports and the summary go (replaced).")
@click.option("--hours", type=float, default=None, help="Simulated hours (default: the scenario's duration).")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Scenario TOML (default: the shipped scenarios/city-day.toml).")
@click.option("--colocation-h", type=float, default=12.0, show_default=True,
              help="Hours of co-location before the PM2.5 curve is fitted (at most 3/4 of the run).")
@click.option("--restart-at-h", type=float, default=None,
              help="When the gateway is killed and restarted (default: 55 % into the run).")
@click.option("--mqtt", default=None, metavar="HOST[:PORT]",
              help="Also forward to this MQTT broker (topics: docs/mqtt-topics.md).")
@click.option("--concentrator", is_flag=True,
              help="The gateway hears the nodes through an emulated SX1302 concentrator whose packet forwarder "
                   "speaks Semtech UDP to its semtech_udp radio (docs/concentrator-gateways.md); the nodes hop "
                   "over the AS923-2 channels. Default: the emulated single-channel SX1276 radio.")
@click.option("--target", "target_overrides", multiple=True, hidden=True, metavar="FIGURE=VALUE",
              help="Test hook: replace a numeric check's target (e.g. air_temp_rmse_c=0).")
def demo(out_dir: Path, hours, scenario, colocation_h, restart_at_h, mqtt, concentrator, target_overrides):
    """Run a city day on emulated boards with the real firmware and gateway; print the figures."""
    from sen.emulator.board import load_world  # lazy: CLI start-up
    from sen.emulator.city_run import CityRun  # lazy: CLI start-up
    from sen.host_tools import emulated_gateway  # lazy: CLI start-up
    from sen.host_tools.bundle import build as build_bundle  # lazy: CLI start-up
    from sen.emulator.clock import VirtualClock  # lazy: CLI start-up
    from sen.gateway.key_store import KeyStore  # lazy: CLI start-up
    from sen.host_tools import demo_link, demo_output, demo_report  # lazy: CLI start-up
    from sen.emulator.radio_medium import world_medium  # lazy: CLI start-up

    scenario = Path(scenario) if scenario is not None else SCENARIO
    if not scenario.is_file():
        raise SenError(f"scenario {scenario} not found", "pass --scenario FILE (docs/scenario-format.md)")
    console = Console()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    clock = VirtualClock()
    world = load_world(str(scenario), clock)
    hours = world.duration_s / 3600 if hours is None else hours
    if not 0 < hours <= world.duration_s / 3600:
        raise SenError(f"--hours {hours:g} is outside the scenario's {world.duration_s / 3600:g} h",
                       "give a positive number of hours up to the scenario's duration")
    for sid in ("air-1", "water-1", "rain-1"):
        if sid not in world.stations:
            raise SenError(f"scenario {scenario} has no station {sid}", "use a city-day scenario (air-1, water-1, rain-1)")
    restart_at_h = hours * 0.55 if restart_at_h is None else restart_at_h
    mqtt = _parse_broker(mqtt) if mqtt else None
    if not 0 < restart_at_h < hours:
        raise SenError(f"--restart-at-h {restart_at_h:g} is not inside the {hours:g} h run", f"give 0 < h < {hours:g}")
    if colocation_h <= 0:
        raise SenError(f"--colocation-h {colocation_h:g} is not a duration", "give a positive number of hours")
    colocation_h = min(colocation_h, hours * 0.75)
    demo_report.parse_targets(target_overrides)  # a bad --target is refused before the run
    started = time.monotonic()
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise SenError(f"--out {out_dir} is a file", "give a directory (it is replaced by the demo's output)")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    gw_dir, exports = out_dir / "gateway", out_dir / "exports"
    (gw_dir / "records").mkdir(parents=True)
    exports.mkdir()
    nodes = []
    keys = KeyStore(gw_dir / "keys.json", create=True)
    for name, sid, nid, confirmed in NODES:
        kind = world.station(sid).kind
        # from the scenario's seed: the same scenario and seed give the same frames, MICs included
        key = keys.add(nid, world.rng("node-key", str(nid)).randbytes(16))
        nodes.append({"name": name, "station": sid, "cfg": {
            "node_id": nid, "kind": kind, "key": key.hex(), "interval_s": INTERVAL_S, "confirmed": confirmed,
            "calibration_mode": kind == "air"}})
        if concentrator:
            nodes[-1]["cfg"]["radio"] = {"channels": "as923-2"}
    gateway, gateway_radio = _gateway_radio(world, emulated_gateway, concentrator)
    ftp = _start_ftp(exports / "circular10")
    (gw_dir / "gateway.toml").write_text(_gateway_toml(world, ftp[2], nodes, mqtt, concentrator))
    console.print(f"[bold]sen demo[/]: {world.name}, {hours:g} h, {len(nodes)} emulated boards, gateway "
                  f"{world.gateways[0]['id']} ({gateway_radio['description']})")
    run = None
    try:
        run = CityRun(world, clock, out_dir / "boards", gw_dir / "gateway.toml", nodes, console=console,
                      gateway=gateway, build_bundle=build_bundle)
        view = LiveView(console, gw_dir / "data" / "gateway.db", world, nodes, hours)
        view.run = run
        cal = Calibrate(out_dir, gw_dir, world, 101, lambda: run)

        def calibrate():
            view.events.append(f"{clock.now_s() / 3600:5.2f} h: fitting the PM2.5 curve on {colocation_h:g} h of co-location")
            cal()
            view.events.append(f"{clock.now_s() / 3600:5.2f} h: calibration record {cal.result.get('status')}")

        def restart():
            run.restart_gateway()
            view.events.append(f"{clock.now_s() / 3600:5.2f} h: gateway armed to crash after logging its next frame")

        with view.live:
            run.run(hours, tick=view.tick, actions=[(colocation_h, calibrate), (restart_at_h, restart)],
                    power_on_s=POWER_ON_S)
            view.live.update(view.render())
        report = run.report()
    finally:
        if run is not None:
            run.close()
        ftp[0].close_all()
    res = _sen("gateway", "recalibrate", "-c", gw_dir / "gateway.toml")
    recal = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        console.print(f"[red]sen gateway recalibrate failed[/]: {recal}")
    (out_dir / "emulator-report.json").write_text(json.dumps(report, indent=1))
    demo_output.export_jsonl(gw_dir / "data" / "gateway.db", exports / "readings.jsonl")
    wall = round(time.monotonic() - started, 1)
    for n in nodes:  # what each node still holds at the end (its last cycle line's q=)
        log_path = out_dir / "boards" / f"{n['name']}.serial.log"
        qs = re.findall(r"\[sen\] cycle \d+ .* q=(\d+)", log_path.read_text(errors="replace")) if log_path.exists() else []
        n["queued_at_end"] = int(qs[-1]) if qs else 0
    summary, series = demo_report.build_summary(
        gw_dir / "data" / "gateway.db", world, nodes, report, hours, heap_kb=demo_output.heap_kb(nodes), wall_s=wall,
        air=run.air.by_sender,
        gateway_restarts=run.restarts, calibration=cal.result, recalibrate=recal[-300:],
        files={"database": "gateway/data/gateway.db", "raw_log": "gateway/data/raw.log",
               "circular10": "exports/circular10", "jsonl": "exports/readings.jsonl",
               "summary_json": "summary.json", "summary_html": "summary.html",
               "emulator_report": "emulator-report.json", "serial_logs": "boards/*.serial.log"},
        target_overrides=target_overrides, gateway_radio=gateway_radio)
    summary["charge_split"] = demo_link.charge_splits(report["boards"], nodes)
    summary["sf_history"] = demo_link.sf_histories(world_medium(world, clock).frames, nodes)
    summary["circular10_files"] = sum(1 for _ in (exports / "circular10").rglob("*.txt"))
    summary["forwarders"] = demo_output.forwarders(gw_dir / "data" / "gateway.db")
    # paths relative to --out, so one scenario and seed give the same summary wherever it runs
    summary = json.loads(json.dumps(summary).replace(str(out_dir) + "/", ""))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    demo_report.write_html(out_dir / "summary.html", summary, series)
    demo_output.print_summary(console, summary, out_dir)
    failed = [c for c in summary["checks"] if c["pass"] is False]
    for c in failed:
        v = c["value"]
        console.print(f"[red]FAILED[/] {c['figure']}: {f'{v:.4g}' if isinstance(v, float) else v} "
                      f"(target {c['target']})", soft_wrap=True)
    print(json.dumps({k: summary[k] for k in ("hours", "wall_s", "accuracy", "delivery", "checks")}))
    if failed:
        sys.exit(1)


def _gateway_radio(world, emulated_gateway, concentrator):
    """The gateway hooks CityRun gets, and what the summary says about the gateway's radio.
    With --concentrator the scenario's first gateway site holds an SX1302 instead of an SX1276
    hat, and its forwarder runs on the virtual clock, so the run stays as deterministic as the
    single-channel one."""
    g = world.gateways[0]
    if not concentrator:
        return emulated_gateway, {"backend": "emulated", "site": g["id"], "description":
                                  f"emulated single-channel SX1276, {world.radio['frequency_mhz']:g} MHz"}
    from types import SimpleNamespace
    g["kind"] = "concentrator"
    hooks = SimpleNamespace(start_gateway=partial(emulated_gateway.start_gateway, virtual_time=True),
                            stop_gateway=emulated_gateway.stop_gateway, kill_gateway=emulated_gateway.kill_gateway)
    return hooks, {"backend": "semtech_udp", "site": g["id"], "eui": g["eui"], "channel_plan": "as923-2",
                   "description": "emulated SX1302 concentrator (AS923-2, 8 channels), packet forwarder over "
                                  "Semtech UDP on loopback to the semtech_udp radio"}


def _parse_broker(text):
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    try:
        port = int(port)
        assert host and 0 < port < 65536
    except (ValueError, AssertionError):
        raise SenError(f"--mqtt {text!r} is not HOST[:PORT]", "e.g. --mqtt 127.0.0.1:1883") from None
    return host, port
