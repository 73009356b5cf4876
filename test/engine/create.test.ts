// Tensor creation (tensor, scalar, full, zeros, ones, zerosLike, onesLike, arange, linspace),
// the Tensor object itself, and the backend switch.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";

describe("creation ops", () => {
  test("tensor: dtype inferred from the array type, explicit dtype wins, values copied", () => {
    td.tidy(() => {
      const src = new Float64Array([1.5, 2.5]);
      const a = td.tensor(src);
      assert.equal(a.dtype, "float64");
      assert.deepEqual([...a.shape], [2]);
      src[0] = 99;
      assert.equal(a.data[0], 1.5, "a copy, not a view");
      assert.equal(td.tensor(new Int32Array([1, 2])).dtype, "int32");
      assert.equal(td.tensor([1, 2]).dtype, "float32");
      const b = td.tensor([0.1, 7.9, -7.9], [3], "int32");
      assert.deepEqual(b.toArray(), [0, 7, -7], "int32 storage truncates");
      assert.deepEqual(td.tensor([0.1], [1], "float32").toArray(), [Math.fround(0.1)]);
      const c = td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
      assert.deepEqual([...c.shape], [2, 3]);
      assert.equal(c.rank, 2);
      assert.equal(c.size, 6);
    });
  });

  test("scalar / full / zeros / ones / zerosLike / onesLike", () => {
    td.tidy(() => {
      const s = td.scalar(2.5, "float64");
      assert.deepEqual([...s.shape], []);
      assert.equal(s.rank, 0);
      assert.equal(s.item(), 2.5);
      assert.equal(td.scalar(1).dtype, "float32");
      const f = td.full([2, 2], 7, "int32");
      assert.deepEqual(f.toArray(), [7, 7, 7, 7]);
      assert.equal(f.dtype, "int32");
      assert.deepEqual(td.zeros([3], "float64").toArray(), [0, 0, 0]);
      assert.deepEqual(td.ones([2, 1]).toArray(), [1, 1]);
      assert.equal(td.ones([2]).dtype, "float32");
      const like = td.tensor([1, 2, 3, 4, 5, 6], [3, 2], "float64");
      const z = td.zerosLike(like);
      const o = td.onesLike(like);
      assert.deepEqual([...z.shape], [3, 2]);
      assert.equal(z.dtype, "float64");
      assert.deepEqual(z.toArray(), [0, 0, 0, 0, 0, 0]);
      assert.deepEqual(o.toArray(), [1, 1, 1, 1, 1, 1]);
      assert.deepEqual(td.zeros([0, 3]).toArray(), []);
    });
  });

  test("arange and linspace (numpy semantics)", () => {
    td.tidy(() => {
      assert.deepEqual(td.arange(0, 5).toArray(), [0, 1, 2, 3, 4]);
      assert.deepEqual(td.arange(-2, 1, "int32").toArray(), [-2, -1, 0]);
      assert.deepEqual(td.arange(0, 2.5, "float64").toArray(), [0, 1, 2]);
      assert.deepEqual(td.arange(3, 3).toArray(), []);
      assert.deepEqual(td.arange(5, 3).toArray(), []);
      assert.deepEqual(td.linspace(0, 1, 5, "float64").toArray(), [0, 0.25, 0.5, 0.75, 1]);
      assert.deepEqual(td.linspace(2, 2, 1, "float64").toArray(), [2]);
      // The last point is exactly `stop` (it is written directly, not as start + (n-1)*step).
      const l = td.linspace(0.1, 1, 10, "float64").toArray();
      assert.equal(l[9], 1);
      assert.equal(l.length, 10);
      // Interior points within 1 ulp-ish (1e-15) of the exact values.
      l.forEach((v, i) => assert.ok(Math.abs(v - (0.1 + 0.1 * i)) < 1e-15, `linspace[${i}] = ${v}`));
      assert.deepEqual(td.linspace(0, 1, 0).toArray(), []);
    });
  });

  test("creation errors name the op and the shape", () => {
    assert.throws(() => td.tensor([1, 2, 3], [2, 2]), /tensor: 3 values do not fill shape \[2,2\]/);
    assert.throws(() => td.tensor([1], [-1]), /tensor: invalid shape \[-1\]/);
    assert.throws(() => td.full([2.5], 0), /full: invalid shape \[2\.5\]/);
    assert.throws(() => td.tensor([1, 2], [2]).item(), /item: tensor has shape \[2\], not one element/);
  });
});

describe("Tensor object", () => {
  test("shape is frozen; toTypedArray copies; data is shared; toString", () => {
    td.tidy(() => {
      const t = td.tensor([1, 2, 3, 4], [2, 2], "float64");
      assert.throws(() => (t.shape as number[]).push(1));
      const copy = t.toTypedArray();
      copy[0] = 42;
      assert.equal(t.data[0], 1);
      assert.ok(copy instanceof Float64Array);
      t.data[1] = 5;
      assert.deepEqual(t.toArray(), [1, 5, 3, 4]);
      assert.match(t.toString(), /^Tensor\(\[2,2\], float64, #\d+\)$/);
      assert.equal(t.origin, "tensor");
      assert.equal(td.add(t, t).origin, "add");
      const u = td.tensor([1], [1]);
      assert.ok(u.id > t.id, "ids increase");
      assert.equal(td.sizeOf([2, 3, 4]), 24);
      assert.equal(td.sizeOf([]), 1);
    });
  });

  test("setBackend routes kernels to an overriding backend (kernel boundary)", () => {
    const previous = td.getBackend();
    let calls = 0;
    class CountingBackend extends td.CpuBackend {
      override unary(op: Parameters<td.Backend["unary"]>[0], x: td.TypedArray, out: td.TypedArray): void {
        calls++;
        super.unary(op, x, out);
      }
    }
    td.setBackend(new CountingBackend());
    try {
      td.tidy(() => {
        const y = td.exp(td.tensor([0, 1], [2], "float64"));
        assert.deepEqual(y.toArray(), [1, Math.E]);
      });
      assert.equal(calls, 1);
      assert.equal(td.getBackend().name, "cpu");
    } finally {
      td.setBackend(previous);
    }
    assert.equal(td.getBackend(), previous);
  });
});
