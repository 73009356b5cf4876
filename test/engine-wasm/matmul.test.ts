// WasmBackend.matmul against the reference backend: every transA/transB combination, batches with stride-0
// broadcast, sizes that do not divide the 4x8 tiles or the cache blocks, M/N/K of 1, large K (split-K),
// on 1 and 2 threads. Tolerance: |err| <= 1e-5 * sqrt(K) * sum_k |a_ik b_kj| (float32 accumulation).
import { test, after } from "node:test";
import type { MatmulArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { absCopy, assertClose, disposeBackends, randomIn, rng, wasmBackend } from "./helpers.ts";

after(disposeBackends);
const cpu = new CpuBackend();

type Dims = [batch: number, m: number, k: number, n: number, aBroadcast?: boolean, bBroadcast?: boolean];
const SHAPES: Dims[] = [
  [1, 1, 1, 1], [1, 1, 7, 1], [1, 3, 1, 5], [1, 4, 4, 8], [1, 5, 3, 9], [1, 1, 300, 1],
  [1, 17, 33, 13], [1, 64, 144, 16], [1, 100, 9, 1], [1, 37, 20, 2], [1, 29, 31, 3], [1, 16, 16, 4],
  [1, 130, 260, 270], [1, 7, 1000, 6], [1, 16, 3000, 16], [1, 300, 700, 12], [1, 2, 513, 1],
  [3, 5, 6, 7], [4, 16, 8, 16], [5, 9, 4, 4, true, false], [5, 9, 4, 4, false, true],
  [6, 13, 21, 10, true], [6, 13, 21, 10, false, true], [2, 33, 600, 9], [172, 4, 16, 4], [2, 1, 1, 1, false, true],
];

function check(threads: number, [batch, m, k, n, aB = false, bB = false]: Dims, transA: boolean, transB: boolean, seed: number): Promise<void> {
  return wasmBackend(threads).then((w) => {
    const rand = rng(seed);
    const a = randomIn(w, (aB ? 1 : batch) * m * k, rand);
    const b = randomIn(w, (bB ? 1 : batch) * k * n, rand);
    const out = w.alloc("float32", batch * m * n);
    out.fill(Number.NaN); // every element must be written
    const args: MatmulArgs = { batch, m, n, k, transA, transB, aBatchStride: aB ? 0 : m * k, bBatchStride: bB ? 0 : k * n };
    w.matmul(a, b, out, args);
    const ref = new Float32Array(batch * m * n);
    cpu.matmul(a, b, ref, args);
    const scale = new Float32Array(batch * m * n);
    cpu.matmul(absCopy(a), absCopy(b), scale, args);
    assertClose(out, ref, 1e-5 * Math.sqrt(k), scale, `matmul ${JSON.stringify(args)} threads ${threads}`, 1e-30);
    for (const t of [a, b, out]) w.release(t);
  });
}

for (const threads of [1, 2]) {
  test(`matmul, all transpose combinations, ${threads} thread(s)`, async () => {
    let seed = threads * 1000;
    for (const dims of SHAPES) for (const transA of [false, true]) for (const transB of [false, true]) await check(threads, dims, transA, transB, seed++);
  });
}

test("matmul: 2 threads with the default threshold (small products stay on one thread) and K = 0", async () => {
  const w = await wasmBackend(2, { parallelMinFlops: 400_000 });
  let seed = 77;
  for (const dims of [[1, 2, 3, 4], [1, 200, 100, 50], [1, 64, 2048, 8]] as Dims[]) await check(2, dims, false, false, seed++);
  const out = w.alloc("float32", 6).fill(5);
  w.matmul(w.alloc("float32", 0), w.alloc("float32", 0), out, { batch: 1, m: 2, n: 3, k: 0, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
  assertClose(out, new Float32Array(6), 0, null, "K = 0 gives zeros");
});
