// Figures made of small grayscale images: a plain tiled grid (like the tutorial's subplot grids
// of generated digits), and rows of tiles with text labels (forward-diffusion strips,
// original vs. reconstructed). Inputs are plain typed arrays, N*h*w row-major.
import { encodeGrayPng } from "../io/png.ts";
import { GLYPH_HEIGHT, LINE_HEIGHT } from "./font.ts";
import { blitGray, createRaster, drawText, rasterToPng, textWidth, type Raster, type RGB } from "./raster.ts";

export type Pixels = Float32Array | Float64Array;

export interface TileOptions {
  /** Integer upscaling factor, nearest neighbour. Default 8 (an 8x8 digit becomes 64x64). */
  scale?: number;
  /** Pixels between tiles (and around the grid). Default 2. */
  padding?: number;
  /** Draw 1 - v: dark digits on white, like matplotlib's 'binary' cmap (default: 'gray', 0 = black). */
  invert?: boolean;
  /** Input values mapped linearly to [0,1] before clipping, e.g. [-1, 1] for model outputs. Default [0, 1]. */
  range?: [number, number];
}

export interface GridOptions extends TileOptions {
  /** Tiles per row. Default ceil(sqrt(n)). */
  cols?: number;
  /** Grey level (0..1) of the padding and empty cells; not affected by invert. Default 0.5. */
  background?: number;
}

export interface GrayImage {
  pixels: Float32Array;
  width: number;
  height: number;
}

function checkTiles(images: Pixels, n: number, h: number, w: number): void {
  for (const [name, v] of [["n", n], ["h", h], ["w", w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`grid: ${name} must be a positive integer, got ${v}`);
  }
  if (images.length !== n * h * w) throw new Error(`grid: ${n} images of ${h}x${w} need ${n * h * w} values, got ${images.length}`);
}

function positiveInt(v: number, name: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`grid: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Maps one input value to display intensity in [0,1] (range, clip, invert; NaN shows as 0). */
function intensity(v: number, lo: number, span: number, invert: boolean): number {
  let u = (v - lo) / span;
  u = u > 0 ? (u < 1 ? u : 1) : 0; // also maps NaN to 0
  return invert ? 1 - u : u;
}

/** Tiles n images of h x w into one grayscale image (values in [0,1], row-major). */
export function imageGrid(images: Pixels, n: number, h: number, w: number, options: GridOptions = {}): GrayImage {
  checkTiles(images, n, h, w);
  const cols = positiveInt(options.cols ?? Math.ceil(Math.sqrt(n)), "cols", 1);
  const rows = Math.ceil(n / cols);
  const s = positiveInt(options.scale ?? 8, "scale", 1);
  const pad = positiveInt(options.padding ?? 2, "padding", 0);
  const [lo, hi] = options.range ?? [0, 1];
  if (!(hi !== lo && Number.isFinite(lo) && Number.isFinite(hi))) throw new Error(`grid: invalid range [${lo}, ${hi}]`);
  const invert = options.invert ?? false;
  const width = cols * w * s + (cols + 1) * pad;
  const height = rows * h * s + (rows + 1) * pad;
  const pixels = new Float32Array(width * height).fill(options.background ?? 0.5);
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (w * s + pad);
    const y0 = pad + Math.floor(k / cols) * (h * s + pad);
    for (let y = 0; y < h * s; y++) {
      const src = k * h * w + Math.floor(y / s) * w;
      const dst = (y0 + y) * width + x0;
      for (let x = 0; x < w * s; x++) pixels[dst + x] = intensity(images[src + Math.floor(x / s)]!, lo, hi - lo, invert);
    }
  }
  return { pixels, width, height };
}

/** imageGrid straight to PNG bytes. */
export function imageGridPng(images: Pixels, n: number, h: number, w: number, options: GridOptions = {}): Uint8Array {
  const g = imageGrid(images, n, h, w, options);
  return encodeGrayPng(g.pixels, g.width, g.height);
}

export interface LabeledRow {
  /** The row's images, n*h*w values. */
  images: Pixels;
  /** Text at the left of the row, e.g. "Original". */
  label?: string;
  /** Text over each tile, e.g. "t=0", "t=250" (missing entries: no label). */
  tileLabels?: string[];
}

export interface LabeledRowsOptions extends TileOptions {
  /** Text over the whole figure. */
  title?: string;
  /** Pixel scale of the 5x7 font. Default 2 when tiles are at least 48 px wide, else 1. */
  textScale?: number;
  /** Figure background. Default white. */
  background?: RGB;
}

/**
 * Rows of image tiles with a label at the left of each row and/or over each tile.
 * Every row may hold a different number of images (all h x w).
 */
export function labeledRows(rows: LabeledRow[], h: number, w: number, options: LabeledRowsOptions = {}): Raster {
  if (rows.length === 0) throw new Error("grid: labeledRows needs at least one row");
  const s = positiveInt(options.scale ?? 8, "scale", 1);
  const pad = positiveInt(options.padding ?? 2, "padding", 0);
  const [lo, hi] = options.range ?? [0, 1];
  if (!(hi !== lo && Number.isFinite(lo) && Number.isFinite(hi))) throw new Error(`grid: invalid range [${lo}, ${hi}]`);
  const tileW = w * s;
  const tileH = h * s;
  const ts = positiveInt(options.textScale ?? (tileW >= 48 ? 2 : 1), "textScale", 1);
  const bg = options.background ?? ([255, 255, 255] as const);
  // Dark text on light backgrounds, light text on dark ones.
  const ink: RGB = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2] > 128 ? [20, 20, 20] : [235, 235, 235];
  const counts = rows.map((r, i) => {
    const n = r.images.length / (h * w);
    if (!Number.isInteger(n) || n < 1) throw new Error(`grid: row ${i} has ${r.images.length} values, not a positive multiple of ${h}x${w}`);
    return n;
  });
  const margin = 4 * ts;
  const lineH = LINE_HEIGHT * ts; // includes room for descenders (g, p, y)
  const labelW = Math.max(0, ...rows.map((r) => textWidth(r.label ?? "", ts)));
  const leftW = labelW > 0 ? labelW + 2 * margin : margin;
  const cols = Math.max(...counts);
  // Columns widen when a tile label is wider than the tile, keeping a gap between labels.
  const colW = Math.max(tileW, ...rows.flatMap((r) => (r.tileLabels ?? []).map((t) => textWidth(t, ts) + 6 * ts - pad)));
  const titleScale = ts + 1;
  const titleH = options.title ? LINE_HEIGHT * titleScale + margin : 0;
  const rowGap = Math.max(pad, 2 * ts);
  const bandH = (r: LabeledRow) => ((r.tileLabels ?? []).some((t) => t) ? lineH + 2 * ts : 0);

  const width = Math.max(leftW + cols * colW + (cols - 1) * pad + margin, options.title ? textWidth(options.title, titleScale) + 2 * margin : 0);
  const height = margin + titleH + rows.reduce((sum, r) => sum + bandH(r) + tileH, 0) + (rows.length - 1) * rowGap + margin;
  const img = createRaster(width, height, bg);
  if (options.title) drawText(img, Math.round((width - textWidth(options.title, titleScale)) / 2), margin, options.title, ink, titleScale);

  let y = margin + titleH;
  rows.forEach((row, i) => {
    const band = bandH(row);
    const tileTop = y + band;
    if (row.label) drawText(img, margin, Math.round(tileTop + (tileH - GLYPH_HEIGHT * ts) / 2), row.label, ink, ts);
    for (let k = 0; k < counts[i]!; k++) {
      const cx = leftW + k * (colW + pad);
      const tx = cx + Math.floor((colW - tileW) / 2);
      const tile = new Float32Array(h * w);
      for (let p = 0; p < h * w; p++) tile[p] = intensity(row.images[k * h * w + p]!, lo, hi - lo, options.invert ?? false);
      blitGray(img, tile, w, h, tx, tileTop, { scale: s });
      const label = row.tileLabels?.[k];
      if (label) drawText(img, Math.round(cx + (colW - textWidth(label, ts)) / 2), y + ts, label, ink, ts);
    }
    y = tileTop + tileH + rowGap;
  });
  return img;
}

/** labeledRows straight to PNG bytes. */
export function labeledRowsPng(rows: LabeledRow[], h: number, w: number, options: LabeledRowsOptions = {}): Uint8Array {
  return rasterToPng(labeledRows(rows, h, w, options));
}
