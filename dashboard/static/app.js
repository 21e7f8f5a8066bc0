// The live page: one snapshot of each part on load, then server-sent events from /api/stream
// (health and metrics every few seconds, alerts as they are stored). Text goes in with textContent only.
"use strict";

const MAX_ALERT_ROWS = 200;
const MAX_REASONS = 8;
const $ = (id) => document.getElementById(id);
const section = (name) => document.querySelector(`[data-section="${name}"]`);
const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const shown = new Set();  // alert ids in the table
let lastAlertSeen = 0;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

// A part's status line: hidden when ok, "none yet" / "unavailable: ..." otherwise. Returns true when ok.
function partState(name, part, noneYet) {
  const line = section(name).querySelector(".state");
  if (!part || part.status === "ok") { line.hidden = true; return true; }
  line.hidden = false;
  line.dataset.kind = part.status;
  line.textContent = part.status === "none_yet" ? `None yet: ${part.message || noneYet}` : `Unavailable: ${part.message}`;
  return false;
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${fmt.format(s / 3600)} h ago`;
}
const hhmmss = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "–");

// ---- charts (uPlot) ------------------------------------------------------------------------
function chart(id, label, color) {
  const box = $(id);
  const plot = new uPlot({
    width: Math.max(200, box.clientWidth), height: 170, legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#8797b4", grid: { stroke: "#1c2842" }, ticks: { stroke: "#1c2842" } },
      { stroke: "#8797b4", grid: { stroke: "#1c2842" }, ticks: { stroke: "#1c2842" }, size: 50 },
    ],
    series: [{}, { label, stroke: color, width: 2, fill: color + "22", points: { show: false } }],
  }, [[], []], box);
  new ResizeObserver(() => plot.setSize({ width: Math.max(200, box.clientWidth), height: 170 })).observe(box);
  return plot;
}
const eventsChart = chart("chart-events", "events/s", "#38bdf8");
const freshnessChart = chart("chart-freshness", "freshness s", "#a78bfa");

// ---- health --------------------------------------------------------------------------------
const LINKS = { "dagster-webserver": "link-dagster", mlflow: "link-mlflow", "flink-cep": "link-flink", "spark-connect": "link-spark" };

function renderHealth(health) {
  const overall = $("overall");
  overall.dataset.state = health.status;
  overall.textContent = health.status;
  const grid = $("health-grid");
  grid.replaceChildren(...health.components.map((c) => el("div", { class: "component", "data-state": c.state, "data-name": c.name, title: c.detail },
    el("div", { class: "name" }, c.name, el("span", { class: "badge" }, c.state)),
    el("div", { class: "detail" }, c.detail))));
  for (const c of health.components) {
    const link = LINKS[c.name] && $(LINKS[c.name]);
    if (link && c.ui_url) { link.href = c.ui_url; link.removeAttribute("aria-disabled"); link.title = c.state; }
  }
  partState("health", { status: "ok" });
}

// ---- metrics -------------------------------------------------------------------------------
function renderMetrics(m) {
  const ev = m.events;
  if (partState("events", ev, "no event on the topic yet") || ev.status === "none_yet") {
    const series = ev.series || [];
    eventsChart.setData([series.map((p) => Date.parse(p.t) / 1000), series.map((p) => p.events_per_second)]);
    $("events-now").textContent = ev.events_per_second == null ? "–" : fmt.format(ev.events_per_second);
    $("events-foot").textContent = ev.total_offsets == null ? "" :
      `${ev.topic}: ${fmt.format(ev.events_last_minute)} events in the last minute, ${fmt.format(ev.total_offsets)} in all`;
  } else { $("events-now").textContent = "–"; }

  const landing = m.landing;
  if (partState("freshness", landing, "no window landed yet")) {
    const windows = [...landing.windows].reverse();
    freshnessChart.setData([windows.map((w) => Date.parse(w.window_start) / 1000), windows.map((w) => w.freshness_seconds)]);
    const last = landing.windows[0];
    $("freshness-now").textContent = last.freshness_seconds == null ? "–" : fmt.format(last.freshness_seconds);
    $("landing-foot").textContent = `last window ${hhmmss(last.window_start)}: ${fmt.format(last.rows_out)} rows landed, ` +
      `${fmt.format(last.rows_quarantined)} quarantined, ${fmt.format(last.rows_per_second ?? 0)} rows/s`;
  } else { $("freshness-now").textContent = "–"; $("landing-foot").textContent = ""; }

  const q = m.quarantine;
  if (partState("quarantine", q, "no window landed in the last hour")) {
    $("quarantine-rate").textContent = `${fmt.format(q.rows_quarantined)} of ${fmt.format(q.rows_in)} messages in the last hour (${(100 * q.rate).toFixed(3)} %)`;
    const top = q.reasons.slice(0, MAX_REASONS).map((r) => [r.reason, r.share, fmt.format(r.rows)]);
    const rest = q.reasons.slice(MAX_REASONS);
    if (rest.length) {
      const rows = rest.reduce((n, r) => n + r.rows, 0);
      top.push([`${rest.length} more reasons`, rest.reduce((n, r) => n + r.share, 0), fmt.format(rows)]);
    }
    renderBars("quarantine-bars", top, "no message quarantined in the last hour");
    const outside = q.outside_partitions || [];
    $("outside-partitions").textContent = outside.length
      ? `Not in silver: ${outside.map((o) => `${fmt.format(o.rows)} valid events dated ${o.event_date}`).join(", ")}, before the first event day (README: late and replayed events)`
      : "";
  } else { $("quarantine-rate").textContent = ""; $("quarantine-bars").replaceChildren(); $("outside-partitions").textContent = ""; }

  const a = m.alerts;
  const counts = $("alert-counts");
  if (a.status === "ok") {
    $("alerts-hour").textContent = `${fmt.format(a.total)} in the last hour`;
    counts.replaceChildren(...a.counts.map((c) => el("span", { class: "chip" }, el("span", { class: `sev sev-${c.severity}` }, c.severity), ` ${c.rule}`, el("b", {}, c.count))));
  } else if (a.status === "unavailable") {
    $("alerts-hour").textContent = `counts unavailable: ${a.message}`;
    counts.replaceChildren();
  }

  const lag = m.consumer_lag;
  if (partState("lag", lag, "no consumer group yet")) {
    $("lag-body").replaceChildren(...(lag.groups.length ? lag.groups.map((g) => el("tr", {},
      el("td", {}, g.role), el("td", {}, g.group), el("td", {}, g.state),
      el("td", {}, g.lag == null ? (g.state === "DEAD" ? "not started" : "no commit yet") : `lag ${fmt.format(g.lag)}`))) :
      [el("tr", {}, el("td", {}, "none yet: no consumer group has committed"))]));
  } else { $("lag-body").replaceChildren(); }
}

function renderBars(id, rows, empty) {
  const box = $(id);
  if (!rows.length) { box.replaceChildren(el("p", { class: "state" }, empty)); return; }
  const top = Math.max(...rows.map((r) => r[1]), 1e-9);
  box.replaceChildren(...rows.map(([label, share, value]) => el("div", { class: "bar" },
    el("span", { class: "label", title: label }, label),
    el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * share / top).toFixed(1)}%;display:block` })),
    el("span", { class: "value" }, value))));
}

// ---- alerts --------------------------------------------------------------------------------
function alertRow(a, fresh) {
  const subject = a.user_id ? `user ${a.user_id}` : a.ip ? `ip ${a.ip}` : "–";
  const span = a.window_start && a.window_end ? `${hhmmss(a.window_start)} – ${hhmmss(a.window_end)}` : "–";
  return el("tr", { class: fresh ? "new" : "", "data-alert-id": a.alert_id, title: a.alert_id },
    el("td", {}, hhmmss(a.detected_at)),
    el("td", {}, el("span", { class: `sev sev-${a.severity}` }, a.severity)),
    el("td", {}, a.rule), el("td", {}, a.source), el("td", {}, subject),
    el("td", {}, a.event_count ?? "–"), el("td", {}, span));
}

function addAlerts(alerts, fresh) {
  const body = $("alerts-body");
  for (const a of alerts) {  // oldest first: each goes on top
    if (shown.has(a.alert_id)) continue;
    shown.add(a.alert_id);
    body.prepend(alertRow(a, fresh));
    lastAlertSeen = Date.now();
  }
  while (body.rows.length > MAX_ALERT_ROWS) {
    shown.delete(body.lastElementChild.dataset.alertId);
    body.lastElementChild.remove();
  }
  partState("alerts", body.rows.length ? { status: "ok" } : { status: "none_yet", message: "no alert yet" });
}

async function loadAlerts() {
  const page = await getJSON("/api/alerts?limit=50");
  if (!page) return;
  addAlerts([...page.alerts].reverse(), false);
}

// ---- segments, runs, test traffic ---------------------------------------------------------
async function loadSegments() {
  const s = await getJSON("/api/segments");
  if (!s) return;
  if (partState("segments", s, "no segmentation model has scored users yet")) {
    const champion = s.champion_version ? (s.champion_version === s.model_version ? " (champion)" : `, champion is v${s.champion_version}`) : "";
    $("segments-model").textContent = `${s.model_name} v${s.model_version}${champion} · ${fmt.format(s.users)} users · scored ${ago(s.scored_at)}`;
    renderBars("segments-bars", s.segments.map((g) => [g.segment_name || `segment ${g.segment_id}`, g.share, `${fmt.format(g.users)}`]), "no segment");
  } else { $("segments-model").textContent = ""; $("segments-bars").replaceChildren(); }
  const a = s && s.anomaly;
  $("anomaly-state").textContent = !a ? "Anomaly model: no scoring yet" :
    `Anomaly model ${a.model_name} v${a.model_version}, ${a.trusted ? "trusted" : `on probation (trained on ${a.history_days.toFixed(1)} of 7 days; raises no alert)`} · ` +
    `${a.scored_date} scored ${ago(a.scored_at)}: ${fmt.format(a.past_threshold)} of ${fmt.format(a.eligible_users)} users past ${a.threshold.toFixed(2)}, ` +
    `${fmt.format(a.alerted_users)} alerted of a budget of ${fmt.format(a.budget)}${a.capped ? `, ${fmt.format(a.capped)} capped` : ""}`;
}

async function loadRuns() {
  const m = await getJSON("/api/spark-metrics");
  if (!m) return;
  const sp = m.spark;
  $("spark-summary").textContent = sp.status === "ok"
    ? `Spark ${sp.app_id}: ${Object.entries(sp.jobs_by_status).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(", ") || "no job"}, ${sp.active_stages} active stages`
    : `Spark: ${sp.status === "none_yet" ? "no application yet" : `unavailable (${sp.message})`}`;
  const runs = m.landing_runs;
  if (partState("runs", runs, "no landing run yet")) {
    $("runs-body").replaceChildren(...runs.runs.map((r) => el("tr", {},
      el("td", {}, r.partition || r.run_id.slice(0, 8)), el("td", { class: `st-${r.status}` }, r.status),
      el("td", {}, r.seconds == null ? "–" : fmt.format(r.seconds)), el("td", {}, ago(r.start_time)))));
  } else { $("runs-body").replaceChildren(); }
}

async function loadTrafficOptions() {
  const o = await getJSON("/api/generate-test-data");
  if (!o) return;
  $("traffic-scenario").replaceChildren(...o.scenarios.map((s) => el("option", { value: s }, s)));
  $("traffic-events").max = o.max_events; $("traffic-rate").max = o.max_rate;
  partState("test-traffic", o.enabled ? { status: "ok" } : { status: "unavailable", message: "no DASHBOARD_TOKEN is configured for the dashboard" });
  $("traffic-form").querySelector("button").disabled = !o.enabled;
}

$("traffic-kind").addEventListener("change", (e) => {
  const scenario = e.target.value === "scenario";
  document.querySelectorAll(".burst-only").forEach((n) => { n.hidden = scenario; });
  document.querySelectorAll(".scenario-only").forEach((n) => { n.hidden = !scenario; });
});

$("traffic-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const kind = $("traffic-kind").value;
  const body = kind === "burst"
    ? { kind, events: Number($("traffic-events").value), rate: Number($("traffic-rate").value) }
    : { kind, scenario: $("traffic-scenario").value };
  const out = $("traffic-result");
  try {
    const r = await fetch("/api/generate-test-data", {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${$("traffic-token").value}` },
      body: JSON.stringify(body),
    });
    const data = await r.json();
    out.textContent = r.ok
      ? `started ${data.kind} ${data.job_id}: ${fmt.format(data.events)} events${data.expected_rule ? `, expect ${data.expected_rule}` : ""}`
      : `refused (${r.status}): ${typeof data.detail === "string" ? data.detail : data.detail.map((d) => d.msg).join("; ")}`;
  } catch (err) { out.textContent = `failed: ${err}`; }
});

async function getJSON(url) {
  try {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) return null;
    return await r.json();
  } catch (err) { return null; }
}

// ---- the stream -----------------------------------------------------------------------------
function connect() {
  const state = $("stream-state");
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    state.dataset.state = "live"; state.textContent = "live";
    loadAlerts();  // what was stored before this stream (or while it was away) is fetched once
  });
  source.addEventListener("error", () => { state.dataset.state = "reconnecting"; state.textContent = "reconnecting"; });
  source.addEventListener("health", (e) => renderHealth(JSON.parse(e.data)));
  source.addEventListener("metrics", (e) => renderMetrics(JSON.parse(e.data)));
  source.addEventListener("alert", (e) => addAlerts([JSON.parse(e.data)], true));
}

function tickClock() { $("clock").textContent = new Date().toLocaleString([], { hour12: false }); }

document.querySelectorAll("#links a[id]").forEach((a) => a.setAttribute("aria-disabled", "true"));
connect();
getJSON("/api/metrics").then((m) => m && renderMetrics(m));  // before the stream's first tick
loadSegments(); loadRuns(); loadTrafficOptions(); tickClock();
setInterval(loadSegments, 15000);
setInterval(loadRuns, 10000);
setInterval(tickClock, 1000);
