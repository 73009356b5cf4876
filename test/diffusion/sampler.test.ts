// Samplers: the tutorial's DDPM step against the JAX fixture (fixtures/gen_fixtures.py, section (f): the
// body of reverse_diffusion_batch.scan_step at steps 999 and 0, with the sampler's linear schedule),
// DDIM's variance and determinism, end-to-end runs with analytically known optimal noise predictors,
// and the driver (memory, callbacks, snapshots, classifier-free guidance).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { unetForward } from "../../src/nn/unet.ts";
import {
  makeSchedule, posteriorVariance, TUTORIAL_SAMPLER_SCHEDULE, TUTORIAL_TRAIN_SCHEDULE, type NoiseSchedule, type ScheduleKind,
} from "../../src/diffusion/schedules.ts";
import {
  DDIM_SAMPLER, DDPM_SAMPLER, previousTimestep, resolveSampler, sampleStep, samplerTimesteps, stepVariance, tutorialSamplerSetup,
  type SamplerConfig,
} from "../../src/diffusion/samplers.ts";
import { initialNoise, predictNoise, sample, sampleWithSnapshots, type NoiseModel, type StepInfo } from "../../src/diffusion/sample.ts";
import { caseArray, caseTensor, loadParams, maxAbsDiff, relToMax } from "../nn/parity-helpers.ts";

const linear = makeSchedule(TUTORIAL_SAMPLER_SCHEDULE);
const KINDS: ScheduleKind[] = ["tutorial-cosine", "cosine", "linear"];
const schedules = Object.fromEntries(KINDS.map((kind) => [kind, makeSchedule({ kind, numSteps: 1000 })])) as Record<ScheduleKind, NoiseSchedule>;

const e = (v: number): string => v.toExponential(2);

describe("DDPM step vs the tutorial's JAX sampler (fixture, features 4)", () => {
  const steps = [
    { t: 999, tPrev: 998, name: "t999" },
    { t: 0, tPrev: -1, name: "t0" },
  ];

  test("the tutorial's setup is DDPM with the linear sampler schedule (not the training schedule)", () => {
    const setup = tutorialSamplerSetup();
    assert.deepEqual(resolveSampler(setup.sampler, setup.schedule), { kind: "ddpm", steps: 1000, eta: 0, spacing: "trailing", variance: "beta" });
    assert.equal(setup.schedule.name, "linear");
    assert.deepEqual(Array.from(samplerTimesteps(setup.sampler, setup.schedule).slice(0, 3)), [999, 998, 997]);
    // The fixture's schedule is that one (JAX float64 linspace/cumprod; measured 0 and 2.2e-16).
    assert.ok(maxAbsDiff(setup.schedule.betas, caseArray(4, "f64.sampler_schedule.beta")) < 1e-17);
    assert.ok(relToMax(setup.schedule.alphaCumulative, caseArray(4, "f64.sampler_schedule.alpha_cumulative")) < 1e-14);
  });

  test("float64: sampleStep on the fixture's predicted noise gives x_prev", (ctx) => {
    td.tidy(() => {
      // The generator's float64 run used the float32 inputs cast to float64, as here.
      const xt = caseTensor(4, "sampler.x_t", "float64");
      const noise = caseTensor(4, "sampler.noise", "float64");
      for (const { t, tPrev, name } of steps) {
        const out = sampleStep(DDPM_SAMPLER, linear, xt, t, tPrev, caseTensor(4, `f64.sampler.${name}.pred`), noise);
        const err = relToMax(out.data, caseArray(4, `f64.sampler.${name}.x_prev`));
        // Same formula and order of operations in float64; measured 2.6e-16 (t=999) and 2.2e-18 (t=0).
        assert.ok(err < 1e-14, `${name}: rel_to_max ${err}`);
        ctx.diagnostic(`f64 ${name}: rel_to_max ${e(err)}`);
      }
    });
  });

  test("float32: sampleStep on the fixture's float32 predicted noise", (ctx) => {
    td.tidy(() => {
      const xt = caseTensor(4, "sampler.x_t", "float32");
      const noise = caseTensor(4, "sampler.noise", "float32");
      for (const { t, tPrev, name } of steps) {
        const out = sampleStep(DDPM_SAMPLER, linear, xt, t, tPrev, caseTensor(4, `sampler.${name}.pred`, "float32"), noise);
        assert.equal(out.dtype, "float32");
        const vsF64 = relToMax(out.data, caseArray(4, `f64.sampler.${name}.x_prev`));
        const vsJax = relToMax(out.data, caseArray(4, `sampler.${name}.x_prev`));
        // The float32 pred itself is 4.7e-6 (t=999) / 3.9e-7 (t=0) from float64 (README); x_prev is less
        // sensitive (JAX f32: 8.8e-8 / 2.5e-7). Ours rounds the float64 coefficients once. Measured: see diagnostics.
        assert.ok(vsF64 < 1e-6, `${name}: vs f64 ${vsF64}`);
        assert.ok(vsJax < 1e-6, `${name}: vs JAX f32 ${vsJax}`);
        ctx.diagnostic(`f32 ${name}: vs f64 ${e(vsF64)}, vs JAX f32 ${e(vsJax)}`);
      }
    });
  });

  test("the real U-Net (unet_f4) reproduces pred and x_prev, float64 and float32", (ctx) => {
    td.tidy(() => {
      for (const dtype of ["float64", "float32"] as const) {
        const params = loadParams(4, dtype);
        const model: NoiseModel = (x, t) => unetForward(params, x, t);
        const xt = caseTensor(4, "sampler.x_t", dtype);
        const noise = caseTensor(4, "sampler.noise", dtype);
        for (const { t, tPrev, name } of steps) {
          const pred = td.noGrad(() => predictNoise(model, xt, t));
          const out = sampleStep(DDPM_SAMPLER, linear, xt, t, tPrev, pred, noise);
          const predErr = relToMax(pred.data, caseArray(4, `f64.sampler.${name}.pred`));
          const outErr = relToMax(out.data, caseArray(4, `f64.sampler.${name}.x_prev`));
          if (dtype === "float64") {
            // Same math in float64, only summation order differs (the U-Net parity test bounds it by 1e-12).
            assert.ok(predErr < 1e-12 && outErr < 1e-12, `${dtype} ${name}: pred ${predErr}, x_prev ${outErr}`);
          } else {
            // U-Net parity bound for float32 output is 1e-4 (JAX's own f32 pred: 4.7e-6 at t=999); x_prev
            // damps pred's error by (1-alpha)/sqrt(1-abar)/|x| scale, so 1e-5 leaves room (JAX: 8.8e-8, 2.5e-7).
            assert.ok(predErr < 1e-4, `${dtype} ${name}: pred ${predErr}`);
            assert.ok(outErr < 1e-5, `${dtype} ${name}: x_prev ${outErr}`);
          }
          ctx.diagnostic(`U-Net ${dtype} ${name}: pred ${e(predErr)}, x_prev ${e(outErr)} (rel_to_max vs f64 reference)`);
        }
      }
    });
  });

  test("timesteps as an int32 tensor (a replayed step's input) give the U-Net's output bit for bit", () => {
    td.tidy(() => {
      for (const dtype of ["float64", "float32"] as const) {
        const params = loadParams(4, dtype);
        const xt = caseTensor(4, "sampler.x_t", dtype);
        const b = xt.shape[0]!;
        for (const t of [0, 1, 500, 999]) {
          const fromNumbers = unetForward(params, xt, new Int32Array(b).fill(t));
          const fromTensor = unetForward(params, xt, td.tensor(new Int32Array(b).fill(t), [b], "int32"));
          // Same float products (t is exact in float32) and Math.sin/cos of the same angles on this backend.
          assert.deepEqual(fromTensor.data, fromNumbers.data, `${dtype} t=${t}`);
        }
      }
    });
  });

  test("the model's own (cosine) schedule gives a different step: the mismatch is real and opt-in", () => {
    td.tidy(() => {
      const xt = caseTensor(4, "sampler.x_t", "float64");
      const eps = caseTensor(4, "f64.sampler.t999.pred");
      const noise = caseTensor(4, "sampler.noise", "float64");
      // At t = 999 both schedules have beta = 0.02 and a tiny abar, so the steps nearly agree (9e-6); mid-way
      // they do not (abar_500: 0.078 linear vs 0.49 cosine).
      const own = sampleStep(DDPM_SAMPLER, makeSchedule(TUTORIAL_TRAIN_SCHEDULE), xt, 500, 499, eps, noise);
      const tutorial = sampleStep(DDPM_SAMPLER, linear, xt, 500, 499, eps, noise);
      assert.ok(relToMax(own.data, tutorial.data) > 1e-2);
    });
  });
});

describe("timesteps", () => {
  test("trailing / leading / linspace spacing (numpy rounding), and steps = T visits every t", () => {
    const T = linear.numSteps;
    const at = (config: SamplerConfig) => Array.from(samplerTimesteps(config, linear));
    const trailing50 = at({ kind: "ddim", steps: 50 });
    assert.equal(trailing50.length, 50);
    assert.deepEqual([trailing50[0], trailing50[1], trailing50[48], trailing50[49]], [999, 979, 39, 19]);
    assert.deepEqual(at({ kind: "ddim", steps: 50, spacing: "leading" }).slice(0, 2), [980, 960]);
    assert.equal(at({ kind: "ddim", steps: 50, spacing: "leading" })[49], 0);
    const lin = at({ kind: "ddim", steps: 50, spacing: "linspace" });
    assert.deepEqual([lin[0], lin[1], lin[49]], [999, 979, 0]);
    // diffusers' trailing: round(arange(1000, 0, -62.5)) - 1, with numpy's half-to-even rounding.
    assert.deepEqual(at({ kind: "ddim", steps: 16 }), [999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]);
    for (const spacing of ["trailing", "leading", "linspace"] as const) {
      assert.deepEqual(at({ kind: "ddim", steps: T, spacing }), Array.from({ length: T }, (_, i) => T - 1 - i));
    }
    assert.deepEqual(at(DDIM_SAMPLER), trailing50);
    assert.equal(at({ kind: "ddim" }).length, 50);
    assert.equal(at({ kind: "ddpm" }).length, 1000);
    assert.equal(previousTimestep(trailing50, 49), -1);
    assert.equal(previousTimestep(trailing50, 0), 979);
  });

  test("invalid configs are rejected", () => {
    assert.throws(() => resolveSampler({ kind: "ddim", steps: 1001 }, linear), /1\.\.1000/);
    assert.throws(() => resolveSampler({ kind: "ddim", steps: 0 }, linear), /1\.\.1000/);
    assert.throws(() => resolveSampler({ kind: "ddpm", eta: 1 }, linear), /eta applies/);
    assert.throws(() => resolveSampler({ kind: "ddim", eta: -1 }, linear), /eta/);
    assert.throws(() => resolveSampler({ kind: "ddim", variance: "beta" }, linear), /variance applies/);
    assert.throws(() => resolveSampler({ kind: "euler" } as unknown as SamplerConfig, linear), /unknown sampler/);
    td.tidy(() => {
      const x = td.zeros([1, 2, 2, 1], "float64");
      assert.throws(() => sampleStep(DDPM_SAMPLER, linear, x, 500, 499, x), /no noise was given/);
      assert.throws(() => sampleStep(DDPM_SAMPLER, linear, x, 1000, 999, x, x), /outside/);
      assert.throws(() => sampleStep(DDPM_SAMPLER, linear, x, 5, 5, x, x), /previous timestep/);
      // The last step needs no noise.
      assert.doesNotThrow(() => sampleStep(DDPM_SAMPLER, linear, x, 0, -1, x));
    });
  });
});

describe("DDIM", () => {
  test("eta = 1, steps = T: the variance is DDPM's posterior variance, and the step is DDPM's with that variance", () => {
    td.tidy(() => {
      const shape = [2, 4, 4, 1];
      const xt = td.random.normal(td.random.key(1), shape, "float64");
      const eps = td.random.normal(td.random.key(2), shape, "float64");
      const z = td.random.normal(td.random.key(3), shape, "float64");
      const ddim: SamplerConfig = { kind: "ddim", steps: 1000, eta: 1 };
      const ddpmPosterior: SamplerConfig = { kind: "ddpm", variance: "posterior" };
      for (const kind of KINDS) {
        const schedule = schedules[kind];
        const reference = posteriorVariance(schedule);
        let worstVariance = 0;
        for (let t = 0; t < schedule.numSteps; t++) {
          const v = stepVariance(ddim, schedule, t, t - 1);
          worstVariance = Math.max(worstVariance, Math.abs(v - reference[t]!) / Math.max(reference[t]!, 1e-300));
          assert.equal(stepVariance({ kind: "ddim", steps: 1000, eta: 0 }, schedule, t, t - 1), 0);
        }
        // Same formula up to beta_t vs 1 - alpha_t (one rounding of 1 - beta, up to 1e-12 relative at beta = 1e-4);
        // measured <= 3.9e-13 (linear).
        assert.ok(worstVariance < 1e-11, `${kind}: worst relative variance error ${worstVariance}`);
        assert.equal(stepVariance(ddim, schedule, 0, -1), 0);
        for (const t of [999, 500, 20, 1, 0]) {
          const a = sampleStep(ddim, schedule, xt, t, t - 1, eps, z);
          const b = sampleStep(ddpmPosterior, schedule, xt, t, t - 1, eps, z);
          // Two algebraically equal forms of the posterior mean; measured <= 2.8e-14 (cosine, |x| ~ 1e2 at t=999).
          assert.ok(maxAbsDiff(a.data, b.data) < 1e-12, `${kind} t=${t}: ${maxAbsDiff(a.data, b.data)}`);
        }
      }
    });
  });

  test("eta = 0 is deterministic: the noise is ignored and the key does not matter", () => {
    td.tidy(() => {
      const shape = [2, 4, 4, 1];
      const xt = td.random.normal(td.random.key(1), shape, "float64");
      const eps = td.random.normal(td.random.key(2), shape, "float64");
      const z = td.random.normal(td.random.key(3), shape, "float64");
      const a = sampleStep(DDIM_SAMPLER, linear, xt, 999, 979, eps, z);
      const b = sampleStep(DDIM_SAMPLER, linear, xt, 999, 979, eps, null);
      assert.deepEqual(a.toArray(), b.toArray());
      const model: NoiseModel = (x) => td.mul(td.tanh(x), 0.5);
      const x = td.random.normal(td.random.key(9), [2, 8, 8, 1]);
      const one = sample({ model, schedule: linear, sampler: DDIM_SAMPLER, key: td.random.key(1), x });
      const two = sample({ model, schedule: linear, sampler: DDIM_SAMPLER, key: td.random.key(2), x });
      assert.deepEqual(one.toArray(), two.toArray());
      // ... while DDPM and eta > 0 do depend on the key.
      const three = sample({ model, schedule: linear, sampler: { kind: "ddim", steps: 50, eta: 0.5 }, key: td.random.key(1), x });
      const four = sample({ model, schedule: linear, sampler: { kind: "ddim", steps: 50, eta: 0.5 }, key: td.random.key(2), x });
      assert.notDeepEqual(three.toArray(), four.toArray());
    });
  });
});

// ---- analytically known optimal noise predictors ------------------------------------------------

/** Data = the single point x0: eps*(x_t, t) = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t). */
function pointModel(schedule: NoiseSchedule, x0: td.Tensor): NoiseModel {
  return (x, t) => {
    const s = t[0]!;
    return td.div(td.sub(x, td.mul(schedule.sqrtAlphaCumulative[s]!, x0)), schedule.sqrtOneMinusAlphaCumulative[s]!);
  };
}

/** Data ~ N(mu, std^2) per element: eps*(x_t, t) = sqrt(1 - abar)(x_t - sqrt(abar) mu) / (abar std^2 + 1 - abar). */
function gaussianModel(schedule: NoiseSchedule, mu: number, std: number): NoiseModel {
  return (x, t) => {
    const abar = schedule.alphaCumulative[t[0]!]!;
    return td.mul(td.sub(x, Math.sqrt(abar) * mu), Math.sqrt(1 - abar) / (abar * std * std + 1 - abar));
  };
}

describe("end to end with the optimal predictor for data = one point x0", () => {
  const samplers: [string, SamplerConfig][] = [
    ["DDPM 1000 steps", DDPM_SAMPLER],
    ["DDPM 1000 steps, posterior variance", { kind: "ddpm", variance: "posterior" }],
    ["DDIM 50 steps", DDIM_SAMPLER],
    ["DDIM 50 steps, eta 1", { kind: "ddim", steps: 50, eta: 1 }],
    ["DDIM 50 steps, leading", { kind: "ddim", steps: 50, spacing: "leading" }],
    ["DDPM 100 steps (respaced)", { kind: "ddpm", steps: 100 }],
  ];
  for (const dtype of ["float64", "float32"] as const) {
    test(`${dtype}: every sampler lands on x0 for every schedule kind`, (ctx) => {
      td.tidy(() => {
        const shape = [4, 8, 8, 1];
        // A digit-like target in [0, 1].
        const x0 = td.clip(td.add(td.mul(td.random.normal(td.random.key(11), shape, dtype), 0.4), 0.5), 0, 1);
        for (const kind of KINDS) {
          const schedule = schedules[kind];
          for (const [name, sampler] of samplers) {
            const out = sample({ model: pointModel(schedule, x0), schedule, sampler, shape, key: td.random.key(5), dtype });
            const err = maxAbsDiff(out.data, x0.data);
            // In exact arithmetic every step's x0 prediction is x0 and the last step (abar_{-1} = 1) returns it,
            // whatever the noise, so any indexing slip between model, schedule and step shows up here; what is
            // left is round-off. Measured <= 2.2e-16 (float64) and <= 1.2e-7 (float32, 1 ulp at 1).
            const tol = dtype === "float64" ? 1e-13 : 1e-6;
            assert.ok(err < tol, `${kind}, ${name}: max |x - x0| = ${err}`);
            ctx.diagnostic(`${dtype} ${kind} ${name}: max |x - x0| = ${e(err)}`);
          }
        }
      });
    });
  }

  test("an off-by-one in the schedule indexing would be caught", () => {
    td.tidy(() => {
      const shape = [1, 4, 4, 1];
      const x0 = td.full(shape, 0.7, "float64");
      const schedule = schedules["linear"];
      // A model that evaluates abar at t+1 (the classic off-by-one): the sample misses x0 visibly.
      const shifted: NoiseModel = (x, t) => pointModel(schedule, x0)(x, Int32Array.from(t, (s) => Math.min(s + 1, 999)));
      const out = sample({ model: shifted, schedule, sampler: DDIM_SAMPLER, shape, key: td.random.key(5), dtype: "float64" });
      assert.ok(maxAbsDiff(out.data, x0.data) > 1e-3);
    });
  });
});

describe("end to end with the optimal predictor for Gaussian data N(mu, std^2)", () => {
  const mu = 0.3;
  const std = 0.2;

  test("DDIM (eta 0) is exactly the Euler scheme of the probability-flow ODE, and close to its solution", (ctx) => {
    td.tidy(() => {
      const shape = [2, 8, 8, 1];
      const xT = td.random.normal(td.random.key(21), shape, "float64");
      for (const kind of KINDS) {
        const schedule = schedules[kind];
        for (const steps of [50, 1000]) {
          const sampler: SamplerConfig = { kind: "ddim", steps };
          const out = sample({ model: gaussianModel(schedule, mu, std), schedule, sampler, key: td.random.key(0), x: xT });
          // Independent scalar recursion: with xbar = x/sqrt(abar), sigma = sqrt((1-abar)/abar), DDIM is
          // xbar' = xbar + (sigma' - sigma) eps, and eps = (xbar - mu) sigma/(std^2 + sigma^2) here.
          const ts = samplerTimesteps(sampler, schedule);
          const sig = (t: number): number => (t < 0 ? 0 : Math.sqrt((1 - schedule.alphaCumulative[t]!) / schedule.alphaCumulative[t]!));
          let factor = 1;
          for (let i = 0; i < ts.length; i++) {
            const s = sig(ts[i]!);
            factor *= 1 + ((sig(previousTimestep(ts, i)) - s) * s) / (std * std + s * s);
          }
          const abarT = schedule.alphaCumulative[ts[0]!]!;
          const euler = Float64Array.from(xT.data, (x) => mu + (x / Math.sqrt(abarT) - mu) * factor);
          // The ODE's exact solution: x0 = mu + std (x_T - sqrt(abar_T) mu)/sqrt(abar_T std^2 + 1 - abar_T).
          const exact = Float64Array.from(xT.data, (x) => mu + (std * (x - Math.sqrt(abarT) * mu)) / Math.sqrt(abarT * std * std + 1 - abarT));
          const eulerErr = maxAbsDiff(out.data, euler);
          // This checks the implementation: the same map computed two independent ways.
          assert.ok(eulerErr < 1e-12, `${kind} ${steps}: vs Euler recursion ${eulerErr}`);
          // The rest is DDIM's own (first-order) discretization error, a property of the method: the sample's
          // spread (out - mu) is too small by a constant factor. Measured 50 steps: 6.9% (tutorial-cosine),
          // 6.7% (cosine), 13.1% (linear); 1000 steps: 0.45%, 0.37%, 0.75%. Narrow data (std 0.2) is the hard
          // case for few steps.
          let spreadErr = 0;
          for (let i = 0; i < exact.length; i++) spreadErr = Math.max(spreadErr, Math.abs((out.data[i]! - mu) / (exact[i]! - mu) - 1));
          assert.ok(spreadErr < (steps === 50 ? 0.15 : 0.01), `${kind} ${steps}: spread error ${spreadErr}`);
          ctx.diagnostic(`${kind} DDIM ${steps}: vs Euler recursion ${e(eulerErr)}, spread vs exact ODE solution ${(100 * spreadErr).toFixed(2)}%`);
        }
      }
    });
  });

  test("DDPM's samples have the mean and variance its Gaussian chain predicts (and those are ~ mu, std^2)", (ctx) => {
    td.tidy(() => {
      const shape = [64, 8, 8, 1];
      const n = 64 * 64;
      for (const kind of KINDS) {
        const schedule = schedules[kind];
        const out = sample({ model: gaussianModel(schedule, mu, std), schedule, sampler: DDPM_SAMPLER, shape, key: td.random.key(31), dtype: "float64" });
        // Exact mean/variance of the linear-Gaussian chain x' = c1 (x - c2 eps(x)) + sigma z from N(0, 1).
        let m = 0;
        let v = 1;
        for (let t = schedule.numSteps - 1; t >= 0; t--) {
          const abar = schedule.alphaCumulative[t]!;
          const k = Math.sqrt(1 - abar) / (abar * std * std + 1 - abar);
          const c1 = 1 / Math.sqrt(schedule.alphas[t]!);
          const c2 = (1 - schedule.alphas[t]!) / Math.sqrt(1 - abar);
          const a = c1 * (1 - c2 * k);
          m = a * m + c1 * c2 * k * Math.sqrt(abar) * mu;
          v = a * a * v + (t > 0 ? schedule.betas[t]! : 0);
        }
        let sum = 0;
        for (const x of out.data) sum += x;
        const mean = sum / n;
        let ss = 0;
        for (const x of out.data) ss += (x - mean) ** 2;
        const variance = ss / (n - 1);
        // 5 standard errors: sd(mean) = sqrt(v/n), sd(variance) ~ v sqrt(2/(n-1)).
        assert.ok(Math.abs(mean - m) < 5 * Math.sqrt(v / n), `${kind}: mean ${mean} vs ${m}`);
        assert.ok(Math.abs(variance - v) < 5 * v * Math.sqrt(2 / (n - 1)), `${kind}: variance ${variance} vs ${v}`);
        // sigma^2 = beta is the upper-bound choice, so the chain's variance need not be exactly std^2.
        assert.ok(Math.abs(m - mu) < 1e-3 && Math.abs(Math.sqrt(v) - std) < 0.02 * std, `${kind}: chain mean ${m}, sd ${Math.sqrt(v)}`);
        ctx.diagnostic(`${kind}: sample mean ${mean.toFixed(4)} (chain ${m.toFixed(4)}, data ${mu}), sd ${Math.sqrt(variance).toFixed(4)} (chain ${Math.sqrt(v).toFixed(4)}, data ${std})`);
      }
    });
  });
});

describe("clipping the predicted x0", () => {
  test("with a range that clips nothing, the x0 form equals the eps form; a real range bounds x0", () => {
    td.tidy(() => {
      const shape = [2, 4, 4, 1];
      const xt = td.random.normal(td.random.key(1), shape, "float64");
      const eps = td.random.normal(td.random.key(2), shape, "float64");
      const z = td.random.normal(td.random.key(3), shape, "float64");
      const wide = [-1e6, 1e6] as const;
      for (const kind of KINDS) {
        const schedule = schedules[kind];
        for (const sampler of [DDPM_SAMPLER, { kind: "ddpm", variance: "posterior" } as SamplerConfig, DDIM_SAMPLER, { kind: "ddim", eta: 0.7 } as SamplerConfig]) {
          for (const [t, tPrev] of [[999, 979], [500, 499], [19, -1], [0, -1]] as const) {
            const plain = sampleStep(sampler, schedule, xt, t, tPrev, eps, z);
            const clipped = sampleStep(sampler, schedule, xt, t, tPrev, eps, z, { clipDenoised: wide });
            // Algebraically equal; x0 = (x - s eps)/sqrt(abar) then re-multiplied: rounding amplified by
            // 1/sqrt(abar_t) (up to 1.6e2 for linear, 2e4 for cosine); measured <= 4.5e-16 times that.
            const scale = 1 / Math.sqrt(schedule.alphaCumulative[t]!);
            assert.ok(maxAbsDiff(plain.data, clipped.data) < 1e-13 * scale, `${kind} ${sampler.kind} ${t}: ${maxAbsDiff(plain.data, clipped.data)}`);
          }
        }
        // At the last step x_{-1} is the (clipped) x0 itself.
        const last = sampleStep(DDIM_SAMPLER, schedule, xt, 19, -1, eps, null, { clipDenoised: true });
        assert.ok(last.toArray().every((v) => v >= 0 && v <= 1));
      }
      assert.throws(() => sampleStep(DDIM_SAMPLER, linear, xt, 19, -1, eps, null, { clipDenoised: [1, 0] }), /empty/);
    });
  });
});

describe("the driver", () => {
  test("replayModel on a host backend (which cannot record steps): the eager loop, the same sample", () => {
    td.tidy(() => {
      assert.equal(td.canCapture(), false);
      let tensorCalls = 0;
      const model: NoiseModel = (x) => td.mul(td.tanh(x), 0.3);
      const replayModel = (x: td.Tensor): td.Tensor => {
        tensorCalls++;
        return td.mul(td.tanh(x), 0.3);
      };
      const options = { model, schedule: linear, sampler: { kind: "ddim", steps: 5, eta: 0.5 } as const, shape: [2, 8, 8, 1], key: td.random.key(4) };
      const plain = sample(options);
      const withReplay = sample({ ...options, replayModel });
      assert.equal(tensorCalls, 0, "the host path calls `model`");
      assert.deepEqual(withReplay.data, plain.data);
    });
  });

  test("one model call per step at the visited timesteps, real states to onStep, flat memory, no gradients", () => {
    td.tidy(() => {
      const calls: number[] = [];
      const weight = td.scalar(0.1);
      weight.requiresGrad = true; // a "parameter": nothing may be recorded on it
      const model: NoiseModel = (x, t) => {
        calls.push(t[0]!);
        assert.ok(t.every((s) => s === t[0]));
        return td.mul(td.tanh(x), weight);
      };
      const infos: { index: number; t: number; tPrev: number; tensors: number; first: number; requiresGrad: boolean }[] = [];
      const onStep = (info: StepInfo) =>
        infos.push({ index: info.index, t: info.t, tPrev: info.tPrev, tensors: td.memory().tensors, first: info.x.data[0]!, requiresGrad: info.x.requiresGrad });
      const before = td.memory().tensors;
      const out = sample({ model, schedule: linear, sampler: { kind: "ddim", steps: 20, eta: 0.3 }, shape: [2, 8, 8, 1], key: td.random.key(3), onStep });
      const ts = Array.from(samplerTimesteps({ kind: "ddim", steps: 20 }, linear));
      assert.deepEqual(calls, ts);
      assert.deepEqual(infos.map((i) => i.t), ts);
      assert.deepEqual(infos.map((i) => i.tPrev), [...ts.slice(1), -1]);
      assert.deepEqual(infos.map((i) => i.index), ts.map((_, i) => i));
      // Only x is alive between steps: the live-tensor count is the same at every step.
      assert.ok(infos.every((i) => i.tensors === before + 1), `live tensors ${infos.map((i) => i.tensors - before).join(",")}`);
      assert.equal(td.memory().tensors, before + 1);
      assert.ok(infos.every((i) => !i.requiresGrad) && !out.requiresGrad && out.node === null);
      assert.equal(infos.at(-1)!.first, out.data[0]);
      assert.deepEqual(out.shape, [2, 8, 8, 1]);
      assert.equal(out.dtype, "float32");
    });
  });

  test("a given x is used as x_T and is not disposed; same key, same result", () => {
    td.tidy(() => {
      const model: NoiseModel = (x) => td.mul(x, 0.2);
      const x = td.random.normal(td.random.key(4), [1, 8, 8, 1]);
      const a = sample({ model, schedule: linear, sampler: { kind: "ddpm", steps: 10 }, key: td.random.key(6), x });
      assert.equal(x.isDisposed, false);
      const b = sample({ model, schedule: linear, sampler: { kind: "ddpm", steps: 10 }, key: td.random.key(6), x });
      assert.deepEqual(a.toArray(), b.toArray());
      // Without x the initial noise comes from the key, reproducibly.
      const c = sample({ model, schedule: linear, sampler: { kind: "ddpm", steps: 10 }, key: td.random.key(6), shape: [1, 8, 8, 1] });
      const d = sample({ model, schedule: linear, sampler: { kind: "ddpm", steps: 10 }, key: td.random.key(6), shape: [1, 8, 8, 1] });
      assert.deepEqual(c.toArray(), d.toArray());
      assert.throws(() => sample({ model, schedule: linear, sampler: DDPM_SAMPLER, key: td.random.key(6) }), /shape/);
      assert.throws(() => sample({ model, schedule: linear, sampler: DDPM_SAMPLER, key: td.random.key(6), x, dtype: "float64" }), /dtype/);
      const before = td.memory().tensors;
      assert.throws(() => sample({ model: () => td.zeros([3]), schedule: linear, sampler: DDPM_SAMPLER, key: td.random.key(6), shape: [1, 8, 8, 1] }), /model returned shape/);
      assert.equal(td.memory().tensors, before, "a failing model leaks nothing");
    });
  });

  test("each step is submitted (backend.flush() once per step) and the snapshots are engine copies", () => {
    // On a device backend flush() submits the recorded GPU work; here a CPU backend counts the calls.
    class CountingBackend extends td.CpuBackend {
      flushes = 0;
      override flush(): void {
        this.flushes++;
      }
    }
    const backend = new CountingBackend();
    const previous = td.getBackend();
    td.setBackend(backend);
    try {
      td.tidy(() => {
        const model: NoiseModel = (x) => td.mul(x, 0.1);
        const flushesAtStep: number[] = [];
        sample({ model, schedule: linear, sampler: { kind: "ddim", steps: 7 }, shape: [1, 8, 8, 1], key: td.random.key(2), onStep: () => flushesAtStep.push(backend.flushes) });
        assert.deepEqual(flushesAtStep, [1, 2, 3, 4, 5, 6, 7], "flushed before each callback");
        const { snapshots } = sampleWithSnapshots({ model, schedule: linear, sampler: { kind: "ddim", steps: 7 }, shape: [1, 8, 8, 1], key: td.random.key(2) }, [999, -1]);
        assert.ok(snapshots.every((s) => s.x.origin === "stopGradient"), snapshots.map((s) => s.x.origin).join(","));
      });
    } finally {
      td.setBackend(previous);
    }
  });

  test("sampleWithSnapshots returns copies of the real states at the chosen timesteps", () => {
    td.tidy(() => {
      const model: NoiseModel = (x) => td.mul(td.tanh(x), 0.3);
      const seen = new Map<number, number[]>();
      const options = { model, schedule: linear, sampler: DDPM_SAMPLER, shape: [1, 8, 8, 1], key: td.random.key(8), onStep: (i: StepInfo) => seen.set(i.tPrev, i.x.toArray()) };
      const at = [999, 750, 500, 250, 0, -1];
      const { sample: result, snapshots } = sampleWithSnapshots(options, at);
      assert.deepEqual(snapshots.map((s) => [s.requested, s.t]), at.map((t) => [t, t]));
      // T-1 is the initial noise (the one sample() draws from the same key)...
      const plain = sample({ ...options, onStep: undefined });
      assert.deepEqual(result.toArray(), plain.toArray());
      const initial = initialNoise(td.random.key(8), [1, 8, 8, 1]);
      assert.deepEqual(snapshots[0]!.x.toArray(), initial.toArray());
      // ... the others are the states the sampler really went through (the user's onStep still runs).
      for (const s of snapshots.slice(1)) assert.deepEqual(s.x.toArray(), seen.get(s.t));
      assert.deepEqual(snapshots.at(-1)!.x.toArray(), result.toArray());
      // The states get less noisy: the reverse picture is not a blend.
      assert.ok(snapshots.every((s) => !s.x.isDisposed));

      // With a strided sampler, an unvisited timestep gets the next state below it.
      const ddim = sampleWithSnapshots({ ...options, sampler: DDIM_SAMPLER }, [999, 990, 500, 5]);
      assert.deepEqual(ddim.snapshots.map((s) => s.t), [999, 979, 499, -1]);
      assert.throws(() => sampleWithSnapshots(options, [1000]), /outside/);
    });
  });

  test("the real U-Net (F=4) samples with DDIM in flat memory", () => {
    td.tidy(() => {
      const params = loadParams(4, "float32");
      const counts: number[] = [];
      const out = sample({
        model: (x, t) => unetForward(params, x, t),
        schedule: makeSchedule(TUTORIAL_TRAIN_SCHEDULE),
        sampler: { kind: "ddim", steps: 5 },
        shape: [2, 8, 8, 1],
        key: td.random.key(1),
        onStep: () => counts.push(td.memory().tensors),
      });
      assert.ok(counts.every((c) => c === counts[0]), counts.join(","));
      assert.ok(out.toArray().every(Number.isFinite));
    });
  });
});

describe("classifier-free guidance", () => {
  // Fake conditional model: eps = x * 0 + (label + 1) for labelled rows, 0.5 for label -1.
  const fake = (calls: { b: number; labels: number[] }[]): NoiseModel => (x, t, labels) => {
    calls.push({ b: x.shape[0]!, labels: Array.from(labels ?? []) });
    const b = x.shape[0]!;
    const per = x.size / b;
    const values = new Float64Array(x.size);
    for (let i = 0; i < b; i++) values.fill(labels && labels[i]! >= 0 ? labels[i]! + 1 : 0.5, i * per, (i + 1) * per);
    return td.add(td.mul(x, 0), td.tensor(values, x.shape, x.dtype));
  };

  test("eps = eps_uncond + w (eps_cond - eps_uncond) from one batched call", () => {
    td.tidy(() => {
      const calls: { b: number; labels: number[] }[] = [];
      const x = td.random.normal(td.random.key(1), [3, 2, 2, 1], "float64");
      const labels = [0, 4, 9];
      const w = 3;
      const eps = predictNoise(fake(calls), x, 10, labels, w);
      assert.deepEqual(calls, [{ b: 6, labels: [0, 4, 9, -1, -1, -1] }]);
      for (let i = 0; i < 3; i++) {
        const expected = 0.5 + w * (labels[i]! + 1 - 0.5);
        assert.ok(Array.from(eps.data.subarray(i * 4, i * 4 + 4)).every((v) => v === expected));
      }
      // w = 1 is plain conditional (one batch of B); no guidance without labels is an error.
      calls.length = 0;
      predictNoise(fake(calls), x, 10, labels, 1);
      assert.deepEqual(calls, [{ b: 3, labels }]);
      assert.throws(() => predictNoise(fake(calls), x, 10, undefined, 2), /needs labels/);
      assert.throws(() => predictNoise(fake(calls), x, 10, [1], 2), /1 labels for a batch of 3/);
    });
  });

  test("sample() with guidance equals sampling with the guided predictor", () => {
    td.tidy(() => {
      const calls: { b: number; labels: number[] }[] = [];
      const labels = [2, 7];
      const w = 2.5;
      const guided: NoiseModel = (x) => {
        const values = new Float64Array(x.size);
        for (let i = 0; i < 2; i++) values.fill(0.5 + w * (labels[i]! + 1 - 0.5), i * 4, (i + 1) * 4);
        return td.tensor(values, x.shape, x.dtype);
      };
      const common = { schedule: linear, sampler: { kind: "ddim", steps: 10, eta: 0.5 } as SamplerConfig, shape: [2, 2, 2, 1], key: td.random.key(2), dtype: "float64" as const };
      const a = sample({ ...common, model: fake(calls), labels, guidanceScale: w });
      const b = sample({ ...common, model: guided });
      assert.equal(calls.length, 10);
      assert.ok(maxAbsDiff(a.data, b.data) < 1e-12);
    });
  });
});
