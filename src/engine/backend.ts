// The kernel boundary: every op in the frontend ends in one of these calls.
// A faster backend (Wasm SIMD, WebGPU) replaces kernels one at a time by
// overriding methods of the reference CPU backend.

export type DType = "float32" | "float64" | "int32";
export type TypedArray = Float32Array | Float64Array | Int32Array;
export type Shape = readonly number[];

/** Storage that only its backend can read, asynchronously (a GPU buffer). float64 never lives there. */
export interface DeviceArray {
  readonly length: number;
  readonly dtype: "float32" | "int32";
}
/** A tensor's storage: host memory (CPU, Wasm) or device memory (WebGPU). */
export type Storage = TypedArray | DeviceArray;

export function isHostStorage(s: Storage): s is TypedArray {
  return ArrayBuffer.isView(s);
}

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

/**
 * Hyper-parameters of one fused AdamW update (optax's chain: clip by value, clip by global norm, Adam,
 * decoupled weight decay, scale by -lr), as plain numbers; kernels round each to the tensor dtype. What
 * changes from step to step (the norm, lr and bias corrections) comes in a tensor instead (Backend.adamw).
 */
/** One parameter tensor's AdamW update (Backend.adamwMany): its inputs and the outputs to write. */
export interface AdamWItem<S = Storage> {
  p: S; g: S; m: S; v: S;
  outP: S; outM: S; outV: S;
}

export interface AdamWArgs {
  /** Element-wise clip to [-elementClip, elementClip]; null = none. */
  elementClip: number | null;
  /** Global-norm clip: gradients scale by maxNorm / norm unless norm < maxNorm; null = none. */
  maxNorm: number | null;
  b1: number;
  b2: number;
  eps: number;
  weightDecay: number;
}

/** A replay's device copy: source, destination, the element in the source where the destination's values begin. */
export type ReplayCopy = readonly [Storage, Storage, number];

/** The commands of a recorded step (Backend.startRecording). */
export interface Recording {
  /** Dispatches recorded. */
  readonly dispatches: number;
  /**
   * Writes the host values, copies [source, destination, source offset in elements] (destination-sized),
   * then runs the commands again, and starts them (flush) unless `submit` is false: then the next replays
   * join the same submit (a replay with writes submits what is pending first). `swapped`: run the commands
   * made by swap() instead.
   */
  replay(writes: readonly (readonly [Storage, TypedArray])[], copies: readonly ReplayCopy[], submit?: boolean, swapped?: boolean): void;
  /**
   * Also keeps the commands with the storage of each pair exchanged (input slot, output of the same size):
   * the step reading the outputs and writing the slots, so that state fed back alternates between the two
   * instead of being copied.
   */
  swap(pairs: readonly (readonly [Storage, Storage])[]): void;
  /** Hands the recording's storage back (replay no more). */
  dispose(): void;
}

export interface Backend {
  readonly name: string;
  /** Storage of `size` elements; contents are unspecified. */
  alloc(dtype: DType, size: number): Storage;
  /** Hands storage back for reuse; the caller must not touch it again. */
  release(data: Storage): void;
  /** New storage holding a copy of `values` (its dtype is the array's). */
  upload(values: TypedArray): Storage;
  /** A copy of the values, once all work recorded before this call has run. */
  read(data: Storage): Promise<TypedArray>;
  /** Starts the work recorded so far (a GPU submit); host backends run each call at once and do nothing here. */
  flush(): void;
  /** Frees what the backend holds (a GPU device, worker threads). */
  dispose?(): void;
  /**
   * Device backends: records every command from now on (besides running it) until the returned function
   * is called with the step's outputs (computed there if still pending), which ends the recording and
   * returns it, to be replayed on the same storage (capture.ts).
   */
  startRecording?(): (outputs: readonly Storage[]) => Recording;
  /**
   * Optional (a device's few-kernel form of ops.sumOfSquares): out[0] = the sum over `arrays` (float32) of
   * the sum of squares of their elements, each first clipped to [-clip, clip] unless clip is null (NaN
   * stays NaN). Without it, sumOfSquares runs as the chain of ops.
   */
  sumSquares?(arrays: readonly Storage[], clip: number | null, out: Storage): void;
  /**
   * Optional: out (outShape) = zeros with x (xShape, the same rank) placed at `begin`: the adjoint of a slice
   * in one kernel where fill and copyBox are two commands on a device. Without it, padInto fills and copies.
   */
  padInto?(x: Storage, xShape: Shape, out: Storage, outShape: Shape, begin: readonly number[]): void;
  /** Optional: Backend.adamw for every item, with the same step values (a device's few-kernel form). */
  adamwMany?(items: readonly AdamWItem[], scalars: Storage, args: AdamWArgs): void;

  unary(op: UnaryOp, x: Storage, out: Storage): void;
  /** NumPy broadcasting; aShape, bShape and outShape have equal rank. */
  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, out: Storage, outShape: Shape): void;
  /** out = cond != 0 ? a : b, all of outShape's size (frontend broadcasts first). */
  select(cond: Storage, a: Storage, b: Storage, out: Storage): void;
  /** Reduces the given axes (sorted) of x; out has x's shape with those axes set to 1. */
  reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[], out: Storage): void;
  /** Cumulative sum/product along an axis, optionally from the end. */
  cumulative(op: "sum" | "prod", x: Storage, shape: Shape, axis: number, reverse: boolean, out: Storage): void;

  matmul(a: Storage, b: Storage, out: Storage, args: MatmulArgs): void;
  conv2d(x: Storage, kernel: Storage, out: Storage, args: ConvArgs): void;
  /** Kernel gradient: out[kh,kw,c,o] = sum over b,i,j of xpad[b,i+di,j+dj,c] * g[b,i,j,o]. */
  conv2dKernelGrad(x: Storage, g: Storage, out: Storage, args: ConvArgs): void;

  transpose(x: Storage, shape: Shape, perm: readonly number[], out: Storage): void;
  /** Copies a box of `size` from src (at srcBegin) into dst (at dstBegin); equal ranks. */
  copyBox(src: Storage, srcShape: Shape, srcBegin: readonly number[], dst: Storage, dstShape: Shape, dstBegin: readonly number[], size: Shape): void;
  fill(out: Storage, value: number): void;
  /** out = src, equal sizes. */
  copy(src: Storage, out: Storage): void;
  /** out[kh-1-i, kw-1-j, q, p] = kernel[i, j, p, q] for an HWIO kernel [kh,kw,c,o] (out: [kh,kw,o,c]). */
  flipKernel(kernel: Storage, kh: number, kw: number, c: number, o: number, out: Storage): void;
  /** out[i] = x[index[i]]. */
  gather(x: Storage, index: Storage, out: Storage): void;
  /** out = 0; out[index[i]] += g[i]. `unique` promises that no index repeats (a permutation, maxPool's argmax). */
  scatterAdd(g: Storage, index: Storage, out: Storage, unique?: boolean): void;
  /** 2x2 stride-2 max pool with 'SAME' padding on NHWC; writes values and flat argmax indices into x. */
  maxPool2x2(x: Storage, shape: Shape, out: Storage, argmax: Storage): void;
  /**
   * Layer normalization of `rows` rows of `cols` values (flax LayerNorm with use_fast_variance), statistics
   * accumulated in float64: mean = E[x], var = max(0, E[x^2] - mean^2) (NaN -> 0, as maximum(var, 0)),
   * out = (x - mean) * (1 / sqrt(var + eps)) * scale + bias; scale and bias hold `cols` values.
   */
  layerNorm(x: Storage, rows: number, cols: number, scale: Storage, bias: Storage, eps: number, out: Storage): void;
  /**
   * The input gradient of layerNorm for the output cotangent g, per row (statistics of x as in layerNorm,
   * float64 accumulation): gs = g * scale, xhat = (x - mean) * rstd,
   * out = rstd * (gs - mean(gs) - xhat * (var >= 0 ? mean(gs * xhat) : 0)).
   */
  layerNormGradX(x: Storage, g: Storage, rows: number, cols: number, scale: Storage, eps: number, out: Storage): void;
  /**
   * The gradient in x of layerNormGradX(x, g, scale) for its cotangent h, per row (statistics of x as in
   * layerNorm, float64 accumulation): a = g * scale, c = mean(a * xhat), d = mean(h * xhat), bars for row means,
   * out = m rstd^2 ((3 c d - mean(h a) + h_bar a_bar) xhat - c (h - h_bar) - d (a - a_bar)), m = [var >= 0].
   */
  layerNormGradXGradX(x: Storage, g: Storage, h: Storage, rows: number, cols: number, scale: Storage, eps: number, out: Storage): void;
  /** Nearest-neighbour resize of NHWC x [b,h,w,c] to [b,height,width,c]: src = floor((i + 0.5) * h / height). */
  upsampleNearest(x: Storage, shape: Shape, height: number, width: number, out: Storage): void;
  /** Its adjoint: each input pixel sums its output block, in row-major order of the output. */
  upsampleNearestGrad(g: Storage, shape: Shape, height: number, width: number, out: Storage): void;
  /**
   * One AdamW step of a parameter tensor, fused, in the exact order of the unfused ops (each result rounded to
   * the dtype): c = clip(g); c = norm < maxNorm ? c : c / norm * maxNorm; m' = (1-b1) c + b1 m;
   * v' = (1-b2) c^2 + b2 v; u = (m'/bc1) / (sqrt(v'/bc2) + eps) (+ wd p when wd != 0); p' = p - lr u.
   * `scalars` holds the step's [norm, lr, bc1, bc2] (the global gradient norm, the learning rate, the bias
   * corrections 1 - b1^t and 1 - b2^t) in the dtype: device values, so a recorded step replays with new
   * ones. Outputs do not alias inputs.
   */
  adamw(p: Storage, g: Storage, m: Storage, v: Storage, scalars: Storage, args: AdamWArgs, outP: Storage, outM: Storage, outV: Storage): void;
  /** Casts between dtypes (float -> int truncates toward zero). */
  cast(x: Storage, out: Storage): void;
  /**
   * Standard normals drawn from a key held by the backend (int32 [2]: the RandomKey's words): the values of
   * random.normalArray(key, out.length), rounded to out's dtype (a device may differ by float32 rounding).
   */
  randomNormal(key: Storage, out: Storage): void;
}
