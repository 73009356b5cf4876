// The training loop: one tidy scope per step (memory stays flat), randomness derived from
// (seed, step) alone (so a resumed run equals an uninterrupted one), checkpoints on a schedule. The step's
// work is in step.ts; on WebGPU it is captured once and replayed (the same numbers).
import * as td from "../engine/index.ts";
import type { DigitsDataset } from "../data/digits.ts";
import { makeSchedule, type NoiseSchedule } from "../diffusion/schedules.ts";
import { initUNet, type UNetParams } from "../nn/unet.ts";
import type { TrainConfig } from "./config.ts";
import { initEma } from "./ema.ts";
import { initOptimizerState, optimizerStateFromTensors, optimizerStateTensors, type OptimizerState } from "./optimizer.ts";
import { CapturedTrainStep, eagerStep, hostBatch, type StepResult } from "./step.ts";

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

/** A recorded step: its results (the new state and the stats) and the lr it used. */
interface RecordedStep extends StepResult {
  lr: number;
  /**
   * The capture whose tensors these are (its stats, and the state it replaces: the state alternates between
   * two of its sets), or null for an eager step, whose tensors are the caller's.
   */
  capture: CapturedTrainStep | null;
}

/** The captured step of each run on a recording backend (see step.ts). */
const captures = new WeakMap<TrainingRun, CapturedTrainStep>();

/** Options of trainStep and startTrainStep. */
export interface TrainStepOptions {
  /**
   * On a backend that records (WebGPU): capture the step once and replay it (default true). The numbers are
   * the same either way; a replay re-encodes the recorded commands instead of running the frontend.
   */
  replay?: boolean;
}

/**
 * Records one step (forward, backward with the penalty, optimizer, EMA) without reading anything back, and
 * submits it. The run is not touched (a replayed step's outputs are the run's state only once committed).
 */
function recordStep(run: TrainingRun, data: DigitsDataset, options: TrainStepOptions): RecordedStep {
  const batch = hostBatch(run, data);
  const replay = (options.replay ?? true) && td.canCapture();
  const existing = captures.get(run);
  if (replay && existing?.fits(run, data, batch)) return { ...existing.replay(batch), lr: batch.lr, capture: existing };
  // Any other step makes the run's state its own again (copied out of the capture), then replaces it.
  if (existing) releaseCapture(run, existing);
  if (replay && CapturedTrainStep.possible(run)) {
    const { capture, result } = CapturedTrainStep.capture(run, data, batch);
    captures.set(run, capture);
    return { ...result, lr: batch.lr, capture };
  }
  const result = eagerStep(run, batch);
  td.getBackend().flush();
  return { ...result, lr: batch.lr, capture: null };
}

/** Drops a capture the run no longer uses as it is: the run's tensors it holds are copied first. */
function releaseCapture(run: TrainingRun, capture: CapturedTrainStep): void {
  captures.delete(run);
  const held = capture.tensors;
  const own = <T extends td.TensorTreeOf>(tree: T): T => td.mapTree(tree, (t) => (held.has(t) ? td.keep(td.noGrad(() => td.stopGradient(t))) : t));
  run.params = own(run.params);
  run.optimizer = { step: run.optimizer.step, m: own(run.optimizer.m), v: own(run.optimizer.v) };
  if (run.ema) run.ema = own(run.ema);
  capture.dispose();
}

/** Frees a run's tensors (weights, moments, EMA) and its captured step. The run is unusable afterwards. */
export function disposeRun(run: TrainingRun): void {
  const capture = captures.get(run);
  captures.delete(run);
  capture?.dispose();
  td.dispose([run.params, run.optimizer.m, run.optimizer.v, run.ema]);
}

/** Makes the recorded step the run's state (all at once) and frees what it replaced. */
function commitStep(run: TrainingRun, recorded: RecordedStep): void {
  const old = { params: run.params, optimizer: run.optimizer, ema: run.ema };
  run.params = td.keep(recorded.params);
  run.optimizer = { step: run.optimizer.step + 1, m: td.keep(recorded.m), v: td.keep(recorded.v) };
  run.ema = recorded.ema ? td.keep(recorded.ema) : null;
  disposeReplaced(old, run, recorded.capture?.tensors);
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
 * loss history), so it never holds half a step; if the read fails, the run is left as it was (an eager
 * step; a replayed one has rewritten the state: discard the run, as after a lost device). Await each step
 * before the next: steps on one run must not overlap (startTrainStep's reports are awaited first).
 * On a recording backend (WebGPU) the run's tensors are its captured step's from the first step on, and
 * alternate between two sets each step: take them from the run after each step, not before.
 */
export async function trainStep(run: TrainingRun, data: DigitsDataset, options: TrainStepOptions = {}): Promise<StepReport> {
  await reportsInFlight.get(run);
  const recorded = recordStep(run, data, options);
  let values: td.TypedArray;
  try {
    values = await recorded.stats.read();
  } catch (e) {
    // An eager step: the run keeps the old generation. (A replayed one rewrote it in place: discard the run.)
    if (!recorded.capture) disposeReplaced({ params: recorded.params, m: recorded.m, v: recorded.v, ema: recorded.ema }, run);
    throw e;
  } finally {
    if (!recorded.capture) recorded.stats.dispose();
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
export function startTrainStep(run: TrainingRun, data: DigitsDataset, options: TrainStepOptions = {}): Promise<StepReport> {
  const recorded = recordStep(run, data, options);
  const values = recorded.stats.read(); // the values as of this point of the stream
  if (!recorded.capture) recorded.stats.dispose();
  commitStep(run, recorded);
  const step = run.step;
  // After the previous report (a failed one fails every later one: the history must not skip a step).
  const report = Promise.all([values, reportsInFlight.get(run)]).then(([v]) => reportStep(run, step, recorded.lr, v));
  void report.catch(() => undefined); // the caller gets the failure; this only keeps it from being "unhandled"
  reportsInFlight.set(run, report);
  return report;
}

/** Frees tensors of the previous state that the new state does not reuse (nor `keep` names). */
function disposeReplaced(old: object, now: object, keep: ReadonlySet<td.Tensor> = new Set()): void {
  const live = new Set<td.Tensor>(keep);
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
