// Exponential moving average of the weights (not in the tutorial; a common way to get smoother samples):
//
//   d_k  = warmup ? min(decay, (1 + k) / (10 + k)) : decay
//   ema <- d_k * ema + (1 - d_k) * params              (optax.ema's update, without its debiasing)
//
// where k is the 0-based index of this EMA update. The trainer calls it right after optimizer update k
// (k = the optimizer's state.step BEFORE that update), with the params that update produced. The warm-up
// (TensorFlow's ExponentialMovingAverage with num_updates) makes early averages follow the fast-moving
// weights instead of the random init: d_0 = 0.1, d_10 = 0.55, d_90 = 0.91; with decay 0.999 the cap takes over from k = 8990.
//
// Pure, like optimizerStep: never disposes or aliases its inputs; every leaf returned is a fresh tensor in
// the caller's tidy scope; runs without recording gradients; intermediates are freed before it returns.
import * as td from "../engine/index.ts";

/** Plain data (JSON-serializable). */
export interface EmaConfig {
  /** Long-run decay, in [0, 1). 0.999 averages over roughly the last 1000 updates. */
  decay: number;
  /** Use min(decay, (1 + k) / (10 + k)) at update k. Default true. */
  warmup?: boolean;
}

export const DEFAULT_EMA: Required<EmaConfig> = { decay: 0.999, warmup: true };

export function validateEmaConfig(config: EmaConfig): void {
  if (!(config.decay >= 0 && config.decay < 1)) throw new Error(`ema: decay must be in [0, 1), got ${config.decay}`);
}

/** The decay used at EMA update `step` (0-based). */
export function emaDecayAt(step: number, config: EmaConfig): number {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`ema: step must be an integer >= 0, got ${step}`);
  const warm = config.warmup ?? true;
  return warm ? Math.min(config.decay, (1 + step) / (10 + step)) : config.decay;
}

/** The EMA's starting point: a copy of the params (fresh tensors, so the EMA can be disposed on its own). */
export function initEma<P extends td.TensorTreeOf>(params: P): P {
  return td.noGrad(() => td.mapTree(params, (t) => td.stopGradient(t)));
}

/** The weights [d_k, 1 - d_k] of the average and of the params at EMA update `step`. */
export function emaWeights(step: number, config: EmaConfig): [number, number] {
  const decay = emaDecayAt(step, config);
  return [decay, 1 - decay];
}

export interface EmaUpdateOptions {
  /**
   * The weights [d_k, 1 - d_k] as scalar tensors in the params' dtype (see emaWeights), instead of the
   * values for `step`: a recorded step (td.captureStep) takes them as inputs and replays with the next step's.
   */
  weights?: readonly [td.Tensor, td.Tensor];
}

/** One EMA update; returns the new average (typed after `emaParams`). `params` must have its names, shapes and dtypes. */
export function emaUpdate<P extends td.TensorTreeOf>(emaParams: P, params: td.TensorTreeOf, step: number, config: EmaConfig, options: EmaUpdateOptions = {}): P {
  validateEmaConfig(config);
  const [decay, complement] = options.weights ?? emaWeights(step, config);
  const flatE = td.flattenTree(emaParams);
  const flatP = td.flattenTree(params);
  if (flatP.size !== flatE.size) throw new Error(`ema: params have ${flatP.size} tensors, the average ${flatE.size}`);
  for (const [name, e] of flatE) {
    const p = flatP.get(name);
    if (!p) throw new Error(`ema: params have no tensor '${name}'`);
    if (p.dtype !== e.dtype || p.shape.length !== e.shape.length || p.shape.some((d, i) => d !== e.shape[i])) {
      throw new Error(`ema: param '${name}' is ${p.dtype} [${p.shape}], the average ${e.dtype} [${e.shape}]`);
    }
  }
  return td.noGrad(() =>
    td.mapTree(emaParams, (e, name) => td.tidy(() => td.add(td.mul(decay, e), td.mul(complement, flatP.get(name)!)))),
  );
}
