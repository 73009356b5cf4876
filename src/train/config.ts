// Training configuration as plain data (saved in every checkpoint), and the named presets.
import type { UNetConfig } from "../nn/unet.ts";
import type { ScheduleConfig } from "../diffusion/schedules.ts";
import { TUTORIAL_OPTIMIZER, type OptimizerConfig } from "./optimizer.ts";

export interface TrainConfig {
  model: UNetConfig;
  schedule: ScheduleConfig;
  optimizer: OptimizerConfig;
  /** Weight of the gradient penalty (the tutorial: 0.02); 0 skips the double backward pass. */
  penaltyWeight: number;
  /** Which digits to learn: one class (the tutorial: 1) or all ten. */
  digit: number | "all";
  /** Learn p(x | label) with label dropout, for classifier-free guidance (needs digit "all"). */
  conditional: boolean;
  /** Fraction of labels replaced by "no label" while training a conditional model. */
  labelDropout: number;
  steps: number;
  /** Images per step; "full" = the whole training set every step, as the tutorial. */
  batchSize: number | "full";
  /** "progressive" = the tutorial's weighting that shifts toward small t; "uniform" = plain DDPM. */
  timesteps: "progressive" | "uniform";
  seed: number;
  /** Decay of the EMA of the weights used for sampling; null = sample with the raw weights. */
  emaDecay: number | null;
  checkpointEvery: number;
}

export type PresetName = "quick" | "tutorial";

/** The tutorial's hyper-parameters, with all weights trained and one schedule for training and sampling. */
export const TUTORIAL_PRESET: TrainConfig = {
  model: { inChannels: 1, outChannels: 1, features: 64, timeEmbDim: 128 },
  schedule: { kind: "tutorial-cosine", numSteps: 1000, betaStart: 1e-4, betaEnd: 0.02 },
  optimizer: TUTORIAL_OPTIMIZER,
  penaltyWeight: 0.02,
  digit: 1,
  conditional: false,
  labelDropout: 0,
  // The tutorial's loop runs num_epochs + 1 = 5001 full-batch steps.
  steps: 5001,
  batchSize: "full",
  timesteps: "progressive",
  seed: 42,
  emaDecay: null,
  checkpointEvery: 500,
};

/**
 * Good 1s in a few minutes on a 2-core CPU: a smaller U-Net, the correct cosine schedule, uniform
 * timesteps, no gradient penalty (it is ~1e-8 of the loss and triples the cost), a higher LR with a
 * short warm-up, and EMA weights for sampling.
 */
export const QUICK_PRESET: TrainConfig = {
  model: { inChannels: 1, outChannels: 1, features: 8, timeEmbDim: 128 },
  schedule: { kind: "cosine", numSteps: 1000 },
  optimizer: { ...TUTORIAL_OPTIMIZER, lr: { peak: 2e-3, warmupSteps: 100, totalSteps: 1500, alpha: 0.05 } },
  penaltyWeight: 0,
  digit: 1,
  conditional: false,
  labelDropout: 0,
  steps: 1500,
  batchSize: 64,
  timesteps: "uniform",
  seed: 0,
  emaDecay: 0.995,
  checkpointEvery: 500,
};

export const PRESETS: Record<PresetName, TrainConfig> = { quick: QUICK_PRESET, tutorial: TUTORIAL_PRESET };

export function validateTrainConfig(c: TrainConfig): void {
  const fail = (what: string): never => {
    throw new Error(`invalid training config: ${what}`);
  };
  if (!Number.isInteger(c.model.features) || c.model.features < 1) fail(`features must be a positive integer, got ${c.model.features}`);
  if (!Number.isInteger(c.steps) || c.steps < 1) fail(`steps must be a positive integer, got ${c.steps}`);
  if (c.batchSize !== "full" && (!Number.isInteger(c.batchSize) || c.batchSize < 1)) fail(`batch must be a positive integer or "full", got ${c.batchSize}`);
  if (c.digit !== "all" && (!Number.isInteger(c.digit) || c.digit < 0 || c.digit > 9)) fail(`digit must be 0-9 or "all", got ${c.digit}`);
  if (c.conditional && c.digit !== "all") fail("a conditional model needs --digit all");
  if (!(c.labelDropout >= 0 && c.labelDropout < 1)) fail(`labelDropout must be in [0, 1), got ${c.labelDropout}`);
  if (!Number.isInteger(c.seed) || c.seed < 0) fail(`seed must be a non-negative integer, got ${c.seed}`);
  if (!(c.penaltyWeight >= 0)) fail(`penaltyWeight must be >= 0, got ${c.penaltyWeight}`);
  if (c.emaDecay !== null && !(c.emaDecay > 0 && c.emaDecay < 1)) fail(`emaDecay must be in (0, 1), got ${c.emaDecay}`);
  if (!Number.isInteger(c.checkpointEvery) || c.checkpointEvery < 1) fail(`checkpointEvery must be a positive integer`);
}
