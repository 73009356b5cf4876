// WasmBackend elementwise kernels against the reference: binary ops under every broadcast pattern the
// engine produces (bit-exact: float32 add/sub/mul/div round like the reference's double-then-float),
// unary ops (bit-exact except exp/log/tanh and the gelu kernels: within 4 ulp), reductions, gather/scatterAdd and copyBox,
// on 1 and 2 threads.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import type { BinaryOp, Shape, UnaryOp } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { assertClose, assertSame, disposeBackends, rng, ulpDistance, wasmBackend } from "./helpers.ts";

after(disposeBackends);
const cpu = new CpuBackend();
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);

const SPECIAL = [0, -0, 1, -1, 0.5, NaN, Infinity, -Infinity, 3e38, -3e38, 1e-40, 2, 2];
function values(n: number, rand: () => number, special: boolean): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    out[i] = special && r < 0.15 ? SPECIAL[Math.floor(rand() * SPECIAL.length)]! : r < 0.3 ? Math.round((rand() * 2 - 1) * 3) : (rand() * 2 - 1) * 4;
  }
  return out;
}

const BINARY: BinaryOp[] = ["add", "sub", "mul", "div", "maximum", "minimum", "less", "lessEqual", "greater", "greaterEqual", "equal", "pow"];
/** [a shape, b shape] pairs (equal rank), the patterns of the U-Net plus odd ones. */
const PATTERNS: [Shape, Shape][] = [
  [[1], [1]], [[7], [7]], [[5], [1]], [[1], [9]], [[3, 4], [3, 4]], [[100003], [100003]], [[100003], [1]], [[1], [70001]],
  [[172, 8, 8, 16], [172, 8, 8, 16]], [[172, 8, 8, 16], [1, 1, 1, 1]], [[1, 1, 1, 1], [172, 8, 8, 16]],
  [[172, 8, 8, 16], [1, 1, 1, 16]], [[172, 8, 8, 16], [172, 8, 8, 1]], [[172, 8, 8, 16], [172, 1, 1, 16]],
  [[172, 1, 1, 16], [172, 8, 8, 16]], [[1, 1, 1, 16], [172, 8, 8, 16]], [[17, 1], [1, 13]], [[1, 13], [17, 1]],
  [[5, 1, 7], [1, 6, 1]], [[4, 3, 1, 5], [1, 3, 2, 1]], [[2, 3, 5, 7], [2, 1, 5, 1]], [[6, 5], [6, 1]], [[6, 5], [1, 5]],
  [[1, 1], [1, 1]], [[9, 3], [1, 1]],
];

function outShape(a: Shape, b: Shape): number[] {
  return a.map((d, i) => Math.max(d, b[i]!));
}

for (const threads of [1, 2]) {
  test(`binary ops, all broadcast patterns, ${threads} thread(s): bit-exact`, async () => {
    const w = await wasmBackend(threads, { parallelMinElements: 1 });
    const rand = rng(threads);
    for (const [as, bs] of PATTERNS) {
      const os = outShape(as, bs);
      for (const op of BINARY) {
        const a = w.alloc("float32", size(as)), b = w.alloc("float32", size(bs));
        a.set(values(a.length, rand, true));
        b.set(values(b.length, rand, true));
        const out = w.alloc("float32", size(os)).fill(12345);
        const ref = new Float32Array(out.length);
        w.binary(op, a, as, b, bs, out, os);
        cpu.binary(op, a, as, b, bs, ref, os);
        assertSame(out, ref, `${op} [${as}] [${bs}]`);
        for (const t of [a, b, out]) w.release(t);
      }
    }
  });
}

test("binary ops write in place (out aliasing an input) and handle int32 through the reference", async () => {
  const w = await wasmBackend(2, { parallelMinElements: 1 });
  const rand = rng(9);
  const a = w.alloc("float32", 50000), b = w.alloc("float32", 50000);
  a.set(values(50000, rand, false));
  b.set(values(50000, rand, false));
  const ref = new Float32Array(50000);
  cpu.binary("mul", a, [50000], b, [50000], ref, [50000]);
  w.binary("mul", a, [50000], b, [50000], a, [50000]);
  assertSame(a, ref, "in place");
  const i = w.alloc("int32", 3), j = w.alloc("int32", 3), k = w.alloc("int32", 3);
  i.set([1, 2, 3]);
  j.set([4, 5, 6]);
  w.binary("add", i, [3], j, [3], k, [3]);
  assert.deepEqual([...k], [5, 7, 9]);
});

const UNARY: UnaryOp[] = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "abs", "sign", "sin", "cos", "square", "reciprocal", "step", "gelu", "geluD1", "geluD2"];
const APPROX = new Set<UnaryOp>(["exp", "log", "tanh", "gelu", "geluD1", "geluD2"]);

for (const threads of [1, 2]) {
  test(`unary ops, ${threads} thread(s): exact, or within 4 ulp for exp/log/tanh/gelu*`, async () => {
    const w = await wasmBackend(threads, { parallelMinElements: 1 });
    const rand = rng(40 + threads);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 33, 100003]) {
      for (const op of UNARY) {
        const x = w.alloc("float32", n);
        x.set(values(n, rand, true));
        if (n > 1000) for (let i = 0; i < n; i += 3) x[i] = (rand() * 2 - 1) * (op === "exp" ? 100 : 30); // wide range
        const out = w.alloc("float32", n).fill(12345);
        const ref = new Float32Array(n);
        w.unary(op, x, out);
        cpu.unary(op, x, ref);
        if (!APPROX.has(op)) assertSame(out, ref, `${op} n=${n}`);
        else {
          for (let i = 0; i < n; i++) {
            const d = ulpDistance(out[i]!, ref[i]!);
            // Results below the normal range (exp underflow) are compared absolutely.
            const tinyOk = Math.abs(out[i]! - ref[i]!) < 1e-37;
            if (d > 4 && !tinyOk) assert.fail(`${op}(${x[i]}) = ${out[i]}, reference ${ref[i]} (${d} ulp)`);
          }
        }
        w.release(x);
        w.release(out);
      }
    }
  });
}

test("exp, log and tanh: dense sweeps stay within 4 ulp", async () => {
  const w = await wasmBackend(1);
  const sweeps: [UnaryOp, number, number][] = [["exp", -87, 88.7], ["log", 1e-30, 1e30], ["tanh", -12, 12], ["tanh", -0.7, 0.7]];
  for (const [op, lo, hi] of sweeps) {
    const n = 200001;
    const x = w.alloc("float32", n);
    for (let i = 0; i < n; i++) x[i] = op === "log" ? lo * Math.pow(hi / lo, i / (n - 1)) : lo + ((hi - lo) * i) / (n - 1);
    const out = w.alloc("float32", n), ref = new Float32Array(n);
    w.unary(op, x, out);
    cpu.unary(op, x, ref);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, ulpDistance(out[i]!, ref[i]!));
    assert.ok(worst <= 4, `${op} on [${lo}, ${hi}]: ${worst} ulp`);
  }
});

test("gelu, geluD1, geluD2: dense sweeps within 2 ulp (double precision in both, rounded once), special values equal", async () => {
  // Both backends evaluate the same double-precision expressions; only the exp differs (Math.exp vs a
  // degree-10 polynomial, ~1e-13 relative), so the rounded floats almost always agree exactly.
  for (const threads of [1, 2]) {
    const w = await wasmBackend(threads, { parallelMinElements: 1 });
    const n = 200001;
    const x = w.alloc("float32", n);
    for (let i = 0; i < n; i++) x[i] = -12 + (24 * i) / (n - 1);
    const special = [NaN, Infinity, -Infinity, 3e38, -3e38, 0, -0, 1e-40, -1e-40, 1e-20, -30, 30];
    x.set(special);
    for (const op of ["gelu", "geluD1", "geluD2"] as const) {
      const out = w.alloc("float32", n), ref = new Float32Array(n);
      w.unary(op, x, out);
      cpu.unary(op, x, ref);
      let worst = 0, differ = 0;
      for (let i = 0; i < n; i++) {
        const d = ulpDistance(out[i]!, ref[i]!);
        if (d) differ++;
        worst = Math.max(worst, d);
      }
      assert.ok(worst <= 2, `${op}: ${worst} ulp`);
      assert.ok(differ < 20, `${op}: ${differ} of ${n} differ`);
      assertSame(out.subarray(0, special.length), ref.subarray(0, special.length), `${op} special values`);
      w.release(out);
    }
    w.release(x);
  }
});

test("layerNorm, layerNormGradX and layerNormGradXGradX: rows of any width, 1 and 2 threads, against the reference (double-precision sums, rounded once)", async () => {
  for (const threads of [1, 2]) {
    const w = await wasmBackend(threads, { parallelMinElements: 1 });
    const rand = rng(70 + threads);
    for (const [rows, cols] of [[1, 1], [3, 5], [7, 3], [2, 4], [100, 17], [11008, 64], [688, 256], [5, 1024]] as const) {
      for (const eps of [1e-6, 0.5]) {
        const x = w.alloc("float32", rows * cols), scale = w.alloc("float32", cols), bias = w.alloc("float32", cols);
        x.set(values(x.length, rand, false));
        for (let i = 0; i < x.length; i++) x[i] = x[i]! * 3 + 1;
        if (rows > 2) x.fill(100000.1, 0, cols); // a constant row: the fast variance rounds below 0 and is clamped
        if (rows > 3) x[cols] = NaN; // a NaN row
        scale.set(values(cols, rand, false));
        bias.set(values(cols, rand, false));
        const out = w.alloc("float32", x.length).fill(12345), ref = new Float32Array(x.length);
        w.layerNorm(x, rows, cols, scale, bias, eps, out);
        cpu.layerNorm(x, rows, cols, scale, bias, eps, ref);
        const check = (what: string): void => {
          for (let i = 0; i < ref.length; i++) {
            // The sums' order differs (four partial sums): a last-bit difference in the mean or variance.
            if (ulpDistance(out[i]!, ref[i]!) > 2 && Math.abs(out[i]! - ref[i]!) > 1e-5 * (1 + Math.abs(ref[i]!))) {
              assert.fail(`${what} ${rows}x${cols} eps ${eps}, element ${i}: ${out[i]} vs reference ${ref[i]}`);
            }
          }
        };
        check("layerNorm");
        // The gradient of a row whose fast variance is rounding noise depends on that noise (rstd does): make
        // the constant row one whose sums are exact in any order (variance exactly 0).
        if (rows > 2) x.fill(0.75, 0, cols);
        const g = w.alloc("float32", x.length);
        g.set(values(g.length, rand, false));
        out.fill(12345);
        w.layerNormGradX(x, g, rows, cols, scale, eps, out);
        cpu.layerNormGradX(x, g, rows, cols, scale, eps, ref);
        check("layerNormGradX");
        const h = w.alloc("float32", x.length);
        h.set(values(h.length, rand, false));
        out.fill(12345);
        w.layerNormGradXGradX(x, g, h, rows, cols, scale, eps, out);
        cpu.layerNormGradXGradX(x, g, h, rows, cols, scale, eps, ref);
        check("layerNormGradXGradX");
        for (const t of [x, scale, bias, out, g, h]) w.release(t);
      }
    }
  }
});

test("reduce: sum and max over leading, trailing, middle and all axes (sums within one rounding)", async () => {
  for (const threads of [1, 2]) {
    const w = await wasmBackend(threads);
    const rand = rng(7 + threads);
    const cases: [Shape, number[]][] = [
      [[172, 8, 8, 16], [3]], [[172, 8, 8, 16], [0, 1, 2]], [[172, 8, 8, 16], [1, 2]], [[172, 8, 8, 16], [0, 1, 2, 3]],
      [[5], [0]], [[1], [0]], [[3, 1, 4], [1]], [[3, 1, 4], [0, 1]], [[7, 9], [0]], [[7, 9], [1]], [[2, 3, 5, 7], [0, 2]],
      [[2, 3, 5, 7], [1, 3]], [[4, 6, 3], [2]], [[1000, 3], [0]], [[3, 1000], [1]], [[10, 1, 1], [1, 2]],
    ];
    for (const [shape, axes] of cases) {
      for (const op of ["sum", "max"] as const) {
        const x = w.alloc("float32", size(shape));
        x.set(values(x.length, rand, false));
        if (op === "max" && x.length > 10) x[3] = NaN;
        const os = shape.map((d, i) => (axes.includes(i) ? 1 : d));
        const out = w.alloc("float32", size(os)).fill(12345), ref = new Float32Array(size(os));
        w.reduce(op, x, shape, axes, out);
        cpu.reduce(op, x, shape, axes, ref);
        if (op === "max") assertSame(out, ref, `max [${shape}] axes [${axes}]`);
        else {
          const abs = new Float32Array(x.length).map((_, i) => Math.abs(x[i]!));
          const scale = new Float32Array(ref.length);
          cpu.reduce("sum", abs, shape, axes, scale);
          assertClose(out, ref, 2 ** -23, scale, `sum [${shape}] axes [${axes}]`, 1e-30);
        }
      }
    }
  }
});

test("gather, scatterAdd and copyBox match the reference exactly", async () => {
  const w = await wasmBackend(2);
  const rand = rng(3);
  const x = w.alloc("float32", 1000);
  x.set(values(1000, rand, true));
  const index = w.alloc("int32", 3000) as Int32Array;
  for (let i = 0; i < index.length; i++) index[i] = Math.floor(rand() * 1000);
  const out = w.alloc("float32", 3000), ref = new Float32Array(3000);
  w.gather(x, index, out);
  cpu.gather(x, index, ref);
  assertSame(out, ref, "gather f32");
  const xi = w.alloc("int32", 1000).map((_, i) => i * 7 - 3), outI = w.alloc("int32", 3000), refI = new Int32Array(3000);
  w.gather(xi, index, outI);
  cpu.gather(xi, index, refI);
  assertSame(outI, refI, "gather i32");
  // A plain (non-heap) index array (copied into the heap for the Wasm loop).
  const plain = Int32Array.from(index);
  out.fill(NaN);
  w.gather(x, plain, out);
  assertSame(out, ref, "gather f32, plain index");
  const g = w.alloc("float32", 3000);
  g.set(values(3000, rand, false));
  const sa = w.alloc("float32", 1000).fill(9), sref = new Float32Array(1000);
  w.scatterAdd(g, index, sa);
  cpu.scatterAdd(g, index, sref);
  assertSame(sa, sref, "scatterAdd");
  sa.fill(3);
  w.scatterAdd(g, Int32Array.from(index), sa);
  assertSame(sa, sref, "scatterAdd, plain index");
  for (const [srcShape, begin, box, dstShape, dstBegin] of [
    [[4, 10, 12], [1, 2, 0], [2, 5, 12], [3, 6, 12], [1, 1, 0]],
    [[4, 10, 12], [0, 0, 3], [4, 10, 9], [4, 10, 9], [0, 0, 0]],
    [[172, 8, 8, 48], [0, 0, 0, 16], [172, 8, 8, 32], [172, 8, 8, 32], [0, 0, 0, 0]],
    [[6, 20], [2, 0], [3, 20], [3, 20], [0, 0]],
    [[5, 4, 3, 1], [1, 0, 1, 0], [3, 4, 2, 1], [4, 6, 2, 1], [1, 1, 0, 0]],
    [[2, 3, 4, 5, 6], [0, 1, 1, 1, 1], [2, 2, 3, 3, 4], [2, 2, 3, 3, 4], [0, 0, 0, 0, 0]],
    [[7], [2], [3], [9], [4]],
    [[3, 1, 100], [0, 0, 0], [3, 1, 100], [3, 2, 100], [0, 1, 0]],
  ] as number[][][]) {
    const src = w.alloc("float32", size(srcShape!));
    src.set(values(src.length, rand, false));
    const dst = w.alloc("float32", size(dstShape!)).fill(1), dref = new Float32Array(dst.length).fill(1);
    w.copyBox(src, srcShape!, begin!, dst, dstShape!, dstBegin!, box!);
    cpu.copyBox(src, srcShape!, begin!, dref, dstShape!, dstBegin!, box!);
    assertSame(dst, dref, `copyBox [${srcShape}] -> [${dstShape}]`);
  }
});

test("maxPool2x2 (even and odd sizes, NaN) matches the reference exactly", async () => {
  const w = await wasmBackend(1);
  const rand = rng(11);
  for (const shape of [[2, 8, 8, 16], [3, 5, 7, 3], [1, 1, 1, 4], [2, 2, 3, 1]]) {
    const n = size(shape);
    const x = w.alloc("float32", n);
    x.set(values(n, rand, true));
    const os = [shape[0]!, Math.ceil(shape[1]! / 2), Math.ceil(shape[2]! / 2), shape[3]!];
    const out = w.alloc("float32", size(os)), arg = w.alloc("int32", size(os)) as Int32Array;
    const ref = new Float32Array(size(os)), refArg = new Int32Array(size(os));
    w.maxPool2x2(x, shape, out, arg);
    cpu.maxPool2x2(x, shape, ref, refArg);
    assertSame(out, ref, `maxPool [${shape}]`);
    assertSame(arg, refArg, `maxPool argmax [${shape}]`);
  }
});

test("flipKernel: per-tap transposes into the mirrored tap, exactly the reference", async () => {
  const w = await wasmBackend(1);
  const rand = rng(22);
  for (const [kh, kw, c, o] of [[3, 3, 5, 7], [1, 1, 4, 4], [3, 3, 64, 33], [2, 3, 37, 70], [3, 3, 1, 6]] as const) {
    const k = w.alloc("float32", kh * kw * c * o);
    k.set(values(k.length, rand, false));
    const out = w.alloc("float32", k.length).fill(NaN), ref = new Float32Array(k.length);
    w.flipKernel(k, kh, kw, c, o, out);
    cpu.flipKernel(k, kh, kw, c, o, ref);
    assertSame(out, ref, `flipKernel [${kh},${kw},${c},${o}]`);
    w.release(k);
    w.release(out);
  }
});

test("transpose: every permutation of small shapes (Wasm for group swaps, the reference otherwise) is exact", async () => {
  const w = await wasmBackend(1);
  const rand = rng(21);
  const perms = (n: number): number[][] => (n === 1 ? [[0]] : perms(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])));
  // [37, 70], [64, 33], [3, 37, 66]: the tiled 2-D transpose with partial tiles and edges.
  for (const shape of [[3, 4], [2, 3, 4], [2, 1, 3, 5], [4, 3, 2, 5], [1, 6, 1, 7], [172, 4, 16], [37, 70], [64, 33], [3, 37, 66]]) {
    for (const perm of perms(shape.length)) {
      const x = w.alloc("float32", size(shape));
      x.set(values(x.length, rand, false));
      const os = perm.map((p) => shape[p]!);
      const out = w.alloc("float32", x.length).fill(NaN), ref = new Float32Array(x.length);
      w.transpose(x, shape, perm, out);
      cpu.transpose(x, shape, perm, ref);
      assertSame(out, ref, `transpose [${shape}] perm [${perm}] -> [${os}]`);
    }
  }
});
