// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// The fused AdamW update (Backend.adamw) on float32, four lanes at a time. f32x4 add/mul/div/sqrt round
// exactly as the reference's Math.fround chain does (one IEEE rounding per operation), so the results equal
// the reference bit for bit. Job fields (must match ADAM in ../index.ts): pointers, flags, the element count
// and chunk, then the float32 constants from word 13.
import { claimChunk } from "./job";

const A_P = 2, A_G = 3, A_M = 4, A_V = 5, A_OUT_P = 6, A_OUT_M = 7, A_OUT_V = 8, A_FLAGS = 9;
const A_TOTAL = 11, A_CHUNK = 12; // as the other elementwise jobs (launchElementwise writes them)
const A_CONST = 13; // lo, hi, norm, maxNorm, 1-b1, b1, 1-b2, b2, bc1, bc2, eps, wd, lr
const FLAG_CLIP = 1, FLAG_SCALE = 2, FLAG_DECAY = 4;

@inline function fld(job: usize, f: i32): i32 {
  return load<i32>(job + (<usize>f << 2));
}
@inline function cst(job: usize, i: i32): f32 {
  return load<f32>(job + (<usize>(A_CONST + i) << 2));
}

/** Elements [e0, e1) of one update. */
function adamwRange(job: usize, e0: i32, e1: i32): void {
  const flags = fld(job, A_FLAGS);
  const clip = (flags & FLAG_CLIP) != 0, scale = (flags & FLAG_SCALE) != 0, decay = (flags & FLAG_DECAY) != 0;
  const p = <usize>fld(job, A_P), g = <usize>fld(job, A_G), m = <usize>fld(job, A_M), v = <usize>fld(job, A_V);
  const op = <usize>fld(job, A_OUT_P), om = <usize>fld(job, A_OUT_M), ov = <usize>fld(job, A_OUT_V);
  const lo = cst(job, 0), hi = cst(job, 1), norm = cst(job, 2), maxNorm = cst(job, 3);
  const omb1 = cst(job, 4), b1 = cst(job, 5), omb2 = cst(job, 6), b2 = cst(job, 7);
  const bc1 = cst(job, 8), bc2 = cst(job, 9), eps = cst(job, 10), wd = cst(job, 11), lr = cst(job, 12);
  const lo4 = f32x4.splat(lo), hi4 = f32x4.splat(hi), norm4 = f32x4.splat(norm), maxNorm4 = f32x4.splat(maxNorm);
  const omb14 = f32x4.splat(omb1), b14 = f32x4.splat(b1), omb24 = f32x4.splat(omb2), b24 = f32x4.splat(b2);
  const bc14 = f32x4.splat(bc1), bc24 = f32x4.splat(bc2), eps4 = f32x4.splat(eps), wd4 = f32x4.splat(wd), lr4 = f32x4.splat(lr);
  let i = e0;
  for (; i + 4 <= e1; i += 4) {
    const off = <usize>i << 2;
    let c = v128.load(g + off);
    if (clip) {
      const nan = f32x4.ne(c, c); // a NaN stays NaN, as the reference (jnp.clip)
      c = v128.bitselect(c, lo4, v128.or(f32x4.ge(c, lo4), nan));
      c = v128.bitselect(c, hi4, v128.or(f32x4.le(c, hi4), nan));
    }
    if (scale) c = f32x4.mul(f32x4.div(c, norm4), maxNorm4);
    const pi = v128.load(p + off);
    const mi = f32x4.add(f32x4.mul(omb14, c), f32x4.mul(b14, v128.load(m + off)));
    const vi = f32x4.add(f32x4.mul(omb24, f32x4.mul(c, c)), f32x4.mul(b24, v128.load(v + off)));
    const direction = f32x4.div(f32x4.div(mi, bc14), f32x4.add(f32x4.sqrt(f32x4.div(vi, bc24)), eps4));
    const update = decay ? f32x4.add(direction, f32x4.mul(wd4, pi)) : direction;
    v128.store(om + off, mi);
    v128.store(ov + off, vi);
    v128.store(op + off, f32x4.sub(pi, f32x4.mul(lr4, update)));
  }
  for (; i < e1; i++) {
    const off = <usize>i << 2;
    let c = load<f32>(g + off);
    if (clip) {
      c = c >= lo || c != c ? c : lo;
      c = c <= hi || c != c ? c : hi;
    }
    if (scale) c = (c / norm) * maxNorm;
    const pi = load<f32>(p + off);
    const mi: f32 = omb1 * c + b1 * load<f32>(m + off);
    const vi: f32 = omb2 * (c * c) + b2 * load<f32>(v + off);
    const direction: f32 = mi / bc1 / (sqrt<f32>(vi / bc2) + eps);
    const update: f32 = decay ? direction + wd * pi : direction;
    store<f32>(om + off, mi);
    store<f32>(ov + off, vi);
    store<f32>(op + off, pi - lr * update);
  }
}

export function adamwJob(job: usize): void {
  const total = fld(job, A_TOTAL), chunk = fld(job, A_CHUNK);
  for (let e0 = claimChunk(job, total, chunk); e0 >= 0; e0 = claimChunk(job, total, chunk)) adamwRange(job, e0, min(total, e0 + chunk));
}
