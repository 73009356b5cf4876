// The WebGPU backend: the engine's Backend interface on GPU buffers. Each call only records a dispatch into
// one command encoder; flush() (the end of a training or sampling step) submits it, and read() is the only
// way values come back. float64 stays on the host backends: WGSL has no f64.
//
// float32 unary and binary ops are fused (fusion.ts): they record an expression instead of a dispatch, and
// every other method first materializes the pending arrays it is handed (`ready`). Kernel flips, upsamples
// and contiguous slices are pending too (deferred.ts): conv2d reads a pending flip's source flipped, a copy
// into a box (concat) writes a pending upsample's source upsampled in place, and a matmul or 1x1 conv reads
// a pending slice in its source at an offset. With fusion on, so are layer norms,
// matmuls and convolutions (producers.ts): an expression of one's output (gelu(layerNorm(h)), conv + bias)
// runs in its kernel as an epilogue.
import type { AdamWArgs, AdamWItem, Backend, BinaryOp, ConvArgs, DType, MatmulArgs, Recording, ReduceOp, Shape, Storage, TypedArray, UnaryOp } from "../../backend.ts";
import { describeAdapter, type GpuDeviceOptions } from "./device.ts";
import { KernelProfiler, type DispatchTime } from "./profiler.ts";
import { DeferredOps, type DeferredStats, type PendingArrays, type PendingFlip, type PendingSlice, type PendingUpsample } from "./deferred.ts";
import { stridesOf } from "../cpu/elementwise.ts";
import { PendingProducers, type ProducerStats } from "./producers.ts";
import { FUSED_ELEMENTWISE_PARAM_BASE, readsLeafAtI, type FusedProgram } from "./shaders/fused.ts";
import { ElementwiseFusion, type FusionStats } from "./fusion.ts";
import { WebGpuKernels, type GemmEpilogue, type GpuArray, type KernelStats, type WebGpuKernelsOptions } from "./kernels.ts";
import { coalesce } from "./shapes.ts";

export type { GpuArray } from "./kernels.ts";

export interface WebGpuBackendOptions extends GpuDeviceOptions, WebGpuKernelsOptions {
  /**
   * Submit after this many backend calls even without flush(), so that a long loop that never reads back
   * (e.g. a sampler's 1000 steps) does not grow one command buffer and its parameter staging without bound.
   */
  autoFlushCalls?: number;
  /** Fuse chains of float32 elementwise ops into single kernels (default true; false: one dispatch per op). */
  fuseElementwise?: boolean;
}

export interface WebGpuBackendStats extends KernelStats {
  fusion: FusionStats | null;
  flips: DeferredStats;
  upsamples: DeferredStats;
  slices: DeferredStats;
  producers: ProducerStats;
}

const F64_MESSAGE = "the webgpu backend has no float64 (WGSL has no f64): use float32, or the cpu backend for float64";

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly kernels: WebGpuKernels;
  private readonly autoFlushCalls: number;
  private callsSinceFlush = 0;
  private readonly fusion: ElementwiseFusion<GpuArray> | null;
  private readonly flips: DeferredOps<GpuArray, PendingFlip<GpuArray>>;
  private readonly upsamples: DeferredOps<GpuArray, PendingUpsample<GpuArray>>;
  private readonly slices: DeferredOps<GpuArray, PendingSlice<GpuArray>>;
  /** The three, in the order a release asks them (each may hold the array as a pending op's source). */
  private readonly deferred: readonly PendingArrays<GpuArray>[];
  private readonly producers: PendingProducers<GpuArray>;

  constructor(kernels: WebGpuKernels, options: WebGpuBackendOptions = {}) {
    this.kernels = kernels;
    this.autoFlushCalls = options.autoFlushCalls ?? 4096;
    this.fusion = options.fuseElementwise === false ? null : new ElementwiseFusion<GpuArray>({
      maxLeaves: Math.min(15, kernels.maxStorageBuffers - 1),
      emit: (program, out) => this.emitFused(program, out),
      release: (array) => this.releaseForGood(array),
      coalesce: (sizes, strides) => {
        const c = coalesce(sizes, [strides]);
        return { sizes: c.sizes, strides: c.strides[0]! };
      },
    });
    // (A flip's source may be a pending slice: computed first.)
    this.flips = new DeferredOps((op, out) => {
      this.ready(op.source);
      kernels.flipKernel(op.source, op.shape, out);
    }, (array) => this.releaseFrom(1, array));
    this.upsamples = new DeferredOps((op, out) => kernels.upsampleNearest(op.source, op.shape, op.height, op.width, out), (array) => this.releaseFrom(2, array));
    this.slices = new DeferredOps((op, out) => kernels.copyBox(op.source, [op.source.length], [op.offset], out, [op.length], [0], [op.length]), (array) => this.releaseFrom(3, array));
    this.deferred = [this.flips, this.upsamples, this.slices];
    this.producers = new PendingProducers<GpuArray>((array) => kernels.release(array));
  }

  /** A device on the best adapter (hardware GPU first; see device.ts); dispose() releases it. */
  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await WebGpuKernels.create(options), options);
  }

  /** One line naming the adapter, e.g. "NVIDIA H200 (dawn/vulkan, core)". */
  describe(): string {
    return this.kernels.info ? describeAdapter(this.kernels.info) : "WebGPU device";
  }

  stats(): WebGpuBackendStats {
    return {
      ...this.kernels.stats(), fusion: this.fusion?.stats() ?? null, flips: this.flips.stats(), upsamples: this.upsamples.stats(), slices: this.slices.stats(),
      producers: this.producers.stats(),
    };
  }

  /**
   * Runs a fused expression into `out`: as the epilogue of a pending producer (norm, matmul, conv) whose output
   * is one of its leaves, read element by element over out's size (the first that can take it); otherwise
   * on its own, after the pending producers among its leaves.
   */
  private emitFused(program: FusedProgram<GpuArray>, out: GpuArray): void {
    for (const [k, leaf] of program.leaves.entries()) {
      if (!this.producers.isPending(leaf) || leaf.length !== out.length || !readsLeafAtI(program, k)) continue;
      // The others first: the producer's kernel reads them.
      for (const [j, other] of program.leaves.entries()) if (j !== k) this.producers.materialize(other);
      if (this.producers.runWithEpilogue(leaf, program, k, out)) return;
    }
    for (const leaf of program.leaves) this.producers.materialize(leaf);
    this.kernels.fusedElementwise(program, out);
  }

  /** Computes the pending (fused, not yet dispatched) arrays among these, before a kernel uses them. */
  private ready(...arrays: GpuArray[]): void {
    for (const a of arrays) {
      for (const d of this.deferred) d.materialize(a);
      this.producers.materialize(a);
      this.fusion?.materialize(a);
    }
  }

  /** Computes every pending array: deferred layout ops, producers, fused expressions. */
  private materializeAllPending(): void {
    for (const d of this.deferred) d.materializeAll();
    this.producers.materializeAll();
    this.fusion?.materializeAll();
  }

  /** Counts a recorded call; submits when the encoder has grown long. */
  private recorded(): void {
    if (++this.callsSinceFlush >= this.autoFlushCalls) this.flush();
  }

  alloc(dtype: DType, size: number): GpuArray {
    if (dtype === "float64") throw new Error(F64_MESSAGE);
    return this.kernels.alloc(dtype, size);
  }
  release(data: GpuArray): void {
    this.releaseFrom(0, data);
  }
  /** Releases `data` once none of the deferred ops from index `first` on reads it (a pending one of them waits). */
  private releaseFrom(first: number, data: GpuArray): void {
    for (let i = first; i < this.deferred.length; i++) {
      if (this.deferred[i]!.release(data)) return; // released through releaseFrom(i + 1) when none reads it
    }
    this.releaseNow(data);
  }
  private releaseNow(data: GpuArray): void {
    if (this.fusion) this.fusion.release(data);
    else this.releaseForGood(data);
  }
  /** No pending expression reads `data`: a pending producer of it is dropped; a producer's pending input waits for it. */
  private releaseForGood(data: GpuArray): void {
    if (!this.producers.release(data)) this.kernels.release(data);
  }
  upload(values: TypedArray): GpuArray {
    if (values instanceof Float64Array) throw new Error(F64_MESSAGE);
    if (this.fusion && values.length === 1 && values instanceof Float32Array) {
      // A constant: fused consumers take it as a parameter; its buffer is written only if a kernel binds it.
      const array = this.kernels.uploadTarget(values);
      const copy = values.slice();
      this.fusion.noteConstant(array, copy[0]!, () => this.kernels.write(array, copy));
      return array;
    }
    return this.kernels.upload(values);
  }
  read(data: GpuArray): Promise<TypedArray> {
    this.ready(data);
    this.callsSinceFlush = 0;
    return this.kernels.download(data);
  }
  flush(): void {
    this.fusion?.materializeAll();
    this.callsSinceFlush = 0;
    this.kernels.submit();
  }
  /**
   * Runs fn and returns the GPU time of every dispatch it caused (each in its own timestamped pass: see
   * profiler.ts), in order. Needs a device made with { timestamps: true } on an adapter with timestamp-query.
   */
  async profile(fn: () => void | Promise<void>): Promise<DispatchTime[]> {
    const profiler = new KernelProfiler(this.kernels.device);
    this.flush(); // earlier work is not fn's
    this.kernels.profiler = profiler;
    try {
      await fn();
      this.flush();
    } finally {
      this.kernels.profiler = null;
    }
    return profiler.results();
  }
  /** Waits until the GPU has run everything submitted (for timings). */
  async sync(): Promise<void> {
    this.fusion?.materializeAll();
    this.callsSinceFlush = 0;
    await this.kernels.sync();
  }
  dispose(): void {
    this.kernels.destroy();
  }

  startRecording(): (outputs: readonly Storage[]) => Recording {
    // Pending work made before the recording is computed before it: a replay would not redo it.
    this.materializeAllPending();
    this.flush();
    this.kernels.startRecording();
    return (outputs) => {
      for (const o of outputs) if (isGpuArray(o)) this.ready(o); // a pending flip or upsample too, not only fused expressions
      this.flush();
      const recording = this.kernels.stopRecording();
      const kernels = this.kernels;
      return {
        dispatches: recording.dispatches,
        replay: (writes, copies, submit = true, swapped = false) => {
          // Pending work may read the step's buffers (a slice of its last output): it runs before they change.
          this.materializeAllPending();
          if (writes.length > 0) this.flush(); // what was recorded before the writes must see the old values
          for (const [target, values] of writes) {
            if (!isGpuArray(target) || values instanceof Float64Array) throw new Error("webgpu replay: writes go to GPU arrays, from float32 or int32 values");
            if (values.length !== target.length || (values instanceof Float32Array) !== (target.dtype === "float32")) {
              throw new Error(`webgpu replay: ${values.length} ${values.constructor.name} values into a ${target.dtype} array of ${target.length}`);
            }
            kernels.write(target, values);
          }
          kernels.replay(recording, copies.map(([src, dst, offset]) => {
            if (!isGpuArray(src) || !isGpuArray(dst)) throw new Error("webgpu replay: copies are between GPU arrays");
            return [src, dst, offset] as const;
          }), swapped);
          if (submit) this.flush();
        },
        swap: (pairs) => kernels.swapRecording(recording, pairs.map(([a, b]) => {
          if (!isGpuArray(a) || !isGpuArray(b)) throw new Error("webgpu swap: GPU arrays only");
          return [a, b] as const;
        })),
        dispose: () => kernels.releaseRecording(recording),
      };
    };
  }

  unary(op: UnaryOp, x: GpuArray, out: GpuArray): void {
    if (this.fusion && x.dtype === "float32" && out.dtype === "float32" && out.length > 0) {
      for (const d of this.deferred) d.materialize(x);
      this.fusion.unary(op, x, out);
    } else {
      this.ready(x);
      this.kernels.unary(op, x, out);
    }
    this.recorded();
  }
  binary(op: BinaryOp, a: GpuArray, aShape: Shape, b: GpuArray, bShape: Shape, out: GpuArray, outShape: Shape): void {
    if (this.fusion && out.dtype === "float32" && a.dtype === "float32" && b.dtype === "float32" && out.length > 0) {
      for (const d of this.deferred) {
        d.materialize(a);
        d.materialize(b);
      }
      this.fusion.binary(op, a, aShape, b, bShape, out, outShape);
    } else {
      this.ready(a, b);
      this.kernels.binary(op, a, aShape, b, bShape, out, outShape);
    }
    this.recorded();
  }
  select(cond: GpuArray, a: GpuArray, b: GpuArray, out: GpuArray): void {
    this.ready(cond, a, b, out);
    this.kernels.select(cond, a, b, out);
    this.recorded();
  }
  reduce(op: ReduceOp, x: GpuArray, shape: Shape, axes: readonly number[], out: GpuArray): void {
    const program = this.fusion?.programFor(x);
    if (program) {
      for (const leaf of program.leaves) this.producers.materialize(leaf);
      this.kernels.reduceFused(op, program, shape, axes, out);
    } else {
      this.ready(x);
      this.kernels.reduce(op, x, shape, axes, out);
    }
    this.recorded();
  }
  cumulative(op: "sum" | "prod", x: GpuArray, shape: Shape, axis: number, reverse: boolean, out: GpuArray): void {
    this.ready(x, out);
    this.kernels.cumulative(op, x, shape, axis, reverse, out);
    this.recorded();
  }
  matmul(a: GpuArray, b: GpuArray, out: GpuArray, args: MatmulArgs): void {
    const slice = this.slices.fold(b); // B read in its source, at the slice's offset
    this.ready(a, out);
    if (!slice) this.ready(b);
    const source = slice?.source ?? b;
    const base = slice?.offset ?? 0;
    if (this.fusion && out.dtype === "float32") {
      this.producers.record(out, {
        inputs: [a, source],
        run: (o) => this.kernels.matmul(a, source, o, args, this.kernels.encoder(), undefined, base),
        runWithEpilogue: (o, program, leaf, out2) => this.kernels.matmul(a, source, o, args, this.kernels.encoder(), { program, leaf, out2 }, base),
      });
    } else {
      this.kernels.matmul(a, source, out, args, this.kernels.encoder(), undefined, base);
    }
    this.recorded();
  }
  conv2d(x: GpuArray, kernel: GpuArray, out: GpuArray, args: ConvArgs): void {
    const flip = this.flips.fold(kernel);
    const unsliced = flip?.source ?? kernel;
    // A 1x1 convolution is a matmul: it reads a pending slice (a 3x3 kernel's centre tap), flipped or not,
    // in its source at the slice's offset.
    const slice = args.kh === 1 && args.kw === 1 && args.pad === 0 ? this.slices.fold(unsliced) : null;
    this.ready(x, out);
    if (!slice) this.ready(unsliced);
    const source = slice?.source ?? unsliced;
    const base = slice?.offset ?? 0;
    const convolve = (o: GpuArray, epilogue?: GemmEpilogue): boolean => flip
      ? this.kernels.conv2dFlipped(x, source, o, args, this.kernels.encoder(), epilogue, base)
      : this.kernels.conv2d(x, source, o, args, this.kernels.encoder(), epilogue, base);
    if (this.fusion && out.dtype === "float32") {
      this.producers.record(out, {
        inputs: [x, source],
        run: (o) => void convolve(o),
        runWithEpilogue: (o, program, leaf, out2) => convolve(o, { program, leaf, out2 }),
      });
    } else {
      convolve(out);
    }
    this.recorded();
  }
  conv2dKernelGrad(x: GpuArray, g: GpuArray, out: GpuArray, args: ConvArgs): void {
    this.ready(x, g, out);
    if (this.fusion && out.dtype === "float32") {
      // A pending producer, so that the sum of a weight's gradients (add(g1, this)) is its epilogue.
      this.producers.record(out, {
        inputs: [x, g],
        run: (o) => void this.kernels.conv2dKernelGrad(x, g, o, args),
        runWithEpilogue: (o, program, leaf, out2) => this.kernels.conv2dKernelGrad(x, g, o, args, this.kernels.encoder(), { program, leaf, out2 }),
      });
    } else {
      this.kernels.conv2dKernelGrad(x, g, out, args);
    }
    this.recorded();
  }
  transpose(x: GpuArray, shape: Shape, perm: readonly number[], out: GpuArray): void {
    this.ready(x, out);
    this.kernels.transpose(x, shape, perm, out);
    this.recorded();
  }
  copyBox(src: GpuArray, srcShape: Shape, srcBegin: readonly number[], dst: GpuArray, dstShape: Shape, dstBegin: readonly number[], size: Shape): void {
    this.ready(dst);
    const wholeSrc = srcBegin.every((v) => v === 0) && size.every((d, i) => d === srcShape[i]);
    // All of a pending upsample into a box of an NHWC array (concat([upsample(x), skip], -1)): written in place.
    const upsample = wholeSrc && dstShape.length === 4 ? this.upsamples.fold(src) : null;
    if (upsample) {
      this.kernels.upsampleNearestInto(upsample.source, upsample.shape, upsample.height, upsample.width, dst, dstShape, dstBegin);
      this.recorded();
      return;
    }
    // All of a pending float32 expression into a box of rows (a concat part): evaluated in place.
    const dstRows = wholeSrc && dst.dtype === "float32" ? boxRows(dstShape, dstBegin, size) : null;
    const program = dstRows && this.fusion ? this.fusion.programForCopy(src) : null;
    if (dstRows && program) {
      for (const leaf of program.leaves) this.producers.materialize(leaf);
      this.kernels.fusedElementwiseInto(program, src.length, dst, dstRows);
      this.recorded();
      return;
    }
    this.ready(src);
    // All of dst from one contiguous run of src (a slice): a matmul reads it in place, others copy it first.
    const srcRows = dst.dtype === "float32" && dst.length > 0 && dstBegin.every((v) => v === 0) ? boxRows(srcShape, srcBegin, size) : null;
    if (srcRows && srcRows.rows === 1 && srcRows.cols === dst.length) {
      this.slices.record(dst, { source: src, offset: srcRows.base, length: dst.length });
      return;
    }
    this.kernels.copyBox(src, srcShape, srcBegin, dst, dstShape, dstBegin, size);
    this.recorded();
  }
  padInto(x: GpuArray, xShape: Shape, out: GpuArray, outShape: Shape, begin: readonly number[]): void {
    this.ready(x, out);
    this.kernels.padInto(x, xShape, out, outShape, begin);
    this.recorded();
  }
  fill(out: GpuArray, value: number): void {
    this.ready(out);
    this.kernels.fill(out, value);
    this.recorded();
  }
  copy(src: GpuArray, out: GpuArray): void {
    this.ready(src, out);
    if (src.length !== out.length) throw new Error(`webgpu copy: ${src.length} elements into ${out.length}`);
    this.kernels.copyBox(src, [src.length], [0], out, [out.length], [0], [src.length]);
    this.recorded();
  }
  flipKernel(kernel: GpuArray, kh: number, kw: number, c: number, o: number, out: GpuArray): void {
    this.ready(out);
    // A 1x1 kernel's pending slice stays pending: a conv2d folding the flip reads it in place (see conv2d).
    if (!(kh === 1 && kw === 1 && this.slices.has(kernel))) this.ready(kernel);
    this.flips.record(out, { source: kernel, shape: [kh, kw, c, o] }); // run only if something other than conv2d reads it
  }
  gather(x: GpuArray, index: GpuArray, out: GpuArray): void {
    this.ready(x, index, out);
    this.kernels.gather(x, index, out);
    this.recorded();
  }
  scatterAdd(g: GpuArray, index: GpuArray, out: GpuArray, unique = false): void {
    this.ready(g, index, out);
    this.kernels.scatterAdd(g, index, out, { unique });
    this.recorded();
  }
  maxPool2x2(x: GpuArray, shape: Shape, out: GpuArray, argmax: GpuArray): void {
    this.ready(x, out, argmax);
    this.kernels.maxPool2x2(x, shape, out, argmax);
    this.recorded();
  }
  layerNorm(x: GpuArray, rows: number, cols: number, scale: GpuArray, bias: GpuArray, eps: number, out: GpuArray): void {
    this.ready(x, scale, bias, out);
    if (this.fusion && out.dtype === "float32" && rows * cols > 0) {
      this.producers.record(out, {
        inputs: [x, scale, bias],
        run: (o) => this.kernels.layerNorm(x, rows, cols, scale, bias, eps, o),
        runWithEpilogue: (o, program, leaf, out2) => this.kernels.layerNormFused(x, rows, cols, scale, bias, eps, o, program, leaf, out2),
      });
    } else {
      this.kernels.layerNorm(x, rows, cols, scale, bias, eps, out);
    }
    this.recorded();
  }
  layerNormGradX(x: GpuArray, g: GpuArray, rows: number, cols: number, scale: GpuArray, eps: number, out: GpuArray): void {
    this.ready(x, scale, out);
    this.kernels.layerNormGradX(x, this.cotangent(g, 3), rows, cols, scale, eps, out);
    this.recorded();
  }
  layerNormGradXGradX(x: GpuArray, g: GpuArray, h: GpuArray, rows: number, cols: number, scale: GpuArray, eps: number, out: GpuArray): void {
    this.ready(x, h, scale, out);
    this.kernels.layerNormGradXGradX(x, this.cotangent(g, 4), h, rows, cols, scale, eps, out);
    this.recorded();
  }

  /**
   * A layer norm gradient kernel's cotangent: a pending expression (e.g. g * gelu'(h)) as its program, for the
   * kernel to evaluate where it loads it (it stays pending), when it fits beside the kernel's `buffers`;
   * otherwise the array, computed.
   */
  private cotangent(g: GpuArray, buffers: number): GpuArray | FusedProgram<GpuArray> {
    const program = this.fusion?.programForInput(g, FUSED_ELEMENTWISE_PARAM_BASE);
    if (program && program.leaves.length + buffers <= this.kernels.maxStorageBuffers) {
      for (const leaf of program.leaves) this.producers.materialize(leaf);
      return program;
    }
    this.ready(g);
    return g;
  }
  upsampleNearest(x: GpuArray, shape: Shape, height: number, width: number, out: GpuArray): void {
    this.ready(x, out);
    this.upsamples.record(out, { source: x, shape, height, width }); // run only if something other than a copy into a box reads it
  }
  upsampleNearestGrad(g: GpuArray, shape: Shape, height: number, width: number, out: GpuArray): void {
    this.ready(g, out);
    this.kernels.upsampleNearestGrad(g, shape, height, width, out);
    this.recorded();
  }
  adamw(p: GpuArray, g: GpuArray, m: GpuArray, v: GpuArray, scalars: GpuArray, args: AdamWArgs, outP: GpuArray, outM: GpuArray, outV: GpuArray): void {
    this.adamwMany([{ p, g, m, v, outP, outM, outV }], scalars, args);
  }
  adamwMany(items: readonly AdamWItem<GpuArray>[], scalars: GpuArray, args: AdamWArgs): void {
    for (const { p, g, m, v, outP, outM, outV } of items) this.ready(p, g, m, v, outP, outM, outV);
    this.ready(scalars);
    this.kernels.adamw(items, scalars, args);
    this.recorded();
  }
  sumSquares(arrays: readonly GpuArray[], clip: number | null, out: GpuArray): void {
    this.ready(...arrays, out);
    this.kernels.sumSquares(arrays, clip, out);
    this.recorded();
  }
  randomNormal(key: GpuArray, out: GpuArray): void {
    this.ready(key, out);
    this.kernels.randomNormal(key, out);
    this.recorded();
  }
  cast(x: GpuArray, out: GpuArray): void {
    this.ready(x, out);
    this.kernels.cast(x, out);
    this.recorded();
  }
}

/**
 * The box of `size` at `begin` in a row-major array of `shape` as `rows` runs of `cols` contiguous elements,
 * `rowStride` apart, from element `base` (one row: a contiguous run); null if it is not that.
 */
function boxRows(shape: Shape, begin: readonly number[], size: Shape): { base: number; rows: number; cols: number; rowStride: number } | null {
  const strides = stridesOf(shape);
  const c = coalesce(size, [strides]);
  const base = begin.reduce((acc, v, i) => acc + v * strides[i]!, 0);
  const [s, st] = [c.sizes, c.strides[0]!];
  if (s.length === 0) return { base, rows: 1, cols: 1, rowStride: 1 };
  if (st[s.length - 1] !== 1 || s.length > 2) return null;
  return s.length === 2 ? { base, rows: s[0]!, cols: s[1]!, rowStride: st[0]! } : { base, rows: 1, cols: s[0]!, rowStride: 0 };
}

/** Whether storage is a GPU array (for code that must not touch it on the host). */
export function isGpuArray(s: Storage): s is GpuArray {
  return !ArrayBuffer.isView(s) && "buffer" in s;
}
