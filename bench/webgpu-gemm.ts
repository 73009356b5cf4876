// GFLOP/s of the WebGPU GEMM kernels on whatever adapter is present (TINY_DIFFUSION_WEBGPU picks one):
// a 1024^3 matmul and the U-Net's 3x3 convolutions at batch 172 on 8x8 digits (features 64): forward
// (M = 172*H*W, K = 9*C, N = C_out) and kernel gradient (M = 9*C, K = 172*H*W, N = C_out), for each tile
// height (the backend's gemmRows: 4 rows per invocation = 64x64 tiles, 8 = 128x64) side by side.
//   node --import tsx bench/webgpu-gemm.ts            (QUICK=1: fewer repetitions; FEATURES=16|32|64; ROWS=4,8)
// Each measurement encodes `reps` launches into one submit and waits for the queue to drain, so the time
// is GPU time plus one submit; the first (compiling) launch is not timed.
import { describeAdapter } from "../src/engine/backends/webgpu/device.ts";
import { WebGpuKernels, type GpuArray } from "../src/engine/backends/webgpu/kernels.ts";
import type { GemmRows } from "../src/engine/backends/webgpu/shaders/gemm.ts";

const rowsList = (process.env.ROWS ?? "4,8").split(",").map((r) => Number(r) as GemmRows);
// One device: the first kernel set owns it, the others share it (with its split-K default).
const first = await WebGpuKernels.create({ gemmRows: rowsList[0] });
const splitKMinWorkgroups = first.info?.software ? 4 : 256;
const all = [first, ...rowsList.slice(1).map((gemmRows) => new WebGpuKernels(first.device, { gemmRows, splitKMinWorkgroups }))];
console.log(`adapter: ${describeAdapter(all[0]!.info!)}`);
const quick = !!process.env.QUICK;
const features = Number(process.env.FEATURES ?? 64);
const batch = Number(process.env.BATCH ?? 172);

function random(k: WebGpuKernels, n: number): GpuArray {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return k.upload(a);
}

/** Seconds per launch: launches until ~minSeconds have passed (at least 2 after a warm-up). */
async function time(k: WebGpuKernels, launch: () => void, flops: number): Promise<number> {
  launch();
  await k.sync();
  const minSeconds = quick ? 0.3 : 1.5;
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) launch();
    await k.sync();
    const s = (performance.now() - t0) / 1000;
    if (s >= minSeconds || reps >= 4096) return s / reps;
    reps = Math.max(reps * 2, Math.ceil((reps * minSeconds) / Math.max(s, 1e-4)));
    if (flops * reps > 5e12) reps = Math.max(1, Math.floor(5e12 / flops));
  }
}

console.log(`${"".padEnd(44)} ${rowsList.map((r) => `${r} rows: ms     GFLOP/s`.padStart(28)).join("")}`);
const totals = rowsList.map(() => 0);
/** Times `setup`'s launch on every kernel set; `launch` gets that set's kernels and buffers. */
async function measure(name: string, flops: number, setup: (k: WebGpuKernels) => { launch: () => void; buffers: GpuArray[] }): Promise<void> {
  const cells: string[] = [];
  for (const [i, k] of all.entries()) {
    const { launch, buffers } = setup(k);
    const seconds = await time(k, launch, flops);
    totals[i] += seconds;
    cells.push(`${(seconds * 1e3).toFixed(3).padStart(14)} ${(flops / seconds / 1e9).toFixed(1).padStart(11)}  `);
    for (const t of buffers) k.release(t);
  }
  console.log(`${name.padEnd(44)} ${cells.join("")}`);
}

{
  const n = 1024;
  const flops = 2 * n * n * n;
  for (const trans of [false, true]) {
    await measure(trans ? "matmul 1024^3, A and B transposed" : "matmul 1024x1024x1024", flops, (k) => {
      const [a, b, c] = [random(k, n * n), random(k, n * n), k.alloc("float32", n * n)];
      return { launch: () => k.matmul(a, b, c, { batch: 1, m: n, n, k: n, transA: trans, transB: trans, aBatchStride: 0, bBatchStride: 0 }), buffers: [a, b, c] };
    });
  }
}
totals.fill(0); // the sums below are of the U-Net's products only

const f = features;
// [spatial size, C in, C out] of the U-Net's 3x3 convolutions (down path, then up path with concatenated skips).
const convs: [number, number, number][] = [
  [8, 1, f], [8, f, f], [4, f, 2 * f], [4, 2 * f, 2 * f], [2, 2 * f, 4 * f], [2, 4 * f, 4 * f],
  [2, 12 * f, 4 * f], [4, 6 * f, 2 * f], [8, 3 * f, f], [8, f, 1],
];
for (const [s, c, o] of convs) {
  const args = { b: batch, h: s, w: s, c, kh: 3, kw: 3, o, pad: 1, oh: s, ow: s };
  const M = batch * s * s;
  const K = 9 * c;
  const flops = 2 * M * K * o;
  const operands = (k: WebGpuKernels) => [random(k, M * c), random(k, K * o), k.alloc("float32", M * o)] as const;
  await measure(`conv2d ${s}x${s} ${c}->${o} (M ${M}, K ${K}, N ${o})`, flops, (k) => {
    const [x, w, y] = operands(k);
    return { launch: () => k.conv2d(x, w, y, args), buffers: [x, w, y] };
  });
  await measure(`  kernel grad (M ${K}, K ${M}, N ${o})`, flops, (k) => {
    const [x, w, y] = operands(k);
    return { launch: () => k.conv2dKernelGrad(x, y, w, args), buffers: [x, w, y] };
  });
}
console.log(`${"sum of the convolutions above (ms)".padEnd(44)} ${totals.map((t) => `${(t * 1e3).toFixed(3).padStart(14)}${"".padStart(14)}`).join("")}`);
for (const k of [...all].reverse()) k.destroy(); // the device's owner last
