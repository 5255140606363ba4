// tinykube dashboard: draws the document the server sends on every change.
//
// One EventSource on /api/events delivers the whole state (see cli/dashboard/view.py)
// each time it changes; the page redraws from it. Nothing polls: the browser's
// EventSource reconnects by itself, and the packet path is fetched again only when
// the Services, endpoints or nodes it depends on have changed. Every text goes in
// through textContent, never innerHTML: names and messages come from the cluster.
"use strict";

const ui = {
  doc: null,
  selected: "",          // "namespace/name" of the pod whose placement is shown
  seen: null,            // pod uids already drawn (null before the first draw)
  pathKey: "",           // what the drawn path was computed from
  pathChoice: { service: "", port: "", from: "" },
};

function $(id) { return document.getElementById(id); }

// replaceChildren would write a null as the text "null": leave the empty ones out.
function fill(box, ...children) { box.replaceChildren(...children.flat().filter((c) => c)); }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// ---- the connection -------------------------------------------------------------------

function setLive(state, text) {
  const live = $("live");
  live.dataset.state = state;
  live.textContent = text;
}

function banner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { setLive("live", "live"); banner(""); });
  source.addEventListener("state", (event) => {
    setLive("live", "live");
    ui.doc = JSON.parse(event.data);
    render(ui.doc);
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      setLive("reconnecting", "reconnecting");
      return;
    }
    // Closed for good: a 401 (the dashboard was restarted: a new secret) or the
    // server is gone. Ask once which, then try again no faster than every 2 s.
    fetch("/api/state", { cache: "no-store" }).then((reply) => {
      if (reply.status === 401) {
        setLive("closed", "signed out");
        banner("This page's secret is no longer valid: open the address `tinykube dashboard` printed.");
      } else {
        setTimeout(connect, 2000);
      }
    }).catch(() => {
      setLive("reconnecting", "server gone; retrying");
      setTimeout(connect, 2000);
    });
  });
}

// ---- the document -------------------------------------------------------------------------

function render(doc) {
  $("server").textContent = doc.context.server;
  $("namespace").textContent = doc.context.namespace ? `namespace ${doc.context.namespace}` : "all namespaces";
  const updated = $("updated");
  updated.textContent = `#${doc.generation} at ${doc.time.slice(11, 19)}Z`;
  updated.dataset.generation = doc.generation;
  const errors = Object.entries(doc.errors || {});
  banner(errors.map(([kind, message]) => `${kind}: ${message}`).join("  |  "));
  renderNodes(doc);
  renderPlacement(doc);
  renderServices(doc);
  renderPathControls(doc);
  renderTrace(doc.trace);
}

function tone(pod) {
  if (pod.deleting) return "warn";
  if (["Failed", "Unknown"].includes(pod.phase)) return "bad";
  if (/Err|BackOff|Error|OOMKilled|Invalid/.test(pod.status)) return "bad";
  if (pod.phase === "Running" && pod.status === "Running") {
    const [ready, total] = pod.ready.split("/");
    return ready === total ? "ok" : "warn";
  }
  if (pod.phase === "Succeeded") return "ok";
  return "warn";
}

function podKey(pod) { return `${pod.namespace}/${pod.name}`; }

function podItem(pod, fresh) {
  const key = podKey(pod);
  const item = el("li", {
    class: `pod${ui.selected === key ? " selected" : ""}${fresh ? " new" : ""}`,
    "data-pod": pod.name, "data-namespace": pod.namespace, "data-status": pod.status,
    "data-phase": pod.phase, "data-tone": tone(pod), tabindex: 0, title: "show its placement record",
    onclick: () => { ui.selected = key; render(ui.doc); },
  },
  el("span", { class: "dot" }),
  el("span", { class: "name", text: pod.name }),
  el("span", { class: "state", text: pod.status }),
  el("span", { class: "facts" },
    el("span", { class: "mono", text: pod.podIP || "no IP yet" }),
    el("span", { text: `ready ${pod.ready}` }),
    el("span", { text: `restarts ${pod.restarts}` }),
    ui.doc && !ui.doc.context.namespace ? el("span", { text: pod.namespace }) : null));
  return item;
}

function nodeCard(node, pods, fresh) {
  const readyClass = node.ready === "True" ? "ok" : "bad";
  const readyText = node.ready === "True" ? "Ready" : `NotReady${node.reason ? ` (${node.reason})` : ""}`;
  return el("article", { class: "node", "data-node": node.name, "data-ready": node.ready },
    el("div", { class: "node-head" },
      el("h3", { text: node.name }),
      el("span", { class: `badge ${readyClass}`, text: readyText }),
      node.unschedulable ? el("span", { class: "badge warn", text: "SchedulingDisabled" }) : null),
    el("div", { class: "node-facts mono" },
      el("span", { text: `IP ${node.internalIP || "?"}` }),
      el("span", { text: `podCIDR ${node.podCIDR || "none yet"}` }),
      el("span", { text: `VTEP ${node.vtepMAC || "not published"}` })),
    pods.length
      ? el("ul", { class: "pods" }, pods.map((p) => podItem(p, fresh(p))))
      : el("p", { class: "empty", text: "no pods" }));
}

function renderNodes(doc) {
  const first = ui.seen === null;
  const seen = ui.seen || new Set();
  const fresh = (pod) => !first && !seen.has(pod.uid);
  const byNode = new Map(doc.nodes.map((n) => [n.name, []]));
  const unscheduled = [];
  for (const pod of doc.pods) {
    if (!pod.node) unscheduled.push(pod);
    else {
      if (!byNode.has(pod.node)) byNode.set(pod.node, []);
      byNode.get(pod.node).push(pod);
    }
  }
  const cards = [];
  const known = new Map(doc.nodes.map((n) => [n.name, n]));
  for (const [name, pods] of byNode) {
    const node = known.get(name) || { name, ready: "Unknown", reason: "not visible", podCIDR: "", internalIP: "", vtepMAC: "" };
    cards.push(nodeCard(node, pods, fresh));
  }
  if (unscheduled.length) {
    cards.push(el("article", { class: "node pending", "data-node": "" },
      el("div", { class: "node-head" }, el("h3", { text: "Not scheduled yet" })),
      el("ul", { class: "pods" }, unscheduled.map((p) => podItem(p, fresh(p))))));
  }
  if (!cards.length) cards.push(el("p", { class: "empty", text: "No nodes." }));
  fill($("nodes"), cards);
  ui.seen = new Set(doc.pods.map((p) => p.uid));
}

// ---- placement ----------------------------------------------------------------------------

const PLUGIN_COLOURS = ["#1f4e99", "#2a9d8f", "#e9c46a", "#f4a261", "#8a4fbf", "#e76f51", "#6b7a8c"];

function renderPlacement(doc) {
  const box = $("placement");
  let pod = doc.pods.find((p) => podKey(p) === ui.selected);
  if (!pod) {
    // Nothing chosen (or it is gone): the newest scheduled pod tells the latest decision.
    const placed = doc.pods.filter((p) => p.placement).sort((a, b) => b.created - a.created);
    pod = placed[0];
  }
  if (!pod) {
    fill(box, el("p", { class: "hint", text: "No pod has a placement record yet." }));
    return;
  }
  const rec = pod.placement;
  const head = el("h3", {}, `pod ${pod.name}`, pod.node ? ` on ${pod.node}` : " (not scheduled)");
  if (!rec) {
    fill(box, head, el("p", { class: "hint", text: pod.placementLines[0] || "No placement record (bound without the scheduler, or not yet scheduled)." }));
    return;
  }
  const plugins = Object.keys(rec.weights || {}).sort();
  const colour = (name) => PLUGIN_COLOURS[plugins.indexOf(name) % PLUGIN_COLOURS.length];
  const best = Math.max(1, ...rec.scored.map((s) => s.total));
  const rows = rec.scored.map((s) => el("div", {
    class: `score-row${s.node === rec.chosen ? " chosen" : ""}`, "data-score-node": s.node },
    el("span", { class: "who", text: s.node === rec.chosen ? `${s.node} \u2713` : s.node }),
    el("span", { class: "bar" }, Object.entries(s.scores).filter(([, v]) => v > 0).map(([name, v]) =>
      el("span", { style: { width: `${(100 * v) / best}%`, background: colour(name) }, title: `${name}: ${v}` }))),
    el("span", { class: "total", text: String(s.total) })));
  const nodes = rec.nodes || {};
  fill(box,
    head,
    el("p", { class: "verdict" },
      rec.chosen ? `chosen: ${rec.chosen}` : "no node fits",
      ` \u2014 ${nodes.feasible} of ${nodes.total} nodes feasible, ${nodes.evaluated} evaluated`),
    rows.length ? el("div", { class: "scores" }, rows) : null,
    plugins.length ? el("div", { class: "legend" }, plugins.map((name) =>
      el("span", {}, el("i", { style: { background: colour(name) } }), `${name} \u00d7${rec.weights[name]}`))) : null,
    rec.rejected.length ? el("ul", { class: "rejected" }, rec.rejected.map((r) =>
      el("li", { text: `${r.node}: rejected by ${r.plugin}: ${r.reason}` }))) : null,
    el("pre", { class: "describe", text: pod.placementLines.join("\n") }));
}

// ---- services -----------------------------------------------------------------------------

function renderServices(doc) {
  const cards = doc.services.map((svc) => {
    const ports = svc.ports.map((p) => `${svc.clusterIP}:${p.port}/${p.protocol} \u2192 ${p.targetPort}${p.nodePort ? ` (NodePort ${p.nodePort})` : ""}`);
    return el("article", { class: "service", "data-service": `${svc.namespace}/${svc.name}` },
      el("h3", {}, svc.name, " ", el("span", { class: "badge", text: svc.type })),
      ports.map((text) => el("div", { class: "vip", text })),
      svc.endpoints.length
        ? el("ul", { class: "endpoints" }, svc.endpoints.map((ep) => el("li", { "data-endpoint": ep.ip },
          el("span", { class: `badge ${ep.ready ? "ok" : "warn"}`, text: ep.ready ? "ready" : "not ready" }),
          el("span", { class: "mono", text: `${ep.ip} ${ep.ports.join(",")}` }),
          el("span", { text: `${ep.pod || "?"}${ep.node ? ` on ${ep.node}` : ""}` }))))
        : el("p", { class: "empty", text: "no endpoints: connections are refused" }));
  });
  fill($("services"), cards.length ? cards : el("p", { class: "empty", text: "No Services." }));
}

// ---- the packet path ------------------------------------------------------------------------

function options(select, values, current) {
  const keep = values.includes(current) ? current : values[0] || "";
  fill(select, values.map((v) => el("option", { value: v, text: v })));
  select.value = keep;
  return keep;
}

function renderPathControls(doc) {
  const services = doc.services.filter((s) => s.clusterIP && s.clusterIP !== "None");
  const choice = ui.pathChoice;
  choice.service = options($("path-service"), services.map((s) => `${s.namespace}/${s.name}`), choice.service);
  const svc = services.find((s) => `${s.namespace}/${s.name}` === choice.service);
  choice.port = options($("path-port"), svc ? svc.ports.map((p) => p.name || String(p.port)) : [], choice.port);
  choice.from = options($("path-node"), doc.nodes.map((n) => n.name), choice.from);
  // Fetch again only when what the path is made of has changed.
  const key = JSON.stringify([choice, svc, doc.nodes]);
  if (key !== ui.pathKey) {
    ui.pathKey = key;
    loadPath();
  }
}

function loadPath() {
  const { service, port, from } = ui.pathChoice;
  if (!service || !from) {
    fill($("path"), el("p", { class: "empty", text: "No Service with a ClusterIP, or no node." }));
    return;
  }
  const query = new URLSearchParams({ service, port, from });
  fetch(`/api/path?${query}`, { cache: "no-store" })
    .then((reply) => reply.json())
    .then((data) => drawPath(data))
    .catch((err) => fill($("path"), el("p", { class: "error", text: String(err) })));
}

function hop(h) {
  return el("div", { class: "hop", "data-kind": h.kind },
    el("span", { class: "kind", text: h.kind }),
    el("span", { class: "where", text: h.node || "underlay" }),
    el("div", { class: "title", text: h.title }),
    h.detail.length ? el("pre", { text: h.detail.join("\n") }) : null);
}

function drawPath(data) {
  if (data.error) {
    fill($("path"), el("p", { class: "error", text: data.error }));
    return;
  }
  const branches = data.branches.map((b) => el("div", {
    class: `branch${b.complete ? "" : " incomplete"}`, "data-branch": b.endpoint },
    el("h3", { text: `${b.share}: ${b.endpoint} (${b.pod || "?"} on ${b.node || "?"})${b.complete ? "" : " \u2014 broken"}` }),
    b.hops.map(hop)));
  fill($("path"), el("div", { class: "flow" },
    data.common.map(hop),
    branches.length ? el("div", { class: "branches" }, branches) : null,
    data.note ? el("p", { class: "note", text: data.note }) : null,
    el("p", { class: "note", text: "Replies need no rule: conntrack undoes the DNAT on the way back." })));
}

for (const id of ["path-service", "path-port", "path-node"]) {
  document.addEventListener("DOMContentLoaded", () => {
    $(id).addEventListener("change", () => {
      ui.pathChoice = { service: $("path-service").value, port: $("path-port").value, from: $("path-node").value };
      if (id === "path-service") ui.pathChoice.port = "";
      if (ui.doc) render(ui.doc);
    });
  });
}

// ---- the trace of the latest change ------------------------------------------------------------

function spanTitle(s) {
  const lines = [`${s.name}${s.object ? ` ${s.object}` : ""}`, s.why];
  for (const [key, values] of Object.entries(s.attributes || {})) lines.push(`${key}: ${values.join("\n  ")}`);
  if (s.error) lines.push(`error: ${s.error}`);
  return lines.filter(Boolean).join("\n");
}

function renderTrace(trace) {
  const box = $("trace");
  if (!trace) {
    fill(box, el("p", { class: "hint", text: "No trace held: the span store is empty (traces expire after an hour), or nothing traced has happened yet." }));
    return;
  }
  if (trace.error) {
    fill(box, el("p", { class: "error", text: `traces: ${trace.error}` }));
    return;
  }
  const total = Math.max(trace.duration, 1e-6);
  const ms = (seconds) => `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
  const rows = trace.spans.map((s) => el("div", {
    class: `span-row${s.critical ? " critical" : ""}${s.error ? " failed" : ""}`,
    "data-span": s.name, title: spanTitle(s) },
    el("span", { class: "label", style: { paddingLeft: `${0.9 * s.depth}rem` } },
      s.name, " ", el("span", { class: "component", text: [s.component, s.node].filter(Boolean).join(" @ ") })),
    el("span", { class: "lane" }, el("span", {
      style: { left: `${(100 * s.start) / total}%`, width: `${(100 * (s.end - s.start)) / total}%` } })),
    el("span", { class: "dur", text: ms(s.end - s.start) }),
    s.why || s.error ? el("span", {
      class: "why", style: { paddingLeft: `${0.9 * s.depth + 0.9}rem` },
      text: s.error ? `error: ${s.error}` : s.why }) : null));
  fill(box,
    el("p", { class: "verdict" }, `${trace.title} \u2014 ${ms(trace.duration)} in all, ${trace.spans.length} steps`,
      el("span", { class: "legend-critical", text: "red: the critical path (what the change waited for)" })),
    el("div", { class: "waterfall" }, rows));
}

document.addEventListener("DOMContentLoaded", connect);
