// The fused AdamW update (Backend.adamw), written as the unfused op chain would compute it: every
// intermediate is rounded to the dtype (Math.fround for float32), so results equal the chain of
// elementwise ops bit for bit, and the same checkpoint resumes identically either way. One loop per
// dtype: a rounding function passed in as a value made V8 deoptimize the loop (25 -> 160 ns per element).
import type { AdamWArgs, TypedArray } from "../../backend.ts";

/** The step's values (Backend.adamw's `scalars`), already in the dtype. */
interface StepScalars {
  norm: number;
  lr: number;
  bc1: number;
  bc2: number;
}

export function adamw(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, scalars: TypedArray, a: AdamWArgs, outP: TypedArray, outM: TypedArray, outV: TypedArray): void {
  const s = { norm: scalars[0]!, lr: scalars[1]!, bc1: scalars[2]!, bc2: scalars[3]! };
  if (p instanceof Float32Array) adamwF32(p, g as Float32Array, m as Float32Array, v as Float32Array, s, a, outP as Float32Array, outM as Float32Array, outV as Float32Array);
  else adamwF64(p as Float64Array, g as Float64Array, m as Float64Array, v as Float64Array, s, a, outP as Float64Array, outM as Float64Array, outV as Float64Array);
}

function adamwF32(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: StepScalars, a: AdamWArgs, outP: Float32Array, outM: Float32Array, outV: Float32Array): void {
  const f = Math.fround;
  // Constants as the scalar tensors of the unfused chain hold them (computed in double, then rounded).
  const clip = a.elementClip !== null, hi = f(a.elementClip ?? 0), lo = f(-(a.elementClip ?? 0));
  const maxNorm = f(a.maxNorm ?? 0);
  const { norm, lr, bc1, bc2 } = s;
  const scaleByNorm = a.maxNorm !== null && !(norm < maxNorm); // a NaN norm scales, as jax.lax.select
  const oneMinusB1 = f(1 - a.b1), b1 = f(a.b1), oneMinusB2 = f(1 - a.b2), b2 = f(a.b2);
  const eps = f(a.eps), wd = f(a.weightDecay), decay = a.weightDecay !== 0;
  for (let i = 0; i < p.length; i++) {
    let c = g[i]!;
    // The engine's maximum/minimum with a constant bound: a NaN stays NaN, as jnp.clip.
    if (clip) {
      c = c >= lo || c !== c ? c : lo;
      c = c <= hi || c !== c ? c : hi;
    }
    if (scaleByNorm) c = f(f(c / norm) * maxNorm);
    const mi = f(f(oneMinusB1 * c) + f(b1 * m[i]!));
    const vi = f(f(oneMinusB2 * f(c * c)) + f(b2 * v[i]!));
    const direction = f(f(mi / bc1) / f(f(Math.sqrt(f(vi / bc2))) + eps));
    const update = decay ? f(direction + f(wd * p[i]!)) : direction;
    outM[i] = mi;
    outV[i] = vi;
    outP[i] = p[i]! - f(lr * update);
  }
}

function adamwF64(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, s: StepScalars, a: AdamWArgs, outP: Float64Array, outM: Float64Array, outV: Float64Array): void {
  const clip = a.elementClip !== null, hi = a.elementClip ?? 0, lo = -(a.elementClip ?? 0);
  const maxNorm = a.maxNorm ?? 0;
  const { norm, lr, bc1, bc2 } = s;
  const scaleByNorm = a.maxNorm !== null && !(norm < maxNorm);
  const oneMinusB1 = 1 - a.b1, b1 = a.b1, oneMinusB2 = 1 - a.b2, b2 = a.b2;
  const eps = a.eps, wd = a.weightDecay, decay = wd !== 0;
  for (let i = 0; i < p.length; i++) {
    let c = g[i]!;
    if (clip) {
      c = c >= lo || c !== c ? c : lo;
      c = c <= hi || c !== c ? c : hi;
    }
    if (scaleByNorm) c = (c / norm) * maxNorm;
    const mi = oneMinusB1 * c + b1 * m[i]!;
    const vi = oneMinusB2 * (c * c) + b2 * v[i]!;
    const direction = mi / bc1 / (Math.sqrt(vi / bc2) + eps);
    const update = decay ? direction + wd * p[i]! : direction;
    outM[i] = mi;
    outV[i] = vi;
    outP[i] = p[i]! - lr * update;
  }
}
