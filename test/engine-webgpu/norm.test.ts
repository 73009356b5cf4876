// WebGpuKernels.layerNorm and layerNormGradX against the reference (which accumulates row statistics in
// float64): channel counts below, at and above the 64-wide workgroup, 1 to 64 lanes per row, rows with a large mean next to a small
// spread (the case E[x^2] - E[x]^2 would lose in float32), the U-Net's shapes.
// Tolerances, with c = 1 + |mean| / std per row (x - mean in float32 carries an error of eps |mean|, which
// normalization scales by 1 / std): layerNorm |err| <= 32 eps * (|xhat scale| + |bias| + c |scale|) + 32 eps;
// layerNormGradX |err| <= 64 eps * c * the row's largest |output| (a sum of three terms of that size).
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
    for (const t of [gx, gg, gs, gb, out, dx]) k.release(t);
  }
});
