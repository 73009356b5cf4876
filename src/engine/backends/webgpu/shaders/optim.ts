// WGSL of the fused AdamW update (Backend.adamw, adamwMany): one kernel for as many tensors as the device's
// storage buffers allow (adamwSource: seven each and the step's values; eight buffers for one tensor), else
// four kernels of at most four (WebGPU's compatibility mode allows four):
// the first moment, the second moment, the update direction from the new moments, then the parameter. Every
// float operation is the unfused op chain's, in its order, in both forms.
//
// Parameters: P(0) = n, P(1) = element clip on (0/1), Pf(2) = -clip, Pf(3) = clip, P(4) = norm clip on,
// Pf(5) = max norm, Pf(6) = 1 - b1, Pf(7) = b1, Pf(8) = 1 - b2, Pf(9) = b2, Pf(10) = eps,
// P(11) = weight decay on, Pf(12) = weight decay. The step's values are a buffer (a replayed step rewrites
// it): SCALARS = [norm, lr, bc1, bc2].
import { COMMON } from "./common.ts";

// The element clip when P(1) = 1: the engine's maximum/minimum against the bounds Pf(2), Pf(3) (a NaN stays NaN).
const CLIP_ELEMENT = /* wgsl */ `
fn clipElement(g: f32) -> f32 {
  var c = g;
  if (P(1) == 1u) {
    c = select(Pf(2), c, isNanF32(c) || c >= Pf(2));
    c = select(Pf(3), c, isNanF32(c) || c <= Pf(3));
  }
  return c;
}
`;

const CLIPPED = /* wgsl */ `${CLIP_ELEMENT}
// The clipped gradient: the element clip, then the global-norm scale unless norm < max norm (tested on the
// bits: a NaN norm scales, as jax.lax.select).
fn clipped(g: f32) -> f32 {
  var c = clipElement(g);
  if (P(4) == 1u) {
    let norm = SCALARS[0];
    if (isNanF32(norm) || !(norm < Pf(5))) { c = (c / norm) * Pf(5); }
  }
  return c;
}
`;

// The update's steps, shared by every form (so they round identically).
const STEPS = /* wgsl */ `
fn newM(c: f32, m: f32) -> f32 { return Pf(6) * c + Pf(7) * m; }
fn newV(c: f32, v: f32) -> f32 { return Pf(8) * (c * c) + Pf(9) * v; }
fn direction(m: f32, v: f32) -> f32 { return (m / SCALARS[2]) / (sqrt(v / SCALARS[3]) + Pf(10)); }
fn finishP(p: f32, d: f32) -> f32 {
  var update = d;
  if (P(11) == 1u) { update = update + Pf(12) * p; }
  return p - SCALARS[1] * update;
}
`;

/** A kernel over i < P(0) with the named f32 buffers at bindings 1, 2, ... (`out` ones writable). */
function updateKernel(inputs: readonly string[], outputs: readonly string[], body: string): string {
  const bindings = [...inputs, ...outputs].map((name, k) =>
    `@group(0) @binding(${k + 1}) var<storage, ${k < inputs.length ? "read" : "read_write"}> ${name}: array<f32>;`);
  return /* wgsl */ `${COMMON}
${bindings.join("\n")}
${CLIPPED}${STEPS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
${body}
}
`;
}

/**
 * The whole update of `count` parameter tensors in one kernel: item j's G, M, V, PARAM (in) and OUT_M,
 * OUT_V, OUT_P (out) at bindings 7j + 1 .. 7j + 7, SCALARS after them. Workgroup (x, j, z) updates item j's
 * elements i = 256 (z X + x) + t below its length P(16 + j) (X workgroups along x).
 */
export function adamwSource(count: number): string {
  const names = ["G", "M", "V", "PARAM", "OUT_M", "OUT_V", "OUT_P"];
  const bindings: string[] = [];
  for (let j = 0; j < count; j++) {
    names.forEach((name, k) => bindings.push(`@group(0) @binding(${7 * j + k + 1}) var<storage, ${k < 4 ? "read" : "read_write"}> ${name}${j}: array<f32>;`));
  }
  const branches = Array.from({ length: count }, (_, j) => `if (j == ${j}u) {
    if (i < P(${16 + j}u)) {
      let c = clipped(G${j}[i]);
      let m = newM(c, M${j}[i]);
      let v = newV(c, V${j}[i]);
      OUT_M${j}[i] = m;
      OUT_V${j}[i] = v;
      OUT_P${j}[i] = finishP(PARAM${j}[i], direction(m, v));
    }
  }`);
  return /* wgsl */ `${COMMON}
${bindings.join("\n")}
@group(0) @binding(${7 * count + 1}) var<storage, read> SCALARS: array<f32>;
${CLIPPED}${STEPS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.z * nwg.x + wid.x) * 256u + lid;
  let j = wid.y;
  ${branches.join(" else ")}
}
`;
}

/** m' = (1 - b1) c + b1 m. Bindings: G, M, SCALARS, OUT. */
export const ADAMW_M = updateKernel(["G", "M", "SCALARS"], ["OUT"], "  OUT[i] = newM(clipped(G[i]), M[i]);");
/** v' = (1 - b2) c^2 + b2 v. Bindings: G, V, SCALARS, OUT. */
export const ADAMW_V = updateKernel(["G", "V", "SCALARS"], ["OUT"], "  OUT[i] = newV(clipped(G[i]), V[i]);");
/** d = (m'/bc1) / (sqrt(v'/bc2) + eps) from the new moments, into p's output. Bindings: M, V, SCALARS, OUT. */
export const ADAMW_DIRECTION = updateKernel(["M", "V", "SCALARS"], ["OUT"], "  OUT[i] = direction(M[i], V[i]);");
/** p' = p - lr (d + wd p), d read from the output it replaces. Bindings: PARAM, SCALARS, OUT. */
export const ADAMW_P = updateKernel(["PARAM", "SCALARS"], ["OUT"], "  OUT[i] = finishP(PARAM[i], OUT[i]);");

/**
 * Partial sums of squares of `count` arrays X0.. (Backend.sumSquares), each element first clipped to
 * [Pf(2), Pf(3)] when P(1) = 1 (clipElement, as AdamW's). Workgroup (c, j) sums the squares of
 * X_j[i] for i = 256 c + t, 256 c + t + 256 P(4), ... below its length P(6 + j), into Out[P(5) + j P(4) + c]
 * (P(4) = workgroups per array). The arrays differ in length; the workgroup's array is uniform, so each
 * branch below is taken by whole workgroups.
 */
export function sumSquaresSource(count: number): string {
  const inputs = Array.from({ length: count }, (_, j) => `@group(0) @binding(${j + 1}) var<storage, read> X${j}: array<f32>;`);
  const branches = Array.from({ length: count }, (_, j) => `if (j == ${j}u) {
    for (var i = c * 256u + t; i < n; i += stride) { let v = clipElement(X${j}[i]); s += v * v; }
  }`);
  return /* wgsl */ `${COMMON}
${inputs.join("\n")}
@group(0) @binding(${count + 1}) var<storage, read_write> Out: array<f32>;
var<workgroup> partial: array<f32, 256>;
${CLIP_ELEMENT}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let j = wid.y;
  let chunks = P(4);
  let n = P(6u + j);
  let stride = chunks * 256u;
  var s = 0.0;
  ${branches.join(" else ")}
  partial[t] = s;
  workgroupBarrier();
  for (var h = 128u; h > 0u; h >>= 1u) {
    if (t < h) { partial[t] += partial[t + h]; }
    workgroupBarrier();
  }
  if (t == 0u) { Out[P(5) + j * chunks + c] = partial[0]; }
}
`;
}
