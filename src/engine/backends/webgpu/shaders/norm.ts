// WGSL of layer normalization over the last axis (Backend.layerNorm / layerNormGradX / layerNormGradXGradX). A 64-invocation
// workgroup takes 64 / L rows, L invocations ("lanes") per row, neighbouring lanes on neighbouring columns;
// L (a power of two, baked into the source) is about cols / 4, so narrow rows (the U-Net's 16 or 64
// channels) do not leave most of a workgroup idle and their sums take log2(L) barrier rounds, not six.
// The reference accumulates in float64; here the variance is taken in two passes (mean, then the mean of
// (x - mean)^2), which in float32 stays close to that instead of losing digits to E[x^2] - E[x]^2 when
// |mean| >> std. Being a sum of squares it is never negative, so the reference's max(var, 0) holds by
// construction.
//
// The workgroup sums are written out in the entry points on purpose: Dawn's OpenGL ES backend on Mesa
// 22.3's llvmpipe miscompiles a helper function containing workgroupBarrier() that is called twice (the
// second call's barriers do not hold), so no kernel here calls a function with a barrier. Rows past the
// end run the barriers with no work (a barrier must be reached by the whole workgroup).
import { COMMON, typeAlias } from "./common.ts";
import { fusedDeclarations, type FusedProgram } from "./fused.ts";

/** Lanes per row for rows of `cols` values: a power of two near cols / 4, at most the workgroup's 64. */
export function layerNormLanes(cols: number): number {
  let lanes = 1;
  while (lanes < 64 && lanes * 4 < cols) lanes *= 2;
  return lanes;
}

/** Workgroups for `rows` rows at `lanes` (layerNormLanes) invocations per row. */
export function layerNormWorkgroups(rows: number, lanes: number): number {
  return Math.ceil(rows / (64 / lanes));
}

/** `partial` holds one value per invocation; afterwards partial[row0] holds the sum of its row's lanes. */
function segmentSum(type: string, lanes: number): string {
  return `workgroupBarrier();
  for (var s = ${lanes >> 1}u; s > 0u; s >>= 1u) {
    if (lane < s) { partial${type}[t] += partial${type}[t + s]; }
    workgroupBarrier();
  }`;
}

/** The row this invocation works on, its lane, where its row's values start, and whether the row exists. */
function header(lanes: number): string {
  // One row per workgroup: the row is uniform, so a workgroup past the end returns and the loops stay uniform.
  if (lanes === 64) {
    return `let lane = t;
  let row0 = 0u;
  let row = wid.y * nwg.x + wid.x;
  if (row >= P(0)) { return; }
  let cols = P(1);
  let end = cols;
  let base = row * cols;`;
  }
  return `let lane = t % ${lanes}u;
  let row0 = t - lane; // this row's first slot in the partial sums
  let row = (wid.y * nwg.x + wid.x) * ${64 / lanes}u + t / ${lanes}u;
  let cols = P(1);
  let end = select(0u, cols, row < P(0)); // a row past the end reads nothing
  let base = row * cols;`;
}

function rowStats(lanes: number): string {
  return `
  // Mean, then the variance about it, then rstd = 1 / sqrt(var + eps).
  var s = 0.0;
  for (var i = lane; i < end; i += ${lanes}u) { s += X[base + i]; }
  partial1[t] = s;
  ${segmentSum("1", lanes)}
  let mean = partial1[row0] / f32(cols);
  workgroupBarrier();
  var s2 = 0.0;
  for (var i = lane; i < end; i += ${lanes}u) {
    let d = X[base + i] - mean;
    s2 += d * d;
  }
  partial1[t] = s2;
  ${segmentSum("1", lanes)}
  let rstd = 1.0 / sqrt(partial1[row0] / f32(cols) + Pf(2));
`;
}

/**
 * out = (x - mean) * rstd * scale + bias per row, `lanes` invocations per row (layerNormLanes(cols)).
 * P(0) = rows, P(1) = cols, Pf(2) = eps. With an epilogue (declarations of `fn fused(i: u32) -> f32` reading
 * Out[i] and bound from binding 5, parameters from P(4)), also out2[i] = fused(i) for every element (at
 * `out2Binding`): an expression of the norm, same kernel.
 */
export function layerNormSource(lanes: number, epilogue: { declarations: string; out2Binding: number } | null = null): string {
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
  ${header(lanes)}
  ${rowStats(lanes)}
  for (var i = lane; i < end; i += ${lanes}u) {
    Out[base + i] = (X[base + i] - mean) * rstd * Scale[i] + Bias[i];${epilogue === null ? "" : "\n    Out2[base + i] = fused(base + i); // reads Out[base + i], written just above by this invocation"}
  }
}
`;
}

/**
 * A gradient kernel's buffers: x at binding 1, g at 2 (read through loadG), then `others` (read) and Out. With
 * `gradient`, g is that fused program instead: its leaves at 1..k, then x, the others and Out.
 */
function gradientKernelBindings(gradient: FusedProgram<unknown> | null, others: string[]): string {
  const first = gradient ? gradient.leaves.length + 1 : 1;
  const names = gradient ? ["X", ...others] : ["X", "G", ...others];
  const lines = names.map((name, i) => `@group(0) @binding(${first + i}) var<storage, read> ${name}: array<f32>;`);
  lines.push(`@group(0) @binding(${first + names.length}) var<storage, read_write> Out: array<f32>;`);
  lines.push(gradient ? `${typeAlias("float32")}${fusedDeclarations(gradient)}fn loadG(i: u32) -> f32 { return fused(i); }` : "fn loadG(i: u32) -> f32 { return G[i]; }");
  return lines.join("\n");
}

/**
 * Input gradient: gs = g * scale, xhat = (x - mean) * rstd, out = rstd * (gs - mean(gs) - xhat * mean(gs * xhat)).
 * P(0) = rows, P(1) = cols, Pf(2) = eps; `lanes` as layerNormSource. With `gradient` (a fused program, its
 * parameters from FUSED_ELEMENTWISE_PARAM_BASE) g is not a buffer but that expression, evaluated where it is
 * loaded (see gradientKernelBindings).
 */
export function layerNormGradXSource(lanes: number, gradient: FusedProgram<unknown> | null = null): string {
  return /* wgsl */ `${COMMON}
${gradientKernelBindings(gradient, ["Scale"])}

var<workgroup> partial1: array<f32, 64>;
var<workgroup> partial2: array<vec2<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  ${header(lanes)}
  ${rowStats(lanes)}
  // mean(gs) and mean(gs * xhat) together.
  var sums = vec2<f32>(0.0);
  for (var i = lane; i < end; i += ${lanes}u) {
    let gs = loadG(base + i) * Scale[i];
    sums += vec2<f32>(gs, gs * ((X[base + i] - mean) * rstd));
  }
  partial2[t] = sums;
  ${segmentSum("2", lanes)}
  let m = partial2[row0] / f32(cols);
  for (var i = lane; i < end; i += ${lanes}u) {
    let gs = loadG(base + i) * Scale[i];
    Out[base + i] = rstd * (gs - m.x - (X[base + i] - mean) * rstd * m.y);
  }
}
`;
}

/**
 * The x-gradient of the input gradient for its cotangent h: a = g * scale, c = mean(a xhat), d = mean(h xhat),
 * out = rstd^2 ((3 c d - mean(h a) + h_bar a_bar) xhat - c (h - h_bar) - d (a - a_bar)) (the two-pass variance
 * is never clamped). P(0) = rows, P(1) = cols, Pf(2) = eps; `lanes` as layerNormSource; `gradient` (a
 * fused g) as layerNormGradXSource.
 */
export function layerNormGradXGradXSource(lanes: number, gradient: FusedProgram<unknown> | null = null): string {
  return /* wgsl */ `${COMMON}
${gradientKernelBindings(gradient, ["H", "Scale"])}

var<workgroup> partial1: array<f32, 64>;
var<workgroup> partial4: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  ${header(lanes)}
  ${rowStats(lanes)}
  // Sums of h, a, a xhat, h xhat (together), then of h a.
  var sums = vec4<f32>(0.0);
  var sha = 0.0;
  for (var i = lane; i < end; i += ${lanes}u) {
    let a = loadG(base + i) * Scale[i];
    let h = H[base + i];
    let xhat = (X[base + i] - mean) * rstd;
    sums += vec4<f32>(h, a, a * xhat, h * xhat);
    sha += h * a;
  }
  workgroupBarrier(); // every lane has read partial1[row0] (rstd) before it is overwritten
  partial4[t] = sums;
  partial1[t] = sha;
  workgroupBarrier();
  for (var s = ${lanes >> 1}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      partial4[t] += partial4[t + s];
      partial1[t] += partial1[t + s];
    }
    workgroupBarrier();
  }
  let m = partial4[row0] / f32(cols); // h_bar, a_bar, c, d
  let k = rstd * rstd;
  let k1 = k * (3.0 * m.z * m.w - partial1[row0] / f32(cols) + m.x * m.y);
  for (var i = lane; i < end; i += ${lanes}u) {
    let a = loadG(base + i) * Scale[i];
    let xhat = (X[base + i] - mean) * rstd;
    Out[base + i] = k1 * xhat - k * m.z * (H[base + i] - m.x) - k * m.w * (a - m.y);
  }
}
`;
}
