// WasmBackend: the reference CPU backend with its hot kernels replaced by WebAssembly (128-bit SIMD) that
// runs on all cores. float32/int32 storage lives in one shared WebAssembly.Memory (see heap.ts); float64
// storage stays in plain typed arrays, and every kernel falls back to the reference implementation for
// float64 or for arrays that are not in the Wasm memory.
//
//   import { WasmBackend } from "./src/engine/backends/wasm/index.ts";
//   const backend = await WasmBackend.create({ threads: 2 });   // or new WasmBackend() (Node)
//   setBackend(backend); ...; backend.dispose();
import type { AdamWArgs, BinaryOp, ConvArgs, DType, MatmulArgs, ReduceOp, Shape, TypedArray, UnaryOp } from "../../backend.ts";
import { allocTyped, CpuBackend } from "../cpu/index.ts";
import { stridesOf } from "../cpu/elementwise.ts";
import { WasmHeap, type HeapOptions } from "./heap.ts";
import { compileKernels, instantiate, kernelModule, type KernelExports } from "./module.ts";
import { CTRL_SLOTS, ThreadPool, type PoolOptions } from "./pool.ts";

export interface WasmBackendOptions extends HeapOptions, PoolOptions {
  /** Threads that run kernels, the calling thread included. Default: os.availableParallelism() in Node, navigator.hardwareConcurrency in browsers. 1 = no workers. */
  threads?: number;
  /** Smallest kernel (in floating-point operations) that is split across threads. */
  parallelMinFlops?: number;
  /** Smallest elementwise kernel (in elements, weighted by the op's cost: 1/4 for binary ops, 6 for tanh) that is split across threads. */
  parallelMinElements?: number;
  /** A compiled kernels module (browsers: from compileKernels(), since their main thread cannot compile it synchronously). */
  module?: WebAssembly.Module;
}

// Job block layout: must match assembly/gemm.ts.
const J_KIND = 0;
const J_COUNTER = 1;
const KIND_GEMM = 1;
const G = {
  AMODE: 2, A: 3, LDA: 4, ASTRIDE: 5, BTRANS: 6, B: 7, LDB: 8, BSTRIDE: 9, C: 10, LDC: 11, CSTRIDE: 12,
  M: 13, N: 14, K: 15, BATCH: 16, MC: 17, NC: 18, KC: 19, S: 20, KCHUNK: 21, PARTIAL: 22,
  H: 23, W: 24, CH: 25, OH: 26, OW: 27, TAPS: 28, NTAPS: 29, SCRATCH: 30, SCRATCH_STRIDE: 31, ZERO: 32,
} as const;
const JOB_SLOTS = 64;
const KIND_BINARY = 2;
const KIND_UNARY = 3;
const KIND_LAYERNORM = 4;
const KIND_LAYERNORM_GRAD = 5;
const KIND_ADAMW = 6;
const KIND_LAYERNORM_GRAD_GRAD = 7;
/** Fused AdamW job fields: must match assembly/optim.ts (float32 constants from word CONST; TOTAL and CHUNK
 * where launchElementwise writes them). */
const ADAM = { P: 2, G: 3, M: 4, V: 5, OUT_P: 6, OUT_M: 7, OUT_V: 8, FLAGS: 9, CONST: 13 } as const;
/** Layer-norm job fields (eps: a float64 at byte 40): must match assembly/elementwise.ts. */
const LN = { X: 2, SCALE: 3, BIAS: 4, OUT: 5, ROWS: 6, COLS: 7, CHUNK: 8, G: 9, EPS_F64: 5, H: 12 } as const;
/** Elementwise job fields: must match assembly/elementwise.ts. */
const E = { OP: 2, A: 3, B: 4, O: 5, INNER: 6, AOS: 7, AIS: 8, BOS: 9, BIS: 10, TOTAL: 11, CHUNK: 12 } as const;
/** Op codes of the generated loops (scripts/build-wasm.mjs); ops missing here use the reference kernels. */
const BINARY_OPS: Partial<Record<BinaryOp, number>> = {
  add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, less: 6, lessEqual: 7, greater: 8, greaterEqual: 9, equal: 10,
};
const UNARY_OPS: Partial<Record<UnaryOp, number>> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, tanh: 5, abs: 6, sign: 7, square: 8, reciprocal: 9, step: 10,
  // Hand-written in assembly/elementwise.ts (double precision, rounded once).
  gelu: 11, geluD1: 12, geluD2: 13,
};
/** Relative cost per element (for the threading threshold). */
const UNARY_COST: Partial<Record<UnaryOp, number>> = { exp: 4, log: 4, tanh: 6, rsqrt: 4, sqrt: 2, reciprocal: 2, gelu: 8, geluD1: 10, geluD2: 10 };

// GEMM blocking (floats): A blocks MC x KC and B blocks KC x NC per thread.
const MC_MAX = 128;
const KC_MAX = 512;
const NC_MAX = 256;
/** Per-thread scratch: A panels (4 rows each, a cache line of skew between panels), B panels, an edge tile. */
const SCRATCH_STRIDE = MC_MAX * (KC_MAX * 4 + 64) + NC_MAX * KC_MAX * 4 + 256;

/** A-operand layouts understood by the GEMM job. */
const enum AMode { Rows = 0, Transposed = 1, Im2col = 2, Im2colT = 3 }

interface GemmSpec {
  aMode: AMode; a: number; lda: number; aStride: number;
  bTrans: boolean; b: number; ldb: number; bStride: number;
  c: number; ldc: number; cStride: number;
  m: number; n: number; k: number; batch: number;
  conv?: { h: number; w: number; c: number; oh: number; ow: number; taps: number; nTaps: number };
}

/** A helper buffer did not fit in the Wasm memory: the kernel falls back to the reference implementation. */
class HeapFull extends Error {}

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);
const roundUp = (a: number, b: number): number => ceilDiv(a, b) * b;

function defaultThreads(): number {
  const proc = (globalThis as { process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown } }).process;
  if (proc?.versions?.node && typeof proc.getBuiltinModule === "function") {
    const os = proc.getBuiltinModule("node:os") as { availableParallelism?: () => number; cpus(): unknown[] } | undefined;
    if (os) return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  }
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return nav?.hardwareConcurrency ?? 1;
}

/** Taps (di, dj) of a kh x kw kernel that read at least one input pixel (the others only see padding). */
function validTaps(args: ConvArgs): [number, number][] {
  const { h, w, kh, kw, pad, oh, ow } = args;
  const taps: [number, number][] = [];
  for (let di = 0; di < kh; di++) {
    const dy = di - pad;
    if (dy >= h || dy + oh - 1 < 0) continue;
    for (let dj = 0; dj < kw; dj++) {
      const dx = dj - pad;
      if (dx >= w || dx + ow - 1 < 0) continue;
      taps.push([di, dj]);
    }
  }
  return taps;
}

export class WasmBackend extends CpuBackend {
  override readonly name: string = "wasm";
  readonly heap: WasmHeap;
  readonly threads: number;
  private readonly exports: KernelExports;
  private readonly pool: ThreadPool | null;
  private readonly parallelMinFlops: number;
  private readonly parallelMinElements: number;
  private readonly job: Int32Array;
  private readonly jobF64: Float64Array;
  private readonly jobF32: Float32Array;
  private readonly jobOffset: number;
  private readonly zeroOffset: number;
  /** The math constants table of the elementwise kernels (assembly/math.ts). */
  private readonly constantsOffset: number;
  private readonly scratchOffset: number;
  /** Growable helper buffers in the heap: [offset, bytes]. */
  private readonly buffers = new Map<string, [number, number]>();
  private warnedFull = false;
  private disposed = false;
  private readonly runJob: (job: number, tid: number) => void;

  /** Creates the backend and waits until its worker threads are running (the way to create it in browsers). */
  static async create(options: WasmBackendOptions = {}): Promise<WasmBackend> {
    const module = options.module ?? (await compileKernels());
    const backend = new WasmBackend({ ...options, module });
    await backend.ready();
    return backend;
  }

  /** Synchronous construction (Node). Until the workers are up, kernels run on the calling thread alone. */
  constructor(options: WasmBackendOptions = {}) {
    super();
    this.heap = new WasmHeap(options);
    const module = options.module ?? kernelModule();
    this.exports = instantiate(module, this.heap.memory);
    this.runJob = this.exports.run;
    const threads = Math.max(1, Math.floor(options.threads ?? defaultThreads()));
    // Measured on a 2-core Zen 4 (bench/wasm-threshold.ts): 2 threads beat 1 from ~50 kFLOP products on;
    // memory-bound elementwise ops gain nothing even at 1M elements (both threads share the L3 bandwidth),
    // so only expensive ones (tanh, exp, ...) are split.
    this.parallelMinFlops = options.parallelMinFlops ?? 100_000;
    this.parallelMinElements = options.parallelMinElements ?? 262_144;
    const ctrl = this.mustAlloc(CTRL_SLOTS * 4);
    this.jobOffset = this.mustAlloc(JOB_SLOTS * 4);
    this.job = this.heap.i32(this.jobOffset, JOB_SLOTS);
    this.jobF64 = new Float64Array(this.job.buffer, this.jobOffset, JOB_SLOTS / 2);
    this.jobF32 = new Float32Array(this.job.buffer, this.jobOffset, JOB_SLOTS);
    this.zeroOffset = this.mustAlloc(256);
    this.heap.u8(this.zeroOffset, 256).fill(0);
    this.constantsOffset = this.mustAlloc(512);
    this.exports.initConstants(this.constantsOffset);
    this.scratchOffset = this.mustAlloc(SCRATCH_STRIDE * threads);
    this.pool = threads > 1 ? new ThreadPool(module, this.heap.memory, ctrl, threads - 1, options) : null;
    this.threads = this.pool ? this.pool.threads : 1;
  }

  /**
   * Parallel jobs posted to the worker threads, how often a worker joined one, how many kept the calling
   * thread waiting (stalled) and how often the contention guard suspended the workers (tests and tuning).
   */
  get threadStats(): { posted: number; joins: number; stalled: number; stalledMs: number; suspensions: number } {
    const s = this.pool?.stats;
    return { posted: s?.posted ?? 0, joins: this.pool?.joins ?? 0, stalled: s?.stalled ?? 0, stalledMs: s?.stalledMs ?? 0, suspensions: s?.suspensions ?? 0 };
  }

  /** Resolves once the worker threads run (immediately without workers). */
  async ready(): Promise<void> {
    if (this.pool) await this.pool.whenReady();
  }

  /** Stops the worker threads; the backend keeps working on the calling thread. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool?.dispose();
  }

  // ---- storage ------------------------------------------------------------------------------------
  override alloc(dtype: DType, size: number): TypedArray {
    if (dtype === "float64" || size === 0) return allocTyped(dtype, size);
    const offset = this.heap.allocBytes(size * 4);
    if (offset < 0) {
      if (!this.warnedFull) {
        this.warnedFull = true;
        console.warn(`WasmBackend: the Wasm memory is full (${this.heap.size} bytes); new tensors use plain arrays and the slower reference kernels`);
      }
      return allocTyped(dtype, size);
    }
    return dtype === "float32" ? this.heap.f32(offset, size) : this.heap.i32(offset, size);
  }

  override release(data: TypedArray): void {
    this.heap.releaseView(data);
  }

  /** True when every array is float32 storage in the Wasm memory. */
  private inHeap(...arrays: TypedArray[]): boolean {
    for (const a of arrays) if (!(a instanceof Float32Array) || !this.heap.owns(a)) return false;
    return true;
  }

  private mustAlloc(bytes: number): number {
    const offset = this.heap.allocBytes(bytes);
    if (offset < 0) throw new Error(`WasmBackend: cannot allocate ${bytes} bytes of Wasm memory`);
    return offset;
  }

  /** A persistent helper buffer of at least `bytes`, grown on demand (its contents are then lost). */
  private buffer(name: string, bytes: number): number {
    const have = this.buffers.get(name);
    if (have && have[1] >= bytes) return have[0];
    if (have) {
      this.heap.freeBytes(have[0]);
      this.buffers.delete(name);
    }
    let size = Math.max(bytes, have ? have[1] * 2 : 0);
    let offset = this.heap.allocBytes(size);
    if (offset < 0 && size > bytes) offset = this.heap.allocBytes((size = bytes));
    if (offset < 0) throw new HeapFull(`WasmBackend: no room for a ${bytes}-byte helper buffer`);
    this.buffers.set(name, [offset, size]);
    return offset;
  }

  // ---- job launch ---------------------------------------------------------------------------------
  private threadsFor(flops: number): number {
    return this.pool && flops >= this.parallelMinFlops && this.pool.available ? this.threads : 1;
  }

  private launch(threads: number): void {
    this.job[J_COUNTER] = 0;
    if (threads > 1) this.pool!.run(this.runJob, this.jobOffset);
    else this.runJob(this.jobOffset, 0);
  }

  // ---- GEMM ---------------------------------------------------------------------------------------
  private gemm(s: GemmSpec): void {
    const { m, n, k, batch } = s;
    if (m === 0 || n === 0 || batch === 0) return;
    if (k === 0) {
      for (let p = 0; p < batch; p++)
        for (let i = 0; i < m; i++) this.heap.f32(s.c + (p * s.cStride + i * s.ldc) * 4, n).fill(0);
      return;
    }
    const threads = this.threadsFor(2 * m * n * k * batch);
    const nBlocks = ceilDiv(n, NC_MAX);
    const NC = roundUp(ceilDiv(n, nBlocks), 8);
    const KC = roundUp(ceilDiv(k, ceilDiv(k, KC_MAX)), 4);
    let MC: number;
    if (threads === 1) MC = Math.min(MC_MAX, roundUp(m, 16));
    else {
      const perBlock = ceilDiv(4 * threads, batch * nBlocks);
      MC = Math.min(MC_MAX, Math.max(16, roundUp(ceilDiv(m, perBlock), 16)));
    }
    MC = Math.min(MC_MAX, roundUp(ceilDiv(m, ceilDiv(m, MC)), 16));
    const mBlocks = ceilDiv(m, MC);
    // Split K into partial products when C has too few blocks to keep every thread busy.
    let S = 1;
    let kChunk = k;
    let partial = 0;
    if (threads > 1 && batch === 1 && s.ldc === n && mBlocks * nBlocks < 4 * threads && k >= 512) {
      S = Math.min(16, ceilDiv(4 * threads, mBlocks * nBlocks), Math.floor(k / 128));
      kChunk = roundUp(ceilDiv(k, S), 4);
      S = ceilDiv(k, kChunk);
      try {
        partial = this.buffer("partial", S * m * n * 4);
      } catch (e) {
        if (!(e instanceof HeapFull)) throw e;
        S = 1;
        kChunk = k;
      }
    }
    const j = this.job;
    j[J_KIND] = KIND_GEMM;
    j[G.AMODE] = s.aMode; j[G.A] = s.a; j[G.LDA] = s.lda; j[G.ASTRIDE] = s.aStride;
    j[G.BTRANS] = s.bTrans ? 1 : 0; j[G.B] = s.b; j[G.LDB] = s.ldb; j[G.BSTRIDE] = s.bStride;
    j[G.C] = s.c; j[G.LDC] = s.ldc; j[G.CSTRIDE] = s.cStride;
    j[G.M] = m; j[G.N] = n; j[G.K] = k; j[G.BATCH] = batch;
    j[G.MC] = MC; j[G.NC] = NC; j[G.KC] = KC; j[G.S] = S; j[G.KCHUNK] = kChunk;
    j[G.PARTIAL] = partial;
    const cv = s.conv;
    j[G.H] = cv?.h ?? 0; j[G.W] = cv?.w ?? 0; j[G.CH] = cv?.c ?? 0; j[G.OH] = cv?.oh ?? 0; j[G.OW] = cv?.ow ?? 0;
    j[G.TAPS] = cv?.taps ?? 0; j[G.NTAPS] = cv?.nTaps ?? 0;
    j[G.SCRATCH] = this.scratchOffset; j[G.SCRATCH_STRIDE] = SCRATCH_STRIDE; j[G.ZERO] = this.zeroOffset;
    this.launch(threads);
    if (S > 1) this.exports.sumPartials(j[G.PARTIAL]!, S, m * n, s.c);
  }

  override matmul(a: TypedArray, b: TypedArray, out: TypedArray, args: MatmulArgs): void {
    if (!this.inHeap(a, b, out)) return super.matmul(a, b, out, args);
    const { batch, m, n, k, transA, transB, aBatchStride, bBatchStride } = args;
    this.gemm({
      aMode: transA ? AMode.Transposed : AMode.Rows, a: a.byteOffset, lda: transA ? m : k, aStride: aBatchStride,
      bTrans: transB, b: b.byteOffset, ldb: transB ? k : n, bStride: bBatchStride,
      c: out.byteOffset, ldc: n, cStride: m * n,
      m, n, k, batch,
    });
  }

  /** Writes the (dy, dx) offsets of the taps into the heap; returns the table's offset. */
  private tapTable(taps: [number, number][], pad: number): number {
    const offset = this.buffer("taps", taps.length * 8);
    const t = this.heap.i32(offset, taps.length * 2);
    taps.forEach(([di, dj], i) => {
      t[2 * i] = di - pad;
      t[2 * i + 1] = dj - pad;
    });
    return offset;
  }

  override conv2d(x: TypedArray, kernel: TypedArray, out: TypedArray, args: ConvArgs): void {
    if (!this.inHeap(x, kernel, out)) return super.conv2d(x, kernel, out, args);
    try {
      this.conv2dWasm(x, kernel, out, args);
    } catch (e) {
      if (!(e instanceof HeapFull)) throw e;
      super.conv2d(x, kernel, out, args);
    }
  }

  private conv2dWasm(x: TypedArray, kernel: TypedArray, out: TypedArray, args: ConvArgs): void {
    const { b, h, w, c, kh, kw, o, pad, oh, ow } = args;
    const rows = b * oh * ow;
    if (rows === 0 || o === 0) return;
    const plain = { aMode: AMode.Rows, a: x.byteOffset, lda: c, aStride: 0, bTrans: false, ldb: o, bStride: 0, c: out.byteOffset, ldc: o, cStride: 0, m: rows, n: o, k: c, batch: 1 };
    if (kh === 1 && kw === 1 && pad === 0) return this.gemm({ ...plain, b: kernel.byteOffset });
    const taps = validTaps(args);
    if (taps.length === 0) return out.fill(0), undefined;
    if (taps.length === 1 && taps[0]![0] === pad && taps[0]![1] === pad && oh === h && ow === w) {
      // Only the centre tap sees data (e.g. a 3x3 kernel on a 1x1 map): a plain product with that tap.
      return this.gemm({ ...plain, b: kernel.byteOffset + ((pad * kw + pad) * c * o) * 4 });
    }
    let bOffset = kernel.byteOffset;
    if (taps.length < kh * kw) {
      // Gather the kernel rows of the taps that see data.
      bOffset = this.buffer("kernelRows", taps.length * c * o * 4);
      const dst = this.heap.f32(bOffset, taps.length * c * o);
      taps.forEach(([di, dj], i) => dst.set(kernel.subarray((di * kw + dj) * c * o, (di * kw + dj + 1) * c * o), i * c * o));
    }
    this.gemm({
      ...plain, aMode: AMode.Im2col, b: bOffset, k: taps.length * c,
      conv: { h, w, c, oh, ow, taps: this.tapTable(taps, pad), nTaps: taps.length },
    });
  }

  override conv2dKernelGrad(x: TypedArray, g: TypedArray, out: TypedArray, args: ConvArgs): void {
    if (!this.inHeap(x, g, out)) return super.conv2dKernelGrad(x, g, out, args);
    try {
      this.conv2dKernelGradWasm(x, g, out, args);
    } catch (e) {
      if (!(e instanceof HeapFull)) throw e;
      super.conv2dKernelGrad(x, g, out, args);
    }
  }

  private conv2dKernelGradWasm(x: TypedArray, g: TypedArray, out: TypedArray, args: ConvArgs): void {
    const { b, h, w, c, kh, kw, o, pad, oh, ow } = args;
    const rows = b * oh * ow;
    const plain = { aMode: AMode.Transposed, a: x.byteOffset, lda: c, aStride: 0, bTrans: false, b: g.byteOffset, ldb: o, bStride: 0, c: out.byteOffset, ldc: o, cStride: 0, m: c, n: o, k: rows, batch: 1 };
    if (kh === 1 && kw === 1 && pad === 0) return this.gemm(plain);
    const taps = validTaps(args);
    if (taps.length < kh * kw) out.fill(0);
    if (taps.length === 0) return;
    if (taps.length === 1 && taps[0]![0] === pad && taps[0]![1] === pad && oh === h && ow === w) {
      return this.gemm({ ...plain, c: out.byteOffset + ((pad * kw + pad) * c * o) * 4 });
    }
    const all = taps.length === kh * kw;
    const target = all ? out.byteOffset : this.buffer("kernelRows", taps.length * c * o * 4);
    this.gemm({
      ...plain, aMode: AMode.Im2colT, c: target, m: taps.length * c,
      conv: { h, w, c, oh, ow, taps: this.tapTable(taps, pad), nTaps: taps.length },
    });
    if (!all) {
      const src = this.heap.f32(target, taps.length * c * o);
      taps.forEach(([di, dj], i) => out.set(src.subarray(i * c * o, (i + 1) * c * o), (di * kw + dj) * c * o));
    }
  }

  // ---- elementwise ---------------------------------------------------------------------------------
  /** Runs an elementwise job over `total` outputs, split into chunks across threads when large enough. */
  private launchElementwise(kind: number, total: number, costPerElement: number): void {
    const threads = this.pool && total * costPerElement >= this.parallelMinElements && this.pool.available ? this.threads : 1;
    const j = this.job;
    j[J_KIND] = kind;
    j[E.TOTAL] = total;
    j[E.CHUNK] = threads > 1 ? Math.max(4096, roundUp(ceilDiv(total, threads * 4), 64)) : total;
    this.launch(threads);
  }

  override unary(op: UnaryOp, x: TypedArray, out: TypedArray): void {
    const code = UNARY_OPS[op];
    if (code === undefined || !this.inHeap(x, out)) return super.unary(op, x, out);
    const n = out.length;
    if (n === 0) return;
    if (n < 4096 || !this.pool) return this.exports.unaryRange(code, x.byteOffset, out.byteOffset, 0, n, this.constantsOffset);
    const j = this.job;
    j[E.OP] = code; j[E.A] = x.byteOffset; j[E.B] = this.constantsOffset; j[E.O] = out.byteOffset;
    this.launchElementwise(KIND_UNARY, n, UNARY_COST[op] ?? 1);
  }

  override adamw(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, scalars: TypedArray, a: AdamWArgs, outP: TypedArray, outM: TypedArray, outV: TypedArray): void {
    if (!(p instanceof Float32Array) || !this.inHeap(p, g, m, v, outP, outM, outV)) return super.adamw(p, g, m, v, scalars, a, outP, outM, outV);
    const n = p.length;
    if (n === 0) return;
    const j = this.job;
    j[ADAM.P] = p.byteOffset; j[ADAM.G] = g.byteOffset; j[ADAM.M] = m.byteOffset; j[ADAM.V] = v.byteOffset;
    j[ADAM.OUT_P] = outP.byteOffset; j[ADAM.OUT_M] = outM.byteOffset; j[ADAM.OUT_V] = outV.byteOffset;
    const [normValue, lr, bc1, bc2] = [scalars[0]!, scalars[1]!, scalars[2]!, scalars[3]!];
    const maxNorm = Math.fround(a.maxNorm ?? 0);
    const scale = a.maxNorm !== null && !(normValue < maxNorm); // a NaN norm scales, as the reference
    j[ADAM.FLAGS] = (a.elementClip !== null ? 1 : 0) | (scale ? 2 : 0) | (a.weightDecay !== 0 ? 4 : 0);
    // The float32 constants, computed in double and rounded as the reference's (Float32Array stores round).
    const constants = [-(a.elementClip ?? 0), a.elementClip ?? 0, normValue, maxNorm, 1 - a.b1, a.b1, 1 - a.b2, a.b2, bc1, bc2, a.eps, a.weightDecay, lr];
    this.jobF32.set(constants, ADAM.CONST);
    this.launchElementwise(KIND_ADAMW, n, 4);
  }

  override layerNorm(x: TypedArray, rows: number, cols: number, scale: TypedArray, bias: TypedArray, eps: number, out: TypedArray): void {
    if (!this.inHeap(x, scale, bias, out) || rows === 0 || cols === 0) return super.layerNorm(x, rows, cols, scale, bias, eps, out);
    const threads = this.layerNormThreads(rows * cols);
    if (threads === 1) return this.exports.layerNormRows(x.byteOffset, 0, rows, cols, scale.byteOffset, bias.byteOffset, eps, out.byteOffset);
    this.job[LN.BIAS] = bias.byteOffset;
    this.launchLayerNorm(KIND_LAYERNORM, threads, x, scale, rows, cols, eps, out);
  }

  override layerNormGradX(x: TypedArray, g: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
    if (!this.inHeap(x, g, scale, out) || rows === 0 || cols === 0) return super.layerNormGradX(x, g, rows, cols, scale, eps, out);
    const threads = this.layerNormThreads(2 * rows * cols);
    if (threads === 1) return this.exports.layerNormGradRows(x.byteOffset, g.byteOffset, 0, rows, cols, scale.byteOffset, eps, out.byteOffset);
    this.job[LN.G] = g.byteOffset;
    this.launchLayerNorm(KIND_LAYERNORM_GRAD, threads, x, scale, rows, cols, eps, out);
  }

  override layerNormGradXGradX(x: TypedArray, g: TypedArray, h: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
    if (!this.inHeap(x, g, h, scale, out) || rows === 0 || cols === 0) return super.layerNormGradXGradX(x, g, h, rows, cols, scale, eps, out);
    const threads = this.layerNormThreads(3 * rows * cols);
    if (threads === 1) return this.exports.layerNormGradGradRows(x.byteOffset, g.byteOffset, h.byteOffset, 0, rows, cols, scale.byteOffset, eps, out.byteOffset);
    this.job[LN.G] = g.byteOffset;
    this.job[LN.H] = h.byteOffset;
    this.launchLayerNorm(KIND_LAYERNORM_GRAD_GRAD, threads, x, scale, rows, cols, eps, out);
  }

  /** Layer norms are memory bound like binary ops, but read their input two or three times. */
  private layerNormThreads(work: number): number {
    return this.pool && work >= this.parallelMinElements && this.pool.available ? this.threads : 1;
  }

  private launchLayerNorm(kind: number, threads: number, x: TypedArray, scale: TypedArray, rows: number, cols: number, eps: number, out: TypedArray): void {
    const j = this.job;
    j[J_KIND] = kind;
    j[LN.X] = x.byteOffset; j[LN.SCALE] = scale.byteOffset; j[LN.OUT] = out.byteOffset;
    j[LN.ROWS] = rows; j[LN.COLS] = cols;
    j[LN.CHUNK] = Math.max(1, Math.ceil(Math.max(4096 / cols, rows / (threads * 4))));
    this.jobF64[LN.EPS_F64] = eps;
    this.launch(threads);
  }

  override binary(op: BinaryOp, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): void {
    const code = BINARY_OPS[op];
    if (code === undefined || !this.inHeap(a, b, out)) return super.binary(op, a, aShape, b, bShape, out, outShape);
    const n = out.length;
    if (n === 0) return;
    // Collapse the axes into groups of equal broadcast status (size-1 output axes dropped).
    const groups: { size: number; aB: boolean; bB: boolean }[] = [];
    for (let d = 0; d < outShape.length; d++) {
      const size = outShape[d]!;
      if (size === 1) continue;
      const aB = aShape[d] !== size, bB = bShape[d] !== size;
      const last = groups[groups.length - 1];
      if (last && last.aB === aB && last.bB === bB) last.size *= size;
      else groups.push({ size, aB, bB });
    }
    if (groups.length > 2) return this.binarySlabs(code, a, b, out, groups);
    const inner = groups.length ? groups[groups.length - 1]! : { size: 1, aB: false, bB: false };
    const outer = groups.length === 2 ? groups[0]! : null;
    const ais = inner.aB ? 0 : 1, bis = inner.bB ? 0 : 1;
    const aos = !outer || outer.aB ? 0 : inner.aB ? 1 : inner.size;
    const bos = !outer || outer.bB ? 0 : inner.bB ? 1 : inner.size;
    if (n < 4096 || !this.pool) {
      return this.exports.binaryRange(code, a.byteOffset, b.byteOffset, out.byteOffset, inner.size, aos, ais, bos, bis, 0, n);
    }
    const j = this.job;
    j[E.OP] = code; j[E.A] = a.byteOffset; j[E.B] = b.byteOffset; j[E.O] = out.byteOffset;
    j[E.INNER] = inner.size; j[E.AOS] = aos; j[E.AIS] = ais; j[E.BOS] = bos; j[E.BIS] = bis;
    this.launchElementwise(KIND_BINARY, n, 0.25);
  }

  /** Three or more broadcast groups: loops over the leading groups, one 2-D range per slab. */
  private binarySlabs(code: number, a: TypedArray, b: TypedArray, out: TypedArray, groups: { size: number; aB: boolean; bB: boolean }[]): void {
    const rank = groups.length;
    // Element strides of a and b per group (0 where broadcast).
    const aStr = new Array<number>(rank), bStr = new Array<number>(rank);
    let as = 1, bs = 1;
    for (let g = rank - 1; g >= 0; g--) {
      aStr[g] = groups[g]!.aB ? 0 : as;
      bStr[g] = groups[g]!.bB ? 0 : bs;
      if (!groups[g]!.aB) as *= groups[g]!.size;
      if (!groups[g]!.bB) bs *= groups[g]!.size;
    }
    const inner = groups[rank - 1]!.size, outerSize = groups[rank - 2]!.size;
    const slab = inner * outerSize;
    const ais = aStr[rank - 1] ? 1 : 0, bis = bStr[rank - 1] ? 1 : 0;
    const aos = aStr[rank - 2]!, bos = bStr[rank - 2]!;
    const index = new Array<number>(rank - 2).fill(0);
    let ao = 0, bo = 0;
    for (let o = 0; o < out.length; o += slab) {
      this.exports.binaryRange(code, a.byteOffset + ao * 4, b.byteOffset + bo * 4, out.byteOffset + o * 4, inner, aos, ais, bos, bis, 0, slab);
      for (let d = rank - 3; d >= 0; d--) {
        index[d]!++;
        ao += aStr[d]!;
        bo += bStr[d]!;
        if (index[d]! < groups[d]!.size) break;
        ao -= aStr[d]! * groups[d]!.size;
        bo -= bStr[d]! * groups[d]!.size;
        index[d] = 0;
      }
    }
  }

  override reduce(op: ReduceOp, x: TypedArray, shape: Shape, axes: readonly number[], out: TypedArray): void {
    if (!this.inHeap(x, out)) return super.reduce(op, x, shape, axes, out);
    const code = op === "sum" ? 0 : 1;
    const groups: { size: number; reduced: boolean }[] = [];
    for (let d = 0; d < shape.length; d++) {
      const size = shape[d]!;
      if (size === 1) continue;
      const reduced = axes.includes(d);
      const last = groups[groups.length - 1];
      if (last && last.reduced === reduced) last.size *= size;
      else groups.push({ size, reduced });
    }
    if (x.length === 0) return super.reduce(op, x, shape, axes, out);
    if (!groups.some((g) => g.reduced)) return out.set(x), undefined;
    const e = this.exports;
    if (groups.length === 1) return e.reduceRows(code, x.byteOffset, 0, 1, groups[0]!.size, out.byteOffset);
    if (groups.length === 2 && !groups[0]!.reduced) return e.reduceRows(code, x.byteOffset, 0, groups[0]!.size, groups[1]!.size, out.byteOffset);
    if (groups.length === 2 || (groups.length === 3 && !groups[0]!.reduced)) {
      const [outer, rows, cols] = groups.length === 2 ? [1, groups[0]!.size, groups[1]!.size] : [groups[0]!.size, groups[1]!.size, groups[2]!.size];
      let acc: number;
      try {
        acc = this.buffer("reduceAcc", cols * 8);
      } catch (e) {
        if (!(e instanceof HeapFull)) throw e;
        return super.reduce(op, x, shape, axes, out);
      }
      for (let o = 0; o < outer; o++) e.reduceCols(code, x.byteOffset + o * rows * cols * 4, rows, cols, out.byteOffset + o * cols * 4, acc);
      return;
    }
    super.reduce(op, x, shape, axes, out);
  }

  override gather(x: TypedArray, index: Int32Array, out: TypedArray): void {
    const ok = (x instanceof Float32Array || x instanceof Int32Array) && x.constructor === out.constructor;
    if (!ok || !this.heap.owns(x) || !this.heap.owns(out)) return super.gather(x, index, out);
    const at = this.indexInHeap(index, out.length);
    if (at < 0) return super.gather(x, index, out);
    this.exports.gather32(x.byteOffset, at, out.length, out.byteOffset);
  }

  /**
   * The byte offset of an index array in the heap: its own, or a copy in a helper buffer for plain arrays
   * when that is worth it; -1 for "use the reference".
   */
  private indexInHeap(index: Int32Array, n: number): number {
    if (this.heap.owns(index)) return index.byteOffset;
    if (n < 2048) return -1;
    try {
      const at = this.buffer("index", n * 4);
      this.heap.i32(at, n).set(index.subarray(0, n));
      return at;
    } catch (e) {
      if (e instanceof HeapFull) return -1;
      throw e;
    }
  }

  override scatterAdd(g: TypedArray, index: Int32Array, out: TypedArray): void {
    if (!this.inHeap(g, out)) return super.scatterAdd(g, index, out);
    const at = this.indexInHeap(index, g.length);
    if (at < 0) return super.scatterAdd(g, index, out);
    this.exports.scatterAdd32(g.byteOffset, at, g.length, out.byteOffset, out.length);
  }

  override copyBox(src: TypedArray, srcShape: Shape, srcBegin: readonly number[], dst: TypedArray, dstShape: Shape, dstBegin: readonly number[], size: Shape): void {
    const ok = (src instanceof Float32Array || src instanceof Int32Array) && src.constructor === dst.constructor && this.heap.owns(src) && this.heap.owns(dst);
    if (!ok) return super.copyBox(src, srcShape, srcBegin, dst, dstShape, dstBegin, size);
    const rank = size.length;
    const ss = stridesOf(srcShape), ds = stridesOf(dstShape);
    let s = src.byteOffset, d = dst.byteOffset;
    for (let i = 0; i < rank; i++) {
      if (size[i] === 0) return;
      s += srcBegin[i]! * ss[i]! * 4;
      d += dstBegin[i]! * ds[i]! * 4;
    }
    // Merge axes that are contiguous in both arrays; drop size-1 axes. Innermost first.
    const dims: { n: number; s: number; d: number }[] = [];
    for (let i = rank - 1; i >= 0; i--) {
      const n = size[i]!;
      if (n === 1) continue;
      const inner = dims[dims.length - 1];
      if (inner && inner.s * inner.n === ss[i] && inner.d * inner.n === ds[i]) inner.n *= n;
      else dims.push({ n, s: ss[i]!, d: ds[i]! });
    }
    if (dims.length === 0) dims.push({ n: 1, s: 1, d: 1 });
    if (dims[0]!.s !== 1 || dims[0]!.d !== 1) dims.unshift({ n: 1, s: 1, d: 1 });
    if (dims.length > 3) return super.copyBox(src, srcShape, srcBegin, dst, dstShape, dstBegin, size);
    while (dims.length < 3) dims.push({ n: 1, s: 0, d: 0 });
    const [i2, i1, i0] = dims as [typeof dims[0], typeof dims[0], typeof dims[0]];
    this.exports.copy3d(s, d, i0.n, i1.n, i2.n, i0.s, i1.s, i0.d, i1.d);
  }

  /** Swaps of two axis groups (after merging axes that stay adjacent), with leading batch axes and a contiguous tail. */
  override transpose(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void {
    const ok = (x instanceof Float32Array || x instanceof Int32Array) && x.constructor === out.constructor && this.heap.owns(x) && this.heap.owns(out);
    if (!ok || x.length === 0) return super.transpose(x, shape, perm, out);
    // Output-order axes without size-1 ones, merged where consecutive output axes are consecutive input axes.
    const groups: { first: number; size: number }[] = [];
    let lastAxis = -2;
    for (const a of perm) {
      if (shape[a] === 1) continue;
      const g = groups[groups.length - 1];
      if (g && a === lastAxis + 1) g.size *= shape[a]!;
      else groups.push({ first: a, size: shape[a]! });
      lastAxis = a;
    }
    // Rank of each group in input order.
    const order = [...groups].sort((p, q) => p.first - q.first);
    const q = groups.map((g) => order.indexOf(g));
    let lead = 0;
    while (lead < q.length && q[lead] === lead) lead++;
    if (lead === q.length) return out.set(x), undefined;
    const rest = q.slice(lead);
    const swap = rest.length >= 2 && rest[0] === lead + 1 && rest[1] === lead && (rest.length === 2 || (rest.length === 3 && rest[2] === lead + 2));
    if (!swap) return super.transpose(x, shape, perm, out);
    const batch = order.slice(0, lead).reduce((p, g) => p * g.size, 1);
    const rows = order[lead]!.size, cols = order[lead + 1]!.size, inner = rest.length === 3 ? order[lead + 2]!.size : 1;
    const slab = rows * cols * inner * 4;
    for (let b = 0; b < batch; b++) this.exports.transpose3(x.byteOffset + b * slab, rows, cols, inner, out.byteOffset + b * slab);
  }

  /** Each tap's [c,o] block transposed (tiled 2-D transpose) into the mirrored tap. */
  override flipKernel(kernel: TypedArray, kh: number, kw: number, c: number, o: number, out: TypedArray): void {
    const ok = (kernel instanceof Float32Array || kernel instanceof Int32Array) && kernel.constructor === out.constructor && this.heap.owns(kernel) && this.heap.owns(out);
    if (!ok) return super.flipKernel(kernel, kh, kw, c, o, out);
    const taps = kh * kw, bytes = c * o * 4;
    for (let t = 0; t < taps; t++) this.exports.transpose3(kernel.byteOffset + t * bytes, c, o, 1, out.byteOffset + (taps - 1 - t) * bytes);
  }

  override maxPool2x2(x: TypedArray, shape: Shape, out: TypedArray, argmax: Int32Array): void {
    if (!this.inHeap(x, out) || !this.heap.owns(argmax) || shape.length !== 4) return super.maxPool2x2(x, shape, out, argmax);
    const [b, h, w, c] = shape as [number, number, number, number];
    this.exports.maxPool2x2(x.byteOffset, b, h, w, c, out.byteOffset, argmax.byteOffset);
  }
}
