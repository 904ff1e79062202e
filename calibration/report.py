"""HTML calibration report: self-contained (inline SVG plots, no CDN), one section per record.

Per record: coefficients with 95 % intervals, acceptance checks, the EPA metrics table with
targets and verdicts (1-h and 24-h), scatter with the curve and its confidence/prediction
bands, time series of raw/corrected/reference, residuals against RH and temperature,
and the data issues found while reading. Records of the same channel over the same period
are treated as co-located units, which gives the SD/CV precision metrics.
"""
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sen.errors import SenError  # noqa: E402

from .inputs import file_sha256, read_colocation  # noqa: E402
from .metrics import epa_metrics  # noqa: E402
from .models import bands  # noqa: E402

COVARIATE_COLUMNS = ("rh", "air_temp", "water_temp")
CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1c2430;max-width:1180px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #2b6cb0;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px} table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
td,th{border:1px solid #cbd5e0;padding:3px 8px;text-align:right} th{background:#edf2f7} td.l,th.l{text-align:left}
.pass{background:#c6f6d5;color:#22543d;font-weight:600} .fail{background:#fed7d7;color:#742a2a;font-weight:600}
.na{color:#718096} .meta{color:#4a5568;font-size:13px} .warn{background:#fefcbf;padding:6px 10px;border-left:4px solid #d69e2e}
.plots{display:flex;flex-wrap:wrap;gap:8px} .plots svg{max-width:100%;height:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.draft{background:#feebc8;color:#7b341e} .approved{background:#c6f6d5;color:#22543d}
"""


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _fmt(v, digits=4):
    if v is None:
        return '<span class="na">n/a</span>'
    if isinstance(v, float):
        return "0" if abs(v) < 1e-9 else f"{v:.{digits}g}"
    return html.escape(str(v))


def _verdict(p):
    if p is None:
        return '<td class="na">—</td>'
    return '<td class="pass">PASS</td>' if p else '<td class="fail">FAIL</td>'


def _load_data(rec, override):
    d = rec.doc
    path = override or d["data"]["path"]
    if not Path(path).is_file():
        raise SenError(f"{rec.path}: its data file {path} is not there", "pass --data with the co-location CSV")
    warn = None
    if file_sha256(path) != d["data"]["sha256"]:
        warn = f"The data file {html.escape(str(path))} changed since this record was fitted (hash differs)."
    table = read_colocation(path, [d["target"]] + rec.inputs, optional=COVARIATE_COLUMNS)
    return table, warn


def _scatter(rec, table):
    d = rec.doc
    X = [table.cols[n] for n in rec.inputs]
    y = table.cols[d["target"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    ax.scatter(X[0], y, s=8, alpha=0.45, color="#2b6cb0", label="co-location data")
    lo, hi = d["valid_range"][rec.inputs[0]]
    grid = [np.linspace(lo, hi, 200)]
    fixed = []
    for n, x in zip(rec.inputs[1:], X[1:]):
        med = float(np.median(x))
        grid.append(np.full(200, med))
        fixed.append(f"{n} = {med:.3g}")
    yhat, conf, pred = bands(rec.model, rec.params, rec.cov, d["residual_sd"], d["dof"], grid, d.get("options", {}),
                             d.get("knots", {}))
    ax.plot(grid[0], yhat, color="#c53030", lw=2, label="fitted curve")
    ax.fill_between(grid[0], yhat - conf, yhat + conf, color="#c53030", alpha=0.35, label="95 % confidence band")
    ax.fill_between(grid[0], yhat - pred, yhat + pred, color="#c53030", alpha=0.12, label="95 % prediction band")
    if d.get("knots"):
        ax.errorbar(d["knots"]["knots_raw"], d["knots"]["knots_ntu"], yerr=d["knots"]["knots_ntu_se"], fmt="s",
                    color="black", label="standards (mean raw)")
    ax.set_xlabel(rec.inputs[0])
    ax.set_ylabel(f"reference {d['target']}")
    ax.set_title("Fit" + (f" ({', '.join(fixed)})" if fixed else ""), fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax = axes[1]
    yc = rec.predict(X)
    ax.scatter(y, yc, s=8, alpha=0.45, color="#2f855a")
    both = np.concatenate([y[np.isfinite(yc)], yc[np.isfinite(yc)]])
    lims = [float(np.min(both)), float(np.max(both))]
    ax.plot(lims, lims, "k--", lw=1, label="1:1")
    ax.set_xlabel(f"reference {d['target']}")
    ax.set_ylabel(f"corrected {d['channel']}")
    ax.set_title("Corrected vs reference", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _svg(fig)


def _timeseries(rec, table):
    d = rec.doc
    X = [table.cols[n] for n in rec.inputs]
    series = [X[0], rec.predict(X), table.cols[d["target"]]]
    # Break the lines at gaps so a missing day is not drawn as a straight ramp.
    times = np.asarray(table.times, float)
    if times.size > 3:
        dt = np.diff(times)
        cut = np.nonzero(dt > 3 * np.median(dt))[0] + 1
        times = np.insert(times, cut, times[cut - 1] + 1)
        series = [np.insert(np.asarray(s, float), cut, np.nan) for s in series]
    t = np.array(times, dtype="datetime64[s]")
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.plot(t, series[0], lw=0.9, color="#a0aec0", label=f"raw {rec.inputs[0]}")
    ax.plot(t, series[1], lw=1.1, color="#2f855a", label=f"corrected {d['channel']}")
    ax.plot(t, series[2], lw=1.1, color="#c53030", alpha=0.8, label=f"reference {d['target']}")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d\n%H:%M"))
    ax.set_title("Time series (UTC)", fontsize=11)
    ax.legend(fontsize=8, ncol=3, loc="upper right")
    ax.grid(alpha=0.3)
    return _svg(fig)


def _residuals(rec, table):
    d = rec.doc
    X = [table.cols[n] for n in rec.inputs]
    resid = table.cols[d["target"]] - rec.predict(X)
    covs = [c for c in COVARIATE_COLUMNS if c in table.cols]
    if not covs:
        return "<p class='na'>No RH or temperature column in the data: residual plots skipped.</p>"
    fig, axes = plt.subplots(1, len(covs), figsize=(5.5 * len(covs), 3.4), squeeze=False)
    for ax, c in zip(axes[0], covs):
        ax.scatter(table.cols[c], resid, s=8, alpha=0.45, color="#6b46c1")
        ax.axhline(0, color="k", lw=1)
        ax.set_xlabel(c)
        ax.set_ylabel("reference − corrected")
        ax.set_title(f"Residuals vs {c}", fontsize=11)
        ax.grid(alpha=0.3)
    return _svg(fig)


def _metrics_table(metrics):
    out = []
    p = metrics.get("points") or {}
    if p.get("n"):
        out.append(f"<h3>All paired points, no averaging (n = {p['n']})</h3><table><tr>" + "".join(
            f"<th>{k}</th>" for k in ("slope", "intercept", "r2", "rmse", "nrmse", "bias")) + "</tr><tr>" + "".join(
            f"<td>{_fmt(p.get(k))}</td>" for k in ("slope", "intercept", "r2", "rmse", "nrmse", "bias"))
            + "</tr></table><p class='meta'>EPA targets are defined on averages (below), so no verdict here.</p>")
    for label in ("1h", "24h"):
        m = metrics.get(label) or {}
        if not m.get("n"):
            out.append(f"<p class='na'>{label} averages: no complete periods in the data.</p>")
            continue
        out.append(f"<h3>{label} averages (n = {m['n']})</h3><table><tr><th class='l'>metric</th><th>value</th>"
                   "<th class='l'>EPA 2021 target</th><th>verdict</th></tr>")
        for r in m["rows"]:
            out.append(f"<tr><td class='l'>{r['metric']}</td><td>{_fmt(r['value'])}</td>"
                       f"<td class='l'>{html.escape(r['target'])}</td>{_verdict(r['pass'])}</tr>")
        out.append("</table>")
    return "".join(out)


def _out_of_sample_table(d):
    """In-sample, cross-validated and uncorrected metrics side by side: does the curve generalise, and beat raw?"""
    from .crossval import gate_failures
    cv, raw = d.get("cross_validation") or {}, d.get("uncorrected")
    cols = ("rmse", "bias", "slope", "intercept", "r2")
    head = ("<h3>In sample, out of sample, uncorrected</h3><table><tr><th class='l'>averaging</th>"
            "<th class='l'>judged on</th>" + "".join(f"<th>{c}</th>" for c in cols) + "<th>EPA targets</th></tr>")
    rows = []
    for label in ("points", "1h", "24h"):
        srcs = [("in-sample (the fitted rows)", d["metrics"].get(label) or {})]
        if cv and not cv.get("error"):
            srcs.append((f"cross-validated ({cv['folds']} contiguous time blocks)", cv.get(label) or {}))
        if raw:
            srcs.append((f"uncorrected {raw['input']}", raw.get(label) or {}))
        for name, m in srcs:
            if not m.get("n"):
                continue
            verdicts = [r["pass"] for r in m.get("rows", []) if r["pass"] is not None]
            v = "—" if not verdicts else ("PASS" if all(verdicts) else "FAIL")
            rows.append(f"<tr><td class='l'>{label}</td><td class='l'>{html.escape(name)}</td>"
                        + "".join(f"<td>{_fmt(m.get(c))}</td>" for c in cols) + f"<td>{v}</td></tr>")
    note = ""
    if cv.get("error"):
        note = f"<p class='meta'>Out of sample: not available — {html.escape(cv['error'])}.</p>"
    for why in gate_failures(d):
        note += f"<p class='warn'>{html.escape(why)}: approval needs --accept-worse with a reason.</p>"
    if d.get("accepted_worse"):
        note += f"<p class='meta'>Approved anyway: {html.escape(d['accepted_worse'])}</p>"
    return head + "".join(rows) + "</table>" + note


def _section(rec, table, warn, metrics):
    d = rec.doc
    parts = [f"<h2>Node {d['node']} · {html.escape(d['channel'])} · v{d['version']} "
             f"<span class='badge {d['status']}'>{d['status']}</span></h2>",
             f"<p class='meta'>model <b>{html.escape(d['model'])}</b> — {html.escape(d.get('model_summary', ''))}<br>"
             f"inputs {html.escape(', '.join(rec.inputs))}; reference column {html.escape(d['target'])}; "
             f"crew {html.escape(d.get('crew') or '—')}; reference instrument {html.escape(d.get('reference') or '—')}<br>"
             f"valid {d['valid_from']} → {d['valid_to'] or 'open'}; n = {d['n']}, dof = {d['dof']}, "
             f"residual SD {d['residual_sd']:.4g}; method {html.escape(d.get('method', ''))}; "
             f"hash <code>{d['hash'][:23]}…</code></p>"]
    if warn:
        parts.append(f"<p class='warn'>{warn}</p>")
    if d["coefficients"]:
        parts.append("<h3>Coefficients</h3><table><tr><th class='l'>name</th><th>value</th><th>SE</th>"
                     "<th>95 % CI</th><th class='l'>note</th></tr>")
        for c in d["coefficients"]:
            parts.append(f"<tr><td class='l'>{c['name']}</td><td>{c['value']:.6g}</td><td>{c['se']:.3g}</td>"
                         f"<td>[{c['ci95'][0]:.6g}, {c['ci95'][1]:.6g}]</td>"
                         f"<td class='l'>{'published value, held fixed' if c['fixed'] else ''}</td></tr>")
        parts.append("</table>")
    parts.append("<h3>Calibrated range</h3><table><tr><th class='l'>input</th><th>min</th><th>max</th></tr>" + "".join(
        f"<tr><td class='l'>{n}</td><td>{lo:.4g}</td><td>{hi:.4g}</td></tr>" for n, (lo, hi) in d["valid_range"].items())
        + "</table><p class='meta'>Readings outside this range are flagged out_of_range when the gateway applies the curve.</p>")
    if d.get("acceptance"):
        parts.append("<h3>Acceptance</h3><table><tr><th class='l'>check</th><th>value</th><th class='l'>target</th>"
                     "<th>verdict</th></tr>" + "".join(
                         f"<tr><td class='l'>{a['name']}</td><td>{a['value']} {a['unit']}</td>"
                         f"<td class='l'>{a['target']}</td>{_verdict(a['pass'])}</tr>" for a in d["acceptance"])
                     + "</table>")
    parts.append(_out_of_sample_table(d))
    parts.append("<h3>Metrics against EPA 2021 targets (in sample)</h3>" + _metrics_table(metrics))
    parts.append("<div class='plots'>" + _scatter(rec, table) + "</div>")
    parts.append("<div class='plots'>" + _timeseries(rec, table) + "</div>")
    parts.append("<div class='plots'>" + _residuals(rec, table) + "</div>")
    issues = d["data"].get("issues", []) + [{"kind": "note", "count": "", "message": n, "lines": "", "excluded": False}
                                             for n in d["data"].get("notes", [])]
    if issues:
        parts.append("<h3>Data issues</h3><table><tr><th class='l'>kind</th><th>rows</th><th class='l'>what</th>"
                     "<th class='l'>lines</th><th class='l'>handling</th></tr>" + "".join(
                         f"<tr><td class='l'>{i['kind']}</td><td>{i['count']}</td><td class='l'>{html.escape(i['message'])}</td>"
                         f"<td class='l'>{html.escape(str(i['lines']))}</td>"
                         f"<td class='l'>{'excluded' if i['excluded'] else 'kept'}</td></tr>" for i in issues)
                     + "</table>")
    else:
        parts.append("<p class='meta'>Data: no bad rows, gaps or unit problems found.</p>")
    return "".join(parts)


def write_report(records, out, data_override=None, on_record=None) -> Path:
    if data_override and len(records) > 1:
        raise SenError("--data works with one record at a time", "run `sen cal report` once per record")
    loaded = []
    for rec in records:
        table, warn = _load_data(rec, data_override)
        loaded.append((rec, table, warn))
    sections = []
    for rec, table, warn in loaded:
        # Other records of the same channel are co-located units: they give SD and CV.
        X = [table.cols[n] for n in rec.inputs]
        pred = rec.predict(X)
        ok = np.isfinite(pred)
        others = []
        for orec, otab, _ in loaded:
            if orec is not rec and orec.channel == rec.channel:
                op = orec.predict([otab.cols[n] for n in orec.inputs])
                good = np.isfinite(op)
                others.append((otab.times[good], op[good]))
        metrics = epa_metrics(table.times[ok], pred[ok], table.cols[rec.doc["target"]][ok], rec.channel, others) \
            if others else rec.doc["metrics"]
        sections.append(_section(rec, table, warn, metrics))
        if on_record:
            on_record()
    title = "Sen calibration report"
    doc = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
           f"<style>{CSS}</style></head><body><h1>{title}</h1>"
           f"<p class='meta'>{len(records)} record(s). Plots are rendered inline (no network). Targets: US EPA 2021 "
           "performance targets for PM2.5 sensors; other channels show metrics without a verdict.</p>"
           + "".join(sections) + "</body></html>")
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(doc, encoding="utf-8")
    return p
