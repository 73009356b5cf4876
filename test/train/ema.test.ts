import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { DEFAULT_EMA, emaDecayAt, emaUpdate, initEma, validateEmaConfig } from "../../src/train/ema.ts";

type Tree = { a: td.Tensor; sub: { b: td.Tensor } };
const tree = (a: number[], b: number[], dtype: td.DType = "float64"): Tree => ({ a: td.tensor(a, [a.length], dtype), sub: { b: td.tensor(b, [b.length], dtype) } });
const values = (t: Tree): number[][] => [t.a.toArray(), t.sub.b.toArray()];

function assertClose(actual: number[][], expected: number[][], tol: number): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, i) => row.forEach((x, j) => assert.ok(Math.abs(x - expected[i]![j]!) <= tol, `[${i}][${j}]: ${x} vs ${expected[i]![j]}`)));
}

describe("ema", () => {
  test("decay schedule: warm-up min(decay, (1 + k) / (10 + k)), or the constant", () => {
    assert.equal(emaDecayAt(0, DEFAULT_EMA), 0.1);
    assert.equal(emaDecayAt(1, DEFAULT_EMA), 2 / 11);
    assert.equal(emaDecayAt(10, DEFAULT_EMA), 0.55);
    assert.equal(emaDecayAt(90, DEFAULT_EMA), 0.91);
    assert.ok(emaDecayAt(8989, DEFAULT_EMA) < 0.999);
    assert.equal(emaDecayAt(8990, DEFAULT_EMA), 0.999);
    assert.equal(emaDecayAt(1_000_000, DEFAULT_EMA), 0.999);
    assert.equal(emaDecayAt(0, { decay: 0.9 }), 0.1); // warm-up is on by default
    assert.equal(emaDecayAt(0, { decay: 0.9, warmup: false }), 0.9);
    assert.equal(emaDecayAt(5, { decay: 0.3 }), 0.3); // 6/15 = 0.4 is above the decay
    assert.throws(() => emaDecayAt(-1, DEFAULT_EMA), /step/);
    assert.throws(() => validateEmaConfig({ decay: 1 }), /decay/);
    assert.deepEqual(JSON.parse(JSON.stringify(DEFAULT_EMA)), DEFAULT_EMA);
  });

  test("hand-computed updates", () => {
    td.tidy(() => {
      const params = tree([3, -2], [0.5]);
      // k = 0, decay 0.1: 0.1 * ema + 0.9 * p.
      const e1 = emaUpdate(tree([1, 2], [-0.5]), params, 0, DEFAULT_EMA);
      assertClose(values(e1), [[0.1 * 1 + 0.9 * 3, 0.1 * 2 + 0.9 * -2], [0.1 * -0.5 + 0.9 * 0.5]], 1e-15);
      assertClose(values(e1), [[2.8, -1.6], [0.4]], 1e-15);
      // k = 1, decay 2/11: (2 * 2.8 + 9 * 3) / 11 = 32.6 / 11, (2 * -1.6 + 9 * -2) / 11 = -21.2 / 11, (0.8 + 4.5) / 11.
      const e2 = emaUpdate(e1, params, 1, DEFAULT_EMA);
      assertClose(values(e2), [[32.6 / 11, -21.2 / 11], [5.3 / 11]], 1e-15);
      // No warm-up, decay 0.5: the midpoint.
      const mid = emaUpdate(tree([1, 2], [-0.5]), params, 123, { decay: 0.5, warmup: false });
      assertClose(values(mid), [[2, 0], [0]], 0);
      // Decay 0 copies the params.
      assertClose(values(emaUpdate(tree([1, 2], [-0.5]), params, 7, { decay: 0, warmup: false })), values(params), 0);
    });
  });

  test("converges to constant params; float32 stays float32", () => {
    let ema = td.keep(tree([0, 0], [0], "float32"));
    const params = td.keep(tree([1, -1], [4], "float32"));
    const baseline = td.memory().tensors;
    for (let k = 0; k < 1000; k++) {
      const next = td.tidy(() => td.keep(emaUpdate(ema, params, k, { decay: 0.99 })));
      td.dispose(ema);
      ema = next;
      assert.equal(td.memory().tensors, baseline); // no tensor leaks
    }
    assert.equal(ema.a.dtype, "float32");
    // After the warm-up the remaining gap shrinks by 0.99 per update: well below 1e-3 after 1000.
    assertClose(values(ema), values(params), 1e-3);
    td.dispose([ema, params]);
  });

  test("pure: inputs untouched and not aliased; initEma copies", () => {
    td.tidy(() => {
      const params = tree([3, -2], [0.5]);
      const start = initEma(params);
      assert.notEqual(start.a, params.a);
      assert.deepEqual(values(start), values(params));
      const old = tree([1, 2], [-0.5]);
      const next = emaUpdate(old, params, 0, DEFAULT_EMA);
      assert.deepEqual(values(old), [[1, 2], [-0.5]]);
      assert.deepEqual(values(params), [[3, -2], [0.5]]);
      assert.ok(!old.a.isDisposed && next.a !== old.a && next.sub.b !== params.sub.b);
      assert.equal(next.a.node, null);
    });
  });

  test("mismatched trees are rejected", () => {
    td.tidy(() => {
      assert.throws(() => emaUpdate(tree([1, 2], [3]), { a: td.tensor([1, 2], [2], "float64") }, 0, DEFAULT_EMA), /1 tensors/);
      assert.throws(() => emaUpdate(tree([1, 2], [3]), tree([1], [3]), 0, DEFAULT_EMA), /'a'/);
      assert.throws(() => emaUpdate(tree([1, 2], [3]), tree([1, 2], [3], "float32"), 0, DEFAULT_EMA), /float32/);
      assert.throws(() => emaUpdate(tree([1, 2], [3]), { a: td.tensor([1, 2], [2], "float64"), sub: { c: td.tensor([3], [1], "float64") } }, 0, DEFAULT_EMA), /no tensor 'sub.b'/);
    });
  });
});
