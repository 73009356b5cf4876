// A trained model from checkpoint contents (however they were read: a folder, a zip, picked files),
// with every tensor checked against the U-Net its config describes. EMA weights are preferred.
import * as td from "../engine/index.ts";
import { makeSchedule, type NoiseSchedule } from "../diffusion/schedules.ts";
import { checkTensorsMatch, type CheckpointContents } from "../io/checkpoint-format.ts";
import { initUNet, type UNetParams } from "../nn/unet.ts";
import type { TrainConfig } from "./config.ts";
import { modelConfigOf, type TrainingCheckpointState } from "./trainer.ts";

export type TrainingCheckpoint = CheckpointContents<TrainConfig, TrainingCheckpointState>;

export interface LoadedModel {
  config: TrainConfig;
  params: UNetParams;
  schedule: NoiseSchedule;
  step: number;
  usedEma: boolean;
}

/** Names and shapes of the weights a config's U-Net has (fresh tensors; the caller disposes them). */
export function expectedModelTensors(config: TrainConfig): Map<string, td.Tensor> {
  return td.tidy(() => td.flattenTree(initUNet(modelConfigOf(config), td.random.key(0))));
}

/** Takes ownership of the checkpoint's tensors: the ones not returned are disposed. */
export function modelFromCheckpoint(where: string, contents: TrainingCheckpoint, options: { rawWeights?: boolean } = {}): LoadedModel {
  const { manifest, model, training } = contents;
  const config = manifest.config;
  if (!config?.model || !config?.schedule) throw new Error(`checkpoint ${where}: checkpoint.json has no model or schedule config`);
  const expected = expectedModelTensors(config);
  try {
    checkTensorsMatch(where, "model", expected, model);
    const ema = new Map([...training].filter(([n]) => n.startsWith("ema.")).map(([n, t]) => [n.slice(4), t] as [string, td.Tensor]));
    const usedEma = !options.rawWeights && ema.size > 0;
    if (usedEma) checkTensorsMatch(where, "EMA weights", expected, ema);
    const chosen = usedEma ? ema : model;
    const kept = new Set(chosen.values());
    for (const t of [...model.values(), ...training.values()]) if (!kept.has(t)) t.dispose();
    return { config, params: td.unflattenTree(chosen) as UNetParams, schedule: makeSchedule(config.schedule), step: manifest.step, usedEma };
  } finally {
    td.dispose([...expected.values()]);
  }
}
