// Exploring the maps: zoom (wheel), pan (drag in pan mode, or shift + drag), the value under the
// cursor, a rectangle dragged on any map (or a cluster / particle clicked) for the region's mean
// spectrum and fit, and discrete colour keys of the label maps. Uses app.js's h, $, getJSON,
// state, referenceColour, fmt and plot.js's drawPlot; builds every element with the DOM.
"use strict";

const mapView = { scale: 1, tx: 0, ty: 0, mode: "region", drag: null, suppressClick: false, hover: null, region: null, polygon: [] };
const MAX_ZOOM = 16;
const HEX = /^#[0-9a-f]{6}$/i;

// The pixel (x, y) of the scan under a mouse event on a map image, or null off the image box.
function pixelAt(event, img) {
  const d = state.detail;
  const rect = img.getBoundingClientRect();  // includes the zoom and pan transform
  const [left, top, width, height] = d.image.box;
  const u = ((event.clientX - rect.left) / rect.width - left) / width;
  const v = ((event.clientY - rect.top) / rect.height - top) / height;
  if (u < 0 || u >= 1 || v < 0 || v >= 1) return null;
  return { x: Math.floor(u * d.shape[1]), y: Math.floor(v * d.shape[0]) };
}

// A label map's key: one swatch per label, in the PNG's colours.
function legendOf(m) {
  if (!Array.isArray(m.legend)) return null;
  return h("div", { class: "legend", "data-map": m.name }, m.legend.map((e) =>
    h("span", { class: "key", "data-value": e.value },
      h("span", { class: "swatch", style: { background: HEX.test(String(e.colour)) ? e.colour : "#888" } }),
      e.label)));
}

// The figure of one map. The PNG is drawn twice: whole and fixed (the title and colour bar
// stay in sight) and, in a window over the image's box, the same PNG zoomed and panned; the
// window's image is the one the mouse reads (its box lines up with the whole one's at 1×).
function mapFigure(m) {
  const d = state.detail;
  const [left, top, width, height] = d.image.box;
  const url = localUrl(m.url);
  const img = h("img", { src: url, alt: m.title, "data-name": m.name, loading: "eager", draggable: "false" });
  Object.assign(img.style, {
    width: `${100 / width}%`, height: `${100 / height}%`,
    left: `${-100 * left / width}%`, top: `${-100 * top / height}%`,
  });
  img.addEventListener("click", onMapClick);
  img.addEventListener("dblclick", closePolygon);
  img.addEventListener("mousedown", onMapDown);
  img.addEventListener("mousemove", onMapMove);
  img.addEventListener("mouseleave", () => { readout(m.name).textContent = ""; });
  const windowed = h("div", { class: "window" }, h("div", { class: "view" }, img));
  Object.assign(windowed.style, {
    left: `${100 * left}%`, top: `${100 * top}%`, width: `${100 * width}%`, height: `${100 * height}%`,
  });
  windowed.addEventListener("wheel", onWheel, { passive: false });
  const whole = h("div", { class: "whole" });
  whole.style.backgroundImage = `url("${url.replace(/["\\\n]/g, "")}")`;
  const frame = h("div", { class: "frame" }, whole, windowed);
  frame.style.aspectRatio = `${d.image.width} / ${d.image.height}`;
  return h("figure", { class: "map", "data-name": m.name }, frame,
    h("figcaption", {}, h("span", {}, m.title),
      h("a", { class: "png-link", href: localUrl(m.url), target: "_blank", rel: "noopener" }, "PNG")),
    h("div", { class: "readout", "data-map": m.name }),
    legendOf(m));
}

function readout(name) {
  return [...$("maps").querySelectorAll(".readout")].find((r) => r.dataset.map === name) || h("div");
}

function applyView() {
  for (const el of $("maps").querySelectorAll(".view")) {
    el.style.transform = `translate(${mapView.tx * 100}%, ${mapView.ty * 100}%) scale(${mapView.scale})`;
  }
  $("zoom-level").textContent = `${fmt(mapView.scale, 1)}×`;
}

function resetView() {
  mapView.scale = 1; mapView.tx = 0; mapView.ty = 0;
  applyView();
}

// Pan offsets are fractions of the frame; keep the zoomed image covering its frame.
function clampView() {
  const lo = 1 - mapView.scale;
  mapView.tx = Math.min(0, Math.max(lo, mapView.tx));
  mapView.ty = Math.min(0, Math.max(lo, mapView.ty));
}

function onWheel(event) {
  event.preventDefault();
  const frame = event.currentTarget.getBoundingClientRect();
  const fx = (event.clientX - frame.left) / frame.width, fy = (event.clientY - frame.top) / frame.height;
  const next = Math.min(MAX_ZOOM, Math.max(1, mapView.scale * (event.deltaY < 0 ? 1.25 : 0.8)));
  // the point under the cursor stays put: fx = tx + s * p
  const px = (fx - mapView.tx) / mapView.scale, py = (fy - mapView.ty) / mapView.scale;
  mapView.scale = next;
  mapView.tx = fx - next * px; mapView.ty = fy - next * py;
  clampView();
  applyView();
}

function onMapDown(event) {
  if (event.button !== 0 || !state.detail) return;
  event.preventDefault();
  const img = event.currentTarget;
  const pan = mapView.mode === "pan" || event.shiftKey;
  mapView.drag = { img, pan, x: event.clientX, y: event.clientY, tx: mapView.tx, ty: mapView.ty, start: pixelAt(event, img), moved: false };
  window.addEventListener("mousemove", onDrag);
  window.addEventListener("mouseup", onUp, { once: true });
}

function onDrag(event) {
  const g = mapView.drag;
  if (!g) return;
  if (Math.abs(event.clientX - g.x) + Math.abs(event.clientY - g.y) > 4) g.moved = true;
  if (g.pan) {
    const frame = g.img.closest(".window").getBoundingClientRect();
    mapView.tx = g.tx + (event.clientX - g.x) / frame.width;
    mapView.ty = g.ty + (event.clientY - g.y) / frame.height;
    clampView();
    applyView();
  } else if (g.start && g.moved) {
    const end = clampedPixel(event, g.img);
    drawBox(boundsOf(g.start, end));
  }
}

// The pixel under the event, clamped onto the image (a drag may leave it).
function clampedPixel(event, img) {
  const d = state.detail;
  const rect = img.getBoundingClientRect();
  const [left, top, width, height] = d.image.box;
  const u = ((event.clientX - rect.left) / rect.width - left) / width;
  const v = ((event.clientY - rect.top) / rect.height - top) / height;
  const clamp = (t, n) => Math.min(n - 1, Math.max(0, Math.floor(t * n)));
  return { x: clamp(u, d.shape[1]), y: clamp(v, d.shape[0]) };
}

function boundsOf(a, b) {
  return { y0: Math.min(a.y, b.y), y1: Math.max(a.y, b.y) + 1, x0: Math.min(a.x, b.x), x1: Math.max(a.x, b.x) + 1 };
}

function onUp(event) {
  window.removeEventListener("mousemove", onDrag);
  const g = mapView.drag;
  mapView.drag = null;
  if (!g || !g.moved) return;  // a click: onMapClick handles it
  mapView.suppressClick = true;  // the click that follows this mouseup is the drag's
  setTimeout(() => { mapView.suppressClick = false; }, 0);
  if (g.pan || !g.start) return;
  const b = boundsOf(g.start, clampedPixel(event, g.img));
  showRegion({ kind: "rect", ...b });
}

// The region box drawn on every map, in the view (the image's box), so it zooms with it.
function drawBox(b) {
  const d = state.detail;
  drawPolygon(null);  // one region at a time: a box or a polygon
  if (b) mapView.polygon = [];
  for (const el of $("maps").querySelectorAll(".view")) {
    let box = el.querySelector(".region-box");
    if (!b) { if (box) box.remove(); continue; }
    if (!box) { box = h("div", { class: "region-box" }); el.appendChild(box); }
    Object.assign(box.style, {
      left: `${100 * b.x0 / d.shape[1]}%`,
      top: `${100 * b.y0 / d.shape[0]}%`,
      width: `${100 * (b.x1 - b.x0) / d.shape[1]}%`,
      height: `${100 * (b.y1 - b.y0) / d.shape[0]}%`,
    });
  }
}

// A polygon: alt + click adds a vertex (at the pointer, in pixel-centre coordinates), a double
// click closes it and fits its pixels. Returns whether the click was a vertex.
function polygonClick(event, img) {
  if (!event.altKey) return false;
  const d = state.detail;
  const rect = img.getBoundingClientRect();
  const [left, top, width, height] = d.image.box;
  const u = ((event.clientX - rect.left) / rect.width - left) / width;
  const v = ((event.clientY - rect.top) / rect.height - top) / height;
  if (u < 0 || u >= 1 || v < 0 || v >= 1) return true;
  const row = Math.min(d.shape[0] - 0.5, Math.max(-0.5, v * d.shape[0] - 0.5));
  const col = Math.min(d.shape[1] - 0.5, Math.max(-0.5, u * d.shape[1] - 0.5));
  if (mapView.polygon.length < 500) mapView.polygon.push([+row.toFixed(2), +col.toFixed(2)]);
  drawBox(null);
  drawPolygon(mapView.polygon);
  $("region-caption").textContent = `Region: polygon of ${mapView.polygon.length} vertices (double-click to close)`;
  return true;
}

function closePolygon() {
  const points = mapView.polygon;
  if (points.length < 3) return;
  mapView.polygon = [];
  showRegion({ kind: "polygon", points: points.map(([r, c]) => `${r},${c}`).join(";") });
}

// The polygon drawn on every map, in the view's pixel coordinates (so it zooms with it).
function drawPolygon(points) {
  const d = state.detail;
  for (const el of $("maps").querySelectorAll(".view")) {
    let svg = el.querySelector("svg.region-polygon");
    if (!points || !points.length) { if (svg) svg.remove(); continue; }
    if (!svg) {
      svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "region-polygon");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "polygon"));
      el.appendChild(svg);
    }
    svg.setAttribute("viewBox", `-0.5 -0.5 ${d.shape[1]} ${d.shape[0]}`);
    svg.firstChild.setAttribute("points", points.map(([r, c]) => `${c},${r}`).join(" "));
  }
}

// The value under the cursor: one request at a time, the latest position wins.
async function onMapMove(event) {
  if (!state.detail || mapView.drag) return;
  const img = event.currentTarget;
  const p = pixelAt(event, img);
  const out = readout(img.dataset.name);
  if (!p) { out.textContent = ""; return; }
  mapView.hover = { ...p, name: img.dataset.name, uid: state.detail.uid };
  if (mapView.hovering) return;
  mapView.hovering = true;
  try {
    while (mapView.hover) {
      const want = mapView.hover;
      mapView.hover = null;
      const body = await getJSON(`/api/scans/${encodeURIComponent(want.uid)}/value?y=${want.y}&x=${want.x}`);
      if (!state.detail || state.detail.uid !== want.uid) break;
      readout(want.name).textContent = `x ${want.x}, y ${want.y}: ${describeValue(want.name, body.values)}`;
    }
  } catch (err) {
    out.textContent = err.message;
  } finally {
    mapView.hovering = false;
  }
}

function describeValue(name, values) {
  const d = state.detail;
  if (name === "rgb") return d.reference_names.map((n) => `${n} ${fmt(values[`fractions/${n}`], 3)}`).join(" · ");
  const v = values[name];
  if (name === "clusters") return v > 0 ? `cluster ${v}` : "no cluster";
  if (name === "mask") return v ? "in the mask" : "outside the mask";
  const extra = values.particle > 0 ? ` · particle ${values.particle}` : "";
  if (name === "r_factor" || name === "chi2_red") return `${Number.isFinite(v) ? v.toExponential(2) : "–"}${extra}`;
  if (name === "edge_energy" || name === "peak_energy") return `${fmt(v, 1)} eV${extra}`;
  return `${fmt(v, 3)}${extra}`;
}

// A click in cluster or particle mode, or on the clusters map: that label's region.
async function clickedLabel(img, p) {
  const mode = $("click-mode").value;
  const kind = img.dataset.name === "clusters" || mode === "cluster" ? "cluster" : mode === "particle" ? "particle" : null;
  if (!kind) return false;
  const d = state.detail;
  try {
    const body = await getJSON(`/api/scans/${encodeURIComponent(d.uid)}/value?y=${p.y}&x=${p.x}`);
    const label = kind === "cluster" ? body.values.clusters : body.values.particle;
    if (!(label > 0)) {
      regionMessage(kind === "particle" && body.values.particle == null
        ? "this scan has no particle labels in memory (enable the particles product)"
        : `no ${kind} at pixel (x ${p.x}, y ${p.y})`);
      return true;
    }
    drawBox(null);
    showRegion({ kind, label });
  } catch (err) {
    regionMessage(err.message);
  }
  return true;
}

function regionMessage(text) {
  $("region-info").textContent = text;
}

function regionQuery(params) {
  return Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

// The region's mean spectrum and its fit, plotted beside the maps. Called by a drag, a click
// on a cluster or particle, and the "whole mask" button.
async function showRegion(params) {
  const d = state.detail;
  if (!d) return null;
  const asked = regionQuery(params);
  mapView.region = asked;
  $("region-caption").textContent = "Region: fitting…";
  try {
    const r = await getJSON(`/api/scans/${encodeURIComponent(d.uid)}/region?${asked}`);
    if (mapView.region !== asked || !state.detail || state.detail.uid !== d.uid) return null;
    const series = [
      { x: r.fit_energies, y: r.normalized, label: `mean of ${r.n_pixels} px`, colour: "#000", style: "dots" },
      { x: r.fit_energies, y: r.fit, label: "fit", colour: "#444", width: 2 },
    ];
    for (const [name, values] of Object.entries(r.components)) {
      series.push({ x: r.fit_energies, y: values, label: `${name} × ${fmt(r.fractions[name], 2)}`, colour: referenceColour(d, name), style: "dash" });
    }
    drawPlot($("region-plot"), series, { xlabel: "energy (eV)", ylabel: "normalized absorption", xFormat: (v) => v.toFixed(0) });
    $("region-caption").textContent = `Region: ${r.region} (${r.n_pixels} pixels)`;
    for (const kind of ["csv", "xdi", "prj"]) {
      $(`region-${kind}`).href = `/api/scans/${encodeURIComponent(d.uid)}/region?${asked}&format=${kind}`;
    }
    $("region-downloads").hidden = false;
    regionMessage(`R-factor ${Number.isFinite(r.r_factor) ? r.r_factor.toExponential(2) : "–"} · edge step ${fmt(r.edge_step, 3)} · ` +
      Object.entries(r.fractions).map(([n, f]) => `${n} ${fmt(f, 3)}`).join(" · "));
    $("region-figure").dataset.kind = r.kind;
    return r;
  } catch (err) {
    drawPlot($("region-plot"), [], { empty: "no region spectrum" });
    $("region-caption").textContent = "Region";
    regionMessage(err.message);
    return null;
  }
}

function setMode(mode) {
  mapView.mode = mode;
  for (const b of document.querySelectorAll("#map-tools button[data-mode]")) b.classList.toggle("on", b.dataset.mode === mode);
  $("maps").dataset.mode = mode;
}

window.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#map-tools button[data-mode]")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("zoom-reset").addEventListener("click", resetView);
  $("region-mask").addEventListener("click", () => { drawBox(null); showRegion({ kind: "mask" }); });
  setMode("region");
});
