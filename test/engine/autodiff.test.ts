// The autodiff API: gradients (seed, createGraph, unreachable inputs, intermediates),
// higher-order derivatives, valueAndGrad / grad over parameter trees, gradOfInput, noGrad.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { assertClose, gradcheck, randn } from "./gradcheck.ts";
import { compositeVjp } from "../../src/engine/autodiff.ts";
import { record } from "../../src/engine/tensor.ts";

const f64 = (values: number[], shape = [values.length]): td.Tensor => td.tensor(values, shape, "float64");

describe("gradients", () => {
  test("default seed is ones; an explicit seed is the output's cotangent", () => {
    td.tidy(() => {
      const x = f64([1, 2, 3]);
      x.requiresGrad = true;
      const y = td.mul(x, x);
      assert.deepEqual(td.gradients(y, [x])[0]!.toArray(), [2, 4, 6]);
      assert.deepEqual(td.gradients(y, [x], { seed: f64([1, 0, -1]) })[0]!.toArray(), [2, 0, -6]);
      x.requiresGrad = false;
    });
  });

  test("a seed of the wrong shape is an error naming both shapes", () => {
    td.tidy(() => {
      const x = f64([1, 2, 3]);
      x.requiresGrad = true;
      const y = td.mul(x, 2);
      assert.throws(() => td.gradients(y, [x], { seed: f64([1, 2]) }), /gradients: seed \[2\] does not match output \[3\]/);
      x.requiresGrad = false;
    });
  });

  test("inputs the output does not depend on get zeros of their shape and dtype", () => {
    td.tidy(() => {
      const x = f64([1, 2]);
      const unused = td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
      x.requiresGrad = unused.requiresGrad = true;
      const [gx, gu] = td.gradients(td.sum(td.exp(x)), [x, unused]);
      assertClose(gx!.data, [Math.E, Math.E ** 2], 1e-15, 0, "d sum(exp x)");
      assert.deepEqual([...gu!.shape], [2, 3]);
      assert.equal(gu!.dtype, "float64");
      assert.deepEqual(gu!.toArray(), [0, 0, 0, 0, 0, 0]);
      // A constant output (nothing requires grad) also gives zeros.
      const c = td.sum(f64([1, 2]));
      assert.deepEqual(td.gradients(c, [x])[0]!.toArray(), [0, 0]);
      x.requiresGrad = unused.requiresGrad = false;
    });
  });

  test("an intermediate tensor and the output itself can be differentiation targets", () => {
    td.tidy(() => {
      const x = f64([1, 2]);
      x.requiresGrad = true;
      const h = td.mul(x, 3);
      const y = td.sum(td.square(h));
      const [gh, gx, gy] = td.gradients(y, [h, x, y]);
      assert.deepEqual(gh!.toArray(), [6, 12]); // 2h
      assert.deepEqual(gx!.toArray(), [18, 36]); // 18x
      assert.equal(gy!.item(), 1);
      x.requiresGrad = false;
    });
  });

  test("fan-out: a tensor used by several ops accumulates all contributions (diamond graph)", () => {
    gradcheck((x) => {
      const a = td.exp(x);
      const b = td.mul(a, a);
      const c = td.add(td.sin(a), td.mul(b, x));
      return td.add(c, td.sum(a));
    }, [randn(210, [2, 3], 0.5)], { name: "diamond" });
  });

  test("only gradients on a path to the targets are computed (a conv's kernel gradient is skipped for d/dx)", () => {
    const calls = new Map<string, number>();
    const inner = td.getBackend();
    const counting = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    td.setBackend(counting);
    try {
      td.tidy(() => {
        const x = randn(230, [2, 4, 4, 3]);
        const k = randn(231, [3, 3, 3, 2]);
        const w = randn(232, [2]);
        x.requiresGrad = k.requiresGrad = w.requiresGrad = true;
        const y = td.sum(td.tanh(td.mul(td.conv2d(x, k), w)));
        calls.clear();
        const [gx] = td.gradients(y, [x], { createGraph: true });
        assert.equal(calls.get("conv2dKernelGrad") ?? 0, 0, "no kernel gradient for d/dx");
        assert.equal(calls.get("conv2d"), 1, "the input gradient's convolution");
        assert.equal(calls.get("reduce") ?? 0, 0, "no bias-like reduction for w's gradient");
        // The result is the same as when every gradient is computed, and it is still differentiable w.r.t. k and w.
        const [gxAll] = td.gradients(y, [x, k, w], { createGraph: true });
        assert.deepEqual(gx!.toArray(), gxAll!.toArray());
        const [gk, gw] = td.gradients(td.sum(td.square(gx!)), [k, w]);
        const [gk2, gw2] = td.gradients(td.sum(td.square(gxAll!)), [k, w]);
        assert.deepEqual(gk!.toArray(), gk2!.toArray());
        assert.deepEqual(gw!.toArray(), gw2!.toArray());
        assert.ok(gk!.toArray().some((v) => v !== 0));
        x.requiresGrad = k.requiresGrad = w.requiresGrad = false;
      });
    } finally {
      td.setBackend(inner);
    }
  });

  test("createGraph: false gives plain tensors; true gives differentiable ones", () => {
    td.tidy(() => {
      const x = f64([0.5, -1]);
      x.requiresGrad = true;
      const y = td.sum(td.mul(td.square(x), x)); // sum x^3
      const [plain] = td.gradients(y, [x]);
      assert.equal(plain!.requiresGrad, false);
      assert.equal(plain!.node, null);
      // Differentiating a plain gradient again finds no path: zeros.
      assert.deepEqual(td.gradients(td.sum(plain!), [x])[0]!.toArray(), [0, 0]);
      const [recorded] = td.gradients(y, [x], { createGraph: true });
      assert.equal(recorded!.requiresGrad, true);
      assert.deepEqual(recorded!.toArray(), [0.75, 3]); // 3x^2
      assert.deepEqual(td.gradients(td.sum(recorded!), [x])[0]!.toArray(), [3, -6]); // 6x
      x.requiresGrad = false;
    });
  });

  test("third and fourth derivatives of x^4 (createGraph repeatedly)", () => {
    td.tidy(() => {
      const x = f64([1.5, -2]);
      x.requiresGrad = true;
      let y = td.sum(td.pow(x, 4));
      const expected = [
        [4 * 1.5 ** 3, 4 * -8], // 4x^3
        [12 * 2.25, 12 * 4], // 12x^2
        [24 * 1.5, 24 * -2], // 24x
        [24, 24],
      ];
      for (const e of expected) {
        const [g] = td.gradients(y, [x], { createGraph: true });
        // rtol 1e-14: pow/mul in float64 of small integers and halves, a few ulps.
        assertClose(g!.data, e, 1e-14, 0, "derivative");
        y = td.sum(g!);
      }
      x.requiresGrad = false;
    });
  });
});

describe("valueAndGrad / grad / gradOfInput / noGrad", () => {
  test("valueAndGrad over a nested parameter tree with extra arguments", () => {
    td.tidy(() => {
      const params = { layer: { w: f64([1, 2, 3, 4], [2, 2]), b: f64([0.5, -0.5]) }, scale: td.scalar(2, "float64") };
      const x = f64([1, -1], [1, 2]);
      const loss = (p: typeof params, input: td.Tensor): td.Tensor =>
        td.mul(p.scale, td.sum(td.square(td.linear(input, p.layer.w, p.layer.b))));
      const { value, grads } = td.valueAndGrad(loss)(params, x);
      // y = x @ w + b = [1-3+0.5, 2-4-0.5] = [-1.5, -2.5]; loss = 2 * (2.25 + 6.25) = 17.
      assert.equal(value.item(), 17);
      assert.deepEqual(Object.keys(grads).sort(), ["layer", "scale"]);
      // dL/dy = 2*scale*y = [-6, -10]; dL/dw = x^T dL/dy; dL/db = dL/dy; dL/dscale = sum y^2 = 8.5.
      assert.deepEqual(grads.layer.w.toArray(), [-6, -10, 6, 10]);
      assert.deepEqual(grads.layer.b.toArray(), [-6, -10]);
      assert.equal(grads.scale.item(), 8.5);
      // Flags are restored: parameters are not variables outside the call.
      assert.equal(params.layer.w.requiresGrad, false);
      assert.equal(params.scale.requiresGrad, false);
      const g2 = td.grad(loss)(params, x);
      assert.deepEqual(g2.layer.w.toArray(), [-6, -10, 6, 10]);
    });
  });

  test("valueAndGrad with createGraph allows a gradient of the gradient", () => {
    td.tidy(() => {
      const w = f64([0.3, -0.7]);
      const vg = td.valueAndGrad((p: td.Tensor) => td.sum(td.mul(td.square(p), p)), { createGraph: true });
      w.requiresGrad = true;
      const { grads } = vg(w);
      assert.equal(grads.requiresGrad, true);
      const [h] = td.gradients(td.sum(grads), [w]);
      assertClose(h!.data, [6 * 0.3, 6 * -0.7], 1e-15, 0, "6w");
      w.requiresGrad = false;
    });
  });

  test("gradOfInput differentiates w.r.t. a non-parameter and restores its flag", () => {
    td.tidy(() => {
      const x = f64([1, 2]);
      const g = td.gradOfInput((t) => td.sum(td.log(t)), x);
      assertClose(g.data, [1, 0.5], 1e-15, 0, "1/x");
      assert.equal(x.requiresGrad, false);
    });
  });

  test("noGrad records nothing, nests, and restores recording after an exception", () => {
    td.tidy(() => {
      const x = f64([1, 2]);
      x.requiresGrad = true;
      const y = td.noGrad(() => td.exp(x));
      assert.equal(y.node, null);
      assert.equal(y.requiresGrad, false);
      assert.throws(() => td.noGrad(() => { throw new Error("boom"); }), /boom/);
      const z = td.exp(x);
      assert.notEqual(z.node, null, "recording is back on after the throw");
      assert.equal(z.node!.op, "exp");
      assert.equal(z.node!.inputs[0], x);
      // gradOfInput inside noGrad still records (it switches recording on for its own pass).
      const g = td.noGrad(() => td.gradOfInput((t) => td.sum(td.square(t)), f64([3])));
      assert.deepEqual(g.toArray(), [6]);
      x.requiresGrad = false;
    });
  });
});

describe("compositeVjp (an op's gradient taken from its composite)", () => {
  /** x * y computed unrecorded, as a kernel would, with compositeVjp of mul as its backward rule. */
  const kernelMul = (x: td.Tensor, y: td.Tensor): td.Tensor => {
    const out = td.noGrad(() => td.mul(x, y));
    return record(out, "kernelMul", [x, y], (g) => compositeVjp((a, b) => td.mul(a!, b!), [x, y], g));
  };

  test("partial derivatives: an input computed from another is not differentiated through", () => {
    td.tidy(() => {
      const x = f64([3, -1]);
      x.requiresGrad = true;
      // f = x * (2x) = 2x^2: df/dx = 4x, which needs the partials y and x (followed past y, x's would be y + 2x).
      const f = td.sum(kernelMul(x, td.mul(2, x)));
      const [g] = td.gradients(f, [x], { createGraph: true });
      assert.deepEqual(g!.toArray(), [12, -4]);
      // Recorded: the second derivative, 4, through the composite's recorded backward.
      assert.deepEqual(td.gradients(td.sum(g!), [x])[0]!.toArray(), [4, 4]);
      x.requiresGrad = false;
    });
  });

  test("the same tensor at two positions gets its gradient once per use", () => {
    td.tidy(() => {
      const x = f64([3, -1]);
      x.requiresGrad = true;
      assert.deepEqual(td.gradients(td.sum(kernelMul(x, x)), [x])[0]!.toArray(), [6, -2]); // d x^2 / dx
      x.requiresGrad = false;
    });
  });

  test("an input the pass does not need gets null", () => {
    td.tidy(() => {
      const x = f64([3, -1]);
      const y = f64([2, 5]);
      x.requiresGrad = true;
      y.requiresGrad = true;
      let returned: (td.Tensor | null)[] = [];
      const out = td.noGrad(() => td.mul(x, y));
      const op = record(out, "kernelMul", [x, y], (s) => (returned = compositeVjp((a, b) => td.mul(a!, b!), [x, y], s)));
      // Only x's gradient is asked for: y's partial is not computed.
      assert.deepEqual(td.gradients(td.sum(op), [x])[0]!.toArray(), [2, 5]);
      assert.deepEqual(returned[0]!.toArray(), [2, 5]);
      assert.equal(returned[1], null);
      x.requiresGrad = false;
      y.requiresGrad = false;
    });
  });
});
