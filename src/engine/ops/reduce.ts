// Reductions, broadcasting and cumulative ops.
import { emptyTensor, getBackend, record, sizeOf, Tensor } from "../tensor.ts";
import { allocTyped } from "../backends/cpu/index.ts";
import { checkFloat, normalizeAxis, padShape } from "./checks.ts";
import { scalar } from "./create.ts";
import { div, equal, mul } from "./elementwise.ts";
import { reshape } from "./shape.ts";

function resolveAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  return [...new Set(list.map((a) => normalizeAxis(op, a, x.rank)))].sort((p, q) => p - q);
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  if (keepDims) return shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return shape.filter((_, i) => !axes.includes(i));
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = resolveAxes("sum", x, axes);
  const kept = reducedShape(x.shape, ax, true);
  const out = emptyTensor(reducedShape(x.shape, ax, keepDims), x.dtype, "sum");
  getBackend().reduce("sum", x.storage, x.shape, ax, out.storage);
  return record(out, "sum", [x], (g) => [broadcastTo(reshape(g, kept), x.shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = resolveAxes("mean", x, axes);
  const count = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return div(sum(x, ax, keepDims), scalar(count, x.dtype));
}

/** The gradient is shared equally among tied maxima. */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkFloat("max", x);
  const ax = resolveAxes("max", x, axes);
  const kept = reducedShape(x.shape, ax, true);
  const out = emptyTensor(reducedShape(x.shape, ax, keepDims), x.dtype, "max");
  getBackend().reduce("max", x.storage, x.shape, ax, out.storage);
  return record(out, "max", [x], (g) => {
    const mask = equal(x, broadcastTo(reshape(out, kept), x.shape));
    const share = div(mask, broadcastTo(sum(mask, ax, true), x.shape));
    return [mul(share, broadcastTo(reshape(g, kept), x.shape))];
  });
}

/** Repeats x along size-1 (or missing leading) axes to `shape`. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  // A target of lower rank is an error too (padShape would get a negative count).
  const padded = padShape(x.shape, Math.max(shape.length, x.rank));
  if (x.rank > shape.length || padded.some((d, i) => d !== 1 && d !== shape[i])) {
    throw new Error(`broadcastTo: cannot broadcast [${x.shape.join(",")}] to [${shape.join(",")}]`);
  }
  const out = emptyTensor(shape, x.dtype, "broadcastTo");
  // x + 0 broadcast: the zero uploaded from the host (a fused constant on a device, no fill command).
  const zero = getBackend().upload(allocTyped(x.dtype, 1));
  getBackend().binary("add", x.storage, padded, zero, shape.map(() => 1), out.storage, shape);
  getBackend().release(zero);
  return record(out, "broadcastTo", [x], (g) => [sumTo(g, x.shape)]);
}

/** Sums g down to `shape` (the adjoint of broadcastTo). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const padded = padShape(shape, g.rank);
  const axes = g.shape.map((d, i) => (padded[i] === 1 && d !== 1 ? i : -1)).filter((i) => i >= 0);
  const summed = axes.length ? sum(g, axes, true) : g;
  return sizeOf(summed.shape) === sizeOf(shape) && summed.rank === shape.length && summed.shape.every((d, i) => d === shape[i])
    ? summed
    : reshape(summed, shape);
}

export function cumsum(x: Tensor, axis = 0, reverse = false): Tensor {
  const a = normalizeAxis("cumsum", axis, x.rank);
  const out = emptyTensor(x.shape, x.dtype, "cumsum");
  getBackend().cumulative("sum", x.storage, x.shape, a, reverse, out.storage);
  return record(out, "cumsum", [x], (g) => [cumsum(g, a, !reverse)]);
}

/** The gradient divides by x, so it assumes no zeros (true for schedules: alphas > 0). */
export function cumprod(x: Tensor, axis = 0, reverse = false): Tensor {
  const a = normalizeAxis("cumprod", axis, x.rank);
  const out = emptyTensor(x.shape, x.dtype, "cumprod");
  getBackend().cumulative("prod", x.storage, x.shape, a, reverse, out.storage);
  return record(out, "cumprod", [x], (g) => [div(cumsum(mul(g, out), a, !reverse), x)]);
}
