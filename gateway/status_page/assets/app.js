// Sen gateway status page: hash-routed views over the JSON API, live via Server-Sent Events.
(function () {
  "use strict";
  const I18N = window.SEN_I18N;
  let lang = localStorage.getItem("sen.lang") || "vi";
  let session = {actions_enabled: false, tz: "Asia/Ho_Chi_Minh", gateway_id: ""};
  let current = null, inflight = false, pending = false, lastDoc = null;

  const CH_VI = {air_temp: "Nhiệt độ không khí", rh: "Độ ẩm tương đối", pressure: "Áp suất khí quyển", pm1: "Bụi PM1",
    pm25: "Bụi PM2.5", pm10: "Bụi PM10", battery: "Điện áp pin", water_temp: "Nhiệt độ nước", ph: "pH",
    conductivity: "Độ dẫn điện", turbidity: "Độ đục", water_level: "Mực nước", dissolved_oxygen: "Oxy hoà tan (DO)",
    rain_tips: "Số lần lật gầu", rain_depth: "Lượng mưa trong chu kỳ", rain_intensity: "Cường độ mưa (đỉnh 1 phút)"};
  const CH_EN = {air_temp: "Air temperature", rh: "Relative humidity", pressure: "Pressure", pm1: "PM1", pm25: "PM2.5",
    pm10: "PM10", battery: "Battery voltage", water_temp: "Water temperature", ph: "pH", conductivity: "Conductivity",
    turbidity: "Turbidity", water_level: "Water level", dissolved_oxygen: "Dissolved oxygen",
    rain_tips: "Bucket tips", rain_depth: "Rain in interval", rain_intensity: "Rain intensity (1-min peak)"};

  function t(key, vars) {
    let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    for (const k in (vars || {})) s = s.replace("{" + k + "}", vars[k]);
    return s;
  }
  function chName(c) { return (lang === "vi" ? CH_VI : CH_EN)[c.name || c] || c.quantity || c.name || c; }

  // h("div", {class: "x", onclick: fn}, [children or text])
  function h(tag, attrs, kids) {
    const e = document.createElement(tag);
    for (const k in (attrs || {})) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else if (k === "bg") e.style.background = v;
      else if (k === "fg") e.style.color = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    (Array.isArray(kids) ? kids : [kids]).forEach(c => {
      if (c === null || c === undefined || c === false) return;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
    return e;
  }

  const loc = () => (lang === "vi" ? "vi-VN" : "en-GB");
  function fmtNum(v, d) {
    if (v === null || v === undefined) return "—";
    return Number(v).toLocaleString(loc(), {maximumFractionDigits: d === undefined ? 2 : d, minimumFractionDigits: 0});
  }
  function fmtTime(ts, opts) {
    if (ts === null || ts === undefined) return "—";
    return new Intl.DateTimeFormat(loc(), Object.assign({timeZone: session.tz, hour12: false}, opts ||
      {day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"})).format(new Date(ts * 1000));
  }
  function axisTime(ts, step) {
    return step >= 86400 ? fmtTime(ts, {day: "2-digit", month: "2-digit"}) : fmtTime(ts, {hour: "2-digit", minute: "2-digit"});
  }
  function ago(s) {
    if (s === null || s === undefined) return t("never");
    if (s < 90) return t("ago.s", {n: Math.round(s)});
    if (s < 5400) return t("ago.m", {n: Math.round(s / 60)});
    if (s < 172800) return t("ago.h", {n: Math.round(s / 3600)});
    return t("ago.d", {n: Math.round(s / 86400)});
  }
  function rgb(c) { return `rgb(${c[0]},${c[1]},${c[2]})`; }
  function ink(c) { return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) > 150 ? "#111" : "#fff"; }
  function catName(cat) { return cat ? (lang === "vi" ? cat.vi : cat.en) : t("air.nodata"); }
  function flagText(q) {
    const names = [[1, "missing"], [2, "out_of_range"], [4, "warming_up"], [8, "stuck"], [16, "calibrating"]];
    return names.filter(([b]) => q & b).map(([, n]) => t("f." + n)).join(", ") || t("f.ok");
  }

  // --- API --------------------------------------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"});
    const body = await r.json();
    if (!r.ok) throw new Error((body.error || r.status) + (body.fix ? " — " + body.fix : ""));
    return body;
  }
  function cookie(name) {
    const m = document.cookie.split("; ").find(c => c.startsWith(name + "="));
    return m ? decodeURIComponent(m.slice(name.length + 1)) : "";
  }
  function hasToken() {
    if (sessionStorage.getItem("sen.token")) return true;
    toast(t("err.token"), true);
    return false;
  }
  async function act(path, body) {
    const token = sessionStorage.getItem("sen.token") || "";
    if (!token) { toast(t("err.token"), true); return null; }
    const r = await fetch("/api/actions/" + path, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token, "X-Sen-CSRF": cookie("sen_csrf")},
      body: JSON.stringify(body)});
    const res = await r.json().catch(() => ({error: String(r.status)}));
    if (!r.ok) { toast(`${t("err.generic")} ${r.status}: ${res.error}${res.fix ? " — " + res.fix : ""}`, true); return null; }
    return res.result;
  }
  function toast(msg, bad) {
    const el = document.getElementById("toast");
    el.textContent = msg; el.className = "toast" + (bad ? " bad" : ""); el.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  // --- views ------------------------------------------------------------------------------
  function kindBadge(k) { return h("span", {class: "kind kind-" + k}, t("kind." + k)); }

  function viewOverview(d) {
    const main = [];
    main.push(h("div", {class: "summary"}, [
      h("h1", {}, t("ov.title")),
      h("span", {class: "stat"}, [h("b", {}, String(d.nodes.length)), " " + t("ov.nodes")]),
      h("span", {class: "stat" + (d.problems ? " warn" : "")}, [h("b", {id: "problem-count"}, String(d.problems)), " " + t("ov.problems")]),
      h("span", {class: "stat"}, [h("b", {}, fmtNum(d.readings, 0)), " " + t("ov.readings")]),
    ]));
    if (!d.nodes.length) { main.push(h("p", {class: "muted"}, t("ov.none"))); return main; }
    const cols = ["node", "kind", "name", "last_seen", "link", "battery", "counter", "reboots", "flags", "mic"];
    const head = h("tr", {}, cols.map(c => h("th", {}, t("col." + c))));
    const rows = d.nodes.map(n => {
      const p = new Set(n.problems);
      const tr = h("tr", {class: n.problems.length ? "problem" : "", "data-node": n.id}, [
        h("td", {"data-label": t("col.node")}, h("a", {href: "#/node/" + n.id}, "#" + n.id)),
        h("td", {"data-label": t("col.kind")}, kindBadge(n.kind)),
        h("td", {"data-label": t("col.name")}, n.name),
        h("td", {"data-label": t("col.last_seen"), class: p.has("silent") ? "bad" : "", title: fmtTime(n.last_seen)},
          [ago(n.age_s), p.has("silent") ? h("span", {class: "pill bad"}, t("p.silent")) : null]),
        h("td", {"data-label": t("col.link")}, `${fmtNum(n.rssi, 1)} dBm / ${fmtNum(n.snr, 1)} dB` + (n.copies > 1 ? ` (${n.copies} ${t("node.copies")})` : "")),
        h("td", {"data-label": t("col.battery"), class: p.has("low_battery") ? "bad" : ""},
          [n.battery === null ? "—" : fmtNum(n.battery, 2) + " V", p.has("low_battery") ? h("span", {class: "pill bad"}, t("p.low_battery")) : null]),
        h("td", {"data-label": t("col.counter"), class: "num"}, fmtNum(n.counter, 0)),
        h("td", {"data-label": t("col.reboots"), class: "num"}, String(n.reboots)),
        h("td", {"data-label": t("col.flags"), class: p.has("sensor_flags") ? "bad" : ""},
          n.flags.length ? n.flags.map(f => h("span", {class: "pill warn"}, t("f." + f))) : "—"),
        h("td", {"data-label": t("col.mic"), class: "num " + (p.has("mic_failures") ? "bad" : "")}, String(n.mic_failures)),
      ]);
      return tr;
    });
    main.push(h("div", {class: "tablewrap"}, h("table", {class: "nodes cards"}, [h("thead", {}, head), h("tbody", {}, rows)])));
    const rej = Object.entries(d.rejections || {});
    main.push(h("h2", {}, t("rej.title")));
    main.push(rej.length ? h("div", {class: "chips"}, rej.map(([k, v]) => h("span", {class: "pill"}, `${k}: ${fmtNum(v, 0)}`)))
      : h("p", {class: "muted"}, t("rej.none")));
    return main;
  }

  function calBox(cal, node) {
    const box = h("div", {class: "calbox"}, [h("h4", {}, t("cal.title"))]);
    if (!cal || !cal.active) box.appendChild(h("p", {class: "muted"}, t("cal.none")));
    if (cal && cal.active) {
      const a = cal.active;
      box.appendChild(h("p", {}, [h("b", {}, a.id), ` · ${t("cal.model")}: ${a.model} · ${t("cal.approved_by")} ${a.approved_by || "—"} · ${t("cal.valid")} ${a.valid_from}`]));
      if (a.coefficients.length) box.appendChild(h("p", {class: "muted"}, t("cal.coef") + ": " +
        a.coefficients.map(c => `${c.name} = ${fmtNum(c.value, 4)}`).join(", ")));
      box.appendChild(metricsTable(a));
    }
    if (cal && cal.drafts.length) {
      box.appendChild(h("h4", {}, t("cal.drafts")));
      cal.drafts.forEach(dr => {
        const btn = h("button", {type: "button", class: "action", "data-approve": dr.file, disabled: !session.actions_enabled, onclick: async () => {
          if (!hasToken()) return;
          let override = null;
          if (dr.failed.length) { override = prompt(t("cal.override") + " " + dr.failed.join(", ")); if (!override) return; }
          const by = sessionStorage.getItem("sen.by") || "operator";
          const r = await act("approve", {file: dr.file, by, override});
          if (r) { toast(`${r.id}: ${r.status}`); refresh(); }
        }}, t("cal.approve"));
        box.appendChild(h("div", {class: "draft"}, [h("b", {}, dr.id), " ", dr.model, " ",
          dr.failed.length ? h("span", {class: "pill bad"}, t("cal.fails", {x: dr.failed.join(", ")})) : h("span", {class: "pill ok"}, "✓"), " ", btn,
          metricsTable(dr)]));
      });
    }
    return box;
  }
  function metricsTable(rec) {
    const rows = [];
    for (const [label, list] of Object.entries(rec.metrics || {})) list.forEach(r => rows.push(h("tr", {}, [
      h("td", {}, `${label} ${r.metric}`), h("td", {class: "num"}, fmtNum(r.value, 3)), h("td", {}, r.target || ""),
      h("td", {class: r.pass === false ? "bad" : ""}, r.pass === null ? "—" : (r.pass ? "✓" : "✗"))])));
    (rec.acceptance || []).forEach(a => rows.push(h("tr", {}, [h("td", {}, a.name), h("td", {class: "num"}, fmtNum(a.value, 2) + " " + (a.unit || "")),
      h("td", {}, a.target || ""), h("td", {class: a.pass ? "" : "bad"}, a.pass ? "✓" : "✗")])));
    if (!rows.length) return null;
    return h("table", {class: "metrics"}, [h("thead", {}, h("tr", {}, ["cal.metric", "cal.value", "cal.target", "cal.pass"].map(k => h("th", {}, t(k))))), h("tbody", {}, rows)]);
  }

  function viewNode(d, route) {
    const n = d.node, out = [];
    out.push(h("p", {}, h("a", {href: "#/overview"}, t("node.back"))));
    out.push(h("div", {class: "summary"}, [h("h1", {}, [t("node.title", {id: n.id}), " · ", n.name]), kindBadge(n.kind),
      ...n.problems.map(p => h("span", {class: "pill bad"}, t("p." + p)))]));
    out.push(h("p", {class: "facts"}, [
      `${t("col.last_seen")}: ${ago(n.age_s)} (${fmtTime(n.last_seen)}) · ${t("node.interval")} ${n.interval_s ? Math.round(n.interval_s) + " s" : "—"} · `,
      `RSSI ${fmtNum(n.rssi, 1)} dBm, SNR ${fmtNum(n.snr, 1)} dB${n.best_gateway ? " @ " + n.best_gateway : ""} · `,
      `${t("col.battery")} ${n.battery === null ? "—" : fmtNum(n.battery, 2) + " V"} · ${t("col.counter")} ${fmtNum(n.counter, 0)} · `,
      `${t("col.reboots")} ${n.reboots} · ${t("node.lost")} ${n.lost} · ${t("col.mic")} ${n.mic_failures}`]));
    const win = d.window.name;
    out.push(h("div", {class: "seg"}, [t("node.window") + ": ",
      ...["24h", "7d"].map(w => h("a", {href: `#/node/${n.id}/${w}`, class: w === win ? "on" : "", "data-window": w}, t("w." + w))),
      session.actions_enabled ? h("button", {type: "button", class: "action subtle", onclick: async () => {
        if (!hasToken() || !confirm(t("node.rotate.confirm", {id: n.id}))) return;
        const r = await act("rotate-key", {node: n.id});
        if (r) toast(`${t("node.newkey")}: ${r.key}`);
      }}, t("node.rotate")) : null]));
    const grid = h("div", {class: "grid"});
    d.channels.forEach(c => {
      const s = c.series, latest = c.latest;
      const card = h("section", {class: "card", "data-channel": c.name}, [
        h("h3", {}, [chName(c), " ", h("span", {class: "muted"}, c.unit)]),
        h("p", {class: "latest"}, [h("b", {class: "value"}, latest ? fmtNum(latest.value, 3) : "—"), " " + c.unit,
          latest && latest.raw !== latest.value ? h("span", {class: "muted"}, ` (${t("node.raw")} ${fmtNum(latest.raw, 3)})`) : null,
          latest && latest.qflags ? h("span", {class: "pill warn"}, flagText(latest.qflags)) : null,
          h("span", {class: "muted small"}, " " + (latest ? fmtTime(latest.time) : ""))]),
      ]);
      if (!s.n) card.appendChild(h("p", {class: "muted"}, t("node.nodata")));
      else {
        const lines = [{t: s.t, y: s.raw, cls: "raw"}, {t: s.t, y: s.cal, cls: "cal"}];
        const marks = s.flags.map(f => ({t: f[0], y: f[2] !== null ? f[2] : f[1], q: f[3], title: `${fmtTime(f[0])}: ${flagText(f[3])}`}));
        card.appendChild(SenChart.series({t0: d.window.t0, t1: d.window.t1, lines, band: s.downsampled ? {t: s.t, lo: s.lo, hi: s.hi} : null,
          marks, fmtTime: axisTime, fmtY: v => fmtNum(v, 2)}));
        card.appendChild(h("p", {class: "legend small"}, [h("i", {class: "sw cal"}), t("node.cal"), h("i", {class: "sw raw"}), t("node.raw"),
          h("i", {class: "sw flag"}), `${t("node.flagged")} (${s.n_flagged})`, ` · ${fmtNum(s.n, 0)} ${t("node.points")}`,
          s.downsampled ? " · " + t("node.downsampled", {s: Math.round(s.bucket_s)}) : ""]));
      }
      if (c.calibration || ["pm25", "pm10", "ph", "conductivity", "turbidity", "dissolved_oxygen", "water_level"].includes(c.name))
        card.appendChild(calBox(c.calibration, n));
      grid.appendChild(card);
    });
    out.push(grid);
    return out;
  }

  function aqiBadge(v, cat, big) {
    const c = cat ? cat.rgb : [200, 200, 200];
    return h("span", {class: "aqi" + (big ? " big" : ""), bg: rgb(c), fg: ink(c), "data-category": cat ? cat.vi : ""},
      [h("b", {}, v === null || v === undefined ? "—" : String(v)), " ", catName(cat)]);
  }

  function viewAir(d) {
    const out = [h("h1", {}, t("air.title"))];
    if (!d.stations.length) out.push(h("p", {class: "muted"}, t("air.none")));
    d.stations.forEach(s => {
      const card = h("section", {class: "card wide", "data-station": s.id}, [
        h("h2", {}, [h("a", {href: "#/node/" + s.id}, "#" + s.id), " ", s.name]),
        h("div", {class: "now"}, [t("air.now") + ": ", s.current ? aqiBadge(s.current.aqi, s.current.category, true) : aqiBadge(null, null, true),
          s.current ? h("span", {class: "muted small"}, ` NowCast PM2.5 ${fmtNum(s.current.nowcast.pm25, 1)}, PM10 ${fmtNum(s.current.nowcast.pm10, 1)} µg/m³ · ${fmtTime(s.current.t, {hour: "2-digit", minute: "2-digit"})}`) : null]),
        h("h3", {}, t("air.hourly")),
        SenChart.bars({t0: s.hourly[0].t, t1: s.hourly[s.hourly.length - 1].t + 3600, width: 3600, fmtTime: axisTime,
          bars: s.hourly.map(r => ({t: r.t, v: r.aqi, fill: r.category ? rgb(r.category.rgb) : null, label: r.aqi,
            title: `${fmtTime(r.t, {hour: "2-digit", minute: "2-digit"})} · VN_AQI ${r.aqi === null ? "—" : r.aqi} ${catName(r.category)}`}))}),
        h("h3", {}, t("air.daily")),
        h("div", {class: "days"}, s.daily.map(r => h("div", {class: "day"}, [
          h("span", {class: "muted small"}, fmtTime(r.t, {weekday: "short", day: "2-digit", month: "2-digit"}) + (r.partial ? " " + t("air.partial") : "")),
          aqiBadge(r.aqi, r.category)]))),
        h("h3", {}, t("air.qcvn")),
        h("p", {}, ["pm25", "pm10"].map(k => {
          const q = s.qcvn05_24h[k];
          return h("span", {class: "pill " + (q.exceeds ? "bad" : q.exceeds === false ? "ok" : "")},
            `${k === "pm25" ? "PM2.5" : "PM10"} ${fmtNum(q.mean, 1)} / ${t("air.limit")} ${q.limit} µg/Nm³ ${q.exceeds === null ? "" : (q.exceeds ? t("air.exceeds") : t("air.within"))}`);
        })),
      ]);
      out.push(card);
    });
    out.push(h("h3", {}, t("air.legend")));
    out.push(h("div", {class: "chips"}, d.categories.map(c => h("span", {class: "aqi", bg: rgb(c.rgb), fg: ink(c.rgb)}, `${c.lo}–${c.hi} ${lang === "vi" ? c.vi : c.en}`))));
    return out;
  }

  function viewWater(d) {
    const out = [h("h1", {}, t("water.title"))];
    if (!d.water.length) out.push(h("p", {class: "muted"}, t("water.none")));
    d.water.forEach(s => {
      const rows = s.values.map(v => {
        const L = v.limit;
        let lim = t("water.nolimit"), cls = "";
        if (L) {
          lim = L.max === null ? `≥ ${fmtNum(L.min, 1)}` : `${fmtNum(L.min, 1)} – ${fmtNum(L.max, 1)}`;
          cls = L.ok === false ? "bad" : L.ok ? "ok" : "";
        }
        return h("tr", {class: cls === "bad" ? "problem" : "", "data-param": v.channel}, [h("td", {"data-label": t("water.param")}, chName(v.channel)),
          h("td", {"data-label": t("water.value"), class: "num " + cls}, [fmtNum(v.value, 2) + " " + v.unit, v.qflags ? h("span", {class: "pill warn"}, flagText(v.qflags)) : null]),
          h("td", {"data-label": t("water.limit", {c: d.water_class})}, lim),
          h("td", {"data-label": t("water.class")}, L && L.class_met ? h("span", {class: "pill " + (L.ok ? "ok" : "bad")}, L.class_met) : "—"),
          h("td", {"data-label": t("col.last_seen"), class: "small muted"}, fmtTime(v.time))]);
      });
      out.push(h("section", {class: "card wide", "data-station": s.id}, [h("h2", {}, [h("a", {href: "#/node/" + s.id}, "#" + s.id), " ", s.name]),
        h("table", {class: "cards"}, [h("thead", {}, h("tr", {}, [t("water.param"), t("water.value"), t("water.limit", {c: d.water_class}), t("water.class"), t("col.last_seen")].map(x => h("th", {}, x)))),
          h("tbody", {}, rows)])]));
    });
    out.push(h("h1", {}, t("rain.title")));
    if (!d.rain.length) out.push(h("p", {class: "muted"}, t("rain.none")));
    d.rain.forEach(r => {
      const card = h("section", {class: "card wide", "data-station": r.id}, [h("h2", {}, [h("a", {href: "#/node/" + r.id}, "#" + r.id), " ", r.name]),
        h("p", {}, [t("rain.intensity") + ": ", h("b", {class: "value"}, r.intensity ? fmtNum(r.intensity.value, 1) : "—"), " mm/h",
          r.intensity ? h("span", {class: "muted small"}, " " + fmtTime(r.intensity.time)) : null])]);
      if (r.daily.length) {
        card.appendChild(h("h3", {}, t("rain.daily")));
        card.appendChild(SenChart.bars({t0: r.daily[0].t, t1: r.daily[r.daily.length - 1].t + 86400, width: 86400, fmtTime: axisTime,
          fmtY: v => fmtNum(v, 1), bars: r.daily.map(x => ({t: x.t, v: x.total_mm, fill: "#2f7dd1", label: x.total_mm === null ? undefined : fmtNum(x.total_mm, 1),
            title: `${x.day}: ${fmtNum(x.total_mm, 1)} mm`}))}));
        card.appendChild(h("h3", {}, t("rain.hourly")));
        card.appendChild(SenChart.bars({t0: r.hourly[0].t, t1: r.hourly[r.hourly.length - 1].t + 3600, width: 3600, fmtTime: axisTime,
          fmtY: v => fmtNum(v, 1), bars: r.hourly.map(x => ({t: x.t, v: x.total_mm, fill: "#6aa6e8", title: `${fmtTime(x.t)}: ${fmtNum(x.total_mm, 1)} mm`}))}));
      }
      out.push(card);
    });
    return out;
  }

  function viewForwarders(d) {
    const out = [h("h1", {}, t("fw.title"))];
    if (!d.forwarders.length) { out.push(h("p", {class: "muted"}, t("fw.none"))); return out; }
    const cols = ["fw.name", "fw.health", "fw.depth", "fw.lag", "fw.last_ok", "fw.last_error", "fw.tput", "fw.sent", "fw.dropped", ""];
    const rows = d.forwarders.map(f => {
      const hours = h("input", {type: "number", min: "1", max: "1440", value: "24", class: "hours", "aria-label": t("fw.hours")});
      return h("tr", {class: f.healthy ? "" : "problem", "data-forwarder": f.name}, [
        h("td", {"data-label": t("fw.name")}, h("b", {}, f.name)),
        h("td", {"data-label": t("fw.health")}, h("span", {class: "pill " + (f.healthy ? "ok" : "bad")}, f.healthy ? t("fw.ok") : t("fw.failing"))),
        h("td", {"data-label": t("fw.depth"), class: "num depth"}, fmtNum(f.depth, 0)),
        h("td", {"data-label": t("fw.lag")}, f.lag_s === null ? "—" : ago(f.lag_s).replace(/ (ago|trước)$/, "")),
        h("td", {"data-label": t("fw.last_ok")}, f.last_ok ? fmtTime(f.last_ok) : t("never")),
        h("td", {"data-label": t("fw.last_error"), class: f.healthy ? "small" : "small bad"}, f.last_error ? `${fmtTime(f.last_error_time)} ${f.last_error}` : "—"),
        h("td", {"data-label": t("fw.tput"), class: "num"}, f.throughput_per_min === null ? "—" : `${fmtNum(f.throughput_per_min, 1)} ${t("fw.per_min")}`),
        h("td", {"data-label": t("fw.sent"), class: "num"}, fmtNum(f.sent, 0)),
        h("td", {"data-label": t("fw.dropped"), class: "num " + (f.dropped ? "bad" : "")}, fmtNum(f.dropped, 0)),
        h("td", {}, session.actions_enabled ? [hours, " " + t("fw.hours") + " ", h("button", {type: "button", class: "action", onclick: async () => {
          const r = await act("resend", {forwarder: f.name, hours: Number(hours.value)});
          if (r) { toast(t("fw.resent", {n: r.requeued})); refresh(); }
        }}, t("fw.resend"))] : null),
      ]);
    });
    out.push(h("div", {class: "tablewrap"}, h("table", {class: "cards"}, [h("thead", {}, h("tr", {}, cols.map(c => h("th", {}, c ? t(c) : "")))), h("tbody", {}, rows)])));
    return out;
  }

  // --- routing & live updates --------------------------------------------------------------
  function route() {
    const parts = (location.hash || "#/overview").slice(2).split("/");
    if (parts[0] === "node" && /^\d+$/.test(parts[1])) {
      const w = parts[2] === "7d" ? "7d" : "24h";
      return {name: "node", api: `/api/node/${parts[1]}?window=${w}`, render: viewNode};
    }
    const map = {overview: viewOverview, air: viewAir, water: viewWater, forwarders: viewForwarders};
    const name = map[parts[0]] ? parts[0] : "overview";
    return {name, api: "/api/" + name, render: map[name]};
  }

  function draw(r, doc) {
    const main = document.getElementById("main");
    const y = window.scrollY;
    main.replaceChildren(...[].concat(r.render(doc, r)).filter(Boolean));
    window.scrollTo(0, y);
    document.body.dataset.view = r.name;
    document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("on", a.getAttribute("href") === "#/" + r.name));
    document.getElementById("updated").textContent = `${t("updated")} ${fmtTime(doc.now || Date.now() / 1000)}`;
    main.dataset.stamp = String(doc.now || "");
  }

  async function refresh() {
    if (inflight) { pending = true; return; }
    inflight = true;
    const r = route();
    try {
      const doc = await getJSON(r.api);
      if (route().api === r.api) { current = r; lastDoc = doc; draw(r, doc); }
    } catch (e) {
      document.getElementById("main").replaceChildren(h("p", {class: "bad"}, String(e.message || e)));
    } finally {
      inflight = false;
      if (pending) { pending = false; refresh(); }
    }
  }

  function live() {
    const dot = document.getElementById("live");
    let es;
    try { es = new EventSource("/api/events"); } catch (e) { setInterval(refresh, 10000); return; }
    es.addEventListener("open", () => { dot.className = "live on"; dot.textContent = t("live.on"); });
    es.addEventListener("error", () => { dot.className = "live off"; dot.textContent = t("live.off"); });
    es.addEventListener("change", () => { refresh(); });
  }

  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach(e => { e.textContent = t(e.dataset.i18n); });
    document.querySelectorAll("[data-i18n-title]").forEach(e => { e.title = t(e.dataset.i18nTitle); });
    document.getElementById("lang").textContent = lang === "vi" ? "EN" : "VI";
    document.title = (lang === "vi" ? "Sen — trạng thái cổng " : "Sen — gateway status ") + (session.gateway_id || "");
    const dot = document.getElementById("live");
    dot.textContent = dot.classList.contains("on") ? t("live.on") : dot.classList.contains("off") ? t("live.off") : "";
    opState();
    if (current && lastDoc) draw(current, lastDoc);
  }

  function opState() {
    const s = document.getElementById("opstate");
    s.textContent = !session.actions_enabled ? t("op.disabled") : sessionStorage.getItem("sen.token") ? t("op.saved") : t("op.none");
  }

  async function boot() {
    try { session = await getJSON("/api/session"); } catch (e) { /* keep defaults */ }
    document.getElementById("gw").textContent = session.gateway_id || "";
    document.getElementById("lang").addEventListener("click", () => { lang = lang === "vi" ? "en" : "vi"; localStorage.setItem("sen.lang", lang); applyLang(); });
    document.getElementById("opbtn").addEventListener("click", () => { const p = document.getElementById("operator"); p.hidden = !p.hidden; });
    document.getElementById("opby").value = sessionStorage.getItem("sen.by") || "";
    document.getElementById("operator").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("sen.token", document.getElementById("optoken").value.trim());
      sessionStorage.setItem("sen.by", document.getElementById("opby").value.trim());
      document.getElementById("optoken").value = ""; opState();
    });
    document.getElementById("opclear").addEventListener("click", () => { sessionStorage.removeItem("sen.token"); opState(); });
    window.addEventListener("hashchange", () => { lastDoc = null; document.getElementById("main").replaceChildren(h("p", {class: "muted"}, t("loading"))); refresh(); });
    applyLang();
    await refresh();
    live();
  }
  document.addEventListener("DOMContentLoaded", boot);
})();
