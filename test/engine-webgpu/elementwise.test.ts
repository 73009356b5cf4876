// WebGpuKernels elementwise kernels against the reference backend: every unary op (gelu and its derivatives
// included), every binary op in float32 and int32 over many broadcast patterns, select, cast, fill.
// Tolerances are stated per op below: exact where IEEE float32 arithmetic is correctly rounded, otherwise a
// relative bound in units of float32's epsilon (1.19e-7) taken from the WGSL accuracy table (or, for the
// functions written out in WGSL, from their polynomial error), plus an absolute floor near zero.
import { test } from "node:test";
import type { BinaryOp, Shape, UnaryOp } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { assertClose, assertSame, kernels, poisoned, randomF32, randomI32, rng } from "./helpers.ts";

const cpu = new CpuBackend();
const EPS = 2 ** -23;

/** [input range, relative tolerance, absolute tolerance]; 0/0 = exact. */
const UNARY: Record<UnaryOp, [lo: number, hi: number, rel: number, abs: number]> = {
  neg: [-5, 5, 0, 0],
  abs: [-5, 5, 0, 0],
  sign: [-5, 5, 0, 0],
  square: [-5, 5, 0, 0],
  step: [-5, 5, 0, 0],
  reciprocal: [0.1, 10, 3 * EPS, 0], // WGSL: 2.5 ulp
  sqrt: [0, 100, 3 * EPS, 0], // WGSL: inherited from 1 / inverseSqrt
  rsqrt: [0.01, 100, 3 * EPS, 0], // WGSL: 2 ulp
  exp: [-10, 10, 24 * EPS, 0], // WGSL: 3 + 2|x| ulp
  log: [0.01, 100, 4 * EPS, 2 ** -21], // WGSL: 3 ulp, absolute 2^-21 on [0.5, 2]
  tanh: [-8, 8, 4 * EPS, 1e-9], // Cephes tanhf below 0.625, exp-based above
  sin: [-1000, 1000, 0, 4 * EPS], // Cody-Waite reduction + Cephes polynomials (the timestep embedding reaches ~1000 rad)
  cos: [-1000, 1000, 0, 4 * EPS],
  gelu: [-8, 8, 16 * EPS, 16 * EPS], // exp-based, as the reference, in float32
  geluD1: [-8, 8, 16 * EPS, 16 * EPS],
  geluD2: [-8, 8, 32 * EPS, 32 * EPS], // a sum of terms of both signs: error relative to ~1
};

test("unary: every op against the reference (float32)", async () => {
  const k = await kernels();
  let seed = 1;
  for (const [op, [lo, hi, rel, abs]] of Object.entries(UNARY) as [UnaryOp, [number, number, number, number]][]) {
    const rand = rng(seed++);
    const n = 4099;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = lo + (hi - lo) * rand();
    // Values every op must get right: zeros, small arguments, the tanh/gelu branch points.
    const special = [0, -0, 1e-4, -1e-4, 0.625, -0.625, 0.5, 2, 1, -1].filter((v) => v >= lo && v <= hi && !(op === "log" && v <= 0));
    special.forEach((v, i) => (x[i] = v));
    const gx = k.upload(x);
    const out = poisoned(k, "float32", n);
    k.unary(op, gx, out);
    const ref = new Float32Array(n);
    cpu.unary(op, x, ref);
    const got = await k.download(out);
    if (rel === 0 && abs === 0) assertSame(got, ref, `unary ${op}`);
    else assertClose(got, ref, rel, null, `unary ${op}`, abs);
    k.release(gx);
    k.release(out);
  }
});

/** [aShape, bShape] (equal rank, broadcast to the elementwise maximum). */
const PATTERNS: [Shape, Shape][] = [
  [[7], [7]], [[1000], [1]], [[1], [1000]], [[3, 4], [1, 4]], [[3, 4], [3, 1]], [[3, 1], [1, 4]],
  [[2, 3, 4, 5], [1, 1, 1, 5]], [[2, 1, 4, 1], [1, 3, 1, 5]], [[2, 3, 4], [1, 3, 1]], [[1, 1, 1], [2, 3, 4]],
  [[5, 1, 3, 1, 2, 1], [1, 4, 3, 2, 1, 3]], [[16, 8, 8, 64], [16, 1, 1, 64]], [[1, 1], [1, 1]], [[2, 3, 1, 7, 1, 2, 1, 3], [2, 1, 5, 7, 4, 1, 1, 3]],
];

const FLOAT_BINARY: Record<BinaryOp, number> = {
  add: 0, sub: 0, mul: 0, div: 3 * EPS, pow: 64 * EPS, maximum: 0, minimum: 0,
  less: 0, lessEqual: 0, greater: 0, greaterEqual: 0, equal: 0,
};

function outShapeOf(a: Shape, b: Shape): number[] {
  return a.map((d, i) => Math.max(d, b[i]!));
}

function size(shape: Shape): number {
  return shape.reduce((p, d) => p * d, 1);
}

test("binary: every op, float32, every broadcast pattern (relative tolerance per op: pow 64 eps, div 3 eps, else exact)", async () => {
  const k = await kernels();
  let seed = 100;
  for (const [op, rel] of Object.entries(FLOAT_BINARY) as [BinaryOp, number][]) {
    for (const [aShape, bShape] of PATTERNS) {
      const rand = rng(seed++);
      const outShape = outShapeOf(aShape, bShape);
      let a = randomF32(size(aShape), rand, 3);
      let b = randomF32(size(bShape), rand, 3);
      if (op === "pow") {
        // Positive bases with real exponents, negative bases with integer exponents.
        a = a.map((v, i) => (i % 3 === 0 ? -Math.round(Math.abs(v) * 2 + 1) / 2 : Math.abs(v) + 0.05));
        b = b.map((v, i) => (i % 2 === 0 ? Math.round(v) : v));
      } else if (op === "equal" || op === "lessEqual" || op === "greaterEqual") {
        a = a.map((v) => Math.round(v)); // ties happen
        b = b.map((v) => Math.round(v));
      }
      const ga = k.upload(a);
      const gb = k.upload(b);
      const out = poisoned(k, "float32", size(outShape));
      k.binary(op, ga, aShape, gb, bShape, out, outShape);
      const ref = new Float32Array(size(outShape));
      cpu.binary(op, a, aShape, b, bShape, ref, outShape);
      const got = await k.download(out);
      const what = `binary ${op} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}`;
      if (rel === 0) assertSame(got, ref, what);
      else assertClose(got, ref, rel, null, what, 1e-30);
      for (const t of [ga, gb, out]) k.release(t);
    }
  }
});

test("binary: every op, int32 (exact; division by zero gives 0 as the reference's Int32Array store)", async () => {
  const k = await kernels();
  let seed = 300;
  for (const op of Object.keys(FLOAT_BINARY) as BinaryOp[]) {
    for (const [aShape, bShape] of PATTERNS) {
      const rand = rng(seed++);
      const outShape = outShapeOf(aShape, bShape);
      const a = op === "pow" ? randomI32(size(aShape), rand, -4, 5) : randomI32(size(aShape), rand, -50, 50);
      const b = op === "pow" ? randomI32(size(bShape), rand, -2, 7) : randomI32(size(bShape), rand, -50, 50);
      const ga = k.upload(a);
      const gb = k.upload(b);
      const out = poisoned(k, "int32", size(outShape));
      k.binary(op, ga, aShape, gb, bShape, out, outShape);
      const ref = new Int32Array(size(outShape));
      cpu.binary(op, a, aShape, b, bShape, ref, outShape);
      assertSame(await k.download(out), ref, `int32 binary ${op} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}`);
      for (const t of [ga, gb, out]) k.release(t);
    }
  }
});

test("select: float and int conditions (-0 counts as 0), values moved bit-exactly", async () => {
  const k = await kernels();
  const rand = rng(7);
  const n = 3001;
  const condF = randomF32(n, rand).map((v, i) => (i % 5 === 0 ? 0 : i % 7 === 0 ? -0 : v > 0 ? v : 0));
  const condI = randomI32(n, rand, -2, 3);
  for (const cond of [condF, condI]) {
    for (const dtype of ["float32", "int32"] as const) {
      const a = dtype === "float32" ? randomF32(n, rand) : randomI32(n, rand, -100, 100);
      const b = dtype === "float32" ? randomF32(n, rand) : randomI32(n, rand, -100, 100);
      const [gc, ga, gb] = [k.upload(cond), k.upload(a), k.upload(b)];
      const out = poisoned(k, dtype, n);
      k.select(gc, ga, gb, out);
      const ref = dtype === "float32" ? new Float32Array(n) : new Int32Array(n);
      cpu.select(cond, a, b, ref);
      assertSame(await k.download(out), ref, `select cond ${cond.constructor.name} values ${dtype}`);
    }
  }
});

test("cast (float -> int truncates toward zero) and fill (exact)", async () => {
  const k = await kernels();
  const rand = rng(8);
  const f = randomF32(1025, rand, 1000);
  f[0] = -0.5;
  f[1] = 2.999;
  f[2] = -7.0;
  const i = randomI32(1025, rand, -(2 ** 24), 2 ** 24);
  const gf = k.upload(f);
  const gi = k.upload(i);
  const toInt = poisoned(k, "int32", f.length);
  const toFloat = poisoned(k, "float32", i.length);
  const same = poisoned(k, "float32", f.length);
  k.cast(gf, toInt);
  k.cast(gi, toFloat);
  k.cast(gf, same);
  const refInt = new Int32Array(f.length);
  cpu.cast(f, refInt);
  const refFloat = new Float32Array(i.length);
  cpu.cast(i, refFloat);
  assertSame(await k.download(toInt), refInt, "cast float32 -> int32");
  assertSame(await k.download(toFloat), refFloat, "cast int32 -> float32");
  assertSame(await k.download(same), f, "cast float32 -> float32");

  for (const [dtype, value] of [["float32", 0], ["float32", -2.5], ["float32", -Infinity], ["int32", 7.9], ["int32", 0], ["int32", -3]] as const) {
    const out = k.alloc(dtype, 777);
    k.fill(out, value);
    const ref = dtype === "float32" ? new Float32Array(777) : new Int32Array(777);
    cpu.fill(ref, value);
    assertSame(await k.download(out), ref, `fill ${dtype} ${value}`);
  }
});

test("NaN and infinities where the reference defines them: maximum/minimum, comparisons, step, select (exact)", async () => {
  const k = await kernels();
  const specials = [Number.NaN, Infinity, -Infinity, 0, -0, 1, -1.5];
  const a = new Float32Array(specials.length ** 2);
  const b = new Float32Array(specials.length ** 2);
  specials.forEach((x, i) => specials.forEach((y, j) => ((a[i * specials.length + j] = x), (b[i * specials.length + j] = y))));
  const shape = [a.length];
  const [ga, gb] = [k.upload(a), k.upload(b)];
  for (const op of ["maximum", "minimum", "less", "lessEqual", "greater", "greaterEqual", "equal", "add", "mul"] as BinaryOp[]) {
    const out = poisoned(k, "float32", a.length);
    k.binary(op, ga, shape, gb, shape, out, shape);
    const ref = new Float32Array(a.length);
    cpu.binary(op, a, shape, b, shape, ref, shape);
    assertSame(await k.download(out), ref, `binary ${op} on NaN/inf/0/-0`);
  }
  const out = poisoned(k, "float32", a.length);
  k.unary("step", ga, out);
  const ref = new Float32Array(a.length);
  cpu.unary("step", a, ref);
  assertSame(await k.download(out), ref, "step on NaN/inf");
  k.select(ga, gb, ga, out);
  cpu.select(a, b, a, ref);
  assertSame(await k.download(out), ref, "select with NaN/-0 conditions");
});
