import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { PALETTE, lineChart, lineChartPng, type Series } from "../../src/viz/plot.ts";
import { getPixel, type Raster, type RGB } from "../../src/viz/raster.ts";

/** Rows of pixels in column x that carry (a blend of) the series colour over white. */
function colorRows(r: Raster, x: number, color: RGB): number[] {
  const rows: number[] = [];
  for (let y = 0; y < r.height; y++) {
    const p = getPixel(r, x, y);
    // A blend c*a + 255*(1-a) keeps the channel ordering of the colour; grey text and grid do not.
    const a = (255 - p[2]) / (255 - color[2]);
    const expect = color.map((c) => c * a + 255 * (1 - a));
    if (a > 0.3 && p.every((v, k) => Math.abs(v - expect[k]!) < 25)) rows.push(y);
  }
  return rows;
}
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
function colorColumns(r: Raster, color: RGB): number[] {
  const cols: number[] = [];
  for (let x = 0; x < r.width; x++) if (colorRows(r, x, color).length > 0) cols.push(x);
  return cols;
}
/** The plot frame: the rows and columns that are mostly pure black. */
function frame(r: Raster) {
  const black = (x: number, y: number) => getPixel(r, x, y).every((c) => c === 0);
  const rows: number[] = [];
  const cols: number[] = [];
  for (let y = 0; y < r.height; y++) {
    let n = 0;
    for (let x = 0; x < r.width; x++) if (black(x, y)) n++;
    if (n > r.width / 2) rows.push(y);
  }
  for (let x = 0; x < r.width; x++) {
    let n = 0;
    for (let y = 0; y < r.height; y++) if (black(x, y)) n++;
    if (n > r.height / 2) cols.push(x);
  }
  return { top: rows[0]!, bottom: rows[rows.length - 1]!, left: cols[0]!, right: cols[cols.length - 1]! };
}
const BLUE = PALETTE[0]!;

test("PNG has the requested size and a framed plot area", () => {
  const png = decode(lineChartPng([{ values: [1, 2, 3] }], { width: 500, height: 300 }));
  assert.equal(png.width, 500);
  assert.equal(png.height, 300);
  const f = frame(lineChart([{ values: [1, 2, 3] }]));
  assert.ok(f.right - f.left > 400 && f.bottom - f.top > 200, JSON.stringify(f));
});

test("linear axis: a straight line runs from the bottom-left to the top-right corner region", () => {
  const r = lineChart([{ values: [0, 1, 2, 3, 4] }]);
  const f = frame(r);
  const cols = colorColumns(r, BLUE);
  assert.ok(cols[0]! <= f.left + 2 && cols[cols.length - 1]! >= f.right - 2, "spans the full x range");
  const yl = mean(colorRows(r, f.left + 2, BLUE));
  const yr = mean(colorRows(r, f.right - 2, BLUE));
  const ym = mean(colorRows(r, Math.round((f.left + f.right) / 2), BLUE));
  assert.ok(yl > yr + 150, `left ${yl} should be far below right ${yr}`);
  assert.ok(Math.abs(ym - (yl + yr) / 2) < 3, "linear in between");
});

test("log axis: an exponential decay is a straight line; bad values are skipped with a gap", () => {
  const values = [1, 0.1, 0.01, 0.001, 1e-4];
  const r = lineChart([{ values }], { logY: true });
  const f = frame(r);
  // Sample between the x grid lines; on a log axis the samples must lie on one straight line.
  const fr = [0.1, 0.3, 0.5, 0.7, 0.9];
  const ys = fr.map((q) => mean(colorRows(r, Math.round(f.left + 1 + q * (f.right - f.left - 2)), BLUE)));
  const step = (ys[4]! - ys[0]!) / 4;
  assert.ok(step > 30, `falls steeply: ${ys}`);
  ys.forEach((y, i) => assert.ok(Math.abs(y - (ys[0]! + step * i)) < 3, `sample ${i}: ${y} (all ${ys})`));

  const broken = [1, NaN, 0.5, -1, 0, Infinity, 0.25, 0.2, 0.1];
  const b = lineChart([{ values: broken }], { logY: true });
  const g = frame(b);
  const x = (i: number) => Math.round(g.left + 1 + (i / 8) * (g.right - g.left - 2));
  assert.equal(colorRows(b, Math.round((x(0) + x(2)) / 2) + 1, BLUE).length, 0, "gap after the NaN");
  assert.ok(colorRows(b, x(0), BLUE).length > 0, "isolated first point is drawn as a dot");
  assert.equal(colorRows(b, Math.round((x(2) + x(6)) / 2), BLUE).length, 0, "gap over -1, 0, Infinity");
  assert.ok(colorRows(b, Math.round((x(6) + x(8)) / 2), BLUE).length > 0, "line resumes");
});

test("constant series is a flat line in the middle; a single point is a dot", () => {
  for (const logY of [false, true]) {
    const r = lineChart([{ values: [3, 3, 3, 3] }], { logY });
    const f = frame(r);
    const rows = colorRows(r, Math.round((f.left + f.right) / 2), BLUE);
    assert.ok(rows.length > 0 && rows.length <= 2, `logY=${logY}: ${rows}`);
    assert.ok(Math.abs(mean(rows) - (f.top + f.bottom) / 2) < 3, `logY=${logY}: centred`);
  }
  const dot = lineChart([{ values: [5] }]);
  const cols = colorColumns(dot, BLUE);
  assert.ok(cols.length >= 3 && cols.length <= 6, `dot columns ${cols}`);
});

test("no usable data, empty series and no series at all still render", () => {
  for (const series of [[{ values: [-1, 0, NaN] }], [{ values: [] }], []] as Series[][]) {
    const r = lineChart(series, { logY: true, title: "t", xLabel: "Step", yLabel: "Loss" });
    assert.equal(colorColumns(r, BLUE).length, 0);
  }
});

test("explicit x values, several series with their own colours, and a legend", () => {
  const series: Series[] = [
    { values: [1, 2], x: [100, 200], label: "train" },
    { values: [2, 1], x: [100, 200], label: "eval" },
  ];
  const r = lineChart(series);
  assert.ok(colorColumns(r, PALETTE[0]!).length > 300);
  assert.ok(colorColumns(r, PALETTE[1]!).length > 300);
  const unlabeled = lineChart(series.map((s) => ({ ...s, label: undefined })));
  let diff = 0;
  for (let i = 0; i < r.data.length; i++) if (r.data[i] !== unlabeled.data[i]) diff++;
  assert.ok(diff > 100, "legend drawn");
});

test("title and axis labels put ink outside the plot area", () => {
  const ink = (r: Raster, x0: number, y0: number, x1: number, y1: number) => {
    let n = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (getPixel(r, x, y)[0] < 100) n++;
    return n;
  };
  const bare = lineChart([{ values: [1, 2] }]);
  const full = lineChart([{ values: [1, 2] }], { title: "Training Loss Over Time", xLabel: "Step", yLabel: "Loss" });
  const f = frame(full);
  assert.equal(ink(bare, 0, 0, bare.width, frame(bare).top - 1), 0);
  assert.ok(ink(full, 0, 0, full.width, f.top - 1) > 50, "title");
  assert.ok(ink(full, 0, full.height - 20, full.width, full.height) > 20, "x label");
  assert.ok(ink(full, 0, f.top, 20, f.bottom) > 20, "y label");
});

test("a canvas too small for the chart is refused", () => {
  assert.throws(() => lineChart([{ values: [1] }], { width: 40, height: 30 }), /too small/);
});
