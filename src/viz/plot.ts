// Line charts rendered straight to PNG (e.g. the training-loss curve on a log axis): axes,
// ticks with numeric labels, grid, title, axis labels, legend. No canvas or font files needed.
import { GLYPH_HEIGHT } from "./font.ts";
import {
  BLACK, WHITE, blendPixel, createRaster, drawLine, drawText, drawTextUp, fillRect, hLine, rasterToPng, textWidth, vLine,
  type Raster, type Rect, type RGB,
} from "./raster.ts";
import { linearTicks, logTicks, type Tick } from "./ticks.ts";

export interface Series {
  values: ArrayLike<number>;
  /** x of each value; default the index 0, 1, 2, ... */
  x?: ArrayLike<number>;
  label?: string;
  color?: RGB;
}

export interface LineChartOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** log10 y axis; values that are not finite and > 0 are skipped (they break the line). */
  logY?: boolean;
  grid?: boolean;
  /** Pixel scale of tick and axis-label text (the title is one step larger). Default 1 below 480 px wide, else 2. */
  textScale?: number;
}

// matplotlib's default colour cycle, so figures look familiar next to the tutorial's.
export const PALETTE: RGB[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];
const GRID_MAJOR: RGB = [214, 214, 214];
const GRID_MINOR: RGB = [236, 236, 236];
const TEXT: RGB = [30, 30, 30];

interface Domain { lo: number; hi: number }

function extent(values: number[]): Domain | undefined {
  if (values.length === 0) return undefined;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return { lo, hi };
}

/** Pads the data range by 5% (or a fixed amount when it is a single value) so curves do not sit on the frame. */
function padded(d: Domain | undefined, fallback: Domain, flatPad: (v: number) => number): Domain {
  if (d === undefined) return fallback;
  if (d.hi === d.lo) return { lo: d.lo - flatPad(d.lo), hi: d.hi + flatPad(d.hi) };
  const m = 0.05 * (d.hi - d.lo);
  return { lo: d.lo - m, hi: d.hi + m };
}

/** Renders the chart to an RGB raster (use lineChartPng for the PNG bytes). */
export function lineChart(series: Series[], options: LineChartOptions = {}): Raster {
  const width = options.width ?? 640;
  const height = options.height ?? 320;
  const logY = options.logY ?? false;
  const ts = Math.max(1, Math.round(options.textScale ?? (width < 480 ? 1 : 2)));
  // The title is one step larger than the other text, unless that does not fit the width.
  const titleScale = options.title && textWidth(options.title, ts + 1) > width - 8 * ts ? ts : ts + 1;
  const pad = 4 * ts;
  const tickLen = 2 + 2 * ts;
  const img = createRaster(width, height, WHITE);

  // Valid points per series; y is stored in axis space (log10 on a log axis).
  const pts = series.map((s) => {
    const out: ({ x: number; y: number } | undefined)[] = [];
    for (let i = 0; i < s.values.length; i++) {
      const x = s.x !== undefined ? Number(s.x[i]) : i;
      const v = Number(s.values[i]);
      const ok = Number.isFinite(x) && Number.isFinite(v) && (!logY || v > 0);
      out.push(ok ? { x, y: logY ? Math.log10(v) : v } : undefined);
    }
    return out;
  });
  const all = pts.flat().filter((p) => p !== undefined) as { x: number; y: number }[];
  // x: the exact data range (a step axis starts at its first step); y: padded by 5%.
  const xe = extent(all.map((p) => p.x));
  const xd = xe === undefined ? { lo: 0, hi: 1 } : xe.hi > xe.lo ? xe : { lo: xe.lo - 1, hi: xe.hi + 1 };
  const yd = padded(extent(all.map((p) => p.y)), logY ? { lo: -1, hi: 0 } : { lo: 0, hi: 1 },
    (v) => (logY ? 0.3 : Math.abs(v) * 0.1 || 1));

  const indexAxis = series.every((s) => s.x === undefined);
  const xTicks = linearTicks(xd.lo, xd.hi, Math.max(2, Math.round(width / 80)), indexAxis);
  const yTicks: Tick[] = logY ? logTicks(10 ** yd.lo, 10 ** yd.hi) : linearTicks(yd.lo, yd.hi, Math.max(2, Math.round(height / 60)));
  const yAxis = (t: Tick) => (logY ? Math.log10(t.value) : t.value);

  // Layout: margins sized from the text that has to fit in them.
  const textH = GLYPH_HEIGHT * ts;
  const yLabelW = Math.max(0, ...yTicks.map((t) => textWidth(t.label, ts)));
  const lastX = xTicks.length > 0 ? textWidth(xTicks[xTicks.length - 1]!.label, ts) : 0;
  const top = options.title ? 2 * pad + GLYPH_HEIGHT * titleScale : 2 * pad;
  const left = pad + (options.yLabel ? textH + 2 * pad : 0) + yLabelW + tickLen + pad;
  const bottom = tickLen + pad + textH + (options.xLabel ? 2 * pad + textH : 0) + pad;
  const right = Math.max(2 * pad, Math.ceil(lastX / 2) + pad);
  const plot: Rect = { x0: left, y0: top, x1: width - right, y1: height - bottom };
  if (plot.x1 - plot.x0 < 10 || plot.y1 - plot.y0 < 10) throw new Error(`plot: ${width}x${height} is too small for the chart`);
  const px = (x: number) => plot.x0 + ((x - xd.lo) / (xd.hi - xd.lo)) * (plot.x1 - 1 - plot.x0);
  const py = (y: number) => plot.y1 - 1 - ((y - yd.lo) / (yd.hi - yd.lo)) * (plot.y1 - 1 - plot.y0);

  if (options.grid ?? true) {
    for (const t of xTicks) vLine(img, Math.round(px(t.value)), plot.y0, plot.y1 - 1, GRID_MAJOR);
    for (const t of yTicks) hLine(img, plot.x0, plot.x1 - 1, Math.round(py(yAxis(t))), t.major ? GRID_MAJOR : GRID_MINOR);
  }

  series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    const p = pts[k]!;
    for (let i = 0; i < p.length; i++) {
      const a = p[i];
      if (a === undefined) continue;
      const b = p[i + 1];
      if (b !== undefined) drawLine(img, px(a.x), py(a.y), px(b.x), py(b.y), color, plot);
      else if (p[i - 1] === undefined) dot(img, px(a.x), py(a.y), color, plot); // isolated point
    }
  });

  // Frame, ticks and tick labels (labels that would collide with the previous one are skipped).
  hLine(img, plot.x0 - 1, plot.x1, plot.y0 - 1, BLACK);
  hLine(img, plot.x0 - 1, plot.x1, plot.y1, BLACK);
  vLine(img, plot.x0 - 1, plot.y0 - 1, plot.y1, BLACK);
  vLine(img, plot.x1, plot.y0 - 1, plot.y1, BLACK);
  let lastRight = -Infinity;
  for (const t of xTicks) {
    const x = Math.round(px(t.value));
    vLine(img, x, plot.y1 + 1, plot.y1 + tickLen, BLACK);
    const w = textWidth(t.label, ts);
    const lx = Math.round(x - w / 2);
    if (lx > lastRight + 2 * ts) {
      drawText(img, lx, plot.y1 + tickLen + pad, t.label, TEXT, ts);
      lastRight = lx + w;
    }
  }
  let lastTop = Infinity;
  for (const t of yTicks) {
    const y = Math.round(py(yAxis(t)));
    const len = t.major ? tickLen : Math.ceil(tickLen / 2);
    hLine(img, plot.x0 - 1 - len, plot.x0 - 2, y, BLACK);
    if (t.label === "") continue;
    const ty = Math.round(y - textH / 2);
    if (ty + textH + ts <= lastTop) {
      drawText(img, plot.x0 - 1 - tickLen - pad - textWidth(t.label, ts), ty, t.label, TEXT, ts);
      lastTop = ty;
    }
  }

  const midX = (plot.x0 + plot.x1) / 2;
  if (options.title) {
    const tw = textWidth(options.title, titleScale);
    const tx = Math.min(Math.max(pad, Math.round(midX - tw / 2)), Math.max(pad, width - pad - tw));
    drawText(img, tx, pad, options.title, TEXT, titleScale);
  }
  if (options.xLabel) drawText(img, Math.round(midX - textWidth(options.xLabel, ts) / 2), height - pad - textH, options.xLabel, TEXT, ts);
  if (options.yLabel) {
    const len = textWidth(options.yLabel, ts);
    drawTextUp(img, pad, Math.round((plot.y0 + plot.y1) / 2 - len / 2), options.yLabel, TEXT, ts);
  }
  if (all.length === 0) {
    const msg = "no data";
    drawText(img, Math.round(midX - textWidth(msg, ts) / 2), Math.round((plot.y0 + plot.y1 - textH) / 2), msg, [120, 120, 120], ts);
  }
  legend(img, series, plot, ts);
  return img;
}

function dot(img: Raster, x: number, y: number, color: RGB, clip: Rect): void {
  const cx = Math.round(x);
  const cy = Math.round(y);
  for (let dy = -2; dy <= 2; dy++) {
    for (let dx = -2; dx <= 2; dx++) if (dx * dx + dy * dy <= 5) blendPixel(img, cx + dx, cy + dy, color, 1, clip);
  }
}

/** Box in the top-right corner of the plot listing the labelled series. */
function legend(img: Raster, series: Series[], plot: Rect, ts: number): void {
  const items = series.map((s, k) => ({ label: s.label, color: s.color ?? PALETTE[k % PALETTE.length]! }))
    .filter((it): it is { label: string; color: RGB } => it.label !== undefined && it.label !== "");
  if (items.length === 0) return;
  const row = (GLYPH_HEIGHT + 4) * ts;
  const swatch = 8 * ts;
  const w = 3 * 3 * ts + swatch + Math.max(...items.map((it) => textWidth(it.label, ts)));
  const h = items.length * row + 3 * ts;
  const x = plot.x1 - w - 4 * ts;
  const y = plot.y0 + 4 * ts;
  fillRect(img, x, y, w, h, WHITE);
  hLine(img, x, x + w - 1, y, GRID_MAJOR);
  hLine(img, x, x + w - 1, y + h - 1, GRID_MAJOR);
  vLine(img, x, y, y + h - 1, GRID_MAJOR);
  vLine(img, x + w - 1, y, y + h - 1, GRID_MAJOR);
  items.forEach((it, i) => {
    const ry = y + 2 * ts + i * row;
    fillRect(img, x + 3 * ts, ry + Math.floor(GLYPH_HEIGHT * ts / 2) - ts, swatch, Math.max(2, ts), it.color);
    drawText(img, x + 6 * ts + swatch, ry, it.label, TEXT, ts);
  });
}

/** The chart as PNG bytes. */
export function lineChartPng(series: Series[], options: LineChartOptions = {}): Uint8Array {
  return rasterToPng(lineChart(series, options));
}
