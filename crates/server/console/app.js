// Steward console: a client of the admin API. Every value from the server is shown with
// textContent (never parsed as HTML); the page's CSP forbids inline script anyway.
"use strict";

const TOKEN_KEY = "steward.token";
let me = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows, id) {
  const t = el("table", id ? { id } : {});
  t.append(el("tr", {}, ...headers.map((h) => el("th", { text: h }))));
  for (const r of rows) {
    t.append(el("tr", {}, ...r.map((c) => el("td", {}, c instanceof Node ? c : String(c ?? "")))));
  }
  return t;
}

function link(href, text) {
  return el("a", { href, text });
}

async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const r = await fetch(path, {
    ...(options || {}),
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const e = new Error((body && body.message) || r.status + " " + r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

function main() {
  return document.getElementById("main");
}

function show(...nodes) {
  main().replaceChildren(...nodes);
}

function failure(e) {
  show(el("p", { class: "error", id: "error", role: "alert", text: "Error: " + e.message }));
}

// A bar chart as SVG; labels and values set as text.
function bars(id, data, color) {
  const w = 640, h = 160, pad = 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("id", id);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h + pad);
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...data.map((d) => d.value));
  const bw = Math.max(4, Math.floor((w - pad) / Math.max(1, data.length)) - 4);
  data.forEach((d, i) => {
    const bh = Math.round((d.value / max) * (h - pad));
    const x = pad + i * (bw + 4);
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", x);
    r.setAttribute("y", h - bh);
    r.setAttribute("width", bw);
    r.setAttribute("height", bh);
    r.setAttribute("fill", d.color || color);
    const title = document.createElementNS(ns, "title");
    title.textContent = d.label + ": " + d.value;
    r.append(title);
    svg.append(r);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x);
    t.setAttribute("y", h + 14);
    t.textContent = d.short || d.label;
    svg.append(t);
  });
  return svg;
}

async function overview() {
  const [counts, posture, points] = await Promise.all([
    api("/admin/v1/status"),
    api("/admin/v1/posture"),
    api("/admin/v1/enforcement/points"),
  ]);
  const ids = Object.values(counts.identities || {}).reduce((a, b) => a + b, 0);
  const sev = posture.summary.by_severity || {};
  const cards = el("div", { class: "cards", id: "cards" },
    el("div", { class: "card" }, el("b", { text: String(ids) }), "identities"),
    el("div", { class: "card" }, el("b", { text: String(posture.summary.findings) }), "findings"),
    el("div", { class: "card" }, el("b", { text: String(points.points.length) }), "enforcement points"),
    el("div", { class: "card" }, el("b", { text: String(counts.config_version) }), "configuration version"),
  );
  const byPlane = {};
  for (const f of posture.findings) byPlane[f.plane || "-"] = (byPlane[f.plane || "-"] || 0) + 1;
  const nodes = [el("h1", { id: "overview", text: "Overview" }), cards,
    el("h2", { text: "Findings by severity" }),
    bars("chart-severity", ["critical", "high", "medium", "low"].map((s) => ({ label: s, value: sev[s] || 0 })), "#b45309"),
    el("h2", { text: "Findings by plane" }),
    bars("chart-planes", Object.entries(byPlane).map(([p, n]) => ({ label: p, value: n })), "#1d4ed8"),
  ];
  if (me && (me.role === "central-admin" || me.role === "auditor")) {
    const hours = await api("/admin/v1/audit/timeline?hours=24");
    nodes.push(el("h2", { text: "Access decisions, last 24 hours" }),
      bars("chart-decisions", hours.map((h) => ({ label: h.hour + " allowed " + h.allowed + ", denied", value: h.allowed + h.denied, short: h.hour.slice(11) + "h" })), "#047857"));
  }
  nodes.push(el("h2", { text: "Enforcement points" }),
    table(["Point", "Environment", "Bundle", "Revocation epoch", "Last contact", "State"],
      points.points.map((p) => {
        const flags = [];
        if (!p.live) flags.push("STALE");
        if (p.behind_bundle) flags.push("behind bundle");
        if (p.behind_epoch) flags.push("behind revocations");
        if (p.flagged) flags.push("FLAGGED: " + p.flagged);
        return [p.id, p.environment || "-", p.bundle_version, p.epoch, p.seconds_since_seen + "s ago",
          el("span", { class: flags.length ? "flag" : "ok", text: flags.length ? flags.join("; ") : "ok" })];
      }), "points"));
  show(...nodes);
}

async function inventory(params) {
  const q = new URLSearchParams();
  for (const k of ["plane", "environment", "kind", "state", "owner"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", "1000");
  const page = await api("/admin/v1/identities?" + q.toString());
  const form = el("form", { class: "filters", id: "filters" });
  for (const k of ["plane", "environment", "kind", "state", "owner"]) {
    form.append(el("label", {}, k + " ", el("input", { name: k, value: params.get(k) || "" })));
  }
  form.append(el("button", { type: "submit", text: "Filter" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const k of ["plane", "environment", "kind", "state", "owner"]) if (form.elements[k].value) f.set(k, form.elements[k].value);
    location.hash = "#/inventory?" + f.toString();
  });
  const rows = page.items.map((r) => [
    link("#/identity/" + encodeURIComponent(r.spiffe_id), r.spiffe_id),
    r.plane, r.owner + (r.orphaned ? " (removed)" : ""), r.environment, r.kind, r.state,
    Object.entries(r.labels || {}).map(([k, v]) => k + "=" + v).join(", "),
  ]);
  show(el("h1", { text: "Inventory" }), form,
    el("p", { text: page.items.length + " identities" }),
    table(["Identity", "Plane", "Owner", "Environment", "Kind", "State", "Labels"], rows, "inventory"));
}

async function identity(id) {
  const rec = await api("/admin/v1/identities/" + encodeURIComponent(id));
  const creds = rec.credentials || {};
  const nodes = [el("h1", { id: "identity", text: rec.spiffe_id }),
    table(["Plane", "Owner", "Environment", "Kind", "Classification", "State", "Description"],
      [[rec.plane, rec.owner, rec.environment, rec.kind, rec.classification, rec.state, rec.description]]),
    el("h2", { text: "Labels" }),
    table(["Key", "Value"], Object.entries(rec.labels || {}), "labels"),
    el("h2", { text: "Credentials" }),
    table(["Registered keys", "Client certificates", "Token lifetime"],
      [[(creds.public_keys || []).map((k) => k.kid).join(", ") || "none",
        (creds.tls_certificates || []).length, creds.token_ttl_secs || "default"]])];
  try {
    const ent = await api("/admin/v1/identities/" + encodeURIComponent(id) + "/entitlements");
    const posture = await api("/admin/v1/posture?max_analysed=0&identity=" + encodeURIComponent(rec.spiffe_id));
    const item = posture.inventory.find((i) => i.spiffe_id === rec.spiffe_id);
    const used = new Set(item ? item.permissions.used : []);
    const intended = new Set((ent.intended || []).map((p) => p[0] + ":" + p[1]));
    const rows = ent.effective.map((p) => {
      const key = p.capability + ":" + p.action;
      return [key, intended.has(key) ? "yes" : "no", "yes", used.has(key) ? "yes" : "no"];
    });
    for (const key of intended) if (!ent.effective.some((p) => p.capability + ":" + p.action === key)) rows.push([key, "yes", "no", used.has(key) ? "yes" : "no"]);
    nodes.push(el("h2", { text: "Permissions: intended / effective / used" }),
      table(["Permission", "Intended", "Effective", "Used (window)"], rows, "permissions"));
    if (item) {
      nodes.push(el("p", { id: "last-used", text: "Last used: " + (item.last_used || "never") + " · active tokens: " + item.credentials.active_tokens + " · tokens issued: " + item.credentials.tokens_issued }));
      nodes.push(el("h2", { text: "Environments used (window)" }),
        table(["Environment", "Allowed", "Denied", "Tokens", "Last"],
          item.environments_used.map((e) => [e.environment + (e.environment === rec.environment ? "" : " (not its own)"), String(e.allowed), String(e.denied), String(e.tokens), e.last]), "environments"),
        el("h2", { text: "Client keys used (window)" }),
        table(["Key", "Tokens", "First", "Last"],
          item.client_keys_used.map((k) => [k.key, String(k.tokens), k.first, k.last]), "client-keys"));
    }
  } catch (e) {
    nodes.push(el("p", { class: "error", text: "Permissions: " + e.message }));
  }
  if (me && (me.role === "central-admin" || me.role === "auditor")) {
    const events = await api("/admin/v1/audit/events?kind=access.decision&order=desc&limit=20&principal=" + encodeURIComponent(rec.spiffe_id));
    nodes.push(el("h2", { text: "Recent decisions" }),
      table(["Time", "Point", "Action", "Capability", "Outcome", "Trace"],
        events.map((e) => [e.time, e.enforcement_point || "-", e.action || "-", (e.destination && e.destination.capability) || "-",
          (e.decision && e.decision.outcome) || "-",
          e.correlation_id ? link("#/trace/" + encodeURIComponent(e.correlation_id), e.correlation_id) : "-"]), "decisions"));
  }
  show(...nodes);
}

async function findings() {
  const p = await api("/admin/v1/posture");
  show(el("h1", { text: "Findings" }),
    el("p", { text: p.summary.findings + " findings over " + p.summary.identities + " identities (evidence of the last " + p.window_days + " days)" }),
    table(["Severity", "Finding", "Subject", "Owner", "OWASP NHI", "What to do"],
      p.findings.map((f) => [el("span", { class: f.severity, text: f.severity }), f.kind, f.subject, f.owner, f.owasp.join(", "), f.summary]), "findings"));
}

async function trace(cid) {
  const form = el("form", { class: "filters", id: "trace-form" },
    el("label", {}, "Trace id ", el("input", { name: "cid", value: cid || "" })),
    el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.hash = "#/trace/" + encodeURIComponent(form.elements.cid.value); });
  const nodes = [el("h1", { text: "Trace" }), form];
  if (cid) {
    const events = await api("/admin/v1/audit/events?correlation_id=" + encodeURIComponent(cid));
    nodes.push(el("p", { text: events.length + " events" }),
      table(["#", "Time", "Kind", "Point", "Principal", "Action", "Address", "Outcome"],
        events.map((e) => [e.seq, e.time, e.kind, e.enforcement_point || "-", e.principal || "-", e.action || "-",
          (e.destination && e.destination.address) || "-", (e.decision && e.decision.outcome) || "-"]), "trace"));
  }
  show(...nodes);
}

async function policy(params) {
  const versions = await api("/admin/v1/policy/versions");
  const nodes = [el("h1", { text: "Policy versions" }),
    table(["Version", "Published", "By", "Digest", "Diff"], versions.map((v, i) => [v.version, v.created_at || v.published_at || "", v.created_by || v.actor || "",
      (v.digest || "").slice(0, 16),
      i + 1 < versions.length ? link("#/policy?from=" + versions[i + 1].version + "&to=" + v.version, "diff to " + versions[i + 1].version) : "-"]), "versions")];
  if (params.get("from") && params.get("to")) {
    const d = await api("/admin/v1/policy/diff?from=" + encodeURIComponent(params.get("from")) + "&to=" + encodeURIComponent(params.get("to")));
    const pre = el("pre", { id: "diff" });
    for (const line of (d.diff || "(no change)").split("\n")) {
      pre.append(el("span", { class: line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : "", text: line + "\n" }));
    }
    nodes.push(el("h2", { text: "Diff " + d.from + " → " + d.to }), pre);
  }
  show(...nodes);
}

async function reviews() {
  const list = await api("/admin/v1/reviews");
  show(el("h1", { text: "Access reviews" }),
    table(["Campaign", "Name", "Plane", "Attested", "Due"],
      list.map((c) => [link("#/reviews/" + encodeURIComponent(c.id), c.id), c.name, c.plane || "(all)", c.decided + "/" + c.items, c.due_at]), "campaigns"));
}

async function review(id) {
  const v = await api("/admin/v1/reviews/" + encodeURIComponent(id));
  const canAttest = me && (me.role === "central-admin" || String(me.role).startsWith("plane-admin"));
  const rows = v.items.map((i) => {
    let cell = i.decision ? i.decision + " by " + (i.decided_by || "?") : "pending";
    if (!i.decision && canAttest) {
      cell = el("span", {});
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
        }), " ");
      }
    }
    return [i.spiffe_id, i.owner, i.permissions.join(", "), cell];
  });
  show(el("h1", { text: v.campaign.name + " (" + v.campaign.id + ")" }),
    el("p", { text: v.campaign.decided + "/" + v.campaign.items + " attested, due " + v.campaign.due_at }),
    table(["Identity", "Owner", "Effective permissions at start", "Decision"], rows, "queue"));
}

async function route() {
  const hash = location.hash || "#/overview";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    switch (parts[0]) {
      case "inventory": return await inventory(params);
      case "identity": return await identity(parts.slice(1).join("/"));
      case "findings": return await findings();
      case "trace": return await trace(parts.slice(1).join("/"));
      case "policy": return await policy(params);
      case "reviews": return parts[1] ? await review(parts[1]) : await reviews();
      default: return await overview();
    }
  } catch (e) {
    if (e.status === 401) return signOut();
    failure(e);
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
  document.getElementById("who").textContent = me.name + " (" + me.role + ")";
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  window.addEventListener("hashchange", route);
  await route();
}

document.addEventListener("DOMContentLoaded", start);
