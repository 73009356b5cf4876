// Layout ops recorded instead of run, for consumers that can read through them: conv2d reads a pending
// flipKernel's source flipped (the input gradient of a convolution), a copy into a box (concat) writes a
// pending upsampleNearest's source upsampled straight into place (the U-Net's decoder), and a matmul (or
// a 1x1 convolution) reads a pending contiguous slice in its source at an offset (a 3x3 kernel's centre
// tap, which a convolution on a 1x1 map uses alone). Any other use computes the op first. A pending op holds its source: if the owner releases the source meanwhile, the
// release waits until no pending op reads it (as fusion.ts does for its leaves).
import type { Shape } from "../../backend.ts";
import { Holds } from "./holds.ts";

export interface DeferredStats {
  /** Ops read through by a consumer (no dispatch of their own). */
  folded: number;
  /** Ops computed because something else read them. */
  materialized: number;
  /** Ops released while pending. */
  dropped: number;
  /** Now: pending ops. */
  pending: number;
}

/** flipKernel of a [kh, kw, c, o] kernel (`shape`). */
export interface PendingFlip<A> {
  readonly source: A;
  readonly shape: Shape;
}

/** upsampleNearest of an NHWC map of `shape` to `height` x `width`. */
export interface PendingUpsample<A> {
  readonly source: A;
  readonly shape: Shape;
  readonly height: number;
  readonly width: number;
}

/** A contiguous run of `length` elements of `source` from `offset` (a slice of it). */
export interface PendingSlice<A> {
  readonly source: A;
  readonly offset: number;
  readonly length: number;
}

/** What the backend does with every kind of deferred op alike (whatever the op). */
export interface PendingArrays<A> {
  materialize(array: A): void;
  materializeAll(): void;
  release(array: A): boolean;
}

export class DeferredOps<A, Op extends { readonly source: A }> implements PendingArrays<A> {
  private readonly pending = new Map<A, Op>();
  /** Sources pending ops read (one hold per op). */
  private readonly holds: Holds<A>;
  private readonly counters = { folded: 0, materialized: 0, dropped: 0 };

  /** `compute` runs an op into its output; `release` releases an array for good (a source whose release waited). */
  constructor(private readonly compute: (op: Op, out: A) => void, release: (array: A) => void) {
    this.holds = new Holds<A>(release);
  }

  stats(): DeferredStats {
    return { ...this.counters, pending: this.pending.size };
  }

  /** Records `op` as what `out` holds, to be computed only if something other than a folding consumer reads it. */
  record(out: A, op: Op): void {
    this.pending.set(out, op);
    this.holds.hold(op.source);
  }

  /** The pending op `array` is, for a consumer to read through; null if it is not one. */
  fold(array: A): Op | null {
    const op = this.pending.get(array);
    if (!op) return null;
    this.counters.folded++;
    return op;
  }

  /** Whether `array` is pending (not counted as a fold). */
  has(array: A): boolean {
    return this.pending.has(array);
  }

  /** Computes `array` if it is pending (before a kernel or the host reads it). */
  materialize(array: A): void {
    const op = this.pending.get(array);
    if (!op) return;
    this.pending.delete(array);
    this.compute(op, array);
    this.counters.materialized++;
    this.holds.unhold(op.source);
  }

  /** Computes every pending op (before recording a step: what the recording reads must be computed outside it). */
  materializeAll(): void {
    for (const array of [...this.pending.keys()]) this.materialize(array);
  }

  /**
   * The owner is done with `array`: a pending op computing it is dropped. Returns true when the release must
   * wait because a pending op reads `array` (it is released through `release` once none does).
   */
  release(array: A): boolean {
    const op = this.pending.get(array);
    if (op) {
      this.pending.delete(array);
      this.counters.dropped++;
      this.holds.unhold(op.source);
    }
    return this.holds.deferRelease(array);
  }
}
