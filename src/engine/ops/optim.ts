// Fused optimizer updates: one kernel call per parameter tensor instead of a chain of ~20 elementwise ops.
// On a GPU that is ~20x fewer dispatches for the optimizer; on the CPU the results are bit-identical to the
// chain (see backends/cpu/optim.ts).
import type { AdamWArgs } from "../backend.ts";
import { emptyTensor, getBackend, noGrad, shapeString, tidy, Tensor } from "../tensor.ts";
import { add, clip as clipValues, square } from "./elementwise.ts";
import { sum } from "./reduce.ts";

export type { AdamWArgs } from "../backend.ts";

/**
 * One AdamW step of parameter p with gradient g and moments m, v (same shape and float dtype), given the
 * step's values as a 4-element tensor in p's dtype, [global gradient norm, lr, 1 - b1^t, 1 - b2^t] (a tensor,
 * so that nothing is read back and a recorded step replays with the next step's values): returns the new
 * [p, m, v]. Not differentiable (no gradient is recorded): it is an update, run under noGrad by optimizers.
 */
export function adamwUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, stepScalars: Tensor, args: AdamWArgs): [Tensor, Tensor, Tensor] {
  return adamwUpdates([{ p, g, m, v }], stepScalars, args)[0]!;
}

/**
 * adamwUpdate for every parameter of a model with the same step values: [p, m, v] per item, in order. A
 * backend with Backend.adamwMany updates several tensors per kernel (WebGPU: two with 16 storage buffers);
 * the values are adamwUpdate's either way.
 */
export function adamwUpdates(items: readonly { p: Tensor; g: Tensor; m: Tensor; v: Tensor }[], stepScalars: Tensor, args: AdamWArgs): [Tensor, Tensor, Tensor][] {
  for (const item of items) checkAdamW(item.p, item.g, item.m, item.v, stepScalars);
  const outs = items.map(({ p }) => [emptyTensor(p.shape, p.dtype, "adamwUpdate.p"), emptyTensor(p.shape, p.dtype, "adamwUpdate.m"), emptyTensor(p.shape, p.dtype, "adamwUpdate.v")] as [Tensor, Tensor, Tensor]);
  const backend = getBackend();
  if (backend.adamwMany && items.length > 1) {
    backend.adamwMany(items.map(({ p, g, m, v }, i) => ({
      p: p.storage, g: g.storage, m: m.storage, v: v.storage, outP: outs[i]![0].storage, outM: outs[i]![1].storage, outV: outs[i]![2].storage,
    })), stepScalars.storage, args);
  } else {
    items.forEach(({ p, g, m, v }, i) => backend.adamw(p.storage, g.storage, m.storage, v.storage, stepScalars.storage, args, outs[i]![0].storage, outs[i]![1].storage, outs[i]![2].storage));
  }
  return outs;
}

function checkAdamW(p: Tensor, g: Tensor, m: Tensor, v: Tensor, stepScalars: Tensor): void {
  for (const [name, t] of [["g", g], ["m", m], ["v", v]] as const) {
    if (t.dtype !== p.dtype || t.size !== p.size || t.rank !== p.rank || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`adamwUpdate: ${name} is ${shapeString(t.shape)} ${t.dtype}, the parameter ${shapeString(p.shape)} ${p.dtype}`);
    }
  }
  if (p.dtype === "int32") throw new Error("adamwUpdate: parameters must be float32 or float64");
  if (stepScalars.size !== 4 || stepScalars.dtype !== p.dtype) {
    throw new Error(`adamwUpdate: stepScalars must be 4 ${p.dtype} values [norm, lr, bc1, bc2], got ${shapeString(stepScalars.shape)} ${stepScalars.dtype}`);
  }
}

/**
 * The sum over `tensors` of the sum of their squared elements, each clipped to [-clip, clip] first when
 * `clip` is given: a scalar of their (float) dtype. Optimizers take the global gradient norm as its square
 * root (optax's global_norm; with the clip, that of the element-wise clipped gradients). As the chain
 * sum(square(clip(t))) leaf by leaf, the leaves' sums added in order: bit for bit on host backends; a
 * backend with Backend.sumSquares (WebGPU: one kernel per up to 15 tensors, then one sum) adds in its own
 * order. Not differentiable (no gradient is recorded), as the updates it serves.
 */
export function sumOfSquares(tensors: readonly Tensor[], options: { clip?: number } = {}): Tensor {
  const first = tensors[0];
  if (!first) throw new Error("sumOfSquares: no tensors");
  if (first.dtype === "int32") throw new Error("sumOfSquares: tensors must be float32 or float64");
  for (const t of tensors) if (t.dtype !== first.dtype) throw new Error(`sumOfSquares: every tensor must be ${first.dtype}, got ${t.dtype}`);
  const { clip } = options;
  if (clip !== undefined && !(clip >= 0)) throw new Error(`sumOfSquares: clip must be >= 0, got ${clip}`);
  const backend = getBackend();
  if (backend.sumSquares && first.dtype === "float32") {
    const out = emptyTensor([], first.dtype, "sumOfSquares");
    backend.sumSquares(tensors.map((t) => t.storage), clip ?? null, out.storage);
    return out;
  }
  return noGrad(() => {
    let total: Tensor | null = null;
    for (const t of tensors) {
      const next: Tensor = tidy(() => {
        const leaf = sum(square(clip === undefined ? t : clipValues(t, -clip, clip)));
        return total === null ? leaf : add(total, leaf);
      });
      total?.dispose();
      total = next;
    }
    return total!;
  });
}
