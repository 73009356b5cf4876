// Where splitting a kernel across threads starts to pay: time per call of square matmuls and of binary
// adds of growing size, on 1 thread and on all threads with no threshold. Run on an otherwise idle machine.
// Usage: node --import tsx bench/wasm-threshold.ts
import { WasmBackend } from "../src/engine/backends/wasm/index.ts";

const one = await WasmBackend.create({ threads: 1 });
const all = await WasmBackend.create({ parallelMinFlops: 0, parallelMinElements: 0, stallMs: 0 });

function best(fn: () => void): number {
  fn();
  let b = Infinity;
  const start = performance.now();
  while (performance.now() - start < 200) {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) fn();
    b = Math.min(b, (performance.now() - t0) / 20);
  }
  return b * 1000;
}

console.log(`matmul n x n x n: microseconds on 1 thread / ${all.threads} threads`);
for (const n of [16, 24, 32, 48, 64, 96, 128, 192]) {
  const row = [`n=${n} (${((2 * n * n * n) / 1e6).toFixed(2)} MFLOP)`.padEnd(22)];
  for (const w of [one, all]) {
    const a = w.alloc("float32", n * n).fill(1), b = w.alloc("float32", n * n).fill(1), o = w.alloc("float32", n * n);
    const args = { batch: 1, m: n, n, k: n, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
    row.push(best(() => w.matmul(a, b, o, args)).toFixed(1).padStart(9));
  }
  console.log(row.join(" "));
}
console.log(`add of n elements: microseconds on 1 thread / ${all.threads} threads`);
for (const n of [4096, 16384, 65536, 131072, 262144, 1048576]) {
  const row = [`n=${n}`.padEnd(22)];
  for (const w of [one, all]) {
    const a = w.alloc("float32", n).fill(1), b = w.alloc("float32", n).fill(2), o = w.alloc("float32", n);
    row.push(best(() => w.binary("add", a, [n], b, [n], o, [n])).toFixed(1).padStart(9));
  }
  console.log(row.join(" "));
}
one.dispose();
all.dispose();
