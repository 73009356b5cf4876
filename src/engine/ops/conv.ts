// 2-D convolution, NHWC input and HWIO kernel, stride 1, zero padding (Flax's nnx.Conv layout).
import type { ConvArgs } from "../backend.ts";
import { emptyTensor, getBackend, noGrad, record, shapeString, tidy, Tensor, needsGrad } from "../tensor.ts";
import { checkFloat, checkRank, checkSameDtype } from "./checks.ts";
import { slice } from "./shape.ts";


function convArgs(op: string, xShape: readonly number[], kh: number, kw: number, o: number, pad: number): ConvArgs {
  const [b, h, w, c] = xShape as [number, number, number, number];
  const oh = h + 2 * pad - kh + 1;
  const ow = w + 2 * pad - kw + 1;
  if (oh <= 0 || ow <= 0) throw new Error(`${op}: kernel ${kh}x${kw} with padding ${pad} does not fit input ${shapeString(xShape)}`);
  return { b, h, w, c, kh, kw, o, pad, oh, ow };
}

/** y[b,i,j,o] = sum x_pad[b,i+di,j+dj,c] * kernel[di,dj,c,o]; pad defaults to "same" for odd kernels. */
export function conv2d(x: Tensor, kernel: Tensor, pad?: number): Tensor {
  checkRank("conv2d", x, 4, "input");
  checkRank("conv2d", kernel, 4, "kernel");
  checkSameDtype("conv2d", x, kernel);
  checkFloat("conv2d", x);
  const [kh, kw, c, o] = kernel.shape as [number, number, number, number];
  if (c !== x.shape[3]) {
    throw new Error(`conv2d: input ${shapeString(x.shape)} has ${x.shape[3]} channels, kernel ${shapeString(kernel.shape)} expects ${c}`);
  }
  const p = pad ?? (kh - 1) / 2;
  if (x.shape[1] === 1 && x.shape[2] === 1 && kh === 2 * p + 1 && kw === 2 * p + 1 && kh > 1) {
    // On a 1x1 map only the centre tap meets data: the other taps multiply padding.
    return conv2d(x, slice(kernel, [p, p, 0, 0], [1, 1, c, o]), 0);
  }
  const args = convArgs("conv2d", x.shape, kh, kw, o, p);
  const out = emptyTensor([args.b, args.oh, args.ow, o], x.dtype, "conv2d");
  getBackend().conv2d(x.storage, kernel.storage, out.storage, args);
  return record(out, "conv2d", [x, kernel], (g) => [
    needsGrad(x) ? conv2dInputGrad(g, kernel, p) : null,
    needsGrad(kernel) ? conv2dKernelGrad(x, g, kh, kw, p) : null,
  ]);
}

/** dL/dkernel of conv2d: bilinear in (x, g), so its own gradients are convolutions again. */
export function conv2dKernelGrad(x: Tensor, g: Tensor, kh: number, kw: number, pad: number): Tensor {
  checkRank("conv2dKernelGrad", x, 4, "input");
  checkRank("conv2dKernelGrad", g, 4, "output gradient");
  checkSameDtype("conv2dKernelGrad", x, g);
  checkFloat("conv2dKernelGrad", x);
  const args = convArgs("conv2dKernelGrad", x.shape, kh, kw, g.shape[3]!, pad);
  if (g.shape[0] !== args.b || g.shape[1] !== args.oh || g.shape[2] !== args.ow) {
    throw new Error(`conv2dKernelGrad: output gradient ${shapeString(g.shape)} does not match input ${shapeString(x.shape)}`);
  }
  const out = emptyTensor([kh, kw, args.c, args.o], x.dtype, "conv2dKernelGrad");
  getBackend().conv2dKernelGrad(x.storage, g.storage, out.storage, args);
  return record(out, "conv2dKernelGrad", [x, g], (h) => [
    needsGrad(x) ? conv2dInputGrad(g, h, pad) : null,
    needsGrad(g) ? conv2d(x, h, pad) : null,
  ]);
}

/**
 * dL/dx of conv2d(x, kernel, pad) for its output gradient g: conv2d(g, flipKernel(kernel), kh - 1 - pad), as
 * one op whose own gradients need no flip (a gradient penalty differentiates it): d/dg is conv2d(h, kernel,
 * pad), and d/dkernel, the flip of the flipped kernel's gradient, is conv2dKernelGrad(h, g, kh, kw, pad).
 */
export function conv2dInputGrad(g: Tensor, kernel: Tensor, pad: number): Tensor {
  checkRank("conv2dInputGrad", g, 4, "output gradient");
  checkRank("conv2dInputGrad", kernel, 4, "kernel");
  const [kh, kw] = kernel.shape as [number, number];
  // The flip is an intermediate the value needs and the gradients do not (a device reads it flipped in place).
  const out = noGrad(() => tidy(() => conv2d(g, flipKernel(kernel), kh - 1 - pad)));
  return record(out, "conv2dInputGrad", [g, kernel], (h) => [
    needsGrad(g) ? conv2d(h, kernel, pad) : null,
    needsGrad(kernel) ? conv2dKernelGrad(h, g, kh, kw, pad) : null,
  ]);
}

/** [kh,kw,c,o] -> [kh,kw,o,c], rotated 180 degrees: the kernel of the input gradient. Its own adjoint. */
export function flipKernel(kernel: Tensor): Tensor {
  checkRank("flipKernel", kernel, 4, "kernel");
  const [kh, kw, c, o] = kernel.shape as [number, number, number, number];
  const out = emptyTensor([kh, kw, o, c], kernel.dtype, "flipKernel");
  getBackend().flipKernel(kernel.storage, kh, kw, c, o, out.storage);
  return record(out, "flipKernel", [kernel], (g) => [flipKernel(g)]);
}
