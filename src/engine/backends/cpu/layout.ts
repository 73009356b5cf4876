// Data-movement kernels of the reference CPU backend.
import type { Shape, TypedArray } from "../../backend.ts";
import { stridesOf } from "./elementwise.ts";

export function transpose(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void {
  const rank = shape.length;
  const inStrides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const step = perm.map((p) => inStrides[p]!);
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = x[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      src += step[d]!;
      if (index[d]! < outShape[d]!) break;
      src -= step[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}

export function copyBox(src: TypedArray, srcShape: Shape, srcBegin: readonly number[], dst: TypedArray, dstShape: Shape, dstBegin: readonly number[], size: Shape): void {
  const rank = size.length;
  const total = size.reduce((p, d) => p * d, 1);
  if (total === 0) return;
  if (rank === 0) {
    dst[0] = src[0]!; // a scalar: the odometer below needs at least one axis
    return;
  }
  const ss = stridesOf(srcShape);
  const ds = stridesOf(dstShape);
  let s = srcBegin.reduce((acc, b, i) => acc + b * ss[i]!, 0);
  let d = dstBegin.reduce((acc, b, i) => acc + b * ds[i]!, 0);
  const last = size[rank - 1]!;
  const index = new Array<number>(rank).fill(0);
  for (let done = 0; done < total; done += last) {
    for (let j = 0; j < last; j++) dst[d + j] = src[s + j]!;
    for (let k = rank - 2; k >= 0; k--) {
      index[k]!++;
      s += ss[k]!;
      d += ds[k]!;
      if (index[k]! < size[k]!) break;
      s -= ss[k]! * size[k]!;
      d -= ds[k]! * size[k]!;
      index[k] = 0;
    }
  }
}

/** Each tap's [c,o] block, transposed, into the mirrored tap. */
export function flipKernel(kernel: TypedArray, kh: number, kw: number, c: number, o: number, out: TypedArray): void {
  const taps = kh * kw, block = c * o;
  for (let t = 0; t < taps; t++) {
    const src = t * block, dst = (taps - 1 - t) * block;
    for (let p = 0; p < c; p++) for (let q = 0; q < o; q++) out[dst + q * c + p] = kernel[src + p * o + q]!;
  }
}

export function gather(x: TypedArray, index: Int32Array, out: TypedArray): void {
  for (let i = 0; i < out.length; i++) out[i] = x[index[i]!]!;
}

export function scatterAdd(g: TypedArray, index: Int32Array, out: TypedArray): void {
  out.fill(0);
  for (let i = 0; i < g.length; i++) out[index[i]!] += g[i]!;
}

/** Flat gather indices of a nearest upsample by shape (most recent last; a few shapes recur in a U-Net). */
const upsampleIndexCache = new Map<string, Int32Array>();
const UPSAMPLE_CACHE_SIZE = 8;

/** out[n,i,j,q] = x[n, floor((i+0.5)h/height), floor((j+0.5)w/width), q], as flat indices into x. */
export function upsampleIndex(shape: Shape, height: number, width: number): Int32Array {
  const [b, h, w, c] = shape as [number, number, number, number];
  const key = `${b},${h},${w},${c},${height},${width}`;
  let idx = upsampleIndexCache.get(key);
  if (idx) {
    upsampleIndexCache.delete(key); // refresh its place
  } else {
    idx = new Int32Array(b * height * width * c);
    let at = 0;
    for (let n = 0; n < b; n++)
      for (let i = 0; i < height; i++) {
        const si = Math.floor(((i + 0.5) * h) / height);
        for (let j = 0; j < width; j++) {
          const sj = Math.floor(((j + 0.5) * w) / width);
          for (let q = 0; q < c; q++) idx[at++] = ((n * h + si) * w + sj) * c + q;
        }
      }
    if (upsampleIndexCache.size >= UPSAMPLE_CACHE_SIZE) upsampleIndexCache.delete(upsampleIndexCache.keys().next().value!);
  }
  upsampleIndexCache.set(key, idx);
  return idx;
}

/** 'SAME' padding with window 2 and stride 2 pads only at the end, with -inf. */
export function maxPool2x2(x: TypedArray, shape: Shape, out: TypedArray, argmax: Int32Array): void {
  const [b, h, w, c] = shape as [number, number, number, number];
  const oh = Math.ceil(h / 2), ow = Math.ceil(w / 2);
  let o = 0;
  for (let n = 0; n < b; n++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let q = 0; q < c; q++, o++) {
          let best = -Infinity, at = -1;
          for (let di = 0; di < 2; di++) {
            const y = 2 * i + di;
            if (y >= h) continue;
            for (let dj = 0; dj < 2; dj++) {
              const xx = 2 * j + dj;
              if (xx >= w) continue;
              const k = ((n * h + y) * w + xx) * c + q;
              const v = x[k]!;
              if (at < 0 || v > best || v !== v) { best = v; at = k; }
            }
          }
          out[o] = best;
          argmax[o] = at;
        }
}
