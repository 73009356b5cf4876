// WGSL of layer normalization over the last axis (Backend.layerNorm / layerNormGradX): one 64-invocation
// workgroup per row, neighbouring invocations on neighbouring columns. The reference accumulates in float64;
// here the variance is taken in two passes (mean, then the mean of (x - mean)^2), which in float32 stays
// close to that instead of losing digits to E[x^2] - E[x]^2 when |mean| >> std. Being a sum of squares it
// is never negative, so the reference's max(var, 0) holds by construction.
//
// The workgroup sums are written out in the entry points on purpose: Dawn's OpenGL ES backend on Mesa
// 22.3's llvmpipe miscompiles a helper function containing workgroupBarrier() that is called twice (the
// second call's barriers do not hold), so no kernel here calls a function with a barrier.
import { COMMON } from "./common.ts";

/** `partial` holds one value per invocation; afterwards partial[0] holds their sum (all invocations must run it). */
function treeSum(type: string): string {
  return `workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (t < s) { partial${type}[t] += partial${type}[t + s]; }
    workgroupBarrier();
  }`;
}

const ROW_STATS = /* wgsl */ `
  // Mean, then the variance about it, then rstd = 1 / sqrt(var + eps).
  var s = 0.0;
  for (var i = t; i < cols; i += 64u) { s += X[base + i]; }
  partial1[t] = s;
  ${treeSum("1")}
  let mean = partial1[0] / f32(cols);
  workgroupBarrier();
  var s2 = 0.0;
  for (var i = t; i < cols; i += 64u) {
    let d = X[base + i] - mean;
    s2 += d * d;
  }
  partial1[t] = s2;
  ${treeSum("1")}
  let rstd = 1.0 / sqrt(partial1[0] / f32(cols) + Pf(2));
`;

/**
 * out = (x - mean) * rstd * scale + bias per row. P(0) = rows, P(1) = cols, Pf(2) = eps. With an epilogue
 * (declarations of `fn fused(i: u32) -> f32` reading Out[i] and bound from binding 5, parameters from
 * P(4)), also out2[i] = fused(i) for every element (at `out2Binding`): an expression of the norm, same kernel.
 */
export function layerNormSource(epilogue: { declarations: string; out2Binding: number } | null = null): string {
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Scale: array<f32>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;
${epilogue === null ? "" : `@group(0) @binding(${epilogue.out2Binding}) var<storage, read_write> Out2: array<f32>;
${epilogue.declarations}`}
var<workgroup> partial1: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P(0)) { return; }
  let cols = P(1);
  let base = row * cols;
  ${ROW_STATS}
  for (var i = t; i < cols; i += 64u) {
    Out[base + i] = (X[base + i] - mean) * rstd * Scale[i] + Bias[i];${epilogue === null ? "" : "\n    Out2[base + i] = fused(base + i); // reads Out[base + i], written just above by this invocation"}
  }
}
`;
}

export const LAYER_NORM = layerNormSource();

/**
 * Input gradient: gs = g * scale, xhat = (x - mean) * rstd, out = rstd * (gs - mean(gs) - xhat * mean(gs * xhat)).
 * P(0) = rows, P(1) = cols, Pf(2) = eps.
 */
export const LAYER_NORM_GRAD_X = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> Scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

var<workgroup> partial1: array<f32, 64>;
var<workgroup> partial2: array<vec2<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= P(0)) { return; }
  let cols = P(1);
  let base = row * cols;
  ${ROW_STATS}
  // mean(gs) and mean(gs * xhat) together.
  var sums = vec2<f32>(0.0);
  for (var i = t; i < cols; i += 64u) {
    let gs = G[base + i] * Scale[i];
    sums += vec2<f32>(gs, gs * ((X[base + i] - mean) * rstd));
  }
  partial2[t] = sums;
  ${treeSum("2")}
  let m = partial2[0] / f32(cols);
  for (var i = t; i < cols; i += 64u) {
    let gs = G[base + i] * Scale[i];
    Out[base + i] = rstd * (gs - m.x - (X[base + i] - mean) * rstd * m.y);
  }
}
`;
