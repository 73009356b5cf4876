// A minimal RGB raster (8 bits per channel, row-major) with just the drawing operations the
// figures need. Pure typed-array code: works in Node and in browsers.
import { encodeRgbPng, unitToByte } from "../io/png.ts";

export type RGB = readonly [number, number, number];

export interface Raster {
  width: number;
  height: number;
  /** r, g, b per pixel, row-major: pixel (x, y) starts at 3 * (y * width + x). */
  data: Uint8Array;
}

export interface Rect {
  x0: number;
  y0: number;
  x1: number; // exclusive
  y1: number; // exclusive
}

export const BLACK: RGB = [0, 0, 0];
export const WHITE: RGB = [255, 255, 255];

export function createRaster(width: number, height: number, background: RGB = WHITE): Raster {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`raster: size must be positive integers, got ${width}x${height}`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = background[0];
    data[i + 1] = background[1];
    data[i + 2] = background[2];
  }
  return { width, height, data };
}

export function getPixel(r: Raster, x: number, y: number): RGB {
  const i = 3 * (y * r.width + x);
  return [r.data[i]!, r.data[i + 1]!, r.data[i + 2]!];
}

/** Mixes `color` into pixel (x, y) with coverage `alpha` in [0,1]; ignores pixels outside `clip`. */
export function blendPixel(r: Raster, x: number, y: number, color: RGB, alpha = 1, clip?: Rect): void {
  if (x < 0 || y < 0 || x >= r.width || y >= r.height || !(alpha > 0)) return;
  if (clip !== undefined && (x < clip.x0 || y < clip.y0 || x >= clip.x1 || y >= clip.y1)) return;
  const a = Math.min(1, alpha);
  const i = 3 * (y * r.width + x);
  for (let k = 0; k < 3; k++) r.data[i + k] = Math.round(r.data[i + k]! * (1 - a) + color[k]! * a);
}

/** Fills the rectangle [x, x+w) x [y, y+h), clipped to the raster. */
export function fillRect(r: Raster, x: number, y: number, w: number, h: number, color: RGB): void {
  const x0 = Math.max(0, Math.round(x));
  const y0 = Math.max(0, Math.round(y));
  const x1 = Math.min(r.width, Math.round(x + w));
  const y1 = Math.min(r.height, Math.round(y + h));
  for (let yy = y0; yy < y1; yy++) {
    for (let xx = x0; xx < x1; xx++) {
      const i = 3 * (yy * r.width + xx);
      r.data[i] = color[0];
      r.data[i + 1] = color[1];
      r.data[i + 2] = color[2];
    }
  }
}

/** Crisp 1-px horizontal/vertical lines for axes, ticks and grids (integer coordinates). */
export function hLine(r: Raster, x0: number, x1: number, y: number, color: RGB, alpha = 1): void {
  for (let x = Math.min(x0, x1); x <= Math.max(x0, x1); x++) blendPixel(r, x, y, color, alpha);
}

export function vLine(r: Raster, x: number, y0: number, y1: number, color: RGB, alpha = 1): void {
  for (let y = Math.min(y0, y1); y <= Math.max(y0, y1); y++) blendPixel(r, x, y, color, alpha);
}

const fpart = (v: number) => v - Math.floor(v);

/**
 * Antialiased line (Xiaolin Wu) between pixel centres (x0, y0) and (x1, y1), optionally
 * clipped to a rectangle. Non-finite endpoints draw nothing.
 */
export function drawLine(
  r: Raster, x0: number, y0: number, x1: number, y1: number, color: RGB, clip?: Rect,
): void {
  if (![x0, y0, x1, y1].every(Number.isFinite)) return;
  const steep = Math.abs(y1 - y0) > Math.abs(x1 - x0);
  // Work along the major axis; `plot` swaps back for steep lines.
  const plot = (a: number, b: number, c: number) => (steep ? blendPixel(r, b, a, color, c, clip) : blendPixel(r, a, b, color, c, clip));
  if (steep) [x0, y0, x1, y1] = [y0, x0, y1, x1];
  if (x0 > x1) [x0, x1, y0, y1] = [x1, x0, y1, y0];
  const dx = x1 - x0;
  const gradient = dx === 0 ? 0 : (y1 - y0) / dx;
  if (dx < 1) {
    // Shorter than a pixel: one dot split between the two nearest rows.
    const xm = Math.round((x0 + x1) / 2);
    const ym = (y0 + y1) / 2;
    plot(xm, Math.floor(ym), 1 - fpart(ym));
    plot(xm, Math.floor(ym) + 1, fpart(ym));
    return;
  }
  const xs = Math.round(x0);
  const xe = Math.round(x1);
  for (let x = xs; x <= xe; x++) {
    const y = y0 + gradient * (x - x0);
    // End pixels get partial coverage so joined segments do not double-darken the joints.
    const cover = x === xs ? 1 - fpart(x0 + 0.5) : x === xe ? fpart(x1 + 0.5) : 1;
    const w = x === xs && x === xe ? Math.max(cover, 0.5) : cover;
    plot(x, Math.floor(y), (1 - fpart(y)) * w);
    plot(x, Math.floor(y) + 1, fpart(y) * w);
  }
}

/**
 * Draws a grayscale tile (row-major values in [0,1]) at (x, y), each pixel upscaled to a
 * scale x scale block (nearest neighbour). `invert` maps v to 1 - v (dark-on-white "binary").
 */
export function blitGray(
  r: Raster, tile: ArrayLike<number>, tw: number, th: number, x: number, y: number,
  options: { scale?: number; invert?: boolean } = {},
): void {
  const s = options.scale ?? 1;
  if (tile.length !== tw * th) throw new Error(`raster: tile ${tw}x${th} needs ${tw * th} values, got ${tile.length}`);
  for (let ty = 0; ty < th; ty++) {
    for (let tx = 0; tx < tw; tx++) {
      const v = tile[ty * tw + tx]!;
      const b = unitToByte(options.invert ? 1 - v : v);
      fillRect(r, x + tx * s, y + ty * s, s, s, [b, b, b]);
    }
  }
}

export function rasterToPng(r: Raster): Uint8Array {
  return encodeRgbPng(r.data, r.width, r.height);
}

// Text drawing lives in font.ts; re-exported so callers need only this module for a figure.
export { drawText, drawTextUp, textWidth } from "./font.ts";
