// gelu, layerNorm, softmax, maxPool2x2, upsampleNearest: semantics against plain-JS
// definitions, first- and second-order gradchecks.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import type { Tensor } from "../../src/engine/index.ts";
import { assertClose, assertTensor, distinct, gradcheck, randn } from "./gradcheck.ts";
import { mapRows, refGelu, refMaxPool, refUpsample } from "./reference.ts";
import { layerNormGradXGradXComposite } from "../../src/engine/ops/nn.ts";

describe("gelu", () => {
  test("matches 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), not the erf form", () => {
    td.tidy(() => {
      const x = randn(160, [3, 4], 2);
      // rtol 1e-14, atol 1e-15: the engine's kernel evaluates the same function as x sigmoid(2u)
      // (a few ulps apart).
      assertTensor(td.gelu(x), [3, 4], Array.from(x.data, refGelu), 1e-14, 1e-15, "gelu");
      // At x = 1 the tanh form is 0.8411919906..., the exact erf form 0.8413447460...;
      // tolerance 1e-12 separates them (they differ by 1.5e-4).
      const one = td.gelu(td.tensor([1, -1, 0], [3], "float64")).toArray();
      assertClose(one, [0.8411919906082768, -0.15880800939172324, 0], 0, 1e-12, "gelu(1), gelu(-1), gelu(0)");
    });
  });
  test("gradcheck first and second order", () => {
    gradcheck(td.gelu, [randn(161, [3, 4], 1.5)], { name: "gelu" });
  });
  test("the derivative kernels gelu', gelu'' and the composite third derivative match central differences", () => {
    td.tidy(() => {
      // Includes the tails (where 1 + tanh(u) cancels) and the minimum of gelu (gelu' = 0 near -0.75).
      const xs = [-7, -4, -2.5, -1.2, -0.7518, -0.3, -1e-3, 0, 0.2, 0.9, 2.5, 6];
      const x = td.tensor(xs, [xs.length], "float64");
      const h = 1e-5;
      const at = (f: (t: Tensor) => Tensor, d: number): number[] => f(td.tensor(xs.map((v) => v + d), [xs.length], "float64")).toArray();
      const central = (f: (t: Tensor) => Tensor): number[] => at(f, h).map((v, i) => (v - at(f, -h)[i]!) / (2 * h));
      const grad1 = (t: Tensor): Tensor => td.gradOfInput((s) => td.sum(td.gelu(s)), t, { createGraph: true });
      const grad2 = (t: Tensor): Tensor => td.gradOfInput((s) => td.sum(grad1(s)), t, { createGraph: true });
      const grad3 = (t: Tensor): Tensor => td.gradOfInput((s) => td.sum(grad2(s)), t);
      // atol 1e-8: the central difference's truncation error h^2 |f''''| / 6 ~ 1e-10 plus rounding ~1e-11.
      assertClose(grad1(x).data, central(td.gelu), 0, 1e-8, "first derivative");
      assertClose(grad2(x).data, central(grad1), 0, 1e-8, "second derivative");
      assertClose(grad3(x).data, central(grad2), 0, 1e-8, "third derivative");
    });
  });
  test("float32: one rounding of the double-precision value", () => {
    td.tidy(() => {
      const xs = [-5, -2, -0.75, -0.1, 0.3, 1, 3];
      const y = td.gelu(td.tensor(xs, [xs.length], "float32")).toArray();
      const c = Math.sqrt(2 / Math.PI);
      const exact = xs.map(Math.fround).map((v) => Math.fround(v / (1 + Math.exp(-2 * c * (v + 0.044715 * v ** 3)))));
      assertClose(y, exact, 0, 0, "gelu float32");
    });
  });
});

/** y = (x - mean) / sqrt(max(0, E[x^2] - E[x]^2) + eps) * scale + bias over the last axis. */
function refLayerNorm(x: ArrayLike<number>, c: number, scale: ArrayLike<number>, bias: ArrayLike<number>, eps: number): number[] {
  return mapRows(x, c, (row) => {
    const mu = row.reduce((p, v) => p + v, 0) / c;
    const m2 = row.reduce((p, v) => p + v * v, 0) / c;
    const variance = Math.max(0, m2 - mu * mu);
    return row.map((v, i) => ((v - mu) / Math.sqrt(variance + eps)) * scale[i]! + bias[i]!);
  });
}

describe("layerNorm", () => {
  for (const shape of [[2, 3, 4], [1, 2, 2, 3], [5]]) {
    const c = shape[shape.length - 1]!;
    test(`[${shape}]: forward (fast variance, eps 1e-6 default) and gradcheck w.r.t. x, scale, bias`, () => {
      td.tidy(() => {
        const x = randn(170, shape, 2, 0.5);
        const scale = randn(171, [c], 0.5, 1);
        const bias = randn(172, [c]);
        // rtol 1e-12, atol 1e-12: same float64 formula; the engine divides sums by the count
        // and multiplies by rsqrt rather than dividing by sqrt (a few ulps, amplified by 1/std <= ~10).
        assertTensor(td.layerNorm(x, scale, bias), shape, refLayerNorm(x.data, c, scale.data, bias.data, 1e-6), 1e-12, 1e-12, "layerNorm");
        assertTensor(td.layerNorm(x, scale, bias, 0.5), shape, refLayerNorm(x.data, c, scale.data, bias.data, 0.5), 1e-12, 1e-12, "layerNorm eps 0.5");
      });
      gradcheck((x, s, b) => td.layerNorm(x, s, b), [randn(173, shape), randn(174, [c], 0.5, 1), randn(175, [c])], { name: `layerNorm [${shape}]` });
    });
  }

  test("third order: the gradient of the input gradient (createGraph) passes a first- and second-order gradcheck", () => {
    // f(x, s, b) = d <u, layerNorm(x, s, b)> / dx: its gradcheck differentiates layerNorm twice and three times.
    const u = randn(176, [2, 5]);
    const inputGrad = (x: Tensor, s: Tensor, b: Tensor): Tensor =>
      td.gradOfInput((t) => td.sum(td.mul(td.layerNorm(t, s, b), u)), x, { createGraph: true });
    gradcheck(inputGrad, [randn(177, [2, 5], 1.5, 0.3), randn(178, [5], 0.5, 1), randn(179, [5])], { name: "layerNorm input gradient" });
  });

  test("the second-derivative kernel (layerNormGradXGradX) is its composite formula, a clamped row included", () => {
    td.tidy(() => {
      // Rows of 1, 5 and 64 channels; in the 5-channel case the last row is constant at 100000.1, whose fast
      // variance rounds to -3.8e-6 and is clamped: no gradient flows through it (both give 0 there).
      for (const c of [1, 5, 64]) {
        const rows = 4;
        const x = randn(190 + c, [rows, c], 1.5, 0.3);
        if (c === 5) x.data.fill(100000.1, (rows - 1) * c);
        const [g, h, scale] = [randn(191 + c, [rows, c]), randn(192 + c, [rows, c]), randn(193 + c, [c], 0.5, 1)];
        for (const eps of [1e-6, 0.5]) {
          const out = new Float64Array(rows * c);
          td.getBackend().layerNormGradXGradX(x.data, g.data, h.data, rows, c, scale.data, eps, out);
          const composite = layerNormGradXGradXComposite(x, g, scale, h, eps).data;
          // rtol 1e-12, atol 1e-12 * the row's scale (rstd^2 |h| |a| ~ 10): the same float64 formula, sums in
          // another order and products grouped differently.
          assertClose(out, composite, 1e-12, 1e-11, `layerNormGradXGradX ${rows}x${c} eps ${eps}`);
          if (c === 5) assert.deepEqual(Array.from(out.subarray((rows - 1) * c)), [0, 0, 0, 0, 0], "the clamped row");
        }
      }
    });
  });

  test("eps is 1e-6 by default: a row with variance 1e-6 is scaled by 1/sqrt(2e-6)", () => {
    td.tidy(() => {
      // Row [-d, d] has mean 0 and variance d^2 = 1e-6.
      const d = 1e-3;
      const y = td.layerNorm(td.tensor([-d, d], [1, 2], "float64"), td.ones([2], "float64"), td.zeros([2], "float64"));
      // rtol 1e-9: E[x^2] - E[x]^2 of values ~1e-3 loses ~1e-16/1e-6 = 1e-10 relative.
      assertClose(y.data, [-d / Math.sqrt(2e-6), d / Math.sqrt(2e-6)], 1e-9, 0, "eps");
    });
  });

  test("constant rows: a fast variance that rounds below -eps is clamped to 0, output = bias", () => {
    td.tidy(() => {
      // In float64, E[x^2] - E[x]^2 is -1.7e-18 for [0.1, 0.1, 0.1] and -3.8e-6 (< -eps, so
      // rsqrt would give NaN without the clamp) for [100000.1, 100000.1, 100000.1].
      const c = 100000.1;
      const x = td.tensor([0.1, 0.1, 0.1, c, c, c], [2, 3], "float64");
      const y = td.layerNorm(x, td.full([3], 2, "float64"), td.tensor([1, 2, 3], [3], "float64"));
      // atol 1e-6: x - mean is at most an ulp of 1e5 (1.5e-11), times scale / sqrt(eps) = 2000.
      assertClose(y.data, [1, 2, 3, 1, 2, 3], 0, 1e-6, "constant rows");
    });
  });
});

function refSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((p, v) => p + v, 0);
  return e.map((v) => v / s);
}

describe("softmax", () => {
  test("last axis (default): forward, rows sum to 1, large inputs stay finite", () => {
    td.tidy(() => {
      const x = randn(180, [3, 5], 2);
      const y = td.softmax(x);
      // rtol 1e-14, atol 1e-16: the same exp/sum/div sequence in float64.
      assertTensor(y, [3, 5], mapRows(x.data, 5, refSoftmax), 1e-14, 1e-16, "softmax");
      // Row sums of 1 within 1e-15 (5 terms, each rounded once).
      assertClose(td.sum(y, -1).data, [1, 1, 1], 0, 1e-15, "row sums");
      const big = td.softmax(td.tensor([1000, 1001, 1002], [3], "float64"));
      assertClose(big.data, refSoftmax([0, 1, 2]), 1e-14, 1e-16, "shift invariance at 1000");
    });
  });
  test("other axes: axis 0 and 1 of a [2,3,4] tensor", () => {
    td.tidy(() => {
      const x = randn(181, [2, 3, 4]);
      for (const axis of [0, 1]) {
        const moved = td.transpose(x, axis === 0 ? [1, 2, 0] : [0, 2, 1]);
        const n = x.shape[axis]!;
        const expectedMoved = mapRows(moved.data, n, refSoftmax);
        const y = td.transpose(td.softmax(x, axis), axis === 0 ? [1, 2, 0] : [0, 2, 1]);
        assertClose(y.data, expectedMoved, 1e-14, 1e-16, `softmax axis ${axis}`);
      }
    });
  });
  for (const axis of [-1, 0, 1]) {
    test(`gradcheck first and second order, axis ${axis}`, () => {
      gradcheck((x) => td.softmax(x, axis), [randn(182, [2, 3, 4])], { name: `softmax axis ${axis}` });
    });
  }
});

describe("maxPool2x2 ('SAME')", () => {
  const shapes = [[2, 4, 4, 3], [1, 2, 6, 2], [1, 3, 5, 2], [2, 1, 1, 3], [1, 1, 3, 1]];
  for (const shape of shapes) {
    test(`[${shape}]: forward (odd sizes pad with -inf at the end) and gradcheck`, () => {
      td.tidy(() => {
        const x = distinct(190, shape, 0.1);
        const ref = refMaxPool(x.data, shape);
        assertTensor(td.maxPool2x2(x), ref.shape, ref.data, 0, 0, `maxPool [${shape}]`);
      });
      // distinct(): no ties within a window and no value within 1e-6 of another, so the
      // argmax is stable under the finite-difference step.
      gradcheck((x) => td.mul(td.maxPool2x2(x), td.maxPool2x2(td.tanh(x))), [distinct(191, shape, 0.1)], { name: `maxPool2x2 [${shape}]` });
    });
  }
  test("1x1 stays 1x1; negative values are not beaten by the -inf padding", () => {
    td.tidy(() => {
      const x = td.tensor([-5, -7], [1, 1, 1, 2], "float64");
      assertTensor(td.maxPool2x2(x), [1, 1, 1, 2], [-5, -7], 0, 0, "1x1");
      const y = td.maxPool2x2(td.tensor([-3, -1, -2], [1, 1, 3, 1], "float64"));
      assertTensor(y, [1, 1, 2, 1], [-1, -2], 0, 0, "1x3 -> 1x2");
    });
  });
  test("gradient goes to the window's maximum only", () => {
    td.tidy(() => {
      const x = td.tensor([1, 4, 3, 2, 0, 0, 9, 0, 5, 6, 7, 8, 1, 1, 1, 1], [1, 4, 4, 1], "float64");
      const g = td.gradOfInput((t) => td.sum(td.maxPool2x2(t)), x);
      assert.deepEqual(g.toArray(), [0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
    });
  });
});

describe("upsampleNearest", () => {
  const cases: [number[], number, number][] = [
    [[2, 2, 2, 3], 4, 4],
    [[1, 2, 3, 1], 4, 6],
    [[1, 1, 1, 2], 1, 1],
    [[1, 1, 1, 2], 3, 2],
    [[1, 3, 2, 1], 5, 3],
    [[1, 4, 4, 1], 2, 2],
  ];
  for (const [shape, h, w] of cases) {
    test(`[${shape}] -> ${h}x${w}: src = floor((i + 0.5) * in / out), gradcheck`, () => {
      td.tidy(() => {
        const x = randn(200, shape);
        assertTensor(td.upsampleNearest(x, h, w), [shape[0]!, h, w, shape[3]!], refUpsample(x.data, shape, h, w), 0, 0, "upsample");
      });
      gradcheck((x) => td.mul(td.upsampleNearest(x, h, w), td.upsampleNearest(td.sin(x), h, w)), [randn(201, shape)], { name: `upsampleNearest [${shape}] -> ${h}x${w}` });
    });
  }
  test("2x of a 2x2 map repeats each pixel in a 2x2 block", () => {
    td.tidy(() => {
      const x = td.tensor([1, 2, 3, 4], [1, 2, 2, 1], "float64");
      assertTensor(td.upsampleNearest(x, 4, 4), [1, 4, 4, 1], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], 0, 0, "2x");
      // Gradient of the sum: each source pixel feeds 4 outputs.
      const g = td.gradOfInput((t) => td.sum(td.upsampleNearest(t, 4, 4)), x);
      assert.deepEqual(g.toArray(), [4, 4, 4, 4]);
    });
  });
});
