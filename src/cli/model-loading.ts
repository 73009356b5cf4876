// Loading a trained model from a run or checkpoint folder, for sampling.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as td from "../engine/index.ts";
import { makeSchedule, type NoiseSchedule } from "../diffusion/schedules.ts";
import type { NoiseModel } from "../diffusion/sample.ts";
import { checkTensorsMatch, isCheckpointDir, loadCheckpoint } from "../io/checkpoint.ts";
import { initUNet, unetForward, type UNetParams } from "../nn/unet.ts";
import type { TrainConfig } from "../train/config.ts";
import { modelConfigOf, type TrainingCheckpointState } from "../train/trainer.ts";
import { UserError } from "./errors.ts";

export interface LoadedModel {
  config: TrainConfig;
  params: UNetParams;
  schedule: NoiseSchedule;
  step: number;
  usedEma: boolean;
}

export function resolveCheckpointDir(path: string): string {
  if (isCheckpointDir(path)) return path;
  const inner = join(path, "checkpoint");
  if (isCheckpointDir(inner)) return inner;
  throw new UserError(existsSync(path) ? `${path} is not a checkpoint or run folder (no checkpoint.json)` : `${path} does not exist`);
}

export function loadModel(path: string, options: { rawWeights?: boolean } = {}): LoadedModel {
  const dir = resolveCheckpointDir(path);
  const { manifest, model, training } = loadCheckpoint<TrainConfig, TrainingCheckpointState>(dir, { withTraining: !options.rawWeights });
  const config = manifest.config;
  const expected = td.tidy(() => td.flattenTree(initUNet(modelConfigOf(config), td.random.key(0))));
  checkTensorsMatch(dir, "model", expected, model);
  const ema = new Map([...training].filter(([n]) => n.startsWith("ema.")).map(([n, t]) => [n.slice(4), t] as [string, td.Tensor]));
  const usedEma = ema.size > 0;
  if (usedEma) checkTensorsMatch(dir, "EMA weights", expected, ema);
  td.dispose([...expected.values()]);
  for (const [name, t] of training) if (!usedEma || !name.startsWith("ema.")) t.dispose();
  const params = td.unflattenTree(usedEma ? ema : model) as UNetParams;
  if (usedEma) td.dispose([...model.values()]);
  return { config, params, schedule: makeSchedule(config.schedule), step: manifest.step, usedEma };
}

export function noiseModel(params: UNetParams): NoiseModel {
  return (x, t, labels) => unetForward(params, x, t, { labels });
}
