// Time per call of the WasmBackend's elementwise kernels (1 and N threads) vs the reference backend.
// Usage: node --import tsx bench/wasm-elementwise.ts
import type { Shape } from "../src/engine/backend.ts";
import { CpuBackend } from "../src/engine/backends/cpu/index.ts";
import { WasmBackend } from "../src/engine/backends/wasm/index.ts";

const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);
function timeIt(fn: () => void): number {
  fn();
  let best = Infinity;
  const start = performance.now();
  let reps = 0;
  while (performance.now() - start < 300 || reps < 5) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) fn();
    best = Math.min(best, (performance.now() - t0) / 10);
    reps++;
  }
  return best * 1000; // microseconds
}

const cases: [string, Shape, Shape][] = [
  ["mul same", [172, 8, 8, 16], [172, 8, 8, 16]],
  ["mul scalar", [172, 8, 8, 16], [1, 1, 1, 1]],
  ["add bias", [172, 8, 8, 16], [1, 1, 1, 16]],
  ["mul row", [172, 8, 8, 16], [172, 8, 8, 1]],
  ["add time", [172, 8, 8, 16], [172, 1, 1, 16]],
  ["mul same small", [172, 2, 2, 64], [172, 2, 2, 64]],
];
const w1 = await WasmBackend.create({ threads: 1 });
const wN = await WasmBackend.create({});
const cpu = new CpuBackend();
console.log(`microseconds per call: wasm x1, wasm x${wN.threads}, reference`);
for (const [label, as, bs] of cases) {
  const os = as.map((d, i) => Math.max(d, bs[i]!));
  const row = [label.padEnd(16)];
  for (const b of [w1, wN, cpu] as CpuBackend[]) {
    const a = b.alloc("float32", size(as)).fill(1.5), bb = b.alloc("float32", size(bs)).fill(0.5), o = b.alloc("float32", size(os));
    row.push(timeIt(() => b.binary(label.startsWith("add") ? "add" : "mul", a, as, bb, bs, o, os)).toFixed(1).padStart(9));
  }
  console.log(row.join(" "));
}
for (const op of ["tanh", "neg", "exp"] as const) {
  const row = [`${op} 176128`.padEnd(16)];
  for (const b of [w1, wN, cpu] as CpuBackend[]) {
    const x = b.alloc("float32", 176128).fill(0.3), o = b.alloc("float32", 176128);
    row.push(timeIt(() => b.unary(op, x, o)).toFixed(1).padStart(9));
  }
  console.log(row.join(" "));
}
for (const [shape, axes] of [[[172, 8, 8, 16], [3]], [[172, 8, 8, 16], [0, 1, 2]]] as [Shape, number[]][]) {
  const row = [`sum [${axes}]`.padEnd(16)];
  for (const b of [w1, wN, cpu] as CpuBackend[]) {
    const x = b.alloc("float32", size(shape)).fill(0.3), o = b.alloc("float32", size(shape.map((d, i) => (axes.includes(i) ? 1 : d))));
    row.push(timeIt(() => b.reduce("sum", x, shape, axes, o)).toFixed(1).padStart(9));
  }
  console.log(row.join(" "));
}
w1.dispose();
wN.dispose();
