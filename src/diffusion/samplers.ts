// Reverse-process samplers as plain data + one pure step function (the diffusers design: stateless
// schedulers, serializable config, one interface). The driver that loops over the steps is in sample.ts.
//
// Conventions (shared with schedules.ts and noising.ts):
// * Timesteps t run over 0..T-1, T = schedule.numSteps, and index the schedule's arrays directly.
//   x_t is the state whose noise level is abar_t, the model is evaluated at (x_t, t), and one step maps
//   x_t to x_tPrev. Pure noise is treated as x_{T-1} (as the tutorial's loop does). The clean sample is
//   x_{-1}: tPrev = -1 means "the last step", with abar_{-1} = 1 (diffusers' set_alpha_to_one = True).
// * For "tutorial-cosine" (T+1 entries) nothing changes: its abar is the cumulative product of its own
//   alphas, so abar[t] = abar[t-1] alpha[t] for every t <= T-1; the extra entry at index T is never used.
import * as td from "../engine/index.ts";
import { makeSchedule, TUTORIAL_SAMPLER_SCHEDULE, type NoiseSchedule } from "./schedules.ts";

export type SamplerKind = "ddpm" | "ddim";

/**
 * Which subset of 0..T-1 a sampler with fewer than T steps visits (names as in diffusers):
 * * "trailing" (default): round(T - i T/steps) - 1, e.g. T=1000, 50 steps: 999, 979, ..., 19. It always
 *   starts at T-1, the noise level pure noise matches (Lin et al. 2024, "Common Diffusion Noise Schedules
 *   and Sample Steps are Flawed", table 2).
 * * "leading": i floor(T/steps), reversed: 980, 960, ..., 0 (the DDIM paper's / diffusers' old default; it
 *   starts below T-1, so pure noise is fed in at a lower noise level than it has).
 * * "linspace": round(linspace(0, T-1, steps)), reversed: 999, 979, ..., 0.
 * With steps = T all three give T-1, ..., 0. Rounding is numpy's (half to even).
 */
export type TimestepSpacing = "trailing" | "leading" | "linspace";

/**
 * sigma_t^2 of DDPM's p(x_tPrev | x_t):
 * * "beta": beta_t, the tutorial's choice (DDPM's sigma^2 = beta, the upper bound; "fixed_large").
 * * "posterior": beta~_t = beta_t (1 - abar_tPrev) / (1 - abar_t), the lower bound ("fixed_small").
 */
export type DdpmVariance = "beta" | "posterior";

export interface SamplerConfig {
  kind: SamplerKind;
  /** Number of reverse steps (= model calls). Default: T for "ddpm", min(50, T) for "ddim". */
  steps?: number;
  /** DDIM's eta: 0 (default) is deterministic, 1 gives DDPM's posterior variance. Must be omitted or 0 for "ddpm". */
  eta?: number;
  /** Default "trailing". */
  spacing?: TimestepSpacing;
  /** DDPM only. Default "beta" (the tutorial). */
  variance?: DdpmVariance;
}

/** The tutorial's sampler: DDPM ancestral sampling over all T steps with sigma_t^2 = beta_t. */
export const DDPM_SAMPLER: SamplerConfig = { kind: "ddpm", variance: "beta" };
/** Deterministic DDIM with 50 steps. */
export const DDIM_SAMPLER: SamplerConfig = { kind: "ddim", steps: 50, eta: 0 };

/**
 * The tutorial's exact sampling setup, schedule mismatch included: its model trains on the clipped cosine
 * schedule (TUTORIAL_TRAIN_SCHEDULE) but reverse_diffusion_batch samples with linspace(1e-4, 0.02, 1000).
 * Use this only to reproduce the tutorial; our default samples with the model's own schedule.
 */
export function tutorialSamplerSetup(): { sampler: SamplerConfig; schedule: NoiseSchedule } {
  return { sampler: { ...DDPM_SAMPLER }, schedule: makeSchedule(TUTORIAL_SAMPLER_SCHEDULE) };
}

/** The config with every default filled in, validated against the schedule. */
export function resolveSampler(config: SamplerConfig, schedule: NoiseSchedule): Required<SamplerConfig> {
  const T = schedule.numSteps;
  if (config.kind !== "ddpm" && config.kind !== "ddim") throw new Error(`unknown sampler kind ${String(config.kind)}`);
  const steps = config.steps ?? (config.kind === "ddpm" ? T : Math.min(50, T));
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new Error(`sampler steps must be an integer in 1..${T}, got ${steps}`);
  const eta = config.eta ?? 0;
  if (!(Number.isFinite(eta) && eta >= 0)) throw new Error(`sampler eta must be a finite number >= 0, got ${eta}`);
  if (config.kind === "ddpm" && eta !== 0) throw new Error(`eta applies to "ddim" only; for "ddpm" choose variance "beta" or "posterior"`);
  const spacing = config.spacing ?? "trailing";
  if (!["trailing", "leading", "linspace"].includes(spacing)) throw new Error(`unknown timestep spacing ${String(spacing)}`);
  const variance = config.variance ?? "beta";
  if (variance !== "beta" && variance !== "posterior") throw new Error(`unknown DDPM variance ${String(variance)}`);
  if (config.kind === "ddim" && config.variance !== undefined) throw new Error(`variance applies to "ddpm" only; DDIM's is set by eta`);
  return { kind: config.kind, steps, eta, spacing, variance };
}

/** numpy's round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The timesteps visited, in the order visited (strictly decreasing), e.g. [999, 979, ..., 19]. */
export function samplerTimesteps(config: SamplerConfig, schedule: NoiseSchedule): Int32Array {
  const { steps, spacing } = resolveSampler(config, schedule);
  const T = schedule.numSteps;
  const out = new Int32Array(steps);
  for (let i = 0; i < steps; i++) {
    if (spacing === "trailing") out[i] = roundHalfEven(T - (i * T) / steps) - 1;
    else if (spacing === "leading") out[i] = (steps - 1 - i) * Math.floor(T / steps);
    else out[i] = roundHalfEven(steps === 1 ? 0 : ((steps - 1 - i) * (T - 1)) / (steps - 1));
  }
  for (let i = 1; i < steps; i++) {
    if (!(out[i]! < out[i - 1]!)) throw new Error(`timesteps are not strictly decreasing at ${i} (${spacing}, ${steps} of ${T})`);
  }
  return out;
}

/** The timestep after timesteps[i]: timesteps[i + 1], or -1 (the clean sample) after the last one. */
export function previousTimestep(timesteps: ArrayLike<number>, i: number): number {
  return i + 1 < timesteps.length ? timesteps[i + 1]! : -1;
}

/** Scalar quantities of one step t -> tPrev (float64). */
export interface StepCoefficients {
  abar: number;
  abarPrev: number;
  /** abar_t / abar_tPrev: alpha_t for consecutive steps (taken from schedule.alphas then), the product of the skipped alphas otherwise. */
  alpha: number;
  /** 1 - alpha (as 1 - schedule.alphas[t] for consecutive steps, like the tutorial). */
  oneMinusAlpha: number;
  /** sigma_t^2, the variance of the noise added at this step (0 at the last step for DDPM "beta"). */
  variance: number;
}

function checkStep(schedule: NoiseSchedule, t: number, tPrev: number): void {
  const T = schedule.numSteps;
  if (!Number.isInteger(t) || t < 0 || t >= T) throw new Error(`timestep t=${t} is outside 0..${T - 1}`);
  if (!Number.isInteger(tPrev) || tPrev < -1 || tPrev >= t) throw new Error(`previous timestep ${tPrev} must be an integer in -1..${t - 1}`);
}

export function stepCoefficients(config: SamplerConfig, schedule: NoiseSchedule, t: number, tPrev: number): StepCoefficients {
  const resolved = resolveSampler(config, schedule);
  checkStep(schedule, t, tPrev);
  const abar = schedule.alphaCumulative[t]!;
  const abarPrev = tPrev >= 0 ? schedule.alphaCumulative[tPrev]! : 1;
  const consecutive = tPrev === t - 1;
  const alpha = consecutive ? schedule.alphas[t]! : abar / abarPrev;
  const oneMinusAlpha = consecutive ? 1 - schedule.alphas[t]! : (abarPrev - abar) / abarPrev;
  let variance: number;
  if (resolved.kind === "ddpm") {
    const beta = consecutive ? schedule.betas[t]! : oneMinusAlpha;
    if (resolved.variance === "beta") variance = tPrev === -1 ? 0 : beta; // the tutorial adds no noise at t = 0
    else variance = (beta * (1 - abarPrev)) / (1 - abar);
  } else {
    // DDIM eq. 16: sigma^2 = eta^2 (1 - abar_prev)/(1 - abar_t) (1 - abar_t/abar_prev).
    variance = resolved.eta * resolved.eta * ((1 - abarPrev) / (1 - abar)) * oneMinusAlpha;
  }
  return { abar, abarPrev, alpha, oneMinusAlpha, variance };
}

/** sigma_t^2 of the step t -> tPrev. For DDIM with eta = 1 and tPrev = t-1 this is DDPM's posterior variance. */
export function stepVariance(config: SamplerConfig, schedule: NoiseSchedule, t: number, tPrev: number): number {
  return stepCoefficients(config, schedule, t, tPrev).variance;
}

export interface StepOptions {
  /**
   * Clip the predicted x_0 before forming x_tPrev: true = [0, 1] (this project's pixel/16 data range), or an
   * explicit [lo, hi]. Off by default (the tutorial does not clip).
   */
  clipDenoised?: boolean | readonly [number, number];
}

function clipRange(clip: StepOptions["clipDenoised"]): readonly [number, number] | null {
  if (!clip) return null;
  const range = clip === true ? ([0, 1] as const) : clip;
  if (!(range[0] <= range[1])) throw new Error(`clipDenoised range [${range[0]}, ${range[1]}] is empty`);
  return range;
}

/**
 * The numbers one step multiplies by (applyStep says where each goes). Host numbers in an eager step;
 * tensors in a captured one (sample.ts), where they are a replay's inputs.
 */
export interface StepScalars<S extends number | td.Tensor = number> {
  a: S;
  b: S;
  /** With clipDenoised: x0 = clip((x_t - p eps) / q). */
  p: S;
  q: S;
  /** sigma_t, the standard deviation of the noise added (0: none). */
  sigma: S;
}

/** The scalars of the step t -> tPrev, computed in float64 from the schedule (see sampleStep). */
export function stepScalars(config: SamplerConfig, schedule: NoiseSchedule, t: number, tPrev: number, options: StepOptions = {}): StepScalars {
  const { kind } = resolveSampler(config, schedule);
  const c = stepCoefficients(config, schedule, t, tPrev);
  const sigma = Math.sqrt(c.variance);
  const sqrtOneMinusAbar = Math.sqrt(1 - c.abar);
  const sqrtAbar = Math.sqrt(c.abar);
  const direction = Math.sqrt(Math.max(0, 1 - c.abarPrev - c.variance));
  if (!clipRange(options.clipDenoised)) {
    if (kind === "ddpm") return { a: 1 / Math.sqrt(c.alpha), b: c.oneMinusAlpha / sqrtOneMinusAbar, p: 0, q: 0, sigma };
    // sqrt(abar_prev) x0 + dir eps with x0 substituted: both coefficients folded in float64.
    const ratio = Math.sqrt(c.abarPrev / c.abar);
    return { a: ratio, b: direction - ratio * sqrtOneMinusAbar, p: 0, q: 0, sigma };
  }
  const p = sqrtOneMinusAbar;
  const q = sqrtAbar;
  if (kind === "ddpm") {
    // Posterior mean mu~(x_t, x0) = sqrt(abar_prev)(1 - alpha)/(1 - abar) x0 + sqrt(alpha)(1 - abar_prev)/(1 - abar) x_t.
    return { a: (Math.sqrt(c.abarPrev) * c.oneMinusAlpha) / (1 - c.abar), b: (Math.sqrt(c.alpha) * (1 - c.abarPrev)) / (1 - c.abar), p, q, sigma };
  }
  return { a: Math.sqrt(c.abarPrev), b: direction, p, q, sigma };
}

/**
 * x_tPrev from x_t, the predicted noise and the step's scalars (+ sigma z when `noise` is given):
 *   ddpm: a (x_t - b eps)                      ddim: a x_t + b eps
 *   clipped, x0 = clip((x_t - p eps) / q):  ddpm: a x0 + b x_t    ddim: a x0 + b (x_t - q x0) / p
 */
export function applyStep<S extends number | td.Tensor>(
  kind: SamplerKind,
  clipDenoised: StepOptions["clipDenoised"],
  xt: td.Tensor,
  predictedNoise: td.Tensor,
  noise: td.Tensor | null,
  k: StepScalars<S>,
): td.Tensor {
  const range = clipRange(clipDenoised);
  let mean: td.Tensor;
  if (!range) {
    mean = kind === "ddpm"
      ? td.mul(k.a, td.sub(xt, td.mul(k.b, predictedNoise))) // the tutorial's expression, in its order of operations
      : td.add(td.mul(k.a, xt), td.mul(k.b, predictedNoise));
  } else {
    const x0 = td.clip(td.div(td.sub(xt, td.mul(k.p, predictedNoise)), k.q), range[0], range[1]);
    mean = kind === "ddpm"
      ? td.add(td.mul(k.a, x0), td.mul(k.b, xt))
      : td.add(td.mul(k.a, x0), td.mul(k.b, td.div(td.sub(xt, td.mul(k.q, x0)), k.p)));
  }
  return noise ? td.add(mean, td.mul(k.sigma, noise)) : mean;
}

/**
 * One reverse step x_t -> x_tPrev, given the model's noise prediction eps = eps_theta(x_t, t) and standard
 * normal `noise` z of x_t's shape (needed only when the step's variance is > 0; ignored otherwise). Pure: no
 * state, no randomness of its own. Arithmetic is in x_t's dtype; the scalar coefficients are computed in
 * float64 from the schedule and rounded once.
 *
 * "ddpm" (ancestral, Ho et al. 2020 eq. 11; for consecutive steps exactly the tutorial's update):
 *   x_tPrev = 1/sqrt(alpha_t) (x_t - (1 - alpha_t)/sqrt(1 - abar_t) eps) + sigma_t z,
 *   sigma_t^2 = beta_t ("beta", none at the last step) or the posterior variance. For a strided subset,
 *   alpha_t = abar_t/abar_tPrev (respacing, Nichol & Dhariwal 2021).
 * "ddim" (Song et al. 2021, eq. 12):
 *   x0 = (x_t - sqrt(1 - abar_t) eps)/sqrt(abar_t),
 *   x_tPrev = sqrt(abar_tPrev) x0 + sqrt(1 - abar_tPrev - sigma_t^2) eps + sigma_t z, sigma_t from eta.
 * With clipDenoised, x0 is clipped first (DDPM then uses the posterior mean in x0/x_t form, eq. 7; DDIM
 * re-derives eps from the clipped x0, as diffusers' use_clipped_model_output).
 */
export function sampleStep(
  config: SamplerConfig,
  schedule: NoiseSchedule,
  xt: td.Tensor,
  t: number,
  tPrev: number,
  predictedNoise: td.Tensor,
  noise?: td.Tensor | null,
  options: StepOptions = {},
): td.Tensor {
  const { kind } = resolveSampler(config, schedule);
  const k = stepScalars(config, schedule, t, tPrev, options);
  if (k.sigma > 0 && !noise) throw new Error(`sampleStep: the step ${t} -> ${tPrev} adds noise (sigma = ${k.sigma}) but no noise was given`);
  return applyStep(kind, options.clipDenoised, xt, predictedNoise, k.sigma > 0 ? noise! : null, k);
}
