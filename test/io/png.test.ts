import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { encodeGrayPng, encodeRgbPng, unitToByte } from "../../src/io/png.ts";

test("unitToByte clips, rounds and maps NaN to 0", () => {
  assert.deepEqual([-1, 0, 0.5, 1 / 255, 0.999, 1, 7, NaN, Infinity, -Infinity].map(unitToByte), [0, 0, 128, 1, 255, 255, 255, 0, 255, 0]);
});

test("gray PNG decodes back to the clipped 8-bit values", () => {
  const px = new Float64Array([0, 0.25, 0.5, 1, -3, 2, NaN, 0.1]);
  const png = encodeGrayPng(px, 4, 2);
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  const img = decode(png);
  assert.equal(img.width, 4);
  assert.equal(img.height, 2);
  assert.equal(img.channels, 1);
  assert.equal(img.depth, 8);
  assert.deepEqual([...img.data], [0, 64, 128, 255, 0, 255, 0, 26]);
});

test("RGB PNG round trip keeps every byte", () => {
  const rgb = new Uint8Array(5 * 3 * 3).map((_, i) => (i * 37) & 255);
  const img = decode(encodeRgbPng(rgb, 5, 3));
  assert.equal(img.channels, 3);
  assert.deepEqual([...img.data], [...rgb]);
});

test("size mismatches are refused", () => {
  assert.throws(() => encodeGrayPng(new Float32Array(5), 2, 2), /png: 2x2 image needs 4 values, got 5/);
  assert.throws(() => encodeRgbPng(new Uint8Array(11), 2, 2), /needs 12 bytes/);
  assert.throws(() => encodeGrayPng(new Float32Array(0), 0, 0), /positive integers/);
});
