// GFLOP/s of the WasmBackend's GEMM and convolutions (1 and N threads) against the reference CPU backend.
// Usage: node --import tsx bench/gemm.ts [--quick] [--no-ref]
import type { ConvArgs, MatmulArgs, TypedArray } from "../src/engine/backend.ts";
import { CpuBackend } from "../src/engine/backends/cpu/index.ts";
import { WasmBackend } from "../src/engine/backends/wasm/index.ts";

const quick = process.argv.includes("--quick");
const withRef = !process.argv.includes("--no-ref");
const minSeconds = quick ? 0.2 : 0.6;

type Case =
  | { kind: "matmul"; label: string; args: MatmulArgs }
  | { kind: "conv2d" | "conv2dKernelGrad"; label: string; args: ConvArgs };

const mm = (m: number, k: number, n: number, transA = false, transB = false, batch = 1): Case => ({
  kind: "matmul",
  label: `matmul ${batch > 1 ? batch + "x" : ""}${m}x${k}x${n}${transA ? " A^T" : ""}${transB ? " B^T" : ""}`,
  args: { batch, m, n, k, transA, transB, aBatchStride: m * k, bBatchStride: k * n },
});
const conv = (kind: "conv2d" | "conv2dKernelGrad", b: number, hw: number, c: number, o: number, ks = 3): Case => {
  const pad = (ks - 1) / 2;
  return { kind, label: `${kind} ${b}x${hw}x${hw}x${c}->${o} k${ks}`, args: { b, h: hw, w: hw, c, kh: ks, kw: ks, o, pad, oh: hw, ow: hw } };
};

const cases: Case[] = [
  mm(1024, 1024, 1024),
  mm(11008, 144, 16),
  mm(11008, 432, 16),
  mm(2752, 288, 32),
  mm(688, 576, 64),
  mm(172, 256, 256),
  mm(144, 11008, 16, true),
  conv("conv2d", 172, 8, 16, 16),
  conv("conv2d", 172, 8, 48, 16),
  conv("conv2d", 172, 4, 32, 32),
  conv("conv2d", 172, 2, 64, 64),
  conv("conv2d", 172, 8, 16, 1),
  conv("conv2dKernelGrad", 172, 8, 16, 16),
  conv("conv2dKernelGrad", 172, 8, 48, 16),
  conv("conv2dKernelGrad", 172, 4, 32, 32),
  conv("conv2dKernelGrad", 172, 2, 64, 64),
];

function flops(c: Case): number {
  if (c.kind === "matmul") return 2 * c.args.batch * c.args.m * c.args.n * c.args.k;
  const a = c.args;
  return 2 * a.b * a.oh * a.ow * a.kh * a.kw * a.c * a.o;
}

function sizes(c: Case): [number, number, number] {
  if (c.kind === "matmul") {
    const a = c.args;
    return [a.batch * a.m * a.k, a.batch * a.k * a.n, a.batch * a.m * a.n];
  }
  const a = c.args;
  const x = a.b * a.h * a.w * a.c, g = a.b * a.oh * a.ow * a.o, k = a.kh * a.kw * a.c * a.o;
  return c.kind === "conv2d" ? [x, k, g] : [x, g, k];
}

function time(backend: CpuBackend, c: Case): number {
  const [na, nb, nc] = sizes(c);
  const a = backend.alloc("float32", na), b = backend.alloc("float32", nb), out = backend.alloc("float32", nc);
  for (const arr of [a, b]) for (let i = 0; i < arr.length; i++) arr[i] = Math.sin(i * 0.37);
  const call = (): void => {
    if (c.kind === "matmul") backend.matmul(a, b, out, c.args);
    else if (c.kind === "conv2d") backend.conv2d(a, b, out, c.args);
    else backend.conv2dKernelGrad(a, b, out, c.args);
  };
  call();
  let reps = 0;
  const start = performance.now();
  let best = Infinity;
  while (performance.now() - start < minSeconds * 1000 || reps < 3) {
    const t0 = performance.now();
    call();
    best = Math.min(best, performance.now() - t0);
    reps++;
    if (backend.name === "cpu" && performance.now() - start > 2000) break;
  }
  for (const arr of [a, b, out] as TypedArray[]) backend.release(arr);
  return best / 1000;
}

const threadsN = Number(process.env.THREADS ?? 0) || undefined;
const w1 = await WasmBackend.create({ threads: 1 });
// The contention guard is off here: the N-thread column measures what the threads can do (best of runs).
const wN = await WasmBackend.create({ threads: threadsN, stallMs: 0 });
const cpu = new CpuBackend();
console.log(`WasmBackend GEMM, best of repeated runs; GFLOP/s (ms). Threads: 1 and ${wN.threads}.`);
console.log(`${"case".padEnd(38)} ${"wasm x1".padStart(16)} ${("wasm x" + wN.threads).padStart(16)}${withRef ? "   reference".padStart(16) : ""}`);
for (const c of cases) {
  const f = flops(c);
  const fmt = (s: number): string => `${(f / s / 1e9).toFixed(1).padStart(6)} (${(s * 1000).toFixed(2).padStart(7)})`;
  const t1 = time(w1, c);
  const tN = time(wN, c);
  const tr = withRef && (f < 3e9 || !quick) ? time(cpu, c) : NaN;
  console.log(`${c.label.padEnd(38)} ${fmt(t1).padStart(16)} ${fmt(tN).padStart(16)}${withRef ? (Number.isNaN(tr) ? "-" : fmt(tr)).padStart(16) : ""}`);
}
w1.dispose();
wN.dispose();
