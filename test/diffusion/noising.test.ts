// q(x_t | x_0) against the tutorial's fixture (gen_fixtures.py: noisy = sac[t] x + s1mac[t] noise with the
// tutorial's clipped-cosine schedule, t = [0, 10, 500, 999]).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { addNoise, predictX0 } from "../../src/diffusion/noising.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../../src/diffusion/schedules.ts";
import { caseArray, caseTensor, maxAbsDiff, relToMax } from "../nn/parity-helpers.ts";

const schedule = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
const t = caseArray(4, "t") as Int32Array;

test("addNoise reproduces the fixture's noisy images (float64 and float32)", (ctx) => {
  td.tidy(() => {
    const f64 = addNoise(caseTensor(4, "x", "float64"), caseTensor(4, "noise", "float64"), t, schedule);
    const e64 = relToMax(f64.data, caseArray(4, "f64.noisy"));
    // Same two products and a sum in float64; the schedule differs from JAX's only by round-off (~1e-16).
    assert.ok(e64 < 1e-14, `float64 rel_to_max ${e64}`);
    const f32 = addNoise(caseTensor(4, "x", "float32"), caseTensor(4, "noise", "float32"), t, schedule);
    assert.equal(f32.dtype, "float32");
    const e32 = relToMax(f32.data, caseArray(4, "f64.noisy"));
    const e32vsJax = relToMax(f32.data, caseArray(4, "noisy"));
    // Measured 6.4e-8 (x and noise in f32, coefficients from float64, rounded once). JAX f32 is 1.6e-6 from
    // float64 (fixtures README), because it computes the schedule in float32.
    assert.ok(e32 < 5e-7, `float32 vs f64 reference: ${e32}`);
    assert.ok(e32vsJax < 4e-6, `float32 vs JAX float32: ${e32vsJax}`);
    ctx.diagnostic(`rel_to_max: f64 ${e64.toExponential(2)}, f32 vs f64 ${e32.toExponential(2)}, f32 vs JAX f32 ${e32vsJax.toExponential(2)}`);
  });
});

test("a single timestep broadcasts over the batch; one image broadcasts over a t array (forward picture)", () => {
  td.tidy(() => {
    const x0 = caseTensor(4, "x", "float64");
    const noise = caseTensor(4, "noise", "float64");
    const same = addNoise(x0, noise, 500, schedule);
    const perSample = addNoise(x0, noise, [500, 500, 500, 500], schedule);
    assert.deepEqual(same.toArray(), perSample.toArray());

    const image = td.slice(x0, [0, 0, 0, 0], [1, 8, 8, 1]);
    const ts = [0, 250, 999];
    const picture = addNoise(image, td.slice(noise, [0, 0, 0, 0], [3, 8, 8, 1]), ts, schedule);
    assert.deepEqual(picture.shape, [3, 8, 8, 1]);
    for (let i = 0; i < ts.length; i++) {
      const row = addNoise(image, td.slice(noise, [i, 0, 0, 0], [1, 8, 8, 1]), ts[i]!, schedule);
      assert.deepEqual(Array.from(picture.data.subarray(i * 64, (i + 1) * 64)), row.toArray());
    }
  });
});

test("predictX0 inverts addNoise; timesteps outside 0..T-1 are rejected", () => {
  td.tidy(() => {
    const x0 = caseTensor(4, "x", "float64");
    const noise = caseTensor(4, "noise", "float64");
    for (const s of [0, 10, 500, 999]) {
      const back = predictX0(addNoise(x0, noise, s, schedule), noise, s, schedule);
      // Dividing by sqrt(abar_999) = 6.3e-3 amplifies the round-off of x_t by 160.
      assert.ok(maxAbsDiff(back.data, x0.data) < 1e-12, `t=${s}`);
    }
    assert.throws(() => addNoise(x0, noise, 1000, schedule), /outside 0\.\.999/);
    assert.throws(() => addNoise(x0, noise, [0, -1, 2, 3], schedule), /outside/);
  });
});
