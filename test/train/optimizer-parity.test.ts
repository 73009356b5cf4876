// Parity of the optimizer with the tutorial's two JAX train steps (fixtures/gen_fixtures.py, stage (e)):
// from unet_f4.safetensors, step 1 = seed_jax.train_step on (x, t, noise), step 2 on (x, t2, noise2), the
// same 4 images both times, loss with the gradient penalty (0.02); each step clips the gradients to
// +-0.3 element-wise and then runs optax.chain(clip_by_global_norm(0.5), adamw(schedule, wd 2e-5)).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { unetForward, type UNetParams } from "../../src/nn/unet.ts";
import { diffusionLoss } from "../../src/train/loss.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../../src/diffusion/schedules.ts";
import { initOptimizerState, optimizerStep, TUTORIAL_OPTIMIZER, type OptimizerStepResult } from "../../src/train/optimizer.ts";
import { caseArray, caseTensor, loadParams, relToMax } from "../nn/parity-helpers.ts";
import { loadFixtureJson } from "../helpers/fixtures.ts";

const F = 4;
const schedule = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
const json = loadFixtureJson(`case_f${F}.json`);

interface Run {
  params0: UNetParams;
  steps: { loss: number; result: OptimizerStepResult<UNetParams> }[];
}

/**
 * The two train steps. `lrs`: learning rates to inject (the float64 run uses the fixture's float32 LRs,
 * see below); without it the schedule (lrAt) is used, as the trainer does.
 */
function twoSteps(dtype: td.DType, lrs?: ArrayLike<number>): Run {
  const params0 = loadParams(F, dtype);
  const images = caseTensor(F, "x", dtype);
  const batches = [
    { t: caseArray(F, "t") as Int32Array, noise: caseTensor(F, "noise", dtype) },
    { t: caseArray(F, "t2") as Int32Array, noise: caseTensor(F, "noise2", dtype) },
  ];
  let params = params0;
  let state = initOptimizerState(params0);
  const steps: Run["steps"] = [];
  batches.forEach(({ t, noise }, k) => {
    const { value, grads } = td.valueAndGrad((p: UNetParams) =>
      diffusionLoss((pp: UNetParams, x, tt) => unetForward(pp, x, tt), p, {
        images, t, noise,
        sqrtAlphaCumulative: schedule.sqrtAlphaCumulative,
        sqrtOneMinusAlphaCumulative: schedule.sqrtOneMinusAlphaCumulative,
      }, { penaltyWeight: 0.02 }).total,
    )(params);
    const result = optimizerStep(params, grads, state, TUTORIAL_OPTIMIZER, lrs ? { lr: lrs[k]!, countClipped: true } : { countClipped: true });
    steps.push({ loss: value.item(), result });
    params = result.params;
    state = result.state;
  });
  return { params0, steps };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** Spacing of float32 numbers at |x| (one ulp). */
function ulp32(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

describe(`optimizer vs the tutorial's two JAX train steps (features=${F})`, () => {
  test("float64: losses, norms, LRs and delta2 = params after 2 updates - initial", () => {
    td.tidy(() => {
      // optax evaluates the LR schedule in float32 even under x64 (int32 step count; inside jit XLA turns
      // the warm-up into an FMA), so the reference's update 1 used lr = 9.99987e-8, not 1e-7. lrAt computes
      // the float64 value 1e-7, which would make delta2 larger by 1.3e-5 relative, far above the float64
      // agreement this test checks; so the fixture's LRs are injected, and lrAt is tested in the f32 run.
      const lrs = caseArray(F, "f64.train.lr");
      assert.deepEqual(Array.from(lrs), [0, json.optimizer.lr_used.update1]);
      const { params0, steps } = twoSteps("float64", lrs);
      const losses = caseArray(F, "f64.train.loss");
      const norms = caseArray(F, "f64.train.gnorm_clipped");
      const clipped = json.optimizer["n_elements_clipped_at_0.3"].f64 as number[];
      steps.forEach(({ loss, result }, k) => {
        assert.equal(result.lr, lrs[k]);
        // Same math in the same precision (measured <= 2e-16).
        assert.ok(rel(loss, losses[k]!) < 1e-12, `loss ${k}: ${loss} vs ${losses[k]}`);
        // Measured <= 3.1e-16 (the per-leaf sums added as float64 tensors; 1.4e-15 when they were added in JS).
        assert.ok(rel(result.gradNorm.item(), norms[k]!) < 1e-12, `gradNorm ${k}: ${result.gradNorm.item()} vs ${norms[k]}`);
        assert.equal(result.elementsClipped!.item(), clipped[k]);
        assert.ok(result.clipScale.item() < 1); // both norms (2.07, 2.92) are above 0.5
        assert.equal(result.state.step, k + 1);
      });
      // Update 0 has lr 0: the params after step 1 are bit-identical to the initial ones (as in JAX).
      const p0 = td.flattenTree(params0);
      for (const [name, t] of td.flattenTree(steps[0]!.result.params)) assert.deepEqual(t.data, p0.get(name)!.data, name);

      let worst = 0;
      let worstName = "";
      for (const [name, t] of td.flattenTree(steps[1]!.result.params)) {
        const before = p0.get(name)!.data;
        const delta = Float64Array.from(t.data, (v, i) => v - before[i]!);
        const ref = caseArray(F, `f64.delta2.${name}`); // float64 results stored rounded to float32
        if (name === "attention1.key_proj.bias") {
          // Its gradient is round-off (~1e-18), so its Adam direction is noise; the step is weight decay
          // (2e-12 * p, p = 0 here) plus lr * noise/(|noise| + 1e-8) ~ 1e-17.
          // Measured: 1.5e-17 apart.
          assert.ok(delta.every((d, i) => Math.abs(d - ref[i]!) < 1e-15), name);
          continue;
        }
        // The references carry float32 storage rounding (<= 6e-8 relative); the f64 arithmetic differs only
        // by summation order (~1e-13). Tolerance 2e-7 of the tensor's max |delta| (measured <= 4.4e-8).
        const err = relToMax(delta, ref);
        if (err > worst) [worst, worstName] = [err, name];
        assert.ok(err < 2e-7, `${name}: delta2 rel_to_max ${err}`);
      }
      console.log(`# f64 delta2: worst rel_to_max ${worst.toExponential(2)} (${worstName})`);
    });
  });

  test("float32: losses, norms, LRs (from the schedule) and after2", () => {
    td.tidy(() => {
      const { params0, steps } = twoSteps("float32");
      const losses = caseArray(F, "train.loss");
      const losses64 = caseArray(F, "f64.train.loss");
      const norms = caseArray(F, "train.gnorm_clipped");
      const norms64 = caseArray(F, "f64.train.gnorm_clipped");
      const lrs = caseArray(F, "train.lr");
      const clipped = json.optimizer["n_elements_clipped_at_0.3"].f32 as number[];
      steps.forEach(({ loss, result }, k) => {
        // lrAt in float64 vs optax's float32 (FMA) evaluation: lr(0) = 0 exactly; lr(1) = 1e-7 vs 9.99987e-8,
        // 1.29e-5 relative (see src/train/lr-schedule.ts). Tolerance 2e-5.
        if (k === 0) assert.equal(result.lr, 0);
        assert.ok(Math.abs(result.lr - lrs[k]!) <= 2e-5 * Math.abs(lrs[k]!), `lr ${k}: ${result.lr} vs ${lrs[k]}`);
        // Losses: ours is 3e-8 / 1.2e-7 from float64 and 1.0e-6 / 2.2e-6 from JAX's float32 (which is itself
        // 1.8e-6 from float64). Tolerance 1e-5.
        assert.ok(rel(loss, losses64[k]!) < 1e-5, `loss ${k}: ${loss} vs f64 ${losses64[k]}`);
        assert.ok(rel(loss, losses[k]!) < 1e-5, `loss ${k}: ${loss} vs f32 ${losses[k]}`);
        // Norms: ours is 1.4e-7 / 1.0e-7 from float64 (steps 1, 2; the per-leaf sums are added as float32
        // tensors, as optax does; it was 1.4e-7 / 2.7e-7 with a float64 running sum in JS); JAX's own float32
        // norm is 3e-7 / 8.2e-5 from float64 (its float32 step-2 gradient carries more round-off). Tolerances
        // unchanged: 1e-5 and 2e-4.
        assert.ok(rel(result.gradNorm.item(), norms64[k]!) < 1e-5, `gradNorm ${k}: ${result.gradNorm.item()} vs f64 ${norms64[k]}`);
        assert.ok(rel(result.gradNorm.item(), norms[k]!) < 2e-4, `gradNorm ${k}: ${result.gradNorm.item()} vs f32 ${norms[k]}`);
        assert.equal(result.elementsClipped!.item(), clipped[k]);
        assert.equal(result.gradNorm.item(), Math.fround(result.gradNorm.item())); // reported as the float32 value used
      });
      const p0 = td.flattenTree(params0);
      for (const [name, t] of td.flattenTree(steps[0]!.result.params)) assert.deepEqual(t.data, p0.get(name)!.data, name);

      // after2: the float32 step (~1e-7) is quantized to the float32 grid of p (README (e)), so compare
      // element-wise with 1 ulp of the reference value (the same step, computed from slightly different
      // float32 gradients, can round to the neighbouring float) plus 2e-10 absolute, 0.2% of the 1e-7 step,
      // for elements near 0 (biases start at 0), where the ulp is tiny and the whole value is the step.
      // Measured: largest difference 1 ulp (5.96e-8); largest excess over 1 ulp 5.7e-11; 99.2% of the
      // elements are bit-identical to JAX's.
      let worstAbs = 0;
      let worstExcess = -Infinity;
      let identical = 0;
      let total = 0;
      for (const [name, t] of td.flattenTree(steps[1]!.result.params)) {
        const ref = caseArray(F, `after2.${name}`);
        for (let i = 0; i < ref.length; i++) {
          const diff = Math.abs(t.data[i]! - ref[i]!);
          total++;
          if (diff === 0) identical++;
          if (name === "attention1.key_proj.bias") {
            // Its gradient is round-off in float32 too (~1e-9), so Adam's direction there is noise: only
            // bound the difference by one step, lr = 1e-7 (measured: both values <= 7.4e-9).
            assert.ok(diff <= 1e-7, `${name}[${i}]: ${t.data[i]} vs ${ref[i]}`);
            continue;
          }
          worstAbs = Math.max(worstAbs, diff);
          worstExcess = Math.max(worstExcess, diff - ulp32(ref[i]!));
          assert.ok(diff <= ulp32(ref[i]!) + 2e-10, `${name}[${i}]: ${t.data[i]} vs ${ref[i]}`);
        }
      }
      // Same operations in the same order as optax: nearly every element rounds exactly like JAX's.
      assert.ok(identical >= 0.95 * total, `only ${identical} of ${total} elements bit-identical`);
      console.log(`# f32 after2: max abs diff ${worstAbs.toExponential(2)}, excess over 1 ulp ${worstExcess.toExponential(2)}, ${identical}/${total} bit-identical`);
    });
  });
});
