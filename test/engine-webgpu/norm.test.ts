// WebGpuKernels.layerNorm, layerNormGradX and layerNormGradXGradX against the reference (which accumulates row statistics in
// float64): channel counts below, at and above the 64-wide workgroup, 1 to 64 lanes per row, rows with a large mean next to a small
// spread (the case E[x^2] - E[x]^2 would lose in float32), the U-Net's shapes.
// Tolerances, with c = 1 + |mean| / std per row (x - mean in float32 carries an error of eps |mean|, which
// normalization scales by 1 / std): layerNorm |err| <= 32 eps * (|xhat scale| + |bias| + c |scale|) + 32 eps;
// layerNormGradX |err| <= 64 eps * c * the row's largest |output| (a sum of three terms of that size);
// layerNormGradXGradX |err| <= 64 eps * c^2 * the row's largest sum of its three terms' magnitudes (rstd^2
// carries twice rstd's error; the terms can cancel).
import { test } from "node:test";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { assertClose, kernels, poisoned, randomF32, rng } from "./helpers.ts";

const cpu = new CpuBackend();
const EPS = 2 ** -23;

const CASES: [rows: number, cols: number, offset: number][] = [
  [1, 1, 0], [3, 5, 0], [7, 63, 0], [5, 64, 0], [9, 65, 0], [4, 200, 3], [2, 1024, 0], [16 * 64, 64, 0],
  [16 * 16, 128, 5], [16, 1536, 0], [300, 24, 100],
  // Several rows per workgroup (layerNormLanes): a last workgroup with rows past the end, 1 to 64 lanes.
  [173, 16, 2], [1000, 6, 0], [65, 5, 0], [3, 33, 0], [50, 3000, 1],
];

test("layerNorm and its input gradient against the reference", async () => {
  const k = await kernels();
  let seed = 1;
  for (const [rows, cols, offset] of CASES) {
    const rand = rng(seed++);
    const n = rows * cols;
    const x = randomF32(n, rand).map((v, i) => v + offset * (((i / cols) | 0) % 2 === 0 ? 1 : -1));
    const g = randomF32(n, rand);
    const scale = randomF32(cols, rand, 2);
    const bias = randomF32(cols, rand);
    const eps = 1e-6;
    const [gx, gg, gs, gb] = [k.upload(x), k.upload(g), k.upload(scale), k.upload(bias)];

    // c = 1 + |mean| * rstd per row, in float64.
    const cond = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = 0, sum2 = 0;
      for (let i = 0; i < cols; i++) sum += x[r * cols + i]!;
      const mean = sum / cols;
      for (let i = 0; i < cols; i++) sum2 += (x[r * cols + i]! - mean) ** 2;
      cond[r] = 1 + Math.abs(mean) / Math.sqrt(sum2 / cols + eps);
    }
    const out = poisoned(k, "float32", n);
    k.layerNorm(gx, rows, cols, gs, gb, eps, out);
    const ref = new Float32Array(n);
    cpu.layerNorm(x, rows, cols, scale, bias, eps, ref);
    // |xhat * scale| + |bias| from the reference output: xhat * scale = ref - bias.
    const mag = ref.map((v, i) => Math.abs(v - bias[i % cols]!) + Math.abs(bias[i % cols]!) + cond[(i / cols) | 0]! * Math.abs(scale[i % cols]!));
    assertClose(await k.download(out), ref, 32 * EPS, mag, `layerNorm ${rows}x${cols} offset ${offset}`, 32 * EPS);

    const dx = poisoned(k, "float32", n);
    k.layerNormGradX(gx, gg, rows, cols, gs, eps, dx);
    const dref = new Float32Array(n);
    cpu.layerNormGradX(x, g, rows, cols, scale, eps, dref);
    const rowMax = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let i = 0; i < cols; i++) m = Math.max(m, Math.abs(dref[r * cols + i]!));
      rowMax.fill(m * cond[r]!, r * cols, (r + 1) * cols);
    }
    assertClose(await k.download(dx), dref, 64 * EPS, rowMax, `layerNormGradX ${rows}x${cols} offset ${offset}`, 1e-30);

    const h = randomF32(n, rand);
    const gh = k.upload(h);
    const ddx = poisoned(k, "float32", n);
    k.layerNormGradXGradX(gx, gg, gh, rows, cols, gs, eps, ddx);
    const ddref = new Float32Array(n);
    cpu.layerNormGradXGradX(x, g, h, rows, cols, scale, eps, ddref);
    const termMax = secondDerivativeTerms(x, g, h, scale, rows, cols, eps);
    for (let r = 0; r < rows; r++) termMax.fill(termMax[r * cols]! * cond[r]! ** 2, r * cols, (r + 1) * cols);
    assertClose(await k.download(ddx), ddref, 64 * EPS, termMax, `layerNormGradXGradX ${rows}x${cols} offset ${offset}`, 1e-30);
    for (const t of [gx, gg, gs, gb, out, dx, gh, ddx]) k.release(t);
  }
});

/**
 * Per row (every element of it holds the value), in float64: the largest |k1 xhat| + |k c (h - h_bar)| +
 * |k d (a - a_bar)| of layerNormGradXGradX's three terms (see Backend.layerNormGradXGradX).
 */
function secondDerivativeTerms(x: Float32Array, g: Float32Array, h: Float32Array, scale: Float32Array, rows: number, cols: number, eps: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = (arr: Float32Array, i: number) => arr[r * cols + i]!;
    let mean = 0;
    for (let i = 0; i < cols; i++) mean += row(x, i) / cols;
    let variance = 0;
    for (let i = 0; i < cols; i++) variance += (row(x, i) - mean) ** 2 / cols;
    const rstd = 1 / Math.sqrt(variance + eps);
    const xhat = (i: number) => (row(x, i) - mean) * rstd;
    const a = (i: number) => row(g, i) * scale[i]!;
    let hBar = 0, aBar = 0, c = 0, d = 0, e = 0;
    for (let i = 0; i < cols; i++) {
      hBar += row(h, i) / cols;
      aBar += a(i) / cols;
      c += (a(i) * xhat(i)) / cols;
      d += (row(h, i) * xhat(i)) / cols;
      e += (row(h, i) * a(i)) / cols;
    }
    const k = rstd * rstd;
    const k1 = k * (Math.abs(3 * c * d) + Math.abs(e) + Math.abs(hBar * aBar));
    let m = 0;
    for (let i = 0; i < cols; i++) {
      m = Math.max(m, Math.abs(k1 * xhat(i)) + Math.abs(k * c * (row(h, i) - hBar)) + Math.abs(k * d * (a(i) - aBar)));
    }
    out.fill(m, r * cols, (r + 1) * cols);
  }
  return out;
}
