// Loading a trained model from a run or checkpoint folder, for sampling.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Tensor } from "../engine/index.ts";
import type { NoiseModel, TimestepTensorModel } from "../diffusion/sample.ts";
import { isCheckpointDir, loadCheckpoint } from "../io/checkpoint.ts";
import { unetForward, type Timesteps, type UNetParams } from "../nn/unet.ts";
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

/** The U-Net as sample() takes it: timesteps as host numbers (`model`) or a tensor (`replayModel`). */
export function noiseModel(params: UNetParams): NoiseModel & TimestepTensorModel {
  return (x: Tensor, t: Timesteps, labels?: Int32Array) => unetForward(params, x, t, { labels });
}
