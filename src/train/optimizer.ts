// The tutorial's parameter update, as pure functions over parameter trees:
//
//   grads = clip(grads, -0.3, 0.3)                       # seed_jax.train_step, element-wise
//   tx = optax.chain(optax.clip_by_global_norm(0.5),
//                    optax.adamw(lr_schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=2e-5))
//
// with optax's exact semantics (optax 0.2.8), per leaf, for update number k = state.step (0-based):
//   n  = ||c||_2 over every element of every leaf (c: the element-wise clipped gradient)
//   c <- n < maxNorm ? c : (c / n) * maxNorm          (clip_by_global_norm: jax.lax.select(n < max, c, c / n * max))
//   m  = (1 - b1) c   + b1 m                           (scale_by_adam: update_moment)
//   v  = (1 - b2) c^2 + b2 v                           (update_moment_per_elem_norm, order 2)
//   count = k + 1;  m_hat = m / (1 - b1^count);  v_hat = v / (1 - b2^count)
//   u  = m_hat / (sqrt(v_hat) + eps) + weightDecay * p (add_decayed_weights; eps_root = 0)
//   p <- p - lr(k) * u                                 (scale_by_learning_rate: the schedule sees the count
//                                                       BEFORE its increment, so the first update uses lr(0) = 0)
// The operations run in the parameters' dtype and in optax's order, so float32 rounds like the tutorial
// (up to XLA's FMA contraction, i.e. ~1 ulp of m or v). The bias corrections are evaluated in float32 for
// float32 trees, as jnp.power does (and exactly, in float64, for float64 trees).
//
// Ownership: optimizerStep never disposes or aliases its inputs. Every leaf of the returned params, m and
// v, and the scalar statistics (gradNorm, clipScale, elementsClipped), is a fresh tensor (also when lr = 0),
// created in the caller's current tidy scope; all intermediates are freed before it returns. The caller owns
// both generations and disposes the old one; nothing is read back, so read the statistics after the step:
//
//   const out = td.tidy(() => {
//     const { value, grads } = td.valueAndGrad(lossOf)(params, batch);
//     const step = optimizerStep(params, grads, state, config);
//     return { loss: value, params: step.params, state: step.state, gradNorm: step.gradNorm };
//   });                                  // (or td.keep(step.params); td.keep(step.state) inside the tidy)
//   td.dispose(params); td.dispose(state);   // the previous generation
//   params = out.params; state = out.state;
//   td.getBackend().flush();                 // a device backend starts the whole step here
//   const loss = await out.loss.readItem(); out.loss.dispose();   // (likewise out.gradNorm)
//
// State layout for checkpoints: optimizerStateTensors() names the moments "m.<param name>" and
// "v.<param name>" (dotted parameter names, as flattenTree gives them); `step` is a plain integer.
import * as td from "../engine/index.ts";
import { lrAt, validateLrSchedule, TUTORIAL_LR_SCHEDULE, type LrScheduleConfig } from "./lr-schedule.ts";

/** Plain data (JSON-serializable). A clip of null turns that clip off. */
export interface OptimizerConfig {
  /** Each gradient element is clipped to [-elementwiseClip, elementwiseClip] first (the tutorial's train_step). */
  elementwiseClip: number | null;
  /** Then the whole tree is scaled to this global L2 norm when its norm is not below it (optax.clip_by_global_norm). */
  globalNormClip: number | null;
  b1: number;
  b2: number;
  eps: number;
  /** Decoupled weight decay (AdamW), added to the Adam direction before the LR scaling, as optax does. */
  weightDecay: number;
  lr: LrScheduleConfig;
}

/** The tutorial: clip 0.3 element-wise, global norm 0.5, AdamW(b1 0.9, b2 0.999, eps 1e-8, wd 2e-5), its LR schedule. */
export const TUTORIAL_OPTIMIZER: OptimizerConfig = {
  elementwiseClip: 0.3,
  globalNormClip: 0.5,
  b1: 0.9,
  b2: 0.999,
  eps: 1e-8,
  weightDecay: 2e-5,
  lr: TUTORIAL_LR_SCHEDULE,
};

/**
 * Adam's state. `m` and `v` have the structure, shapes and dtypes of the parameters. (A type alias, not an
 * interface, so that a state is a TensorTree: td.keep(state) and td.dispose(state) work on it.)
 */
export type OptimizerState<P extends td.TensorTreeOf = td.TensorTreeOf> = {
  /** Updates done so far (optax's count). Update number `step` uses lr(step) and bias-correction count step + 1. */
  step: number;
  m: P;
  v: P;
};

export interface OptimizerStepOptions {
  /**
   * Use this learning rate instead of lrAt(state.step, config.lr). For replaying a reference run whose
   * schedule was evaluated differently (optax evaluates it in float32), or for an external LR controller.
   */
  lr?: number;
  /** Also count the gradient elements the element-wise clip hit (elementsClipped); off by default: it costs a pass. */
  countClipped?: boolean;
  /**
   * The update's [lr, bc1, bc2] as a tensor of 3 in the params' dtype (see optimizerSchedule), instead of
   * the values for state.step: a recorded step (td.captureStep) takes them as an input and replays with the
   * next step's. The result's `lr` is then still the host value for state.step (or options.lr).
   */
  schedule?: td.Tensor;
}

export interface OptimizerStepResult<P extends td.TensorTreeOf> {
  params: P;
  state: OptimizerState<P>;
  // The three statistics are scalar tensors (shape [], the params' dtype) in the caller's tidy scope, so that
  // an update never waits for the device: read them after the step, e.g. `await r.gradNorm.readItem()`, or
  // `.item()` on a host backend. Like params and state they are fresh tensors that the caller owns.
  /**
   * Global L2 norm of the gradients AFTER the element-wise clip and BEFORE the global-norm clip: the norm
   * clip_by_global_norm sees (the fixtures' `train.gnorm_clipped`), in the params' dtype, as used.
   */
  gradNorm: td.Tensor;
  /** The factor the global-norm clip applied: maxNorm / gradNorm, or 1 when the norm was below the limit or the clip is off. */
  clipScale: td.Tensor;
  /**
   * Gradient elements with |g| > elementwiseClip (0 when that clip is off); an integer in the params' dtype
   * (exact below 2^24 elements in float32). null unless options.countClipped.
   */
  elementsClipped: td.Tensor | null;
  /** The learning rate this update used. */
  lr: number;
}

export function validateOptimizerConfig(config: OptimizerConfig): void {
  const { elementwiseClip, globalNormClip, b1, b2, eps, weightDecay } = config;
  for (const [name, value] of [["elementwiseClip", elementwiseClip], ["globalNormClip", globalNormClip]] as const) {
    if (value !== null && !(Number.isFinite(value) && value > 0)) throw new Error(`optimizer: ${name} must be > 0 or null, got ${value}`);
  }
  if (!(b1 >= 0 && b1 < 1)) throw new Error(`optimizer: b1 must be in [0, 1), got ${b1}`);
  if (!(b2 >= 0 && b2 < 1)) throw new Error(`optimizer: b2 must be in [0, 1), got ${b2}`);
  if (!(Number.isFinite(eps) && eps >= 0)) throw new Error(`optimizer: eps must be finite and >= 0, got ${eps}`);
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) throw new Error(`optimizer: weightDecay must be finite and >= 0, got ${weightDecay}`);
  validateLrSchedule(config.lr);
}

/** Zero moments shaped like the parameters, step 0 (optax's init). */
export function initOptimizerState<P extends td.TensorTreeOf>(params: P): OptimizerState<P> {
  return td.noGrad(() => ({ step: 0, m: td.mapTree(params, (t) => td.zerosLike(t)), v: td.mapTree(params, (t) => td.zerosLike(t)) }));
}

/** A number rounded to a dtype's precision (so scalar arithmetic matches JAX's in float32). */
function roundTo(dtype: td.DType, value: number): number {
  return dtype === "float32" ? Math.fround(value) : value;
}

/** 1 - decay^count in the dtype: optax's bias_correction (jnp.power of a weak float and an int32 count). */
function biasCorrection(dtype: td.DType, decay: number, count: number): number {
  const d = roundTo(dtype, decay);
  return roundTo(dtype, 1 - roundTo(dtype, Math.pow(d, count)));
}

/**
 * [lr, bc1, bc2] of the update that follows `step` updates, as optimizerStep uses them: lr(step) and the
 * bias corrections 1 - b^(step + 1), each rounded to the dtype. `lr` replaces the schedule's value.
 */
export function optimizerSchedule(step: number, config: OptimizerConfig, dtype: "float32" | "float64", lr = lrAt(step, config.lr)): [number, number, number] {
  const count = step + 1;
  return [roundTo(dtype, lr), biasCorrection(dtype, config.b1, count), biasCorrection(dtype, config.b2, count)];
}

function leavesOf(tree: td.TensorTreeOf, what: string, names: readonly string[], like: Map<string, td.Tensor>): Map<string, td.Tensor> {
  const flat = td.flattenTree(tree);
  if (flat.size !== names.length) throw new Error(`optimizer: ${what} has ${flat.size} tensors, the params ${names.length}`);
  for (const name of names) {
    const t = flat.get(name);
    const p = like.get(name)!;
    if (!t) throw new Error(`optimizer: ${what} has no tensor '${name}'`);
    if (t.dtype !== p.dtype || t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`optimizer: ${what} '${name}' is ${t.dtype} [${t.shape}], the param is ${p.dtype} [${p.shape}]`);
    }
  }
  return flat;
}

/**
 * One update. `grads` and `state` must have the params' tensor names, shapes and dtypes (checked; the
 * result is typed after `params`). Pure: returns new params and state and leaves the inputs untouched (see "Ownership" at the
 * top of this file). Runs without recording gradients. Reads nothing back from the backend: the global norm,
 * the clip (a select between the scaled and unscaled gradient) and the statistics stay tensors, so on a device
 * backend a whole training step is recorded and submitted at once.
 */
export function optimizerStep<P extends td.TensorTreeOf>(
  params: P,
  grads: td.TensorTreeOf,
  state: OptimizerState,
  config: OptimizerConfig,
  options: OptimizerStepOptions = {},
): OptimizerStepResult<P> {
  validateOptimizerConfig(config);
  if (!(Number.isInteger(state.step) && state.step >= 0)) throw new Error(`optimizer: state.step must be an integer >= 0, got ${state.step}`);
  const flatP = td.flattenTree(params);
  const names = [...flatP.keys()];
  if (names.length === 0) throw new Error("optimizer: the parameter tree has no tensors");
  const flatG = leavesOf(grads, "grads", names, flatP);
  const flatM = leavesOf(state.m, "state.m", names, flatP);
  const flatV = leavesOf(state.v, "state.v", names, flatP);
  const dtype = flatP.get(names[0]!)!.dtype;
  if (dtype !== "float32" && dtype !== "float64") throw new Error(`optimizer: params must be float32 or float64, got ${dtype}`);
  for (const p of flatP.values()) if (p.dtype !== dtype) throw new Error("optimizer: every param must have the same dtype");

  const lr = options.lr ?? lrAt(state.step, config.lr);
  if (!Number.isFinite(lr)) throw new Error(`optimizer: learning rate must be finite, got ${lr}`);
  const { elementwiseClip, globalNormClip, b1, b2, eps, weightDecay } = config;

  return td.noGrad(() => {
    // Pass 1: the global norm of the element-wise clipped gradients, and how many elements that clip hit, as
    // scalar tensors: each leaf's sum is added to a running total in the params' dtype (optax's global_norm
    // also adds its per-leaf sums in the leaves' dtype; td.sumOfSquares), then sqrt. Nothing is read back.
    const leaves = names.map((name) => flatG.get(name)!);
    const sumSquares = td.sumOfSquares(leaves, elementwiseClip === null ? {} : { clip: elementwiseClip });
    let clippedCount: td.Tensor | null = null;
    if (elementwiseClip !== null && options.countClipped) {
      for (const g of leaves) {
        const n = td.tidy(() => {
          const leaf = td.sum(td.greater(td.abs(g), elementwiseClip));
          return clippedCount === null ? leaf : td.add(clippedCount, leaf);
        });
        clippedCount?.dispose();
        clippedCount = n;
      }
    }
    const elementsClipped = options.countClipped ? clippedCount ?? td.scalar(0, dtype) : null;
    // optax: jax.lax.select(g_norm < max_norm, g, (g / g_norm) * max_norm); adamwUpdate applies it per element
    // and a NaN norm takes the scaling branch (NaN < max is false). clipScale reports the factor.
    const [gradNorm, clipScale] = td.tidy(() => {
      const norm = td.sqrt(sumSquares);
      if (globalNormClip === null) return [norm, td.scalar(1, dtype)] as const;
      return [norm, td.where(td.less(norm, globalNormClip), 1, td.div(globalNormClip, norm))] as const;
    });
    sumSquares.dispose();

    // Pass 2: the clips, Adam and weight decay, fused into one engine op per leaf (td.adamwUpdate: the same
    // float operations in the same order as the chain of elementwise ops, so bit-identical on the CPU; on a
    // GPU one dispatch per leaf or two, instead of about twenty per leaf). The step's values go in as one tensor.
    const count = state.step + 1;
    const given = options.schedule;
    if (given && (given.size !== 3 || given.dtype !== dtype)) throw new Error(`optimizer: schedule must be 3 ${dtype} values [lr, bc1, bc2], got [${given.shape}] ${given.dtype}`);
    const stepScalars = td.tidy(() => {
      const schedule = given ?? td.tensor(optimizerSchedule(state.step, config, dtype, lr), [3], dtype);
      return td.concat([td.reshape(gradNorm, [1]), td.reshape(schedule, [3])], 0);
    });
    const args: td.AdamWArgs = { elementClip: elementwiseClip, maxNorm: globalNormClip, b1, b2, eps, weightDecay };
    const newP = new Map<string, td.Tensor>();
    const newM = new Map<string, td.Tensor>();
    const newV = new Map<string, td.Tensor>();
    const updated = td.adamwUpdates(names.map((name) => ({ p: flatP.get(name)!, g: flatG.get(name)!, m: flatM.get(name)!, v: flatV.get(name)! })), stepScalars, args);
    names.forEach((name, i) => {
      const [p1, m1, v1] = updated[i]!;
      newP.set(name, p1);
      newM.set(name, m1);
      newV.set(name, v1);
    });
    stepScalars.dispose();
    const pick = (from: Map<string, td.Tensor>) => td.mapTree(params, (_t, name) => from.get(name)!);
    return {
      params: pick(newP),
      state: { step: count, m: pick(newM), v: pick(newV) },
      gradNorm,
      clipScale,
      elementsClipped,
      lr,
    };
  });
}

/** The moments by checkpoint name: "m.<param name>" and "v.<param name>". The tensors are shared, not copied. */
export function optimizerStateTensors(state: OptimizerState): Map<string, td.Tensor> {
  const out = new Map<string, td.Tensor>();
  for (const [name, t] of td.flattenTree(state.m, "m")) out.set(name, t);
  for (const [name, t] of td.flattenTree(state.v, "v")) out.set(name, t);
  return out;
}

/**
 * Rebuilds a state from optimizerStateTensors()' names and the saved step. With `params`, checks that the
 * moments match them name for name, shape for shape and dtype for dtype (e.g. when resuming a checkpoint).
 * The tensors are used as they are (not copied).
 */
export function optimizerStateFromTensors<P extends td.TensorTreeOf>(
  tensors: Iterable<[string, td.Tensor]>,
  step: number,
  params?: P,
): OptimizerState<P> {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`optimizer: step must be an integer >= 0, got ${step}`);
  const m: [string, td.Tensor][] = [];
  const v: [string, td.Tensor][] = [];
  for (const [name, t] of tensors) {
    if (name.startsWith("m.")) m.push([name.slice(2), t]);
    else if (name.startsWith("v.")) v.push([name.slice(2), t]);
    else throw new Error(`optimizer: unexpected state tensor '${name}' (expected m.* or v.*)`);
  }
  const state = { step, m: td.unflattenTree(m) as P, v: td.unflattenTree(v) as P };
  if (params) {
    const flatP = td.flattenTree(params);
    const names = [...flatP.keys()];
    leavesOf(state.m, "state.m", names, flatP);
    leavesOf(state.v, "state.v", names, flatP);
  }
  return state;
}
