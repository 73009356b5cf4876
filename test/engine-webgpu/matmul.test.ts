// WebGpuKernels.matmul against the reference backend: every transA/transB combination, batches with stride-0
// broadcast of either operand, sizes that do not divide the 64x64x16 tiles, M/N/K of 1, K = 0, and split-K
// (forced with splitKMinWorkgroups) next to the single-pass kernel; the same with 128x64 tiles (gemmRows 8)
// and with 32x32 tiles of 64 invocations (smallTiles, forced by a split-K threshold no product reaches).
// Tolerance: |err| <= 2e-6 * sqrt(K) * sum_k |a_ik b_kj| + 1e-30 (float32 accumulation; the reference
// accumulates in float64 and rounds once).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { MatmulArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import type { WebGpuKernels } from "../../src/engine/backends/webgpu/kernels.ts";
import { absCopy, assertClose, assertSame, kernels, poisoned, randomF32, rng } from "./helpers.ts";

const cpu = new CpuBackend();

type Dims = [batch: number, m: number, k: number, n: number, aBroadcast?: boolean, bBroadcast?: boolean];
const SHAPES: Dims[] = [
  [1, 1, 1, 1], [1, 1, 7, 1], [1, 3, 1, 5], [1, 5, 3, 9], [1, 1, 300, 1], [1, 17, 33, 13], [1, 64, 16, 64],
  [1, 65, 17, 63], [1, 100, 9, 1], [1, 29, 31, 3], [1, 130, 260, 70], [1, 7, 1000, 6], [1, 2, 513, 1],
  [3, 5, 6, 7], [4, 16, 8, 16], [5, 9, 4, 4, true, false], [5, 9, 4, 4, false, true],
  [6, 13, 21, 10, true], [6, 13, 21, 10, false, true], [2, 33, 600, 9], [40, 4, 16, 4], [2, 1, 1, 1, false, true],
  [3, 70, 40, 66, false, true],
];

async function check(k: WebGpuKernels, [batch, m, kk, n, aB = false, bB = false]: Dims, transA: boolean, transB: boolean, seed: number, what: string): Promise<void> {
  const rand = rng(seed);
  const a = randomF32((aB ? 1 : batch) * m * kk, rand);
  const b = randomF32((bB ? 1 : batch) * kk * n, rand);
  const args: MatmulArgs = { batch, m, n, k: kk, transA, transB, aBatchStride: aB ? 0 : m * kk, bBatchStride: bB ? 0 : kk * n };
  const ga = k.upload(a);
  const gb = k.upload(b);
  const gout = poisoned(k, "float32", batch * m * n);
  k.matmul(ga, gb, gout, args);
  const got = await k.download(gout);
  const ref = new Float32Array(batch * m * n);
  cpu.matmul(a, b, ref, args);
  const scale = new Float32Array(batch * m * n);
  cpu.matmul(absCopy(a), absCopy(b), scale, args);
  assertClose(got, ref, 2e-6 * Math.sqrt(kk), scale, `${what} matmul ${JSON.stringify(args)}`, 1e-30);
  for (const t of [ga, gb, gout]) k.release(t);
}

test("matmul: all transpose combinations, odd sizes, batch broadcast (one pass per tile)", async () => {
  const k = await kernels({ splitKMinWorkgroups: 1 });
  let seed = 1;
  for (const dims of SHAPES) for (const transA of [false, true]) for (const transB of [false, true]) await check(k, dims, transA, transB, seed++, "single-pass");
});

test("matmul: split-K (partial products summed by the reduce kernel)", async () => {
  const k = await kernels({ splitKMinWorkgroups: 1 << 20, splitKMinLength: 16 });
  let seed = 500;
  const shapes: Dims[] = [[1, 7, 1000, 6], [1, 130, 260, 70], [1, 2, 513, 1], [2, 33, 600, 9], [3, 20, 2000, 5, true], [1, 64, 4096, 64]];
  for (const dims of shapes) for (const transA of [false, true]) for (const transB of [false, true]) await check(k, dims, transA, transB, seed++, "split-K");
});

test("matmul with 8 rows per invocation (128x64 tiles): transposes, broadcast, single-pass and split-K", async () => {
  const single = await kernels({ splitKMinWorkgroups: 1, gemmRows: 8 });
  const split = await kernels({ splitKMinWorkgroups: 1 << 20, splitKMinLength: 16, gemmRows: 8 });
  let seed = 700;
  const shapes: Dims[] = [[1, 1, 1, 1], [1, 65, 17, 63], [1, 130, 260, 70], [1, 257, 40, 5], [6, 13, 21, 10, true], [3, 70, 40, 66, false, true]];
  for (const dims of shapes) for (const transA of [false, true]) for (const transB of [false, true]) {
    await check(single, dims, transA, transB, seed++, "8 rows, single-pass");
    await check(split, dims, transA, transB, seed++, "8 rows, split-K");
  }
});

test("matmul with small tiles (32x32, 64 invocations): transposes, broadcast, single-pass and split-K", async () => {
  // Every product has fewer tiles than 1 << 20: all take small tiles; a huge least split length keeps K whole.
  const single = await kernels({ smallTiles: true, splitKMinWorkgroups: 1 << 20, splitKMinLength: 1 << 20 });
  const split = await kernels({ smallTiles: true, splitKMinWorkgroups: 1 << 20, splitKMinLength: 16 });
  let seed = 800;
  const shapes: Dims[] = [[1, 1, 1, 1], [1, 33, 17, 31], [1, 65, 17, 63], [1, 130, 260, 70], [1, 7, 1000, 6], [6, 13, 21, 10, true], [3, 70, 40, 66, false, true]];
  for (const dims of shapes) for (const transA of [false, true]) for (const transB of [false, true]) {
    await check(single, dims, transA, transB, seed++, "small tiles, single-pass");
    await check(split, dims, transA, transB, seed++, "small tiles, split-K");
  }
  for (const k of [single, split]) assert.ok(k.pipelineKeys().includes("matmul:s32@main"), `the small-tile kernel ran: ${k.pipelineKeys().join(", ")}`);
});

test("matmul: K = 0 gives zeros; empty outputs are a no-op", async () => {
  const k = await kernels();
  const out = poisoned(k, "float32", 6);
  k.matmul(k.alloc("float32", 0), k.alloc("float32", 0), out, { batch: 1, m: 2, n: 3, k: 0, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
  assertSame(await k.download(out), new Float32Array(6), "K = 0"); // exact
  k.matmul(k.alloc("float32", 4), k.alloc("float32", 0), k.alloc("float32", 0), { batch: 1, m: 4, n: 0, k: 1, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
  await k.sync();
});

test("matmul: a 256x384x320 product (several tiles each way, long K loop)", async () => {
  const k = await kernels();
  await check(k, [1, 256, 384, 320], false, false, 900, "large");
  await check(k, [1, 256, 384, 320], true, true, 901, "large");
});
