import { test } from "node:test";
import assert from "node:assert/strict";
import {
  makeWeightedSampler,
  progressiveTimestepWeights,
  sampleProgressiveTimesteps,
  sampleUniformTimesteps,
  trainingProgress,
} from "../../src/train/timestep-sampling.ts";
import type { UniformSource } from "../../src/train/timestep-sampling.ts";

/** Deterministic uniforms in [0, 1) from xorshift32 (two draws -> 53 bits). */
function xorshiftUniform(seed: number): UniformSource {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  return (n) => Float64Array.from({ length: n }, () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992);
}

const fixed = (values: number[]): UniformSource => (n) => {
  assert.equal(n, values.length);
  return Float64Array.from(values);
};

test("weights: normalized linspace(1, 0.1*(1-progress), T)", () => {
  const w0 = progressiveTimestepWeights(0, 1000);
  const sum = w0.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.ok(Math.abs(w0[0] / w0[999] - 10) < 1e-9); // 1.0 vs 0.1 at progress 0
  for (let t = 1; t < 1000; t++) assert.ok(w0[t] < w0[t - 1]);
  const wHalf = progressiveTimestepWeights(0.5, 1000);
  assert.ok(Math.abs(wHalf[0] / wHalf[999] - 20) < 1e-9); // last raw weight 0.05
  const w1 = progressiveTimestepWeights(1, 1000);
  assert.equal(w1[999], 0);
  assert.ok(w1[998] > 0);
  assert.deepEqual(Array.from(progressiveTimestepWeights(0.3, 1)), [1]);
  assert.throws(() => progressiveTimestepWeights(1.5, 10), /progress/);
  assert.equal(trainingProgress(2500, 5000), 0.5);
  assert.equal(trainingProgress(5000, 5000), 1); // the tutorial's final epoch
  assert.equal(trainingProgress(6000, 5000), 1);
});

test("inverse CDF: smallest t with cumulative[t] > u * total", () => {
  const sample = makeWeightedSampler([1, 1, 2]); // cumulative 1, 2, 4
  assert.deepEqual(Array.from(sample(5, fixed([0, 0.2499, 0.25, 0.4999, 0.5]))), [0, 0, 1, 1, 2]);
  const sparse = makeWeightedSampler([0, 0, 1, 0, 2, 0]);
  assert.deepEqual(Array.from(sample(1, fixed([1 - 2 ** -53]))), [2]);
  // u = 0 skips leading zero weights; u -> 1 never lands on trailing zero weights.
  assert.deepEqual(Array.from(sparse(3, fixed([0, 0.4, 1 - 2 ** -53]))), [2, 4, 4]);
  assert.throws(() => makeWeightedSampler([0, 0]), /sum to 0/);
  assert.throws(() => makeWeightedSampler([1, -1]), /weight 1/);
});

test("progressive sampling follows the weights (mean and chi-square, deterministic source)", () => {
  const T = 1000;
  const N = 200_000;
  for (const progress of [0, 0.5, 1]) {
    const p = progressiveTimestepWeights(progress, T);
    const draws = makeWeightedSampler(p)(N, xorshiftUniform(12345 + progress * 1000));
    let mean = 0;
    let meanSq = 0;
    for (let t = 0; t < T; t++) {
      mean += t * p[t];
      meanSq += t * t * p[t];
    }
    const sampleMean = draws.reduce((a, b) => a + b, 0) / N;
    const standardError = Math.sqrt((meanSq - mean * mean) / N);
    // 5 standard errors: a correct sampler fails this with probability ~6e-7 (and the source is fixed).
    assert.ok(Math.abs(sampleMean - mean) < 5 * standardError, `progress ${progress}: mean ${sampleMean} vs ${mean}`);

    // Chi-square over 20 bins of 50 timesteps (19 degrees of freedom): 99.99th percentile is ~48.
    const bins = 20;
    const observed = new Array<number>(bins).fill(0);
    for (const t of draws) observed[Math.floor(t / (T / bins))]++;
    let chi2 = 0;
    for (let b = 0; b < bins; b++) {
      let pb = 0;
      for (let t = (b * T) / bins; t < ((b + 1) * T) / bins; t++) pb += p[t];
      chi2 += (observed[b] - N * pb) ** 2 / (N * pb);
    }
    assert.ok(chi2 < 48, `progress ${progress}: chi2 ${chi2.toFixed(1)}`);
  }
});

test("progress 1: the last timestep (weight 0) is never drawn", () => {
  const draws = sampleProgressiveTimesteps(5000, 5000, 1000, 100_000, xorshiftUniform(7));
  assert.ok(draws.every((t) => t >= 0 && t <= 998));
  assert.ok(draws.some((t) => t >= 990)); // the tail below it is still drawn
  // Even the largest uniform below 1 stays below T-1.
  assert.deepEqual(Array.from(sampleProgressiveTimesteps(5000, 5000, 1000, 1, fixed([1 - 2 ** -53]))), [998]);
  // At progress 0 the extremes are both reachable.
  assert.deepEqual(Array.from(sampleProgressiveTimesteps(0, 5000, 1000, 2, fixed([0, 1 - 2 ** -53]))), [0, 999]);
});

test("uniform sampling: every t in 0..T-1 with equal probability", () => {
  const T = 10;
  const N = 100_000;
  const draws = sampleUniformTimesteps(T, N, xorshiftUniform(99));
  const counts = new Array<number>(T).fill(0);
  for (const t of draws) counts[t]++;
  // Chi-square with 9 degrees of freedom: 99.99th percentile is ~33.7.
  const chi2 = counts.reduce((s, c) => s + (c - N / T) ** 2 / (N / T), 0);
  assert.ok(chi2 < 33.7, `chi2 ${chi2}`);
  assert.deepEqual(Array.from(sampleUniformTimesteps(T, 3, fixed([0, 0.5, 1 - 2 ** -53]))), [0, 5, 9]);
});
