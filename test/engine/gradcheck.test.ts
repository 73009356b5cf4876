// The gradcheck helper itself: it must pass correct rules and reject wrong ones
// (otherwise every gradient test in this folder would be a tautology).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { getBackend, mul, stopGradient, sum, type Tensor } from "../../src/engine/index.ts";
import { emptyTensor, record } from "../../src/engine/tensor.ts";
import { awayFromZero, distinct, gradcheck, randn, uniformIn, worstMismatch } from "./gradcheck.ts";

/** x^3 with a configurable backward rule. */
function cube(x: Tensor, rule: "right" | "wrongFirst" | "frozenSecond"): Tensor {
  const out = emptyTensor(x.shape, x.dtype, "cube");
  const d = x.data, o = out.data;
  for (let i = 0; i < d.length; i++) o[i] = d[i]! ** 3;
  return record(out, "cube", [x], (g) => {
    const dydx = mul(3, mul(x, x));
    if (rule === "right") return [mul(g, dydx)];
    if (rule === "wrongFirst") return [mul(g, mul(2, mul(x, x)))]; // 2x^2 instead of 3x^2
    return [mul(g, stopGradient(dydx))]; // first order right, second order missing
  });
}

describe("gradcheck helper", () => {
  test("accepts a correct rule (first and second order)", () => {
    gradcheck((x) => cube(x, "right"), [randn(1, [2, 3])], { name: "cube" });
    gradcheck((x) => sum(cube(x, "right")), [randn(2, [4])], { name: "sum(cube)" });
  });

  test("rejects a wrong first-order rule", () => {
    assert.throws(() => gradcheck((x) => cube(x, "wrongFirst"), [randn(1, [2, 3])], { name: "bad" }), /bad: first-order gradient w\.r\.t\. input 0/);
  });

  test("rejects a rule whose second derivative is wrong", () => {
    // First order passes (secondOrder: false), the full check fails at second order.
    gradcheck((x) => cube(x, "frozenSecond"), [randn(1, [2, 3])], { name: "frozen", secondOrder: false });
    assert.throws(() => gradcheck((x) => cube(x, "frozenSecond"), [randn(1, [2, 3])], { name: "frozen" }), /frozen: second-order gradient/);
  });

  test("restores the inputs and their requiresGrad flags", () => {
    const x = randn(3, [5]);
    const before = Array.from(x.data);
    gradcheck((t) => cube(t, "right"), [x]);
    assert.deepEqual(Array.from(x.data), before);
    assert.equal(x.requiresGrad, false);
  });

  test("input generators keep away from kinks", () => {
    const z = awayFromZero(4, [1000], 0.3);
    assert.ok(Array.from(z.data).every((v) => Math.abs(v) >= 0.3));
    const u = uniformIn(5, [1000], 0.5, 2);
    assert.ok(Array.from(u.data).every((v) => v >= 0.5 && v < 2));
    const d = Array.from(distinct(6, [50], 0.1).data).sort((a, b) => a - b);
    // Adjacent sorted values differ by the spacing (tolerance 1e-12: grid arithmetic in float64).
    for (let i = 1; i < d.length; i++) assert.ok(Math.abs(d[i]! - d[i - 1]! - 0.1) < 1e-12);
    assert.equal(getBackend().name, "cpu");
  });

  test("worstMismatch flags NaN and out-of-tolerance values", () => {
    assert.equal(worstMismatch([1, 2], [1, 2 + 1e-9], 1e-6, 0), null);
    assert.equal(worstMismatch([1, NaN], [1, 2], 1e-6, 1e-6)?.index, 1);
    assert.equal(worstMismatch([1, 2.1], [1, 2], 1e-6, 1e-6)?.index, 1);
  });
});
