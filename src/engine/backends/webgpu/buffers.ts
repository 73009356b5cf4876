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
  /** A buffer was released since the last settle() (else the free lists are still sorted). */
  private unsorted = false;
  /** Bytes in buffers created by the pool (live or free). */
  allocatedBytes = 0;
  created = 0;

  constructor(private readonly device: GPUDevice, private readonly usage: number, private readonly label: string) {}

  acquire(bytes: number, forQueueWrite: boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const fromRecent = forQueueWrite ? undefined : this.recent.get(size)?.pop();
    const buf = fromRecent ?? this.settled.get(size)?.pop();
    return buf ?? this.create(bytes);
  }

  /**
   * A settled free buffer that is not in `exclude`, else a new one (uploads while recording a step: a buffer
   * the recording has used would be rewritten by its replays).
   */
  acquireOutside(bytes: number, exclude: ReadonlySet<GPUBuffer>): GPUBuffer {
    const list = this.settled.get(sizeClass(bytes));
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (!exclude.has(list[i]!)) return list.splice(i, 1)[0]!;
      }
    }
    return this.create(bytes);
  }

  /** A new buffer of the pool (release() takes it like any other). */
  create(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
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
    this.unsorted = true;
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
    if (!this.unsorted) return; // a replayed step releases nothing: nothing to move or sort
    this.unsorted = false;
    for (const [size, list] of this.recent) {
      let into = this.settled.get(size);
      if (!into) this.settled.set(size, (into = []));
      into.push(...list);
    }
    this.recent.clear();
    for (const list of this.settled.values()) list.sort((a, b) => this.order.get(b)! - this.order.get(a)!);
  }

  /**
   * Takes these buffers out of the free lists (those that are there), so the pool hands them to no one
   * until they are released again. Returns the ones taken.
   */
  withdraw(buffers: ReadonlySet<GPUBuffer>): GPUBuffer[] {
    const taken: GPUBuffer[] = [];
    for (const map of [this.settled, this.recent]) {
      for (const [size, list] of map) {
        const kept = list.filter((b) => !buffers.has(b));
        if (kept.length === list.length) continue;
        for (const b of list) if (buffers.has(b)) taken.push(b);
        map.set(size, kept);
      }
    }
    return taken;
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
  /** Slots already written (a persistent arena keeps its slots; see flush). */
  private written = 0;

  /**
   * `persistent`: slots are never reused, so bind groups that refer to them stay valid for a replay
   * (the arena of a recording); flush() writes only the slots added since the last flush.
   */
  constructor(private readonly device: GPUDevice, private readonly persistent = false) {}

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

  /** Writes the staged slots to the GPU (queue order) and, unless persistent, starts over. */
  flush(queue: GPUQueue): void {
    for (let slot = this.written; slot < this.used; ) {
      const chunk = this.chunks[Math.floor(slot / this.slotsPerChunk)]!;
      const first = slot % this.slotsPerChunk;
      const slots = Math.min(this.used - slot, this.slotsPerChunk - first);
      queue.writeBuffer(chunk.buffer, first * ParamArena.SLOT, chunk.staging.buffer, first * ParamArena.SLOT, slots * ParamArena.SLOT);
      slot += slots;
    }
    if (this.persistent) this.written = this.used;
    else this.used = 0;
  }

  get pending(): number {
    return this.used;
  }

  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
    this.chunks.length = 0;
  }
}
