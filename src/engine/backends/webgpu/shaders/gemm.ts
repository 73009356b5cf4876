// WGSL of the GEMM family: batched matmul (with transposes and batch strides), conv2d as implicit GEMM
// on NHWC/HWIO (im2col done by the tile loader, never materialized) and the conv kernel gradient
// (implicit im2col^T @ g).
//
// All three share one tiling: a 256-invocation workgroup computes a 64x64 tile of C, each invocation a
// 4x4 block (rows 4*ty.., columns 4*tx..); K advances in steps of 16, staging a 64x16 tile of A and a
// 16x64 tile of B in workgroup memory as vec4s (8 KiB). Every invocation loads 4 consecutive rows of A
// at one k (or 4 consecutive columns of B), with neighbouring invocations on neighbouring addresses of
// the operand's memory layout. workgroup_id.z is split * batch + batch index: split-K runs write partial
// tiles to [splits, batch, M, N], summed afterwards by the reduce kernel.

import { COMMON } from "./common.ts";

/** Where a GEMM kernel's own parameters move when it carries an epilogue (whose expression uses P(4..51)). */
export const GEMM_EPILOGUE_PARAM_BASE = 52;

/**
 * MATMUL or CONV2D with an epilogue: C2[i] = fused(i) after C[i] is stored, at every element (no split-K:
 * C must hold final values). `declarations` define fused() reading C[i], with the expression's other
 * leaves bound from binding 4 on; C2 is bound at `out2Binding`. The kernel's own parameters move to
 * P(GEMM_EPILOGUE_PARAM_BASE + i).
 */
export function gemmWithEpilogue(source: string, epilogue: { declarations: string; out2Binding: number }): string {
  const replaceOnce = (text: string, from: string, to: string): string => {
    const parts = text.split(from);
    if (parts.length !== 2) throw new Error(`gemmWithEpilogue: "${from}" found ${parts.length - 1} times`);
    return parts.join(to);
  };
  let out = source.replace(/\bP\((\d+)\)/g, (_m, d: string) => `P(${GEMM_EPILOGUE_PARAM_BASE + Number(d)}u)`);
  out = replaceOnce(out, "@group(0) @binding(3) var<storage, read_write> C: array<f32>;",
    `@group(0) @binding(3) var<storage, read_write> C: array<f32>;\n@group(0) @binding(${epilogue.out2Binding}) var<storage, read_write> C2: array<f32>;\n${epilogue.declarations}`);
  out = replaceOnce(out, "if (n < N) { C[cOff + m * N + n] = row[j]; }",
    "if (n < N) { C[cOff + m * N + n] = row[j]; C2[cOff + m * N + n] = fused(cOff + m * N + n); }");
  return out;
}

/**
 * A split-K product's partial tiles [splits, n] summed into Out (in the order of the reduce kernel's "rows"
 * path for up to 32 splits: 0 + p0 + p1 + ...), then Out2[i] = fused(i) (the epilogue, reading Out[i]).
 * P(52) = n, P(53) = splits; `declarations` bound from binding 3 on, Out2 at `out2Binding`.
 */
export function splitKSumWithEpilogue(epilogue: { declarations: string; out2Binding: number }): string {
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> Partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@group(0) @binding(${epilogue.out2Binding}) var<storage, read_write> Out2: array<f32>;
${epilogue.declarations}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  let n = P(${GEMM_EPILOGUE_PARAM_BASE}u);
  if (i >= n) { return; }
  var part = 0.0;
  for (var s = 0u; s < P(${GEMM_EPILOGUE_PARAM_BASE + 1}u); s++) { part += Partial[s * n + i]; }
  Out[i] = 0.0 + part;
  Out2[i] = fused(i);
}
`;
}

const TILE = /* wgsl */ `
const TK = 16u;
var<workgroup> As: array<vec4<f32>, 256>; // [k][m / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [k][n / 4]

fn multiplyTile(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
  for (var k = 0u; k < TK; k++) {
    let a = As[k * 16u + ty];
    let b = Bs[k * 16u + tx];
    (*acc)[0] += a.x * b;
    (*acc)[1] += a.y * b;
    (*acc)[2] += a.z * b;
    (*acc)[3] += a.w * b;
  }
}

fn storeTile(acc: ptr<function, array<vec4<f32>, 4>>, m0: u32, n0: u32, tx: u32, ty: u32, M: u32, N: u32, cOff: u32) {
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty * 4u + i;
    if (m >= M) { break; }
    let row = (*acc)[i];
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx * 4u + j;
      if (n < N) { C[cOff + m * N + n] = row[j]; }
    }
  }
}
`;

/** B tile loader shared by all three (B is [K, N] or, with transB, [N, K]). */
const LOAD_B = /* wgsl */ `
fn loadB(t: u32, n0: u32, k0: u32, kEnd: u32, N: u32, K: u32, transB: bool, bOff: u32) {
  // Not transposed: 4 consecutive n at one k, neighbours along n. Transposed: neighbours along k.
  let bk = select(t / 16u, t % 16u, transB);
  let bn = select(t % 16u, t / 16u, transB) * 4u;
  let k = k0 + bk;
  var v = vec4<f32>(0.0);
  if (k < kEnd) {
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + bn + j;
      if (n < N) { v[j] = B[bOff + select(k * N + n, n * K + k, transB)]; }
    }
  }
  Bs[bk * 16u + bn / 4u] = v;
}
`;

/**
 * C[z] = op(A[z]) @ op(B[z]). P(0) = M, P(1) = N, P(2) = K, P(3) = transA, P(4) = transB,
 * P(5) = A batch stride, P(6) = B batch stride, P(7) = batch, P(8) = K per split.
 */
export const MATMUL = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${TILE}${LOAD_B}
fn loadA(t: u32, m0: u32, k0: u32, kEnd: u32, M: u32, K: u32, transA: bool, aOff: u32) {
  let ak = select(t % 16u, t / 16u, transA);
  let am = select(t / 16u, t % 16u, transA) * 4u;
  let k = k0 + ak;
  var v = vec4<f32>(0.0);
  if (k < kEnd) {
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + am + i;
      if (m < M) { v[i] = A[aOff + select(m * K + k, k * M + m, transA)]; }
    }
  }
  As[ak * 16u + am / 4u] = v;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = P(0);
  let N = P(1);
  let K = P(2);
  let transA = P(3) != 0u;
  let transB = P(4) != 0u;
  let batch = P(7);
  let b = wid.z % batch;
  let split = wid.z / batch;
  let aOff = b * P(5);
  let bOff = b * P(6);
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let kBegin = split * P(8);
  let kEnd = min(K, kBegin + P(8));
  var acc: array<vec4<f32>, 4>;
  for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
    loadA(t, m0, k0, kEnd, M, K, transA, aOff);
    loadB(t, n0, k0, kEnd, N, K, transB, bOff);
    workgroupBarrier();
    multiplyTile(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeTile(&acc, m0, n0, lid.x, lid.y, M, N, wid.z * M * N);
}
`;

/**
 * conv2d as C[M = b*oh*ow, N = o] = im2col(x)[M, K = kh*kw*c] @ kernel[K, N]. The A loader reads x directly:
 * row m is the output pixel (n, i, j), column k the tap (di, dj, ci), zero outside the padded input.
 * P(0) = M, P(1) = N, P(2) = K, P(3) = h, P(4) = w, P(5) = c, P(6) = kw, P(7) = pad, P(8) = oh, P(9) = ow,
 * P(10) = K per split, P(11) = 1 to read the kernel as flipKernel(kernel) would hold it.
 */
export const CONV2D = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>; // x [b, h, w, c]
@group(0) @binding(2) var<storage, read> B: array<f32>; // kernel [kh, kw, c, o] (flipped: [kh, kw, o, c])
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${TILE}${LOAD_B}
// B as flipKernel(B) would hold it: tap t is the transposed [N, c] block of tap taps - 1 - t.
fn loadFlippedB(t: u32, n0: u32, k0: u32, kEnd: u32, N: u32, c: u32, taps: u32) {
  let bk = t / 16u;
  let bn = (t % 16u) * 4u;
  let k = k0 + bk;
  var v = vec4<f32>(0.0);
  if (k < kEnd) {
    let tapBase = (taps - 1u - k / c) * N * c + k % c;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + bn + j;
      if (n < N) { v[j] = B[tapBase + n * c]; }
    }
  }
  Bs[bk * 16u + bn / 4u] = v;
}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = P(0);
  let N = P(1);
  let K = P(2);
  let h = i32(P(3));
  let w = i32(P(4));
  let c = P(5);
  let kw = P(6);
  let pad = i32(P(7));
  let oh = P(8);
  let ow = P(9);
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let kBegin = wid.z * P(10);
  let kEnd = min(K, kBegin + P(10));
  // This invocation always loads the same 4 rows (output pixels) of A: decompose them once.
  let ak = t % 16u;
  let am = (t / 16u) * 4u;
  var rowImage: array<i32, 4>; // n * h, or -1 past the last row
  var rowY: array<i32, 4>;
  var rowX: array<i32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + am + i;
    let n = m / (oh * ow);
    let rem = m % (oh * ow);
    rowImage[i] = select(-1, i32(n) * h, m < M);
    rowY[i] = i32(rem / ow) - pad;
    rowX[i] = i32(rem % ow) - pad;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
    let k = k0 + ak;
    var v = vec4<f32>(0.0);
    if (k < kEnd) {
      let ci = k % c;
      let tap = k / c;
      let dj = i32(tap % kw);
      let di = i32(tap / kw);
      for (var i = 0u; i < 4u; i++) {
        let y = rowY[i] + di;
        let x = rowX[i] + dj;
        if (rowImage[i] >= 0 && y >= 0 && y < h && x >= 0 && x < w) {
          v[i] = A[u32((rowImage[i] + y) * w + x) * c + ci];
        }
      }
    }
    As[ak * 16u + am / 4u] = v;
    if (P(11) == 0u) { loadB(t, n0, k0, kEnd, N, K, false, 0u); } else { loadFlippedB(t, n0, k0, kEnd, N, c, K / c); }
    workgroupBarrier();
    multiplyTile(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeTile(&acc, m0, n0, lid.x, lid.y, M, N, wid.z * M * N);
}
`;

/**
 * Kernel gradient: C[M = kh*kw*c, N = o] = im2col(x)^T [M, K = b*oh*ow] @ g[K, N]. Row m of A is the tap
 * (di, dj, ci), column k the output pixel (n, i, j). Parameters as CONV2D.
 */
export const CONV2D_KERNEL_GRAD = /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>; // x [b, h, w, c]
@group(0) @binding(2) var<storage, read> B: array<f32>; // g [b, oh, ow, o]
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${TILE}${LOAD_B}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = P(0);
  let N = P(1);
  let K = P(2);
  let h = i32(P(3));
  let w = i32(P(4));
  let c = P(5);
  let kw = P(6);
  let pad = i32(P(7));
  let oh = P(8);
  let ow = P(9);
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let kBegin = wid.z * P(10);
  let kEnd = min(K, kBegin + P(10));
  // Neighbouring invocations take neighbouring taps (channels), so loads of x are contiguous.
  let am = (t % 16u) * 4u;
  let ak = t / 16u;
  var tapDy: array<i32, 4>; // di - pad, or a huge offset past the last tap
  var tapDx: array<i32, 4>;
  var tapC: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + am + i;
    let tap = m / c;
    tapC[i] = m % c;
    tapDx[i] = i32(tap % kw) - pad;
    tapDy[i] = select(1 << 20u, i32(tap / kw) - pad, m < M);
  }
  var acc: array<vec4<f32>, 4>;
  for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
    let k = k0 + ak;
    var v = vec4<f32>(0.0);
    if (k < kEnd) {
      let n = k / (oh * ow);
      let rem = k % (oh * ow);
      let oy = i32(rem / ow);
      let ox = i32(rem % ow);
      let image = i32(n) * h;
      for (var i = 0u; i < 4u; i++) {
        let y = oy + tapDy[i];
        let x = ox + tapDx[i];
        if (y >= 0 && y < h && x >= 0 && x < w) {
          v[i] = A[u32((image + y) * w + x) * c + tapC[i]];
        }
      }
    }
    As[ak * 16u + am / 4u] = v;
    loadB(t, n0, k0, kEnd, N, K, false, 0u);
    workgroupBarrier();
    multiplyTile(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeTile(&acc, m0, n0, lid.x, lid.y, M, N, wid.z * M * N);
}
`;
