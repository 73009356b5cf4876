// `tiny-diffusion train`: builds the config from a preset and flags, trains (or resumes),
// checkpoints atomically, and writes the run's pictures.
import { join } from "node:path";
import cliProgress from "cli-progress";
import * as td from "../engine/index.ts";
import { loadDigitsSplit } from "../data/digits-node.ts";
import { checkTensorsMatch, isCheckpointDir, loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { expectedModelTensors } from "../train/saved-model.ts";
import { PRESETS, validateTrainConfig, type PresetName, type TrainConfig } from "../train/config.ts";
import {
  checkpointState, newRun, restoreRun, startTrainStep, trainingTensors, type StepReport, type TrainingCheckpointState, type TrainingRun,
} from "../train/trainer.ts";
import { UserError } from "./errors.ts";

export interface TrainOptions {
  preset: PresetName;
  digit?: number | "all";
  features?: number;
  steps?: number;
  batch?: number | "full";
  seed?: number;
  penalty?: number;
  diffusionSteps?: number;
  conditional?: boolean;
  checkpointEvery?: number;
  out: string;
  resume: boolean;
  progress: boolean;
  log: (line: string) => void;
}

export function checkpointDirOf(runDir: string): string {
  return join(runDir, "checkpoint");
}

export function buildConfig(o: TrainOptions): TrainConfig {
  const base = PRESETS[o.preset];
  const config: TrainConfig = structuredClone(base);
  if (o.features !== undefined) config.model.features = o.features;
  if (o.digit !== undefined) config.digit = o.digit;
  if (o.steps !== undefined) config.steps = o.steps;
  if (o.batch !== undefined) config.batchSize = o.batch;
  if (o.seed !== undefined) config.seed = o.seed;
  if (o.penalty !== undefined) config.penaltyWeight = o.penalty;
  if (o.diffusionSteps !== undefined) config.schedule = { ...config.schedule, numSteps: o.diffusionSteps };
  if (o.conditional !== undefined) config.conditional = o.conditional;
  if (config.conditional && config.labelDropout === 0) config.labelDropout = 0.1;
  if (o.checkpointEvery !== undefined) config.checkpointEvery = o.checkpointEvery;
  // A shorter or longer run stretches the LR schedule with it.
  if (o.steps !== undefined) {
    const lr = config.optimizer.lr;
    const scale = o.steps / base.steps;
    config.optimizer = { ...config.optimizer, lr: { ...lr, totalSteps: Math.max(1, Math.round(lr.totalSteps * scale)), warmupSteps: Math.round(lr.warmupSteps * scale) } };
  }
  try {
    validateTrainConfig(config);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  return config;
}

function resumeRun(dir: string, o: TrainOptions): TrainingRun {
  if (!isCheckpointDir(dir)) throw new UserError(`--resume: no checkpoint in ${dir}`);
  const { manifest, model, training } = loadCheckpoint<TrainConfig, TrainingCheckpointState>(dir, { withTraining: true });
  const config = manifest.config;
  // Only the step count may change on resume; anything else would silently train a different run.
  const conflicts: string[] = [];
  if (o.features !== undefined && o.features !== config.model.features) conflicts.push(`--features ${o.features} (checkpoint: ${config.model.features})`);
  if (o.digit !== undefined && o.digit !== config.digit) conflicts.push(`--digit ${o.digit} (checkpoint: ${config.digit})`);
  if (o.batch !== undefined && o.batch !== config.batchSize) conflicts.push(`--batch ${o.batch} (checkpoint: ${config.batchSize})`);
  if (o.seed !== undefined && o.seed !== config.seed) conflicts.push(`--seed ${o.seed} (checkpoint: ${config.seed})`);
  if (o.penalty !== undefined && o.penalty !== config.penaltyWeight) conflicts.push(`--penalty ${o.penalty} (checkpoint: ${config.penaltyWeight})`);
  if (o.diffusionSteps !== undefined && o.diffusionSteps !== config.schedule.numSteps) conflicts.push(`--diffusion-steps ${o.diffusionSteps} (checkpoint: ${config.schedule.numSteps})`);
  if (conflicts.length) throw new UserError(`--resume: options differ from the checkpoint: ${conflicts.join(", ")}`);
  if (o.steps !== undefined) config.steps = o.steps;
  const expected = expectedModelTensors(config);
  try {
    checkTensorsMatch(dir, "model", expected, model);
  } finally {
    td.dispose([...expected.values()]);
  }
  return restoreRun(config, manifest.step, manifest.state, model, training);
}

export async function runTraining(o: TrainOptions): Promise<{ run: TrainingRun; seconds: number }> {
  const dir = checkpointDirOf(o.out);
  if (!o.resume && isCheckpointDir(dir)) {
    throw new UserError(`${o.out} already holds a run; pass --resume to continue it or choose another --out`);
  }
  const run = o.resume ? resumeRun(dir, o) : newRun(buildConfig(o));
  const { config } = run;
  const split = loadDigitsSplit(config.digit);
  const data = split.train;
  const params = td.treeSize(run.params);
  o.log(
    `training ${config.model.features}-feature U-Net (${params.toLocaleString("en-US")} weights, all trained) on ${data.count} images of digit ${config.digit}` +
      `, batch ${config.batchSize}, steps ${run.step} -> ${config.steps}, penalty ${config.penaltyWeight}, backend ${td.getBackend().name}`,
  );
  const bar = o.progress && process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: "train [{bar}] {value}/{total} | loss {loss} | ETA {eta_formatted}", hideCursor: true }, cliProgress.Presets.shades_classic)
    : null;
  bar?.start(config.steps, run.step, { loss: "-" });
  const started = performance.now();
  const save = () => saveCheckpoint(dir, run.step, run.config, checkpointState(run), td.flattenTree(run.params), trainingTensors(run));
  const handle = (report: StepReport): void => {
    if (!Number.isFinite(report.loss)) {
      bar?.stop();
      throw new UserError(`training diverged at step ${report.step} (loss ${report.loss}); the last good checkpoint is in ${dir}`);
    }
    bar?.update(report.step, { loss: report.smoothedLoss.toFixed(4) });
    // The tutorial logs its smoothed loss every 100 epochs, counting from 0.
    if ((report.step - 1) % 100 === 0 || report.step === config.steps) {
      const line = `step ${report.step - 1}, loss ${report.smoothedLoss.toFixed(4)}, lr ${report.lr.toExponential(2)}`;
      if (bar) bar.updateETA(); else o.log(line);
    }
  };
  // Two steps in flight: a device runs step k while the host records step k + 1 (startTrainStep).
  let inFlight: Promise<StepReport> | null = null;
  while (run.step < config.steps) {
    const next = startTrainStep(run, data);
    if (inFlight) handle(await inFlight);
    inFlight = next;
    if (run.step % config.checkpointEvery === 0 || run.step === config.steps) {
      handle(await inFlight); // the loss history is complete up to run.step
      inFlight = null;
      await save();
    }
  }
  if (inFlight) handle(await inFlight);
  bar?.stop();
  const seconds = (performance.now() - started) / 1000;
  o.log(`trained in ${seconds.toFixed(1)} s; checkpoint: ${dir}`);
  return { run, seconds };
}
