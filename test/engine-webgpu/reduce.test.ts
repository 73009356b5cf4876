// WebGpuKernels.reduce (sum / max over any sorted axis set: leading, trailing, middle, alternating groups,
// all, none) on shapes that take each path (one invocation per output; one workgroup per output; several
// chunks per output with a second pass), float32 and int32, and cumulative sum / product.
// Tolerances: max and int32 sums are exact. float32 sums: |err| <= 8 eps * sqrt(R) * sum |x| over the
// reduced elements (blocked / tree summation in float32; the reference sums in float64).
// Cumulative (sequential float32 running sums, like the reference but in float32): |err| <= 2 eps * len *
// running sum |x| (sum), and a relative 2 eps * len for products of values in [0.5, 1.5].
import { test } from "node:test";
import type { Shape } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { absCopy, assertClose, assertSame, kernels, poisoned, randomF32, randomI32, rng } from "./helpers.ts";

const cpu = new CpuBackend();
const EPS = 2 ** -23;

const CASES: [Shape, number[]][] = [
  [[7], [0]], [[5, 3], [0]], [[5, 3], [1]], [[5, 3], [0, 1]], [[4, 5, 6], [1]], [[4, 5, 6], [0, 2]],
  [[2, 3, 4, 5], [0, 1, 2]], [[2, 3, 4, 5], [3]], [[2, 3, 4, 5], [1, 3]], [[2, 3, 4, 5], []], [[3, 1, 4], [1]],
  [[2, 3, 1, 4, 5], [0, 2, 4]], [[6, 7, 8, 9], [0, 1, 2, 3]], [[2, 3, 2, 3, 2, 3, 2, 3], [1, 3, 5, 7]],
  // one invocation per output (>= 2048 outputs, or R <= 64)
  [[3000, 5], [1]], [[64, 64], [0]], [[40, 8, 8, 16], [3]],
  // one workgroup per output (R <= 4096), and several chunks per output with a second pass
  [[172, 8, 8, 16], [0, 1, 2]], [[10, 4000], [1]], [[3, 100000], [1]], [[300000], [0]], [[20000, 7], [0]],
  [[5, 1000, 3], [1]], [[2, 70, 3, 90], [1, 3]],
];

function size(shape: Shape): number {
  return shape.reduce((p, d) => p * d, 1);
}

test("reduce: sum and max, float32, every axis pattern and kernel path", async () => {
  const k = await kernels();
  let seed = 1;
  for (const [shape, axes] of CASES) {
    const rand = rng(seed++);
    const x = randomF32(size(shape), rand);
    const outSize = size(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const R = size(shape) / outSize;
    const gx = k.upload(x);
    for (const op of ["sum", "max"] as const) {
      const out = poisoned(k, "float32", outSize);
      k.reduce(op, gx, shape, axes, out);
      const ref = new Float32Array(outSize);
      cpu.reduce(op, x, shape, axes, ref);
      const got = await k.download(out);
      const what = `reduce ${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`;
      if (op === "max") assertSame(got, ref, what);
      else {
        const scale = new Float32Array(outSize);
        cpu.reduce("sum", absCopy(x), shape, axes, scale);
        assertClose(got, ref, 8 * EPS * Math.sqrt(R), scale, what, 1e-30);
      }
      k.release(out);
    }
    k.release(gx);
  }
});

test("reduce: int32 sum and max (exact), NaN propagates through max, empty reductions", async () => {
  const k = await kernels();
  let seed = 100;
  for (const [shape, axes] of CASES) {
    const rand = rng(seed++);
    const x = randomI32(size(shape), rand, -1000, 1000);
    const outSize = size(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const gx = k.upload(x);
    for (const op of ["sum", "max"] as const) {
      const out = poisoned(k, "int32", outSize);
      k.reduce(op, gx, shape, axes, out);
      const ref = new Int32Array(outSize);
      cpu.reduce(op, x, shape, axes, ref);
      assertSame(await k.download(out), ref, `int32 reduce ${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`);
      k.release(out);
    }
    k.release(gx);
  }

  const withNaN = randomF32(5000, rng(5));
  withNaN[1234] = Number.NaN;
  const out = k.alloc("float32", 1);
  k.reduce("max", k.upload(withNaN), [5000], [0], out);
  assertSame(await k.download(out), [Number.NaN], "max with a NaN");

  const empty = k.alloc("float32", 3);
  k.reduce("max", k.alloc("float32", 0), [3, 0], [1], empty);
  assertSame(await k.download(empty), [-Infinity, -Infinity, -Infinity], "max over an empty axis");
  k.reduce("sum", k.alloc("float32", 0), [3, 0], [1], empty);
  assertSame(await k.download(empty), [0, 0, 0], "sum over an empty axis");
});

test("cumulative: sum and product along each axis, forward and reverse", async () => {
  const k = await kernels();
  let seed = 200;
  const shapes: Shape[] = [[1000], [4, 5, 6], [3, 300, 2], [1, 7]];
  for (const shape of shapes) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const reverse of [false, true]) {
        for (const op of ["sum", "prod"] as const) {
          const rand = rng(seed++);
          const n = size(shape);
          const x = op === "sum" ? randomF32(n, rand) : randomF32(n, rand, 0.5).map((v) => 1 + v);
          const out = poisoned(k, "float32", n);
          k.cumulative(op, k.upload(x), shape, axis, reverse, out);
          const ref = new Float32Array(n);
          cpu.cumulative(op, x, shape, axis, reverse, ref);
          const len = shape[axis]!;
          const what = `cumulative ${op} ${JSON.stringify(shape)} axis ${axis} reverse ${reverse}`;
          if (op === "sum") {
            const scale = new Float32Array(n);
            cpu.cumulative("sum", absCopy(x), shape, axis, reverse, scale);
            assertClose(await k.download(out), ref, 2 * EPS * len, scale, what, 1e-30);
          } else assertClose(await k.download(out), ref, 2 * EPS * len, null, what, 1e-30);
        }
      }
    }
  }
  const ints = randomI32(600, rng(9), -100, 100);
  const out = k.alloc("int32", 600);
  k.cumulative("sum", k.upload(ints), [20, 30], 1, false, out);
  const ref = new Int32Array(600);
  cpu.cumulative("sum", ints, [20, 30], 1, false, ref);
  assertSame(await k.download(out), ref, "int32 cumsum (exact)");
});
