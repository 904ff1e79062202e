"""`sen cal …` commands: fit, join, report, check, list, approve, push."""
from pathlib import Path

import click

from sen.errors import SenError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cal():
    """Field crews: fit, judge and approve calibration curves."""


def _split(text):
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _when(text):
    from .timeparse import iso, parse_time, NaiveTime

    if text is None:
        return None
    try:
        return iso(parse_time(text)[0])
    except NaiveTime:
        raise SenError(f"time {text!r} has no zone", "write it like 2026-11-01T00:00Z or 2026-11-01T07:00+07:00") from None
    except ValueError:
        raise SenError(f"time {text!r} is not ISO 8601", "write it like 2026-11-01T00:00Z") from None


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    # Off when stderr is not a terminal, so errors stay a single line in logs and pipes.
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@cal.command("fit")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--model", "model_name", required=True, help="Curve model; `sen cal models` lists them.")
@click.option("--target", required=True, help="Reference column (what the curve should reproduce).")
@click.option("--inputs", required=True, help="Node channel columns, raw first: e.g. pm25_cf1,rh.")
@click.option("--out", required=True, type=click.Path(), help="Record file (*.json) or records directory (the version is numbered there).")
@click.option("--node", required=True, help="Node id (1–65535).")
@click.option("--channel", help="Calibrated channel (default: from the raw input, e.g. pm25_cf1 → pm25).")
@click.option("--crew", default="", help="Who ran the co-location.")
@click.option("--reference", "reference_instrument", default="", help="Reference instrument (make, model, serial).")
@click.option("--tz", help="Zone for timestamps written without one, e.g. +07:00.")
@click.option("--valid-from", help="Start of validity (ISO 8601 with zone; default: first data time).")
@click.option("--valid-to", help="End of validity (default: open).")
@click.option("--degree", type=int, help="polynomial: degree (default 2).")
@click.option("--alpha", help="conductivity: temperature coefficient per °C, or 'fit'.")
@click.option("--lam", type=float, help="deming/odr: error variance ratio var(y err)/var(x err).")
@click.option("--gain", type=float, help="ph_nernst: amplifier gain (default 1).")
@click.option("--zero-mv", type=float, help="ph_nernst: expected mV at pH 7 (default 0).")
@click.option("--node-config", "node_config", multiple=True,
              help="The node's node.json (as `sen node config --port P` prints it) or key=value, e.g. send_raw=true; "
                   "says which channels its normal frames carry.")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True,
              help="Contiguous time blocks for out-of-sample (cross-validated) metrics.")
@click.option("--map", "maps", multiple=True, help="COLUMN=channel: read a logger's column as a channel (repeatable).")
def fit_cmd(data, model_name, target, inputs, out, node, channel, crew, reference_instrument, tz, valid_from,
            valid_to, degree, alpha, lam, gain, zero_mv, node_config, folds, maps):
    """Fit a curve to co-location or buffer data and write a draft record.

    DATA.csv has a time column and one column per quantity (optionally `name[unit]`).
    Rows that cannot be used are reported with line numbers; nothing is dropped silently.
    """
    from . import models, records
    from .fitting import build_record
    from .inputs import check_time_shift, read_colocation, shift_error
    from .node_frames import parse_node_config
    from .timeparse import parse_tz

    ins = _split(inputs)
    if not ins:
        raise SenError("--inputs is empty", "name the raw column first, e.g. --inputs pm25_cf1,rh")
    if target in ins or len(set(ins)) != len(ins):
        raise SenError("--target and --inputs overlap or repeat a column",
                       "the target is the reference column; inputs are the node's own columns, each once")
    model = models.get(model_name)
    options = {k: v for k, v in {"degree": degree, "alpha": alpha, "lam": lam,
                                 "gain": gain, "zero_mv": zero_mv}.items() if v is not None}
    out_p = Path(out)
    with _progress() as bar:
        task = bar.add_task(f"fitting {model.name}", total=4)
        table = read_colocation(data, [target] + ins, tz=parse_tz(tz), mapping=_maps(maps))
        bar.advance(task)
        if (table.times[-1] - table.times[0]) >= 3 * 86400:
            shift = check_time_shift(table.times, table.cols[ins[0]], table.cols[target])
            if shift:
                err = shift_error(shift, f"{data}: {target} lines up with {ins[0]}")
                raise SenError(err.problem, "fix the logger clocks' time stamps and re-export")
        rec_dir = out_p if (out_p.is_dir() or out_p.suffix.lower() != ".json") else out_p.parent
        node_id = records.check_node(node)
        from .fitting import resolve_channel
        ch = resolve_channel(channel, ins, target)
        version = records.next_version(rec_dir, node_id, ch)
        record = build_record(table, model.name, target, ins, node=node_id, channel=ch, options=options, crew=crew,
                              reference=reference_instrument, valid_from=_when(valid_from), valid_to=_when(valid_to),
                              version=version, node_config=parse_node_config(node_config), folds=folds)
        bar.advance(task, 2)
        path = rec_dir / records.default_name(node_id, ch, version) if rec_dir is out_p else out_p
        if path.exists():
            raise SenError(f"{path} already exists; records are never overwritten",
                           "write to a records directory (a new version is numbered) or choose another name")
        record.save(path)
        bar.advance(task)
    _print_summary(record, table)


def _num(v) -> str:
    """A metric that cannot be computed (e.g. R² of a constant series) is None: say so."""
    return "n/a" if v is None else f"{v:.3f}"


def _print_summary(record, table):
    d = record.doc
    click.echo(f"{d['model']} for node {d['node']} {d['channel']} v{d['version']}: n={d['n']}, "
               f"residual SD {d['residual_sd']:.4g}, dof {d['dof']}")
    for c in d["coefficients"]:
        tag = " (fixed: published value)" if c["fixed"] else ""
        click.echo(f"  {c['name']:>14} = {c['value']:.6g} ± {c['se']:.3g}  95% CI [{c['ci95'][0]:.6g}, {c['ci95'][1]:.6g}]{tag}")
    if d.get("knots"):
        for x, y in zip(d["knots"]["knots_raw"], d["knots"]["knots_ntu"]):
            click.echo(f"  knot {x:.2f} → {y:g}")
    for a in d.get("acceptance", []):
        click.echo(f"  {'PASS' if a['pass'] else 'FAIL'} {a['name']}: {a['value']} {a['unit']} (target {a['target']})")
    for label in ("1h", "24h"):
        m = d["metrics"].get(label, {})
        if m.get("n"):
            fails = [r["metric"] for r in m["rows"] if r["pass"] is False]
            verdict = ("meets EPA targets" if not fails else "misses " + ", ".join(fails)) if any(
                r["pass"] is not None for r in m["rows"]) else "no targets for this channel"
            click.echo(f"  {label}: n={m['n']} slope {_num(m.get('slope'))} intercept {_num(m.get('intercept'))} "
                       f"R² {_num(m.get('r2'))} RMSE {_num(m.get('rmse'))} — {verdict}")
    _print_out_of_sample(d)
    for i in table.issues:
        click.echo(f"  data: {i.one_line()}")
    for note in table.notes:
        click.echo(f"  data: {note}")
    click.echo(f"wrote {record.path} (draft, {d['hash'][:19]}…)")
    from .node_frames import check_applicable
    try:
        check_applicable(record.id, d["node"], d["inputs"], d["node_frame"], "approval will be")
    except SenError as exc:
        click.echo(f"WARNING: {exc.problem} — {exc.fix}")


def _maps(maps) -> dict:
    out = {}
    for m in maps:
        col, sep, ch = m.partition("=")
        if not sep or not col.strip() or not ch.strip():
            raise SenError(f"--map {m!r} is not COLUMN=channel", "write e.g. --map 'PM2.5 (ug/m3)=pm25_cf1'")
        out[col.strip()] = ch.strip()
    return out


def _metric_line(m):
    return (f"RMSE {_num(m.get('rmse'))} bias {_num(m.get('bias'))} slope {_num(m.get('slope'))} "
            f"R² {_num(m.get('r2'))} (n={m.get('n', 0)})")


def _print_out_of_sample(d):
    """In-sample beside cross-validated and uncorrected, per averaging level."""
    cv, raw = d.get("cross_validation") or {}, d.get("uncorrected")
    if cv.get("error"):
        click.echo(f"  out of sample: not available — {cv['error']}")
    else:
        click.echo(f"  out of sample ({cv['folds']} contiguous time blocks, each predicted by a curve fitted on the others):")
    for label in ("points", "1h", "24h"):
        rows = [("in-sample", d["metrics"].get(label) or {})]
        if not cv.get("error"):
            rows.append(("cross-validated", cv.get(label) or {}))
        if raw:
            rows.append((f"uncorrected {raw['input']}", raw.get(label) or {}))
        for name, m in rows:
            if m.get("n"):
                click.echo(f"    {label:>6} {name:>22}: {_metric_line(m)}")
    from .crossval import gate_failures
    for why in gate_failures(d):
        click.echo(f"  WARNING: {why}; `sen cal approve` needs --accept-worse 'reason'")


@cal.command("models")
def models_cmd():
    """List the curve models."""
    from .models import MODELS

    for m in MODELS.values():
        click.echo(f"{m.name:16} inputs {m.input_hint:22} {m.summary}")


@cal.command("join")
@click.argument("export", type=click.Path(dir_okay=False))
@click.option("--reference", "ref_path", required=True, type=click.Path(dir_okay=False), help="Reference CSV.")
@click.option("--ref-column", required=True, help="Reference value column in the reference CSV.")
@click.option("--node", required=True, help="Node id in the export.")
@click.option("--channels", required=True, help="Node channels to join, raw first: e.g. pm25_cf1,rh.")
@click.option("--average", "avg", default="1h", show_default=True, help="Averaging period: 1h, 24h, or 0 for nearest.")
@click.option("--tolerance", default="5min", show_default=True, help="With --average 0: max time difference.")
@click.option("--ref-tz", help="Zone of reference times written without one, e.g. +07:00.")
@click.option("--ref-offset", default="0", help="Shift reference times by this much, e.g. -1h for hour-ending stamps.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Co-location CSV to write.")
@click.option("--map", "maps", multiple=True, help="COLUMN=name: read a reference column under another name (repeatable).")
def join_cmd(export, ref_path, ref_column, node, channels, avg, tolerance, ref_tz, ref_offset, out, maps):
    """Join a gateway export (`sen gateway export`) to a reference file by time."""
    from .inputs import join_export, read_gateway_export, read_reference, shift_error, write_table
    from .records import check_node
    from .timeparse import parse_duration, parse_tz

    chans = _split(channels)
    exp = read_gateway_export(export, check_node(node))
    ref = read_reference(ref_path, ref_column, tz=parse_tz(ref_tz), mapping=_maps(maps))
    off = ref_offset.strip()
    sign = -1.0 if off.startswith("-") else 1.0
    ref.times = ref.times + sign * parse_duration(off.lstrip("+-"))
    period = parse_duration(avg)
    table = join_export(exp, ref, ref_column, ref_column, chans, period, parse_duration(tolerance))
    main = exp[chans[0]] if chans[0] in exp else None
    if main is not None and len(table) and (table.times[-1] - table.times[0]) >= 3 * 86400:
        shift = _shift_on_grid(main, ref, ref_column)
        if shift:
            raise shift_error(shift, f"reference lines up with node {chans[0]}")
    write_table(table, out, [ref_column] + chans)
    click.echo(f"joined {len(table)} rows ({'nearest within ' + tolerance if period == 0 else avg + ' averages'}) "
               f"→ {out}")
    for i in table.issues:
        click.echo(f"  data: {i.one_line()}")


def _shift_on_grid(main, ref, ref_column):
    import numpy as np

    from .inputs import average, check_time_shift

    t1, v1 = average(main.times, main.cols["value"], 3600.0, 0.0)
    t2, v2 = average(ref.times, ref.cols[ref_column], 3600.0, 0.0)
    keys = np.union1d(t1, t2)
    a = np.full(keys.size, np.nan)
    b = np.full(keys.size, np.nan)
    a[np.searchsorted(keys, t1)] = v1
    b[np.searchsorted(keys, t2)] = v2
    return check_time_shift(keys, a, b)


@cal.command("report")
@click.argument("records_", metavar="RECORD...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--data", type=click.Path(dir_okay=False), help="Co-location CSV, if it moved since the fit.")
def report_cmd(records_, out, data):
    """HTML report: scatter with fit and bands, time series, residuals vs RH and T, metrics against targets."""
    from .records import load
    from .report import write_report

    recs = [load(p) for p in records_]
    with _progress() as bar:
        task = bar.add_task("rendering report", total=len(recs))
        path = write_report(recs, out, data_override=data, on_record=lambda: bar.advance(task))
    click.echo(f"wrote {path} ({len(recs)} record(s))")


@cal.command("check")
@click.option("--expected", type=float, required=True, help="Value of the check standard (e.g. 7.00 for a pH 7 buffer).")
@click.option("--measured", type=float, help="What the node reads, already calibrated.")
@click.option("--record", "record_path", type=click.Path(dir_okay=False), help="Record to apply to --raw.")
@click.option("--raw", type=float, help="Raw reading (e.g. ph_raw mV) to calibrate with --record.")
@click.option("--temp", type=float, help="Water or air temperature for records that need it (°C).")
@click.option("--rh", type=float, help="Relative humidity for records that need it (%).")
@click.option("--tolerance", type=float, default=None, help="Allowed |measured − expected| (default 0.1 for pH).")
@click.option("--what", default="", help="Label for the line, e.g. 'pH 7 buffer'.")
def check_cmd(expected, measured, record_path, raw, temp, rh, tolerance, what):
    """On-site point check against a standard: prints one PASS/FAIL line (exit 1 on FAIL)."""
    from .check import point_check

    ok, line = point_check(expected, measured=measured, record_path=record_path, raw=raw, temp=temp, rh=rh,
                           tolerance=tolerance, what=what)
    click.echo(line)
    if not ok:
        raise SystemExit(1)


@cal.command("list")
@click.argument("paths", nargs=-1, type=click.Path())
def list_cmd(paths):
    """List records (files or directories; default: current directory)."""
    from .records import load, load_records

    def skipped(path, msg):
        if "is not a Sen calibration record" not in msg:   # other JSON files are simply not listed
            click.echo(f"skipped {msg}", err=True)

    recs = []
    for p in paths or (".",):
        recs += load_records(p, on_error=skipped) if Path(p).is_dir() else [load(p)]
    if not recs:
        click.echo("no records")
        return
    click.echo(f"{'node':>5} {'channel':14} {'ver':>3} {'model':16} {'status':8} {'valid from':20} {'valid to':20} file")
    for r in recs:
        d = r.doc
        click.echo(f"{d['node']:>5} {d['channel']:14} {d['version']:>3} {d['model']:16} {d['status']:8} "
                   f"{d['valid_from']:20} {str(d['valid_to'] or 'open'):20} {r.path}")


@cal.command("approve")
@click.argument("records_", metavar="RECORD...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--by", "by", required=True, help="Who approves (name or staff id).")
@click.option("--override", help="Approve despite failed acceptance checks or in-sample 24-h targets; the reason is recorded.")
@click.option("--accept-worse", "accept_worse",
              help="Approve although out of sample the curve is worse than the raw sensor or misses EPA targets; "
                   "the reason is recorded.")
def approve_cmd(records_, by, override, accept_worse):
    """Mark draft records approved: the gateway must be able to apply them, acceptance checks must pass
    (or --override) and out of sample they must beat the raw sensor and meet EPA targets (or --accept-worse)."""
    from .approval import approve, check_approvable
    from .records import load

    recs = [load(p) for p in records_]
    for r in recs:
        if r.status != "approved":
            check_approvable(r, override, accept_worse)
    for r in recs:
        if approve(r, by, override, accept_worse):
            click.echo(f"approved {r.id} ({r.path})")
        else:
            click.echo(f"{r.path}: already approved by {r.doc.get('approved_by')}")


@cal.command("push")
@click.argument("records_", metavar="RECORD...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--gateway", required=True, help="Gateway records directory, file:// URL, or http(s):// base URL.")
@click.option("--token", envvar="SEN_GATEWAY_TOKEN", default=None,
              help="The gateway's operator token, for an http(s):// gateway (or set SEN_GATEWAY_TOKEN).")
def push_cmd(records_, gateway, token):
    """Hand approved records to a gateway (drafts are refused)."""
    from .push import push

    for line in push(records_, gateway, token):
        click.echo(line)
