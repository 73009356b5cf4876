// Timestep sampling for training. The tutorial draws t from
//   p = linspace(1.0, 0.1 * (1 - progress), T) / sum,   progress = step / numTrainSteps
// (jax.random.choice with p): early timesteps are favoured more and more, and at progress 1 the last
// weight is 0. Here the randomness comes from a uniform source, so any PRNG (or a test stub) can drive it.

/** Returns n independent uniforms in [0, 1). */
export type UniformSource = (n: number) => Float64Array;

/** The tutorial's normalized weights over t = 0..numTimesteps-1 at a training progress in [0, 1]. */
export function progressiveTimestepWeights(progress: number, numTimesteps: number): Float64Array {
  if (!(progress >= 0 && progress <= 1)) throw new Error(`progress must be in [0, 1], got ${progress}`);
  if (!(Number.isInteger(numTimesteps) && numTimesteps >= 1)) throw new Error(`numTimesteps must be a positive integer, got ${numTimesteps}`);
  const last = 0.1 * (1 - progress);
  const weights = new Float64Array(numTimesteps);
  const step = numTimesteps > 1 ? (last - 1) / (numTimesteps - 1) : 0;
  let sum = 0;
  for (let t = 0; t < numTimesteps; t++) {
    weights[t] = t === numTimesteps - 1 && numTimesteps > 1 ? last : 1 + t * step; // linspace: exact endpoint
    sum += weights[t];
  }
  for (let t = 0; t < numTimesteps; t++) weights[t] /= sum;
  return weights;
}

/** Progress of the tutorial's loop: epoch / num_epochs (its loop runs epochs 0..num_epochs inclusive). */
export function trainingProgress(step: number, numTrainSteps: number): number {
  return numTrainSteps > 0 ? Math.min(Math.max(step / numTrainSteps, 0), 1) : 1;
}

/**
 * Inverse-CDF sampler over non-negative weights (need not be normalized). For a uniform u it returns the
 * smallest t with cumulative[t] > u * total, so zero-weight timesteps are never drawn.
 */
export function makeWeightedSampler(weights: ArrayLike<number>): (count: number, uniform: UniformSource) => Int32Array {
  const n = weights.length;
  const cumulative = new Float64Array(n);
  let total = 0;
  let lastPositive = -1;
  for (let t = 0; t < n; t++) {
    const w = weights[t];
    if (!(w >= 0 && Number.isFinite(w))) throw new Error(`weight ${t} is ${w}; weights must be finite and >= 0`);
    total += w;
    cumulative[t] = total;
    if (w > 0) lastPositive = t;
  }
  if (!(total > 0)) throw new Error("weights sum to 0");
  return (count, uniform) => {
    const u = uniform(count);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const target = u[i] * total;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cumulative[mid] > target) hi = mid;
        else lo = mid + 1;
      }
      // u * total can round up to total: fall back to the last timestep that can be drawn.
      out[i] = Math.min(lo, lastPositive);
    }
    return out;
  };
}

/** The tutorial's draw: `count` timesteps at training step `step` of `numTrainSteps`. */
export function sampleProgressiveTimesteps(
  step: number,
  numTrainSteps: number,
  numTimesteps: number,
  count: number,
  uniform: UniformSource,
): Int32Array {
  const weights = progressiveTimestepWeights(trainingProgress(step, numTrainSteps), numTimesteps);
  return makeWeightedSampler(weights)(count, uniform);
}

/** Plain DDPM sampling: t uniform in 0..numTimesteps-1. */
export function sampleUniformTimesteps(numTimesteps: number, count: number, uniform: UniformSource): Int32Array {
  const u = uniform(count);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.min(Math.floor(u[i] * numTimesteps), numTimesteps - 1);
  return out;
}
