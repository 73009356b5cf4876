// The forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), in closed form.
// Used by training (the model input) and by the forward-process picture.
import * as td from "../engine/index.ts";
import type { NoiseSchedule } from "./schedules.ts";

/** Timestep(s): one for the whole batch, or one per sample (length = batch). */
export type Timesteps = number | ArrayLike<number>;

function checkTimestep(t: number, schedule: NoiseSchedule): void {
  if (!Number.isInteger(t) || t < 0 || t >= schedule.numSteps) {
    throw new Error(`timestep ${t} is outside 0..${schedule.numSteps - 1} of the ${schedule.name} schedule`);
  }
}

/**
 * values[t] as a tensor of `dtype` broadcastable against a rank-`rank` batch: a scalar when t is a number,
 * else shape [t.length, 1, ..., 1]. The values are float64 and are rounded once to `dtype` (like JAX's gather
 * from a float32 array, up to the rounding of the value itself).
 */
export function coefficient(values: ArrayLike<number>, t: Timesteps, rank: number, dtype: td.DType, schedule: NoiseSchedule): td.Tensor {
  if (typeof t === "number") {
    checkTimestep(t, schedule);
    return td.scalar(values[t]!, dtype);
  }
  const picked = new Float64Array(t.length);
  for (let i = 0; i < t.length; i++) {
    checkTimestep(t[i]!, schedule);
    picked[i] = values[t[i]!]!;
  }
  return td.tensor(picked, [t.length, ...new Array<number>(Math.max(rank - 1, 0)).fill(1)], dtype);
}

/**
 * x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (q(x_t | x_0), DDPM eq. 4).
 *
 * `t` is one timestep in 0..T-1 for the whole batch or one per sample; the schedule's arrays are indexed by t
 * directly (see schedules.ts: for "tutorial-cosine" that is the tutorial's own, shifted, indexing). Everything
 * broadcasts: an x0 of batch 1 with a t of length n and noise [n, ...] gives the n images of a forward-process
 * picture. The result has x0's dtype; it is differentiable in x0 and noise.
 */
export function addNoise(x0: td.Tensor, noise: td.Tensor, t: Timesteps, schedule: NoiseSchedule): td.Tensor {
  const rank = Math.max(x0.rank, noise.rank);
  const a = coefficient(schedule.sqrtAlphaCumulative, t, rank, x0.dtype, schedule);
  const s = coefficient(schedule.sqrtOneMinusAlphaCumulative, t, rank, x0.dtype, schedule);
  return td.add(td.mul(a, x0), td.mul(s, noise));
}

/** The x_0 implied by a noise prediction: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t). */
export function predictX0(xt: td.Tensor, predictedNoise: td.Tensor, t: Timesteps, schedule: NoiseSchedule): td.Tensor {
  const rank = xt.rank;
  const s = coefficient(schedule.sqrtOneMinusAlphaCumulative, t, rank, xt.dtype, schedule);
  const a = coefficient(schedule.sqrtAlphaCumulative, t, rank, xt.dtype, schedule);
  return td.div(td.sub(xt, td.mul(s, predictedNoise)), a);
}
