// One training step's work, in two halves shared by every way of running it:
// - the host half (hostBatch): what is drawn or looked up on the host for step k: the batch, timesteps,
//   noise, labels, the loss coefficients, the time embedding, the optimizer's lr and bias corrections,
//   the EMA weights. Randomness comes from (seed, step) alone, so a resumed run equals an uninterrupted one.
// - the tensor half (stepBody): forward, backward with the penalty, optimizer, EMA, as a function of tensors.
// Run eagerly, the host values become tensors and the body runs. On a backend that records (WebGPU), the
// body is captured once (td.captureStep) and replayed for later steps with the next host values written
// into its inputs and its outputs copied back into its state inputs: ~1,400 dispatches re-encoded instead of
// the frontend's tensors, autodiff, fusion and bind-group lookups (~40 ms of host time per step). The same
// body runs either way, so both give the same numbers.
import * as td from "../engine/index.ts";
import type { DigitsDataset } from "../data/digits.ts";
import { timestepEmbeddingValues, unetForward, type UNetParams } from "../nn/unet.ts";
import { emaUpdate, emaWeights } from "./ema.ts";
import { lrAt } from "./lr-schedule.ts";
import { diffusionLoss } from "./loss.ts";
import { optimizerSchedule, optimizerStep, type OptimizerState } from "./optimizer.ts";
import { sampleProgressiveTimesteps, sampleUniformTimesteps } from "./timestep-sampling.ts";
import type { TrainingRun } from "./trainer.ts";

/** The state a step reads and replaces. */
export interface StepState {
  params: UNetParams;
  m: UNetParams;
  v: UNetParams;
  ema: UNetParams | null;
}

/** A step's results: the new state and [loss, grad norm] (one read brings both back). */
export interface StepResult extends StepState {
  stats: td.Tensor;
}

/** The host half of step run.step: values only, no tensors. */
export interface HostBatch {
  batchSize: number;
  /** Timesteps (the loss looks up nothing: the coefficients and embedding below come from them). */
  t: Int32Array;
  images: Float32Array;
  noise: Float32Array;
  /** Class labels, -1 for "no label"; null for an unconditional model. */
  labels: Int32Array | null;
  /** sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) per sample. */
  alpha: Float32Array;
  sigma: Float32Array;
  /** The time embedding [B, dim]. */
  embedding: Float32Array;
  /** The optimizer's [lr, bc1, bc2] for this update, and its lr as the schedule gives it (for the report). */
  schedule: Float32Array;
  lr: number;
  /** The EMA's weights [d, 1 - d]; null without an EMA. */
  emaWeights: [number, number] | null;
}

/** The body's batch inputs as tensors. */
interface BatchTensors {
  images: td.Tensor;
  noise: td.Tensor;
  labels: td.Tensor | null;
  alpha: td.Tensor;
  sigma: td.Tensor;
  embedding: td.Tensor;
  schedule: td.Tensor;
  emaWeights: [td.Tensor, td.Tensor] | null;
}

/** Per-step randomness: a key that depends on (seed, step) only. */
function stepKeys(seed: number, step: number): td.random.RandomKey[] {
  return td.random.split(td.random.foldIn(td.random.key(seed), step + 1), 4);
}

/** Indices of the batch: everything (tutorial), or a random subset without replacement. */
function batchIndices(count: number, batchSize: number | "full", key: td.random.RandomKey): Int32Array {
  if (batchSize === "full" || batchSize >= count) return Int32Array.from({ length: count }, (_, i) => i);
  const u = td.random.uniformArray(key, count);
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => u[a]! - u[b]!);
  return Int32Array.from(order.slice(0, batchSize));
}

/** Width of the model's time embedding. */
function embeddingWidth(params: UNetParams): number {
  return params.time_mlp_1.kernel.shape[0]!;
}

export function hostBatch(run: TrainingRun, data: DigitsDataset): HostBatch {
  const { config, schedule } = run;
  const [kBatch, kTime, kNoise, kLabel] = stepKeys(config.seed, run.step) as [td.random.RandomKey, td.random.RandomKey, td.random.RandomKey, td.random.RandomKey];
  const idx = batchIndices(data.count, config.batchSize, kBatch);
  const b = idx.length;
  const T = schedule.numSteps;
  const uniform = (key: td.random.RandomKey) => (n: number) => td.random.uniformArray(key, n);
  const t = config.timesteps === "progressive"
    ? sampleProgressiveTimesteps(run.step, config.steps - 1, T, b, uniform(kTime))
    : sampleUniformTimesteps(T, b, uniform(kTime));
  let labels: Int32Array | null = null;
  if (config.conditional) {
    const drop = td.random.uniformArray(kLabel, b);
    labels = Int32Array.from(idx, (i, k) => (drop[k]! < config.labelDropout ? -1 : data.labels[i]!));
  }
  const images = new Float32Array(b * 64);
  idx.forEach((i, k) => images.set(data.images.subarray(i * 64, (i + 1) * 64), k * 64));
  const lr = lrAt(run.optimizer.step, config.optimizer.lr);
  return {
    batchSize: b,
    t,
    images,
    noise: Float32Array.from(td.random.normalArray(kNoise, b * 64)),
    labels,
    alpha: Float32Array.from(t, (s) => schedule.sqrtAlphaCumulative[s]!),
    sigma: Float32Array.from(t, (s) => schedule.sqrtOneMinusAlphaCumulative[s]!),
    embedding: Float32Array.from(timestepEmbeddingValues(t, embeddingWidth(run.params), "float32")),
    schedule: Float32Array.from(optimizerSchedule(run.optimizer.step, config.optimizer, "float32", lr)),
    lr,
    emaWeights: run.ema && config.emaDecay !== null ? emaWeights(run.step, { decay: config.emaDecay }) : null,
  };
}

/** One of the body's batch inputs: its host value and the tensor it becomes. */
interface BatchInput {
  key: "images" | "noise" | "alpha" | "sigma" | "embedding" | "schedule" | "labels" | "emaDecay" | "emaComplement";
  value: td.TypedArray;
  shape: number[];
}

/** The batch's inputs in the one order both the eager step and the capture use (absent ones left out). */
function batchInputs(batch: HostBatch): BatchInput[] {
  const b = batch.batchSize;
  const inputs: BatchInput[] = [
    { key: "images", value: batch.images, shape: [b, 8, 8, 1] },
    { key: "noise", value: batch.noise, shape: [b, 8, 8, 1] },
    { key: "alpha", value: batch.alpha, shape: [b, 1, 1, 1] },
    { key: "sigma", value: batch.sigma, shape: [b, 1, 1, 1] },
    { key: "embedding", value: batch.embedding, shape: [b, batch.embedding.length / b] },
    { key: "schedule", value: batch.schedule, shape: [3] },
  ];
  if (batch.labels) inputs.push({ key: "labels", value: batch.labels, shape: [b] });
  if (batch.emaWeights) {
    inputs.push({ key: "emaDecay", value: Float32Array.of(batch.emaWeights[0]), shape: [] });
    inputs.push({ key: "emaComplement", value: Float32Array.of(batch.emaWeights[1]), shape: [] });
  }
  return inputs;
}

/** Tensors of the batch's inputs, in batchInputs' order. */
function batchTensorList(batch: HostBatch): td.Tensor[] {
  return batchInputs(batch).map(({ value, shape }) => td.tensor(value, shape, value instanceof Int32Array ? "int32" : "float32"));
}

/** The body's view of tensors given in batchInputs' order. */
function batchFromList(list: readonly td.Tensor[], batch: HostBatch): BatchTensors {
  const byKey = new Map(batchInputs(batch).map(({ key }, i) => [key, list[i]!]));
  const get = (key: BatchInput["key"]) => byKey.get(key)!;
  return {
    images: get("images"), noise: get("noise"), alpha: get("alpha"), sigma: get("sigma"), embedding: get("embedding"), schedule: get("schedule"),
    labels: byKey.get("labels") ?? null,
    emaWeights: byKey.has("emaDecay") ? [get("emaDecay"), get("emaComplement")] : null,
  };
}

/**
 * The tensor half: loss (with the penalty's double backward), gradients, optimizer update, EMA. Reads
 * nothing back; `t` only sizes the loss (the coefficients and the embedding come as tensors).
 */
function stepBody(run: TrainingRun, state: StepState, batch: BatchTensors, t: Int32Array): StepResult {
  const { config } = run;
  const labels = batch.labels;
  const model = (p: UNetParams, x: td.Tensor) => unetForward(p, x, { embedding: batch.embedding }, { labels: labels ?? undefined });
  // An inner scope frees the forward activations before the optimizer allocates its results.
  const { value, grads } = td.tidy(() => td.valueAndGrad((p: UNetParams) =>
    diffusionLoss(model, p, {
      images: batch.images, t, noise: batch.noise,
      sqrtAlphaCumulative: run.schedule.sqrtAlphaCumulative,
      sqrtOneMinusAlphaCumulative: run.schedule.sqrtOneMinusAlphaCumulative,
      coefficients: { alpha: batch.alpha, sigma: batch.sigma },
    }, { penaltyWeight: config.penaltyWeight }).total,
  )(state.params));
  const optimizer: OptimizerState = { step: run.optimizer.step, m: state.m, v: state.v };
  const update = td.noGrad(() => optimizerStep(state.params, grads, optimizer, config.optimizer, { schedule: batch.schedule }));
  const ema = state.ema && batch.emaWeights && config.emaDecay !== null
    ? td.noGrad(() => emaUpdate(state.ema!, update.params, run.step, { decay: config.emaDecay! }, { weights: batch.emaWeights! }))
    : null;
  const stats = td.concat([td.reshape(value, [1]), td.reshape(td.cast(update.gradNorm, value.dtype), [1])], 0);
  return { stats, params: update.params, m: update.state.m as UNetParams, v: update.state.v as UNetParams, ema };
}

/** The step eagerly: host values to tensors, then the body, in the caller's tidy scope. */
export function eagerStep(run: TrainingRun, batch: HostBatch): StepResult {
  return td.tidy(() => stepBody(run, stateOf(run), batchFromList(batchTensorList(batch), batch), batch.t));
}

export function stateOf(run: TrainingRun): StepState {
  return { params: run.params, m: run.optimizer.m as UNetParams, v: run.optimizer.v as UNetParams, ema: run.ema };
}

/** Names of the state's tensors in a fixed order ("params.x", "m.x", "v.x", "ema.x"). */
function stateEntries(state: StepState): [string, td.Tensor][] {
  const parts: [string, td.TensorTreeOf | null][] = [["params", state.params], ["m", state.m], ["v", state.v], ["ema", state.ema]];
  return parts.flatMap(([prefix, tree]) => (tree ? [...td.flattenTree(tree, prefix)] : []));
}

function stateFromEntries(entries: Iterable<[string, td.Tensor]>): StepState {
  const tree = td.unflattenTree(entries) as { params: UNetParams; m: UNetParams; v: UNetParams; ema?: UNetParams };
  return { params: tree.params, m: tree.m, v: tree.v, ema: tree.ema ?? null };
}

/**
 * A training step captured on a recording backend: inputs are the state's tensors then the batch's; outputs
 * the new state then the stats. The state is fed back (td.captureStep's feedback): after each step it lives
 * in one of two sets of tensors, alternately, and those ARE the run's state; nothing is copied between steps.
 */
export class CapturedTrainStep {
  /** Every tensor the capture holds (both sets of its state, its slots, its stats). */
  readonly tensors: ReadonlySet<td.Tensor>;

  private constructor(
    private readonly step: td.CapturedStep,
    private readonly names: readonly string[],
    private readonly data: DigitsDataset,
    private readonly batchSize: number,
  ) {
    this.tensors = new Set(step.tensors);
  }

  /** Whether the run's step can be captured (float32 state; the backend records: td.canCapture()). */
  static possible(run: TrainingRun): boolean {
    return stateEntries(stateOf(run)).every(([, t]) => t.dtype === "float32");
  }

  /** Captures the body on the run's state and this batch: runs step run.step once (the capture runs it). */
  static capture(run: TrainingRun, data: DigitsDataset, batch: HostBatch): { capture: CapturedTrainStep; result: StepResult } {
    const state = stateEntries(stateOf(run));
    const names = state.map(([name]) => name);
    const initial = td.tidy(() => batchTensorList(batch));
    let step: td.CapturedStep;
    try {
      step = td.captureStep((inputs) => {
        const stateIn = stateFromEntries(names.map((name, i) => [name, inputs[i]!]));
        const batchIn = batchFromList(inputs.slice(names.length), batch);
        const out = stepBody(run, stateIn, batchIn, batch.t);
        const outEntries = new Map(stateEntries(out));
        return [...names.map((name) => outEntries.get(name)!), out.stats];
      }, [...state.map(([, t]) => t), ...initial], { feedback: names.map((_, i) => [i, i] as const) });
    } finally {
      td.dispose(initial);
    }
    const capture = new CapturedTrainStep(step, names, data, batch.batchSize);
    return { capture, result: capture.result() };
  }

  /** Whether the run's state is this capture's output (nothing replaced it) and the batch fits. */
  fits(run: TrainingRun, data: DigitsDataset, batch: HostBatch): boolean {
    if (data !== this.data || batch.batchSize !== this.batchSize) return false;
    const state = stateEntries(stateOf(run));
    const outputs = this.step.outputs; // (a getter that builds the array)
    return state.length === this.names.length && state.every(([name, t], i) => name === this.names[i] && t === outputs[i]);
  }

  /** Step run.step by replay: the batch written; the state read where the last step wrote it (fed back). */
  replay(batch: HostBatch): StepResult {
    const values: td.ReplayInput[] = [...this.names.map(() => null), ...batchInputs(batch).map((input) => input.value)];
    this.step.replay(values);
    return this.result();
  }

  private result(): StepResult {
    const outputs = this.step.outputs;
    const state = stateFromEntries(this.names.map((name, i) => [name, outputs[i]!]));
    return { ...state, stats: outputs[this.names.length]! };
  }

  /** Frees the recording, its inputs and its outputs (the run's state, if it still uses them). */
  dispose(): void {
    this.step.dispose();
  }
}
