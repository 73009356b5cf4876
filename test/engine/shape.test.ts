// Shape and data-movement ops: reshape, transpose, slice, padInto, concat, gatherFlat,
// scatterAddFlat, take, cast. Data movement is exact, so forward checks use tolerance 0.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { assertTensor, gradcheck, randn } from "./gradcheck.ts";
import { ravel, sizeOfShape, unravel } from "./reference.ts";

describe("reshape / transpose", () => {
  test("reshape: values in row-major order, -1 inferred, a view of the same storage", () => {
    td.tidy(() => {
      const x = randn(80, [2, 3, 4]);
      const y = td.reshape(x, [4, -1]);
      assertTensor(y, [4, 6], x.data, 0, 0, "reshape");
      assert.equal(y.data, x.data, "no copy");
      assertTensor(td.reshape(x, [24]), [24], x.data, 0, 0, "flatten");
      assertTensor(td.reshape(td.scalar(3, "float64"), [1, 1]), [1, 1], [3], 0, 0, "scalar to [1,1]");
    });
  });
  test("reshape: the shared storage is counted once and lives until the last view is disposed", () => {
    const before = td.memory();
    const x = td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
    const y = td.reshape(x, [3, 2]);
    const z = td.reshape(y, [6]);
    assert.equal(td.memory().bytes - before.bytes, 6 * 8, "one storage for three tensors");
    assert.equal(td.memory().tensors - before.tensors, 3);
    x.dispose();
    y.dispose();
    assert.deepEqual(z.toArray(), [1, 2, 3, 4, 5, 6], "alive through the last view");
    assert.equal(td.memory().bytes - before.bytes, 6 * 8);
    z.dispose();
    assert.deepEqual(td.memory().bytes, before.bytes, "released with the last view");
    assert.throws(() => y.data, /used after dispose/);
  });

  test("reshape: gradcheck first and second order", () => {
    gradcheck((x) => td.mul(td.reshape(x, [3, 4]), td.reshape(td.sin(x), [3, 1, -1])), [randn(81, [2, 6])], { name: "reshape" });
  });

  const perms: (number[] | undefined)[] = [undefined, [0, 2, 1], [1, 0, 2], [2, 0, 1], [1, 2, 0], [0, 1, 2]];
  for (const perm of perms) {
    const label = perm ? `[${perm}]` : "default (reversed)";
    test(`transpose ${label}: forward and gradcheck`, () => {
      const shape = [2, 3, 4];
      td.tidy(() => {
        const x = randn(82, shape);
        const p = perm ?? [2, 1, 0];
        const outShape = p.map((i) => shape[i]!);
        const expected = Array.from({ length: 24 }, (_, o) => {
          const oi = unravel(o, outShape);
          const xi = new Array<number>(3);
          p.forEach((src, k) => (xi[src] = oi[k]!));
          return x.data[ravel(xi, shape)]!;
        });
        assertTensor(td.transpose(x, perm), outShape, expected, 0, 0, `transpose ${label}`);
      });
      gradcheck((x) => td.mul(td.transpose(x, perm), td.transpose(td.exp(x), perm)), [randn(83, shape)], { name: `transpose ${label}` });
    });
  }
  test("transpose of a matrix and of an NHWC map", () => {
    td.tidy(() => {
      assertTensor(td.transpose(td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64")), [3, 2], [1, 4, 2, 5, 3, 6], 0, 0, "matrix");
      gradcheck((x) => td.square(td.transpose(x, [0, 3, 1, 2])), [randn(84, [1, 2, 2, 3])], { name: "transpose NHWC->NCHW" });
    });
  });
});

describe("slice / padInto / concat", () => {
  test("slice: forward with size -1 / omitted size; gradcheck", () => {
    td.tidy(() => {
      const x = td.tensor(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], "float64");
      const expected: number[] = [];
      for (let a = 1; a < 2; a++) for (let b = 0; b < 2; b++) for (let c = 1; c < 4; c++) expected.push(a * 12 + b * 4 + c);
      assertTensor(td.slice(x, [1, 0, 1], [1, 2, -1]), [1, 2, 3], expected, 0, 0, "slice");
      assertTensor(td.slice(x, [0, 2]), [2, 1, 4], [8, 9, 10, 11, 20, 21, 22, 23], 0, 0, "slice to end");
      assertTensor(td.slice(x, [0, 0, 0], [2, 3, 0]), [2, 3, 0], [], 0, 0, "empty slice");
    });
    gradcheck((x) => td.mul(td.slice(x, [0, 1, 1], [2, 2, 2]), td.slice(td.tanh(x), [0, 0, 2], [2, 2, 2])), [randn(85, [2, 3, 4])], { name: "slice" });
  });

  test("slice and padInto of a rank-0 tensor", () => {
    td.tidy(() => {
      const s = td.scalar(7, "float64");
      assert.equal(td.slice(s, []).item(), 7);
      assert.equal(td.padInto(s, [], []).item(), 7);
    });
  });

  test("padInto: forward places the block inside zeros; gradcheck", () => {
    td.tidy(() => {
      const x = td.tensor([1, 2, 3, 4], [2, 2], "float64");
      assertTensor(td.padInto(x, [3, 4], [1, 1]), [3, 4], [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0], 0, 0, "padInto");
    });
    gradcheck((x) => td.square(td.padInto(x, [3, 4, 2], [1, 0, 0])), [randn(86, [2, 3, 2])], { name: "padInto" });
  });

  for (const axis of [0, 1, 2, -1]) {
    test(`concat axis ${axis}: forward (3 inputs) and gradcheck`, () => {
      const a = axis < 0 ? axis + 3 : axis;
      const shapes = [[2, 2, 3], [2, 2, 3], [2, 2, 3]].map((s, i) => s.map((d, k) => (k === a ? i + 1 : d)));
      td.tidy(() => {
        const xs = shapes.map((s, i) => randn(87 + i, s));
        const outShape = [...shapes[0]!];
        outShape[a] = 6;
        const expected = Array.from({ length: sizeOfShape(outShape) }, (_, o) => {
          const idx = unravel(o, outShape);
          let k = idx[a]!, which = 0;
          while (k >= shapes[which]![a]!) k -= shapes[which++]![a]!;
          idx[a] = k;
          return xs[which]!.data[ravel(idx, shapes[which]!)]!;
        });
        assertTensor(td.concat(xs, axis), outShape, expected, 0, 0, `concat ${axis}`);
      });
      gradcheck((x, y, z) => td.square(td.concat([td.exp(x), y, td.mul(z, y.shape[a] === z.shape[a] ? y : z)], axis)), shapes.map((s, i) => randn(90 + i, s)), { name: `concat ${axis}` });
    });
  }

  test("concat of one tensor and of a tensor with itself", () => {
    gradcheck((x) => td.mul(td.concat([x, x], 1), td.concat([x, td.neg(x)], 1)), [randn(93, [2, 2])], { name: "concat [x, x]" });
    td.tidy(() => {
      const x = td.tensor([1, 2], [2], "float64");
      assertTensor(td.concat([x], 0), [2], [1, 2], 0, 0, "concat single");
    });
  });
});

describe("gatherFlat / scatterAddFlat / take", () => {
  test("gatherFlat: out[i] = x.flat[index[i]] shaped like index, repeated indices; gradcheck", () => {
    const index = td.keep(td.tensor([5, 0, 3, 3, 1, 5], [2, 3], "int32"));
    td.tidy(() => {
      const x = randn(100, [2, 3]);
      assertTensor(td.gatherFlat(x, index), [2, 3], Array.from(index.data, (i) => x.data[i]!), 0, 0, "gatherFlat");
    });
    gradcheck((x) => td.mul(td.gatherFlat(x, index), td.gatherFlat(td.sin(x), index)), [randn(101, [2, 3])], { name: "gatherFlat" });
    index.dispose();
  });

  test("scatterAddFlat: accumulates repeated indices; gradcheck", () => {
    const index = td.keep(td.tensor([4, 0, 4, 2], [4], "int32"));
    td.tidy(() => {
      const g = td.tensor([1, 2, 3, 4], [2, 2], "float64");
      assertTensor(td.scatterAddFlat(g, index, [2, 3]), [2, 3], [2, 0, 4, 0, 4, 0], 0, 0, "scatterAddFlat");
    });
    gradcheck((g) => td.square(td.scatterAddFlat(g, index, [2, 3])), [randn(102, [2, 2])], { name: "scatterAddFlat" });
    index.dispose();
  });

  test("take along axes 0, 1, -1 with 1-D and 2-D indices; gradcheck", () => {
    const i1 = td.keep(td.tensor([2, 0, 2], [3], "int32"));
    const i2 = td.keep(td.tensor([1, 0, 3, 1], [2, 2], "int32"));
    td.tidy(() => {
      const x = td.tensor(Array.from({ length: 24 }, (_, i) => i), [3, 2, 4], "float64");
      const t0 = td.take(x, i1, 0);
      assertTensor(t0, [3, 2, 4], [...Array.from({ length: 8 }, (_, i) => 16 + i), ...Array.from({ length: 8 }, (_, i) => i), ...Array.from({ length: 8 }, (_, i) => 16 + i)], 0, 0, "take axis 0");
      const t1 = td.take(x, td.tensor([1], [1], "int32"), 1);
      assertTensor(t1, [3, 1, 4], [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23], 0, 0, "take axis 1");
      const t2 = td.take(x, i2, -1);
      const expected: number[] = [];
      for (let a = 0; a < 3; a++) for (let b = 0; b < 2; b++) for (const k of [1, 0, 3, 1]) expected.push(a * 8 + b * 4 + k);
      assertTensor(t2, [3, 2, 2, 2], expected, 0, 0, "take axis -1, 2-D indices");
      // Embedding-style lookup of rows.
      const table = td.tensor([10, 11, 20, 21, 30, 31], [3, 2], "float64");
      assertTensor(td.take(table, td.tensor([2, 0], [2], "int32")), [2, 2], [30, 31, 10, 11], 0, 0, "take rows");
    });
    gradcheck((x) => td.square(td.take(x, i1, 0)), [randn(103, [3, 2, 4])], { name: "take axis 0" });
    gradcheck((x) => td.mul(td.take(x, i2, 2), td.take(td.exp(x), i2, 2)), [randn(104, [3, 2, 4])], { name: "take axis 2" });
    td.dispose([i1, i2]);
  });

  test("index errors: wrong dtype and out of range", () => {
    td.tidy(() => {
      const x = randn(105, [2, 3]);
      assert.throws(() => td.gatherFlat(x, td.tensor([6], [1], "int32")), /gatherFlat: index 6 out of range \[0, 6\)/);
      assert.throws(() => td.gatherFlat(x, td.tensor([-1], [1], "int32")), /gatherFlat: index -1 out of range/);
      assert.throws(() => td.gatherFlat(x, td.tensor([0], [1], "float64")), /gatherFlat: index must be int32, got float64 \[1\]/);
      assert.throws(() => td.take(x, td.tensor([3], [1], "int32"), 1), /take: index 3 out of range \[0, 3\)/);
      assert.throws(() => td.scatterAddFlat(x, td.tensor([0, 1], [2], "int32"), [4]), /scatterAddFlat: 6 values for 2 indices/);
    });
  });
});

describe("cast", () => {
  test("float -> int truncates toward zero; int -> float exact; same dtype is identity", () => {
    td.tidy(() => {
      const x = td.tensor([-2.7, -0.5, 0.5, 2.7, 3], [5], "float64");
      assert.deepEqual(td.cast(x, "int32").toArray(), [-2, 0, 0, 2, 3]);
      assert.deepEqual(td.cast(td.tensor([-3, 4], [2], "int32"), "float64").toArray(), [-3, 4]);
      assert.equal(td.cast(x, "float64"), x);
      assert.deepEqual(td.cast(td.tensor([0.1], [1], "float64"), "float32").toArray(), [Math.fround(0.1)]);
    });
  });
  test("float64 -> float32 -> float64 passes the gradient", () => {
    td.tidy(() => {
      const x = td.tensor([1.5, -2], [2], "float64");
      const g = td.gradOfInput((t) => td.sum(td.mul(td.cast(td.cast(t, "float32"), "float64"), 3)), x);
      assert.equal(g.dtype, "float64");
      assert.deepEqual(g.toArray(), [3, 3]);
      // No gradient flows through an integer cast.
      const gi = td.gradOfInput((t) => td.sum(td.cast(td.cast(t, "int32"), "float64")), x);
      assert.deepEqual(gi.toArray(), [0, 0]);
    });
  });
});
