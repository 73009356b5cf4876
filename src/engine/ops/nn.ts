// Neural-network building blocks: gelu and layerNorm as kernels whose gradients are kernels again (one
// stored tensor per derivative order in a recorded backward pass), with rules written in differentiable ops
// past that (so every order of derivative is exact); softmax composed from primitives; the pooling and
// upsampling primitives with gather/scatter adjoints.
import { emptyTensor, getBackend, noGrad, record, shapeString, Tensor, needsGrad } from "../tensor.ts";
import { checkFloat, checkRank, checkSameDtype } from "./checks.ts";
import { add, exp, greaterEqual, maximum, mul, rsqrt, sub, tanh, square, div, unaryOp } from "./elementwise.ts";
import { max, mean, sum, sumTo } from "./reduce.ts";
import { onesLike, zerosLike } from "./create.ts";
import { matmul } from "./linalg.ts";
import { scatterAddFlat } from "./shape.ts";
import { compositeVjp } from "../autodiff.ts";

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * Tanh approximation (Flax's default): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). One kernel
 * (backends/cpu/elementwise.ts has the formulas), whose gradient is g * geluD1(x), whose gradient is
 * g * geluD2(x): first and second derivatives cost one elementwise pass and one stored tensor each.
 */
export function gelu(x: Tensor): Tensor {
  return unaryOp("gelu", x, (g) => mul(g, geluD1(x)));
}

/** d gelu / dx (a kernel). */
export function geluD1(x: Tensor): Tensor {
  return unaryOp("geluD1", x, (g) => mul(g, geluD2(x)));
}

/** d^2 gelu / dx^2 (a kernel); its own derivative is composed from elementwise ops (third order only). */
export function geluD2(x: Tensor): Tensor {
  return unaryOp("geluD2", x, (g) => mul(g, geluD3(x)));
}

/**
 * d^3 gelu / dx^3 from differentiable ops. With u = c (x + a x^3), T = tanh(u), S = 1 - T^2 and
 * W = u2 - 2 T u1^2 (u1, u2, u3: the derivatives of u), gelu'' = S u1 + x S W / 2, whose derivative is
 * S (u2 - 2 T u1^2 + W / 2 - x T u1 W + x (u3 - 2 S u1^3 - 4 T u1 u2) / 2).
 */
function geluD3(x: Tensor): Tensor {
  const x2 = square(x);
  const t = tanh(mul(GELU_C, add(x, mul(GELU_A, mul(x, x2)))));
  const s = sub(1, square(t));
  const u1 = mul(GELU_C, add(1, mul(3 * GELU_A, x2)));
  const u2 = mul(6 * GELU_A * GELU_C, x);
  const u3 = 6 * GELU_A * GELU_C;
  const tu1 = mul(t, u1);
  const w = sub(u2, mul(2, mul(tu1, u1)));
  const last = sub(sub(u3, mul(2, mul(s, mul(u1, square(u1))))), mul(4, mul(tu1, u2)));
  return mul(s, add(sub(add(w, mul(0.5, w)), mul(x, mul(tu1, w))), mul(0.5, mul(x, last))));
}

/**
 * Over the last axis, as flax LayerNorm with use_fast_variance:
 * var = max(0, E[x^2] - E[x]^2), y = (x - mean) * rsqrt(var + eps) * scale + bias.
 * One kernel forward (statistics in float64). Gradients: dx = layerNormGradX(x, g, scale) (a kernel, see
 * there), dscale = sum(g xhat) with xhat = layerNorm(x, 1, 0), dbias = sum(g).
 */
export function layerNorm(x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-6): Tensor {
  const c = x.shape[x.rank - 1]!;
  if (scale.size !== c || bias.size !== c) {
    throw new Error(`layerNorm: scale ${shapeString(scale.shape)} / bias ${shapeString(bias.shape)} do not match ${c} channels of ${shapeString(x.shape)}`);
  }
  checkFloat("layerNorm", x);
  checkSameDtype("layerNorm", x, scale);
  checkSameDtype("layerNorm", x, bias);
  if (scale.rank > x.rank || bias.rank > x.rank) {
    // A parameter of higher rank broadcasts the output to it: the composite formula keeps that rare case.
    const axis = x.rank - 1;
    const mu = mean(x, axis, true);
    const variance = maximum(sub(mean(square(x), axis, true), square(mu)), 0);
    return add(mul(mul(sub(x, mu), rsqrt(add(variance, eps))), scale), bias);
  }
  const out = emptyTensor(x.shape, x.dtype, "layerNorm");
  getBackend().layerNorm(x.storage, x.size / Math.max(c, 1), c, scale.storage, bias.storage, eps, out.storage);
  return record(out, "layerNorm", [x, scale, bias], (g) => [
    needsGrad(x) ? layerNormGradX(x, g, scale, eps) : null,
    needsGrad(scale) ? sumTo(mul(g, layerNorm(x, onesLike(scale), zerosLike(bias), eps)), scale.shape) : null,
    needsGrad(bias) ? sumTo(g, bias.shape) : null,
  ]);
}

/** Per-row statistics of layerNorm from differentiable ops: xhat = (x - mean) rstd and the clamp mask [var >= 0]. */
function layerNormStats(x: Tensor, eps: number): { xhat: Tensor; rstd: Tensor; mask: Tensor } {
  const axis = x.rank - 1;
  const mu = mean(x, axis, true);
  const variance = sub(mean(square(x), axis, true), square(mu));
  const rstd = rsqrt(add(maximum(variance, 0), eps));
  return { xhat: mul(sub(x, mu), rstd), rstd, mask: greaterEqual(variance, 0) };
}

/**
 * The input gradient of layerNorm (a kernel): with gs = g scale, per row,
 *   P(x, g, scale) = rstd (gs - mean(gs) - m xhat mean(gs xhat)),  m = [var >= 0]
 * (the derivative of the composite formula: the max(0, .) clamp's gradient goes to var on ties, as maximum's).
 * P is linear in gs through a symmetric matrix, so its gradient for a cotangent h is P(x, h, 1) in gs; in x
 * it is layerNormGradXGradX (a kernel too).
 */
function layerNormGradX(x: Tensor, g: Tensor, scale: Tensor, eps: number): Tensor {
  const c = x.shape[x.rank - 1]!;
  const out = emptyTensor(x.shape, x.dtype, "layerNormGradX");
  getBackend().layerNormGradX(x.storage, g.storage, x.size / Math.max(c, 1), c, scale.storage, eps, out.storage);
  return record(out, "layerNormGradX", [x, g, scale], (h) => {
    let ga: Tensor | null = null;
    if (needsGrad(g) || needsGrad(scale)) ga = layerNormGradX(x, h, onesLike(scale), eps);
    return [
      needsGrad(x) ? layerNormGradXGradX(x, g, scale, h, eps) : null,
      needsGrad(g) ? mul(ga!, scale) : null,
      needsGrad(scale) ? sumTo(mul(ga!, g), scale.shape) : null,
    ];
  });
}

/**
 * dP/dx^T h, P = layerNormGradX(x, g, scale): one kernel (Backend.layerNormGradXGradX) where the composite
 * below is seven row means and a dozen elementwise ops; its own gradient is the composite's (third order).
 */
function layerNormGradXGradX(x: Tensor, g: Tensor, scale: Tensor, h: Tensor, eps: number): Tensor {
  const c = x.shape[x.rank - 1]!;
  const out = emptyTensor(x.shape, x.dtype, "layerNormGradXGradX");
  getBackend().layerNormGradXGradX(x.storage, g.storage, h.storage, x.size / Math.max(c, 1), c, scale.storage, eps, out.storage);
  return record(out, "layerNormGradXGradX", [x, g, scale, h], (k) =>
    compositeVjp((x, g, scale, h) => layerNormGradXGradXComposite(x!, g!, scale!, h!, eps), [x, g, scale, h], k));
}

/**
 * layerNormGradXGradX from differentiable ops: with a = g scale, c = mean(a xhat), d = mean(h xhat) and bars
 * for row means,
 *   dP/dx^T h = m rstd^2 ((3 c d - mean(h a) + h_bar a_bar) xhat - c (h - h_bar) - d (a - a_bar)).
 */
export function layerNormGradXGradXComposite(x: Tensor, g: Tensor, scale: Tensor, h: Tensor, eps: number): Tensor {
  const axis = x.rank - 1;
  const { xhat, rstd, mask } = layerNormStats(x, eps);
  const a = mul(g, scale);
  const hBar = mean(h, axis, true), aBar = mean(a, axis, true);
  const cm = mean(mul(a, xhat), axis, true), dm = mean(mul(h, xhat), axis, true);
  const k = mul(mask, square(rstd));
  const k1 = mul(k, add(sub(mul(3, mul(cm, dm)), mean(mul(h, a), axis, true)), mul(hBar, aBar)));
  return sub(sub(mul(k1, xhat), mul(mul(k, cm), sub(h, hBar))), mul(mul(k, dm), sub(a, aBar)));
}

/** Softmax over an axis, shifted by the (constant) max for stability. */
export function softmax(x: Tensor, axis = -1): Tensor {
  // The max taken unrecorded: a constant for every order of derivative, without stopGradient's copy.
  const shifted = sub(x, noGrad(() => max(x, axis, true)));
  const e = exp(shifted);
  return div(e, sum(e, axis, true));
}

/** NHWC 2x2 max pool, stride 2, 'SAME' padding (a 1x1 map stays 1x1). */
export function maxPool2x2(x: Tensor): Tensor {
  checkRank("maxPool2x2", x, 4);
  checkFloat("maxPool2x2", x);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const outShape = [b, Math.ceil(h / 2), Math.ceil(w / 2), c];
  const out = emptyTensor(outShape, x.dtype, "maxPool2x2");
  const argmax = emptyTensor(outShape, "int32", "maxPool2x2.argmax");
  getBackend().maxPool2x2(x.storage, x.shape, out.storage, argmax.storage);
  return record(out, "maxPool2x2", [x], (g) => [scatterAddFlat(g, argmax, x.shape, true, true)]);
}

/** Nearest-neighbour resize of NHWC maps: src = floor((i + 0.5) * in / out), as jax.image.resize. */
export function upsampleNearest(x: Tensor, height: number, width: number): Tensor {
  checkRank("upsampleNearest", x, 4);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  if (h === height && w === width) return x;
  const out = emptyTensor([b, height, width, c], x.dtype, "upsampleNearest");
  getBackend().upsampleNearest(x.storage, x.shape, height, width, out.storage);
  return record(out, "upsampleNearest", [x], (g) => [upsampleNearestGrad(g, x.shape)]);
}

/** The adjoint of upsampleNearest: sums each output block back onto its input pixel (linear, so its own adjoint is the upsample). */
function upsampleNearestGrad(g: Tensor, inputShape: readonly number[]): Tensor {
  const [, height, width] = g.shape as [number, number, number, number];
  const out = emptyTensor(inputShape, g.dtype, "upsampleNearestGrad");
  getBackend().upsampleNearestGrad(g.storage, inputShape, height, width, out.storage);
  return record(out, "upsampleNearestGrad", [g], (h) => [upsampleNearest(h, height, width)]);
}

/** y = x @ kernel + bias over the last axis (kernel [in, out], as Flax). */
export function linear(x: Tensor, kernel: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, kernel);
  return bias ? add(y, bias) : y;
}
