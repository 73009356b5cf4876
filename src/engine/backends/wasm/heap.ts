// The WasmBackend's storage: one shared WebAssembly.Memory, carved up by a size-class free-list allocator.
// Tensors get Float32Array / Int32Array views into it, so kernels on any thread read and write them in place.
// Growing a *shared* memory never detaches the views made before (each keeps its old SharedArrayBuffer,
// which still maps the same bytes), so allocation may grow the memory at any time.

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

export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  readonly maximumBytes: number;
  /** The memory's buffer as of the last growth; new views are made on it. */
  private buffer: SharedArrayBuffer;
  /** Every buffer object the memory has handed out: views on any of them live in this heap. */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** Bump pointer: everything at or above it has never been allocated. */
  private top: number;
  private readonly free = new Map<number, number[]>();
  /** Live blocks: byte offset -> class size. */
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
    this.top = 1024; // offset 0 stays unused, so a null pointer never aliases a block
  }

  /** Bytes the memory has now. */
  get size(): number {
    return this.buffer.byteLength;
  }
  /** Bytes in blocks handed out and not released. */
  get allocatedBytes(): number {
    return this.liveBytes;
  }
  /** Bytes ever carved from the memory (live blocks, free lists and alignment). */
  get usedBytes(): number {
    return this.top;
  }

  /** True when `view` lies in this heap's memory (any of its buffers). */
  owns(view: ArrayBufferView): boolean {
    return this.buffers.has(view.buffer);
  }

  /** A block of at least `bytes` bytes, 64-byte aligned; -1 if the memory cannot grow that far. */
  allocBytes(bytes: number): number {
    const size = sizeClass(Math.max(1, bytes));
    const list = this.free.get(size);
    let offset = list && list.length ? list.pop()! : -1;
    if (offset < 0) {
      if (this.top + size > this.buffer.byteLength && !this.grow(this.top + size)) return -1;
      offset = this.top;
      this.top += size;
    }
    this.live.set(offset, size);
    this.liveBytes += size;
    return offset;
  }

  /** Returns a block to its free list; unknown offsets (double release) are ignored. */
  freeBytes(offset: number): void {
    const size = this.live.get(offset);
    if (size === undefined) return;
    this.live.delete(offset);
    this.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(offset);
  }

  /** Releases the block behind a view made by this heap (its first byte is the block's start). */
  releaseView(view: ArrayBufferView): boolean {
    if (!this.owns(view) || view.byteLength === 0) return false;
    this.freeBytes(view.byteOffset);
    return true;
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
