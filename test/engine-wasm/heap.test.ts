// The WasmBackend's allocator: alignment, reuse, best fit and coalescing of large blocks, growth (old views
// stay valid), ownership and fallback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ALIGN, sizeClass, WasmHeap } from "../../src/engine/backends/wasm/heap.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { rng } from "./helpers.ts";

test("size classes: multiples of 64, at most 25% (or 63 bytes) over the request, monotone", () => {
  let last = 0;
  for (let bytes = 1; bytes < 1 << 22; bytes += 1 + Math.floor(bytes / 7)) {
    const c = sizeClass(bytes);
    assert.ok(c >= bytes, `class ${c} < ${bytes}`);
    assert.equal(c % ALIGN, 0, `class ${c} not aligned`);
    assert.ok(c <= Math.max(bytes * 1.25, bytes + 63), `class ${c} wastes too much for ${bytes}`);
    assert.ok(c >= last, "monotone");
    last = c;
  }
});

test("blocks are 64-byte aligned, disjoint, and reused after release", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 20 });
  const blocks: [number, number][] = [];
  for (const n of [1, 3, 64, 65, 100, 1000, 4096, 10000, 7]) {
    const o = heap.allocBytes(n);
    assert.ok(o > 0);
    assert.equal(o % ALIGN, 0);
    blocks.push([o, sizeClass(n)]);
  }
  const sorted = [...blocks].sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i]![0] >= sorted[i - 1]![0] + sorted[i - 1]![1], "overlap");
  const [o1000] = blocks[5]!;
  heap.freeBytes(o1000);
  assert.equal(heap.allocBytes(1000), o1000, "same class reuses the freed block");
  heap.freeBytes(o1000);
  heap.freeBytes(o1000); // double release is ignored
  assert.equal(heap.allocBytes(990), o1000);
  assert.notEqual(heap.allocBytes(990), o1000);
});

test("large blocks: best fit, split, coalescing with free neighbours and the top", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 20, maximumBytes: 64 << 20 });
  const small = heap.allocBytes(1000); // its slab (1 MiB) comes first
  const start = heap.usedBytes;
  const a = heap.allocBytes(1 << 20), b = heap.allocBytes(2 << 20), c = heap.allocBytes(1 << 20), d = heap.allocBytes(100000);
  assert.deepEqual([b - a, c - b, d - c], [1 << 20, 2 << 20, 1 << 20], "consecutive, no class rounding");
  heap.freeBytes(a);
  heap.freeBytes(b); // coalesces with a: one free 3 MiB range
  const e = heap.allocBytes(2.5 * (1 << 20));
  assert.equal(e, a, "a 2.5 MiB block fits the merged range of a 1 and a 2 MiB block");
  const f = heap.allocBytes(300000); // best fit: the 0.5 MiB rest of that range, not the top
  assert.equal(f, a + 2.5 * (1 << 20));
  for (const o of [e, f, c, d, small]) heap.freeBytes(o);
  assert.equal(heap.usedBytes, start, "everything above the small blocks' slab went back to the top");
  assert.ok(heap.peakUsedBytes >= start + (4 << 20) + 100000);
  assert.equal(heap.allocatedBytes, 0);
});

test("random allocation and release: live blocks never overlap; everything freed returns the memory", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 20, maximumBytes: 256 << 20 });
  const rand = rng(5);
  const live = new Map<number, number>();
  for (let step = 0; step < 20000; step++) {
    if (live.size && (rand() < 0.45 || live.size > 300)) {
      const keys = [...live.keys()];
      const o = keys[Math.floor(rand() * keys.length)]!;
      heap.freeBytes(o);
      live.delete(o);
    } else {
      const r = rand();
      const bytes = r < 0.5 ? Math.ceil(rand() * 5000) : r < 0.9 ? Math.ceil(rand() * 3e6) : Math.ceil(rand() * 2e5) + 65536;
      const o = heap.allocBytes(bytes);
      assert.ok(o > 0 && o % ALIGN === 0);
      live.set(o, bytes);
    }
    if (step % 997 === 0) {
      const sorted = [...live.entries()].sort((p, q) => p[0] - q[0]);
      for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i]![0] >= sorted[i - 1]![0] + sorted[i - 1]![1], `overlap at step ${step}`);
    }
  }
  for (const o of live.keys()) heap.freeBytes(o);
  assert.equal(heap.allocatedBytes, 0);
  // Only the slabs of small blocks stay carved (each a permanent 1 MiB), and the free ranges between them.
  assert.ok(heap.usedBytes < 32 << 20 && heap.usedBytes < heap.peakUsedBytes / 4, `used ${heap.usedBytes} of a peak of ${heap.peakUsedBytes}`);
});

test("growth keeps earlier views valid and sharing the same bytes", () => {
  const heap = new WasmHeap({ initialBytes: 65536, maximumBytes: 64 << 20 });
  const o = heap.allocBytes(4000);
  const early = heap.f32(o, 1000);
  early.fill(1.5);
  const sizeBefore = heap.size;
  const big = heap.allocBytes(8 << 20);
  assert.ok(big > 0);
  assert.ok(heap.size > sizeBefore, "the memory grew");
  const later = heap.f32(o, 1000);
  assert.notEqual(later.buffer, early.buffer, "a new buffer object after growth");
  assert.equal(early[999], 1.5);
  later[3] = 7;
  assert.equal(early[3], 7, "old and new views alias the same memory");
  assert.ok(heap.owns(early) && heap.owns(later));
  assert.ok(!heap.owns(new Float32Array(4)));
  assert.equal(heap.allocBytes(128 << 20), -1, "beyond the maximum");
});

test("WasmBackend storage: float32/int32 in the heap, float64 plain; release recycles; full memory falls back", () => {
  const backend = new WasmBackend({ threads: 1, initialBytes: 4 << 20, maximumBytes: 8 << 20 });
  const a = backend.alloc("float32", 1000);
  const i = backend.alloc("int32", 10);
  const d = backend.alloc("float64", 10);
  assert.ok(a instanceof Float32Array && backend.heap.owns(a));
  assert.ok(i instanceof Int32Array && backend.heap.owns(i));
  assert.ok(d instanceof Float64Array && !backend.heap.owns(d));
  assert.equal(a.byteOffset % ALIGN, 0);
  const offset = a.byteOffset;
  backend.release(a);
  assert.equal(backend.alloc("float32", 1000).byteOffset, offset);
  assert.equal(backend.alloc("float32", 0).length, 0);
  // Beyond the maximum: plain arrays (with a warning), and the kernels still work on them.
  const warn = console.warn;
  let warned = 0;
  console.warn = () => void warned++;
  try {
    const huge = backend.alloc("float32", 4 << 20);
    assert.ok(huge instanceof Float32Array && !backend.heap.owns(huge));
    assert.equal(warned, 1);
    const x = backend.alloc("float32", 6), y = new Float32Array([1, 2, 3, 4, 5, 6]);
    x.set([1, 0, 0, 1, 1, 1]);
    const out = backend.alloc("float32", 4), ref = new Float32Array(4);
    const args = { batch: 1, m: 2, n: 2, k: 3, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
    backend.matmul(x, y, out, args);
    new CpuBackend().matmul(x, y, ref, args);
    assert.deepEqual([...out], [...ref]);
  } finally {
    console.warn = warn;
    backend.dispose();
  }
});

test("kernels fall back to the reference when a helper buffer does not fit in a full memory", () => {
  const backend = new WasmBackend({ threads: 1, initialBytes: 2 << 20, maximumBytes: 2 << 20 });
  try {
    const args = { b: 2, h: 5, w: 5, c: 4, kh: 3, kw: 3, o: 3, pad: 1, oh: 5, ow: 5 };
    const x = backend.alloc("float32", 2 * 25 * 4), k = backend.alloc("float32", 9 * 4 * 3), y = backend.alloc("float32", 2 * 25 * 3);
    assert.ok(backend.heap.owns(x) && backend.heap.owns(k) && backend.heap.owns(y));
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i);
    for (let i = 0; i < k.length; i++) k[i] = Math.cos(i);
    // Fill the rest of the memory so that the tap table cannot be allocated.
    while (backend.heap.allocBytes(64) > 0);
    backend.conv2d(x, k, y, args);
    const ref = new Float32Array(y.length);
    new CpuBackend().conv2d(x, k, ref, args);
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(y[i]! - ref[i]!) <= 1e-5 * (1 + Math.abs(ref[i]!)));
  } finally {
    backend.dispose();
  }
});
