// The shipped classifier and the quality report on real digits and on noise.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { loadDigitsSplit, readDigits } from "../../src/data/digits-node.ts";
import { FEATURE_DIM, NUM_CLASSES, decodeClassifier, encodeClassifier } from "../../src/eval/classifier.ts";
import { CLASSIFIER_WEIGHTS_PATH, loadShippedClassifier } from "../../src/eval/classifier-node.ts";
import { classifierHeldOutSet, classifierTrainingSet } from "../../src/eval/heldout.ts";
import { evaluateSamples, formatReport, noiseImages } from "../../src/eval/report.ts";

const allSplit = loadDigitsSplit("all");
const digitSplits = Array.from({ length: 10 }, (_, d) => loadDigitsSplit(d));
const ones = digitSplits[1]!;

async function accuracyOn(images: Float32Array, labels: Int32Array): Promise<number> {
  const c = loadShippedClassifier();
  try {
    const predicted = (await c.classify(images)).labels;
    let right = 0;
    for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
    return right / labels.length;
  } finally {
    c.dispose();
  }
}

describe("shipped digit classifier", () => {
  test("never trained on a test image of any split", () => {
    const all = readDigits();
    const { rows: trainRows } = classifierTrainingSet(all, allSplit, digitSplits);
    const train = new Set(trainRows);
    for (const s of [allSplit, ...digitSplits]) for (const r of s.testRows) assert.ok(!train.has(r), `test row ${r} in the classifier's training set`);
    assert.equal(trainRows.length, 1616);
  });

  test("accuracy on held-out images (measured 1.000 on the 90 test images, 0.9945 on all 181 held-out)", async () => {
    assert.ok((await accuracyOn(allSplit.test.images, allSplit.test.labels)) >= 0.97);
    const { data } = classifierHeldOutSet(readDigits(), [allSplit, ...digitSplits]);
    assert.equal(data.count, 181);
    assert.ok((await accuracyOn(data.images, data.labels)) >= 0.97);
  });

  test("weights file: small, tagged, round-trips; outputs are probabilities and 32-d features", async () => {
    assert.ok(statSync(CLASSIFIER_WEIGHTS_PATH).size < 200_000);
    const c = loadShippedClassifier();
    try {
      assert.equal(c.metadata.test_accuracy, "1.0000");
      const x = allSplit.test.images.subarray(0, 5 * 64);
      const { probs, labels } = await c.classify(x);
      assert.equal(probs.length, 5 * NUM_CLASSES);
      for (let i = 0; i < 5; i++) {
        const row = probs.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES);
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
        assert.equal(labels[i], row.indexOf(Math.max(...row)));
      }
      const f = await c.features(x);
      assert.deepEqual([f.n, f.dim, f.data.length], [5, FEATURE_DIM, 5 * FEATURE_DIM]);
      const again = decodeClassifier(await encodeClassifier(c.params, { ...c.metadata }));
      assert.deepEqual((await again.features(x)).data, f.data);
      // classifyWithFeatures is one forward pass giving both, equal to the separate calls.
      const both = await c.classifyWithFeatures(x);
      assert.deepEqual([both.probs, both.labels, both.features.data], [probs, labels, f.data]);
      again.dispose();
      await assert.rejects(() => c.classify(new Float32Array(65)), /not a whole number of images/);
    } finally {
      c.dispose();
    }
  });
});

describe("evaluateSamples", () => {
  test("real 1s score like real 1s; their copy check flags them as training images", async () => {
    const n = 40;
    const samples = ones.train.images.slice(-n * 64); // real training 1s (not the ones real-vs-real uses first)
    const r = await evaluateSamples(samples, n, { expectedClass: 1 });
    assert.equal(r.trainSplit, 1);
    assert.equal(r.classifierAccuracy, 1);
    assert.ok(r.meanExpectedClassProbability! > 0.95);
    assert.equal(r.classHistogram[1], n);
    assert.equal(r.counts.reference, 10); // the tutorial split's 10 held-out 1s
    assert.ok(r.referenceFid.realVsReal < r.referenceFid.noiseVsReal / 3, JSON.stringify(r.referenceFid));
    assert.ok(r.fid < r.referenceFid.noiseVsReal / 3, `fid ${r.fid}`);
    assert.ok(r.fid < 2 * r.referenceFid.realVsRealRange[1]);
    assert.ok(r.counts.realVsRealSets >= 2);
    // Training images are copies of training images: distance 0, all closer than the held-out median.
    assert.equal(r.copy.medianNearestTrainDistance, 0);
    assert.equal(r.copy.fractionCloserThanTestMedian, 1);
    assert.ok(r.copy.testMedianNearestTrainDistance > 0.5);
    assert.ok(r.notes.some((line) => /10 real images/.test(line)));
  });

  test("the held-out 1s themselves: FID 0, and half of them nearer the training set than their median", async () => {
    const r = await evaluateSamples(ones.test.images, ones.test.count, { expectedClass: 1 });
    assert.ok(r.fid < 1e-9);
    assert.equal(r.copy.fractionCloserThanTestMedian, 0.5);
    assert.equal(r.copy.medianNearestTrainDistance, r.copy.testMedianNearestTrainDistance);
  });

  test("uniform noise: low accuracy, FID = the noise reference, far above real-vs-real; deterministic", async () => {
    const n = 40;
    const noise = noiseImages(n);
    const r = await evaluateSamples(noise, n, { expectedClass: 1 });
    assert.ok(r.classifierAccuracy! < 0.2);
    assert.equal(r.referenceScores.noise.classifierAccuracy, r.classifierAccuracy);
    assert.equal(r.fid, r.referenceFid.noiseVsReal); // the same images
    assert.ok(r.fid > 3 * r.referenceFid.realVsReal);
    assert.equal(r.copy.fractionCloserThanTestMedian, 0);
    const again = await evaluateSamples(noise, n, { expectedClass: 1 });
    assert.deepEqual(again, r);
  });

  test("no class: a histogram, the all-digit split, and a hint when one digit dominates", async () => {
    const n = 30;
    const r = await evaluateSamples(ones.train.images.slice(0, n * 64), n);
    assert.equal(r.classifierAccuracy, null);
    assert.equal(r.expectedClasses, null);
    assert.equal(r.trainSplit, "all");
    assert.equal(r.classHistogram[1], n);
    assert.equal(r.counts.reference, allSplit.test.count);
    assert.ok(r.notes.some((line) => /look like 1s.*--class 1/.test(line)), r.notes.join("\n"));
    const text = formatReport(r).join("\n");
    assert.match(text, /classified as\s+0:0 {2}1:30/);
    assert.doesNotMatch(text, /classifier accuracy/);
  });

  test("per-sample labels on the all-digit split: mixed real digits score well", async () => {
    const n = 60;
    const samples = allSplit.train.images.slice(-n * 64);
    const labels = allSplit.train.labels.slice(-n);
    const r = await evaluateSamples(samples, n, { expectedClass: labels });
    assert.equal(r.trainSplit, "all");
    assert.ok(r.classifierAccuracy! >= 0.98);
    assert.ok(r.fid < r.referenceFid.noiseVsReal / 3);
    assert.ok(r.referenceFid.realVsReal < r.referenceFid.noiseVsReal / 3);
    const text = formatReport(r).join("\n");
    for (const pattern of [/classifier accuracy\s+1\.000\s+\(real held-out/, /FID\s+\d+\.\d\d\s+\(lower is better; 60 real training images: \d/, /uniform-noise images: \d/, /nearest training image: median distance 0\.00/]) {
      assert.match(text, pattern);
    }
  });

  test("reference 'train' compares with the training images", async () => {
    const r = await evaluateSamples(ones.test.images, ones.test.count, { expectedClass: 1, reference: "train" });
    assert.equal(r.counts.reference, ones.train.count);
    assert.ok(r.fid > 0 && r.fid === r.referenceFid.realVsReal); // the held-out images are the samples here
  });

  test("option errors", async () => {
    const x = ones.test.images;
    await assert.rejects(() => evaluateSamples(x, ones.test.count, { expectedClass: 3, trainSplit: 1 }), /trained on digit 1 only/);
    await assert.rejects(() => evaluateSamples(x, ones.test.count, { expectedClass: 12 }), /digit 0-9/);
    await assert.rejects(() => evaluateSamples(x, ones.test.count, { expectedClass: [1, 2] }), /2 labels for 10 samples/);
    await assert.rejects(() => evaluateSamples(x.subarray(0, 64), 1), /at least 2 samples/);
    await assert.rejects(() => evaluateSamples(x, 3), /not 3 images/);
    // A digit split without a class implies that class; per-sample labels default to the all-digit split.
    assert.equal((await evaluateSamples(x, ones.test.count, { trainSplit: 1 })).classifierAccuracy, 1);
    assert.equal((await evaluateSamples(x, ones.test.count, { expectedClass: new Int32Array(10).fill(1) })).trainSplit, "all");
  });
});
