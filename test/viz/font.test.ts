import { test } from "node:test";
import assert from "node:assert/strict";
import { drawText, drawTextUp, glyph, glyphChars, hasGlyph, textWidth } from "../../src/viz/font.ts";
import { createRaster, getPixel, type Raster } from "../../src/viz/raster.ts";

/** The raster as rows of '#' (non-white) and '.', for exact pixel comparisons. */
function ascii(r: Raster): string[] {
  const rows: string[] = [];
  for (let y = 0; y < r.height; y++) {
    let s = "";
    for (let x = 0; x < r.width; x++) s += getPixel(r, x, y)[0] < 128 ? "#" : ".";
    rows.push(s);
  }
  return rows;
}

test("covers digits, letters and the required punctuation", () => {
  const required = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=.-+:,()/%e ";
  for (const ch of required) assert.ok(hasGlyph(ch), `missing glyph ${JSON.stringify(ch)}`);
});

test("every glyph fits 5 columns and 9 rows, and no two glyphs look the same", () => {
  const seen = new Map<string, string>();
  for (const ch of glyphChars()) {
    const rows = glyph(ch);
    assert.ok(rows.length >= 7 && rows.length <= 9, ch);
    for (const r of rows) assert.ok(Number.isInteger(r) && r >= 0 && r < 32, `${ch}: row ${r}`);
    const key = rows.join(",").replace(/(,0)+$/, "");
    assert.ok(!seen.has(key), `${JSON.stringify(ch)} looks like ${JSON.stringify(seen.get(key))}`);
    seen.set(key, ch);
  }
});

test("draws '1=' pixel for pixel", () => {
  const r = createRaster(11, 7);
  drawText(r, 0, 0, "1=", [0, 0, 0]);
  assert.deepEqual(ascii(r), [
    "..#........",
    ".##........",
    "..#...#####",
    "..#........",
    "..#...#####",
    "..#........",
    ".###.......",
  ]);
});

test("scale 2 doubles every pixel; text is clipped at the canvas edge without errors", () => {
  const r = createRaster(12, 14);
  drawText(r, 0, 0, "-", [0, 0, 0], 2);
  const rows = ascii(r);
  assert.equal(rows[6], "##########..");
  assert.equal(rows[7], "##########..");
  assert.equal(rows.filter((s) => s.includes("#")).length, 2);
  drawText(r, -3, -3, "Hello, world (100%)", [0, 0, 0], 3);
  drawText(r, 50, 50, "x", [0, 0, 0]);
});

test("unknown characters are drawn as a visible box", () => {
  const r = createRaster(5, 7);
  drawText(r, 0, 0, "\u263a", [0, 0, 0]);
  assert.deepEqual(ascii(r), ["#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"]);
});

test("textWidth counts 6 px per character minus the trailing gap", () => {
  assert.equal(textWidth(""), 0);
  assert.equal(textWidth("t=999"), 29);
  assert.equal(textWidth("t=999", 2), 58);
});

test("drawTextUp rotates counter-clockwise: reading bottom to top", () => {
  const r = createRaster(7, 5);
  drawTextUp(r, 0, 0, "L", [0, 0, 0]);
  // 'L' is a vertical stem at the left with a foot at the bottom; rotated CCW the stem is
  // the bottom row and the foot is the right column.
  assert.deepEqual(ascii(r), ["......#", "......#", "......#", "......#", "#######"]);
});
