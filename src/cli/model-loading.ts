// Loading a trained model from a run or checkpoint folder, for sampling.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { NoiseModel } from "../diffusion/sample.ts";
import { isCheckpointDir, loadCheckpoint } from "../io/checkpoint.ts";
import { unetForward, type UNetParams } from "../nn/unet.ts";
import { modelFromCheckpoint, type LoadedModel, type TrainingCheckpoint } from "../train/saved-model.ts";
import { UserError } from "./errors.ts";

export type { LoadedModel } from "../train/saved-model.ts";

export function resolveCheckpointDir(path: string): string {
  if (isCheckpointDir(path)) return path;
  const inner = join(path, "checkpoint");
  if (isCheckpointDir(inner)) return inner;
  throw new UserError(existsSync(path) ? `${path} is not a checkpoint or run folder (no checkpoint.json)` : `${path} does not exist`);
}

export function loadModel(path: string, options: { rawWeights?: boolean } = {}): LoadedModel {
  const dir = resolveCheckpointDir(path);
  const contents: TrainingCheckpoint = loadCheckpoint(dir, { withTraining: !options.rawWeights });
  return modelFromCheckpoint(dir, contents, options);
}

export function noiseModel(params: UNetParams): NoiseModel {
  return (x, t, labels) => unetForward(params, x, t, { labels });
}
