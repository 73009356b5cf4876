// GFLOP/s of the WebGPU GEMM kernels on whatever adapter is present (TINY_DIFFUSION_WEBGPU picks one):
// a 1024^3 matmul and the U-Net's 3x3 convolutions at batch 172 on 8x8 digits (features 64): forward
// (M = 172*H*W, K = 9*C, N = C_out) and kernel gradient (M = 9*C, K = 172*H*W, N = C_out).
//   node --import tsx bench/webgpu-gemm.ts            (QUICK=1: fewer repetitions; FEATURES=16|32|64)
// Each measurement encodes `reps` launches into one submit and waits for the queue to drain, so the time
// is GPU time plus one submit; the first (compiling) launch is not timed.
import { describeAdapter } from "../src/engine/backends/webgpu/device.ts";
import { WebGpuKernels, type GpuArray } from "../src/engine/backends/webgpu/kernels.ts";

const k = await WebGpuKernels.create();
console.log(`adapter: ${describeAdapter(k.info!)}`);
const quick = !!process.env.QUICK;
const features = Number(process.env.FEATURES ?? 64);
const batch = Number(process.env.BATCH ?? 172);

function random(n: number): GpuArray {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return k.upload(a);
}

/** Seconds per launch: launches until ~minSeconds have passed (at least 2 after a warm-up). */
async function time(launch: () => void, flops: number): Promise<number> {
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

function report(name: string, flops: number, seconds: number): void {
  console.log(`${name.padEnd(44)} ${(seconds * 1e3).toFixed(2).padStart(10)} ms ${(flops / seconds / 1e9).toFixed(1).padStart(9)} GFLOP/s`);
}

{
  const n = 1024;
  const a = random(n * n);
  const b = random(n * n);
  const c = k.alloc("float32", n * n);
  const flops = 2 * n * n * n;
  report("matmul 1024x1024x1024", flops, await time(() => k.matmul(a, b, c, { batch: 1, m: n, n, k: n, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 }), flops));
  report("matmul 1024^3, A and B transposed", flops, await time(() => k.matmul(a, b, c, { batch: 1, m: n, n, k: n, transA: true, transB: true, aBatchStride: 0, bBatchStride: 0 }), flops));
  for (const t of [a, b, c]) k.release(t);
}

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
  const x = random(M * c);
  const w = random(K * o);
  const y = k.alloc("float32", M * o);
  const flops = 2 * M * K * o;
  report(`conv2d ${s}x${s} ${c}->${o} (M ${M}, K ${K}, N ${o})`, flops, await time(() => k.conv2d(x, w, y, args), flops));
  report(`  kernel grad (M ${K}, K ${M}, N ${o})`, flops, await time(() => k.conv2dKernelGrad(x, y, w, args), flops));
  for (const t of [x, w, y]) k.release(t);
}
console.log(JSON.stringify(k.stats()));
k.destroy();
