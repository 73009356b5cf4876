// Tensor: shape + dtype + storage owned by the active backend, with scope-based disposal
// and an optional link to the op that produced it (for reverse-mode autodiff).
import { isHostStorage, type Backend, type DType, type Shape, type Storage, type TypedArray } from "./backend.ts";
import { CpuBackend } from "./backends/cpu/index.ts";

/** How a tensor was made: its inputs and the rule mapping the output's cotangent to theirs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Written with differentiable ops, so gradients of gradients work. null = no gradient to that input. */
  readonly backward: (g: Tensor) => readonly (Tensor | null)[];
}

interface EngineState {
  backend: Backend;
  /** During a backward pass: the tensors whose gradients it needs (null: every tensor that requires one). */
  needed: ReadonlySet<Tensor> | null;
  scopes: Set<Tensor>[];
  recording: boolean;
  nextId: number;
  live: number;
  liveBytes: number;
  peakBytes: number;
}

const state: EngineState = { backend: new CpuBackend(), needed: null, scopes: [], recording: true, nextId: 1, live: 0, liveBytes: 0, peakBytes: 0 };

export function getBackend(): Backend {
  return state.backend;
}
export function setBackend(backend: Backend): void {
  state.backend = backend;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(",")}]`;
}

/** Storage and the backend that made it, shared by a tensor and its views; released with the last of them. */
interface StorageOwner {
  readonly storage: Storage;
  readonly backend: Backend;
  readonly bytes: number;
  refs: number;
}

export class Tensor {
  readonly id: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  /** Set when an op with a differentiable input produced this tensor while recording. */
  node: GradNode | null = null;
  /** True for leaves being differentiated and for anything computed from them. */
  requiresGrad = false;
  /** The op that made it, for error messages. */
  readonly origin: string;
  /** The storage, shared with the tensor's views (reshape); null after dispose. */
  private owner: StorageOwner | null;

  /** A tensor owning `storage`; with `viewOf`, one sharing that tensor's storage instead (same size and dtype). */
  constructor(storage: Storage, shape: Shape, dtype: DType, origin: string, viewOf?: Tensor) {
    if (storage.length !== sizeOf(shape)) {
      throw new Error(`${origin}: storage of ${storage.length} elements does not match shape ${shapeString(shape)}`);
    }
    if (viewOf) {
      if (viewOf.owner === null || viewOf.owner.storage !== storage || viewOf.dtype !== dtype) throw new Error(`${origin}: a view must share a live tensor's storage and dtype`);
      this.owner = viewOf.owner;
      this.owner.refs++;
    } else {
      this.owner = { storage, backend: state.backend, bytes: storage.length * (dtype === "float64" ? 8 : 4), refs: 1 };
      state.liveBytes += this.owner.bytes;
      if (state.liveBytes > state.peakBytes) state.peakBytes = state.liveBytes;
    }
    this.id = state.nextId++;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = storage.length;
    this.origin = origin;
    state.live++;
    const scope = state.scopes[state.scopes.length - 1];
    if (scope) scope.add(this);
  }

  get rank(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.owner === null;
  }
  /** Whether the values live in host memory, so that `data`, `item()` and `toArray()` work synchronously. */
  get isHost(): boolean {
    return this.owner !== null && isHostStorage(this.owner.storage);
  }

  /** The backend's storage (shared, not a copy), for kernels. Throws after dispose. */
  get storage(): Storage {
    if (this.owner === null) {
      throw new Error(`tensor #${this.id} (${this.origin}, shape ${shapeString(this.shape)}, ${this.dtype}) was used after dispose`);
    }
    return this.owner.storage;
  }

  /** The values in host memory (shared, not a copy). On a device backend (WebGPU) use `await t.read()`. */
  get data(): TypedArray {
    const s = this.storage;
    if (!isHostStorage(s)) {
      throw new Error(`tensor #${this.id} (${this.origin}, shape ${shapeString(this.shape)}) lives on the ${this.owner!.backend.name} device: read it with await t.read()`);
    }
    return s;
  }

  /** A copy of the values, on every backend (a device backend first runs the work recorded so far). */
  read(): Promise<TypedArray> {
    const storage = this.storage;
    return this.owner!.backend.read(storage);
  }
  /** The single value of a one-element tensor, on every backend. */
  async readItem(): Promise<number> {
    if (this.size !== 1) throw new Error(`readItem: tensor has shape ${shapeString(this.shape)}, not one element`);
    return (await this.read())[0]!;
  }

  /** A copy of the values as a plain typed array of this tensor's dtype. */
  toTypedArray(): TypedArray {
    return this.data.slice();
  }
  toArray(): number[] {
    return Array.from(this.data);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor has shape ${shapeString(this.shape)}, not one element`);
    return this.data[0]!;
  }

  dispose(): void {
    const owner = this.owner;
    if (owner === null) return;
    state.live--;
    this.owner = null;
    if (--owner.refs === 0) {
      state.liveBytes -= owner.bytes;
      owner.backend.release(owner.storage);
    }
    this.node = null;
    for (const scope of state.scopes) scope.delete(this);
  }

  toString(): string {
    return `Tensor(${shapeString(this.shape)}, ${this.dtype}, #${this.id})`;
  }
}

/** The id the next tensor will get: tensors with an id at least this were created afterwards. */
export function nextTensorId(): number {
  return state.nextId;
}

/** Allocates an output on the active backend. */
export function emptyTensor(shape: Shape, dtype: DType, origin: string): Tensor {
  return new Tensor(state.backend.alloc(dtype, sizeOf(shape)), shape, dtype, origin);
}

/** A tensor on the active backend holding a copy of `values` (already of `dtype`'s array type). */
export function tensorFromHost(values: TypedArray, shape: Shape, dtype: DType, origin: string): Tensor {
  return new Tensor(state.backend.upload(values), shape, dtype, origin);
}

// ---- scopes -------------------------------------------------------------

export type TensorTree = Tensor | readonly TensorTree[] | { readonly [key: string]: TensorTree } | number | string | boolean | null | undefined | void;

export function collectTensors(tree: unknown, into: Set<Tensor> = new Set()): Set<Tensor> {
  if (tree instanceof Tensor) into.add(tree);
  else if (Array.isArray(tree)) for (const t of tree) collectTensors(t, into);
  else if (tree !== null && typeof tree === "object") for (const v of Object.values(tree)) collectTensors(v, into);
  return into;
}

/**
 * Runs fn; every tensor created inside and not part of its result is disposed
 * afterwards. Results move to the enclosing scope. The training loop runs each step
 * in one, which keeps memory flat.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  state.scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    state.scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  state.scopes.pop();
  if (result instanceof Promise) throw new Error("tidy: the function must be synchronous");
  const kept = collectTensors(result);
  const parent = state.scopes[state.scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Removes tensors from every open scope so tidy() will not dispose them. */
export function keep<T extends TensorTree>(tree: T): T {
  for (const t of collectTensors(tree)) for (const scope of state.scopes) scope.delete(t);
  return tree;
}

/** Disposes every tensor in a tree. */
export function dispose(tree: unknown): void {
  for (const t of collectTensors(tree)) t.dispose();
}

/** Live tensors and their bytes; peakBytes is the high-water mark since the last resetPeak(). */
export function memory(): { tensors: number; bytes: number; peakBytes: number } {
  return { tensors: state.live, bytes: state.liveBytes, peakBytes: state.peakBytes };
}

export function resetPeakMemory(): void {
  state.peakBytes = state.liveBytes;
}

// ---- recording ------------------------------------------------------------

export function isRecording(): boolean {
  return state.recording;
}

/** Runs fn without recording gradient nodes (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const before = state.recording;
  state.recording = false;
  try {
    return fn();
  } finally {
    state.recording = before;
  }
}

export function withRecording<T>(recording: boolean, fn: () => T): T {
  const before = state.recording;
  state.recording = recording;
  try {
    return fn();
  } finally {
    state.recording = before;
  }
}

/**
 * For backward rules: whether the running backward pass needs a gradient for `t` (it requires one and lies on
 * a path to a tensor being differentiated). Rules skip the others' gradients (e.g. a conv's kernel gradient
 * when only the input gradient is asked for).
 */
export function needsGrad(t: Tensor): boolean {
  return t.requiresGrad && (state.needed === null || state.needed.has(t));
}

/** Runs fn (a backward pass) with the set of tensors whose gradients it needs. */
export function withNeeded<T>(needed: ReadonlySet<Tensor> | null, fn: () => T): T {
  const before = state.needed;
  state.needed = needed;
  try {
    return fn();
  } finally {
    state.needed = before;
  }
}

/** Links `out` to its inputs when any of them needs a gradient and recording is on. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode["backward"]): Tensor {
  if (state.recording && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}
