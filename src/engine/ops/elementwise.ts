// Elementwise ops with broadcasting. Each backward rule uses differentiable ops only
// (including the op's own output), so second derivatives are exact.
import type { BinaryOp, UnaryOp } from "../backend.ts";
import { emptyTensor, getBackend, record, Tensor, needsGrad } from "../tensor.ts";
import { broadcastShapes, checkFloat, checkSameDtype, padShape } from "./checks.ts";
import { asTensor, type TensorLike } from "./create.ts";
import { broadcastTo, sumTo } from "./reduce.ts";

/** One unary kernel; `backward` maps (cotangent, output) to the input's cotangent (null: no gradient). */
export function unaryOp(op: UnaryOp, x: Tensor, backward: ((g: Tensor, y: Tensor) => Tensor) | null): Tensor {
  checkFloat(op, x);
  const out = emptyTensor(x.shape, x.dtype, op);
  getBackend().unary(op, x.storage, out.storage);
  if (!backward) return out;
  return record(out, op, [x], (g) => [backward(g, out)]);
}

export const neg = (x: Tensor): Tensor => unaryOp("neg", x, (g) => neg(g));
export const exp = (x: Tensor): Tensor => unaryOp("exp", x, (g, y) => mul(g, y));
export const log = (x: Tensor): Tensor => unaryOp("log", x, (g) => div(g, x));
export const sqrt = (x: Tensor): Tensor => unaryOp("sqrt", x, (g, y) => div(mul(g, 0.5), y));
/** d/dx x^(-1/2) = -0.5 y^3. */
export const rsqrt = (x: Tensor): Tensor => unaryOp("rsqrt", x, (g, y) => mul(g, mul(-0.5, mul(y, square(y)))));
export const tanh = (x: Tensor): Tensor => unaryOp("tanh", x, (g, y) => mul(g, sub(1, square(y))));
export const abs = (x: Tensor): Tensor => unaryOp("abs", x, (g) => mul(g, sign(x)));
export const sign = (x: Tensor): Tensor => unaryOp("sign", x, null);
export const sin = (x: Tensor): Tensor => unaryOp("sin", x, (g) => mul(g, cos(x)));
export const cos = (x: Tensor): Tensor => unaryOp("cos", x, (g) => neg(mul(g, sin(x))));
export const square = (x: Tensor): Tensor => unaryOp("square", x, (g) => mul(g, mul(x, 2)));
export const reciprocal = (x: Tensor): Tensor => unaryOp("reciprocal", x, (g, y) => neg(mul(g, square(y))));
/** 1 where x > 0, else 0; no gradient. */
export const step = (x: Tensor): Tensor => unaryOp("step", x, null);

/** Runs a binary kernel with broadcasting; returns the output (not yet recorded). */
function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkSameDtype(op, a, b);
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const out = emptyTensor(outShape, a.dtype, op);
  getBackend().binary(op, a.storage, padShape(a.shape, outShape.length), b.storage, padShape(b.shape, outShape.length), out.storage, outShape);
  return out;
}

type BinaryRule = (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null];

function binaryOp(op: BinaryOp, aLike: TensorLike, bLike: TensorLike, rule: BinaryRule | null): Tensor {
  const a = aLike instanceof Tensor ? aLike : asTensor(aLike, bLike as Tensor);
  const b = asTensor(bLike, a);
  const out = binaryKernel(op, a, b);
  if (!rule) return out;
  return record(out, op, [a, b], (g) => {
    const [ga, gb] = rule(g, a, b, out);
    return [ga && needsGrad(a) ? sumTo(ga, a.shape) : null, gb && needsGrad(b) ? sumTo(gb, b.shape) : null];
  });
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binaryOp("add", a, b, (g, a, b) => [needsGrad(a) ? g : null, needsGrad(b) ? g : null]);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binaryOp("sub", a, b, (g, a, b) => [needsGrad(a) ? g : null, needsGrad(b) ? neg(g) : null]);
export const mul = (a: TensorLike, b: TensorLike): Tensor =>
  binaryOp("mul", a, b, (g, a, b) => [needsGrad(a) ? mul(g, b) : null, needsGrad(b) ? mul(g, a) : null]);
export const div = (a: TensorLike, b: TensorLike): Tensor =>
  binaryOp("div", a, b, (g, a, b, y) => [needsGrad(a) ? div(g, b) : null, needsGrad(b) ? neg(div(mul(g, y), b)) : null]);
/** a^b; the gradient in b uses log(a), so it is only formed when b needs one. */
export const pow = (a: TensorLike, b: TensorLike): Tensor =>
  binaryOp("pow", a, b, (g, a, b, y) => [
    needsGrad(a) ? mul(g, mul(b, pow(a, sub(b, 1)))) : null,
    needsGrad(b) ? mul(g, mul(y, log(a))) : null,
  ]);
/** Ties send the gradient to a. */
export const maximum = (a: TensorLike, b: TensorLike): Tensor =>
  binaryOp("maximum", a, b, (g, a, b) => {
    const mask = greaterEqual(a, b);
    return [needsGrad(a) ? mul(g, mask) : null, needsGrad(b) ? mul(g, sub(1, mask)) : null];
  });
export const minimum = (a: TensorLike, b: TensorLike): Tensor =>
  binaryOp("minimum", a, b, (g, a, b) => {
    const mask = lessEqual(a, b);
    return [needsGrad(a) ? mul(g, mask) : null, needsGrad(b) ? mul(g, sub(1, mask)) : null];
  });

// Comparisons give 0/1 in the inputs' dtype and have no gradient.
export const less = (a: TensorLike, b: TensorLike): Tensor => binaryOp("less", a, b, null);
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => binaryOp("lessEqual", a, b, null);
export const greater = (a: TensorLike, b: TensorLike): Tensor => binaryOp("greater", a, b, null);
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => binaryOp("greaterEqual", a, b, null);
export const equal = (a: TensorLike, b: TensorLike): Tensor => binaryOp("equal", a, b, null);

/** cond != 0 ? a : b, broadcasting all three. */
export function where(cond: Tensor, aLike: TensorLike, bLike: TensorLike): Tensor {
  const a = aLike instanceof Tensor ? aLike : asTensor(aLike, bLike instanceof Tensor ? bLike : cond);
  const b = asTensor(bLike, a);
  checkSameDtype("where", a, b);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, a.shape), b.shape);
  const [c2, a2, b2] = [cond, a, b].map((t) => (sameShape(t.shape, shape) ? t : broadcastTo(t, shape))) as [Tensor, Tensor, Tensor];
  const out = emptyTensor(shape, a.dtype, "where");
  getBackend().select(c2.storage, a2.storage, b2.storage, out.storage);
  return record(out, "where", [a, b], (g) => {
    const zero = asTensor(0, g);
    return [needsGrad(a) ? sumTo(where(c2, g, zero), a.shape) : null, needsGrad(b) ? sumTo(where(c2, zero, g), b.shape) : null];
  });
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Limits values to [lo, hi]; the gradient passes where lo <= x <= hi. */
export function clip(x: Tensor, lo: number, hi: number): Tensor {
  return minimum(maximum(x, lo), hi);
}

/** Identity in the forward pass, zero gradient. */
export function stopGradient(x: Tensor): Tensor {
  const out = emptyTensor(x.shape, x.dtype, "stopGradient");
  getBackend().copy(x.storage, out.storage);
  return out;
}
