// Counter-based random numbers (Threefry-2x32, the generator JAX uses): a key and a
// counter fully determine every value, so a run is reproducible bit for bit.
import type { DType, Shape } from "./backend.ts";
import { emptyTensor, getBackend, sizeOf, Tensor, tensorFromHost } from "./tensor.ts";
import { allocTyped } from "./backends/cpu/index.ts";

export { threefry2x32, key, split, foldIn, randomBits, uniformArray, normalArray, type RandomKey } from "./threefry.ts";
import { foldIn, uniformArray, normalArray, type RandomKey } from "./threefry.ts";

function fromValues(values: Float64Array, shape: Shape, dtype: DType, origin: string): Tensor {
  const data = allocTyped(dtype, values.length);
  data.set(values);
  return tensorFromHost(data, shape, dtype, origin);
}

export function uniform(k: RandomKey, shape: Shape, dtype: DType = "float32", low = 0, high = 1): Tensor {
  const u = uniformArray(k, sizeOf(shape));
  for (let i = 0; i < u.length; i++) u[i] = low + (high - low) * u[i]!;
  return fromValues(u, shape, dtype, "random.uniform");
}

export function normal(k: RandomKey, shape: Shape, dtype: DType = "float32"): Tensor {
  return fromValues(normalArray(k, sizeOf(shape)), shape, dtype, "random.normal");
}

/**
 * normal(k, shape) with the key held by the backend as an int32 tensor [2] (keyTensor(k)): drawn where the
 * tensor lives, so a captured step can take a new key as its input instead of new noise (a GPU draws the
 * same values to float32 rounding). No gradient.
 */
export function normalFromKey(key: Tensor, shape: Shape, dtype: DType = "float32"): Tensor {
  if (key.dtype !== "int32" || key.shape.length !== 1 || key.shape[0] !== 2) throw new Error(`random.normalFromKey: the key must be int32 [2], got ${key.dtype} [${key.shape.join(",")}]`);
  if (dtype === "int32") throw new Error("random.normalFromKey: a float dtype is needed");
  const out = emptyTensor(shape, dtype, "random.normalFromKey");
  getBackend().randomNormal(key.storage, out.storage);
  return out;
}

/** A key's words as an int32 array (for normalFromKey's key tensor, or a replay's input). */
export function keyWords(k: RandomKey): Int32Array {
  return Int32Array.of(k[0] | 0, k[1] | 0);
}

/** Standard normal truncated to [lower, upper] by rejection (as lecun_normal's truncated normal). */
export function truncatedNormalArray(k: RandomKey, n: number, lower = -2, upper = 2): Float64Array {
  const out = new Float64Array(n);
  let filled = 0;
  let round = 0;
  while (filled < n) {
    const batch = normalArray(foldIn(k, round++), Math.max(16, Math.ceil((n - filled) * 1.1)));
    for (let i = 0; i < batch.length && filled < n; i++) if (batch[i]! >= lower && batch[i]! <= upper) out[filled++] = batch[i]!;
  }
  return out;
}

/** Integers in [0, n) drawn with the given (unnormalized) probabilities, by inverse CDF. */
export function choice(k: RandomKey, n: number, count: number, probabilities?: ArrayLike<number>): Int32Array {
  const out = new Int32Array(count);
  const u = uniformArray(k, count);
  if (!probabilities) {
    for (let i = 0; i < count; i++) out[i] = Math.min(n - 1, Math.floor(u[i]! * n));
    return out;
  }
  if (probabilities.length !== n) throw new Error(`random.choice: ${probabilities.length} probabilities for ${n} choices`);
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (!(probabilities[i]! >= 0)) throw new Error(`random.choice: probability ${i} is ${probabilities[i]}`);
    total += probabilities[i]!;
    cdf[i] = total;
  }
  if (!(total > 0)) throw new Error("random.choice: probabilities sum to zero");
  for (let i = 0; i < count; i++) {
    const target = u[i]! * total;
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    out[i] = lo;
  }
  return out;
}
