// Shape and data-movement ops: reshape, transpose, slice/pad, concat, gather/scatter, cast.
import type { DType } from "../backend.ts";
import { emptyTensor, getBackend, record, shapeString, sizeOf, Tensor, needsGrad, tensorFromHost } from "../tensor.ts";
import { arange } from "./create.ts";
import { add, mul } from "./elementwise.ts";
import { checkSameDtype, normalizeAxis } from "./checks.ts";

/** The same values with a new shape of equal size (a view sharing x's storage); one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (sizeOf(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot reshape ${shapeString(x.shape)} (${x.size} elements) to ${shapeString(shape)}`);
  }
  // A view: the same storage (no copy), freed when the last tensor sharing it is disposed.
  const out = new Tensor(x.storage, resolved, x.dtype, "reshape", x);
  return record(out, "reshape", [x], (g) => [reshape(g, x.shape)]);
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.length !== x.rank || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new Error(`transpose: invalid permutation [${p.join(",")}] for shape ${shapeString(x.shape)}`);
  }
  const out = emptyTensor(p.map((i) => x.shape[i]!), x.dtype, "transpose");
  getBackend().transpose(x.storage, x.shape, p, out.storage);
  const inverse = p.map((_, i) => p.indexOf(i));
  return record(out, "transpose", [x], (g) => [transpose(g, inverse)]);
}

/** x[begin : begin+size] per axis; size -1 means "to the end". */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  const b = x.shape.map((_, i) => begin[i] ?? 0);
  const s = x.shape.map((d, i) => (size?.[i] === undefined || size[i] === -1 ? d - b[i]! : size[i]!));
  if (b.some((v, i) => v < 0 || s[i]! < 0 || v + s[i]! > x.shape[i]!)) {
    throw new Error(`slice: begin [${b.join(",")}] size [${s.join(",")}] out of bounds for shape ${shapeString(x.shape)}`);
  }
  const out = emptyTensor(s, x.dtype, "slice");
  getBackend().copyBox(x.storage, x.shape, b, out.storage, s, s.map(() => 0), s);
  return record(out, "slice", [x], (g) => [padInto(g, x.shape, b)]);
}

/** Places x inside zeros of `shape` at `begin` (the adjoint of slice). */
export function padInto(x: Tensor, shape: readonly number[], begin: readonly number[]): Tensor {
  const out = emptyTensor(shape, x.dtype, "padInto");
  const backend = getBackend();
  if (backend.padInto) {
    backend.padInto(x.storage, x.shape, out.storage, shape, begin);
  } else {
    backend.fill(out.storage, 0);
    backend.copyBox(x.storage, x.shape, x.shape.map(() => 0), out.storage, shape, begin, x.shape);
  }
  return record(out, "padInto", [x], (g) => [slice(g, begin, x.shape)]);
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error("concat: no tensors given");
  const first = xs[0]!;
  const a = normalizeAxis("concat", axis, first.rank);
  for (const t of xs) {
    checkSameDtype("concat", first, t);
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`concat: shapes ${xs.map((u) => shapeString(u.shape)).join(", ")} differ outside axis ${a}`);
    }
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((p, t) => p + t.shape[a]!, 0);
  const out = emptyTensor(shape, first.dtype, "concat");
  const begins: number[][] = [];
  let offset = 0;
  for (const t of xs) {
    const begin = shape.map((_, i) => (i === a ? offset : 0));
    begins.push(begin);
    getBackend().copyBox(t.storage, t.shape, t.shape.map(() => 0), out.storage, shape, begin, t.shape);
    offset += t.shape[a]!;
  }
  return record(out, "concat", xs, (g) => xs.map((t, i) => (needsGrad(t) ? slice(g, begins[i]!, t.shape) : null)));
}

/** Checks the index's dtype, and its values where they are in host memory (a device cannot be read here). */
function checkIndex(op: string, index: Tensor, bound: number): void {
  if (index.dtype !== "int32") throw new Error(`${op}: index must be int32, got ${index.dtype} ${shapeString(index.shape)}`);
  if (!index.isHost) return;
  const data = index.data;
  for (let i = 0; i < data.length; i++) {
    if (data[i]! < 0 || data[i]! >= bound) throw new Error(`${op}: index ${data[i]} out of range [0, ${bound})`);
  }
}

/** out[i] = x.flat[index[i]], shaped like index. */
export function gatherFlat(x: Tensor, index: Tensor, checked = false): Tensor {
  if (!checked) checkIndex("gatherFlat", index, x.size);
  const out = emptyTensor(index.shape, x.dtype, "gatherFlat");
  getBackend().gather(x.storage, index.storage, out.storage);
  return record(out, "gatherFlat", [x], (g) => [scatterAddFlat(g, index, x.shape, true)]);
}

/** zeros(shape).flat[index[i]] += g[i] (the adjoint of gatherFlat). */
export function scatterAddFlat(g: Tensor, index: Tensor, shape: readonly number[], checked = false, unique = false): Tensor {
  if (!checked) checkIndex("scatterAddFlat", index, sizeOf(shape));
  if (index.size !== g.size) throw new Error(`scatterAddFlat: ${g.size} values for ${index.size} indices`);
  const out = emptyTensor(shape, g.dtype, "scatterAddFlat");
  getBackend().scatterAdd(g.storage, index.storage, out.storage, unique);
  // gatherFlat gives index's shape; g may have another shape of the same size.
  return record(out, "scatterAddFlat", [g], (h) => {
    const back = gatherFlat(h, index, true);
    return [back.rank === g.rank && back.shape.every((d, i) => d === g.shape[i]) ? back : reshape(back, g.shape)];
  });
}

/** Selects entries along an axis: take(x, [2,0], 0) = [x[2], x[0]]. */
export function take(x: Tensor, indices: Tensor, axis = 0): Tensor {
  const a = normalizeAxis("take", axis, x.rank);
  checkIndex("take", indices, x.shape[a]!);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const len = x.shape[a]!;
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  let flat: Tensor;
  if (indices.isHost) {
    const idx = indices.data;
    const f = new Int32Array(sizeOf(shape));
    let o = 0;
    for (let p = 0; p < outer; p++)
      for (let k = 0; k < idx.length; k++)
        for (let q = 0; q < inner; q++) f[o++] = (p * len + idx[k]!) * inner + q;
    flat = tensorFromHost(f, shape, "int32", "take.index");
  } else {
    // Device indices: the same formula as int32 tensor ops, broadcast over [outer, k, inner].
    const rows = mul(reshape(arange(0, outer, "int32"), [outer, 1, 1]), len);
    const picked = add(rows, reshape(indices, [1, indices.size, 1]));
    const flat3 = add(mul(picked, inner), reshape(arange(0, inner, "int32"), [1, 1, inner]));
    flat = reshape(flat3, shape);
  }
  return gatherFlat(x, flat, true);
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = emptyTensor(x.shape, dtype, "cast");
  getBackend().cast(x.storage, out.storage);
  if (dtype === "int32" || x.dtype === "int32") return out;
  return record(out, "cast", [x], (g) => [cast(g, x.dtype)]);
}
