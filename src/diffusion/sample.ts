// The reverse-process driver: from pure noise (or a given x_T) to a sample, one model call per step.
// Each step runs inside td.tidy and the whole loop under td.noGrad, so memory stays flat: only the
// current state x is alive between steps. Nothing here reads values back to the host, so on a device backend
// (WebGPU) the loop only records work: each step ends with td.getBackend().flush(), which submits that step
// while the CPU records the next one. Read the result with `await x.read()`.
//
// Given `replayModel` (the model taking its timesteps as a tensor) on a backend that records (WebGPU), the
// first step is captured (engine/capture.ts) and the others replay it: per step a row of device tables (the
// timesteps, the noise key, the step's scalars) is copied in and ~140 recorded dispatches are encoded again.
// Same arithmetic as the eager loop, to float32 rounding.
import * as td from "../engine/index.ts";
import type { NoiseSchedule } from "./schedules.ts";
import { applyStep, previousTimestep, resolveSampler, sampleStep, samplerTimesteps, stepScalars, stepVariance, type SamplerConfig, type StepOptions, type StepScalars } from "./samplers.ts";

/**
 * Predicts the noise in x [B,...] at timesteps t (length B, all equal here). `labels` (length B; -1 = no label)
 * is passed only when the caller gives labels; unetForward(params, x, t, {labels}) fits this shape.
 */
export type NoiseModel = (x: td.Tensor, t: Int32Array, labels?: Int32Array) => td.Tensor;

/** The same model with its timesteps as an int32 tensor [B] (unetForward accepts both). */
export type TimestepTensorModel = (x: td.Tensor, t: td.Tensor, labels?: Int32Array) => td.Tensor;

export interface StepInfo {
  /** 0-based step number; `steps` steps in all. */
  index: number;
  steps: number;
  /** The timestep the model was just evaluated at. */
  t: number;
  /** The timestep of `x` (-1 = the final, clean sample). */
  tPrev: number;
  /**
   * The real state x_tPrev after this step (not a copy). It is disposed when the next step replaces it (or,
   * when steps are replayed, overwritten by the next one), so read it inside the callback:
   * `const values = x.read()` (works on every backend; the copy is taken at call time, so await the promise
   * later, after sampling if you like), or keep an engine copy (td.stopGradient(x), yours to dispose). `x.data`/`x.toTypedArray()` work only on host backends (CPU, Wasm).
   */
  x: td.Tensor;
}

export interface SampleOptions extends StepOptions {
  /** The noise predictor. */
  model: NoiseModel;
  /**
   * The same predictor taking its timesteps as a tensor. With it, on a backend that records steps (WebGPU),
   * one step is captured and replayed for the others (far less host work per step); without it, or on host
   * backends, every step runs `model` through the frontend.
   */
  replayModel?: TimestepTensorModel;
  /**
   * The schedule to sample with: normally the model's own (the one it was trained with). To reproduce the
   * tutorial's train/sample mismatch pass makeSchedule(TUTORIAL_SAMPLER_SCHEDULE) (see tutorialSamplerSetup).
   */
  schedule: NoiseSchedule;
  sampler: SamplerConfig;
  /** Shape of the batch [B,H,W,C]; may be omitted when `x` is given. */
  shape?: readonly number[];
  /** Randomness: the initial noise (when `x` is not given) and each step's z derive from it. */
  key: td.random.RandomKey;
  /** Default: x's dtype, else "float32". */
  dtype?: td.DType;
  /** Initial state x_{T-1} (pure noise); not disposed by the sampler. Default: standard normal from `key`. */
  x?: td.Tensor;
  /**
   * Called after each step, synchronously (sampling does not wait for it). On a device backend a callback must
   * not read x synchronously: start `info.x.read()` here and await the promise elsewhere.
   */
  onStep?: (info: StepInfo) => void;
  /** Class labels (length B, -1 = none) for conditional models. */
  labels?: ArrayLike<number>;
  /**
   * Classifier-free guidance scale w: eps = eps_uncond + w (eps_cond - eps_uncond), from one model call on
   * the batch [x; x] with labels [labels; -1...]. Needs `labels`. w = 1 is plain conditional sampling (one
   * batch of B), w = 0 unconditional.
   */
  guidanceScale?: number;
}

/** The noise prediction at timestep t, with classifier-free guidance when asked for. */
export function predictNoise(model: NoiseModel, x: td.Tensor, t: number, labels?: ArrayLike<number>, guidanceScale?: number): td.Tensor {
  return guidedNoise((input, l) => model(input, new Int32Array(input.shape[0]!).fill(t), l), x, labels, guidanceScale);
}

/** Whether predictNoise runs the model on [x; x] (classifier-free guidance). */
function guided(guidanceScale: number | undefined): guidanceScale is number {
  return guidanceScale !== undefined && guidanceScale !== 1;
}

/** predictNoise with the model's timesteps already bound: `call(input, labels)`. */
function guidedNoise(call: (input: td.Tensor, labels?: Int32Array) => td.Tensor, x: td.Tensor, labels?: ArrayLike<number>, guidanceScale?: number): td.Tensor {
  const b = x.shape[0]!;
  const labelArray = labels === undefined ? undefined : Int32Array.from(labels);
  if (labelArray && labelArray.length !== b) throw new Error(`predictNoise: ${labelArray.length} labels for a batch of ${b}`);
  const checkShape = (out: td.Tensor, expected: readonly number[]): td.Tensor => {
    if (out.shape.length !== expected.length || out.shape.some((d, i) => d !== expected[i])) {
      throw new Error(`model returned shape [${out.shape.join(",")}], expected [${expected.join(",")}]`);
    }
    return out;
  };
  if (!guided(guidanceScale)) return checkShape(call(x, labelArray), x.shape);
  if (!labelArray) throw new Error("classifier-free guidance (guidanceScale) needs labels");
  if (!Number.isFinite(guidanceScale)) throw new Error(`guidanceScale must be finite, got ${guidanceScale}`);
  const both = td.concat([x, x], 0);
  const bothLabels = new Int32Array(2 * b).fill(-1);
  bothLabels.set(labelArray, 0);
  const out = checkShape(call(both, bothLabels), both.shape);
  const rest = x.shape.slice(1);
  const zeros = rest.map(() => 0);
  const conditional = td.slice(out, [0, ...zeros], [b, ...rest]);
  const unconditional = td.slice(out, [b, ...zeros], [b, ...rest]);
  return td.add(unconditional, td.mul(guidanceScale, td.sub(conditional, unconditional)));
}

/** The pure noise x_{T-1} that sample() starts from when it is given `key` and no `x`. */
export function initialNoise(key: td.random.RandomKey, shape: readonly number[], dtype: td.DType = "float32"): td.Tensor {
  return td.random.normal(td.random.split(key)[0]!, shape, dtype);
}

/** The key of step i's noise z (independent of the number of steps). */
function stepNoiseKey(key: td.random.RandomKey, index: number): td.random.RandomKey {
  return td.random.foldIn(td.random.split(key)[1]!, index);
}

/**
 * Runs the reverse process; returns the final sample x_{-1} (in the caller's tidy scope, if any). On a device
 * backend it returns once the work is recorded and submitted: read the values with `await x.read()`.
 */
export function sample(options: SampleOptions): td.Tensor {
  const { model, schedule, sampler, key, onStep, labels, guidanceScale } = options;
  resolveSampler(sampler, schedule);
  const shape = options.x ? options.x.shape : options.shape;
  if (!shape) throw new Error("sample: give `shape` or an initial `x`");
  if (options.x && options.shape && (options.x.shape.length !== options.shape.length || options.x.shape.some((d, i) => d !== options.shape![i]))) {
    throw new Error(`sample: x has shape [${options.x.shape.join(",")}] but shape is [${options.shape.join(",")}]`);
  }
  const dtype = options.dtype ?? options.x?.dtype ?? "float32";
  if (options.x && options.x.dtype !== dtype) throw new Error(`sample: x is ${options.x.dtype} but dtype is ${dtype}`);
  const stepOptions: StepOptions = { clipDenoised: options.clipDenoised };
  const timesteps = samplerTimesteps(sampler, schedule);

  if (options.replayModel && dtype !== "float64" && td.canCapture()) {
    return sampleReplayed(options, options.replayModel, shape, dtype, timesteps, stepOptions);
  }

  return td.noGrad(() => {
    let x = options.x ?? initialNoise(key, shape, dtype);
    const owned = (tensor: td.Tensor): boolean => tensor !== options.x;
    try {
      for (let i = 0; i < timesteps.length; i++) {
        const t = timesteps[i]!;
        const tPrev = previousTimestep(timesteps, i);
        const current = x;
        const next = td.tidy(() => {
          const eps = predictNoise(model, current, t, labels, guidanceScale);
          const z = stepVariance(sampler, schedule, t, tPrev) > 0 ? td.random.normal(stepNoiseKey(key, i), shape, dtype) : null;
          return sampleStep(sampler, schedule, current, t, tPrev, eps, z, stepOptions);
        });
        if (owned(x)) x.dispose();
        x = next;
        // Submit this step's GPU work now (a no-op on host backends), so the device computes while we record the next.
        td.getBackend().flush();
        onStep?.({ index: i, steps: timesteps.length, t, tPrev, x });
      }
      return x;
    } catch (error) {
      if (owned(x)) x.dispose();
      throw error;
    }
  });
}

/** sample() with the first step captured and replayed for the rest (see the file header). */
function sampleReplayed(
  options: SampleOptions, model: TimestepTensorModel, shape: readonly number[], dtype: td.DType, timesteps: Int32Array, stepOptions: StepOptions,
): td.Tensor {
  const { schedule, sampler, key, onStep, labels, guidanceScale } = options;
  const { kind } = resolveSampler(sampler, schedule);
  const modelBatch = (guided(guidanceScale) ? 2 : 1) * shape[0]!;
  const scalars = Array.from(timesteps, (t, i) => stepScalars(sampler, schedule, t, previousTimestep(timesteps, i), stepOptions));
  // One recorded step serves every step only if all have the same ops: with noise anywhere, all add sigma z
  // (sigma = 0 where a step adds none: mean + 0 z = mean exactly). z is drawn on the device from the step's
  // key (random.normalFromKey: the eager loop's values to float32 rounding), so a replay writes two words.
  const noisy = scalars.some((k) => k.sigma > 0);
  const names = ["a", "b", "p", "q", "sigma"] as const;
  const steps = timesteps.length;
  // Every step's inputs as tables on the device (a replay copies its row into the input slots, so replays
  // can share a submit): timesteps [steps, modelBatch], noise keys [steps, 2], scalars [steps, 5].
  const tRows = new Int32Array(steps * modelBatch);
  const keyRows = new Int32Array(steps * 2);
  const scalarRows = new Float32Array(steps * names.length);
  for (let i = 0; i < steps; i++) {
    tRows.fill(timesteps[i]!, i * modelBatch, (i + 1) * modelBatch);
    keyRows.set(td.random.keyWords(stepNoiseKey(key, i)), 2 * i);
    names.forEach((name, j) => (scalarRows[i * names.length + j] = scalars[i]![name]));
  }
  const body = ([x, t, ...rest]: td.Tensor[]): td.Tensor[] => {
    const z = noisy ? td.random.normalFromKey(rest.shift()!, shape, dtype) : null;
    const k = Object.fromEntries(names.map((name, j) => [name, rest[j]!])) as unknown as StepScalars<td.Tensor>;
    const eps = guidedNoise((input, l) => model(input, t!, l), x!, labels, guidanceScale);
    return [applyStep(kind, stepOptions.clipDenoised, x!, eps, z, k)];
  };
  /** Submit after this many steps when no callback may read a state (each step when one may). */
  const STEPS_PER_SUBMIT = 8;

  return td.noGrad(() => {
    const tables = [td.tensor(tRows, [tRows.length], "int32"), td.tensor(keyRows, [keyRows.length], "int32"), td.tensor(scalarRows, [scalarRows.length], dtype)];
    const [tTable, keyTable, scalarTable] = tables as [td.Tensor, td.Tensor, td.Tensor];
    const row = (i: number): td.ReplayInput[] => [
      { from: tTable, offset: i * modelBatch },
      ...(noisy ? [{ from: keyTable, offset: 2 * i }] : []),
      ...names.map((_, j) => ({ from: scalarTable, offset: i * names.length + j })),
    ];
    let step: td.CapturedStep | null = null;
    try {
      const x0 = options.x ?? initialNoise(key, shape, dtype);
      const initial = td.tidy(() => [
        x0, td.slice(tTable, [0], [modelBatch]), ...(noisy ? [td.slice(keyTable, [0], [2])] : []),
        ...names.map((_, j) => td.reshape(td.slice(scalarTable, [j], [1]), [])),
      ]);
      try {
        // x is fed back: each replay reads the state where the last one wrote it (no copy between steps).
        step = td.captureStep(body, initial, { feedback: [[0, 0]] });
      } finally {
        for (const t of initial) if (t !== options.x) t.dispose();
      }
      for (let i = 0; i < steps; i++) {
        if (i > 0) step.replay([null, ...row(i)], { submit: onStep !== undefined || i % STEPS_PER_SUBMIT === 0 || i === steps - 1 });
        onStep?.({ index: i, steps, t: timesteps[i]!, tPrev: previousTimestep(timesteps, i), x: step.outputs[0]! });
      }
      return td.stopGradient(step.outputs[0]!); // the caller's copy: the step's own tensors go with it
    } finally {
      step?.dispose();
      td.dispose(tables);
    }
  });
}

export interface Snapshot {
  /** The timestep asked for. */
  requested: number;
  /**
   * The timestep of x: the largest visited one <= requested (-1 = the final sample), or the first visited one
   * (the initial noise) when requested is above it (e.g. 999 with "leading" spacing, which starts at 980).
   */
  t: number;
  /** A copy of the real state x_t (an engine copy on the active backend: read it with `await x.read()`). */
  x: td.Tensor;
}

/**
 * Runs `sample` and keeps copies of the real intermediate states x_t at the timesteps in `at` (the picture
 * of the reverse process). x_t is the state the model sees at timestep t, at the noise level abar_t of
 * addNoise(x0, noise, t): the true counterpart of the forward picture. t = T-1 is the initial noise, -1 the
 * final sample. With a strided sampler (DDIM) a timestep that is not visited gets the next state below it.
 */
export function sampleWithSnapshots(options: SampleOptions, at: readonly number[]): { sample: td.Tensor; snapshots: Snapshot[] } {
  const T = options.schedule.numSteps;
  for (const t of at) if (!Number.isInteger(t) || t < -1 || t >= T) throw new Error(`snapshot timestep ${t} is outside -1..${T - 1}`);
  const taken = new Map<number, Snapshot>();
  const pending = [...new Set(at)].sort((a, b) => b - a); // largest first: the order states appear in
  // An engine copy (same backend, same values, no host round trip); noGrad is on, so it records nothing.
  const copy = (x: td.Tensor): td.Tensor => td.stopGradient(x);
  const take = (state: td.Tensor, t: number): void => {
    while (pending.length > 0 && pending[0]! >= t) {
      const requested = pending.shift()!;
      taken.set(requested, { requested, t, x: copy(state) });
    }
  };
  const onStep = options.onStep;
  // The initial state sits at the first visited timestep (T-1 with the default "trailing" spacing).
  const first = samplerTimesteps(options.sampler, options.schedule)[0]!;
  const result = td.noGrad(() => {
    if (!options.x && !options.shape) throw new Error("sampleWithSnapshots: give `shape` or an initial `x`");
    const initial = options.x ?? initialNoise(options.key, options.shape!, options.dtype);
    take(initial, first);
    try {
      return sample({
        ...options,
        x: initial,
        onStep: (info) => {
          take(info.x, info.tPrev);
          onStep?.(info);
        },
      });
    } finally {
      if (initial !== options.x) initial.dispose();
    }
  });
  return { sample: result, snapshots: at.map((t) => taken.get(t)!) };
}
