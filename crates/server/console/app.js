// Steward console: a client of the admin API. Every value from the server is shown with
// textContent (never parsed as HTML), charts are SVG built element by element, and the
// page's CSP forbids inline script and style anyway.
"use strict";

const TOKEN_KEY = "steward.token";
const SVG = "http://www.w3.org/2000/svg";
let me = null;

// ---------------------------------------------------------------------------------------
// Building elements

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// An SVG <title>: the browser's tooltip, and what screen readers announce.
function tip(text) {
  return svg("title", { text });
}

function table(headers, rows, id, opts) {
  const o = opts || {};
  const head = el("thead", {}, el("tr", {}, ...headers.map((h, i) => el("th", { class: (o.numeric || []).includes(i) ? "num" : null, text: h }))));
  const body = el("tbody");
  rows.forEach((r, n) => {
    const cls = o.rowClass ? o.rowClass(n) : null;
    body.append(el("tr", { class: cls }, ...r.map((c, i) => el("td", { class: (o.numeric || []).includes(i) ? "num" : null },
      c instanceof Node || Array.isArray(c) ? c : String(c ?? "")))));
  });
  if (!rows.length && o.empty) {
    body.append(el("tr", {}, el("td", { colspan: String(headers.length), class: "empty", text: o.empty })));
  }
  return el("div", { class: "table-wrap" }, el("table", id ? { id } : {}, head, body));
}

function link(href, text, cls) {
  return el("a", { href, text, class: cls });
}

function mono(text) {
  return el("span", { class: "mono", text });
}

// Short values (labels, permissions) side by side, wrapping.
function chips(values) {
  return el("div", { class: "chips" }, ...values.map((v) => el("span", { class: "chip", text: v })));
}

function badge(text, cls) {
  return el("span", { class: "badge " + (cls || ""), text });
}

function panel(title, note, ...children) {
  const head = el("div", { class: "panel-head" }, el("h2", { text: title }), note ? el("span", { class: "panel-note" }, note) : null);
  return el("section", { class: "panel" }, head, ...children);
}

function pageHead(title, lede, id) {
  return [el("h1", { id: id || null, text: title }), lede ? el("p", { class: "lede" }, lede) : null];
}

function facts(pairs) {
  return el("dl", { class: "facts" }, ...pairs.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v ?? "-")))));
}

function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many || one + "s");
}

function isReader() {
  return me && (me.role === "central-admin" || me.role === "auditor");
}

// ---------------------------------------------------------------------------------------
// Times. Every time on every page goes through `when`: local, readable, and the exact
// value the API holds on hover.

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function pad(n) {
  return String(n).padStart(2, "0");
}

// Milliseconds since the Unix epoch (fractional below a millisecond) of a stored time:
// RFC 3339 with any fraction, a `YYYY-MM-DDTHH` hour (UTC), or Unix seconds.
function timeMs(v) {
  if (typeof v === "number") return v * 1000;
  if (typeof v !== "string" || !v.trim()) return NaN;
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?([Zz]|[+-]\d{2}:?\d{2})?$/.exec(v.trim());
  if (!m) return Date.parse(v);
  let ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +(m[5] || 0), +(m[6] || 0));
  if (m[7]) ms += Number("0." + m[7]) * 1000;
  if (m[8] && m[8].toUpperCase() !== "Z") {
    const sign = m[8][0] === "-" ? -1 : 1;
    const digits = m[8].slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60000;
  }
  return ms;
}

// "7 Dec 2026, 12:04:05" in the browser's time zone.
function localText(ms) {
  const d = new Date(ms);
  return d.getDate() + " " + MONTHS[d.getMonth()] + " " + d.getFullYear() + ", " +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

function localHour(ms) {
  const d = new Date(ms);
  return pad(d.getHours()) + ":" + pad(d.getMinutes());
}

function localDay(ms) {
  const d = new Date(ms);
  return d.getDate() + " " + MONTHS[d.getMonth()];
}

function zoneName() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  } catch (_) {
    return "local time";
  }
}

// "3 min ago", "in 2 d", "just now".
function relative(ms, now) {
  const s = Math.round(((now === undefined ? Date.now() : now) - ms) / 1000);
  const a = Math.abs(s);
  let t;
  if (a < 5) return "just now";
  if (a < 60) t = a + " s";
  else if (a < 3600) t = Math.floor(a / 60) + " min";
  else if (a < 86400) t = Math.floor(a / 3600) + " h";
  else t = Math.floor(a / 86400) + " d";
  return s >= 0 ? t + " ago" : "in " + t;
}

// A duration in milliseconds, readable.
function duration(ms) {
  const a = Math.abs(ms);
  if (a < 1) return (Math.round(ms * 1000) / 1000) + " ms";
  if (a < 1000) return (Math.round(ms * 10) / 10) + " ms";
  if (a < 120000) return (Math.round(ms / 100) / 10) + " s";
  if (a < 7200000) return Math.round(ms / 60000) + " min";
  return (Math.round(ms / 360000) / 10) + " h";
}

// The one way a time is shown: a <time> with the local time (and, with `relative`, how
// long ago first), the exact stored value as its title.
function when(v, opts) {
  const o = opts || {};
  if (v === null || v === undefined || v === "") return el("span", { class: "muted", text: o.empty || "never" });
  const ms = timeMs(v);
  if (!Number.isFinite(ms)) return el("span", { text: String(v) });
  const exact = typeof v === "number" ? v + " (Unix seconds) = " + new Date(ms).toISOString() : String(v);
  const t = el("time", { datetime: new Date(ms).toISOString(), title: exact });
  if (o.relative) {
    t.append(el("span", { class: "rel", text: relative(ms) }), " ", el("span", { class: "abs", text: "· " + localText(ms) }));
  } else {
    t.textContent = localText(ms);
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  let r;
  try {
    r = await fetch(path, {
      ...(options || {}),
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    });
  } catch (_) {
    throw new ApiError(0, "The control plane could not be reached. Check that it is running, then reload.");
  }
  const text = await r.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!r.ok) {
    let message = body && typeof body.message === "string" ? body.message : "The server answered " + r.status + (r.statusText ? " " + r.statusText : "") + ".";
    if (body && Array.isArray(body.diagnostics) && body.diagnostics.length) {
      message += " " + body.diagnostics.slice(0, 3).map((d) => (d.file ? d.file + ": " : "") + d.message).join("; ");
    }
    throw new ApiError(r.status, message);
  }
  return body;
}

function main() {
  return document.getElementById("main");
}

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter(Boolean));
}

function problemTitle(e) {
  switch (e.status) {
    case 0: return "Cannot reach the control plane";
    case 403: return "This credential's role may not see this";
    case 404: return "Not found";
    case 400: case 422: return "The request was refused";
    default: return e.status >= 500 ? "The control plane had a problem" : "Something went wrong";
  }
}

// An error as a sentence, never as the API's JSON.
function problem(e, what) {
  return el("div", { class: "alert-box", role: "alert" },
    el("strong", { text: (what ? what + ": " : "") + problemTitle(e) }),
    el("span", { text: e.message || String(e) }));
}

// What a page renders: route() shows it unless another page was asked for meanwhile.
function view(...nodes) {
  return nodes;
}

function failure(e) {
  show(el("div", { id: "error", class: "error" }, problem(e)));
}

// ---------------------------------------------------------------------------------------
// Charts

// Round axis steps: 1, 2, 5 × 10^n, at most about `count` of them up to `max`.
function niceTicks(max, count, integer) {
  const top = max > 0 ? max : 1;
  const raw = top / (count || 4);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const end = Math.ceil(top / step - 1e-9) * step;
  const ticks = [];
  for (let v = 0; v <= end + step / 1e6; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return { end, ticks };
}

// Access decisions per hour as stacked bars (allowed below, denied above), with a y-axis
// of counts, local hour labels, a count over each bar and a tooltip per hour.
function decisionsChart(hours) {
  const HOUR = 3600000;
  const now = Date.now();
  const byHour = new Map();
  let first = Math.floor((now - 24 * HOUR) / HOUR) * HOUR;
  let last = Math.floor(now / HOUR) * HOUR;
  for (const h of hours) {
    const ms = timeMs(h.hour);
    if (!Number.isFinite(ms)) continue;
    byHour.set(ms, { allowed: h.allowed, denied: h.denied });
    first = Math.min(first, ms);
    last = Math.max(last, ms);
  }
  const slots = [];
  for (let t = first; t <= last; t += HOUR) slots.push({ t, ...(byHour.get(t) || { allowed: 0, denied: 0 }) });
  const W = 1000, H = 270, L = 52, R = 16, T = 22, B = 52;
  const pw = W - L - R, ph = H - T - B;
  const max = Math.max(0, ...slots.map((s) => s.allowed + s.denied));
  const { end, ticks } = niceTicks(max, 4, true);
  const y = (v) => T + ph - (v / end) * ph;
  const slotW = pw / slots.length;
  const barW = Math.max(3, slotW * 0.68);
  const root = svg("svg", { id: "chart-decisions", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Access decisions per hour, allowed and denied" });
  const grid = svg("g", { class: "y-axis" });
  for (const v of ticks) {
    grid.append(svg("line", { class: v === 0 ? "axis" : "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", text: String(v) }));
  }
  grid.append(svg("text", { class: "axis-title", x: 14, y: T + ph / 2, transform: `rotate(-90 14 ${T + ph / 2})`, "text-anchor": "middle", text: "decisions" }));
  root.append(grid);
  const bars = svg("g", { class: "bars" });
  const xAxis = svg("g", { class: "x-axis" });
  const every = slots.length > 16 ? 3 : slots.length > 8 ? 2 : 1;
  slots.forEach((s, i) => {
    const x0 = L + i * slotW;
    const bx = x0 + (slotW - barW) / 2;
    const total = s.allowed + s.denied;
    const label = localDay(s.t) + ", " + localHour(s.t) + "–" + localHour(s.t + HOUR) + ": " + s.allowed + " allowed, " + s.denied + " denied";
    const g = svg("g", { class: "hour", "data-hour": new Date(s.t).toISOString().slice(0, 13), "data-allowed": String(s.allowed), "data-denied": String(s.denied) }, tip(label));
    g.append(svg("rect", { class: "hover", x: x0, y: T, width: slotW, height: ph }));
    if (s.allowed > 0) g.append(svg("rect", { class: "allow", x: bx, y: y(s.allowed), width: barW, height: y(0) - y(s.allowed), rx: 1.5 }));
    if (s.denied > 0) g.append(svg("rect", { class: "deny", x: bx, y: y(total), width: barW, height: y(s.allowed) - y(total), rx: 1.5 }));
    if (total > 0) g.append(svg("text", { class: "value", x: x0 + slotW / 2, y: y(total) - 5, "text-anchor": "middle", text: String(total) }));
    bars.append(g);
    const newDay = new Date(s.t).getHours() === 0 || i === 0;
    if ((slots.length - 1 - i) % every === 0 || newDay) {
      xAxis.append(svg("line", { class: "axis", x1: x0 + slotW / 2, x2: x0 + slotW / 2, y1: T + ph, y2: T + ph + 4 }));
      xAxis.append(svg("text", { x: x0 + slotW / 2, y: T + ph + 18, "text-anchor": "middle", class: newDay ? "tick-strong" : null, text: localHour(s.t) }));
      if (newDay) xAxis.append(svg("text", { x: x0 + slotW / 2, y: T + ph + 32, "text-anchor": "middle", text: localDay(s.t) }));
    }
  });
  xAxis.append(svg("text", { class: "axis-title", x: L + pw, y: H - 4, "text-anchor": "end", text: "hour starting (" + zoneName() + ")" }));
  root.append(bars, xAxis);
  return root;
}

// Horizontal bars with the count at the end of each, an x-axis of counts below.
function barsChart(id, data, ariaLabel) {
  const W = 560, L = 130, R = 48, T = 8, row = 30, B = 34;
  const H = T + data.length * row + B;
  const pw = W - L - R;
  const max = Math.max(0, ...data.map((d) => d.value));
  const { end, ticks } = niceTicks(max, 4, true);
  const x = (v) => L + (v / end) * pw;
  const root = svg("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": ariaLabel });
  const axis = svg("g", { class: "x-axis" });
  for (const v of ticks) {
    axis.append(svg("line", { class: v === 0 ? "axis" : "grid", x1: x(v), x2: x(v), y1: T, y2: T + data.length * row }),
      svg("text", { x: x(v), y: T + data.length * row + 16, "text-anchor": "middle", text: String(v) }));
  }
  axis.append(svg("text", { class: "axis-title", x: W - R, y: H - 2, "text-anchor": "end", text: "findings" }));
  root.append(axis);
  data.forEach((d, i) => {
    const cy = T + i * row + row / 2;
    const g = svg("g", { class: "bar", "data-label": d.label, "data-value": String(d.value) }, tip(d.label + ": " + plural(d.value, "finding")));
    const name = d.label.length > 18 ? d.label.slice(0, 17) + "…" : d.label;
    g.append(svg("text", { class: "row-label", x: L - 10, y: cy + 4, "text-anchor": "end", text: name }));
    g.append(svg("rect", { class: d.cls, x: L, y: cy - 9, width: Math.max(d.value > 0 ? 2 : 0, x(d.value) - L), height: 18, rx: 2 }));
    g.append(svg("text", { class: "value", x: x(d.value) + 6, y: cy + 4, text: String(d.value) }));
    root.append(g);
  });
  return root;
}

// ---------------------------------------------------------------------------------------
// Pages

async function overview() {
  const [counts, posture, points] = await Promise.all([
    api("/admin/v1/status"),
    api("/admin/v1/posture"),
    api("/admin/v1/enforcement/points"),
  ]);
  const ids = Object.values(counts.identities || {}).reduce((a, b) => a + b, 0);
  const sev = posture.summary.by_severity || {};
  const urgent = (sev.critical || 0) + (sev.high || 0);
  const stale = points.points.filter((p) => !p.live).length;
  const behind = points.points.filter((p) => p.behind_bundle || p.behind_epoch || p.flagged).length;
  const card = (value, label, sub, alert) => el("div", { class: "card" + (alert ? " alert" : "") },
    el("span", { class: "label", text: label }), el("b", { text: String(value) }), sub ? el("span", { class: "sub" }, sub) : null);
  const cards = el("div", { class: "cards", id: "cards" },
    card(ids, "identities", link("#/inventory", "inventory →")),
    card(posture.summary.findings, "findings", urgent ? urgent + " critical or high" : "none critical or high", urgent > 0),
    card(points.points.length, "enforcement points", points.points.length ? (stale + " stale · " + behind + " behind") : "none reported yet", stale + behind > 0),
    card(points.epoch, "revocation epoch", link("#/revocations", "revocations →")),
    card(counts.config_version, "configuration version", "policy version " + points.policy_version),
  );
  const byPlane = {};
  for (const f of posture.findings) byPlane[f.plane || "-"] = (byPlane[f.plane || "-"] || 0) + 1;
  const planes = Object.entries(byPlane).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const nodes = [pageHead("Overview", "The registry, its posture and what enforcement is doing, as the API holds them now.", "overview"), cards];
  if (isReader()) {
    const hours = await api("/admin/v1/audit/timeline?hours=24");
    const allowed = hours.reduce((a, h) => a + h.allowed, 0);
    const denied = hours.reduce((a, h) => a + h.denied, 0);
    const total = allowed + denied;
    const legend = el("ul", { class: "legend", id: "decisions-legend" },
      el("li", {}, el("span", { class: "swatch allow" }), "Allowed ", el("b", { id: "decisions-allowed", text: String(allowed) })),
      el("li", {}, el("span", { class: "swatch deny" }), "Denied ", el("b", { id: "decisions-denied", text: String(denied) })),
      el("li", {}, "Total ", el("b", { id: "decisions-total", text: String(total) })),
      el("li", { class: "muted", text: total ? Math.round((denied / total) * 1000) / 10 + " % denied" : "no decisions in the window" }));
    nodes.push(panel("Access decisions, last 24 hours", "per hour, " + zoneName() + " · hover a bar for its counts", legend, decisionsChart(hours)));
  }
  const sevData = ["critical", "high", "medium", "low"].map((s) => ({ label: s, value: sev[s] || 0, cls: "sev-" + s }));
  nodes.push(el("div", { class: "grid-2 stack" },
    panel("Findings by severity", plural(posture.summary.findings, "finding"), barsChart("chart-severity", sevData, "Findings by severity")),
    panel("Findings by plane", plural(planes.length, "plane"),
      planes.length ? barsChart("chart-planes", planes.map(([p, n]) => ({ label: p, value: n, cls: "plane" })), "Findings by plane")
        : el("p", { class: "empty", id: "chart-planes", text: "No findings in any plane." }))));
  nodes.push(panel("Enforcement points", link("#/points", "all points and their flags →"), pointsTable(points, "points")));
  return view(...nodes);
}

function pointFlags(p, current) {
  const flags = [];
  flags.push(p.live ? badge("live", "ok") : badge("stale", "bad"));
  if (p.behind_bundle) flags.push(badge("behind bundle", "warn"));
  if (p.behind_epoch) flags.push(badge("behind revocations", "bad"));
  if (p.flagged) flags.push(badge("flagged", "bad"), el("div", { class: "flag", text: p.flagged }));
  if (p.live && !p.behind_bundle && !p.behind_epoch && !p.flagged) flags.push(badge("current", "ok"));
  return el("span", { class: "flags" }, ...flags);
}

function versus(value, current, what) {
  const gap = current - value;
  return el("span", {}, el("b", { text: String(value) }), el("span", { class: "muted", text: " of " + current }),
    gap > 0 ? el("div", { class: "flag", text: gap + " " + what + " behind" }) : null);
}

function pointsTable(points, id) {
  const rows = points.points.map((p) => [
    el("div", {}, mono(p.id), el("div", { class: "muted", text: p.kind + " · " + p.name })),
    p.environment || "-",
    p.credential,
    versus(p.bundle_version, points.policy_version, "version" + (points.policy_version - p.bundle_version === 1 ? "" : "s")),
    versus(p.epoch, points.epoch, "epoch" + (points.epoch - p.epoch === 1 ? "" : "s")),
    when(p.last_seen, { relative: true }),
    pointFlags(p),
  ]);
  return table(["Point", "Environment", "Reports with", "Bundle", "Revocation epoch", "Last contact", "State"], rows, id, {
    rowClass: (i) => {
      const p = points.points[i];
      return !p.live || p.behind_epoch || p.flagged ? "row-bad" : p.behind_bundle ? "row-warn" : null;
    },
    empty: "No enforcement point has reported yet.",
  });
}

async function pointsPage() {
  const points = await api("/admin/v1/enforcement/points");
  const stale = points.points.filter((p) => !p.live).length;
  const behind = points.points.filter((p) => p.behind_bundle || p.behind_epoch).length;
  const flagged = points.points.filter((p) => p.flagged).length;
  const nodes = [pageHead("Enforcement points", "Each gateway, broker plugin, consumer and sidecar that enforces Steward's decisions: the policy bundle and revocations it has applied, and when it last reported."),
    el("div", { class: "cards", id: "points-summary" },
      el("div", { class: "card" }, el("span", { class: "label", text: "current policy version" }), el("b", { text: String(points.policy_version) })),
      el("div", { class: "card" }, el("span", { class: "label", text: "current revocation epoch" }), el("b", { text: String(points.epoch) })),
      el("div", { class: "card" + (stale ? " alert" : "") }, el("span", { class: "label", text: "stale" }), el("b", { text: String(stale) }),
        el("span", { class: "sub", text: "not heard from in " + points.liveness_secs + " s" })),
      el("div", { class: "card" + (behind + flagged ? " alert" : "") }, el("span", { class: "label", text: "behind or flagged" }), el("b", { text: String(behind + flagged) }))),
  ];
  if (!points.points.length) {
    nodes.push(panel("Points", null, el("p", { class: "empty", id: "points-empty", text: "No enforcement point has reported yet. Points register with their first report (POST /enforcement/v1/points/report)." })));
  } else {
    nodes.push(panel("Points", plural(points.points.length, "point") + " · live means heard from within " + points.liveness_secs + " s", pointsTable(points, "points")));
  }
  return view(...nodes);
}

async function revocationsPage() {
  const points = await api("/admin/v1/enforcement/points");
  const SHOWN = 50;
  const current = points.epoch;
  const list = current > 0 ? await api("/admin/v1/revocations?after=" + Math.max(0, current - SHOWN) + "&limit=" + SHOWN) : [];
  list.reverse();
  const verifications = await Promise.all(list.map((r) => api("/admin/v1/revocations/" + r.epoch + "/verification").catch((e) => ({ error: e }))));
  // When each point acknowledged: the first `revocation.acknowledged` event of that point
  // for this epoch or a later one (a point that skips ahead applies every epoch between).
  let acks = null;
  let acksNote = null;
  if (list.length && isReader()) {
    const since = new Date(Math.min(...list.map((r) => r.revoked_at)) * 1000).toISOString();
    try {
      acks = await api("/admin/v1/audit/events?kind=revocation.acknowledged&order=asc&limit=1000&since=" + encodeURIComponent(since));
    } catch (e) {
      acksNote = "Acknowledgement times unavailable: " + e.message;
    }
  } else if (list.length) {
    acksNote = "Acknowledgement times come from the evidence log, which this role cannot read.";
  }
  const ackEvent = (point, epoch) => (acks || []).find((e) => e.enforcement_point === point && e.details && e.details.epoch >= epoch);
  const rows = list.map((r, i) => {
    const v = verifications[i];
    const cell = el("div", { class: "acks" });
    if (v.error) {
      cell.append(problem(v.error, "Verification"));
    } else {
      const live = v.acknowledged.length + v.lagging.length;
      if (!live) cell.append(badge("none yet", "warn"), el("span", { class: "muted", text: " no live enforcement point has applied it" }));
      else if (v.complete) cell.append(badge("verified", "ok"), el("span", { class: "muted", text: " all " + plural(live, "live point") + " applied it" }));
      else cell.append(badge(v.lagging.length + " lagging", "bad"), el("span", { class: "muted", text: " " + v.acknowledged.length + " of " + plural(live, "live point") + " applied it" }));
      const items = el("ul", { class: "plain" });
      for (const p of v.acknowledged) {
        const e = ackEvent(p.id, r.epoch);
        items.append(el("li", { class: "acked" }, badge("acknowledged", "ok"), mono(p.id), " ",
          e ? el("span", {}, when(e.time), el("span", { class: "muted nowrap", text: " (" + duration(timeMs(e.time) - r.revoked_at * 1000) + " after)" }))
            : el("span", { class: "muted", text: acks ? "at epoch " + p.epoch + " (time not in the evidence shown)" : "at epoch " + p.epoch })));
      }
      for (const p of v.lagging) {
        items.append(el("li", { class: "lagging" }, badge("lagging", "bad"), mono(p.id), " ",
          el("span", { class: "muted" }, "still at epoch " + p.epoch + (p.flagged ? " (flagged: " + p.flagged + ")" : "") + ", last contact ", when(p.last_seen, { relative: true }))));
      }
      for (const p of v.not_live) {
        items.append(el("li", { class: "not-live" }, badge("stale", "warn"), mono(p.id), " ",
          el("span", { class: "muted" }, "not live, not waited for; at epoch " + p.epoch + ", last contact ", when(p.last_seen, { relative: true }))));
      }
      if (items.childNodes.length) cell.append(items);
    }
    return [el("b", { text: "#" + r.epoch }),
      el("div", { class: "revoked" }, badge(r.kind), el("div", {}, mono(r.target)),
        r.planes && r.planes.length ? el("div", { class: "muted", text: "planes: " + r.planes.join(", ") }) : null),
      el("div", {}, el("div", { text: r.reason }), el("div", { class: "muted", text: "by " + r.actor })),
      el("div", {}, when(r.revoked_at, { relative: true }),
        el("div", { class: "muted" }, "covers tokens until ", r.until ? when(r.until) : "forever (kept)")),
      cell];
  });
  const nodes = [pageHead("Revocations", "Every revocation in epoch order, newest first, and which enforcement points have applied it."),
    el("div", { class: "cards" },
      el("div", { class: "card" }, el("span", { class: "label", text: "current epoch" }), el("b", { text: String(current) })),
      el("div", { class: "card" }, el("span", { class: "label", text: "live points" }), el("b", { text: String(points.points.filter((p) => p.live).length) })),
      el("div", { class: "card" + (points.points.some((p) => p.live && p.behind_epoch) ? " alert" : "") }, el("span", { class: "label", text: "live points behind" }),
        el("b", { text: String(points.points.filter((p) => p.live && p.behind_epoch).length) })))];
  if (!list.length) {
    nodes.push(panel("Revocations", null, el("p", { class: "empty", id: "revocations-empty", text: "Nothing has been revoked yet." })));
  } else {
    nodes.push(panel("Revocations", (current > SHOWN ? "the newest " + SHOWN + " of " + current : plural(list.length, "revocation")) + (acksNote ? " · " + acksNote : ""),
      table(["Epoch", "Revoked", "Why and by whom", "When", "Acknowledgements"], rows, "revocations", {
        rowClass: (i) => (verifications[i].error || (!verifications[i].complete && verifications[i].lagging.length) ? "row-bad" : null),
      })));
  }
  return view(...nodes);
}

async function inventory(params) {
  const keys = ["plane", "environment", "kind", "state", "owner"];
  const q = new URLSearchParams();
  for (const k of keys) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", "1000");
  const page = await api("/admin/v1/identities?" + q.toString());
  const form = el("form", { class: "filters", id: "filters" });
  for (const k of keys) {
    form.append(el("label", {}, k, el("input", { name: k, value: params.get(k) || "", placeholder: "any" })));
  }
  form.append(el("button", { type: "submit", text: "Filter" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const k of keys) if (form.elements[k].value) f.set(k, form.elements[k].value);
    location.hash = "#/inventory?" + f.toString();
  });
  const stateClass = (s) => (s === "active" ? "ok" : s === "suspended" ? "warn" : s === "decommissioned" ? "bad" : "");
  const rows = page.items.map((r) => [
    link("#/identity/" + encodeURIComponent(r.spiffe_id), r.spiffe_id, "mono"),
    r.plane, el("span", {}, r.owner, r.orphaned ? badge("owner removed", "bad") : null), r.environment, r.kind, badge(r.state, stateClass(r.state)),
    chips(Object.entries(r.labels || {}).map(([k, v]) => k + "=" + v)),
  ]);
  return view(pageHead("Inventory", plural(page.items.length, "identity", "identities") + (q.toString() !== "limit=1000" ? " matching the filter" : "")), form,
    panel("Identities", null, table(["Identity", "Plane", "Owner", "Environment", "Kind", "State", "Labels"], rows, "inventory", { empty: "No identity matches." })));
}

async function identity(id) {
  const rec = await api("/admin/v1/identities/" + encodeURIComponent(id));
  const creds = rec.credentials || {};
  const nodes = [el("h1", { id: "identity", class: "mono", text: rec.spiffe_id }), el("p", { class: "lede", text: rec.description || "" }),
    panel("Registry record", null, facts([["Plane", rec.plane], ["Owner", rec.owner], ["Environment", rec.environment], ["Kind", rec.kind],
      ["Classification", rec.classification], ["State", rec.state],
      ["Registered keys", (creds.public_keys || []).map((k) => k.kid).join(", ") || "none"],
      ["Client certificates", String((creds.tls_certificates || []).length)], ["Token lifetime", creds.token_ttl_secs ? creds.token_ttl_secs + " s" : "default"]])),
    panel("Labels", null, table(["Key", "Value"], Object.entries(rec.labels || {}), "labels", { empty: "No labels." }))];
  try {
    const ent = await api("/admin/v1/identities/" + encodeURIComponent(id) + "/entitlements");
    const posture = await api("/admin/v1/posture?max_analysed=0&identity=" + encodeURIComponent(rec.spiffe_id));
    const item = posture.inventory.find((i) => i.spiffe_id === rec.spiffe_id);
    const used = new Set(item ? item.permissions.used : []);
    const intended = new Set((ent.intended || []).map((p) => p[0] + ":" + p[1]));
    const yes = (b) => (b ? badge("yes", "ok") : badge("no"));
    const rows = ent.effective.map((p) => {
      const key = p.capability + ":" + p.action;
      return [mono(key), yes(intended.has(key)), yes(true), yes(used.has(key))];
    });
    for (const key of intended) if (!ent.effective.some((p) => p.capability + ":" + p.action === key)) rows.push([mono(key), yes(true), yes(false), yes(used.has(key))]);
    nodes.push(panel("Permissions: intended / effective / used", "used within the posture window",
      table(["Permission", "Intended", "Effective", "Used (window)"], rows, "permissions", { empty: "No permissions." })));
    if (item) {
      nodes.push(panel("Use", null,
        el("p", { id: "last-used" }, "Last used: ", when(item.last_used, { relative: true }), " · active tokens: " + item.credentials.active_tokens + " · tokens issued: " + item.credentials.tokens_issued),
        el("div", { class: "grid-2" },
          el("div", {}, el("h3", { text: "Environments used (window)" }),
            table(["Environment", "Allowed", "Denied", "Tokens", "Last"],
              item.environments_used.map((e) => [el("span", {}, e.environment, e.environment === rec.environment ? null : badge("not its own", "bad")), String(e.allowed), String(e.denied), String(e.tokens), when(e.last)]),
              "environments", { numeric: [1, 2, 3], empty: "Not used in the window." })),
          el("div", {}, el("h3", { text: "Client keys used (window)" }),
            table(["Key", "Tokens", "First", "Last"], item.client_keys_used.map((k) => [mono(k.key), String(k.tokens), when(k.first), when(k.last)]),
              "client-keys", { numeric: [1], empty: "No client key used in the window." })))));
    }
  } catch (e) {
    nodes.push(problem(e, "Permissions"));
  }
  if (isReader()) {
    const events = await api("/admin/v1/audit/events?kind=access.decision&order=desc&limit=20&principal=" + encodeURIComponent(rec.spiffe_id));
    nodes.push(panel("Recent decisions", "the newest 20",
      table(["Time", "Point", "Action", "Capability", "Outcome", "Trace"],
        events.map((e) => [when(e.time), mono(e.enforcement_point || "-"), e.action || "-", (e.destination && e.destination.capability) || "-",
          outcome(e), e.correlation_id ? link("#/trace/" + encodeURIComponent(e.correlation_id), e.correlation_id, "mono") : "-"]), "decisions", { empty: "No decisions recorded." })));
  }
  return view(...nodes);
}

// Why a decision went as it did: its reasons, else the policies that decided it.
function why(e) {
  const d = e.decision || {};
  const reasons = d.reasons || [];
  return (reasons.length ? reasons : d.policies || []).join("; ") || "-";
}

function outcome(e) {
  const o = e.decision && e.decision.outcome;
  return o ? badge(o, o) : el("span", { class: "muted", text: "-" });
}

async function findings() {
  const p = await api("/admin/v1/posture");
  const sev = p.summary.by_severity || {};
  return view(pageHead("Findings", [p.summary.findings + " findings over " + p.summary.identities + " identities (evidence of the last " + p.window_days + " days): " +
      ["critical", "high", "medium", "low"].map((s) => (sev[s] || 0) + " " + s).join(", ") + "; report made ", when(p.generated_at, { relative: true })]),
    panel("Findings", "most severe first",
      table(["Severity", "Finding", "Subject", "Plane", "Owner", "OWASP NHI", "What to do"],
        p.findings.map((f) => [badge(f.severity, f.severity), f.kind.replace(/_/g, " "), mono(f.subject), f.plane, f.owner, f.owasp.join(", "), f.summary]), "findings", { empty: "No findings." })));
}

// The layer an event comes from, for the trace: the kind of its enforcement point, or the
// control plane's service that wrote it.
const LAYER_NAMES = {
  gateway: "Gateway", egress: "Egress gateway", nginx: "NGINX", rabbitmq: "Broker", broker: "Broker", kafka: "Broker",
  ext_authz: "Envoy ext_authz", consumer: "Consumer", authzen: "AuthZEN PDP", sidecar: "Sidecar", mcp: "MCP gateway",
};

function layerOf(e, kinds) {
  if (e.kind && e.kind.startsWith("credential.")) return "Token service";
  if (e.kind && e.kind.startsWith("revocation.")) return "Revocation";
  if (e.kind === "admin.action" || e.kind === "config.applied") return "Control plane";
  const point = e.enforcement_point || "";
  const kind = kinds.get(point) || (point.includes(":") ? point.split(":")[0] : "");
  if (kind) return LAYER_NAMES[kind] || kind;
  if ((e.source || "").startsWith("ingest:")) return "External (ingested)";
  return "Steward";
}

// How long the decision took at the layer that made it (enforcement points record it), in
// milliseconds, or null.
function decisionMs(e) {
  const us = e.details && e.details.decision_us;
  return typeof us === "number" ? us / 1000 : null;
}

function traceChart(events, kinds) {
  const t = events.map((e) => timeMs(e.time));
  const t0 = Math.min(...t);
  const span = Math.max(1, Math.max(...t) - t0);
  const { end, ticks } = niceTicks(span, 6, false);
  const W = 1200, L = 300, R = 230, T = 34, row = 40, B = 12;
  const H = T + events.length * row + B;
  const pw = W - L - R;
  const x = (ms) => L + ((ms - t0) / end) * pw;
  const root = svg("svg", { id: "trace-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "The trace's hops on a time axis" });
  const axis = svg("g", { class: "x-axis" });
  for (const v of ticks) {
    axis.append(svg("line", { class: v === 0 ? "axis" : "grid", x1: L + (v / end) * pw, x2: L + (v / end) * pw, y1: T - 6, y2: H - B }),
      svg("text", { x: L + (v / end) * pw, y: T - 12, "text-anchor": "middle", text: "+" + duration(v) }));
  }
  axis.append(svg("text", { class: "axis-title", x: 8, y: T - 12, text: "layer · point" }));
  axis.append(svg("text", { class: "axis-title", x: W - R + 50, y: T - 12, text: "decision" }));
  axis.append(svg("text", { class: "axis-title", x: W - 8, y: T - 12, "text-anchor": "end", text: "since previous" }));
  root.append(axis);
  events.forEach((e, i) => {
    const top = T + i * row;
    const cy = top + row / 2;
    const o = e.decision && e.decision.outcome;
    const cls = o === "allow" ? "allow" : o === "deny" ? "deny" : "neutral";
    const prev = i > 0 ? t[i - 1] : t[i];
    const gap = t[i] - prev;
    const layer = layerOf(e, kinds);
    const took = decisionMs(e);
    const what = [e.action, e.destination && (e.destination.capability || e.destination.address)].filter(Boolean).join(" ");
    const g = svg("g", { class: "hop", "data-layer": layer, "data-decision": o || "" },
      tip("#" + e.seq + " " + e.kind + " · " + layer + (e.enforcement_point ? " (" + e.enforcement_point + ")" : "") + "\n" +
        localText(t[i]) + " (" + e.time + ")\n" + (e.principal || "") + (what ? " → " + what : "") + "\n" +
        (o ? o.toUpperCase() : "no decision") + (e.decision && e.decision.reasons && e.decision.reasons.length ? ": " + e.decision.reasons.join("; ") : "") +
        (took === null ? "" : "\ndecided in " + duration(took) + " at this layer") +
        "\n+" + duration(t[i] - t0) + " from the first event, " + duration(gap) + " after the previous one"));
    if (i % 2 === 0) g.append(svg("rect", { class: "band", x: 0, y: top, width: W, height: row }));
    g.append(svg("text", { class: "row-label", x: 8, y: cy - 3, text: layer }));
    const sub = (e.enforcement_point || e.kind) + (what ? " · " + what : "");
    g.append(svg("text", { class: "row-sub", x: 8, y: cy + 12, text: sub.length > 44 ? sub.slice(0, 43) + "…" : sub }));
    if (i > 0) {
      g.append(svg("line", { class: "link", x1: x(prev), x2: x(prev), y1: cy - row + 6, y2: cy }));
    }
    const bx = x(prev);
    g.append(svg("rect", { class: cls, x: bx, y: cy - 7, width: Math.max(4, x(t[i]) - bx), height: 14, rx: 3 }));
    g.append(svg("circle", { class: cls, cx: x(t[i]), cy, r: 5 }));
    g.append(svg("text", { class: cls + "-text", x: W - R + 50, y: cy + 4, text: o ? o.toUpperCase() : e.kind.split(".").pop() },
      took === null ? null : svg("tspan", { class: "took", text: " in " + duration(took) })));
    g.append(svg("text", { class: "value", x: W - 8, y: cy + 4, "text-anchor": "end", text: i === 0 ? "start" : "+" + duration(gap) }));
    root.append(g);
  });
  return root;
}

async function trace(cid) {
  const form = el("form", { class: "filters", id: "trace-form" },
    el("label", {}, "Trace id (W3C trace id or request id)", el("input", { name: "cid", value: cid || "", placeholder: "e.g. the 32 hex digits of a traceparent" })),
    el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.hash = "#/trace/" + encodeURIComponent(form.elements.cid.value.trim()); });
  const nodes = [pageHead("Trace", "Every evidence event that carries one correlation id, across layers, in the order it happened."), form];
  if (cid) {
    const [events, points] = await Promise.all([
      api("/admin/v1/audit/events?limit=1000&correlation_id=" + encodeURIComponent(cid)),
      api("/admin/v1/enforcement/points").catch(() => ({ points: [] })),
    ]);
    const kinds = new Map(points.points.map((p) => [p.id, p.kind]));
    events.sort((a, b) => timeMs(a.time) - timeMs(b.time) || a.seq - b.seq);
    if (!events.length) {
      nodes.push(panel(cid, null, el("p", { class: "empty", id: "trace-empty", text: "0 events carry this trace id." })));
    } else {
      const t0 = timeMs(events[0].time);
      const span = timeMs(events[events.length - 1].time) - t0;
      const layers = new Set(events.map((e) => layerOf(e, kinds)));
      const allowed = events.filter((e) => e.decision && e.decision.outcome === "allow").length;
      const denied = events.filter((e) => e.decision && e.decision.outcome === "deny").length;
      nodes.push(panel("Timeline", null,
        el("p", { id: "trace-summary" }, plural(events.length, "event") + " across " + plural(layers.size, "layer") + " over " + duration(span) + ", from ", when(events[0].time), " · ",
          el("span", { class: "ok", text: allowed + " allowed" }), " · ", el("span", { class: "error", text: denied + " denied" })),
        el("ul", { class: "legend" },
          el("li", {}, el("span", { class: "swatch allow" }), "allow"), el("li", {}, el("span", { class: "swatch deny" }), "deny"),
          el("li", {}, el("span", { class: "swatch" }), "no decision (issuance, revocation …)"),
          el("li", { class: "muted", text: "A bar runs from the previous hop to this one; \"in …\" is how long the layer took to decide, where it records it." })),
        traceChart(events, kinds)));
      nodes.push(panel("Events", "in causal order",
        table(["#", "Time", "Layer · point", "Principal → target", "Outcome", "Why"],
          events.map((e, i) => [String(e.seq),
            el("div", {}, when(e.time), el("div", { class: "muted", text: i === 0 ? "start" : "+" + duration(timeMs(e.time) - t0) })),
            el("div", {}, el("b", { text: layerOf(e, kinds) }), el("div", {}, mono(e.enforcement_point || "-")), e.kind === "access.decision" ? null : el("div", { class: "muted", text: e.kind })),
            el("div", {}, mono(e.principal || "-"), el("div", { class: "muted" }, (e.action || "") + " ", mono((e.destination && (e.destination.address || e.destination.capability)) || ""))),
            outcome(e), why(e)]), "trace")));
    }
  } else if (isReader()) {
    const recent = await api("/admin/v1/audit/events?kind=access.decision&order=desc&limit=500");
    const seen = new Map();
    for (const e of recent) {
      if (!e.correlation_id) continue;
      const s = seen.get(e.correlation_id) || { n: 0, deny: 0, last: e.time, points: new Set() };
      s.n += 1;
      if (e.decision && e.decision.outcome === "deny") s.deny += 1;
      if (e.enforcement_point) s.points.add(e.enforcement_point);
      seen.set(e.correlation_id, s);
    }
    const rows = [...seen.entries()].slice(0, 20).map(([id, s]) => [link("#/trace/" + encodeURIComponent(id), id, "mono"), when(s.last, { relative: true }), String(s.n),
      s.deny ? badge(s.deny + " denied", "deny") : badge("all allowed", "allow"), [...s.points].join(", ")]);
    nodes.push(panel("Recent traces", "from the newest 500 decisions", table(["Trace", "Last event", "Decisions", "Outcome", "Points"], rows, "recent-traces", { empty: "No decision carries a trace id yet." })));
  }
  return view(...nodes);
}

async function policy(params) {
  const versions = await api("/admin/v1/policy/versions");
  const nodes = [pageHead("Policy versions", "Every published policy version; open a diff to see what changed."),
    panel("Versions", plural(versions.length, "version"),
      table(["Version", "Published", "By", "Why", "Digest", "Diff"], versions.map((v, i) => [el("b", { text: String(v.version) }), when(v.created_at), v.created_by || "", v.reason || "",
        mono((v.digest || "").slice(0, 16)),
        i + 1 < versions.length ? link("#/policy?from=" + versions[i + 1].version + "&to=" + v.version, "diff to " + versions[i + 1].version) : "-"]), "versions"))];
  if (params.get("from") && params.get("to")) {
    const d = await api("/admin/v1/policy/diff?from=" + encodeURIComponent(params.get("from")) + "&to=" + encodeURIComponent(params.get("to")));
    const pre = el("pre", { id: "diff" });
    for (const line of (d.diff || "(no change)").split("\n")) {
      pre.append(el("span", { class: line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : "", text: line + "\n" }));
    }
    nodes.push(panel("Diff " + d.from + " → " + d.to, null, pre));
  }
  return view(...nodes);
}

async function reviews() {
  const list = await api("/admin/v1/reviews");
  return view(pageHead("Access reviews", "Campaigns asking owners to attest, or revoke, what their identities may do."),
    panel("Campaigns", plural(list.length, "campaign"),
      table(["Campaign", "Name", "Plane", "Attested", "Started", "Due"],
        list.map((c) => [link("#/reviews/" + encodeURIComponent(c.id), c.id, "mono"), c.name, c.plane || "(all)",
          el("span", { class: "nowrap" }, el("progress", { class: "progress", max: String(Math.max(1, c.items)), value: String(c.decided) }), c.decided + "/" + c.items),
          when(c.created_at), when(c.due_at, { relative: true })]), "campaigns", { empty: "No campaign yet." })));
}

async function review(id) {
  const v = await api("/admin/v1/reviews/" + encodeURIComponent(id));
  const canAttest = me && (me.role === "central-admin" || String(me.role).startsWith("plane-admin"));
  const rows = v.items.map((i) => {
    let cell;
    if (i.decision) {
      cell = el("span", {}, badge(i.decision, i.decision === "keep" ? "ok" : "bad"), "by " + (i.decided_by || "?") + " ", i.decided_at ? when(i.decided_at) : null);
    } else if (canAttest) {
      cell = el("span", { class: "nowrap" });
      for (const d of ["keep", "revoke"]) {
        cell.append(el("button", {
          type: "button", class: "decide", "data-decision": d, text: d,
          onclick: async () => {
            const note = prompt("Note for the evidence log (" + d + " " + i.spiffe_id + ")");
            if (!note) return;
            try {
              await api("/admin/v1/reviews/" + encodeURIComponent(id) + "/decisions", { method: "POST", body: JSON.stringify({ spiffe_id: i.spiffe_id, decision: d, note }) });
              route();
            } catch (e) { failure(e); }
          },
        }));
      }
    } else {
      cell = badge("pending", "warn");
    }
    return [mono(i.spiffe_id), i.owner, el("div", {}, el("div", { class: "muted", text: plural(i.permissions.length, "permission") }), chips(i.permissions)), cell];
  });
  return view(pageHead(v.campaign.name + " (" + v.campaign.id + ")", null),
    el("p", { class: "lede" }, v.campaign.decided + "/" + v.campaign.items + " attested · due ", when(v.campaign.due_at, { relative: true })),
    panel("Queue", canAttest ? "keep or revoke each identity; your note goes into the evidence log" : "read only for this role",
      table(["Identity", "Owner", "Effective permissions at start", "Decision"], rows, "queue", { empty: "Nothing to review." })));
}

let routeSeq = 0;

async function route() {
  const mine = ++routeSeq;
  const hash = location.hash || "#/overview";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const section = { identity: "inventory" }[parts[0]] || parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const pages = {
    inventory: () => inventory(params),
    identity: () => identity(parts.slice(1).join("/")),
    findings: () => findings(),
    trace: () => trace(parts.slice(1).join("/")),
    points: () => pointsPage(),
    revocations: () => revocationsPage(),
    policy: () => policy(params),
    reviews: () => (parts[1] ? review(parts[1]) : reviews()),
  };
  try {
    const nodes = await (pages[parts[0]] || overview)();
    if (mine === routeSeq) show(...nodes);
  } catch (e) {
    if (e.status === 401) return signOut();
    if (mine === routeSeq) failure(e);
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

async function start() {
  document.getElementById("logout").addEventListener("click", signOut);
  const form = document.getElementById("login");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    await enter(true);
  });
  if (sessionStorage.getItem(TOKEN_KEY)) await enter(false);
}

async function enter(fromForm) {
  try {
    me = await api("/admin/v1/whoami");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (fromForm) document.getElementById("login-error").textContent = "Sign-in failed: " + e.message;
    return;
  }
  document.getElementById("who").textContent = me.name + " (" + me.role + (me.plane ? " of " + me.plane : "") + ")";
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  window.addEventListener("hashchange", route);
  await route();
}

document.addEventListener("DOMContentLoaded", start);
