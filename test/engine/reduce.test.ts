// Reductions (sum/mean/max), broadcastTo/sumTo and cumulative ops: forward against naive loops,
// first- and second-order gradchecks.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { assertTensor, distinct, gradcheck, randn, uniformIn } from "./gradcheck.ts";
import { ravel, sizeOfShape, unravel } from "./reference.ts";

// Forward tolerance: rtol 1e-13, atol 1e-14. The engine sums in float64 like the reference but
// may visit elements in another order; for <= 100 O(1) terms the difference is a few ulps.
const RTOL = 1e-13, ATOL = 1e-14;

/** Naive reduction over `axes` of x, with keepDims shape. */
function refReduce(x: ArrayLike<number>, shape: number[], axes: number[], init: number, f: (acc: number, v: number) => number): { kept: number[]; data: number[] } {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const data = new Array<number>(sizeOfShape(kept)).fill(init);
  for (let i = 0; i < x.length; i++) {
    const idx = unravel(i, shape).map((v, a) => (axes.includes(a) ? 0 : v));
    const o = ravel(idx, kept);
    data[o] = f(data[o]!, x[i]!);
  }
  return { kept, data };
}

const SHAPE = [2, 3, 4];
const AXES: (number[] | undefined)[] = [undefined, [0], [1], [2], [0, 2], [1, 2], [0, 1], [-1]];

describe("sum / mean / max", () => {
  for (const axes of AXES) {
    const label = `axes ${axes ? `[${axes}]` : "all"}`;
    const resolved = (axes ?? [0, 1, 2]).map((a) => (a < 0 ? a + 3 : a));
    test(`forward, ${label}, keepDims false/true`, () => {
      td.tidy(() => {
        const x = distinct(50, SHAPE, 0.1);
        const s = refReduce(x.data, SHAPE, resolved, 0, (a, v) => a + v);
        const m = refReduce(x.data, SHAPE, resolved, -Infinity, Math.max);
        const count = resolved.reduce((p, a) => p * SHAPE[a]!, 1);
        const dropped = SHAPE.filter((_, i) => !resolved.includes(i));
        assertTensor(td.sum(x, axes), dropped, s.data, RTOL, ATOL, `sum ${label}`);
        assertTensor(td.sum(x, axes, true), s.kept, s.data, RTOL, ATOL, `sum keepDims ${label}`);
        assertTensor(td.mean(x, axes), dropped, s.data.map((v) => v / count), RTOL, ATOL, `mean ${label}`);
        assertTensor(td.mean(x, axes, true), s.kept, s.data.map((v) => v / count), RTOL, ATOL, `mean keepDims ${label}`);
        assertTensor(td.max(x, axes), dropped, m.data, 0, 0, `max ${label}`);
        assertTensor(td.max(x, axes, true), s.kept, m.data, 0, 0, `max keepDims ${label}`);
      });
    });
    test(`gradcheck first and second order, ${label}`, () => {
      // Products with x make the second derivative non-trivial.
      gradcheck((x) => td.mul(td.sum(td.square(x), axes), 0.5), [randn(51, SHAPE)], { name: `sum ${label}` });
      gradcheck((x) => td.mean(td.mul(x, td.exp(x)), axes, true), [randn(52, SHAPE)], { name: `mean ${label}` });
      // distinct(): no ties, so the argmax cannot change under eps = 1e-6.
      gradcheck((x) => td.mul(td.max(x, axes), td.sum(x)), [distinct(53, SHAPE, 0.1)], { name: `max ${label}` });
    });
  }

  test("max shares the gradient equally among tied maxima", () => {
    td.tidy(() => {
      const x = td.tensor([1, 3, 3, 0, 2, 2, 2, -1], [2, 4], "float64");
      const g = td.gradOfInput((t) => td.sum(td.max(t, 1)), x);
      assert.deepEqual(g.toArray(), [0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3, 0]);
    });
  });

  test("sum of int32 stays int32; sum of rank-0 and empty axes lists", () => {
    td.tidy(() => {
      const i = td.tensor([1, 2, 3, 4], [2, 2], "int32");
      const s = td.sum(i, 0);
      assert.equal(s.dtype, "int32");
      assert.deepEqual(s.toArray(), [4, 6]);
      assert.equal(td.sum(td.scalar(5, "float64")).item(), 5);
      assert.deepEqual(td.sum(td.tensor([1, 2], [2], "float64"), []).toArray(), [1, 2]);
    });
  });

  test("max propagates NaN", () => {
    td.tidy(() => {
      assert.ok(Number.isNaN(td.max(td.tensor([1, NaN, 3], [3], "float64")).item()));
      assert.ok(Number.isNaN(td.max(td.tensor([NaN, 1, 3], [3], "float64")).item()));
    });
  });
});

describe("broadcastTo / sumTo", () => {
  const cases: [number[], number[]][] = [
    [[3], [2, 3]],
    [[2, 1], [2, 3]],
    [[1, 1, 1, 3], [2, 2, 2, 3]],
    [[2, 1, 1, 3], [2, 2, 2, 3]],
    [[], [2, 2]],
  ];
  for (const [from, to] of cases) {
    test(`broadcastTo [${from}] -> [${to}]: forward, gradcheck; sumTo back`, () => {
      td.tidy(() => {
        const x = randn(60, from);
        const y = td.broadcastTo(x, to);
        const off = to.length - from.length;
        const expected = Array.from({ length: sizeOfShape(to) }, (_, i) => {
          const idx = unravel(i, to).slice(off).map((v, a) => (from[a] === 1 ? 0 : v));
          return x.data[ravel(idx, from)]!;
        });
        assertTensor(y, to, expected, 0, 0, "broadcastTo");
        // sumTo is broadcastTo's adjoint: <broadcastTo(x), g> = <x, sumTo(g)>
        // (tolerance rtol 1e-12: two float64 sums of <= 24 terms in different orders).
        const g = randn(61, to);
        const back = td.sumTo(g, from);
        assert.deepEqual([...back.shape], from);
        const lhs = y.toArray().reduce((p, v, i) => p + v * g.data[i]!, 0);
        const rhs = back.toArray().reduce((p, v, i) => p + v * x.data[i]!, 0);
        assert.ok(Math.abs(lhs - rhs) <= 1e-12 * (1 + Math.abs(lhs)), `adjoint identity ${lhs} vs ${rhs}`);
      });
      gradcheck((x) => td.mul(td.broadcastTo(x, to), td.broadcastTo(td.tanh(x), to)), [randn(62, from)], { name: `broadcastTo [${from}]` });
      gradcheck((g) => td.square(td.sumTo(g, from)), [randn(63, to)], { name: `sumTo [${to}] -> [${from}]` });
    });
  }
  test("sumTo to the same shape is the identity (same tensor)", () => {
    td.tidy(() => {
      const x = randn(64, [2, 3]);
      assert.equal(td.sumTo(x, [2, 3]), x);
    });
  });
});

/** Naive cumulative op along `axis`. */
function refCumulative(x: ArrayLike<number>, shape: number[], axis: number, reverse: boolean, prod: boolean): number[] {
  const out = new Array<number>(x.length);
  for (let i = 0; i < x.length; i++) {
    const idx = unravel(i, shape);
    let acc = prod ? 1 : 0;
    for (let s = 0; s < shape[axis]!; s++) {
      if (reverse ? s < idx[axis]! : s > idx[axis]!) continue;
      const j = [...idx];
      j[axis] = s;
      acc = prod ? acc * x[ravel(j, shape)]! : acc + x[ravel(j, shape)]!;
    }
    out[i] = acc;
  }
  return out;
}

describe("cumsum / cumprod", () => {
  for (const axis of [0, 1, 2, -1]) {
    for (const reverse of [false, true]) {
      const label = `axis ${axis}${reverse ? " reverse" : ""}`;
      test(`${label}: forward and gradcheck`, () => {
        const a = axis < 0 ? axis + 3 : axis;
        td.tidy(() => {
          const x = uniformIn(70, SHAPE, 0.5, 1.5);
          assertTensor(td.cumsum(x, axis, reverse), SHAPE, refCumulative(x.data, SHAPE, a, reverse, false), RTOL, ATOL, `cumsum ${label}`);
          assertTensor(td.cumprod(x, axis, reverse), SHAPE, refCumulative(x.data, SHAPE, a, reverse, true), RTOL, ATOL, `cumprod ${label}`);
        });
        gradcheck((x) => td.mul(td.cumsum(x, axis, reverse), x), [randn(71, SHAPE)], { name: `cumsum ${label}` });
        // Inputs in [0.5, 1.5]: cumprod's gradient divides by x, so keep away from 0.
        gradcheck((x) => td.cumprod(x, axis, reverse), [uniformIn(72, SHAPE, 0.5, 1.5)], { name: `cumprod ${label}` });
      });
    }
  }
  test("defaults: axis 0, forward direction", () => {
    td.tidy(() => {
      assert.deepEqual(td.cumsum(td.tensor([1, 2, 3, 4], [4], "float64")).toArray(), [1, 3, 6, 10]);
      assert.deepEqual(td.cumprod(td.tensor([1, 2, 3, 4], [4], "float64")).toArray(), [1, 2, 6, 24]);
      assert.deepEqual(td.cumsum(td.tensor([1, 2, 3, 4], [2, 2], "int32")).toArray(), [1, 2, 4, 6]);
    });
  });
});
