// WGSL of the reduction family: sum / max over axis groups, cumulative sum / product.
import type { ReduceOp } from "../../../backend.ts";
import { COMMON, typeAlias } from "./common.ts";
import { fusedDeclarations, type FusedProgram } from "./fused.ts";

/** Parameter word where a fused input's program starts (the reduction itself uses P(0..21)). */
export const REDUCE_PARAM_BASE = 24;

function combineFns(op: ReduceOp, dtype: "float32" | "int32"): string {
  if (op === "sum") return `fn identity() -> T { return T(0); }\nfn combine(a: T, b: T) -> T { return a + b; }\n`;
  // max propagates NaN (as the reference: v > m || v != v), NaN tested on the bits.
  const lowest = dtype === "float32" ? "negInf()" : "i32(-2147483647 - 1)";
  return `fn identity() -> T { return ${lowest}; }\nfn combine(a: T, b: T) -> T { return select(a, b, isNan(b) || (!isNan(a) && b > a)); }\n`;
}

/**
 * The input is viewed as kept axes (<= 4, after merging neighbours) and reduced axes (<= 4); the output
 * enumerates the kept axes row-major, as the reference's output (x's shape with the reduced axes set to 1).
 * P(0) = outputs, P(1) = R (reduced count), P(2) = kept rank, P(3) = reduced rank,
 * P(4..7) kept shape, P(8..11) kept strides, P(12..15) reduced shape, P(16..19) reduced strides,
 * P(20) = chunk length, P(21) = chunks (tree kernel: output slot o * chunks + chunk).
 *
 * `rows`: one invocation per output, summing in blocks of 32 (error ~ (32 + R/32) eps instead of R eps).
 * `tree`: one workgroup per (output, chunk of R): strided partial sums, then a 256-way tree in workgroup memory.
 *
 * With `input` (float32 only) the reduced values are not a buffer but a fused elementwise expression
 * (fused.ts) evaluated at each flat index: its leaves take bindings 1..k, the output k+1.
 */
export function reduceSource(op: ReduceOp, dtype: "float32" | "int32", input?: FusedProgram<unknown>): string {
  const load = input
    ? `${fusedDeclarations(input)}fn loadX(i: u32) -> T { return fused(i); }
@group(0) @binding(${input.leaves.length + 1}) var<storage, read_write> Out: array<T>;`
    : `@group(0) @binding(1) var<storage, read> X: array<T>;
fn loadX(i: u32) -> T { return X[i]; }
@group(0) @binding(2) var<storage, read_write> Out: array<T>;`;
  return `${typeAlias(dtype)}${COMMON}${combineFns(op, dtype)}
${load}

fn keptOffset(o: u32) -> u32 {
  var rem = o;
  var off = 0u;
  for (var d = P(2); d > 0u; d--) {
    let s = P(3u + d);
    off += (rem % s) * P(7u + d);
    rem = rem / s;
  }
  return off;
}

// Offset of reduced index r over reduced axes [0, rank).
fn reducedOffset(r: u32, rank: u32) -> u32 {
  var rem = r;
  var off = 0u;
  for (var d = rank; d > 0u; d--) {
    let s = P(11u + d);
    off += (rem % s) * P(15u + d);
    rem = rem / s;
  }
  return off;
}

@compute @workgroup_size(256)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = flatId(wid, nwg, lid);
  if (o >= P(0)) { return; }
  let base = keptOffset(o);
  let redRank = P(3);
  let inner = P(11u + redRank);
  let innerStride = P(15u + redRank);
  let outer = P(1) / inner;
  var acc = identity();
  var part = identity();
  var count = 0u;
  for (var q = 0u; q < outer; q++) {
    let rb = base + reducedOffset(q, redRank - 1u);
    for (var j = 0u; j < inner; j++) {
      part = combine(part, loadX(rb + j * innerStride));
      count++;
      if (count == 32u) {
        acc = combine(acc, part);
        part = identity();
        count = 0u;
      }
    }
  }
  Out[o] = combine(acc, part);
}

var<workgroup> scratch: array<T, 256>;

@compute @workgroup_size(256)
fn tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let o = wid.x;
  let chunk = wid.y;
  let base = keptOffset(o);
  let begin = chunk * P(20);
  let end = min(P(1), begin + P(20));
  let redRank = P(3);
  var acc = identity();
  for (var r = begin + t; r < end; r += 256u) {
    acc = combine(acc, loadX(base + reducedOffset(r, redRank)));
  }
  scratch[t] = acc;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) { scratch[t] = combine(scratch[t], scratch[t + s]); }
    workgroupBarrier();
  }
  if (t == 0u) { Out[o * P(21) + chunk] = scratch[0]; }
}
`;
}

/** One invocation per line along the axis. P(0) = lines (outer * inner), P(1) = length, P(2) = inner, P(3) = reverse. */
export function cumulativeSource(op: "sum" | "prod", dtype: "float32" | "int32"): string {
  const [init, step] = op === "sum" ? ["T(0)", "acc + X[at]"] : ["T(1)", "acc * X[at]"];
  return `${typeAlias(dtype)}${COMMON}
@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read_write> Out: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let line = flatId(wid, nwg, lid);
  if (line >= P(0)) { return; }
  let len = P(1);
  let inner = P(2);
  let reverse = P(3) != 0u;
  let o = line / inner;
  let i = line % inner;
  var acc = ${init};
  for (var s = 0u; s < len; s++) {
    let k = select(s, len - 1u - s, reverse);
    let at = (o * len + k) * inner + i;
    acc = ${step};
    Out[at] = acc;
  }
}
`;
}
