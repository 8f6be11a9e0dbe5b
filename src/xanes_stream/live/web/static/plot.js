// A small line-plot drawer for SVG: axes with ticks and labels, lines, dots and a legend.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
  const raw = (hi - lo) / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => raw <= s) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return { ticks, step };
}

function formatTick(v, step) {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 6));
}

// series: [{x: [], y: [], label, colour, style: "line"|"dots"|"dash"|"linedots"}]
function drawPlot(svg, series, opts) {
  opts = opts || {};
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const box = svg.viewBox.baseVal;
  const W = box.width || 520, H = box.height || 300;
  const m = { left: 72, right: 14, top: 12, bottom: 44 };
  const xs = [], ys = [];
  for (const s of series) {
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (Number.isFinite(x) && Number.isFinite(y)) { xs.push(x); ys.push(y); }
    });
  }
  if (!xs.length) {
    svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = opts.empty || "no data";
    return;
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = opts.yRange || [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  if (!opts.yRange) { const pad = 0.05 * (y1 - y0); y0 -= pad; y1 += pad; }
  const px = (x) => m.left + ((x - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y) => H - m.bottom - ((y - y0) / (y1 - y0)) * (H - m.top - m.bottom);
  const grid = svgEl("g", { class: "grid" }, svg);
  const axis = svgEl("g", { class: "axis" }, svg);
  const xt = niceTicks(x0, x1, 6), yt = niceTicks(y0, y1, 5);
  for (const t of xt.ticks) {
    svgEl("line", { x1: px(t), x2: px(t), y1: m.top, y2: H - m.bottom }, grid);
    svgEl("text", { x: px(t), y: H - m.bottom + 15, "text-anchor": "middle" }, axis).textContent =
      (opts.xFormat || ((v) => formatTick(v, xt.step)))(t);
  }
  for (const t of yt.ticks) {
    svgEl("line", { x1: m.left, x2: W - m.right, y1: py(t), y2: py(t) }, grid);
    svgEl("text", { x: m.left - 6, y: py(t) + 4, "text-anchor": "end" }, axis).textContent = formatTick(t, yt.step);
  }
  svgEl("path", { d: `M${m.left},${m.top}V${H - m.bottom}H${W - m.right}`, fill: "none" }, axis);
  svgEl("text", { x: (m.left + W - m.right) / 2, y: H - 8, "text-anchor": "middle" }, axis).textContent = opts.xlabel || "";
  svgEl("text", { x: 14, y: (m.top + H - m.bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(m.top + H - m.bottom) / 2})` }, axis).textContent = opts.ylabel || "";
  for (const s of series) {
    const pts = s.x.map((x, i) => [x, s.y[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const style = s.style || "line";
    if (style !== "dots") {
      const d = pts.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
      svgEl("path", { d, fill: "none", stroke: s.colour || "#333", "stroke-width": s.width || 1.6,
        "stroke-dasharray": style === "dash" ? "5 3" : "none" }, svg);
    }
    if (style === "dots" || style === "linedots") {
      for (const [x, y] of pts) svgEl("circle", { class: "pt", cx: px(x), cy: py(y), r: 2.4, fill: s.colour || "#000" }, svg);
    }
  }
  // legend, top left inside the axes
  let ly = m.top + 12;
  const legend = svgEl("g", {}, svg);
  for (const s of series) {
    if (!s.label) continue;
    const lx = opts.legendRight ? W - m.right - 120 : m.left + 10;
    if ((s.style || "line") === "dots") svgEl("circle", { cx: lx + 9, cy: ly - 4, r: 3, fill: s.colour }, legend);
    else svgEl("line", { x1: lx, x2: lx + 18, y1: ly - 4, y2: ly - 4, stroke: s.colour, "stroke-width": 2,
      "stroke-dasharray": s.style === "dash" ? "5 3" : "none" }, legend);
    svgEl("text", { x: lx + 24, y: ly }, legend).textContent = s.label;
    ly += 16;
  }
}
