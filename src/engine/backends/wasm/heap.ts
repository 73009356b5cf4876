// The WasmBackend's storage: one shared WebAssembly.Memory, carved up by an allocator with two regimes:
// small blocks (<= 64 KiB) come from size-class free lists, carved from 1 MiB slabs; large blocks (tensors
// of any real size) are 4 KiB multiples placed best-fit among free ranges that coalesce with their free
// neighbours (and with the unallocated top, which shrinks back), so memory freed by one shape serves others.
// Tensors get Float32Array / Int32Array views into the memory, so kernels on any thread read and write them
// in place. Growing a *shared* memory never detaches the views made before (each keeps its old
// SharedArrayBuffer, which still maps the same bytes), so allocation may grow the memory at any time.

const PAGE = 65536;
/** Every block starts on a 64-byte boundary (a cache line; v128 loads are never split by it). */
export const ALIGN = 64;

export interface HeapOptions {
  /** Initial size of the memory in bytes (rounded up to 64 KiB pages). Default 16 MiB. */
  initialBytes?: number;
  /** Largest size the memory may grow to, in bytes. Default 4 GiB, the limit of a 32-bit Wasm memory. */
  maximumBytes?: number;
}

/**
 * Size classes: multiples of 64 up to 256 bytes, then four classes per power of two
 * (5/4, 6/4, 7/4, 8/4 of it), so a block wastes at most a quarter of its size.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  const e = 31 - Math.clz32(bytes - 1); // 2^e < bytes <= 2^(e+1)
  const step = 2 ** (e - 2);
  return Math.ceil(bytes / step) * step;
}

function makeMemory(initialPages: number, maximumPages: number): { memory: WebAssembly.Memory; maximumPages: number } {
  // Shared memories reserve their maximum up front; fall back to smaller reservations where that fails.
  let max = maximumPages;
  for (;;) {
    try {
      return { memory: new WebAssembly.Memory({ initial: Math.min(initialPages, max), maximum: max, shared: true }), maximumPages: max };
    } catch (e) {
      if (max <= initialPages || max <= 256) throw e;
      max = Math.max(initialPages, max >> 1);
    }
  }
}

/** Blocks up to this size use the size classes; larger ones the best-fit ranges. */
export const SMALL_MAX = 65536;
/** Granularity of large blocks. */
const LARGE_ALIGN = 4096;
/** Small blocks are carved from slabs of this size (so they do not sit between large blocks). */
const SLAB = 1 << 20;

export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  readonly maximumBytes: number;
  /** The memory's buffer as of the last growth; new views are made on it. */
  private buffer: SharedArrayBuffer;
  /** Every buffer object the memory has handed out: views on any of them live in this heap. */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** Bump pointer: everything at or above it is unallocated (it moves down when the range below is freed). */
  private top: number;
  private peakTop: number;
  /** Free small blocks per size class. */
  private readonly free = new Map<number, number[]>();
  /** The current slab's unused range [slabAt, slabEnd). */
  private slabAt = 0;
  private slabEnd = 0;
  /** Free large ranges: start -> size, end -> start, and (size, start) pairs sorted for best fit. */
  private readonly freeStart = new Map<number, number>();
  private readonly freeEnd = new Map<number, number>();
  private readonly bySize: number[] = [];
  /** Live blocks: byte offset -> size (class size for small blocks, range size for large ones). */
  private readonly live = new Map<number, number>();
  private liveBytes = 0;

  constructor(options: HeapOptions = {}) {
    const initialPages = Math.max(1, Math.ceil((options.initialBytes ?? 16 * 2 ** 20) / PAGE));
    const maximumPages = Math.max(initialPages, Math.min(65536, Math.floor((options.maximumBytes ?? 2 ** 32) / PAGE)));
    const made = makeMemory(initialPages, maximumPages);
    this.memory = made.memory;
    this.maximumBytes = made.maximumPages * PAGE;
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.buffers.add(this.buffer);
    this.top = this.peakTop = 1024; // offset 0 stays unused, so a null pointer never aliases a block
  }

  /** Bytes the memory has now. */
  get size(): number {
    return this.buffer.byteLength;
  }
  /** Bytes in blocks handed out and not released. */
  get allocatedBytes(): number {
    return this.liveBytes;
  }
  /** Bytes below the top of the allocated region now (live blocks, free blocks and ranges, slabs). */
  get usedBytes(): number {
    return this.top;
  }
  /** The highest the top has been: how much of the memory the allocator has ever needed. */
  get peakUsedBytes(): number {
    return this.peakTop;
  }

  /** True when `view` lies in this heap's memory (any of its buffers). */
  owns(view: ArrayBufferView): boolean {
    return this.buffers.has(view.buffer);
  }

  /** A block of at least `bytes` bytes, 64-byte aligned; -1 if the memory cannot grow that far. */
  allocBytes(bytes: number): number {
    const n = Math.max(1, bytes);
    const offset = n <= SMALL_MAX ? this.allocSmall(sizeClass(n)) : this.allocLarge(Math.ceil(n / LARGE_ALIGN) * LARGE_ALIGN);
    return offset;
  }

  /** Returns a block to its free list or range; unknown offsets (double release) are ignored. */
  freeBytes(offset: number): void {
    const size = this.live.get(offset);
    if (size === undefined) return;
    this.live.delete(offset);
    this.liveBytes -= size;
    if (size <= SMALL_MAX) {
      let list = this.free.get(size);
      if (!list) this.free.set(size, (list = []));
      list.push(offset);
    } else this.freeRange(offset, size);
  }

  /** Releases the block behind a view made by this heap (its first byte is the block's start). */
  releaseView(view: ArrayBufferView): boolean {
    if (!this.owns(view) || view.byteLength === 0) return false;
    this.freeBytes(view.byteOffset);
    return true;
  }

  private allocSmall(size: number): number {
    const list = this.free.get(size);
    let offset = list && list.length ? list.pop()! : -1;
    if (offset < 0) {
      if (this.slabEnd - this.slabAt < size) {
        // A new slab; where the memory cannot take a whole one, a range of just this block.
        let slab = this.takeRange(SLAB);
        if (slab < 0) slab = this.takeRange(size);
        if (slab < 0) return -1;
        // The rest of the old slab is left unused (less than this block).
        this.slabAt = slab;
        this.slabEnd = slab + this.lastTaken;
      }
      offset = this.slabAt;
      this.slabAt += size;
    }
    this.live.set(offset, size);
    this.liveBytes += size;
    return offset;
  }

  private allocLarge(size: number): number {
    const offset = this.takeRange(size);
    if (offset < 0) return -1;
    // takeRange may hand out a little more than asked (a remainder too small to keep): record all of it.
    const got = this.lastTaken;
    this.live.set(offset, got);
    this.liveBytes += got;
    return offset;
  }

  /** Size of the range the last takeRange() returned. */
  private lastTaken = 0;

  /** A range of at least `size` bytes (a multiple of 64): the best-fitting free range, or from the top. */
  private takeRange(size: number): number {
    const at = this.findFit(size);
    if (at >= 0) {
      const rangeSize = this.bySize[2 * at]!, start = this.bySize[2 * at + 1]!;
      this.removeFree(start, rangeSize, at);
      const rest = rangeSize - size;
      if (rest >= LARGE_ALIGN) {
        this.addFree(start + size, rest);
        this.lastTaken = size;
      } else this.lastTaken = rangeSize;
      return start;
    }
    if (this.top + size > this.buffer.byteLength && !this.grow(this.top + size)) return -1;
    const start = this.top;
    this.top += size;
    if (this.top > this.peakTop) this.peakTop = this.top;
    this.lastTaken = size;
    return start;
  }

  private freeRange(offset: number, size: number): void {
    let start = offset, end = offset + size;
    const right = this.freeStart.get(end);
    if (right !== undefined) {
      this.removeFree(end, right);
      end += right;
    }
    const left = this.freeEnd.get(start);
    if (left !== undefined) {
      this.removeFree(left, start - left);
      start = left;
    }
    if (end === this.top) this.top = start;
    else this.addFree(start, end - start);
  }

  /** Index (pair number) in bySize of the smallest free range of at least `size` bytes, or -1. */
  private findFit(size: number): number {
    const pairs = this.bySize.length / 2;
    let lo = 0, hi = pairs;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.bySize[2 * mid]! < size) lo = mid + 1;
      else hi = mid;
    }
    return lo < pairs ? lo : -1;
  }

  /** Position of the pair (size, start) in bySize (ordered by size, then start). */
  private pairIndex(start: number, size: number): number {
    const pairs = this.bySize.length / 2;
    let lo = 0, hi = pairs;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const s = this.bySize[2 * mid]!, o = this.bySize[2 * mid + 1]!;
      if (s < size || (s === size && o < start)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private addFree(start: number, size: number): void {
    this.freeStart.set(start, size);
    this.freeEnd.set(start + size, start);
    const i = this.pairIndex(start, size);
    this.bySize.splice(2 * i, 0, size, start);
  }

  private removeFree(start: number, size: number, index = this.pairIndex(start, size)): void {
    this.freeStart.delete(start);
    this.freeEnd.delete(start + size);
    this.bySize.splice(2 * index, 2);
  }

  f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.buffer, offset, length);
  }
  i32(offset: number, length: number): Int32Array {
    return new Int32Array(this.buffer, offset, length);
  }
  u8(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.buffer, offset, length);
  }

  private grow(needed: number): boolean {
    if (needed > this.maximumBytes) return false;
    const have = this.buffer.byteLength;
    // Grow by at least a quarter (fewer, larger steps), but never past the maximum.
    const target = Math.min(this.maximumBytes, Math.max(needed, have + (have >> 2)));
    const pages = Math.ceil((target - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      try {
        this.memory.grow(Math.ceil((needed - have) / PAGE));
      } catch {
        return false;
      }
    }
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.buffers.add(this.buffer);
    return true;
  }
}
