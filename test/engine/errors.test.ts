// Error messages: shape mismatches, dtype mismatches and use of disposed tensors throw an
// Error whose message names the op and the shapes involved.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";

const f64 = (shape: number[]): td.Tensor => td.zeros(shape, "float64");
const f32 = (shape: number[]): td.Tensor => td.zeros(shape, "float32");
const i32 = (shape: number[]): td.Tensor => td.zeros(shape, "int32");

/** assert.throws with an Error instance check and a message regex. */
function throwsError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, "an Error instance");
    assert.match(e.message, pattern);
    return true;
  });
}

describe("shape mismatches", () => {
  test("elementwise broadcasting", () => {
    td.tidy(() => {
      throwsError(() => td.add(f64([2, 3]), f64([4])), /add: shapes \[2,3\] and \[4\] cannot be broadcast together/);
      throwsError(() => td.mul(f64([2, 2, 2, 3]), f64([2, 1, 1, 2])), /mul: shapes \[2,2,2,3\] and \[2,1,1,2\] cannot be broadcast together/);
      throwsError(() => td.maximum(f64([3]), f64([2])), /maximum: shapes \[3\] and \[2\]/);
      throwsError(() => td.where(f64([2]), f64([3]), f64([3])), /where: shapes \[2\] and \[3\]/);
      throwsError(() => td.broadcastTo(f64([3]), [2, 4]), /broadcastTo: cannot broadcast \[3\] to \[2,4\]/);
      throwsError(() => td.broadcastTo(f64([2, 3]), [3]), /broadcastTo: cannot broadcast \[2,3\] to \[3\]/);
    });
  });

  test("matmul inner dimension and batch mismatch", () => {
    td.tidy(() => {
      throwsError(() => td.matmul(f64([2, 3]), f64([4, 5])), /matmul: shapes \[2,3\] and \[4,5\] do not fit/);
      throwsError(() => td.matmul(f64([2, 3]), f64([5, 4]), { transB: true }), /matmul: shapes \[2,3\] and \[5,4\]\^T do not fit/);
      throwsError(() => td.matmul(f64([3, 2]), f64([3, 4]), { transA: false }), /matmul: shapes \[3,2\] and \[3,4\] do not fit/);
      throwsError(() => td.matmul(f64([2, 2, 3]), f64([3, 3, 4])), /matmul: shapes \[2,2,3\] and \[3,3,4\] do not fit/);
      throwsError(() => td.matmul(f64([3]), f64([3, 2])), /matmul: operands need rank >= 2, got \[3\] and \[3,2\]/);
      throwsError(() => td.linear(f64([2, 3]), f64([4, 5])), /matmul: shapes \[2,3\] and \[4,5\] do not fit/);
      throwsError(() => td.linear(f64([2, 3]), f64([3, 5]), f64([4])), /add: shapes \[2,5\] and \[4\]/);
    });
  });

  test("conv2d channel mismatch, rank and size errors", () => {
    td.tidy(() => {
      throwsError(() => td.conv2d(f64([1, 4, 4, 3]), f64([3, 3, 2, 5]), 1), /conv2d: input \[1,4,4,3\] has 3 channels, kernel \[3,3,2,5\] expects 2/);
      throwsError(() => td.conv2d(f64([4, 4, 3]), f64([3, 3, 3, 5]), 1), /conv2d: input must have rank 4, got shape \[4,4,3\]/);
      throwsError(() => td.conv2d(f64([1, 4, 4, 3]), f64([3, 3, 3]), 1), /conv2d: kernel must have rank 4, got shape \[3,3,3\]/);
      throwsError(() => td.conv2d(f64([1, 2, 2, 1]), f64([5, 5, 1, 1]), 0), /conv2d: kernel 5x5 with padding 0 does not fit input \[1,2,2,1\]/);
      throwsError(() => td.conv2dKernelGrad(f64([1, 4, 4, 2]), f64([1, 3, 4, 2]), 3, 3, 1), /conv2dKernelGrad: output gradient \[1,3,4,2\] does not match input \[1,4,4,2\]/);
      throwsError(() => td.maxPool2x2(f64([4, 4, 3])), /maxPool2x2: input must have rank 4, got shape \[4,4,3\]/);
      throwsError(() => td.upsampleNearest(f64([4, 4]), 8, 8), /upsampleNearest: input must have rank 4, got shape \[4,4\]/);
    });
  });

  test("reshape, concat, slice, transpose, layerNorm, axes", () => {
    td.tidy(() => {
      throwsError(() => td.reshape(f64([2, 3]), [4]), /reshape: cannot reshape \[2,3\] \(6 elements\) to \[4\]/);
      throwsError(() => td.reshape(f64([2, 3]), [4, -1]), /reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,-1\]/);
      throwsError(() => td.concat([f64([2, 3]), f64([3, 3])], 1), /concat: shapes \[2,3\], \[3,3\] differ outside axis 1/);
      throwsError(() => td.concat([f64([2, 3]), f64([2, 3, 1])], 0), /concat: shapes \[2,3\], \[2,3,1\] differ outside axis 0/);
      throwsError(() => td.concat([], 0), /concat: no tensors given/);
      throwsError(() => td.slice(f64([2, 3]), [1, 2], [1, 2]), /slice: begin \[1,2\] size \[1,2\] out of bounds for shape \[2,3\]/);
      throwsError(() => td.transpose(f64([2, 3]), [0, 0]), /transpose: invalid permutation \[0,0\] for shape \[2,3\]/);
      throwsError(() => td.layerNorm(f64([2, 3]), f64([4]), f64([3])), /layerNorm: scale \[4\] \/ bias \[3\] do not match 3 channels of \[2,3\]/);
      throwsError(() => td.sum(f64([2, 3]), 2), /sum: axis 2 out of range for rank 2/);
      throwsError(() => td.softmax(f64([2, 3]), -3), /max: axis -3 out of range for rank 2/);
      throwsError(() => td.cumsum(f64([2, 3]), 5), /cumsum: axis 5 out of range for rank 2/);
    });
  });
});

describe("dtype mismatches", () => {
  test("float32 with float64", () => {
    td.tidy(() => {
      throwsError(() => td.add(f32([2]), f64([2])), /add: dtype mismatch: float32 \[2\] vs float64 \[2\]/);
      throwsError(() => td.sub(f64([2, 2]), f32([2])), /sub: dtype mismatch: float64 \[2,2\] vs float32 \[2\]/);
      throwsError(() => td.matmul(f32([2, 3]), f64([3, 2])), /matmul: dtype mismatch: float32 \[2,3\] vs float64 \[3,2\]/);
      throwsError(() => td.conv2d(f32([1, 2, 2, 1]), f64([1, 1, 1, 1]), 0), /conv2d: dtype mismatch: float32 \[1,2,2,1\] vs float64 \[1,1,1,1\]/);
      throwsError(() => td.conv2dKernelGrad(f32([1, 2, 2, 1]), f64([1, 2, 2, 1]), 1, 1, 0), /conv2dKernelGrad: dtype mismatch: float32 \[1,2,2,1\] vs float64 \[1,2,2,1\]/);
      throwsError(() => td.concat([f64([2]), f32([2])], 0), /concat: dtype mismatch: float64 \[2\] vs float32 \[2\]/);
      throwsError(() => td.where(f64([2]), f64([2]), f32([2])), /where: dtype mismatch: float64 \[2\] vs float32 \[2\]/);
    });
  });

  test("int32 to float-only ops", () => {
    td.tidy(() => {
      for (const [name, op] of [["exp", td.exp], ["log", td.log], ["sqrt", td.sqrt], ["tanh", td.tanh], ["neg", td.neg]] as const) {
        throwsError(() => op(i32([2, 3])), new RegExp(`${name}: expected a float tensor, got int32 \\[2,3\\]`));
      }
      throwsError(() => td.matmul(i32([2, 2]), i32([2, 2])), /matmul: expected a float tensor, got int32 \[2,2\]/);
      throwsError(() => td.conv2d(i32([1, 2, 2, 1]), i32([1, 1, 1, 1]), 0), /conv2d: expected a float tensor, got int32 \[1,2,2,1\]/);
      throwsError(() => td.conv2dKernelGrad(i32([1, 2, 2, 1]), i32([1, 2, 2, 1]), 1, 1, 0), /conv2dKernelGrad: expected a float tensor, got int32 \[1,2,2,1\]/);
      throwsError(() => td.maxPool2x2(i32([1, 2, 2, 1])), /maxPool2x2: expected a float tensor, got int32 \[1,2,2,1\]/);
      throwsError(() => td.max(i32([3])), /max: expected a float tensor, got int32 \[3\]/);
      throwsError(() => td.softmax(i32([3])), /max: expected a float tensor, got int32 \[3\]/);
      throwsError(() => td.gelu(i32([3])), /expected a float tensor, got int32 \[3\]/);
      throwsError(() => td.add(i32([2]), f32([2])), /add: dtype mismatch: int32 \[2\] vs float32 \[2\]/);
    });
  });
});

describe("use after dispose", () => {
  test("reading a disposed tensor names it (origin op, shape, dtype), in any op", () => {
    const a = td.tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
    const b = td.ones([3, 2], "float64");
    const x = td.zeros([1, 2, 2, 3], "float64");
    td.dispose([a, x]);
    assert.ok(a.isDisposed);
    const pattern = /tensor #\d+ \(tensor, shape \[2,3\], float64\) was used after dispose/;
    td.tidy(() => {
      throwsError(() => a.data, pattern);
      throwsError(() => a.toArray(), pattern);
      throwsError(() => td.add(a, 1), pattern);
      throwsError(() => td.exp(a), pattern);
      throwsError(() => td.matmul(a, b), pattern);
      throwsError(() => td.sum(a), pattern);
      throwsError(() => td.reshape(a, [6]), pattern);
      throwsError(() => td.transpose(a), pattern);
      throwsError(() => td.concat([td.zeros([1, 3], "float64"), a], 0), pattern);
      throwsError(() => td.conv2d(x, td.ones([1, 1, 3, 1], "float64"), 0), /tensor #\d+ \(full, shape \[1,2,2,3\], float64\) was used after dispose/);
    });
    // Disposing twice is harmless.
    a.dispose();
    b.dispose();
  });

  test("a tensor disposed by tidy cannot be used afterwards", () => {
    let inner: td.Tensor | null = null;
    const kept = td.tidy(() => {
      inner = td.exp(td.tensor([0, 1], [2], "float64"));
      return td.mul(inner, 2);
    });
    assert.ok(inner!.isDisposed);
    throwsError(() => td.add(inner!, kept), /tensor #\d+ \(exp, shape \[2\], float64\) was used after dispose/);
    kept.dispose();
  });
});
