/// <reference types="@webgpu/types" />
// GPU memory for the kernels: a buffer pool with size classes and the per-dispatch parameter arena.

/** GPUBufferUsage / GPUMapMode values (spelled out so nothing depends on Dawn's globals being installed). */
export const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const MAP_MODE_READ = 0x1;

/**
 * Size classes: 256 bytes, then four per power of two (at most 25% waste), as the Wasm heap.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

/**
 * Storage buffers reused by size class. A released buffer may still be read by commands that are
 * encoded but not yet submitted, so it goes to `recent` first:
 * - kernel outputs may take `recent` buffers (stream order: the new writer is encoded after every
 *   earlier reader, and the GPU runs one queue in order);
 * - uploads (queue.writeBuffer, which runs before any not-yet-submitted command) take only `settled`
 *   buffers, which no unsubmitted command refers to. `settle()` (on every submit) moves recent to settled.
 */
export class BufferPool {
  private settled = new Map<number, GPUBuffer[]>();
  private recent = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  /** Creation order of each buffer: settle() sorts the free lists by it (see there). */
  private readonly order = new WeakMap<GPUBuffer, number>();
  /** Bytes in buffers created by the pool (live or free). */
  allocatedBytes = 0;
  created = 0;

  constructor(private readonly device: GPUDevice, private readonly usage: number, private readonly label: string) {}

  acquire(bytes: number, forQueueWrite: boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const fromRecent = forQueueWrite ? undefined : this.recent.get(size)?.pop();
    const buf = fromRecent ?? this.settled.get(size)?.pop();
    if (buf) return buf;
    const created = this.device.createBuffer({ size, usage: this.usage, label: `${this.label}#${this.created}` });
    this.sizes.set(created, size);
    this.order.set(created, this.created);
    this.allocatedBytes += size;
    this.created++;
    return created;
  }

  release(buf: GPUBuffer, settledNow = false): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error("BufferPool.release: buffer does not belong to this pool");
    const map = settledNow ? this.settled : this.recent;
    let list = map.get(size);
    if (!list) map.set(size, (list = []));
    list.push(buf);
  }

  /**
   * Moves recent to settled, and sorts each free list by creation order (newest first, so pop() hands out
   * the oldest). Then the buffers a step gets depend only on which buffers are free, not on the order they
   * were freed in earlier steps: a training loop whose live set alternates between two generations of
   * weights reuses the same buffers every other step, and so its cached bind groups.
   */
  settle(): void {
    for (const [size, list] of this.recent) {
      let into = this.settled.get(size);
      if (!into) this.settled.set(size, (into = []));
      into.push(...list);
    }
    this.recent.clear();
    for (const list of this.settled.values()) list.sort((a, b) => this.order.get(b)! - this.order.get(a)!);
  }

  /** Destroys the free (settled) buffers. */
  trim(): void {
    for (const list of this.settled.values()) {
      for (const b of list) {
        this.allocatedBytes -= this.sizes.get(b) ?? 0;
        b.destroy();
      }
    }
    this.settled.clear();
  }

  freeBytes(): number {
    let n = 0;
    for (const map of [this.settled, this.recent]) for (const [size, list] of map) n += size * list.length;
    return n;
  }
}

/**
 * Parameters of every dispatch since the last submit, 256 bytes each (the largest minimum uniform
 * offset alignment), staged on the CPU and written with one queue.writeBuffer per chunk just before
 * the submit. Slots are reused after a submit: the write of the next batch is ordered after it on the queue.
 */
export class ParamArena {
  static readonly SLOT = 256;
  private readonly slotsPerChunk = 256;
  private readonly chunks: { buffer: GPUBuffer; staging: Uint32Array }[] = [];
  private used = 0;

  constructor(private readonly device: GPUDevice) {}

  /** Stores the words (<= 64) and returns where they live. */
  push(words: ArrayLike<number>): { buffer: GPUBuffer; offset: number } {
    if (words.length > ParamArena.SLOT / 4) throw new Error(`ParamArena: ${words.length} words exceed a slot`);
    const chunkIndex = Math.floor(this.used / this.slotsPerChunk);
    const slot = this.used % this.slotsPerChunk;
    if (chunkIndex === this.chunks.length) {
      this.chunks.push({
        buffer: this.device.createBuffer({
          size: this.slotsPerChunk * ParamArena.SLOT,
          usage: USAGE.UNIFORM | USAGE.COPY_DST,
          label: `params#${chunkIndex}`,
        }),
        staging: new Uint32Array((this.slotsPerChunk * ParamArena.SLOT) / 4),
      });
    }
    const chunk = this.chunks[chunkIndex]!;
    const base = (slot * ParamArena.SLOT) / 4;
    chunk.staging.fill(0, base, base + ParamArena.SLOT / 4);
    for (let i = 0; i < words.length; i++) chunk.staging[base + i] = words[i]! >>> 0;
    this.used++;
    return { buffer: chunk.buffer, offset: slot * ParamArena.SLOT };
  }

  /** Writes the staged slots to the GPU (queue order) and starts over. */
  flush(queue: GPUQueue): void {
    let remaining = this.used;
    for (const chunk of this.chunks) {
      if (remaining <= 0) break;
      const slots = Math.min(remaining, this.slotsPerChunk);
      queue.writeBuffer(chunk.buffer, 0, chunk.staging.buffer, 0, slots * ParamArena.SLOT);
      remaining -= slots;
    }
    this.used = 0;
  }

  get pending(): number {
    return this.used;
  }

  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
    this.chunks.length = 0;
  }
}
