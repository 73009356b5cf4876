// WasmBackend.adamw (the fused AdamW update, f32x4) against the reference CPU backend: bit-exact, since
// every f32x4 add/mul/div/sqrt rounds once as the reference's Math.fround chain does. All branches (element
// clip, norm scaling incl. a NaN norm, weight decay or not), sizes with a scalar tail, 1 and 2 threads,
// and special gradient values (NaN, +-inf, huge) in the gradient.
import { test, after } from "node:test";
import type { AdamWArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { assertSame, disposeBackends, rng, wasmBackend } from "./helpers.ts";

after(disposeBackends);
const cpu = new CpuBackend();
const BASE: AdamWArgs = { elementClip: 0.3, maxNorm: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 2e-5 };
/** The step's [norm, lr, bc1, bc2] for a norm. */
const scalars = (norm: number) => new Float32Array([norm, 3e-4, 0.19, 0.001999]);
const CASES: [string, Partial<AdamWArgs>, number][] = [
  ["both clips, norm below", {}, 0.25], ["both clips, norm scales", {}, 1.7], ["NaN norm", {}, NaN],
  ["no clips", { elementClip: null, maxNorm: null }, 3], ["no weight decay", { weightDecay: 0 }, 0.9],
];

for (const threads of [1, 2]) {
  test(`adamw equals the reference bit for bit (${threads} thread${threads > 1 ? "s" : ""})`, async () => {
    const wasm = await wasmBackend(threads);
    const rand = rng(threads);
    for (const n of [1, 7, 4096, 70_001]) { // 70,001 x cost 4 passes the pool's 262,144 threshold: threads split it
      const arrays = [0, 1, 2, 3].map(() => wasm.alloc("float32", n) as Float32Array);
      const [p, g, m, v] = arrays as [Float32Array, Float32Array, Float32Array, Float32Array];
      for (let i = 0; i < n; i++) {
        p[i] = (rand() * 2 - 1) * 2;
        g[i] = i % 97 === 5 ? [NaN, Infinity, -Infinity, 3e38][i % 4]! : (rand() * 2 - 1) * 0.6;
        m[i] = (rand() * 2 - 1) * 0.1;
        v[i] = rand() * rand() * 0.01;
      }
      for (const [what, change, norm] of CASES) {
        const args = { ...BASE, ...change };
        const outs = [0, 1, 2].map(() => wasm.alloc("float32", n) as Float32Array);
        const refs = [0, 1, 2].map(() => new Float32Array(n));
        wasm.adamw(p, g, m, v, scalars(norm), args, outs[0]!, outs[1]!, outs[2]!);
        cpu.adamw(p.slice(), g.slice(), m.slice(), v.slice(), scalars(norm), args, refs[0]!, refs[1]!, refs[2]!);
        ["p", "m", "v"].forEach((name, k) => assertSame(outs[k]!, refs[k]!, `n ${n}, ${what}: ${name}`));
        for (const o of outs) wasm.release(o);
      }
      for (const a of arrays) wasm.release(a);
    }
  });
}
