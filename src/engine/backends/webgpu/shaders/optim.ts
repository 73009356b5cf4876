// WGSL of the fused AdamW update (Backend.adamw): one kernel (ADAMW, eight storage buffers) where the device
// allows that many per stage, else three kernels of at most four (WebGPU's compatibility mode allows four):
// the first moment, the second moment, then the parameter from the new moments. Every float operation is
// the unfused op chain's, in its order, in both forms.
//
// Parameters: P(0) = n, P(1) = element clip on (0/1), Pf(2) = -clip, Pf(3) = clip, P(4) = norm clip on,
// Pf(5) = max norm, Pf(6) = 1 - b1, Pf(7) = b1, Pf(8) = 1 - b2, Pf(9) = b2, Pf(10) = bc1, Pf(11) = bc2,
// Pf(12) = eps, P(13) = weight decay on, Pf(14) = weight decay, Pf(15) = lr.
import { COMMON } from "./common.ts";

const CLIPPED = /* wgsl */ `
// The clipped gradient: the engine's maximum/minimum against constant bounds (a NaN stays NaN), then the
// global-norm scale unless norm < max norm (tested on the bits: a NaN norm scales, as jax.lax.select).
fn clipped(g: f32) -> f32 {
  var c = g;
  if (P(1) == 1u) {
    c = select(Pf(2), c, isNanF32(c) || c >= Pf(2));
    c = select(Pf(3), c, isNanF32(c) || c <= Pf(3));
  }
  if (P(4) == 1u) {
    let norm = NORM[0];
    if (isNanF32(norm) || !(norm < Pf(5))) { c = (c / norm) * Pf(5); }
  }
  return c;
}
`;

/** A moment update from the clipped gradient c: OUT[i] = `expr` of c and OLD[i]. Bindings: G, OLD, NORM, OUT. */
function momentSource(expr: string): string {
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> OLD: array<f32>;
@group(0) @binding(3) var<storage, read> NORM: array<f32>;
@group(0) @binding(4) var<storage, read_write> OUT: array<f32>;
${CLIPPED}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  let c = clipped(G[i]);
  OUT[i] = ${expr};
}
`;
}

/** m' = (1 - b1) c + b1 m. */
export const ADAMW_M = momentSource("Pf(6) * c + Pf(7) * OLD[i]");
/** v' = (1 - b2) c^2 + b2 v. */
export const ADAMW_V = momentSource("Pf(8) * (c * c) + Pf(9) * OLD[i]");

/** OUT = p - lr ((m/bc1) / (sqrt(v/bc2) + eps) + wd p). Bindings: PARAM, M (new), V (new), OUT. */
export const ADAMW_P = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> M: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> OUT: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  let p = PARAM[i];
  var update = (M[i] / Pf(10)) / (sqrt(V[i] / Pf(11)) + Pf(12));
  if (P(13) == 1u) { update = update + Pf(14) * p; }
  OUT[i] = p - Pf(15) * update;
}
`;

/** The whole update in one kernel: G, M, V, NORM, PARAM in; M', V', P' out (bindings 1..8). */
export const ADAMW = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> M: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> NORM: array<f32>;
@group(0) @binding(5) var<storage, read> PARAM: array<f32>;
@group(0) @binding(6) var<storage, read_write> OUT_M: array<f32>;
@group(0) @binding(7) var<storage, read_write> OUT_V: array<f32>;
@group(0) @binding(8) var<storage, read_write> OUT_P: array<f32>;
${CLIPPED}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  let c = clipped(G[i]);
  let m = Pf(6) * c + Pf(7) * M[i];
  let v = Pf(8) * (c * c) + Pf(9) * V[i];
  OUT_M[i] = m;
  OUT_V[i] = v;
  let p = PARAM[i];
  var update = (m / Pf(10)) / (sqrt(v / Pf(11)) + Pf(12));
  if (P(13) == 1u) { update = update + Pf(14) * p; }
  OUT_P[i] = p - Pf(15) * update;
}
`;
