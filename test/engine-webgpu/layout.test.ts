// WebGpuKernels data movement against the reference backend: transpose (every permutation of ranks 1-4,
// size-1 axes, rank 6), copyBox (slices, padInto-style placement, concat pieces, scalars, contiguous runs),
// padInto (zeros around a box, one kernel),
// gather, scatterAdd (GPU-built inverse index, CPU plan, unique), maxPool2x2 with odd maps.
// All exact (values are moved, not computed) except scatterAdd sums: |err| <= 4 eps * count * sum |g| over
// an output's inputs; outputs with <= 16 inputs are summed in index order and must match bit for bit on
// repeated runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Shape } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { absCopy, assertClose, assertSame, kernels, poisoned, randomF32, randomI32, rng } from "./helpers.ts";

const cpu = new CpuBackend();
const EPS = 2 ** -23;

function size(shape: Shape): number {
  return shape.reduce((p, d) => p * d, 1);
}

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

test("transpose: every permutation of ranks 1-4, size-1 axes, rank 6, int32 (exact)", async () => {
  const k = await kernels();
  const rand = rng(1);
  const shapes: Shape[] = [[5], [3, 7], [1, 9], [2, 3, 4], [3, 1, 5], [2, 3, 4, 5], [4, 1, 3, 1], [64, 3, 3, 33]];
  for (const shape of shapes) {
    const x = randomF32(size(shape), rand);
    const gx = k.upload(x);
    for (const perm of permutations(shape.length)) {
      const out = poisoned(k, "float32", x.length);
      k.transpose(gx, shape, perm, out);
      const ref = new Float32Array(x.length);
      cpu.transpose(x, shape, perm, ref);
      assertSame(await k.download(out), ref, `transpose ${JSON.stringify(shape)} perm ${JSON.stringify(perm)}`);
      k.release(out);
    }
    k.release(gx);
  }
  const shape6 = [2, 3, 1, 4, 2, 3];
  const perm6 = [5, 3, 0, 2, 4, 1];
  const xi = randomI32(size(shape6), rand, -1000, 1000);
  const out = poisoned(k, "int32", xi.length);
  k.transpose(k.upload(xi), shape6, perm6, out);
  const ref = new Int32Array(xi.length);
  cpu.transpose(xi, shape6, perm6, ref);
  assertSame(await k.download(out), ref, "transpose rank 6 int32");
});

test("copyBox: slices, placement into a larger array, concat pieces, scalars (exact)", async () => {
  const k = await kernels();
  const rand = rng(2);
  type Box = [srcShape: Shape, srcBegin: number[], dstShape: Shape, dstBegin: number[], size: Shape];
  const boxes: Box[] = [
    [[10], [3], [5], [0], [5]],
    [[4, 6], [1, 2], [2, 3], [0, 0], [2, 3]],
    [[4, 6], [0, 0], [6, 8], [1, 2], [4, 6]],
    [[2, 3, 4, 5], [0, 0, 0, 0], [2, 3, 4, 9], [0, 0, 0, 4], [2, 3, 4, 5]], // concat on the last axis
    [[2, 3, 4, 5], [1, 0, 2, 1], [1, 3, 2, 4], [0, 0, 0, 0], [1, 3, 2, 4]],
    [[3, 3, 7, 5], [1, 1, 0, 0], [1, 1, 7, 5], [0, 0, 0, 0], [1, 1, 7, 5]], // a contiguous run
    [[], [], [], [], []], // a scalar
    [[5, 1, 4], [2, 0, 1], [3, 2, 3], [1, 1, 0], [2, 1, 3]],
    [[16, 8, 8, 64], [0, 0, 0, 0], [16, 8, 8, 128], [0, 0, 0, 64], [16, 8, 8, 64]],
  ];
  for (const [srcShape, srcBegin, dstShape, dstBegin, box] of boxes) {
    const src = randomF32(size(srcShape), rand);
    const dstInit = randomF32(size(dstShape), rand);
    const gs = k.upload(src);
    const gd = k.upload(dstInit);
    k.copyBox(gs, srcShape, srcBegin, gd, dstShape, dstBegin, box);
    const ref = dstInit.slice();
    cpu.copyBox(src, srcShape, srcBegin, ref, dstShape, dstBegin, box);
    assertSame(await k.download(gd), ref, `copyBox ${JSON.stringify([srcShape, srcBegin, dstShape, dstBegin, box])}`);
    k.release(gs);
    k.release(gd);
  }
});

test("padInto: zeros with a box placed in them, ranks 0-6, edges, empty and whole boxes, int32 (exact)", async () => {
  const k = await kernels();
  const rand = rng(3);
  type Pad = [xShape: Shape, outShape: Shape, begin: number[], dtype: "float32" | "int32"];
  const pads: Pad[] = [
    [[], [], [], "float32"],
    [[3], [7], [4], "float32"], // at the end
    [[2, 3], [5, 3], [0, 0], "int32"], // at the start, whole rows
    [[1, 1, 4, 5], [3, 3, 4, 5], [1, 1, 0, 0], "float32"], // the 1x1-map conv's kernel gradient: the centre tap
    [[2, 4, 4, 3], [2, 4, 4, 8], [0, 0, 0, 5], "float32"], // a concat's last part
    [[2, 0, 3], [2, 4, 3], [0, 2, 0], "float32"], // an empty box: all zeros
    [[2, 3, 4], [2, 3, 4], [0, 0, 0], "int32"], // the whole output
    [[1, 2, 1, 2, 1, 2], [2, 3, 2, 3, 2, 3], [1, 1, 0, 1, 1, 0], "float32"],
  ];
  for (const [xShape, outShape, begin, dtype] of pads) {
    const x = dtype === "float32" ? randomF32(size(xShape), rand) : randomI32(size(xShape), rand, -1000, 1000);
    const gx = k.upload(x);
    const out = poisoned(k, dtype, size(outShape));
    k.padInto(gx, xShape, out, outShape, begin);
    const ref = dtype === "float32" ? new Float32Array(size(outShape)) : new Int32Array(size(outShape));
    cpu.copyBox(x, xShape, xShape.map(() => 0), ref, outShape, begin, xShape);
    assertSame(await k.download(out), ref, `padInto ${JSON.stringify([xShape, outShape, begin, dtype])}`);
    k.release(gx);
    k.release(out);
  }
});

test("gather (exact), including int32 values and repeated indices", async () => {
  const k = await kernels();
  const rand = rng(3);
  for (const [n, m] of [[1, 1], [1000, 37], [50, 5000], [4097, 4097]]) {
    const x = randomF32(m, rand);
    const index = randomI32(n, rand, 0, m);
    const out = poisoned(k, "float32", n);
    k.gather(k.upload(x), k.upload(index), out);
    const ref = new Float32Array(n);
    cpu.gather(x, index, ref);
    assertSame(await k.download(out), ref, `gather ${n} from ${m}`);
  }
  const xi = randomI32(100, rand, -50, 50);
  const index = randomI32(300, rand, 0, 100);
  const out = k.alloc("int32", 300);
  k.gather(k.upload(xi), k.upload(index), out);
  const ref = new Int32Array(300);
  cpu.gather(xi, index, ref);
  assertSame(await k.download(out), ref, "gather int32");
});

/** The engine's uses: maxPool argmax (<= 1 input per output), nearest 2x upsample adjoint (4), flipKernel (1). */
function upsampleIndex(b: number, h: number, w: number, c: number, height: number, width: number): Int32Array {
  const idx = new Int32Array(b * height * width * c);
  let at = 0;
  for (let n = 0; n < b; n++)
    for (let i = 0; i < height; i++) {
      const si = Math.floor(((i + 0.5) * h) / height);
      for (let j = 0; j < width; j++) {
        const sj = Math.floor(((j + 0.5) * w) / width);
        for (let q = 0; q < c; q++) idx[at++] = ((n * h + si) * w + sj) * c + q;
      }
    }
  return idx;
}

test("scatterAdd: GPU-built inverse index, CPU plan and unique scatter against the reference", async () => {
  const k = await kernels();
  const rand = rng(4);
  const cases: [string, Int32Array, number][] = [
    ["random, few repeats", randomI32(5000, rand, 0, 4000), 4000],
    ["random, many repeats (> 16 per output: unordered sums)", randomI32(20000, rand, 0, 50), 50],
    ["all to one output", new Int32Array(3000), 1],
    ["nearest-upsample adjoint 4x4 -> 8x8", upsampleIndex(3, 4, 4, 5, 8, 8), 3 * 4 * 4 * 5],
    ["nearest-upsample adjoint 1x1 -> 2x2 (odd channels)", upsampleIndex(4, 1, 1, 7, 2, 2), 4 * 7],
    ["empty", new Int32Array(0), 10],
    ["more outputs than 1024 x 1024 / 2 (two-level scan)", randomI32(3000, rand, 0, 600000), 600000],
  ];
  for (const [what, index, outputs] of cases) {
    const g = randomF32(index.length, rand);
    const gg = k.upload(g);
    const gi = k.upload(index);
    const ref = new Float32Array(outputs);
    cpu.scatterAdd(g, index, ref);
    // Per output: the sum of |g| over its inputs and their count.
    const scale = new Float32Array(outputs);
    cpu.scatterAdd(absCopy(g), index, scale);
    const counts = new Float32Array(outputs);
    cpu.scatterAdd(new Float32Array(index.length).fill(1), index, counts);
    const tol = (got: Float32Array, label: string): void => {
      const s = scale.map((v, j) => v * Math.max(1, counts[j]!));
      assertClose(got, ref, 4 * EPS, s, `scatterAdd ${label} ${what}`, 1e-30);
    };

    const out = poisoned(k, "float32", outputs);
    k.scatterAdd(gg, gi, out);
    const first = (await k.download(out)) as Float32Array;
    tol(first, "(GPU inverse index)");
    if (counts.every((c) => c <= 16)) {
      k.scatterAdd(gg, gi, out);
      assertSame(await k.download(out), first, `scatterAdd ${what}: deterministic`);
    }

    const plan = k.planScatter(index, outputs);
    const planned = poisoned(k, "float32", outputs);
    k.scatterAddPlanned(gg, plan, planned);
    tol((await k.download(planned)) as Float32Array, "(CPU plan)");
    k.releasePlan(plan);
    for (const t of [gg, gi, out, planned]) k.release(t);
  }

  // Unique: a permutation (flipKernel) and maxPool's argmax.
  const perm = Int32Array.from({ length: 3 * 3 * 4 * 5 }, (_, i) => i).sort(() => rand() - 0.5);
  const g = randomF32(perm.length, rand);
  const out = poisoned(k, "float32", perm.length);
  k.scatterAdd(k.upload(g), k.upload(perm), out, { unique: true });
  const ref = new Float32Array(perm.length);
  cpu.scatterAdd(g, perm, ref);
  assertSame(await k.download(out), ref, "scatterAdd unique (a permutation)");
});

test("maxPool2x2: even and odd maps, 1x1 maps, ties, argmax into x; its adjoint with the unique scatter", async () => {
  const k = await kernels();
  const rand = rng(5);
  for (const shape of [[1, 1, 1, 1], [2, 8, 8, 3], [3, 5, 7, 2], [1, 1, 6, 4], [4, 3, 1, 5], [16, 8, 8, 64]] as [number, number, number, number][]) {
    const [b, h, w, c] = shape;
    const x = randomF32(size(shape), rand).map((v, i) => (i % 11 === 0 ? 0.25 : v)); // some ties
    const outShape = [b, Math.ceil(h / 2), Math.ceil(w / 2), c];
    const gx = k.upload(x);
    const out = poisoned(k, "float32", size(outShape));
    const argmax = poisoned(k, "int32", size(outShape));
    k.maxPool2x2(gx, shape, out, argmax);
    const ref = new Float32Array(size(outShape));
    const refArg = new Int32Array(size(outShape));
    cpu.maxPool2x2(x, shape, ref, refArg);
    assertSame(await k.download(out), ref, `maxPool2x2 ${JSON.stringify(shape)} values`);
    assertSame(await k.download(argmax), refArg, `maxPool2x2 ${JSON.stringify(shape)} argmax`);

    const g = randomF32(ref.length, rand);
    const back = poisoned(k, "float32", x.length);
    k.scatterAdd(k.upload(g), argmax, back, { unique: true });
    const refBack = new Float32Array(x.length);
    cpu.scatterAdd(g, refArg, refBack);
    assertSame(await k.download(back), refBack, `maxPool2x2 ${JSON.stringify(shape)} adjoint`);
  }
  assert.ok(k.stats().dispatches > 0);
});

test("maxPool2x2: NaN wins its window (as the reference)", async () => {
  const k = await kernels();
  const shape: [number, number, number, number] = [1, 4, 4, 2];
  const x = randomF32(32, rng(6));
  x[0] = Number.NaN;
  x[11] = Number.NaN;
  x[13] = Number.NaN;
  const out = poisoned(k, "float32", 8);
  const argmax = poisoned(k, "int32", 8);
  k.maxPool2x2(k.upload(x), shape, out, argmax);
  const ref = new Float32Array(8);
  const refArg = new Int32Array(8);
  cpu.maxPool2x2(x, shape, ref, refArg);
  assertSame(await k.download(out), ref, "maxPool2x2 with NaN: values");
  assertSame(await k.download(argmax), refArg, "maxPool2x2 with NaN: argmax");
});

test("flipKernel, upsampleNearest and its adjoint: dedicated kernels equal the reference's index-array versions (exact)", async () => {
  const k = await kernels();
  const rand = rng(7);
  for (const [kh, kw, c, o] of [[3, 3, 4, 5], [1, 1, 7, 3], [2, 3, 1, 9], [3, 3, 64, 65]]) {
    const w = randomF32(kh * kw * c * o, rand);
    const out = poisoned(k, "float32", w.length);
    k.flipKernel(k.upload(w), [kh, kw, c, o], out);
    const ref = new Float32Array(w.length);
    const taps = kh * kw, block = c * o;
    for (let t = 0; t < taps; t++) cpu.transpose(w.subarray(t * block, (t + 1) * block), [c, o], [1, 0], ref.subarray((taps - 1 - t) * block, (taps - t) * block));
    assertSame(await k.download(out), ref, `flipKernel ${[kh, kw, c, o]}`);
  }
  for (const [b, h, w, c, height, width] of [[2, 4, 4, 3, 8, 8], [3, 1, 1, 5, 2, 2], [1, 2, 2, 4, 4, 4], [2, 3, 5, 2, 7, 4], [1, 8, 8, 1, 3, 5], [16, 1, 1, 64, 2, 2]]) {
    const x = randomF32(b * h * w * c, rand);
    const index = upsampleIndex(b, h, w, c, height, width);
    const up = poisoned(k, "float32", index.length);
    k.upsampleNearest(k.upload(x), [b, h, w, c], height, width, up);
    const ref = new Float32Array(index.length);
    cpu.gather(x, index, ref);
    assertSame(await k.download(up), ref, `upsampleNearest ${[b, h, w, c]} -> ${height}x${width}`);
    const g = randomF32(index.length, rand);
    const back = poisoned(k, "float32", x.length);
    k.upsampleNearestGrad(k.upload(g), [b, h, w, c], height, width, back);
    const refBack = new Float32Array(x.length);
    cpu.scatterAdd(g, index, refBack);
    assertSame(await k.download(back), refBack, `upsampleNearestGrad ${[b, h, w, c]} <- ${height}x${width} (same summation order)`);
  }
});
