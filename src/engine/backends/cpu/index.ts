// The reference backend: plain TypeScript over typed arrays. Every faster backend is tested against it.
import type { AdamWArgs, Backend, BinaryOp, ConvArgs, DType, MatmulArgs, ReduceOp, Shape, TypedArray, UnaryOp } from "../../backend.ts";
import { binary, cumulative, layerNorm, layerNormGradX, layerNormGradXGradX, reduce, select, unary } from "./elementwise.ts";
import { conv2d, conv2dKernelGrad, matmul } from "./matmul.ts";
import { adamw } from "./optim.ts";
import { normalArray } from "../../threefry.ts";
import { copyBox, flipKernel, gather, maxPool2x2, scatterAdd, transpose, upsampleIndex } from "./layout.ts";

export function allocTyped(dtype: DType, size: number): TypedArray {
  if (dtype === "float32") return new Float32Array(size);
  if (dtype === "float64") return new Float64Array(size);
  return new Int32Array(size);
}

export function dtypeOf(values: TypedArray): DType {
  return values instanceof Float64Array ? "float64" : values instanceof Int32Array ? "int32" : "float32";
}

export class CpuBackend implements Backend {
  readonly name: string = "cpu";
  private scratchBuffers = new Map<string, TypedArray>();

  alloc(dtype: DType, size: number): TypedArray {
    return allocTyped(dtype, size);
  }
  release(_data: TypedArray): void {
    // Plain typed arrays are reclaimed by the garbage collector.
  }
  upload(values: TypedArray): TypedArray {
    const out = this.alloc(dtypeOf(values), values.length);
    out.set(values);
    return out;
  }
  read(data: TypedArray): Promise<TypedArray> {
    return Promise.resolve(data.slice());
  }
  flush(): void {
    // Every kernel has already run.
  }
  /** A reusable buffer for im2col, grown on demand, one per dtype. */
  protected scratch(like: TypedArray, size: number): TypedArray {
    const key = like.constructor.name;
    let buf = this.scratchBuffers.get(key);
    if (!buf || buf.length < size) {
      buf = like instanceof Float64Array ? new Float64Array(size) : new Float32Array(size);
      this.scratchBuffers.set(key, buf);
    }
    return buf.subarray(0, size);
  }

  unary(op: UnaryOp, x: TypedArray, out: TypedArray): void { unary(op, x, out); }
  binary(op: BinaryOp, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): void {
    binary(op, a, aShape, b, bShape, out, outShape);
  }
  select(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void { select(cond, a, b, out); }
  reduce(op: ReduceOp, x: TypedArray, shape: Shape, axes: readonly number[], out: TypedArray): void { reduce(op, x, shape, axes, out); }
  cumulative(op: "sum" | "prod", x: TypedArray, shape: Shape, axis: number, reverse: boolean, out: TypedArray): void {
    cumulative(op, x, shape, axis, reverse, out);
  }
  matmul(a: TypedArray, b: TypedArray, out: TypedArray, args: MatmulArgs): void { matmul(a, b, out, args); }
  conv2d(x: TypedArray, kernel: TypedArray, out: TypedArray, args: ConvArgs): void {
    conv2d(x, kernel, out, args, (n) => this.scratch(x, n));
  }
  conv2dKernelGrad(x: TypedArray, g: TypedArray, out: TypedArray, args: ConvArgs): void {
    conv2dKernelGrad(x, g, out, args, (n) => this.scratch(x, n));
  }
  transpose(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void { transpose(x, shape, perm, out); }
  copyBox(src: TypedArray, srcShape: Shape, srcBegin: readonly number[], dst: TypedArray, dstShape: Shape, dstBegin: readonly number[], size: Shape): void {
    copyBox(src, srcShape, srcBegin, dst, dstShape, dstBegin, size);
  }
  fill(out: TypedArray, value: number): void { out.fill(value); }
  copy(src: TypedArray, out: TypedArray): void { out.set(src); }
  flipKernel(kernel: TypedArray, kh: number, kw: number, c: number, o: number, out: TypedArray): void { flipKernel(kernel, kh, kw, c, o, out); }
  gather(x: TypedArray, index: Int32Array, out: TypedArray): void { gather(x, index, out); }
  scatterAdd(g: TypedArray, index: Int32Array, out: TypedArray, _unique?: boolean): void { scatterAdd(g, index, out); }
  maxPool2x2(x: TypedArray, shape: Shape, out: TypedArray, argmax: Int32Array): void { maxPool2x2(x, shape, out, argmax); }
  layerNorm(x: TypedArray, rows: number, cols: number, scale: TypedArray, bias: TypedArray, eps: number, out: TypedArray): void {
    layerNorm(x, rows, cols, scale, bias, eps, out);
  }
  layerNormGradX(x: TypedArray, g: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
    layerNormGradX(x, g, rows, cols, scale, eps, out);
  }
  layerNormGradXGradX(x: TypedArray, g: TypedArray, h: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
    layerNormGradXGradX(x, g, h, rows, cols, scale, eps, out);
  }
  upsampleNearest(x: TypedArray, shape: Shape, height: number, width: number, out: TypedArray): void {
    this.gather(x, upsampleIndex(shape, height, width), out);
  }
  upsampleNearestGrad(g: TypedArray, shape: Shape, height: number, width: number, out: TypedArray): void {
    this.scatterAdd(g, upsampleIndex(shape, height, width), out);
  }
  adamw(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, scalars: TypedArray, args: AdamWArgs, outP: TypedArray, outM: TypedArray, outV: TypedArray): void {
    adamw(p, g, m, v, scalars, args, outP, outM, outV);
  }
  randomNormal(key: TypedArray, out: TypedArray): void {
    if (!(key instanceof Int32Array) || key.length !== 2) throw new Error("randomNormal: the key is int32 [2]");
    out.set(normalArray([key[0]! >>> 0, key[1]! >>> 0], out.length));
  }
  cast(x: TypedArray, out: TypedArray): void {
    if (out instanceof Int32Array) for (let i = 0; i < out.length; i++) out[i] = Math.trunc(x[i]!);
    else out.set(x);
  }
}
