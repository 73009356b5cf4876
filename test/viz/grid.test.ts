import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { imageGrid, imageGridPng, labeledRows, labeledRowsPng } from "../../src/viz/grid.ts";
import { getPixel, type Raster } from "../../src/viz/raster.ts";

/** n images of h x w whose value at (k, y, x) is distinct: (k*100 + y*10 + x) / 1000. */
function numbered(n: number, h: number, w: number): Float32Array {
  const a = new Float32Array(n * h * w);
  for (let k = 0; k < n; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a[(k * h + y) * w + x] = (k * 100 + y * 10 + x) / 1000;
  return a;
}

test("imageGrid: size, tile placement, upscaling and background", () => {
  const g = imageGrid(numbered(5, 2, 3), 5, 2, 3, { cols: 2, scale: 2, padding: 1, background: 0.25 });
  assert.equal(g.width, 2 * 6 + 3);
  assert.equal(g.height, 3 * 4 + 4);
  const at = (x: number, y: number) => g.pixels[y * g.width + x]!;
  // Image 3 sits in row 1, column 1: top-left at (1 + 7, 1 + 5); its pixel (y=1, x=2) covers a 2x2 block.
  for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) assert.equal(at(8 + 4 + dx!, 6 + 2 + dy!), Math.fround(0.312));
  assert.equal(at(1, 1), 0);
  assert.equal(at(0, 0), 0.25); // outer padding
  assert.equal(at(7, 3), 0.25); // between columns
  assert.equal(at(10, 12), 0.25); // empty 6th cell
  assert.equal(at(3, 12), Math.fround(0.401)); // image 4 (row 2, col 0), pixel y=0, x=1
});

test("imageGrid: default 8x upscale, 2 px padding, grey background, ceil(sqrt(n)) columns", () => {
  const g = imageGrid(new Float32Array(9 * 64), 9, 8, 8);
  assert.equal(g.width, 3 * 64 + 4 * 2);
  assert.equal(g.height, g.width);
  assert.equal(g.pixels[0], 0.5);
});

test("imageGrid: invert ('binary'), value range mapping, clipping and NaN", () => {
  const img = new Float32Array([-1, 0, 1, 3, NaN, 0.5]);
  const g = imageGrid(img, 1, 1, 6, { scale: 1, padding: 0, range: [-1, 1] });
  assert.deepEqual([...g.pixels], [0, 0.5, 1, 1, 0, 0.75]);
  const inv = imageGrid(img, 1, 1, 6, { scale: 1, padding: 0, invert: true });
  assert.deepEqual([...inv.pixels], [1, 1, 0, 0, 1, 0.5]);
});

test("imageGrid refuses inconsistent sizes", () => {
  assert.throws(() => imageGrid(new Float32Array(10), 2, 2, 3), /2 images of 2x3 need 12 values, got 10/);
  assert.throws(() => imageGrid(new Float32Array(12), 2, 2, 3, { scale: 1.5 }), /scale must be an integer/);
  assert.throws(() => imageGrid(new Float32Array(12), 2, 2, 3, { cols: 0 }), /cols/);
  assert.throws(() => imageGrid(new Float32Array(12), 2, 2, 3, { range: [1, 1] }), /invalid range/);
});

test("imageGridPng is a grayscale PNG of the grid", () => {
  const png = decode(imageGridPng(numbered(4, 8, 8), 4, 8, 8));
  assert.equal(png.channels, 1);
  assert.equal(png.width, 2 * 64 + 3 * 2);
});

const isBlack = (r: Raster, x: number, y: number) => getPixel(r, x, y).every((c) => c === 0);
function blackBox(r: Raster): { x0: number; y0: number; x1: number; y1: number; count: number } {
  const b = { x0: Infinity, y0: Infinity, x1: -1, y1: -1, count: 0 };
  for (let y = 0; y < r.height; y++) {
    for (let x = 0; x < r.width; x++) {
      if (!isBlack(r, x, y)) continue;
      b.count++;
      b.x0 = Math.min(b.x0, x); b.y0 = Math.min(b.y0, y); b.x1 = Math.max(b.x1, x); b.y1 = Math.max(b.y1, y);
    }
  }
  return b;
}
const inked = (r: Raster, x0: number, y0: number, x1: number, y1: number) => {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (getPixel(r, x, y)[0] < 128 && !isBlack(r, x, y)) n++;
  return n;
};

test("labeledRows: tiles are drawn at full size, to the right of row labels and below tile labels", () => {
  // One black tile per row (value 0 = pure black); text ink is dark grey, so they can be told apart.
  const plain = labeledRows([{ images: new Float32Array(16) }], 4, 4, { scale: 3 });
  const p = blackBox(plain);
  assert.equal(p.count, 12 * 12);
  assert.equal(p.x1 - p.x0 + 1, 12);
  const withLabels = labeledRows([{ images: new Float32Array(16), label: "Original", tileLabels: ["t=0"] }], 4, 4, { scale: 3, textScale: 1 });
  const b = blackBox(withLabels);
  assert.equal(b.count, 12 * 12);
  assert.ok(b.x0 > p.x0 + 40, "tile moved right of the row label");
  assert.ok(b.y0 > p.y0 + 8, "tile moved below the tile label");
  assert.ok(inked(withLabels, 0, b.y0, b.x0, b.y1 + 1) > 20, "row label ink at the left of the tile");
  assert.ok(inked(withLabels, b.x0 - 4, 0, b.x1 + 5, b.y0) > 10, "tile label ink above the tile");
});

test("labeledRows: rows may hold different numbers of tiles; title widens the figure", () => {
  const r = labeledRows([
    { images: new Float32Array(3 * 4), tileLabels: ["a", "b", "c"] },
    { images: new Float32Array(1 * 4), label: "one" },
  ], 2, 2, { scale: 4, title: "A fairly long title for a small figure" });
  assert.equal(blackBox(r).count, 4 * 64);
  assert.ok(r.width >= 38 * 6 * 2);
  const png = decode(labeledRowsPng([{ images: new Float32Array(4) }], 2, 2));
  assert.equal(png.channels, 3);
  assert.throws(() => labeledRows([{ images: new Float32Array(5) }], 2, 2), /row 0 has 5 values, not a positive multiple of 2x2/);
  assert.throws(() => labeledRows([], 2, 2), /at least one row/);
});
