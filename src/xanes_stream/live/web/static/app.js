// The live page: scans from /api/scans, kept current by the /api/events stream.
"use strict";

const state = { scans: new Map(), selected: null, detail: null, seq: 0, source: null, pixel: null };
const $ = (id) => document.getElementById(id);

function fmt(v, digits) {
  return Number.isFinite(v) ? v.toFixed(digits) : "–";
}

// Every string of a scan comes from documents anyone on the beamline network can publish: the
// page builds its elements with the DOM (text nodes, setAttribute), never HTML from strings.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP
    else node.setAttribute(key, String(value));
  }
  fill(node, ...children);
  return node;
}

function fill(node, ...children) {
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(node, ...children) {
  node.replaceChildren();
  return fill(node, ...children);
}

// Our own links only: a path on this server ("/..."), never a scheme or another host.
function localUrl(url) {
  const text = String(url == null ? "" : url);
  return text.startsWith("/") && !text.startsWith("//") && !text.startsWith("/\\") ? text : "#";
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// --- the scans list ----------------------------------------------------------------------------
async function loadScans() {
  const body = await getJSON("/api/scans");
  state.scans = new Map(body.scans.map((s) => [s.uid, s]));
  state.seq = body.seq;
  renderStatus(body.status);
  renderScans();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("scan");
  if (wanted && !state.selected) { $("follow").checked = false; select(wanted); }
  else if ($("follow").checked) followNewest();
  else if (state.selected) refreshSelected();
}

function renderStatus(s) {
  if (!s) return;
  const error = s.last_error ? String(s.last_error) : "";
  show($("status"), "profile ", h("b", {}, s.profile), " · ",
    s.listening ? "listening" : h("b", {}, "not listening"),
    ` · ${s.receiving} receiving · ${s.queued} queued · ${s.done} done · ${s.failed} failed`,
    error ? [" · ", h("span", { title: error }, `last error: ${error.slice(0, 80)}`)] : null);
}

const STATUSES = ["receiving", "queued", "analysing", "spooled", "waiting", "done", "failed"];

function stateCell(s) {
  const status = STATUSES.includes(s.status) ? s.status : "unknown";
  let text = status;
  let extra = null;
  if (status === "receiving") {
    text = s.expected ? `receiving ${s.frames}/${s.expected}` : `receiving ${s.frames}`;
    const share = s.expected ? Math.min(100, (100 * s.frames) / s.expected) : 0;
    extra = h("div", { class: "progress" }, h("div", { style: { width: `${fmt(share, 1)}%` } }));
  } else if (status === "done" && Number.isFinite(s.latency)) {
    text = `done · ${fmt(s.latency, 1)} s`;
  }
  if (status === "done" && s.reason) {  // a first look without references; a result kept
    extra = h("div", { class: "reason note" }, s.reason);
  } else if (status === "failed") {
    extra = h("div", { class: "reason" }, s.reason);
  }
  return [h("span", { class: `badge ${status}` }, text), extra];
}

function renderScans() {
  const rows = [...state.scans.values()].sort((a, b) => (b.received_at || 0) - (a.received_at || 0));
  $("no-scans").hidden = rows.length > 0;
  show($("scans").querySelector("tbody"), rows.map((s) =>
    h("tr", { class: s.uid === state.selected ? "scan selected" : "scan", "data-uid": s.uid, "data-status": s.status },
      h("td", {}, s.scan_id),
      h("td", { class: "sample", title: s.sample }, s.sample, s.series ? h("div", { class: "hint" }, s.series) : null),
      h("td", {}, stateCell(s)))));
}

function followNewest() {
  const done = [...state.scans.values()].filter((s) => s.status === "done");
  done.sort((a, b) => (b.received_at || 0) - (a.received_at || 0));
  const newest = done[0] || [...state.scans.values()].sort((a, b) => (b.received_at || 0) - (a.received_at || 0))[0];
  if (newest && newest.uid !== state.selected) select(newest.uid);
  else if (newest) refreshSelected();
}

// --- live events ---------------------------------------------------------------------------------
function connect() {
  if (state.source) state.source.close();
  const source = new EventSource(`/api/events?since=${state.seq}`);
  state.source = source;
  source.onopen = () => { $("connection").dataset.state = "live"; $("connection").textContent = "live"; };
  source.onerror = () => { $("connection").dataset.state = "reconnecting"; $("connection").textContent = "reconnecting…"; };
  source.addEventListener("scan", (e) => {
    const event = JSON.parse(e.data);
    state.seq = event.seq;
    const scan = event.scan;
    const before = state.scans.get(scan.uid);
    state.scans.set(scan.uid, { ...before, ...scan });
    renderScans();
    refreshStatusSoon();
    const finished = scan.status === "done" && (!before || before.status !== "done");
    if (finished && $("follow").checked) select(scan.uid);
    else if (scan.uid === state.selected && (!before || before.status !== scan.status || scan.status !== "done")) refreshSelected();
    else if (finished && state.detail && state.detail.series && scan.series === state.detail.series) loadSeries(scan.series);
    if (!state.selected && $("follow").checked) select(scan.uid);
  });
  source.addEventListener("reset", () => loadScans().catch(console.error));
}

let statusTimer = null;
function refreshStatusSoon() {
  if (statusTimer) return;
  statusTimer = setTimeout(async () => {
    statusTimer = null;
    try { renderStatus(await getJSON("/health")); } catch (e) { /* the stream says so */ }
  }, 500);
}

// --- one scan --------------------------------------------------------------------------------------
function select(uid) {
  state.selected = uid;
  state.detail = null;
  state.pixel = null;
  history.replaceState(null, "", `#scan=${encodeURIComponent(uid)}`);
  renderScans();
  refreshSelected();
}

function showMessage(text, failed) {
  $("scan-message").hidden = false;
  $("scan-message").className = failed ? "message failed" : "message";
  $("scan-message").textContent = text;
}

async function refreshSelected() {
  const uid = state.selected;
  const scan = state.scans.get(uid);
  $("scan-title").textContent = scan ? `Scan ${scan.scan_id} · ${scan.sample}` : `Scan ${uid.slice(0, 8)}`;
  $("scan-meta").textContent = `uid ${uid}` + (scan && scan.series ? ` · series ${scan.series}` : "");
  if (scan && scan.status !== "done") {
    $("scan-body").hidden = true;
    const waiting = {
      receiving: `Receiving frames: ${scan.frames}${scan.expected ? ` of ${scan.expected}` : ""}.`,
      queued: "Waiting for the analysis worker.",
      analysing: "Analysing: normalization, fit and maps.",
    };
    showMessage(scan.status === "failed" ? `Failed: ${scan.reason}` : waiting[scan.status] || scan.status,
      scan.status === "failed");
    return;
  }
  if (state.detail && state.detail.uid === uid) return;
  try {
    const detail = await getJSON(`/api/scans/${encodeURIComponent(uid)}`);
    if (state.selected !== uid) return;
    state.detail = detail;
    $("scan-message").hidden = true;
    renderDetail(detail);
  } catch (err) {
    showMessage(`No maps: ${err.message}`, true);
  }
}

function referenceColour(detail, name) {
  return (detail.colours || {})[name] || "#555";
}

function renderDetail(d) {
  $("scan-body").hidden = false;
  $("scan-title").textContent = `Scan ${d.scan_id} · ${d.sample}`;
  const r = d.record || {};
  $("scan-meta").textContent = `uid ${d.uid}` + (d.series ? ` · series ${d.series}` : "") +
    ` · ${d.shape[1]} × ${d.shape[0]} px · ${d.energies.length} energies (${fmt(d.energies[0], 0)}–${fmt(d.energies[d.energies.length - 1], 0)} eV)` +
    (Number.isFinite(r.latency) ? ` · maps ${fmt(r.latency, 1)} s after the last frame` : "");
  const chip = (value, ...label) => h("div", { class: "chip" }, h("div", { class: "value" }, value), h("div", { class: "label" }, ...label));
  const median = d.summary.median_r_factor;
  show($("summary"),
    d.reference_names.map((n) => chip(fmt(d.summary.mean_fractions[n], 3),
      h("span", { class: "swatch", style: { background: referenceColour(d, n) } }), `mean fraction ${n}`)),
    chip(`${fmt(d.mean_e0, 1)} eV`, "mean edge energy E0"),
    d.method === "first_look"
      ? chip(Object.keys(d.mean.candidates || {}).length, "clusters: candidate references (no references: a first look)")
      : chip(Number.isFinite(median) ? median.toExponential(1) : "–", "median R-factor"),
    chip(d.summary.mask_pixels, "pixels in the mask"));
  show($("maps"), d.maps.map(mapFigure));  // explore.js: zoom, pan, regions, value, keys
  resetView();
  drawPlot($("region-plot"), [], { empty: d.pixels_in_memory ? "drag a rectangle on a map, or click a cluster" : "frames not kept in memory" });
  $("region-caption").textContent = "Region: drag a rectangle on a map";
  $("region-info").textContent = "";
  for (const kind of ["tiff", "png", "svg"]) {
    $(`maps-${kind}`).href = `/api/scans/${encodeURIComponent(d.uid)}/maps.${kind}`;
  }
  $("spectrum-png").href = localUrl(d.plots.spectrum);
  $("shifts-png").href = localUrl(d.plots.shifts);
  const mean = d.mean;
  const series = [
    { x: mean.energies, y: mean.normalized, label: "mean in mask", colour: "#000", style: "dots" },
  ];
  if (mean.fit.some(Number.isFinite)) {  // a first look has no fit
    series.push({ x: mean.energies, y: mean.fit, label: "fit", colour: "#444", width: 2 });
  }
  for (const [name, values] of Object.entries(mean.components || {})) {
    const share = name in (mean.fractions || {}) ? ` × ${fmt(mean.fractions[name], 2)}` : "";  // OD: "background" has none
    series.push({ x: mean.energies, y: values, label: `${name}${share}`, colour: referenceColour(d, name), style: "dash" });
  }
  for (const [name, values] of Object.entries(mean.candidates || {})) {  // a first look's clusters
    series.push({ x: mean.candidate_energies, y: values, label: `${name} (candidate reference)`, colour: referenceColour(d, name), width: 1.5 });
  }
  const ylabel = mean.kind === "optical density" ? "optical density" : "normalized absorption";
  drawPlot($("mean-plot"), series, { xlabel: "energy (eV)", ylabel, xFormat: (v) => v.toFixed(0) });
  const frames = d.shifts.dy.map((_, i) => i);
  const xShift = d.shifts.dy.length === d.energies.length ? d.energies : frames;
  drawPlot($("shift-plot"), [
    { x: xShift, y: d.shifts.dy, label: "dy", colour: "#1f77b4", style: "linedots" },
    { x: xShift, y: d.shifts.dx, label: "dx", colour: "#ff7f0e", style: "linedots" },
  ], { xlabel: xShift === frames ? "frame" : "energy (eV)", ylabel: "shift (px)", xFormat: (v) => v.toFixed(0) });
  $("pixel-caption").textContent = d.pixels_in_memory ? "Pixel spectrum: click a map" :
    "Pixel spectrum: this scan's frames are no longer in memory";
  drawPlot($("pixel-plot"), [], { empty: d.pixels_in_memory ? "click a pixel of any map" : "frames not kept in memory" });
  $("pixel-info").textContent = "";
  $("details-text").textContent = JSON.stringify(
    { normalization: d.normalization, thresholds: d.thresholds, corrections: d.corrections, notes: d.notes, timings: d.timings }, null, 2);
  $("corrections").textContent = describeCorrections(d.corrections || {});
  if (d.series) loadSeries(d.series); else $("series-panel").hidden = true;
  showTopography(d.topography);
}

const TOPOGRAPHY_COLUMNS = [
  ["level", "E0 level (eV)", 2], ["n_points", "points", 0], ["size", "size", 1],
  ["mean_curvature", "mean curvature", 4], ["p_positive", "P(convex)", 3],
  ["p_negative", "P(concave)", 3], ["p_saddle", "P(saddle)", 3],
];
const LEVEL_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"];

// The topography product: a table of its levels and their curvature histograms.
function showTopography(t) {
  $("topography-panel").hidden = !t;
  if (!t) return;
  const columns = TOPOGRAPHY_COLUMNS.filter(([key]) => t.levels.some((row) => key in row));
  show($("topography-table"),
    h("tr", null, columns.map(([, title]) => h("th", null, title))),
    t.levels.map((row) => h("tr", null, columns.map(([key, , digits]) => h("td", null, fmt(row[key], digits))))));
  drawPlot($("topography-plot"), t.histograms.map((c, i) => ({
    x: c.curvature, y: c.probability, label: `${fmt(c.level, 1)} eV`,
    colour: LEVEL_COLOURS[i % LEVEL_COLOURS.length], style: "linedots",
  })), { xlabel: "local curvature (1/pixel)", ylabel: "probability", empty: "no level set in the mask" });
}

// What was done to the spectra before the fit, in one line a person reads.
function describeCorrections(c) {
  const parts = [];
  if (c.energy_shifts) {
    parts.push("energy shifts " + Object.entries(c.energy_shifts).map(([k, v]) => `${k} ${Number(v).toFixed(2)} eV`).join(", "));
  }
  if (c.self_absorption) parts.push(`self-absorption corrected (${c.self_absorption.formula || "sample"})`);
  if (c.denoise && c.denoise.pca) parts.push(`PCA denoised to ${c.denoise.pca.components} components`);
  if (c.denoise && c.denoise.spikes) parts.push("spikes removed");
  if (c.tomography) parts.push(`reconstructed from projections (${c.tomography.method || "fbp"})`);
  return parts.length ? "Corrections: " + parts.join(" · ") : "";
}

// --- a pixel's spectrum ------------------------------------------------------------------------------
async function onMapClick(event) {
  const d = state.detail;
  if (!d) return;
  if (mapView.suppressClick) return;  // the end of a drag, not a click
  const img = event.currentTarget;
  const at = pixelAt(event, img);
  if (!at) return;  // on the title or the colour bar
  if (polygonClick(event, img)) return;  // alt + click: a vertex of a polygon (explore.js)
  if (await clickedLabel(img, at)) return;  // a cluster or particle: its region
  const { x, y } = at;
  state.pixel = { x, y };
  placeMarkers();
  $("pixel-caption").textContent = `Pixel (x ${x}, y ${y}): normalized spectrum and fit`;
  try {
    const p = await getJSON(`/api/scans/${encodeURIComponent(d.uid)}/pixel?y=${y}&x=${x}`);
    if (!state.pixel || state.pixel.x !== x || state.pixel.y !== y) return;
    const series = [
      { x: p.energies, y: p.normalized, label: `pixel (${x}, ${y})`, colour: "#000", style: "dots" },
      { x: p.energies, y: p.fit, label: "fit", colour: "#444", width: 2 },
    ];
    for (const [name, values] of Object.entries(p.components)) {
      series.push({ x: p.energies, y: values, label: `${name} × ${fmt(p.fractions[name], 2)}`, colour: referenceColour(d, name), style: "dash" });
    }
    drawPlot($("pixel-plot"), series, { xlabel: "energy (eV)", ylabel: "normalized absorption", xFormat: (v) => v.toFixed(0) });
    const m = p.maps;
    $("pixel-info").textContent = `R-factor ${Number.isFinite(p.r_factor) ? p.r_factor.toExponential(2) : "–"} · ` +
      `edge step ${fmt(p.edge_step, 3)} · E0 ${fmt(m.edge_energy, 1)} eV · ${m.in_mask ? "in the mask" : "outside the mask"}`;
  } catch (err) {
    drawPlot($("pixel-plot"), [], { empty: "no spectrum" });
    $("pixel-info").textContent = err.message;
  }
}

function placeMarkers() {
  const d = state.detail, p = state.pixel;
  for (const frame of $("maps").querySelectorAll(".frame")) {
    let marker = frame.querySelector(".marker");
    if (!p) { if (marker) marker.remove(); continue; }
    if (!marker) { marker = document.createElement("div"); marker.className = "marker"; frame.querySelector(".view").appendChild(marker); }
    // the view is the image's box (explore.js), zoomed and panned with it
    marker.style.left = `${100 * (p.x + 0.5) / d.shape[1]}%`;
    marker.style.top = `${100 * (p.y + 0.5) / d.shape[0]}%`;
  }
}

// --- an in-operando series -------------------------------------------------------------------------
async function loadSeries(name) {
  try {
    const body = await getJSON(`/api/series?name=${encodeURIComponent(name)}`);
    const d = state.detail;
    if (!d || d.series !== name) return;
    $("series-panel").hidden = false;
    $("series-title").textContent = `Series ${name}: ${body.scans.length} scan${body.scans.length === 1 ? "" : "s"}`;
    const t0 = body.scans.length ? body.scans[0].time : 0;
    const span = body.scans.length ? body.scans[body.scans.length - 1].time - t0 : 0;
    const [unit, per] = span > 7200 ? ["h", 3600] : span > 120 ? ["min", 60] : ["s", 1];
    const minutes = body.scans.map((s) => (s.time - t0) / per);
    const xlabel = `time since the first scan (${unit})`;
    const fractions = d.reference_names.map((n) => ({
      x: minutes, y: body.scans.map((s) => s.mean_fractions[n]), label: n, colour: referenceColour(d, n), style: "linedots",
    }));
    drawPlot($("series-fractions"), fractions, { xlabel, ylabel: "mean fraction", yRange: [0, 1] });
    drawPlot($("series-e0"), [{ x: minutes, y: body.scans.map((s) => s.mean_e0), label: "E0", colour: "#7b3294", style: "linedots" }],
      { xlabel, ylabel: "edge energy (eV)" });
  } catch (err) {
    console.error(err);
  }
}

window.addEventListener("DOMContentLoaded", async () => {
  $("scans").addEventListener("click", (event) => {
    const row = event.target.closest("tr.scan");
    if (!row) return;
    $("follow").checked = false;
    select(row.dataset.uid);
  });
  $("follow").addEventListener("change", () => { if ($("follow").checked) followNewest(); });
  try { await loadScans(); } catch (err) { showMessage(`Cannot read the scans: ${err.message}`, true); }
  connect();
});
