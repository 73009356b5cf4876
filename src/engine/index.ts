// tiny-diffusion's tensor engine: public API. It knows nothing about diffusion.
export type { Backend, DType, Shape, TypedArray } from "./backend.ts";
export { CpuBackend } from "./backends/cpu/index.ts";
export { Tensor, tidy, keep, dispose, memory, resetPeakMemory, noGrad, getBackend, setBackend, sizeOf } from "./tensor.ts";
export type { GradNode } from "./tensor.ts";
export { captureStep, canCapture } from "./capture.ts";
export type { CaptureOptions, CapturedStep, ReplayInput } from "./capture.ts";
export { gradients, valueAndGrad, grad, gradOfInput } from "./autodiff.ts";
export type { GradientOptions } from "./autodiff.ts";
export { flattenTree, unflattenTree, mapTree, treeSize } from "./tree.ts";
export type { TensorTreeOf } from "./tree.ts";
export * as random from "./random.ts";
export { tensor, scalar, full, zeros, ones, zerosLike, onesLike, arange, linspace } from "./ops/create.ts";
export type { TensorLike } from "./ops/create.ts";
export {
  neg, exp, log, sqrt, rsqrt, tanh, abs, sign, sin, cos, square, reciprocal, step,
  add, sub, mul, div, pow, maximum, minimum, less, lessEqual, greater, greaterEqual, equal,
  where, clip, stopGradient,
} from "./ops/elementwise.ts";
export { sum, mean, max, broadcastTo, sumTo, cumsum, cumprod } from "./ops/reduce.ts";
export { reshape, transpose, slice, padInto, concat, gatherFlat, scatterAddFlat, take, cast } from "./ops/shape.ts";
export { matmul } from "./ops/linalg.ts";
export type { MatmulOptions } from "./ops/linalg.ts";
export { conv2d, conv2dInputGrad, conv2dKernelGrad, flipKernel } from "./ops/conv.ts";
export { gelu, layerNorm, softmax, maxPool2x2, upsampleNearest, linear } from "./ops/nn.ts";
export { adamwUpdate, adamwUpdates, sumOfSquares } from "./ops/optim.ts";
export type { AdamWArgs } from "./ops/optim.ts";
