// Elementwise ops: forward values against Math.*, first- and second-order gradchecks,
// broadcasting ([B,H,W,C] + [C], [B,1,1,C]) and the ops without gradients.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import type { Tensor } from "../../src/engine/index.ts";
import { assertClose, assertTensor, awayFromZero, distinct, gradcheck, randn, uniformIn } from "./gradcheck.ts";
import { refBinary } from "./reference.ts";

// Forward tolerance for float64 ops vs the same Math.* formula: rtol 1e-14, atol 1e-15.
// Both sides evaluate the same double-precision expression; only operation order can differ (a few ulps).
const RTOL = 1e-14, ATOL = 1e-15;

interface UnaryCase {
  name: string;
  op: (x: Tensor) => Tensor;
  ref: (v: number) => number;
  input: (seed: number, shape: number[]) => Tensor;
}

const normal = (seed: number, shape: number[]): Tensor => randn(seed, shape);
const positive = (seed: number, shape: number[]): Tensor => uniformIn(seed, shape, 0.5, 2);
const nonzero = (seed: number, shape: number[]): Tensor => awayFromZero(seed, shape, 0.3);

const UNARY: UnaryCase[] = [
  { name: "neg", op: td.neg, ref: (v) => -v, input: normal },
  { name: "exp", op: td.exp, ref: Math.exp, input: normal },
  { name: "log", op: td.log, ref: Math.log, input: positive },
  { name: "sqrt", op: td.sqrt, ref: Math.sqrt, input: positive },
  { name: "rsqrt", op: td.rsqrt, ref: (v) => 1 / Math.sqrt(v), input: positive },
  { name: "tanh", op: td.tanh, ref: Math.tanh, input: normal },
  { name: "abs", op: td.abs, ref: Math.abs, input: nonzero },
  { name: "sin", op: td.sin, ref: Math.sin, input: normal },
  { name: "cos", op: td.cos, ref: Math.cos, input: normal },
  { name: "square", op: td.square, ref: (v) => v * v, input: normal },
  { name: "reciprocal", op: td.reciprocal, ref: (v) => 1 / v, input: nonzero },
];

describe("unary ops", () => {
  for (const c of UNARY) {
    test(`${c.name}: forward matches Math, float64 and float32`, () => {
      td.tidy(() => {
        const x = c.input(11, [2, 3]);
        assertTensor(c.op(x), [2, 3], Array.from(x.data, c.ref), RTOL, ATOL, c.name);
        // float32: the kernel computes in double and rounds once on store, so results are
        // exactly fround(ref(fround(x))) (tolerance 0).
        const x32 = td.cast(x, "float32");
        const y32 = c.op(x32);
        assert.equal(y32.dtype, "float32");
        assert.deepEqual(Array.from(y32.data), Array.from(x32.data, (v) => Math.fround(c.ref(v))));
      });
    });
    test(`${c.name}: gradcheck first and second order`, () => {
      gradcheck(c.op, [c.input(12, [2, 3])], { name: c.name });
    });
  }

  test("sign and step: values, no recorded graph, zero gradient", () => {
    td.tidy(() => {
      const x = td.tensor([-2, -0.5, 0, 0.5, 3], [5], "float64");
      assert.deepEqual(td.sign(x).toArray(), [-1, -1, 0, 1, 1]);
      assert.deepEqual(td.step(x).toArray(), [0, 0, 0, 1, 1]);
      const g = td.gradOfInput((t) => td.sum(td.add(td.mul(td.sign(t), 3), td.step(t))), x);
      assert.deepEqual(g.toArray(), [0, 0, 0, 0, 0]);
      // Whereas abs(x) = x * sign(x) does get sign(x) as its gradient.
      const ga = td.gradOfInput((t) => td.sum(td.abs(t)), td.tensor([-2, 3], [2], "float64"));
      assert.deepEqual(ga.toArray(), [-1, 1]);
    });
  });
});

interface BinaryCase {
  name: string;
  op: (a: td.TensorLike, b: td.TensorLike) => Tensor;
  ref: (a: number, b: number) => number;
  inputs: (aShape: number[], bShape: number[]) => [Tensor, Tensor];
}

const twoNormal = (a: number[], b: number[]): [Tensor, Tensor] => [randn(21, a), randn(22, b)];
// Separated grids: a on k*0.1 + 0.0137, b on k*0.1 + 0.0637, so |a - b| >= 0.05 everywhere (no ties).
const separated = (a: number[], b: number[]): [Tensor, Tensor] => [distinct(23, a, 0.1, 0.0137), distinct(24, b, 0.1, 0.0637)];

const BINARY: BinaryCase[] = [
  { name: "add", op: td.add, ref: (a, b) => a + b, inputs: twoNormal },
  { name: "sub", op: td.sub, ref: (a, b) => a - b, inputs: twoNormal },
  { name: "mul", op: td.mul, ref: (a, b) => a * b, inputs: twoNormal },
  { name: "div", op: td.div, ref: (a, b) => a / b, inputs: (a, b) => [randn(25, a), awayFromZero(26, b, 0.5)] },
  { name: "pow", op: td.pow, ref: Math.pow, inputs: (a, b) => [uniformIn(27, a, 0.5, 2), randn(28, b)] },
  { name: "maximum", op: td.maximum, ref: Math.max, inputs: separated },
  { name: "minimum", op: td.minimum, ref: Math.min, inputs: separated },
];

/** Shape pairs: equal, trailing-axis broadcast, NHWC + [C], NHWC + [B,1,1,C], and rank-0 on the left. */
const SHAPES: [number[], number[]][] = [
  [[2, 3], [2, 3]],
  [[2, 3], [3]],
  [[2, 2, 2, 3], [3]],
  [[2, 2, 2, 3], [2, 1, 1, 3]],
  [[], [2, 3]],
  [[2, 1], [1, 3]],
];

describe("binary ops with broadcasting", () => {
  for (const c of BINARY) {
    for (const [aShape, bShape] of SHAPES) {
      const label = `${c.name} [${aShape}] with [${bShape}]`;
      test(`${label}: forward`, () => {
        td.tidy(() => {
          const [a, b] = c.inputs(aShape, bShape);
          const ref = refBinary(a.data, aShape, b.data, bShape, c.ref);
          assertTensor(c.op(a, b), ref.shape, ref.data, RTOL, ATOL, label);
        });
      });
      test(`${label}: gradcheck first and second order`, () => {
        gradcheck(c.op, c.inputs(aShape, bShape), { name: label });
      });
    }
  }

  test("number operands become scalars of the tensor's dtype", () => {
    td.tidy(() => {
      const x = td.tensor([1, 2, 4], [3], "float64");
      assert.deepEqual(td.sub(10, x).toArray(), [9, 8, 6]);
      assert.deepEqual(td.div(x, 2).toArray(), [0.5, 1, 2]);
      assert.deepEqual(td.pow(2, x).toArray(), [2, 4, 16]);
      assert.equal(td.mul(x, 3).dtype, "float64");
      gradcheck((t) => td.pow(t, 3), [uniformIn(30, [4], 0.5, 2)], { name: "pow(x, 3)" });
      gradcheck((t) => td.pow(2, t), [randn(31, [4])], { name: "pow(2, x)" });
      gradcheck((t) => td.div(1, t), [awayFromZero(32, [4], 0.5)], { name: "div(1, x)" });
    });
  });

  test("maximum/minimum send a tie's gradient to the first operand", () => {
    td.tidy(() => {
      const a = td.tensor([1, 2], [2], "float64");
      const b = td.tensor([1, 2], [2], "float64");
      a.requiresGrad = b.requiresGrad = true;
      for (const op of [td.maximum, td.minimum]) {
        const [ga, gb] = td.gradients(td.sum(op(a, b)), [a, b]);
        assert.deepEqual(ga!.toArray(), [1, 1]);
        assert.deepEqual(gb!.toArray(), [0, 0]);
      }
    });
  });

  test("maximum/minimum/clip propagate a NaN from either operand, as jnp.maximum and jnp.clip", () => {
    td.tidy(() => {
      for (const dtype of ["float32", "float64"] as const) {
        const a = td.tensor([NaN, 1, NaN, 3], [4], dtype);
        const b = td.tensor([2, NaN, NaN, -1], [4], dtype);
        for (const op of [td.maximum, td.minimum]) {
          const out = op(a, b).toArray();
          assert.ok(out.slice(0, 3).every(Number.isNaN), `${op.name} ${dtype}: ${out}`);
          assert.equal(out[3], op === td.maximum ? 3 : -1);
        }
        assert.ok(Number.isNaN(td.clip(a, -1, 1).toArray()[0]!));
        assert.deepEqual(td.clip(td.tensor([5, -5], [2], dtype), -1, 1).toArray(), [1, -1]);
      }
    });
  });

  test("same tensor on both sides accumulates both gradients", () => {
    // d/dx (x*x + x - x/x) = 2x + 1; gradcheck covers second order.
    gradcheck((x) => td.sub(td.add(td.mul(x, x), x), td.div(x, x)), [awayFromZero(33, [3], 0.5)], { name: "x*x + x - x/x" });
    td.tidy(() => {
      const x = td.tensor([1.5, -2], [2], "float64");
      const g = td.gradOfInput((t) => td.sum(td.mul(t, t)), x);
      assert.deepEqual(g.toArray(), [3, -4]);
    });
  });
});

describe("comparisons", () => {
  const cases: [string, (a: td.TensorLike, b: td.TensorLike) => Tensor, (a: number, b: number) => boolean][] = [
    ["less", td.less, (a, b) => a < b],
    ["lessEqual", td.lessEqual, (a, b) => a <= b],
    ["greater", td.greater, (a, b) => a > b],
    ["greaterEqual", td.greaterEqual, (a, b) => a >= b],
    ["equal", td.equal, (a, b) => a === b],
  ];
  for (const [name, op, ref] of cases) {
    test(`${name}: 0/1 values in the input dtype, broadcasting, no gradient`, () => {
      td.tidy(() => {
        const a = td.tensor([1, 2, 3, 2, 2, 0], [2, 3], "float64");
        const b = td.tensor([2, 2, 1], [3], "float64");
        const expected = refBinary(a.data, [2, 3], b.data, [3], (x, y) => (ref(x, y) ? 1 : 0));
        const y = op(a, b);
        assert.equal(y.dtype, "float64");
        assertTensor(y, expected.shape, expected.data, 0, 0, name);
        const ai = td.tensor([1, 5, -3], [3], "int32");
        const yi = op(ai, 1);
        assert.equal(yi.dtype, "int32");
        assert.deepEqual(yi.toArray(), [1, 5, -3].map((v) => (ref(v, 1) ? 1 : 0)));
        const g = td.gradOfInput((t) => td.sum(op(t, b)), a);
        assert.deepEqual(g.toArray(), [0, 0, 0, 0, 0, 0]);
      });
    });
  }
});

describe("where, clip, stopGradient", () => {
  test("where: forward with broadcast cond/a/b and number operands", () => {
    td.tidy(() => {
      const cond = td.tensor([1, 0, 1], [3], "int32");
      const a = td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
      const b = td.tensor([-1, -2], [2, 1], "float64");
      assertTensor(td.where(cond, a, b), [2, 3], [1, -1, 3, 4, -2, 6], 0, 0, "where");
      assert.deepEqual(td.where(td.greater(a, 3), a, 0).toArray(), [0, 0, 0, 4, 5, 6]);
      assert.deepEqual(td.where(td.greater(a, 3), 1, a).toArray(), [1, 2, 3, 1, 1, 1]);
    });
  });

  test("where: gradcheck first and second order w.r.t. both branches (broadcast b)", () => {
    const cond = td.keep(td.tensor([1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1], [2, 2, 3], "float64"));
    gradcheck((a, b) => td.mul(td.where(cond, td.square(a), td.exp(b)), a), [randn(40, [2, 2, 3]), randn(41, [2, 1, 3])], { name: "where" });
    cond.dispose();
  });

  test("clip: forward, gradient 1 inside [lo, hi] and 0 outside, gradcheck", () => {
    td.tidy(() => {
      const x = td.tensor([-2, -0.25, 0.3, 0.9, 5], [5], "float64");
      assert.deepEqual(td.clip(x, -0.5, 0.5).toArray(), [-0.5, -0.25, 0.3, 0.5, 0.5]);
      const g = td.gradOfInput((t) => td.sum(td.clip(t, -0.5, 0.5)), x);
      assert.deepEqual(g.toArray(), [0, 1, 1, 0, 0]);
    });
    // Grid values k*0.1 + 0.0137 are >= 0.0137 away from the bounds +-0.5, so no kink is crossed.
    gradcheck((t) => td.mul(td.clip(t, -0.5, 0.5), t), [distinct(42, [3, 4], 0.1)], { name: "clip" });
  });

  test("stopGradient: copies values, blocks the gradient", () => {
    td.tidy(() => {
      const x = td.tensor([1, 2, 3], [3], "float64");
      const s = td.stopGradient(x);
      assert.notEqual(s, x);
      assert.deepEqual(s.toArray(), [1, 2, 3]);
      // d/dx sum(x * stopGradient(x)) = stopGradient(x) (only the first factor counts).
      const g = td.gradOfInput((t) => td.sum(td.mul(t, td.stopGradient(t))), x);
      assertClose(g.data, [1, 2, 3], 0, 0, "stopGradient");
    });
  });
});
