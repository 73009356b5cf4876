// matmul (all four transpose combinations; plain, batched, broadcast batch on either side,
// the folded [..., k] @ [k, n] path) and linear: forward against a naive triple loop,
// first- and second-order gradchecks.
import { describe, test } from "node:test";
import * as td from "../../src/engine/index.ts";
import { assertTensor, gradcheck, randn } from "./gradcheck.ts";
import { refMatmul } from "./reference.ts";

// Forward tolerance rtol 1e-13, atol 1e-14: float64 dot products of <= 4 terms; the engine
// accumulates in another order than the reference (a few ulps).
const RTOL = 1e-13, ATOL = 1e-14;
const M = 2, K = 3, N = 4;

interface Layout {
  label: string;
  aBatch: number[];
  bBatch: number[];
}
const LAYOUTS: Layout[] = [
  { label: "plain", aBatch: [], bBatch: [] },
  { label: "batched", aBatch: [2], bBatch: [2] },
  { label: "batched rank 4", aBatch: [2, 2], bBatch: [2, 2] },
  { label: "A batched, B shared", aBatch: [3], bBatch: [] },
  { label: "A shared, B batched", aBatch: [], bBatch: [3] },
  { label: "A rank 4, B shared", aBatch: [2, 2], bBatch: [] },
];

function operandShape(batch: number[], rows: number, cols: number, trans: boolean): number[] {
  return [...batch, ...(trans ? [cols, rows] : [rows, cols])];
}

describe("matmul", () => {
  for (const layout of LAYOUTS) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const label = `${layout.label}, transA=${transA}, transB=${transB}`;
        const aShape = operandShape(layout.aBatch, M, K, transA);
        const bShape = operandShape(layout.bBatch, K, N, transB);
        const opts = { transA, transB };
        test(`${label}: forward`, () => {
          td.tidy(() => {
            const a = randn(110, aShape);
            const b = randn(111, bShape);
            const batchShape = layout.aBatch.length ? layout.aBatch : layout.bBatch;
            const batch = batchShape.reduce((p, d) => p * d, 1);
            const expected: number[] = [];
            for (let p = 0; p < batch; p++) {
              expected.push(...refMatmul(a.data, b.data, M, K, N, transA, transB, layout.aBatch.length ? p * M * K : 0, layout.bBatch.length ? p * K * N : 0));
            }
            assertTensor(td.matmul(a, b, opts), [...batchShape, M, N], expected, RTOL, ATOL, label);
          });
        });
        test(`${label}: gradcheck first and second order`, () => {
          // matmul is bilinear, so second order is non-trivial only across the two operands:
          // the check differentiates w.r.t. A and B together (cross terms d2/dA dB).
          gradcheck((a, b) => td.matmul(a, b, opts), [randn(112, aShape), randn(113, bShape)], { name: `matmul ${label}` });
          // And through a nonlinearity, so d2/dA2 is non-zero as well.
          gradcheck((a, b) => td.tanh(td.matmul(td.tanh(a), b, opts)), [randn(114, aShape, 0.5), randn(115, bShape, 0.5)], { name: `tanh(matmul) ${label}` });
        });
      }
    }
  }

  test("matrix-vector shapes: [m,k] @ [k,1] and [1,k] @ [k,n]", () => {
    gradcheck((a, b) => td.matmul(a, b), [randn(116, [3, 4]), randn(117, [4, 1])], { name: "matvec" });
    gradcheck((a, b) => td.matmul(a, b, { transA: true }), [randn(118, [4, 1]), randn(119, [4, 2])], { name: "vecmat^T" });
  });
});

describe("linear", () => {
  test("y = x @ kernel + bias over the last axis, with and without bias", () => {
    td.tidy(() => {
      const x = randn(120, [2, 3, K]);
      const w = randn(121, [K, N]);
      const b = randn(122, [N]);
      const mm = refMatmul(x.data, w.data, 6, K, N, false, false);
      assertTensor(td.linear(x, w, b), [2, 3, N], mm.map((v, i) => v + b.data[i % N]!), RTOL, ATOL, "linear");
      assertTensor(td.linear(x, w), [2, 3, N], mm, RTOL, ATOL, "linear without bias");
    });
  });
  test("gradcheck first and second order w.r.t. x, kernel and bias", () => {
    gradcheck((x, w, b) => td.tanh(td.linear(x, w, b)), [randn(123, [2, 2, K]), randn(124, [K, N], 0.5), randn(125, [N])], { name: "linear" });
    gradcheck((x, w) => td.square(td.linear(x, w)), [randn(126, [3, K]), randn(127, [K, N])], { name: "linear no bias" });
  });
});
