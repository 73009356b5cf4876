// Sampling for the page: what `tiny-diffusion sample` does (src/cli/sample-command.ts generateImages),
// plus the real intermediate states x_t for the animation and, optionally, sample()'s clipDenoised.
// With clip off the result equals the CLI's bit for bit (test/web checks it).
import * as td from "../../src/engine/index.ts";
import { initialNoise, sample, type NoiseModel, type TimestepTensorModel } from "../../src/diffusion/sample.ts";
import { samplerTimesteps, type SamplerConfig } from "../../src/diffusion/samplers.ts";
import type { NoiseSchedule } from "../../src/diffusion/schedules.ts";
import { unetForward, type Timesteps, type UNetParams } from "../../src/nn/unet.ts";
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
 * The values of a sampler state, for a frame. On a host backend (CPU, Wasm) the copy is taken now and the
 * frame can go to the page while the worker computes the next step (the sampler's loop is synchronous, so a
 * promise would only settle after the last step and the animation would start at the end). On a device
 * backend (WebGPU) `read()` is the only way: it captures the values now and settles once the GPU has run the
 * step; the loop only records GPU work, so the frames stream in while the GPU computes.
 */
function frameValues(x: td.Tensor): Float32Array | Promise<Float32Array> {
  return x.isHost ? (x.toTypedArray() as Float32Array) : (x.read() as Promise<Float32Array>);
}

/**
 * N samples as float32 [N, 8, 8], clipped to [0, 1]; calls onFrame, in order, with every state from the noise
 * to the sample (all frames are delivered before the promise settles). Conditional models get labels 0..9 in
 * turn with guidance 2 (the CLI's defaults).
 */
export async function generateImages(
  params: UNetParams, schedule: NoiseSchedule, config: TrainConfig, choice: SamplerChoice, n: number, seed: number,
  onFrame?: (frame: Frame) => void,
): Promise<Float32Array> {
  const sampler = samplerConfig(choice);
  const conditional = isConditional(config);
  const labels = conditional ? Array.from({ length: n }, (_, i) => i % 10) : undefined;
  // Timesteps as numbers or a tensor: on WebGPU sample() records one step and replays it for the others.
  const model: NoiseModel & TimestepTensorModel = (x: td.Tensor, t: Timesteps, l?: Int32Array) => unetForward(params, x, t, { labels: l });
  const key = td.random.key(seed);
  const shape = [n, 8, 8, 1];
  const timesteps = samplerTimesteps(sampler, schedule);
  // Frames are handed over in order, each as soon as its values are here.
  let delivered: Promise<void> = Promise.resolve();
  const emit = (index: number, t: number, x: td.Tensor) => {
    if (!onFrame) return;
    const values = frameValues(x);
    const frame = (images: Float32Array) => onFrame({ index, steps: timesteps.length, t, images });
    if (values instanceof Float32Array) frame(values);
    else delivered = delivered.then(() => values).then(frame);
  };
  const x = td.tidy(() => {
    // sample() starts from initialNoise(key, shape) when given no x: passing it in changes nothing but lets
    // the animation show it.
    const x0 = initialNoise(key, shape);
    emit(0, timesteps[0]!, x0);
    return sample({
      model, replayModel: model, schedule, sampler, shape, key, x: x0, labels, clipDenoised: choice.clip ?? false,
      guidanceScale: conditional ? 2 : undefined,
      onStep: (info) => emit(info.index + 1, info.tPrev, info.x),
    });
  });
  try {
    const [values] = await Promise.all([x.read(), delivered]);
    return Float32Array.from(values, (v) => Math.min(1, Math.max(0, v)));
  } finally {
    x.dispose();
  }
}
