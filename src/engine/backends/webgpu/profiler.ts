/// <reference types="@webgpu/types" />
// GPU time per dispatch, for profiling on a real GPU (bench/webgpu-profile.ts): while a profiler is set on
// the kernels, every dispatch runs in its own compute pass whose beginning and end write timestamps
// (the device needs the "timestamp-query" feature: GpuDeviceOptions.timestamps). A pass per dispatch adds
// the passes' own cost, so the times are for comparing kernels, not for adding up to a step's wall time.
import { MAP_MODE_READ, USAGE } from "./buffers.ts";

/** One timed dispatch: the pipeline's label ("<kernel key>@<entry>"), its workgroup grid and its GPU time. */
export interface DispatchTime {
  readonly label: string;
  readonly grid: readonly [number, number, number];
  readonly nanoseconds: number;
}

const QUERIES_PER_SET = 4096; // WebGPU's limit per query set: 2,048 dispatches
const QUERY_RESOLVE = 0x200; // GPUBufferUsage.QUERY_RESOLVE

export class KernelProfiler {
  private readonly sets: GPUQuerySet[] = [];
  private readonly dispatches: { label: string; grid: readonly [number, number, number] }[] = [];

  constructor(private readonly device: GPUDevice) {
    if (!device.features.has("timestamp-query")) {
      throw new Error("webgpu profiler: the device has no timestamp-query feature (create it with { timestamps: true } on an adapter that offers it)");
    }
  }

  /** Encodes one dispatch in its own timestamped pass. */
  dispatch(enc: GPUCommandEncoder, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: readonly [number, number, number]): void {
    const index = this.dispatches.length;
    const setIndex = Math.floor((2 * index) / QUERIES_PER_SET);
    if (setIndex === this.sets.length) this.sets.push(this.device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }));
    const first = (2 * index) % QUERIES_PER_SET;
    const pass = enc.beginComputePass({ timestampWrites: { querySet: this.sets[setIndex]!, beginningOfPassWriteIndex: first, endOfPassWriteIndex: first + 1 } });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    pass.end();
    this.dispatches.push({ label: pipeline.label, grid: [grid[0], grid[1], grid[2]] });
  }

  /** Reads the timestamps back (after every profiled dispatch was submitted) and frees the query sets. */
  async results(): Promise<DispatchTime[]> {
    const out: DispatchTime[] = [];
    for (const [s, set] of this.sets.entries()) {
      const count = Math.min(QUERIES_PER_SET, 2 * this.dispatches.length - s * QUERIES_PER_SET);
      const bytes = count * 8;
      const resolved = this.device.createBuffer({ size: bytes, usage: QUERY_RESOLVE | USAGE.COPY_SRC });
      const staging = this.device.createBuffer({ size: bytes, usage: USAGE.MAP_READ | USAGE.COPY_DST });
      const enc = this.device.createCommandEncoder({ label: "td-profiler" });
      enc.resolveQuerySet(set, 0, count, resolved, 0);
      enc.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(MAP_MODE_READ);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      for (let q = 0; q < count; q += 2) {
        const d = this.dispatches[(s * QUERIES_PER_SET + q) / 2]!;
        out.push({ label: d.label, grid: d.grid, nanoseconds: Number(stamps[q + 1]! - stamps[q]!) });
      }
      for (const b of [resolved, staging]) b.destroy();
      set.destroy();
    }
    return out;
  }
}
