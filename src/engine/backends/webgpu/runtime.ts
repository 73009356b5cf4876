/// <reference types="@webgpu/types" />
// GpuRuntime: what every WebGPU kernel stands on: memory (a buffer pool with stream-ordered reuse),
// command encoding and submission, pipelines and bind groups (cached), recording and replay of a step.
// WebGpuKernels (kernels.ts) adds the kernels; each encodes its dispatches through run().
//
// - Every kernel method takes an optional GPUCommandEncoder (default: the runtime's own, created on
//   demand) and records compute dispatches into one open compute pass; nothing is read back, so a whole
//   training step can be encoded and then sent with one submit(). download() submits and awaits.
// - Outputs are passed in (alloc()), as in the Backend interface; an output must not alias an input.
// - Buffers come from a pool by size class; released buffers are reused in stream order (see buffers.ts).
// - Parameters go to a uniform arena, one 256-byte slot per dispatch, written once per submit.
import { BufferPool, MAP_MODE_READ, ParamArena, USAGE } from "./buffers.ts";
import type { GpuAdapterSummary, GpuContext } from "./device.ts";
import { Recording, type ParamSlot } from "./recording.ts";
import type { KernelProfiler } from "./profiler.ts";
import type { GpuArray, GpuDType, KernelStats, WebGpuKernelsOptions } from "./types.ts";

/** A GpuArray as the runtime hands it out: `released` guards against a second release. */
interface PooledArray extends GpuArray {
  released: boolean;
}

export type Encoder = GPUCommandEncoder;
export type Grid = [number, number, number];

/** Bind groups kept for reuse (a sampler step at features 64 records 172 dispatches, a training step ~3,300). */
const BIND_GROUP_CACHE_SIZE = 16384;

export class GpuRuntime {
  readonly device: GPUDevice;
  /** Adapter information when created through WebGpuKernels.create(). */
  readonly info: GpuAdapterSummary | null;
  protected readonly context: GpuContext | null;
  private readonly pool: BufferPool;
  private readonly readback: BufferPool;
  private readonly params: ParamArena;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Each pipeline's bind-group layout: getBindGroupLayout() makes a new wrapper object on every call. */
  private readonly layouts = new Map<GPUComputePipeline, GPUBindGroupLayout>();
  /**
   * Bind groups by (pipeline, parameter slot, buffers). createBindGroup costs ~18 us in Dawn's Node binding,
   * 5x the rest of a dispatch's recording. A sampler step repeats the same dispatches on the same pooled
   * buffers and parameter slots, so from its second step on every bind group comes from here (measured:
   * 172 of 172 per step at features 64). A training step reuses few (~8%): its buffers do not recur in order.
   * Cleared when the pool destroys buffers (trim, destroy) and when it reaches BIND_GROUP_CACHE_SIZE.
   */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private bindGroupsCreated = 0;
  private readonly modules = new Map<string, GPUShaderModule>();
  /** Each encoder's open compute pass and the pipeline last set on it (setPipeline is skipped when unchanged). */
  private readonly passes = new Map<Encoder, { pass: GPUComputePassEncoder; pipeline: GPUComputePipeline | null }>();
  private current: Encoder | null = null;
  private readonly errors: string[] = [];
  protected readonly maxGroups: number;
  /** Storage buffers a kernel may bind (options.maxStorageBuffers, at most the device's limit). */
  readonly maxStorageBuffers: number;
  private destroyed = false;
  /** Open while a step is recorded for replay (startRecording .. stopRecording). */
  private recording: Recording | null = null;
  /** While set, every dispatch runs in its own timestamped pass (WebGpuBackend.profile). */
  profiler: KernelProfiler | null = null;
  private dispatchCount = 0;
  private submitCount = 0;
  private passCount = 0;

  constructor(device: GPUDevice, options: Pick<WebGpuKernelsOptions, "maxStorageBuffers"> = {}, context: GpuContext | null = null) {
    this.device = device;
    this.context = context;
    this.info = context?.info ?? null;
    this.maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    this.maxStorageBuffers = Math.min(options.maxStorageBuffers ?? Infinity, device.limits.maxStorageBuffersPerShaderStage);
    if (this.maxStorageBuffers < 4) throw new Error(`webgpu: kernels need 4 storage buffers per stage, got ${this.maxStorageBuffers}`);
    const storage = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;
    this.pool = new BufferPool(device, storage, "td");
    this.readback = new BufferPool(device, USAGE.MAP_READ | USAGE.COPY_DST, "readback");
    this.params = new ParamArena(device);
    device.addEventListener("uncapturederror", (ev) => {
      this.errors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
    void device.lost.then((info) => {
      if (!this.destroyed && info.reason !== "destroyed") this.errors.push(`device lost (${info.reason}): ${info.message}`);
    });
  }

  // ---- memory -------------------------------------------------------------------------------

  alloc(dtype: GpuDType | "float64", length: number): GpuArray {
    if (dtype === "float64") throw new Error("webgpu: float64 is not supported (WGSL has no f64); keep float64 tensors on the CPU");
    const a: PooledArray = { buffer: this.pool.acquire(length * 4, false), length, dtype, released: false };
    return a;
  }

  /** Hands the storage back; commands already encoded may still use it (they run first). */
  release(a: GpuArray): void {
    // A flag on the array itself: a WeakSet here cost ~0.5 µs per release, ~2 ms per training step.
    const pooled = a as PooledArray;
    if (pooled.released) throw new Error("webgpu: GpuArray released twice");
    pooled.released = true;
    if (this.recording?.written.has(a.buffer)) this.recording.heldBack.push(a.buffer); // a replay will not write it again
    else this.pool.release(a.buffer);
  }

  /** Copies values into a new GPU array (queue.writeBuffer: it happens before any command not yet submitted). */
  upload(data: Float32Array | Int32Array | Float64Array): GpuArray {
    const a = this.uploadTarget(data);
    this.write(a, data as Float32Array | Int32Array); // (uploadTarget refuses float64)
    return a;
  }

  /**
   * The array upload() would fill, not yet written: write() must follow before the next submit that runs
   * a command reading it (a buffer taken here has no unsubmitted readers, so writing later is as good).
   */
  uploadTarget(data: Float32Array | Int32Array | Float64Array): GpuArray {
    if (data instanceof Float64Array) throw new Error("webgpu: float64 is not supported (WGSL has no f64); cast to float32 first");
    const dtype: GpuDType = data instanceof Float32Array ? "float32" : "int32";
    // While recording, not a buffer the recording has used: a replay would rewrite it.
    const buffer = this.recording ? this.pool.acquireOutside(data.length * 4, this.recording.buffers) : this.pool.acquire(data.length * 4, true);
    this.recording?.written.add(buffer);
    const a: PooledArray = { buffer, length: data.length, dtype, released: false };
    return a;
  }

  /** Writes an uploadTarget()'s values. */
  write(a: GpuArray, data: Float32Array | Int32Array): void {
    if (data.length === 0) return;
    this.recording?.written.add(a.buffer);
    // Views of shared memory (the Wasm heap) are copied first: writeBuffer wants an ordinary buffer.
    const src = data.buffer instanceof ArrayBuffer ? data : data.slice();
    this.device.queue.writeBuffer(a.buffer, 0, src.buffer as ArrayBuffer, src.byteOffset, src.byteLength);
  }

  /** Submits pending work, then copies the values back (refused, at once, while recording). */
  download(a: GpuArray): Promise<Float32Array | Int32Array> {
    if (this.recording) throw new Error("webgpu: no reading back while a step is recorded for replay");
    return this.downloadNow(a);
  }

  private async downloadNow(a: GpuArray): Promise<Float32Array | Int32Array> {
    const out = a.dtype === "float32" ? new Float32Array(a.length) : new Int32Array(a.length);
    if (a.length === 0) {
      this.submit();
      return out;
    }
    const bytes = a.length * 4;
    const staging = this.readback.acquire(bytes, true);
    const enc = this.encoder();
    this.endPass(enc);
    enc.copyBufferToBuffer(a.buffer, 0, staging, 0, bytes);
    this.submit();
    await staging.mapAsync(MAP_MODE_READ, 0, bytes);
    const mapped = staging.getMappedRange(0, bytes);
    if (out instanceof Float32Array) out.set(new Float32Array(mapped));
    else out.set(new Int32Array(mapped));
    staging.unmap();
    this.readback.release(staging, true);
    this.throwIfFailed();
    return out;
  }

  // ---- encoding and submission ---------------------------------------------------------------

  /** The kernels' own command encoder (created on demand; submit() sends it). */
  encoder(): Encoder {
    this.checkAlive();
    this.current ??= this.device.createCommandEncoder({ label: "td-kernels" });
    return this.current;
  }

  /** Ends the open compute pass on an encoder of your own and finishes it; pass the result to submit(). */
  finish(enc: Encoder): GPUCommandBuffer {
    this.endPass(enc);
    return enc.finish();
  }

  /**
   * Writes the parameters of every dispatch encoded since the last submit, then submits the kernels'
   * own encoder followed by `extra` (command buffers from finish()). Encoders must be submitted in the
   * order they were encoded in, since released buffers are reused in encoding order.
   */
  submit(extra: readonly GPUCommandBuffer[] = []): void {
    this.checkAlive();
    const buffers: GPUCommandBuffer[] = [];
    if (this.current) {
      buffers.push(this.finish(this.current));
      this.current = null;
    }
    buffers.push(...extra);
    this.params.flush(this.device.queue);
    this.recording?.arena.flush(this.device.queue);
    if (buffers.length) {
      this.device.queue.submit(buffers);
      this.submitCount++;
    }
    this.pool.settle();
    this.throwIfFailed();
  }

  // ---- recording and replay (recording.ts) -------------------------------------------------------

  /** Submits what is pending, then records every command until stopRecording(), besides running it. */
  startRecording(): void {
    this.checkAlive();
    if (this.recording) throw new Error("webgpu: a step is already being recorded");
    this.submit();
    this.recording = new Recording(new ParamArena(this.device, true));
  }

  /** Submits and ends the recording; its buffers stay out of the pool until releaseRecording(). */
  stopRecording(): Recording {
    const recording = this.recording;
    if (!recording) throw new Error("webgpu: stopRecording without startRecording");
    this.submit();
    this.recording = null;
    recording.open = false;
    recording.withdrawn = this.pool.withdraw(recording.buffers);
    return recording;
  }

  /** Gives a recording its swapped commands: each pair's buffers exchanged (recording.ts). */
  swapRecording(recording: Recording, pairs: readonly (readonly [GpuArray, GpuArray])[]): void {
    for (const [a, b] of pairs) {
      if (a.length !== b.length || a.dtype !== b.dtype) throw new Error(`webgpu: swapped arrays differ (${a.length} ${a.dtype}, ${b.length} ${b.dtype})`);
      if (!recording.buffers.has(a.buffer) || !recording.buffers.has(b.buffer)) throw new Error("webgpu: a swapped array is not used by the recording");
    }
    recording.swap(pairs.map(([a, b]) => [a.buffer, b.buffer] as const), (pipeline, slot, storage) => this.makeBindGroup(pipeline, slot, storage));
  }

  /**
   * Encodes a recording's commands again (its swapped ones with `swapped`), after `copies`: [source,
   * destination, source offset in elements].
   */
  replay(recording: Recording, copies: readonly (readonly [GpuArray, GpuArray, number])[] = [], swapped = false): void {
    this.checkAlive();
    if (recording.open || recording.released) throw new Error(`webgpu: replay of a recording that is ${recording.open ? "still open" : "released"}`);
    if (this.recording) throw new Error("webgpu: no replay while recording");
    const enc = this.encoder();
    for (const [src, dst, offset] of copies) {
      if (!(offset >= 0 && offset + dst.length <= src.length)) throw new Error(`webgpu replay: elements ${offset}..${offset + dst.length} of ${src.length}`);
      this.copy(enc, src.buffer, offset * 4, dst.buffer, 0, dst.length * 4);
    }
    const commands = swapped ? recording.swapped : recording.commands;
    if (!commands) throw new Error("webgpu: replay of swapped commands that were never made");
    for (const c of commands) {
      if (c.kind === "dispatch") this.encodeDispatch(enc, c.pipeline, c.bindGroup, c.grid);
      else if (c.kind === "copy") this.copy(enc, c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
      else this.clear(enc, c.buffer, c.bytes);
    }
  }

  /** Hands a recording's buffers back to the pool (commands already submitted still run first). */
  releaseRecording(recording: Recording): void {
    if (recording.released) return;
    if (recording.open) throw new Error("webgpu: release of a recording that is still open");
    recording.released = true;
    if (this.destroyed) return;
    // Submitted first, no command waiting to be submitted reads them: uploads may take them at once.
    this.submit();
    for (const b of [...recording.withdrawn, ...recording.heldBack]) this.pool.release(b, true);
    // The arena's buffers are destroyed once the GPU is done with them; forget the bind groups naming them.
    this.bindGroups.clear();
    void this.device.queue.onSubmittedWorkDone().then(() => recording.arena.destroy());
  }

  /** Submits and waits until the GPU has finished everything (for timing). */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.throwIfFailed();
  }

  stats(): KernelStats {
    return {
      dispatches: this.dispatchCount,
      bindGroupsCreated: this.bindGroupsCreated,
      submits: this.submitCount,
      passes: this.passCount,
      pipelines: this.pipelines.size,
      allocatedBytes: this.pool.allocatedBytes,
      freeBytes: this.pool.freeBytes(),
    };
  }

  /** The pipelines made so far, as "kernel key@entry point" (which kernel variants ran: diagnostics, tests). */
  pipelineKeys(): string[] {
    return [...this.pipelines.keys()];
  }

  /** Frees the pooled buffers that are not in use. */
  trim(): void {
    this.bindGroups.clear(); // they may refer to the buffers trim destroys
    this.pool.trim();
    this.readback.trim();
  }

  /** Destroys the device when these kernels created it (create()); otherwise only their own buffers. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.passes.clear();
    this.current = null;
    this.bindGroups.clear();
    this.pool.trim();
    this.readback.trim();
    this.params.destroy();
    this.context?.destroy();
  }

  protected checkAlive(): void {
    if (this.destroyed) throw new Error("webgpu: kernels used after destroy()");
  }

  private throwIfFailed(): void {
    if (this.errors.length) {
      const all = this.errors.splice(0);
      throw new Error(`webgpu: ${all.length} GPU error(s): ${all.join(" | ")}`);
    }
  }

  protected endPass(enc: Encoder): void {
    const open = this.passes.get(enc);
    if (open) {
      open.pass.end();
      this.passes.delete(enc);
    }
  }

  private pipeline(key: string, source: () => string, entry: string): GPUComputePipeline {
    const pkey = `${key}@${entry}`;
    let p = this.pipelines.get(pkey);
    if (p) return p;
    let module = this.modules.get(key);
    if (!module) {
      module = this.device.createShaderModule({ code: source(), label: key });
      this.modules.set(key, module);
      void module.getCompilationInfo().then((info) => {
        const errs = info.messages.filter((m) => m.type === "error");
        if (errs.length) this.errors.push(`shader ${key}: ${errs.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ")}`);
      });
    }
    p = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: entry }, label: pkey });
    this.pipelines.set(pkey, p);
    return p;
  }

  /** Encodes one dispatch: parameters in binding 0, the buffers in bindings 1, 2, ... */
  protected run(enc: Encoder, key: string, source: () => string, entry: string, params: readonly number[], buffers: readonly GPUBuffer[], grid: Grid): void {
    this.checkAlive();
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return;
    for (const g of grid) if (g > this.maxGroups) throw new Error(`webgpu ${key}: ${g} workgroups exceed the limit ${this.maxGroups}`);
    const pipeline = this.pipeline(key, source, entry);
    const slot = (this.recording?.arena ?? this.params).push(params);
    let cacheKey = `${key}@${entry}|${this.bufferId(slot.buffer)}:${slot.offset}`;
    for (const buffer of buffers) cacheKey += `,${this.bufferId(buffer)}`;
    let bindGroup = this.bindGroups.get(cacheKey);
    if (!bindGroup) {
      bindGroup = this.makeBindGroup(pipeline, slot, buffers);
      if (this.bindGroups.size >= BIND_GROUP_CACHE_SIZE) this.bindGroups.clear();
      this.bindGroups.set(cacheKey, bindGroup);
    }
    this.encodeDispatch(enc, pipeline, bindGroup, grid);
    this.recording?.dispatch(pipeline, bindGroup, grid, slot, buffers);
  }

  private makeBindGroup(pipeline: GPUComputePipeline, slot: ParamSlot, buffers: readonly GPUBuffer[]): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: slot.buffer, offset: slot.offset, size: ParamArena.SLOT } }];
    buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
    let layout = this.layouts.get(pipeline);
    if (!layout) {
      layout = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, layout);
    }
    this.bindGroupsCreated++;
    return this.device.createBindGroup({ layout, entries });
  }

  private encodeDispatch(enc: Encoder, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: readonly [number, number, number]): void {
    if (this.profiler) {
      this.endPass(enc);
      this.profiler.dispatch(enc, pipeline, bindGroup, grid);
      this.dispatchCount++;
      return;
    }
    let open = this.passes.get(enc);
    if (!open) {
      open = { pass: enc.beginComputePass(), pipeline: null };
      this.passes.set(enc, open);
      this.passCount++;
    }
    if (open.pipeline !== pipeline) {
      open.pass.setPipeline(pipeline);
      open.pipeline = pipeline;
    }
    open.pass.setBindGroup(0, bindGroup);
    open.pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    this.dispatchCount++;
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextBufferId++));
    return id;
  }

  /** Workgroups for `groups` 1-D workgroups, folded into x and y. */
  protected groups(groups: number): Grid {
    if (groups <= this.maxGroups) return [groups, 1, 1];
    const y = Math.ceil(groups / this.maxGroups);
    return [Math.ceil(groups / y), y, 1];
  }

  /** One invocation per element, 256 per workgroup. */
  protected grid(n: number): Grid {
    return this.groups(Math.ceil(n / 256));
  }

  protected temp(dtype: GpuDType, length: number): GpuArray {
    return this.alloc(dtype, length);
  }

  protected copy(enc: Encoder, src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.endPass(enc);
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.recording?.copy(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Whether a compute pass is open on `enc` (a clear or copy would end it). */
  protected passOpen(enc: Encoder): boolean {
    return this.passes.has(enc);
  }

  protected clear(enc: Encoder, buffer: GPUBuffer, bytes: number): void {
    if (bytes === 0) return;
    this.endPass(enc);
    enc.clearBuffer(buffer, 0, bytes);
    this.recording?.clear(buffer, bytes);
  }
}
