// Small SVG charts drawn in the browser: time series (lines, min-max band, flag markers) and bars.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 200, R = 10, T = 10, B = 26;
  // on a phone the drawing shows at about half size with larger type (style.css): wider margin per character
  const charW = () => (window.matchMedia && window.matchMedia("(max-width: 640px)").matches ? 11.5 : 6.8);

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    const span = hi - lo, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function frame(svg, t0, t1, lo, hi, fmtTime, fmtY) {
    const ticks = niceTicks(lo, hi, 4);
    const L = 10 + Math.max(2, ...ticks.map(v => fmtY(v).length)) * charW();
    const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const g = el("g", {"class": "axis"}, svg);
    ticks.forEach(v => {
      el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid"}, g);
      const tx = el("text", {x: L - 4, y: y(v) + 4, "text-anchor": "end"}, g); tx.textContent = fmtY(v);
    });
    const span = t1 - t0, steps = [3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400];
    const step = steps.find(s => span / s <= 7) || 7 * 86400;
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      el("line", {x1: x(t), x2: x(t), y1: T, y2: H - B, "class": "grid"}, g);
      const tx = el("text", {x: x(t), y: H - 8, "text-anchor": "middle"}, g); tx.textContent = fmtTime(t, step);
    }
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, "class": "plotbox"}, g);
    return {x, y, L};
  }

  function path(ts, ys, x, y) {
    let d = "", pen = false;
    for (let i = 0; i < ts.length; i++) {
      const v = ys[i];
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(ts[i]).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    return d;
  }

  // opts: {t0, t1, lines: [{t, y, cls, label}], band: {t, lo, hi}, marks: [{t, y, q, title}], fmtTime, fmtY, limits: [{v, cls}]}
  function series(opts) {
    const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, "class": "chart", role: "img"});
    let lo = Infinity, hi = -Infinity;
    const take = v => { if (v !== null && v !== undefined && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } };
    opts.lines.forEach(l => l.y.forEach(take));
    if (opts.band) { opts.band.lo.forEach(take); opts.band.hi.forEach(take); }
    (opts.marks || []).forEach(m => take(m.y));
    (opts.limits || []).forEach(m => take(m.v));
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    lo -= pad; hi += pad;
    const {x, y, L} = frame(svg, opts.t0, opts.t1, lo, hi, opts.fmtTime, opts.fmtY);
    if (opts.band && opts.band.t.length) {
      const b = opts.band;
      let d = "";
      for (let i = 0; i < b.t.length; i++) if (b.hi[i] !== null) d += (d ? "L" : "M") + x(b.t[i]).toFixed(1) + " " + y(b.hi[i]).toFixed(1);
      for (let i = b.t.length - 1; i >= 0; i--) if (b.lo[i] !== null) d += "L" + x(b.t[i]).toFixed(1) + " " + y(b.lo[i]).toFixed(1);
      if (d) el("path", {d: d + "Z", "class": "band"}, svg);
    }
    (opts.limits || []).forEach(m => el("line", {x1: L, x2: W - R, y1: y(m.v), y2: y(m.v), "class": "limit " + (m.cls || "")}, svg));
    opts.lines.forEach(l => {
      const p = el("path", {d: path(l.t, l.y, x, y), "class": "line " + l.cls}, svg);
      if (l.t.length === 1) el("circle", {cx: x(l.t[0]), cy: y(l.y[0]), r: 2.5, "class": "dot " + l.cls}, svg);
      return p;
    });
    (opts.marks || []).forEach(m => {
      const yy = (m.y === null || m.y === undefined) ? H - B - 3 : y(m.y);
      const c = el("circle", {cx: x(m.t).toFixed(1), cy: yy.toFixed(1), r: 3.2, "class": "flag"}, svg);
      const tt = el("title", {}, c); tt.textContent = m.title;
    });
    return svg;
  }

  // bars: [{t, v, fill, label, title}], t is the bar's start; width in seconds
  function bars(opts) {
    const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, "class": "chart bars", role: "img"});
    let hi = opts.max || 0;
    opts.bars.forEach(b => { if (b.v !== null && b.v > hi) hi = b.v; });
    if (!(hi > 0)) hi = 1;
    hi *= 1.12;
    const t0 = opts.t0, t1 = opts.t1;
    const {x, y, L} = frame(svg, t0, t1, 0, hi, opts.fmtTime, opts.fmtY || (v => String(v)));
    (opts.limits || []).forEach(m => el("line", {x1: L, x2: W - R, y1: y(m.v), y2: y(m.v), "class": "limit"}, svg));
    opts.bars.forEach(b => {
      const x0 = x(b.t), x1 = x(b.t + opts.width);
      const w = Math.max(1, (x1 - x0) * 0.82), xc = x0 + (x1 - x0 - w) / 2;
      if (b.v === null || b.v === undefined) {
        const nb = el("rect", {x: xc, y: H - B - 2, width: w, height: 2, "class": "nobar"}, svg);
        if (b.title) { const tt = el("title", {}, nb); tt.textContent = b.title; }
        return;
      }
      const r = el("rect", {x: xc.toFixed(1), y: y(b.v).toFixed(1), width: w.toFixed(1), height: Math.max(0.5, y(0) - y(b.v)).toFixed(1),
                            fill: b.fill || "#4a7bd0", "class": "bar"}, svg);
      if (b.title) { const tt = el("title", {}, r); tt.textContent = b.title; }
      if (b.label !== undefined && w > 18) {
        const tx = el("text", {x: xc + w / 2, y: y(b.v) - 3, "text-anchor": "middle", "class": "barlabel"}, svg);
        tx.textContent = b.label;
      }
    });
    return svg;
  }

  window.SenChart = {series, bars};
})();
