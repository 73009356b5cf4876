// The worker pool: many back-to-back jobs of different kinds on 2 threads (every kernel split, however
// small), results checked against the reference; workers must not keep the process alive (this file ends
// without dispose() for one backend); dispose() leaves a working single-threaded backend.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";
import { absCopy, assertClose, assertSame, randomIn, rng } from "./helpers.ts";

const cpu = new CpuBackend();

test("2000 alternating small jobs on 2 threads give the reference results", async () => {
  // stallMs 0: the contention guard (which may run jobs on one thread on a busy machine) is off here.
  const w = await WasmBackend.create({ threads: 2, parallelMinFlops: 0, parallelMinElements: 1, stallMs: 0 });
  const rand = rng(5);
  const a = randomIn(w, 64 * 48, rand), b = randomIn(w, 48 * 40, rand);
  const x = randomIn(w, 9000, rand), y = randomIn(w, 9000, rand);
  const mm = w.alloc("float32", 64 * 40), refMm = new Float32Array(64 * 40), scale = new Float32Array(64 * 40);
  const sum = w.alloc("float32", 9000), refSum = new Float32Array(9000);
  const th = w.alloc("float32", 9000), refTh = new Float32Array(9000);
  const args = { batch: 1, m: 64, n: 40, k: 48, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
  cpu.matmul(a, b, refMm, args);
  cpu.matmul(absCopy(a), absCopy(b), scale, args);
  cpu.binary("add", x, [9000], y, [9000], refSum, [9000]);
  cpu.unary("neg", x, refTh);
  for (let i = 0; i < 2000; i++) {
    const kind = i % 3;
    if (kind === 0) {
      mm.fill(NaN);
      w.matmul(a, b, mm, args);
      assertClose(mm, refMm, 1e-5 * Math.sqrt(48), scale, `matmul #${i}`, 1e-30);
    } else if (kind === 1) {
      sum.fill(NaN);
      w.binary("add", x, [9000], y, [9000], sum, [9000]);
      assertSame(sum, refSum, `add #${i}`);
    } else {
      th.fill(NaN);
      w.unary("neg", x, th);
      assertSame(th, refTh, `neg #${i}`);
    }
  }
  const stats = w.threadStats;
  assert.equal(stats.posted, 2000, "every job was offered to the workers");
  assert.ok(stats.joins <= stats.posted);
  w.dispose();
  // Still usable on the calling thread after dispose.
  mm.fill(NaN);
  w.matmul(a, b, mm, args);
  assertClose(mm, refMm, 1e-5 * Math.sqrt(48), scale, "matmul after dispose", 1e-30);
});

test("a backend that is never disposed does not keep the process alive", async () => {
  const w = await WasmBackend.create({ threads: 2 });
  const out = w.alloc("float32", 4);
  w.unary("neg", w.alloc("float32", 4).fill(1), out);
  assert.deepEqual([...out], [-1, -1, -1, -1]);
  // No dispose(): if the worker kept the event loop alive, this test file would never finish.
});

test("the synchronous constructor works before its workers are up", () => {
  const w = new WasmBackend({ threads: 2, parallelMinFlops: 0 });
  const rand = rng(8);
  const a = randomIn(w, 30 * 20, rand), b = randomIn(w, 20 * 10, rand);
  const out = w.alloc("float32", 300), ref = new Float32Array(300), scale = new Float32Array(300);
  const args = { batch: 1, m: 30, n: 10, k: 20, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
  w.matmul(a, b, out, args);
  cpu.matmul(a, b, ref, args);
  cpu.matmul(absCopy(a), absCopy(b), scale, args);
  assertClose(out, ref, 1e-5 * Math.sqrt(20), scale, "matmul", 1e-30);
  w.dispose();
});
