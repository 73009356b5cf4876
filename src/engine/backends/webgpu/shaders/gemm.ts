// WGSL of the GEMM family: batched matmul (with transposes and batch strides), conv2d as implicit GEMM
// on NHWC/HWIO (im2col done by the tile loader, never materialized) and the conv kernel gradient
// (implicit im2col^T @ g).
//
// All three share one tiling (GemmTiling): a workgroup of TX x (T / TX) invocations (T = 256, or 64 for
// small tiles) computes a tile of C, each invocation an R x 4 block (rows R*ty.., columns 4*tx..). TX = 16
// gives (16 R) x 64 tiles; products at most 32 wide take TX = 8 and R = 4, 128 x 32 tiles, so a narrow product
// (the U-Net's last convolution has N = 1, features 8 or 16 give N = 8 or 16) computes half the columns
// it would in a 64-wide tile. (16 wide would need 256-row tiles: 17 KiB of workgroup memory, over the 16
// KiB every adapter offers.) R = 4 or 8 (the option gemmRows; 8 feeds each staged value to twice the
// multiply-adds; which is faster on a GPU is for bench/webgpu-gemm.ts to say). K advances in steps of 16,
// staging a TILE_M x 16 tile of A and a 16 x TILE_N tile of B in workgroup memory as vec4s. Every
// invocation loads groups of 4 consecutive rows of A at one k, T / 4 rows apart (64 with 256 invocations),
// and 4 consecutive columns of B at one k (16 TX such loads per step, spread over the invocations), with
// neighbouring invocations on neighbouring addresses of the operand's memory layout. The convolutions'
// loaders count their k in its digits (tap, channel; image, row, column) instead of dividing each step.
// Small tiles (T = 64, R = 4, TX = 8: 32 x 32) give a product with few 64-wide tiles 4x the workgroups
// without splitting K; matmul and the forward conv2d take them (the option smallTiles), the flipped conv
// and the kernel gradient keep 256 invocations (their loaders assume 16 TX <= T and 16 k per row group).
// workgroup_id.z is split * batch + batch index: split-K runs write partial tiles to [splits, batch, M, N],
// summed afterwards by the reduce kernel.

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

/** Rows of C per invocation. */
export type GemmRows = 4 | 8;

/**
 * A GEMM kernel's tiling: rows of C per invocation, invocations along N (tile N = 4 * threadsN), invocations
 * per workgroup (256; 64 only with rows 4 and threadsN 8, the 32x32 small tile).
 */
export interface GemmTiling {
  readonly rows: GemmRows;
  readonly threadsN: 8 | 16;
  readonly threads: 256 | 64;
}

/** The tile of C a workgroup computes. */
export function tileSize({ rows, threadsN, threads }: GemmTiling): { m: number; n: number } {
  return { m: rows * (threads / threadsN), n: 4 * threadsN };
}

/** The 32x32 tile of 64 invocations. */
export const SMALL_TILING: GemmTiling = { rows: 4, threadsN: 8, threads: 64 };

const repeat = (n: number, line: (i: number) => string): string => Array.from({ length: n }, (_, i) => line(i)).join("\n");

/** Constants, workgroup memory, the multiply of one staged K step, the store of C, and the B loader. */
function tile(tiling: GemmTiling): string {
  const { rows, threadsN, threads } = tiling;
  if (threads === 64 && (rows !== 4 || threadsN !== 8)) throw new Error("gemm: 64 invocations only as 32x32 tiles (rows 4, threadsN 8)");
  const size = tileSize(tiling);
  const groups = rows / 4;
  return /* wgsl */ `
const TK = 16u;
const TM = ${rows}u; // rows of C per invocation
const TX = ${threadsN}u; // invocations along N
const TILE_M = ${size.m}u;
const TILE_N = ${size.n}u;
const THREADS = ${threads}u;
const ROW_SPAN = ${threads / 4}u; // rows of A one round of loads covers (groups of 4 consecutive rows)
const AROWS = ${(size.m * 16) / threads}u; // rows of A each invocation loads per K step (groups of 4, ROW_SPAN apart)
var<workgroup> As: array<vec4<f32>, ${4 * size.m}>; // [k][m / 4]
var<workgroup> Bs: array<vec4<f32>, ${4 * size.n}>; // [k][n / 4]

fn multiplyTile(acc: ptr<function, array<vec4<f32>, TM>>, tx: u32, ty: u32) {
  for (var k = 0u; k < TK; k++) {
    let b = Bs[k * TX + tx];
${repeat(groups, (g) => `    let a${g} = As[k * ${size.m / 4}u + ty * ${groups}u + ${g}u];
    (*acc)[${4 * g}] += a${g}.x * b;
    (*acc)[${4 * g + 1}] += a${g}.y * b;
    (*acc)[${4 * g + 2}] += a${g}.z * b;
    (*acc)[${4 * g + 3}] += a${g}.w * b;`)}
  }
}

fn storeTile(acc: ptr<function, array<vec4<f32>, TM>>, m0: u32, n0: u32, tx: u32, ty: u32, M: u32, N: u32, cOff: u32) {
  for (var i = 0u; i < TM; i++) {
    let m = m0 + ty * TM + i;
    if (m >= M) { break; }
    let row = (*acc)[i];
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx * 4u + j;
      if (n < N) { C[cOff + m * N + n] = row[j]; }
    }
  }
}

// k counted in mixed radix (lo, mid, hi) with radices (loRadix, midRadix, unbounded): the convolutions'
// loaders add the K step's digits with carries instead of dividing k at every step.
fn toDigits(k: u32, loRadix: u32, midRadix: u32) -> vec3<u32> {
  return vec3<u32>(k % loRadix, (k / loRadix) % midRadix, k / loRadix / midRadix);
}
fn addDigits(d: vec3<u32>, step: vec3<u32>, loRadix: u32, midRadix: u32) -> vec3<u32> {
  var lo = d.x + step.x;
  let carryMid = select(0u, 1u, lo >= loRadix);
  lo -= carryMid * loRadix;
  var mid = d.y + step.y + carryMid;
  let carryHi = select(0u, 1u, mid >= midRadix);
  mid -= carryHi * midRadix;
  return vec3<u32>(lo, mid, d.z + step.z + carryHi);
}

// B (shared by all three) is [K, N] or, with transB, [N, K]; 16 TX loads of 4 consecutive n at one k,
// neighbours along n (transposed: along k), load s by invocation s % THREADS.
fn loadB(t: u32, n0: u32, k0: u32, kEnd: u32, N: u32, K: u32, transB: bool, bOff: u32) {
  for (var s = t; s < 16u * TX; s += THREADS) {
    let bk = select(s / TX, s % 16u, transB);
    let bn = select(s % TX, s / 16u, transB) * 4u;
    let k = k0 + bk;
    var v = vec4<f32>(0.0);
    if (k < kEnd) {
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + bn + j;
        if (n < N) { v[j] = B[bOff + select(k * N + n, n * K + k, transB)]; }
      }
    }
    Bs[bk * TX + bn / 4u] = v;
  }
}
`;
}

const WORKGROUP = (tiling: GemmTiling) => `@compute @workgroup_size(${tiling.threadsN}, ${tiling.threads / tiling.threadsN})`;

/**
 * C[z] = op(A[z]) @ op(B[z]). P(0) = M, P(1) = N, P(2) = K, P(3) = transA, P(4) = transB,
 * P(5) = A batch stride, P(6) = B batch stride, P(7) = batch, P(8) = K per split, P(9) = where B starts
 * in its buffer (a contiguous slice read in place).
 */
export function matmulSource(tiling: GemmTiling): string {
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${tile(tiling)}
fn loadA(t: u32, m0: u32, k0: u32, kEnd: u32, M: u32, K: u32, transA: bool, aOff: u32) {
  // Neighbouring invocations on neighbouring k (A is [M, K]) or row groups (transposed: [K, M]).
  let ak = select(t % 16u, t / (ROW_SPAN / 4u), transA);
  let am = select(t / 16u, t % (ROW_SPAN / 4u), transA) * 4u;
  let k = k0 + ak;
  for (var g = 0u; g < AROWS / 4u; g++) {
    var v = vec4<f32>(0.0);
    if (k < kEnd) {
      for (var i = 0u; i < 4u; i++) {
        let m = m0 + g * ROW_SPAN + am + i;
        if (m < M) { v[i] = A[aOff + select(m * K + k, k * M + m, transA)]; }
      }
    }
    As[ak * (TILE_M / 4u) + (g * ROW_SPAN + am) / 4u] = v;
  }
}

${WORKGROUP(tiling)}
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
  let bOff = P(9) + b * P(6);
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * TILE_N;
  let kBegin = split * P(8);
  let kEnd = min(K, kBegin + P(8));
  var acc: array<vec4<f32>, TM>;
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
}

/**
 * conv2d as C[M = b*oh*ow, N = o] = im2col(x)[M, K = kh*kw*c] @ kernel[K, N]. The A loader reads x directly:
 * row m is the output pixel (n, i, j), column k the tap (di, dj, ci), zero outside the padded input.
 * P(0) = M, P(1) = N, P(2) = K, P(3) = h, P(4) = w, P(5) = c, P(6) = kw, P(7) = pad, P(8) = oh, P(9) = ow,
 * P(10) = K per split, P(11) = 1 to read the kernel as flipKernel(kernel) would hold it.
 */
export function conv2dSource(tiling: GemmTiling): string {
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>; // x [b, h, w, c]
@group(0) @binding(2) var<storage, read> B: array<f32>; // kernel [kh, kw, c, o] (flipped: [kh, kw, o, c])
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${tile(tiling)}
// B as flipKernel(B) would hold it: tap t is the transposed [N, c] block of tap taps - 1 - t. Row k of B
// is (tap, ci) = (k / c, k % c), counted by the caller.
fn loadFlippedB(t: u32, n0: u32, k0: u32, kEnd: u32, N: u32, c: u32, taps: u32, tap: u32, ci: u32) {
  if (t < 16u * TX) {
    let bk = t / TX;
    let bn = (t % TX) * 4u;
    let k = k0 + bk;
    var v = vec4<f32>(0.0);
    if (k < kEnd) {
      let tapBase = (taps - 1u - tap) * N * c + ci;
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + bn + j;
        if (n < N) { v[j] = B[tapBase + n * c]; }
      }
    }
    Bs[bk * TX + bn / 4u] = v;
  }
}
${WORKGROUP(tiling)}
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
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * TILE_N;
  let kBegin = wid.z * P(10);
  let kEnd = min(K, kBegin + P(10));
  // This invocation always loads the same rows (output pixels) of A, 4 at a time ROW_SPAN apart: decompose them once.
  let ak = t % 16u;
  let am = (t / 16u) * 4u;
  var rowImage: array<i32, AROWS>; // n * h, or -1 past the last row
  var rowY: array<i32, AROWS>;
  var rowX: array<i32, AROWS>;
  for (var r = 0u; r < AROWS; r++) {
    let m = m0 + (r / 4u) * ROW_SPAN + am + r % 4u;
    let n = m / (oh * ow);
    let rem = m % (oh * ow);
    rowImage[r] = select(-1, i32(n) * h, m < M);
    rowY[r] = i32(rem / ow) - pad;
    rowX[r] = i32(rem % ow) - pad;
  }
  // This invocation's k = (di * kw + dj) * c + ci as digits (ci, dj, di); the flipped B loader's row
  // k0 + t / TX as (ci, tap, 0).
  var tap = toDigits(kBegin + ak, c, kw);
  let tapStep = toDigits(TK, c, kw);
  var bRow = toDigits(kBegin + t / TX, c, 0xffffffffu);
  let bRowStep = toDigits(TK, c, 0xffffffffu);
  var acc: array<vec4<f32>, TM>;
  for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
    let k = k0 + ak;
    for (var g = 0u; g < AROWS / 4u; g++) {
      var v = vec4<f32>(0.0);
      if (k < kEnd) {
        for (var i = 0u; i < 4u; i++) {
          let r = g * 4u + i;
          let y = rowY[r] + i32(tap.z);
          let x = rowX[r] + i32(tap.y);
          if (rowImage[r] >= 0 && y >= 0 && y < h && x >= 0 && x < w) {
            v[i] = A[u32((rowImage[r] + y) * w + x) * c + tap.x];
          }
        }
      }
      As[ak * (TILE_M / 4u) + (g * ROW_SPAN + am) / 4u] = v;
    }
    tap = addDigits(tap, tapStep, c, kw);
    if (P(11) == 0u) { loadB(t, n0, k0, kEnd, N, K, false, 0u); } else { loadFlippedB(t, n0, k0, kEnd, N, c, K / c, bRow.y, bRow.x); }
    bRow = addDigits(bRow, bRowStep, c, 0xffffffffu);
    workgroupBarrier();
    multiplyTile(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeTile(&acc, m0, n0, lid.x, lid.y, M, N, wid.z * M * N);
}
`;
}

/**
 * Kernel gradient: C[M = kh*kw*c, N = o] = im2col(x)^T [M, K = b*oh*ow] @ g[K, N]. Row m of A is the tap
 * (di, dj, ci), column k the output pixel (n, i, j). Parameters as conv2dSource.
 */
export function conv2dKernelGradSource(tiling: GemmTiling): string {
  if (tiling.threads !== 256) throw new Error("gemm: the conv kernel gradient takes 256-invocation tiles");
  return /* wgsl */ `${COMMON}
@group(0) @binding(1) var<storage, read> A: array<f32>; // x [b, h, w, c]
@group(0) @binding(2) var<storage, read> B: array<f32>; // g [b, oh, ow, o]
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${tile(tiling)}
${WORKGROUP(tiling)}
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
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * TILE_N;
  let kBegin = wid.z * P(10);
  let kEnd = min(K, kBegin + P(10));
  // Neighbouring invocations take neighbouring taps (channels), so loads of x are contiguous.
  let am = (t % 16u) * 4u;
  let ak = t / 16u;
  var tapDy: array<i32, AROWS>; // di - pad, or a huge offset past the last tap
  var tapDx: array<i32, AROWS>;
  var tapC: array<u32, AROWS>;
  for (var r = 0u; r < AROWS; r++) {
    let m = m0 + (r / 4u) * 64u + am + r % 4u;
    let tap = m / c;
    tapC[r] = m % c;
    tapDx[r] = i32(tap % kw) - pad;
    tapDy[r] = select(1 << 20u, i32(tap / kw) - pad, m < M);
  }
  // This invocation's k = (n * oh + oy) * ow + ox as digits (ox, oy, n).
  var pixel = toDigits(kBegin + ak, ow, oh);
  let pixelStep = toDigits(TK, ow, oh);
  var acc: array<vec4<f32>, TM>;
  for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
    let k = k0 + ak;
    let image = i32(pixel.z) * h;
    for (var g = 0u; g < AROWS / 4u; g++) {
      var v = vec4<f32>(0.0);
      if (k < kEnd) {
        for (var i = 0u; i < 4u; i++) {
          let r = g * 4u + i;
          let y = i32(pixel.y) + tapDy[r];
          let x = i32(pixel.x) + tapDx[r];
          if (y >= 0 && y < h && x >= 0 && x < w) {
            v[i] = A[u32((image + y) * w + x) * c + tapC[r]];
          }
        }
      }
      As[ak * (TILE_M / 4u) + (g * 64u + am) / 4u] = v;
    }
    pixel = addDigits(pixel, pixelStep, ow, oh);
    loadB(t, n0, k0, kEnd, N, K, false, 0u);
    workgroupBarrier();
    multiplyTile(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeTile(&acc, m0, n0, lid.x, lid.y, M, N, wid.z * M * N);
}
`;
}
