/// <reference types="@webgpu/types" />
// A recording: the commands of one step, kept so that the step can be encoded again without running the
// frontend (no tensors, no fusion, no bind-group lookups): ~3 Dawn calls per dispatch. WebGPU has no
// reusable compute command buffers, so a replay re-encodes the list; everything it refers to stays put:
// - pipelines and bind groups are the ones made while recording;
// - parameters live in the recording's own arena, whose slots are never reused;
// - the pool buffers the commands touch are withdrawn from the pool until the recording is released;
// - buffers written from the host while recording (uploads, constants) are never reused inside it, since
//   a replay does not write them again.
import type { ParamArena } from "./buffers.ts";

export type RecordedCommand =
  | { readonly kind: "dispatch"; readonly pipeline: GPUComputePipeline; readonly bindGroup: GPUBindGroup; readonly grid: readonly [number, number, number] }
  | { readonly kind: "copy"; readonly src: GPUBuffer; readonly srcOffset: number; readonly dst: GPUBuffer; readonly dstOffset: number; readonly bytes: number }
  | { readonly kind: "clear"; readonly buffer: GPUBuffer; readonly bytes: number };

export class Recording {
  readonly commands: RecordedCommand[] = [];
  /** Every buffer a command binds, copies or clears. */
  readonly buffers = new Set<GPUBuffer>();
  /** Buffers written by the host while recording: held back from the pool until release. */
  readonly written = new Set<GPUBuffer>();
  /** Of those, the ones the frontend has released (returned to the pool with the recording). */
  readonly heldBack: GPUBuffer[] = [];
  /** Pool buffers taken out of the free lists when the recording stopped. */
  withdrawn: GPUBuffer[] = [];
  open = true;
  released = false;

  constructor(readonly arena: ParamArena) {}

  dispatch(pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: readonly [number, number, number], buffers: readonly GPUBuffer[]): void {
    this.commands.push({ kind: "dispatch", pipeline, bindGroup, grid: [grid[0], grid[1], grid[2]] });
    for (const b of buffers) this.buffers.add(b);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.commands.push({ kind: "copy", src, srcOffset, dst, dstOffset, bytes });
    this.buffers.add(src);
    this.buffers.add(dst);
  }

  clear(buffer: GPUBuffer, bytes: number): void {
    this.commands.push({ kind: "clear", buffer, bytes });
    this.buffers.add(buffer);
  }

  /** Dispatches recorded (copies and clears not counted). */
  get dispatches(): number {
    let n = 0;
    for (const c of this.commands) if (c.kind === "dispatch") n++;
    return n;
  }
}
