import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { blendPixel, blitGray, createRaster, drawLine, fillRect, getPixel, rasterToPng } from "../../src/viz/raster.ts";

const darkness = (r: ReturnType<typeof createRaster>, x: number, y: number) => 255 - getPixel(r, x, y)[0];

test("createRaster fills the background; fillRect clips to the canvas", () => {
  const r = createRaster(4, 3, [10, 20, 30]);
  assert.deepEqual(getPixel(r, 3, 2), [10, 20, 30]);
  fillRect(r, -2, 1, 4, 10, [1, 2, 3]);
  assert.deepEqual(getPixel(r, 0, 1), [1, 2, 3]);
  assert.deepEqual(getPixel(r, 1, 2), [1, 2, 3]);
  assert.deepEqual(getPixel(r, 2, 1), [10, 20, 30]);
  assert.deepEqual(getPixel(r, 0, 0), [10, 20, 30]);
  assert.throws(() => createRaster(0, 5), /positive integers/);
});

test("blendPixel mixes by alpha and respects the clip rectangle", () => {
  const r = createRaster(3, 1);
  blendPixel(r, 0, 0, [0, 0, 0], 0.5);
  assert.deepEqual(getPixel(r, 0, 0), [128, 128, 128]);
  blendPixel(r, 1, 0, [0, 0, 0], 1, { x0: 2, y0: 0, x1: 3, y1: 1 });
  assert.deepEqual(getPixel(r, 1, 0), [255, 255, 255]);
  blendPixel(r, 7, 7, [0, 0, 0]); // outside: ignored
});

test("Wu line: horizontal line is solid, diagonal covers each column once, gaps never appear", () => {
  const r = createRaster(20, 20);
  drawLine(r, 2, 5, 17, 5, [0, 0, 0]);
  for (let x = 3; x <= 16; x++) assert.equal(darkness(r, x, 5), 255, `x=${x}`);
  assert.equal(darkness(r, 10, 4) + darkness(r, 10, 6), 0);
  const d = createRaster(20, 20);
  drawLine(d, 1, 1, 18, 12, [0, 0, 0]);
  for (let x = 2; x <= 17; x++) {
    let ink = 0;
    for (let y = 0; y < 20; y++) ink += darkness(d, x, y);
    assert.ok(ink >= 250 && ink <= 260, `column ${x} has ink ${ink}`);
  }
  const s = createRaster(20, 20);
  drawLine(s, 3, 1, 5, 18, [0, 0, 0]); // steep
  for (let y = 2; y <= 17; y++) {
    let ink = 0;
    for (let x = 0; x < 20; x++) ink += darkness(s, x, y);
    assert.ok(ink >= 250 && ink <= 260, `row ${y} has ink ${ink}`);
  }
});

test("drawLine ignores non-finite endpoints and clips", () => {
  const r = createRaster(10, 10);
  drawLine(r, 0, 0, NaN, 5, [0, 0, 0]);
  drawLine(r, -100, 5, 100, 5, [0, 0, 0], { x0: 2, y0: 0, x1: 5, y1: 10 });
  assert.equal(darkness(r, 1, 5), 0);
  assert.equal(darkness(r, 3, 5), 255);
  assert.equal(darkness(r, 5, 5), 0);
});

test("blitGray upscales nearest-neighbour and can invert", () => {
  const r = createRaster(4, 4);
  blitGray(r, [0, 1, 0.5, 0.25], 2, 2, 0, 0, { scale: 2 });
  assert.deepEqual([getPixel(r, 0, 0)[0], getPixel(r, 1, 1)[0], getPixel(r, 2, 0)[0], getPixel(r, 3, 1)[0], getPixel(r, 0, 3)[0], getPixel(r, 3, 3)[0]], [0, 0, 255, 255, 128, 64]);
  blitGray(r, [0, 1, 0.5, 0.25], 2, 2, 0, 0, { scale: 2, invert: true });
  assert.deepEqual([getPixel(r, 0, 0)[0], getPixel(r, 2, 0)[0], getPixel(r, 3, 3)[0]], [255, 0, 191]);
  assert.throws(() => blitGray(r, [0, 1], 2, 2, 0, 0), /needs 4 values/);
});

test("rasterToPng encodes an RGB PNG of the same pixels", () => {
  const r = createRaster(3, 2, [1, 2, 3]);
  fillRect(r, 1, 1, 1, 1, [200, 100, 50]);
  const img = decode(rasterToPng(r));
  assert.equal(img.channels, 3);
  assert.deepEqual([...img.data], [...r.data]);
});
