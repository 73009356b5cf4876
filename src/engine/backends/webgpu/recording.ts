/// <reference types="@webgpu/types" />
// A recording: the commands of one step, kept so that the step can be encoded again without running the
// frontend (no tensors, no fusion, no bind-group lookups): ~3 Dawn calls per dispatch. WebGPU has no
// reusable compute command buffers, so a replay re-encodes the list; everything it refers to stays put:
// - pipelines and bind groups are the ones made while recording;
// - parameters live in the recording's own arena, whose slots are never reused;
// - the pool buffers the commands touch are withdrawn from the pool until the recording is released;
// - buffers written from the host while recording (uploads, constants) are never reused inside it, since
//   a replay does not write them again.
// A step whose outputs feed its next run's inputs (a training step's weights and moments) also keeps the
// same commands with each such input and output buffer exchanged (`swapped`): replays alternate between
// the two, so the state moves between two sets of buffers instead of being copied back every step.
import type { ParamArena } from "./buffers.ts";

/** Where a dispatch's parameters live (its binding 0). */
export interface ParamSlot {
  readonly buffer: GPUBuffer;
  readonly offset: number;
}

export type RecordedCommand =
  | {
    readonly kind: "dispatch"; readonly pipeline: GPUComputePipeline; readonly bindGroup: GPUBindGroup; readonly grid: readonly [number, number, number];
    /** The bind group's entries: parameters, then the storage buffers from binding 1 on. */
    readonly params: ParamSlot; readonly storage: readonly GPUBuffer[];
  }
  | { readonly kind: "copy"; readonly src: GPUBuffer; readonly srcOffset: number; readonly dst: GPUBuffer; readonly dstOffset: number; readonly bytes: number }
  | { readonly kind: "clear"; readonly buffer: GPUBuffer; readonly bytes: number };

export class Recording {
  readonly commands: RecordedCommand[] = [];
  /** The commands with the feedback buffers exchanged (see the file header); null until made. */
  swapped: RecordedCommand[] | null = null;
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

  dispatch(pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: readonly [number, number, number], params: ParamSlot, storage: readonly GPUBuffer[]): void {
    this.commands.push({ kind: "dispatch", pipeline, bindGroup, grid: [grid[0], grid[1], grid[2]], params, storage: [...storage] });
    this.buffers.add(params.buffer);
    for (const b of storage) this.buffers.add(b);
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

  /**
   * Makes `swapped`: every command with the buffers of each pair exchanged; a dispatch that binds one gets a
   * bind group from `bindGroupFor(pipeline, params, storage)`. Sound because a step never writes its inputs
   * and the swap is a renaming: each buffer plays the other's part throughout.
   */
  swap(pairs: readonly (readonly [GPUBuffer, GPUBuffer])[], bindGroupFor: (pipeline: GPUComputePipeline, params: ParamSlot, storage: readonly GPUBuffer[]) => GPUBindGroup): void {
    const other = new Map<GPUBuffer, GPUBuffer>();
    for (const [a, b] of pairs) {
      if (a === b || other.has(a) || other.has(b)) throw new Error("webgpu: swapped buffers must be distinct pairs");
      other.set(a, b);
      other.set(b, a);
    }
    const rename = (b: GPUBuffer) => other.get(b) ?? b;
    this.swapped = this.commands.map((c): RecordedCommand => {
      if (c.kind === "copy") return { ...c, src: rename(c.src), dst: rename(c.dst) };
      if (c.kind === "clear") return { ...c, buffer: rename(c.buffer) };
      if (!c.storage.some((b) => other.has(b))) return c;
      const storage = c.storage.map(rename);
      return { ...c, storage, bindGroup: bindGroupFor(c.pipeline, c.params, storage) };
    });
  }

  /** Dispatches recorded (copies and clears not counted). */
  get dispatches(): number {
    let n = 0;
    for (const c of this.commands) if (c.kind === "dispatch") n++;
    return n;
  }
}
