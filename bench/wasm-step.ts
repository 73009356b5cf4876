// Times one training step of the U-Net (loss + gradient penalty + parameter gradients) on a backend,
// with a per-kernel profile. Usage: node --import tsx bench/wasm-step.ts [cpu|wasm] [features] [batch] [steps] [threads]
import * as td from "../src/engine/index.ts";
import type { Backend, ConvArgs, MatmulArgs } from "../src/engine/backend.ts";
import { initUNet, unetForward, type UNetParams } from "../src/nn/unet.ts";
import { diffusionLoss } from "../src/train/loss.ts";

const which = process.argv[2] ?? "wasm";
const features = Number(process.argv[3] ?? 16);
const batch = Number(process.argv[4] ?? 172);
const steps = Number(process.argv[5] ?? 3);
const threads = process.argv[6] ? Number(process.argv[6]) : undefined;
/**
 * CPU=1 measures process CPU time instead of wall time (meaningful with 1 thread on a busy machine: it
 * leaves out the time other processes hold the core).
 */
const cpuClock = !!process.env.CPU;
const now = (): number => {
  if (!cpuClock) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** DETAIL=1 keys elementwise kernels by their shapes too. */
const detail = !!process.env.DETAIL;

/** Wraps every kernel of a backend with a timer keyed by kernel name and a shape hint. */
function profiled(inner: Backend): { backend: Backend; table: Map<string, { n: number; ms: number; flops: number }> } {
  const table = new Map<string, { n: number; ms: number; flops: number }>();
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || prop === "alloc" || prop === "release") return typeof v === "function" ? v.bind(target) : v;
      return (...args: unknown[]) => {
        let key = String(prop);
        if (prop === "unary" || prop === "binary" || prop === "reduce") key += ":" + String(args[0]);
        if (detail && prop === "binary") key += ` [${String(args[2])}] [${String(args[4])}]`;
        if (detail && prop === "reduce") key += ` [${String(args[2])}] axes [${String(args[3])}]`;
        if (detail && (prop === "gather" || prop === "scatterAdd")) key += ` n=${(args[2] as ArrayLike<number>).length} index ${"heap" in target && (target as unknown as { heap: { owns(v: ArrayBufferView): boolean } }).heap.owns(args[1] as Int32Array) ? "in heap" : "plain"}`;
        if (detail && prop === "transpose") key += ` [${String(args[1])}] perm [${String(args[2])}]`;
        if (prop === "matmul") { const a = args[3] as td.Shape & Record<string, number>; key += `:${a.batch}x${a.m}x${a.k}x${a.n}${a.transA ? "T" : ""}${a.transB ? "T" : ""}`; }
        if (prop === "conv2d" || prop === "conv2dKernelGrad") { const a = args[3] as unknown as Record<string, number>; key += `:${a.b}x${a.h}x${a.w}x${a.c}->${a.o} k${a.kh}p${a.pad}`; }
        let flops = 0;
        if (prop === "matmul") { const a = args[3] as MatmulArgs; flops = 2 * a.batch * a.m * a.n * a.k; }
        if (prop === "conv2d" || prop === "conv2dKernelGrad") { const a = args[3] as ConvArgs; flops = 2 * a.b * a.oh * a.ow * a.kh * a.kw * a.c * a.o; }
        // REPEAT=1 runs products twice and times the second run (warm caches).
        if (flops && process.env.REPEAT) (v as (...a: unknown[]) => unknown).apply(target, args);
        const t0 = now();
        const r = (v as (...a: unknown[]) => unknown).apply(target, args);
        const e = table.get(key) ?? { n: 0, ms: 0, flops: 0 };
        e.n++; e.ms += now() - t0; e.flops += flops;
        table.set(key, e);
        return r;
      };
    },
  });
  return { backend, table };
}

async function makeBackend(): Promise<Backend & { dispose?: () => void }> {
  if (which === "cpu") return new td.CpuBackend();
  const { WasmBackend } = await import("../src/engine/backends/wasm/index.ts");
  // PAR_FLOPS / PAR_ELEMS / STALL_MS override the threading thresholds and the contention guard (tuning).
  const num = (v: string | undefined): number | undefined => (v ? Number(v) : undefined);
  return WasmBackend.create({ threads, parallelMinFlops: num(process.env.PAR_FLOPS), parallelMinElements: num(process.env.PAR_ELEMS), stallMs: num(process.env.STALL_MS) });
}

const inner = await makeBackend();
const { backend, table } = profiled(inner);
td.setBackend(backend);
const key = td.random.key(0);
const params = initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, key);
const images = td.random.normal(td.random.key(1), [batch, 8, 8, 1]);
const noise = td.random.normal(td.random.key(2), [batch, 8, 8, 1]);
const t = new Int32Array(batch).map((_, i) => (i * 37) % 1000);
const sa = Array.from({ length: 1000 }, (_, i) => Math.sqrt(1 - i / 1000));
const ss = Array.from({ length: 1000 }, (_, i) => Math.sqrt(i / 1000 + 1e-3));
const step = td.valueAndGrad((p: UNetParams) =>
  diffusionLoss((q: UNetParams, x, tt) => unetForward(q, x, tt), p, { images, t, noise, sqrtAlphaCumulative: sa, sqrtOneMinusAlphaCumulative: ss }, { penaltyWeight: 0.02 }).total);
const times: number[] = [];
for (let s = 0; s < steps; s++) {
  if (s === steps - 1) table.clear();
  const t0 = now();
  const loss = td.tidy(() => {
    const { value, grads } = step(params);
    return value.item() + (td.flattenTree(grads).size > 0 ? 0 : NaN);
  });
  times.push(now() - t0);
  console.log(`step ${s}: ${(times[s]! / 1000).toFixed(3)} s  loss ${loss.toFixed(5)}`);
}
const rows = [...table.entries()].sort((a, b) => b[1].ms - a[1].ms);
const total = rows.reduce((p, [, e]) => p + e.ms, 0);
console.log(`kernels: ${total.toFixed(0)} ms of ${times[times.length - 1]!.toFixed(0)} ms (last step)`);
const byKernel = new Map<string, { n: number; ms: number; flops: number }>();
for (const [k, e] of rows) {
  const name = k.split(/[: ]/)[0]!;
  const acc = byKernel.get(name) ?? { n: 0, ms: 0, flops: 0 };
  acc.n += e.n;
  acc.ms += e.ms;
  acc.flops += e.flops;
  byKernel.set(name, acc);
}
console.log("by kernel: " + [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms)
  .map(([k, e]) => `${k} ${e.ms.toFixed(1)} ms (${e.n}${e.flops ? `, ${(e.flops / 1e9).toFixed(2)} GFLOP, ${(e.flops / e.ms / 1e6).toFixed(1)} GFLOP/s` : ""})`).join(", "));
for (const [k, e] of rows.slice(0, Number(process.env.TOP ?? 45))) {
  console.log(`${e.ms.toFixed(1).padStart(8)} ms ${String(e.n).padStart(5)}x  ${k}${e.flops ? `  ${(e.flops / e.ms / 1e6).toFixed(1)} GFLOP/s` : ""}`);
}
if ("threadStats" in inner) console.log("threads:", JSON.stringify((inner as { threadStats: unknown }).threadStats));
inner.dispose?.();
