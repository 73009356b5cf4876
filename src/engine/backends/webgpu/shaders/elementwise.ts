// WGSL of the elementwise family: unary ops, binary ops with broadcasting, select.
import type { BinaryOp, UnaryOp } from "../../../backend.ts";
import { COMMON, typeAlias } from "./common.ts";

/**
 * f32 math with known accuracy on every adapter. WGSL's sin/cos only promise an absolute error of
 * 2^-11 on [-pi, pi] and tanh may overflow for large |x| on some drivers, so these are written out:
 * Cody-Waite reduction by pi/2 plus the Cephes sinf/cosf polynomials (about 1 ulp for |x| < 1e5, the
 * timestep embedding reaches ~1000 rad), Cephes tanhf, and gelu / its derivatives evaluated exactly as
 * the reference backend does (backends/cpu/elementwise.ts: e = exp(-2|u|) never overflows).
 */
export const MATH = /* wgsl */ `
const PIO2_HI: f32 = 1.5703125;
const PIO2_MID: f32 = 4.8375129699707031e-4;
const PIO2_LO: f32 = 7.5497899548918821e-8;
const TWO_OVER_PI: f32 = 0.63661977236758134;

fn sinPoly(y: f32) -> f32 {
  let z = y * y;
  return y + y * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
}
fn cosPoly(y: f32) -> f32 {
  let z = y * y;
  return 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
}
// sin(x + offset * pi/2): x = j pi/2 + y with |y| <= pi/4, then the quadrant picks +-sin(y) or +-cos(y).
fn sinQuadrant(x: f32, offset: i32) -> f32 {
  let j = round(x * TWO_OVER_PI);
  let y = ((x - j * PIO2_HI) - j * PIO2_MID) - j * PIO2_LO;
  let q = (i32(j) + offset) & 3;
  var r: f32;
  if ((q & 1) == 0) { r = sinPoly(y); } else { r = cosPoly(y); }
  if (q >= 2) { r = -r; }
  return r;
}
fn sin_(x: f32) -> f32 { return sinQuadrant(x, 0); }
fn cos_(x: f32) -> f32 { return sinQuadrant(x, 1); }

fn tanh_(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) {
    let z = x * x;
    return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
  }
  let e = exp(-2.0 * a);
  let t = (1.0 - e) / (1.0 + e);
  return select(t, -t, x < 0.0);
}

const GELU_C: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;
const GELU_3A: f32 = 0.134145;
const GELU_6AC: f32 = 0.21406444881780073;

fn gelu_(x: f32) -> f32 {
  let x2 = x * x;
  let u = GELU_C * (x + GELU_A * (x * x2));
  let e = exp(-2.0 * abs(u));
  let d = 1.0 / (1.0 + e);
  return x * select(e * d, d, u >= 0.0);
}
fn geluD1_(x: f32) -> f32 {
  let x2 = x * x;
  let u = GELU_C * (x + GELU_A * (x * x2));
  let up = GELU_C * (1.0 + GELU_3A * x2);
  let e = exp(-2.0 * abs(u));
  let d = 1.0 / (1.0 + e);
  let q = e * d * d;
  return select(e * d, d, u >= 0.0) + 2.0 * x * q * up;
}
fn geluD2_(x: f32) -> f32 {
  let x2 = x * x;
  let u = GELU_C * (x + GELU_A * (x * x2));
  let up = GELU_C * (1.0 + GELU_3A * x2);
  let e = exp(-2.0 * abs(u));
  let d = 1.0 / (1.0 + e);
  let q = e * d * d;
  let m = (1.0 - e) * d;
  let th = select(-m, m, u >= 0.0);
  return 4.0 * q * (up + 0.5 * x * (GELU_6AC * x) - x * th * up * up);
}
`;

/** Each unary op as a WGSL expression in v (f32). */
export const UNARY_EXPR: Record<UnaryOp, string> = {
  neg: "-v",
  exp: "exp(v)",
  log: "log(v)",
  sqrt: "sqrt(v)",
  rsqrt: "inverseSqrt(v)",
  tanh: "tanh_(v)",
  abs: "abs(v)",
  sign: "sign(v)",
  sin: "sin_(v)",
  cos: "cos_(v)",
  square: "v * v",
  reciprocal: "1.0 / v",
  step: "select(0.0, 1.0, v > 0.0 && !isNanF32(v))",
  gelu: "gelu_(v)",
  geluD1: "geluD1_(v)",
  geluD2: "geluD2_(v)",
};

export function unarySource(op: UnaryOp): string {
  return `${COMMON}${MATH}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

fn op(v: f32) -> f32 { return ${UNARY_EXPR[op]}; }

// P(0) = n
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Y[i] = op(X[i]); }
}
`;
}

/** div and pow per element type: i32 division by zero gives 0 (as the reference's Int32Array store of +-Infinity). */
export const BINARY_HELPERS = {
  float32: /* wgsl */ `
fn div_(a: f32, b: f32) -> f32 { return a / b; }
// Math.pow: negative bases with integer exponents keep their sign; pow(x, 0) = 1 (WGSL's pow is exp2(b log2 a)).
fn pow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  let r = pow(abs(a), b);
  if (a < 0.0) {
    if (b != floor(b)) { return nan(); }
    let odd = (b - 2.0 * floor(0.5 * b)) != 0.0;
    return select(r, -r, odd);
  }
  return r;
}
`,
  int32: /* wgsl */ `
fn div_(a: i32, b: i32) -> i32 { return select(a / b, 0, b == 0); }
// Exact while the result fits in int32 (wraps like Math.imul otherwise).
fn pow_(a: i32, b: i32) -> i32 {
  if (b < 0) {
    if (a == 1) { return 1; }
    if (a == -1) { return select(1, -1, (b & 1) != 0); }
    return 0;
  }
  var r = 1;
  var base = a;
  var e = b;
  loop {
    if (e == 0) { break; }
    if ((e & 1) != 0) { r = r * base; }
    base = base * base;
    e = e >> 1u;
  }
  return r;
}
`,
};

/**
 * Each binary op as a WGSL expression in a, b (type T). As the reference: maximum/minimum give NaN when
 * either is NaN (a when a is, else b), comparisons with NaN give 0 (NaN is tested on the bits, see common.ts).
 */
export const BINARY_EXPR: Record<BinaryOp, string> = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "div_(a, b)",
  pow: "pow_(a, b)",
  maximum: "select(b, a, !isNan(b) && (isNan(a) || a >= b))",
  minimum: "select(b, a, !isNan(b) && (isNan(a) || a <= b))",
  less: "select(T(0), T(1), ordered(a, b) && a < b)",
  lessEqual: "select(T(0), T(1), ordered(a, b) && a <= b)",
  greater: "select(T(0), T(1), ordered(a, b) && a > b)",
  greaterEqual: "select(T(0), T(1), ordered(a, b) && a >= b)",
  equal: "select(T(0), T(1), ordered(a, b) && a == b)",
};

/**
 * Two entry points: `flat` (a and b each either full-size or one element: index * step, step 0 or 1)
 * and `strided` (general broadcasting over up to 8 coalesced axes).
 * P(0) = n, P(1) = rank, P(2) = a step, P(3) = b step, P(4..11) = out shape, P(12..19) = a strides
 * (0 on broadcast axes), P(20..27) = b strides.
 */
export function binarySource(op: BinaryOp, dtype: "float32" | "int32"): string {
  return `${typeAlias(dtype)}${COMMON}${BINARY_HELPERS[dtype]}
@group(0) @binding(1) var<storage, read> A: array<T>;
@group(0) @binding(2) var<storage, read> B: array<T>;
@group(0) @binding(3) var<storage, read_write> Out: array<T>;

fn ordered(a: T, b: T) -> bool { return !isNan(a) && !isNan(b); }
fn op(a: T, b: T) -> T { return ${BINARY_EXPR[op]}; }

@compute @workgroup_size(256)
fn flat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[i] = op(A[i * P(2)], B[i * P(3)]); }
}

@compute @workgroup_size(256)
fn strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i >= P(0)) { return; }
  var rem = i;
  var ai = 0u;
  var bi = 0u;
  for (var d = P(1); d > 0u; d--) {
    let k = d - 1u;
    let size = P(4u + k);
    let idx = rem % size;
    rem = rem / size;
    ai += idx * P(12u + k);
    bi += idx * P(20u + k);
  }
  Out[i] = op(A[ai], B[bi]);
}
`;
}

/**
 * out = cond != 0 ? a : b, moved as raw 32-bit words. A float condition is tested on its bits with the
 * sign masked off (so -0.0 counts as 0 and NaN as true, as in the reference). P(0) = n.
 */
export function selectSource(condType: "float32" | "int32"): string {
  const mask = condType === "float32" ? "0x7fffffffu" : "0xffffffffu";
  return `${COMMON}
@group(0) @binding(1) var<storage, read> Cond: array<u32>;
@group(0) @binding(2) var<storage, read> A: array<u32>;
@group(0) @binding(3) var<storage, read> B: array<u32>;
@group(0) @binding(4) var<storage, read_write> Out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { Out[i] = select(B[i], A[i], (Cond[i] & ${mask}) != 0u); }
}
`;
}
