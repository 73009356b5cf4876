// Sampling for the page: what `tiny-diffusion sample` does (src/cli/sample-command.ts generateImages),
// plus the real intermediate states x_t for the animation and, optionally, sample()'s clipDenoised.
// With clip off the result equals the CLI's bit for bit (test/web checks it).
import * as td from "../../src/engine/index.ts";
import { initialNoise, sample, type NoiseModel } from "../../src/diffusion/sample.ts";
import { samplerTimesteps, type SamplerConfig } from "../../src/diffusion/samplers.ts";
import type { NoiseSchedule } from "../../src/diffusion/schedules.ts";
import { unetForward, type UNetParams } from "../../src/nn/unet.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import type { SamplerChoice } from "./protocol.ts";

export interface Frame {
  /** 0 = the initial noise x_{T-1}; k = the state after reverse step k. */
  index: number;
  steps: number;
  /** Timestep of this state (-1 = the final sample). */
  t: number;
  /** A copy of the state, N*64 values (pixel/16 units, not clipped). */
  images: Float32Array;
}

export function samplerConfig(choice: SamplerChoice): SamplerConfig {
  return { kind: choice.kind, ...(choice.steps !== undefined ? { steps: choice.steps } : {}) };
}

export function isConditional(config: TrainConfig): boolean {
  return (config.model.numClasses ?? 0) > 0 || config.conditional;
}

/**
 * N samples as float32 [N, 8, 8], clipped to [0, 1]; calls onFrame with every state from the noise to the
 * sample. Conditional models get labels 0..9 in turn with guidance 2 (the CLI's defaults).
 */
export function generateImages(
  params: UNetParams, schedule: NoiseSchedule, config: TrainConfig, choice: SamplerChoice, n: number, seed: number,
  onFrame?: (frame: Frame) => void,
): Float32Array {
  const sampler = samplerConfig(choice);
  const conditional = isConditional(config);
  const labels = conditional ? Array.from({ length: n }, (_, i) => i % 10) : undefined;
  const model: NoiseModel = (x, t, l) => unetForward(params, x, t, { labels: l });
  const key = td.random.key(seed);
  const shape = [n, 8, 8, 1];
  const timesteps = samplerTimesteps(sampler, schedule);
  return td.tidy(() => {
    // sample() starts from initialNoise(key, shape) when given no x: passing it in changes nothing but lets
    // the animation show it.
    const x0 = initialNoise(key, shape);
    onFrame?.({ index: 0, steps: timesteps.length, t: timesteps[0]!, images: x0.toTypedArray() as Float32Array });
    const x = sample({
      model, schedule, sampler, shape, key, x: x0, labels, clipDenoised: choice.clip ?? false,
      guidanceScale: conditional ? 2 : undefined,
      onStep: (info) => onFrame?.({ index: info.index + 1, steps: info.steps, t: info.tPrev, images: info.x.toTypedArray() as Float32Array }),
    });
    return Float32Array.from(x.data, (v) => Math.min(1, Math.max(0, v)));
  });
}
