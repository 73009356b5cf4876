// The tutorial's learning-rate schedule, as a pure function of the optimizer step:
//   optax.join_schedules([linear_schedule(0, peak, warmupSteps),
//                         cosine_decay_schedule(peak, totalSteps - warmupSteps, alpha)], [warmupSteps])
// Update k (0-based, optax counts from 0) uses lrAt(k), so the very first update has LR 0.
//
// Precision: evaluated in float64 with the warm-up written as peak*k/warmup. optax evaluates it in float32
// (its step counter is int32, even under x64) as (0 - peak)*(1 - k/warmup) + peak, which cancels; inside
// jit XLA-CPU fuses that into an FMA. So the tutorial's LRs differ from these by up to ~1 float32 ulp of
// the peak (7.3e-12 for 1e-4): e.g. its lr(1) is 9.99987e-8 (1.3e-5 relative below 1e-7).

export interface LrScheduleConfig {
  /** Peak learning rate, reached at the end of the warm-up. */
  peak: number;
  /** Linear warm-up from 0 over this many steps (0: no warm-up). */
  warmupSteps: number;
  /** Warm-up + cosine decay length; after it the LR stays at alpha * peak. */
  totalSteps: number;
  /** Final LR as a fraction of the peak. */
  alpha: number;
}

/** The tutorial: lr 1e-4, warm-up 1000, 5000 steps, alpha 0.01. */
export const TUTORIAL_LR_SCHEDULE: LrScheduleConfig = { peak: 1e-4, warmupSteps: 1000, totalSteps: 5000, alpha: 0.01 };

export function validateLrSchedule(config: LrScheduleConfig): void {
  const { peak, warmupSteps, totalSteps, alpha } = config;
  if (!(Number.isFinite(peak) && peak >= 0)) throw new Error(`lr peak must be finite and >= 0, got ${peak}`);
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) throw new Error(`warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  // optax's cosine_decay_schedule rejects decay_steps <= 0.
  if (!(Number.isInteger(totalSteps) && totalSteps > warmupSteps)) throw new Error(`totalSteps must be an integer > warmupSteps, got ${totalSteps}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`alpha must be in [0, 1], got ${alpha}`);
}

/** Learning rate for optimizer update `step` (0-based). Steps past totalSteps keep the final value. */
export function lrAt(step: number, config: LrScheduleConfig): number {
  const { peak, warmupSteps, totalSteps, alpha } = config;
  if (step < warmupSteps) {
    // optax's linear_schedule clips the count to [0, transition_steps].
    return (peak * Math.max(step, 0)) / warmupSteps;
  }
  const decaySteps = totalSteps - warmupSteps;
  const count = Math.min(step - warmupSteps, decaySteps);
  const cosine = 0.5 * (1 + Math.cos((Math.PI * count) / decaySteps));
  return peak * ((1 - alpha) * cosine + alpha);
}

/** lrAt for a range of steps [0, count), e.g. to plot or precompute. */
export function lrTable(count: number, config: LrScheduleConfig): Float64Array {
  validateLrSchedule(config);
  return Float64Array.from({ length: count }, (_, step) => lrAt(step, config));
}
