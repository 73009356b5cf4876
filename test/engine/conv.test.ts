// conv2d (cross-correlation, NHWC input, HWIO kernel), conv2dKernelGrad and flipKernel:
// forward against a naive 7-loop reference, first- and second-order gradchecks w.r.t. input and kernel.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { assertTensor, gradcheck, randn } from "./gradcheck.ts";
import { refConv2d, refConv2dKernelGrad } from "./reference.ts";

// Forward tolerance rtol 1e-13, atol 1e-13: float64 sums of <= 3*3*3 = 27 O(1) products, accumulated
// in a different order by im2col+matmul than by the naive loops (error ~ 27 ulps of the sum).
const RTOL = 1e-13, ATOL = 1e-13;

interface ConvCase {
  label: string;
  x: number[];
  k: number[];
  pad: number | undefined;
}
const CASES: ConvCase[] = [
  { label: "3x3 pad 1", x: [2, 4, 5, 2], k: [3, 3, 2, 3], pad: 1 },
  { label: "3x3 default pad (same)", x: [1, 3, 3, 3], k: [3, 3, 3, 2], pad: undefined },
  { label: "1x1 pad 0", x: [2, 3, 4, 3], k: [1, 1, 3, 2], pad: 0 },
  { label: "3x3 pad 1 on a 1x1 input", x: [2, 1, 1, 3], k: [3, 3, 3, 2], pad: 1 },
  { label: "1x1 pad 0 on a 1x1 input", x: [2, 1, 1, 3], k: [1, 1, 3, 2], pad: 0 },
  { label: "3x3 pad 0 (valid)", x: [1, 4, 4, 2], k: [3, 3, 2, 2], pad: 0 },
  { label: "5x5 pad 2", x: [1, 3, 4, 1], k: [5, 5, 1, 2], pad: 2 },
];

describe("conv2d", () => {
  for (const c of CASES) {
    test(`${c.label}: forward matches the naive 7-loop cross-correlation`, () => {
      td.tidy(() => {
        const x = randn(130, c.x);
        const k = randn(131, c.k);
        const ref = refConv2d(x.data, c.x, k.data, c.k, c.pad ?? (c.k[0]! - 1) / 2);
        assertTensor(td.conv2d(x, k, c.pad), ref.shape, ref.data, RTOL, ATOL, c.label);
        // float32 agrees with the float64 reference to float32 round-off
        // (rtol 1e-5, atol 1e-5: ~27 products each rounded at 6e-8 relative, sums of O(5)).
        const y32 = td.conv2d(td.cast(x, "float32"), td.cast(k, "float32"), c.pad);
        assert.equal(y32.dtype, "float32");
        assertTensor(y32, ref.shape, ref.data, 1e-5, 1e-5, `${c.label} float32`);
      });
    });
    test(`${c.label}: gradcheck w.r.t. input and kernel, first and second order`, () => {
      gradcheck((x, k) => td.conv2d(x, k, c.pad), [randn(132, c.x), randn(133, c.k)], { name: `conv2d ${c.label}` });
      // Through tanh, so the second derivative w.r.t. each operand alone is non-zero.
      gradcheck((x, k) => td.tanh(td.conv2d(td.tanh(x), k, c.pad)), [randn(134, c.x), randn(135, c.k, 0.5)], { name: `tanh(conv2d) ${c.label}` });
    });
  }

  test("a known small case: 3x3 box filter with zero padding", () => {
    td.tidy(() => {
      const x = td.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1], "float64");
      const k = td.ones([3, 3, 1, 1], "float64");
      assertTensor(td.conv2d(x, k, 1), [1, 3, 3, 1], [12, 21, 16, 27, 45, 33, 24, 39, 28], 0, 0, "box filter");
      // An off-centre tap shows cross-correlation (not convolution): K[0,0]=1 reads x[i-1, j-1].
      const shift = td.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 1, 1], "float64");
      assertTensor(td.conv2d(x, shift, 1), [1, 3, 3, 1], [0, 0, 0, 0, 1, 2, 0, 4, 5], 0, 0, "shift");
    });
  });
});

describe("conv2dKernelGrad / flipKernel", () => {
  for (const c of CASES.filter((k) => k.pad !== undefined)) {
    test(`conv2dKernelGrad ${c.label}: forward and gradcheck w.r.t. input and output gradient`, () => {
      const [kh, kw] = c.k as [number, number];
      const pad = c.pad!;
      const gShape = [c.x[0]!, c.x[1]! + 2 * pad - kh + 1, c.x[2]! + 2 * pad - kw + 1, c.k[3]!];
      td.tidy(() => {
        const x = randn(140, c.x);
        const g = randn(141, gShape);
        const ref = refConv2dKernelGrad(x.data, c.x, g.data, gShape, kh, kw, pad);
        assertTensor(td.conv2dKernelGrad(x, g, kh, kw, pad), c.k, ref, RTOL, ATOL, c.label);
      });
      gradcheck((x, g) => td.conv2dKernelGrad(x, g, kh, kw, pad), [randn(142, c.x), randn(143, gShape)], { name: `conv2dKernelGrad ${c.label}` });
      gradcheck((x, g) => td.square(td.conv2dKernelGrad(td.sin(x), g, kh, kw, pad)), [randn(144, c.x), randn(145, gShape)], { name: `square(conv2dKernelGrad) ${c.label}` });
    });
  }

  test("conv2dKernelGrad is the kernel gradient of conv2d", () => {
    td.tidy(() => {
      const x = randn(146, [2, 3, 3, 2]);
      const k = randn(147, [3, 3, 2, 2]);
      const g = randn(148, [2, 3, 3, 2]);
      k.requiresGrad = true;
      const [gk] = td.gradients(td.conv2d(x, k, 1), [k], { seed: g });
      k.requiresGrad = false;
      // Same kernel computation on both sides; tolerance 0 would do, allow 1e-15 for safety.
      assertTensor(td.conv2dKernelGrad(x, g, 3, 3, 1), [3, 3, 2, 2], gk!.data, 0, 1e-15, "kernel gradient");
    });
  });

  test("flipKernel: [kh,kw,c,o] -> [kh,kw,o,c] rotated 180 degrees; its own adjoint; gradcheck", () => {
    td.tidy(() => {
      const k = randn(150, [3, 2, 2, 3]);
      const f = td.flipKernel(k);
      const expected: number[] = [];
      for (let di = 0; di < 3; di++)
        for (let dj = 0; dj < 2; dj++)
          for (let o = 0; o < 3; o++)
            for (let c = 0; c < 2; c++) expected.push(k.data[(((2 - di) * 2 + (1 - dj)) * 2 + c) * 3 + o]!);
      assertTensor(f, [3, 2, 3, 2], expected, 0, 0, "flipKernel");
      assertTensor(td.flipKernel(f), [3, 2, 2, 3], k.data, 0, 0, "flip twice");
    });
    gradcheck((k) => td.mul(td.flipKernel(k), td.flipKernel(td.exp(k))), [randn(151, [3, 3, 2, 3])], { name: "flipKernel" });
  });
});

describe("conv2dInputGrad", () => {
  // The input gradient as one op: its value is conv2d(g, flipKernel(k), kh - 1 - pad) exactly (it runs that);
  // its gradients (conv2d and conv2dKernelGrad, no flip) pass first- and second-order gradchecks, and its
  // kernel gradient equals the flip of the flipped kernel's (float64 sums in another order: 1e-13).
  for (const c of CASES.filter((k) => k.pad !== undefined)) {
    test(`conv2dInputGrad ${c.label}: value, gradients without a flip, gradchecks`, () => {
      const [kh, kw] = c.k as [number, number];
      const pad = c.pad!;
      const gShape = [c.x[0]!, c.x[1]! + 2 * pad - kh + 1, c.x[2]! + 2 * pad - kw + 1, c.k[3]!];
      td.tidy(() => {
        const g = randn(160, gShape);
        const k = randn(161, c.k);
        const h = randn(162, c.x);
        const y = td.conv2dInputGrad(g, k, pad);
        assertTensor(y, c.x, td.conv2d(g, td.flipKernel(k), kh - 1 - pad).data, 0, 0, `${c.label}: value`);
        k.requiresGrad = true;
        const [viaOp] = td.gradients(td.conv2dInputGrad(g, k, pad), [k], { seed: h });
        const [viaFlip] = td.gradients(td.conv2d(g, td.flipKernel(k), kh - 1 - pad), [k], { seed: h });
        k.requiresGrad = false;
        assertTensor(viaOp!, c.k, viaFlip!.data, 1e-13, 1e-13, `${c.label}: kernel gradient`);
      });
      gradcheck((g, k) => td.conv2dInputGrad(g, k, pad), [randn(163, gShape), randn(164, c.k)], { name: `conv2dInputGrad ${c.label}` });
      gradcheck((g, k) => td.square(td.conv2dInputGrad(td.sin(g), k, pad)), [randn(165, gShape), randn(166, c.k)], { name: `square(conv2dInputGrad) ${c.label}` });
    });
  }
});
