// The kernel boundary: every op in the frontend ends in one of these calls.
// A faster backend (Wasm SIMD, WebGPU) replaces kernels one at a time by
// overriding methods of the reference CPU backend.

export type DType = "float32" | "float64" | "int32";
export type TypedArray = Float32Array | Float64Array | Int32Array;
export type Shape = readonly number[];

export type UnaryOp =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "abs" | "sign"
  | "sin" | "cos" | "square" | "reciprocal" | "step" // step(x) = x > 0 ? 1 : 0
  // gelu (tanh approximation) and its first and second derivatives; see backends/cpu/elementwise.ts.
  | "gelu" | "geluD1" | "geluD2";

export type BinaryOp =
  | "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum"
  | "less" | "lessEqual" | "greater" | "greaterEqual" | "equal";

export type ReduceOp = "sum" | "max";

export interface MatmulArgs {
  batch: number; m: number; n: number; k: number;
  /** A is [batch?, m, k] (or [batch?, k, m] when transA). */
  transA: boolean;
  /** B is [batch?, k, n] (or [batch?, n, k] when transB). */
  transB: boolean;
  /** 0 broadcasts one matrix over the batch. */
  aBatchStride: number;
  bBatchStride: number;
}

/** NHWC input [b,h,w,c], HWIO kernel [kh,kw,c,o], stride 1, symmetric zero padding. */
export interface ConvArgs {
  b: number; h: number; w: number; c: number;
  kh: number; kw: number; o: number;
  pad: number;
  /** Output spatial size: h + 2*pad - kh + 1. */
  oh: number; ow: number;
}

export interface Backend {
  readonly name: string;
  /** Storage of `size` elements; contents are unspecified. */
  alloc(dtype: DType, size: number): TypedArray;
  /** Hands storage back for reuse; the caller must not touch it again. */
  release(data: TypedArray): void;

  unary(op: UnaryOp, x: TypedArray, out: TypedArray): void;
  /** NumPy broadcasting; aShape, bShape and outShape have equal rank. */
  binary(op: BinaryOp, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): void;
  /** out = cond != 0 ? a : b, all of outShape's size (frontend broadcasts first). */
  select(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void;
  /** Reduces the given axes (sorted) of x; out has x's shape with those axes set to 1. */
  reduce(op: ReduceOp, x: TypedArray, shape: Shape, axes: readonly number[], out: TypedArray): void;
  /** Cumulative sum/product along an axis, optionally from the end. */
  cumulative(op: "sum" | "prod", x: TypedArray, shape: Shape, axis: number, reverse: boolean, out: TypedArray): void;

  matmul(a: TypedArray, b: TypedArray, out: TypedArray, args: MatmulArgs): void;
  conv2d(x: TypedArray, kernel: TypedArray, out: TypedArray, args: ConvArgs): void;
  /** Kernel gradient: out[kh,kw,c,o] = sum over b,i,j of xpad[b,i+di,j+dj,c] * g[b,i,j,o]. */
  conv2dKernelGrad(x: TypedArray, g: TypedArray, out: TypedArray, args: ConvArgs): void;

  transpose(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void;
  /** Copies a box of `size` from src (at srcBegin) into dst (at dstBegin); equal ranks. */
  copyBox(src: TypedArray, srcShape: Shape, srcBegin: readonly number[], dst: TypedArray, dstShape: Shape, dstBegin: readonly number[], size: Shape): void;
  fill(out: TypedArray, value: number): void;
  /** out[kh-1-i, kw-1-j, q, p] = kernel[i, j, p, q] for an HWIO kernel [kh,kw,c,o] (out: [kh,kw,o,c]). */
  flipKernel(kernel: TypedArray, kh: number, kw: number, c: number, o: number, out: TypedArray): void;
  /** out[i] = x[index[i]]. */
  gather(x: TypedArray, index: Int32Array, out: TypedArray): void;
  /** out = 0; out[index[i]] += g[i]. */
  scatterAdd(g: TypedArray, index: Int32Array, out: TypedArray): void;
  /** 2x2 stride-2 max pool with 'SAME' padding on NHWC; writes values and flat argmax indices into x. */
  maxPool2x2(x: TypedArray, shape: Shape, out: TypedArray, argmax: Int32Array): void;
  /**
   * Layer normalization of `rows` rows of `cols` values (flax LayerNorm with use_fast_variance), statistics
   * accumulated in float64: mean = E[x], var = max(0, E[x^2] - mean^2) (NaN -> 0, as maximum(var, 0)),
   * out = (x - mean) * (1 / sqrt(var + eps)) * scale + bias; scale and bias hold `cols` values.
   */
  layerNorm(x: TypedArray, rows: number, cols: number, scale: TypedArray, bias: TypedArray, eps: number, out: TypedArray): void;
  /**
   * The input gradient of layerNorm for the output cotangent g, per row (statistics of x as in layerNorm,
   * float64 accumulation): gs = g * scale, xhat = (x - mean) * rstd,
   * out = rstd * (gs - mean(gs) - xhat * (var >= 0 ? mean(gs * xhat) : 0)).
   */
  layerNormGradX(x: TypedArray, g: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void;
  /** Casts between dtypes (float -> int truncates toward zero). */
  cast(x: TypedArray, out: TypedArray): void;
}
