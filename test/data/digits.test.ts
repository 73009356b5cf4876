import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { DIGIT_PIXELS, labelCounts, parseDigitsCsv, selectDigitRows, splitDigits, subsetDigits } from "../../src/data/digits.ts";
import { DIGITS_CSV_PATH, loadDigitsSplit, readDigits, readTutorialSplit, TUTORIAL_SPLIT_PATH } from "../../src/data/digits-node.ts";
import { numpyLegacyPermutation, sklearnTrainTestSplit } from "../../src/data/sklearn-split.ts";
import { fixtureTensor, loadFixtureJson } from "../helpers/fixtures.ts";

const all = readDigits();

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

test("csv: 1797 images, values pixel/16 in [0,1], label counts as scikit-learn", () => {
  assert.equal(sha256(readFileSync(DIGITS_CSV_PATH)), JSON.parse(readFileSync(TUTORIAL_SPLIT_PATH, "utf8")).csv_sha256);
  assert.equal(all.count, 1797);
  assert.equal(all.images.length, 1797 * DIGIT_PIXELS);
  // np.bincount(digits.target)
  assert.deepEqual(labelCounts(all), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
  let min = Infinity;
  let max = -Infinity;
  for (const v of all.images) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    assert.ok(Number.isInteger(v * 16));
  }
  assert.equal(min, 0);
  assert.equal(max, 1);
  // First row of the file: 0,0,5,13,9,1,0,0,... label 0.
  assert.deepEqual(Array.from(all.images.subarray(0, 4)), [0, 0, 5 / 16, 13 / 16]);
  assert.equal(all.labels[0], 0);
});

test("parseDigitsCsv rejects malformed rows", () => {
  assert.throws(() => parseDigitsCsv("1,2,3\n"), /65/);
  assert.throws(() => parseDigitsCsv(`${"17,".repeat(64)}1\n`), /bad pixel/);
  assert.throws(() => parseDigitsCsv(`${"0,".repeat(64)}10\n`), /bad label/);
  assert.equal(parseDigitsCsv(`${"16,".repeat(64)}3\r\n\n`).images[63], 1); // CRLF and blank lines are fine
});

test("digit 1: 182 images, the tutorial's exact 172/10 split", () => {
  const ones = selectDigitRows(all, 1);
  assert.equal(ones.length, 182);
  const split = loadDigitsSplit(1);
  assert.equal(split.method, "tutorial-json");
  assert.equal(split.train.count, 172);
  assert.equal(split.test.count, 10);
  assert.ok(split.train.labels.every((l) => l === 1) && split.test.labels.every((l) => l === 1));
  const json = JSON.parse(readFileSync(TUTORIAL_SPLIT_PATH, "utf8"));
  // Hashes of the float32 arrays images_train / images_test, as written by the fixture generator.
  assert.equal(sha256(new Uint8Array(split.train.images.buffer)), json.train_float32_sha256);
  assert.equal(sha256(new Uint8Array(split.test.images.buffer)), json.test_float32_sha256);
  const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
  assert.equal(sum(split.train.images), json.train_pixel_sum_over_16);
  assert.equal(sum(split.test.images), json.test_pixel_sum_over_16);
});

test("fixture batch x = the first 4 training images, bit for bit", () => {
  const source = loadFixtureJson("case_f4.json").inputs.x_source;
  const split = loadDigitsSplit(1);
  assert.deepEqual(Array.from(split.trainRows.subarray(0, 4)), source.csv_row);
  const x = fixtureTensor("case_f4.safetensors", "x");
  assert.deepEqual(x.shape, [4, 8, 8, 1]);
  assert.ok(x.data instanceof Float32Array);
  assert.deepEqual(split.train.images.subarray(0, 4 * DIGIT_PIXELS), x.data); // exact float32 equality
  assert.deepEqual(subsetDigits(all, source.csv_row).images, x.data);
});

test("sklearn-compatible split reproduces the tutorial's split of the 1s", () => {
  const tutorial = readTutorialSplit();
  const split = sklearnTrainTestSplit(182, 0.05, 42);
  assert.deepEqual(Array.from(split.train), tutorial.trainIndices);
  assert.deepEqual(Array.from(split.test), tutorial.testIndices);
  // Without the JSON, digit 1 takes the seeded path and lands on the same images.
  const seeded = splitDigits(all, 1);
  assert.equal(seeded.method, "sklearn-seeded");
  assert.deepEqual(seeded.trainRows, loadDigitsSplit(1).trainRows);
});

test("numpyLegacyPermutation matches numpy.random.RandomState(seed).permutation(n)", () => {
  // Values printed by numpy 2.4.6.
  assert.deepEqual(Array.from(numpyLegacyPermutation(50, 7)), [
    13, 15, 22, 42, 30, 27, 1, 20, 10, 36, 32, 46, 34, 18, 17, 35, 29, 41, 9, 2, 33, 16, 21, 31, 38, 24, 5, 12, 45,
    6, 37, 40, 11, 0, 7, 48, 43, 26, 49, 8, 44, 14, 28, 39, 23, 19, 3, 25, 4, 47,
  ]);
  const p = numpyLegacyPermutation(1797, 42);
  assert.deepEqual(Array.from(p.subarray(0, 10)), [1245, 220, 1518, 438, 1270, 832, 692, 1309, 1101, 1742]);
  assert.deepEqual(Array.from(p.subarray(90, 95)), [1204, 570, 643, 316, 1010]);
  assert.deepEqual(Array.from(numpyLegacyPermutation(183, 42).subarray(0, 10)), [19, 42, 155, 111, 147, 15, 24, 68, 117, 98]);
});

test("other selections: seeded 95/5 split (test = ceil(5%))", () => {
  const everything = loadDigitsSplit("all");
  assert.equal(everything.method, "sklearn-seeded");
  assert.equal(everything.test.count, 90); // ceil(0.05 * 1797)
  assert.equal(everything.train.count, 1707);
  assert.deepEqual(Array.from(everything.testRows.subarray(0, 3)), [1245, 220, 1518]);
  const union = new Set([...everything.trainRows, ...everything.testRows]);
  assert.equal(union.size, 1797);
  const totals = labelCounts(everything.train).map((c, d) => c + labelCounts(everything.test)[d]);
  assert.deepEqual(totals, labelCounts(all));

  const threes = loadDigitsSplit(3);
  assert.equal(threes.test.count, 10); // ceil(0.05 * 183)
  assert.equal(threes.train.count, 173);
  const rows3 = selectDigitRows(all, 3);
  assert.deepEqual(Array.from(threes.testRows.subarray(0, 2)), [rows3[19], rows3[42]]);
  assert.ok(threes.train.labels.every((l) => l === 3));

  // A different seed for digit 1 bypasses the tutorial JSON.
  const reseeded = loadDigitsSplit(1, { seed: 0 });
  assert.equal(reseeded.method, "sklearn-seeded");
  assert.notDeepEqual(reseeded.trainRows, loadDigitsSplit(1).trainRows);
  assert.throws(() => selectDigitRows(all, 10), /0..9/);
});
