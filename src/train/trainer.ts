// The training loop: one tidy scope per step (memory stays flat), randomness derived from
// (seed, step) alone (so a resumed run equals an uninterrupted one), checkpoints on a schedule.
import * as td from "../engine/index.ts";
import type { DigitsDataset } from "../data/digits.ts";
import { makeSchedule, type NoiseSchedule } from "../diffusion/schedules.ts";
import { initUNet, unetForward, type UNetParams } from "../nn/unet.ts";
import type { TrainConfig } from "./config.ts";
import { diffusionLoss } from "./loss.ts";
import { emaUpdate, initEma } from "./ema.ts";
import { initOptimizerState, optimizerStateFromTensors, optimizerStateTensors, optimizerStep, type OptimizerState } from "./optimizer.ts";
import { sampleProgressiveTimesteps, sampleUniformTimesteps } from "./timestep-sampling.ts";

export interface TrainingRun {
  config: TrainConfig;
  schedule: NoiseSchedule;
  params: UNetParams;
  optimizer: OptimizerState;
  ema: UNetParams | null;
  /** Steps done so far. */
  step: number;
  /** The tutorial's smoothed loss (EMA with 0.99) after each step. */
  lossHistory: number[];
}

export interface StepReport {
  step: number;
  loss: number;
  smoothedLoss: number;
  lr: number;
  gradNorm: number;
}

/** JSON part of a checkpoint; the tensors go to safetensors. */
export interface TrainingCheckpointState {
  optimizerStep: number;
  lossHistory: number[];
}

export function newRun(config: TrainConfig): TrainingRun {
  const params = td.keep(initUNet(modelConfigOf(config), td.random.foldIn(td.random.key(config.seed), 0xc0ffee)));
  return {
    config,
    schedule: makeSchedule(config.schedule),
    params,
    optimizer: td.keep(initOptimizerState(params)),
    ema: config.emaDecay === null ? null : td.keep(initEma(params)),
    step: 0,
    lossHistory: [],
  };
}

export function modelConfigOf(config: TrainConfig) {
  return { ...config.model, numClasses: config.conditional ? 10 : 0 };
}

/** Per-step randomness: a key that depends on (seed, step) only. */
function stepKeys(config: TrainConfig, step: number): [td.random.RandomKey, td.random.RandomKey, td.random.RandomKey, td.random.RandomKey] {
  const key = td.random.foldIn(td.random.key(config.seed), step + 1);
  return td.random.split(key, 4) as [td.random.RandomKey, td.random.RandomKey, td.random.RandomKey, td.random.RandomKey];
}

/** Indices of the batch: everything (tutorial), or a random subset without replacement. */
function batchIndices(count: number, batchSize: number | "full", key: td.random.RandomKey): Int32Array {
  if (batchSize === "full" || batchSize >= count) return Int32Array.from({ length: count }, (_, i) => i);
  const u = td.random.uniformArray(key, count);
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => u[a]! - u[b]!);
  return Int32Array.from(order.slice(0, batchSize));
}

interface RecordedStep {
  /** [loss, grad norm]: one read brings both back. */
  stats: td.Tensor;
  params: UNetParams;
  optimizer: OptimizerState;
  ema: UNetParams | null;
  lr: number;
}

/**
 * Records one step (forward, backward with the penalty, optimizer, EMA) inside one tidy scope without
 * reading anything back, and submits it (backend flush()). The run is not touched.
 */
function recordStep(run: TrainingRun, data: DigitsDataset): RecordedStep {
  const { config, schedule } = run;
  const [kBatch, kTime, kNoise, kLabel] = stepKeys(config, run.step);
  const idx = batchIndices(data.count, config.batchSize, kBatch);
  const b = idx.length;
  const T = schedule.numSteps;
  const uniform = (key: td.random.RandomKey) => (n: number) => td.random.uniformArray(key, n);
  const t = config.timesteps === "progressive"
    ? sampleProgressiveTimesteps(run.step, config.steps - 1, T, b, uniform(kTime))
    : sampleUniformTimesteps(T, b, uniform(kTime));
  let labels: Int32Array | undefined;
  if (config.conditional) {
    const drop = td.random.uniformArray(kLabel, b);
    labels = Int32Array.from(idx, (i, k) => (drop[k]! < config.labelDropout ? -1 : data.labels[i]!));
  }
  const pixels = new Float32Array(b * 64);
  idx.forEach((i, k) => pixels.set(data.images.subarray(i * 64, (i + 1) * 64), k * 64));

  const recorded = td.tidy(() => {
    const images = td.tensor(pixels, [b, 8, 8, 1]);
    const noise = td.random.normal(kNoise, [b, 8, 8, 1]);
    const model = (p: UNetParams, x: td.Tensor, tt: Int32Array, l?: Int32Array) => unetForward(p, x, tt, { labels: l });
    // An inner scope frees the forward activations before the optimizer allocates its results.
    const { value, grads } = td.tidy(() => td.valueAndGrad((p: UNetParams) =>
      diffusionLoss(model, p, {
        images, t, noise, labels,
        sqrtAlphaCumulative: schedule.sqrtAlphaCumulative,
        sqrtOneMinusAlphaCumulative: schedule.sqrtOneMinusAlphaCumulative,
      }, { penaltyWeight: config.penaltyWeight }).total,
    )(run.params));
    const update = td.noGrad(() => optimizerStep(run.params, grads, run.optimizer, config.optimizer));
    const ema = run.ema && config.emaDecay !== null
      ? td.noGrad(() => emaUpdate(run.ema!, update.params, run.step, { decay: config.emaDecay! }))
      : null;
    const stats = td.concat([td.reshape(value, [1]), td.reshape(td.cast(update.gradNorm, value.dtype), [1])], 0);
    return { stats, params: update.params, optimizer: update.state, ema, lr: update.lr };
  });
  td.getBackend().flush();
  return recorded;
}

/** Makes the recorded step the run's state (all at once) and frees what it replaced. */
function commitStep(run: TrainingRun, recorded: RecordedStep): void {
  const old = { params: run.params, optimizer: run.optimizer, ema: run.ema };
  run.params = td.keep(recorded.params);
  run.optimizer = td.keep(recorded.optimizer);
  run.ema = recorded.ema ? td.keep(recorded.ema) : null;
  disposeReplaced(old, run);
  // A device backend: settle the old generation's buffers now, so the next step's buffer assignment repeats
  // this one's more often and finds its GPU bind groups cached (bench/webgpu-host.ts). A no-op on the CPU.
  td.getBackend().flush();
  run.step++;
}

/** Appends the step's loss to the history and makes its report. */
function reportStep(run: TrainingRun, step: number, lr: number, values: ArrayLike<number>): StepReport {
  const [loss, gradNorm] = [values[0]!, values[1]!];
  const previous = run.lossHistory[run.lossHistory.length - 1];
  const smoothed = previous === undefined ? loss : 0.99 * previous + 0.01 * loss;
  run.lossHistory.push(smoothed);
  return { step, loss, smoothedLoss: smoothed, lr, gradNorm };
}

/** The reports of startTrainStep not yet delivered, per run (delivered in step order). */
const reportsInFlight = new WeakMap<TrainingRun, Promise<unknown>>();

/**
 * One training step: recorded and submitted at once; only the loss and the gradient norm come back, in one
 * read of a 2-element tensor. The run is updated after that read, all at once (weights, moments, EMA, step,
 * loss history), so it never holds half a step; if the read fails, the run is left as it was. Await each
 * step before the next: steps on one run must not overlap (startTrainStep's reports are awaited first).
 */
export async function trainStep(run: TrainingRun, data: DigitsDataset): Promise<StepReport> {
  await reportsInFlight.get(run);
  const recorded = recordStep(run, data);
  let values: td.TypedArray;
  try {
    values = await recorded.stats.read();
  } catch (e) {
    disposeReplaced({ params: recorded.params, optimizer: recorded.optimizer, ema: recorded.ema }, run); // the run keeps the old generation
    throw e;
  } finally {
    recorded.stats.dispose();
  }
  commitStep(run, recorded);
  return reportStep(run, run.step, recorded.lr, values);
}

/**
 * A training step that does not wait for the device: it records and submits the step and advances the run at
 * once (weights, moments, EMA, step); the report, and the step's loss-history entry, follow when the device
 * has run it (in step order). So a device computes one step while the host records the next, as an
 * asynchronous loop of jitted JAX steps does. Await the reports before a checkpoint (the loss history is
 * complete then). If a read fails (a lost device), the run is ahead of its loss history: discard it.
 */
export function startTrainStep(run: TrainingRun, data: DigitsDataset): Promise<StepReport> {
  const recorded = recordStep(run, data);
  const values = recorded.stats.read(); // the values as of this point of the stream
  recorded.stats.dispose();
  commitStep(run, recorded);
  const step = run.step;
  // After the previous report (a failed one fails every later one: the history must not skip a step).
  const report = Promise.all([values, reportsInFlight.get(run)]).then(([v]) => reportStep(run, step, recorded.lr, v));
  void report.catch(() => undefined); // the caller gets the failure; this only keeps it from being "unhandled"
  reportsInFlight.set(run, report);
  return report;
}

/** Frees tensors of the previous state that the new state does not reuse. */
function disposeReplaced(old: object, now: object): void {
  const live = new Set<td.Tensor>();
  collect(now, live);
  const stale = new Set<td.Tensor>();
  collect(old, stale);
  for (const t of stale) if (!live.has(t)) t.dispose();
}

function collect(tree: unknown, into: Set<td.Tensor>): void {
  if (tree instanceof td.Tensor) into.add(tree);
  else if (tree && typeof tree === "object") for (const v of Object.values(tree)) collect(v, into);
}

/** Names -> tensors of everything a checkpoint must hold to resume exactly. */
export function trainingTensors(run: TrainingRun): Map<string, td.Tensor> {
  const out = optimizerStateTensors(run.optimizer);
  if (run.ema) for (const [name, t] of td.flattenTree(run.ema, "ema")) out.set(name, t);
  return out;
}

export function checkpointState(run: TrainingRun): TrainingCheckpointState {
  return { optimizerStep: run.optimizer.step, lossHistory: run.lossHistory };
}

/** Rebuilds a run from checkpoint tensors (already checked against the model's names and shapes). */
export function restoreRun(config: TrainConfig, step: number, state: TrainingCheckpointState, model: Map<string, td.Tensor>, training: Map<string, td.Tensor>): TrainingRun {
  const optimizerEntries = [...training].filter(([n]) => n.startsWith("m.") || n.startsWith("v."));
  const emaEntries = [...training].filter(([n]) => n.startsWith("ema.")).map(([n, t]) => [n.slice(4), t] as [string, td.Tensor]);
  const params = td.unflattenTree(model) as UNetParams;
  return {
    config,
    schedule: makeSchedule(config.schedule),
    params,
    optimizer: optimizerStateFromTensors(optimizerEntries, state.optimizerStep, params),
    ema: config.emaDecay !== null && emaEntries.length ? (td.unflattenTree(emaEntries) as UNetParams) : null,
    step,
    lossHistory: [...state.lossHistory],
  };
}

/** The weights to sample with: the EMA when there is one. */
export function samplingParams(run: TrainingRun): UNetParams {
  return run.ema ?? run.params;
}
