import { test } from "node:test";
import assert from "node:assert/strict";
import {
  linspace,
  makeSchedule,
  posteriorVariance,
  TUTORIAL_SAMPLER_SCHEDULE,
  TUTORIAL_TRAIN_SCHEDULE,
  tutorialPosteriorVariance,
} from "../../src/diffusion/schedules.ts";
import { fixtureTensor } from "../helpers/fixtures.ts";

const FIXTURE = "case_f4.safetensors";

type ArrayKey = "betas" | "alphas" | "alphaCumulative" | "sqrtAlphaCumulative" | "sqrtOneMinusAlphaCumulative";
const FIXTURE_NAMES: Record<ArrayKey, string> = {
  betas: "beta",
  alphas: "alpha",
  alphaCumulative: "alpha_cumulative",
  sqrtAlphaCumulative: "sqrt_alpha_cumulative",
  sqrtOneMinusAlphaCumulative: "sqrt_one_minus_alpha_cumulative",
};

/** Spacing of float32 numbers at |x| (normal range). */
function ulp32(x: number): number {
  const exponent = Math.floor(Math.log2(Math.abs(Math.fround(x))));
  return 2 ** (Math.max(exponent, -126) - 23);
}

/** Largest |ours - ref| / scale(ref) over all elements, with its index. */
function worst(ours: Float64Array, ref: ArrayLike<number>, scale: (r: number) => number): { error: number; index: number } {
  assert.equal(ours.length, ref.length);
  let error = 0;
  let index = -1;
  for (let i = 0; i < ours.length; i++) {
    const e = Math.abs(ours[i] - ref[i]) / scale(ref[i]);
    if (!(e <= error)) [error, index] = [e, i]; // also catches NaN
  }
  return { error, index };
}

function expectClose(what: string, ours: Float64Array, ref: ArrayLike<number>, tolerance: number, scale: (r: number) => number) {
  const { error, index } = worst(ours, ref, scale);
  assert.ok(error <= tolerance, `${what}: error ${error.toExponential(2)} at [${index}] exceeds ${tolerance}`);
}

const relative = (r: number) => Math.abs(r);
const absolute = () => 1;

function fixture(prefix: string, key: ArrayKey, f64: boolean) {
  return fixtureTensor(FIXTURE, `${f64 ? "f64." : ""}${prefix}.${FIXTURE_NAMES[key]}`).data;
}

test("tutorial-cosine: 1001 entries, first beta duplicated, clipped to [1e-4, 0.02]", () => {
  const s = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  assert.equal(s.numSteps, 1000);
  for (const key of Object.keys(FIXTURE_NAMES) as ArrayKey[]) assert.equal(s[key].length, 1001);
  assert.equal(s.betas[0], s.betas[1]);
  const floored = s.betas.filter((b) => b === 1e-4).length;
  const capped = s.betas.filter((b) => b === 0.02).length;
  assert.equal(floored, 14); // 13 clipped + the duplicate
  assert.equal(capped, 98);
});

test("tutorial-cosine matches the float64 JAX schedule", () => {
  const s = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  // beta = 1 - a[t+1]/a[t] with a ~ 1: cancellation leaves an ABSOLUTE error of a few ulp(1) = 2.2e-16
  // (measured 2.6e-15, i.e. 2.8e-12 relative at beta ~ 1e-4); allow 1e-14 absolute.
  expectClose("f64 beta", s.betas, fixture("schedule", "betas", true), 1e-14, absolute);
  // No cancellation in these: relative 1e-12 (measured <= 4.3e-15).
  expectClose("f64 alpha", s.alphas, fixture("schedule", "alphas", true), 1e-12, relative);
  expectClose("f64 alpha_cumulative", s.alphaCumulative, fixture("schedule", "alphaCumulative", true), 1e-12, relative);
  expectClose("f64 sqrt_alpha_cumulative", s.sqrtAlphaCumulative, fixture("schedule", "sqrtAlphaCumulative", true), 1e-12, relative);
  // sqrt(1 - abar) inherits abar's absolute error, relative to 1 - abar >= 1e-4: 1e-12 (measured 6.4e-14).
  expectClose("f64 sqrt_one_minus", s.sqrtOneMinusAlphaCumulative, fixture("schedule", "sqrtOneMinusAlphaCumulative", true), 1e-12, relative);
});

test("tutorial-cosine vs the float32 JAX schedule (JAX's own f32 rounding dominates)", () => {
  const s = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  // JAX builds these in float32, so the reference itself is off by the amounts in fixtures/README.md's
  // f32-vs-f64 table (max_elem_rel). Tolerances are 2x those, not ulps of our values.
  expectClose("f32 beta", s.betas, fixture("schedule", "betas", false), 2e-3, relative); // table: 1.0e-3
  expectClose("f32 alpha", s.alphas, fixture("schedule", "alphas", false), 4e-6, relative); // table: 1.8e-6
  expectClose("f32 alpha_cumulative", s.alphaCumulative, fixture("schedule", "alphaCumulative", false), 5e-6, relative); // 2.3e-6
  expectClose("f32 sqrt_alpha_cumulative", s.sqrtAlphaCumulative, fixture("schedule", "sqrtAlphaCumulative", false), 3e-6, relative); // 1.2e-6
  expectClose("f32 sqrt_one_minus", s.sqrtOneMinusAlphaCumulative, fixture("schedule", "sqrtOneMinusAlphaCumulative", false), 3e-4, relative); // 1.3e-4
});

test("linear = the tutorial sampler's linspace(1e-4, 0.02, 1000)", () => {
  const s = makeSchedule(TUTORIAL_SAMPLER_SCHEDULE);
  assert.equal(s.betas.length, 1000);
  assert.equal(s.betas[0], 1e-4);
  assert.equal(s.betas[999], 0.02);
  const prefix = "sampler_schedule";
  // float64 reference: no cancellation anywhere; 1e-12 relative (measured <= 2.1e-15).
  for (const key of ["betas", "alphas", "alphaCumulative"] as const) {
    expectClose(`f64 ${key}`, s[key], fixture(prefix, key, true), 1e-12, relative);
  }
  // float32 reference (jnp.linspace/cumprod under jit in f32): beta and alpha within 1 float32 ulp of our
  // value; alpha_cumulative is a float32 running product over up to 1000 factors, so its rounding
  // accumulates: 8 ulps (measured 5).
  const ulps = (r: number) => ulp32(r);
  expectClose("f32 beta", Float64Array.from(s.betas, Math.fround), fixture(prefix, "betas", false), 1, ulps);
  expectClose("f32 alpha", Float64Array.from(s.alphas, Math.fround), fixture(prefix, "alphas", false), 1, ulps);
  expectClose("f32 alpha_cumulative", Float64Array.from(s.alphaCumulative, Math.fround), fixture(prefix, "alphaCumulative", false), 8, ulps);
});

test("cosine (Nichol & Dhariwal): T entries, abar_t = f(t+1)/f(0), betas capped at 0.999", () => {
  const T = 1000;
  const s = makeSchedule({ kind: "cosine", numSteps: T });
  assert.equal(s.betas.length, T);
  assert.equal(s.betas[T - 1], 0.999); // abar_T = 0, so the last beta hits the cap
  assert.ok(s.betas.every((b) => b > 0 && b <= 0.999));
  const f = (t: number) => Math.cos(((t / T + 0.008) / 1.008) * Math.PI * 0.5) ** 2;
  // Until the cap first bites, the product telescopes: abar[t] = f(t+1)/f(0). 1e-12 relative: a running
  // product of ~1000 factors, each rounded once.
  for (let t = 0; t < T - 1 && s.betas[t] < 0.999; t++) {
    const expected = f(t + 1) / f(0);
    assert.ok(Math.abs(s.alphaCumulative[t] - expected) <= 1e-12 * expected, `t=${t}`);
  }
  assert.ok(s.alphaCumulative[T - 1] < 1e-6);
  // The tutorial variant is this schedule clipped and shifted by one.
  const tutorial = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  for (let t = 0; t < T; t++) assert.equal(tutorial.betas[t + 1], Math.min(Math.max(s.betas[t], 1e-4), 0.02));
});

test("derived arrays are consistent; config validation", () => {
  for (const kind of ["tutorial-cosine", "cosine", "linear"] as const) {
    const s = makeSchedule({ kind, numSteps: 50 });
    assert.equal(s.name, kind);
    let product = 1;
    for (let t = 0; t < s.betas.length; t++) {
      product *= 1 - s.betas[t];
      assert.equal(s.alphas[t], 1 - s.betas[t]);
      assert.equal(s.alphaCumulative[t], product);
      assert.equal(s.sqrtAlphaCumulative[t], Math.sqrt(product));
      assert.equal(s.sqrtOneMinusAlphaCumulative[t], Math.sqrt(1 - product));
    }
  }
  const custom = makeSchedule({ kind: "linear", numSteps: 3, betaStart: 0.1, betaEnd: 0.3 });
  assert.deepEqual(Array.from(custom.betas), Array.from(linspace(0.1, 0.3, 3)));
  assert.throws(() => makeSchedule({ kind: "linear", numSteps: 0 }), /numSteps/);
  assert.throws(() => makeSchedule({ kind: "linear", numSteps: 10, betaStart: 0.5, betaEnd: 0.1 }), /betaStart/);
  assert.throws(() => makeSchedule({ kind: "quadratic" as never, numSteps: 10 }), /unknown/);
  // A config survives JSON.
  assert.deepEqual(makeSchedule(JSON.parse(JSON.stringify(TUTORIAL_TRAIN_SCHEDULE))).betas, makeSchedule(TUTORIAL_TRAIN_SCHEDULE).betas);
});

test("posteriorVariance: beta_t (1 - abar_{t-1}) / (1 - abar_t), 0 at t = 0, below beta_t", () => {
  const s = makeSchedule(TUTORIAL_SAMPLER_SCHEDULE);
  const v = posteriorVariance(s);
  assert.equal(v[0], 0);
  for (let t = 1; t < v.length; t++) {
    const expected = (s.betas[t] * (1 - s.alphaCumulative[t - 1])) / (1 - s.alphaCumulative[t]);
    assert.equal(v[t], expected);
    assert.ok(v[t] > 0 && v[t] <= s.betas[t]);
  }
  // Late in the chain abar ~ 0, so the posterior variance approaches beta (relative 1e-6 at t=999).
  assert.ok(Math.abs(v[999] - s.betas[999]) <= 1e-6 * s.betas[999]);
  // The tutorial's (unused) formula: beta (1 - abar) / (1 - abar + 1e-7).
  const quirky = tutorialPosteriorVariance(s);
  assert.equal(quirky[10], (s.betas[10] * (1 - s.alphaCumulative[10])) / (1 - s.alphaCumulative[10] + 1e-7));
});
