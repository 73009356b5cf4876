// Noise schedules as plain data (Float64Array, computed in float64). Serializable config -> arrays.
//
// Index convention: timestep t in [0, numSteps-1] indexes every array directly (betas[t], alphaCumulative[t]).
// "tutorial-cosine" has numSteps+1 entries (its first beta is duplicated), as in the tutorial, so its t
// is shifted by one relative to the textbook cosine schedule; training only ever uses t <= numSteps-1.

export type ScheduleKind = "tutorial-cosine" | "cosine" | "linear";

export interface ScheduleConfig {
  kind: ScheduleKind;
  /** T: the number of diffusion steps; valid timesteps are 0..T-1. */
  numSteps: number;
  /** Lower clip / linspace start. Defaults: 1e-4 (tutorial-cosine, linear), 0 (cosine). */
  betaStart?: number;
  /** Upper clip / linspace end. Defaults: 0.02 (tutorial-cosine, linear), 0.999 (cosine). */
  betaEnd?: number;
}

export interface NoiseSchedule {
  name: ScheduleKind;
  numSteps: number;
  betas: Float64Array;
  alphas: Float64Array; // 1 - beta
  alphaCumulative: Float64Array; // prod_{s<=t} alpha_s
  sqrtAlphaCumulative: Float64Array;
  sqrtOneMinusAlphaCumulative: Float64Array;
}

/** The tutorial's settings: 1000 steps, beta in [1e-4, 0.02]. */
export const TUTORIAL_TRAIN_SCHEDULE: ScheduleConfig = { kind: "tutorial-cosine", numSteps: 1000, betaStart: 1e-4, betaEnd: 0.02 };
/** What the tutorial's sampler uses (reverse_diffusion_batch): linspace(1e-4, 0.02, 1000). */
export const TUTORIAL_SAMPLER_SCHEDULE: ScheduleConfig = { kind: "linear", numSteps: 1000, betaStart: 1e-4, betaEnd: 0.02 };

/** Nichol & Dhariwal's offset s, also used by the tutorial. */
const COSINE_OFFSET = 0.008;

/** numpy's linspace(start, stop, n) in float64 (start + i*step; the endpoint is exact). */
export function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  out[n - 1] = stop;
  return out;
}

function clip(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

/** f(t) = cos^2(((t/T + s)/(1 + s)) * pi/2) for t = 0..T, normalized by f(0) (written as the tutorial does). */
function cosineAlphaBar(numSteps: number): Float64Array {
  const steps = linspace(0, numSteps, numSteps + 1);
  const f = new Float64Array(numSteps + 1);
  for (let i = 0; i <= numSteps; i++) {
    const x = steps[i] / numSteps;
    const c = Math.cos(((x + COSINE_OFFSET) / (1 + COSINE_OFFSET)) * Math.PI * 0.5);
    f[i] = c * c;
  }
  const f0 = f[0];
  for (let i = 0; i <= numSteps; i++) f[i] /= f0;
  return f;
}

/** Betas 1 - abar[t+1]/abar[t] for t = 0..T-1, clipped to [lo, hi]. */
function cosineBetas(numSteps: number, lo: number, hi: number): Float64Array {
  const abar = cosineAlphaBar(numSteps);
  const betas = new Float64Array(numSteps);
  for (let t = 0; t < numSteps; t++) betas[t] = clip(1 - abar[t + 1] / abar[t], lo, hi);
  return betas;
}

/**
 * The tutorial's DiffusionModel._cosine_beta_schedule, quirks included: the cosine betas are clipped to
 * [betaStart, betaEnd] (0.02 caps the last ~98 steps, 1e-4 floors the first ~13) and the first beta is
 * duplicated, giving T+1 entries.
 */
function tutorialCosineBetas(numSteps: number, betaStart: number, betaEnd: number): Float64Array {
  const betas = cosineBetas(numSteps, betaStart, betaEnd);
  const out = new Float64Array(numSteps + 1);
  out[0] = betas[0];
  out.set(betas, 1);
  return out;
}

/** Derived arrays from betas (float64; cumprod is a sequential product like numpy's). */
export function scheduleFromBetas(name: ScheduleKind, numSteps: number, betas: Float64Array): NoiseSchedule {
  const n = betas.length;
  const alphas = new Float64Array(n);
  const alphaCumulative = new Float64Array(n);
  const sqrtAlphaCumulative = new Float64Array(n);
  const sqrtOneMinusAlphaCumulative = new Float64Array(n);
  let product = 1;
  for (let t = 0; t < n; t++) {
    alphas[t] = 1 - betas[t];
    product *= alphas[t];
    alphaCumulative[t] = product;
    sqrtAlphaCumulative[t] = Math.sqrt(product);
    sqrtOneMinusAlphaCumulative[t] = Math.sqrt(1 - product);
  }
  return { name, numSteps, betas, alphas, alphaCumulative, sqrtAlphaCumulative, sqrtOneMinusAlphaCumulative };
}

export function makeSchedule(config: ScheduleConfig): NoiseSchedule {
  const { kind, numSteps } = config;
  if (!Number.isInteger(numSteps) || numSteps < 1) throw new Error(`numSteps must be a positive integer, got ${numSteps}`);
  const lo = config.betaStart ?? (kind === "cosine" ? 0 : 1e-4);
  const hi = config.betaEnd ?? (kind === "cosine" ? 0.999 : 0.02);
  if (!(lo >= 0 && hi >= lo && hi < 1)) throw new Error(`need 0 <= betaStart <= betaEnd < 1, got [${lo}, ${hi}]`);
  switch (kind) {
    case "tutorial-cosine":
      return scheduleFromBetas(kind, numSteps, tutorialCosineBetas(numSteps, lo, hi));
    case "cosine":
      return scheduleFromBetas(kind, numSteps, cosineBetas(numSteps, lo, hi));
    case "linear":
      return scheduleFromBetas(kind, numSteps, linspace(lo, hi, numSteps));
    default:
      throw new Error(`unknown schedule kind ${String(kind)}`);
  }
}

/**
 * DDPM's posterior variance of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t), with
 * abar_{-1} = 1 (so it is 0 at t = 0). The tutorial's own `posterior_variance`,
 * beta_t (1 - abar_t) / (1 - abar_t + 1e-7), is a different (and unused) quantity: tutorialPosteriorVariance.
 */
export function posteriorVariance(schedule: NoiseSchedule): Float64Array {
  const { betas, alphaCumulative } = schedule;
  const out = new Float64Array(betas.length);
  for (let t = 0; t < betas.length; t++) {
    const previous = t === 0 ? 1 : alphaCumulative[t - 1];
    out[t] = (betas[t] * (1 - previous)) / (1 - alphaCumulative[t]);
  }
  return out;
}

/** The tutorial's DiffusionModel.posterior_variance, verbatim (never used by its training or sampler). */
export function tutorialPosteriorVariance(schedule: NoiseSchedule): Float64Array {
  const { betas, alphaCumulative } = schedule;
  return Float64Array.from(betas, (beta, t) => (beta * (1 - alphaCumulative[t])) / (1 - alphaCumulative[t] + 1e-7));
}
