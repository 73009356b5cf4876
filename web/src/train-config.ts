// The in-browser training run's config: the CLI's quick preset with the page's choices applied the way
// `tiny-diffusion train` applies its flags (src/cli/train-command.ts buildConfig), so a downloaded
// checkpoint resumes with `tiny-diffusion train --resume` like any other.
import { QUICK_PRESET, validateTrainConfig, type TrainConfig } from "../../src/train/config.ts";

export interface TrainOptions {
  digit: number | "all";
  features: number;
  batch: number;
  steps: number;
  seed: number;
  /** Draw a grid of samples every this many steps (0 = only at the end). */
  sampleEvery: number;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = { digit: 1, features: 4, batch: 32, steps: 300, seed: 0, sampleEvery: 50 };

export function buildTrainConfig(o: TrainOptions): TrainConfig {
  const base = QUICK_PRESET;
  const config: TrainConfig = structuredClone(base);
  config.model.features = o.features;
  config.digit = o.digit;
  config.steps = o.steps;
  config.batchSize = o.batch;
  config.seed = o.seed;
  config.checkpointEvery = o.steps;
  // A shorter or longer run stretches the LR schedule with it (as the CLI's --steps does).
  const lr = config.optimizer.lr;
  const scale = o.steps / base.steps;
  config.optimizer = {
    ...config.optimizer,
    lr: { ...lr, totalSteps: Math.max(1, Math.round(lr.totalSteps * scale)), warmupSteps: Math.round(lr.warmupSteps * scale) },
  };
  validateTrainConfig(config);
  return config;
}
