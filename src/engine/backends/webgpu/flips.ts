// Kernel flips (flipKernel: the rotated, transposed kernel of a convolution's input gradient) are recorded
// instead of run: a conv2d handed a pending flip reads its source kernel flipped (no dispatch, no copy),
// and any other use computes the flip first. A pending flip holds its source: if the owner releases the
// source meanwhile, the release waits until no pending flip reads it (as fusion.ts does for its leaves).
import type { Shape } from "../../backend.ts";
import { Holds } from "./holds.ts";

export interface FlipStats {
  /** Flips read by a conv2d straight from their source. */
  folded: number;
  /** Flips computed because something else read them. */
  materialized: number;
  /** Flips released while pending. */
  dropped: number;
  /** Now: pending flips. */
  pending: number;
}

export interface FlipTarget<A> {
  /** Records flipKernel(source) of the [kh, kw, c, o] `shape` into out. */
  flip(source: A, shape: Shape, out: A): void;
  /** Releases an array for good (a source whose release was deferred). */
  release(array: A): void;
}

export interface PendingFlip<A> {
  readonly source: A;
  /** The source's shape [kh, kw, c, o]. */
  readonly shape: Shape;
}

export class PendingFlips<A> {
  private readonly pending = new Map<A, PendingFlip<A>>();
  /** Sources pending flips read (one hold per flip). */
  private readonly holds: Holds<A>;
  private readonly counters = { folded: 0, materialized: 0, dropped: 0 };

  constructor(private readonly target: FlipTarget<A>) {
    this.holds = new Holds<A>((array) => target.release(array));
  }

  stats(): FlipStats {
    return { ...this.counters, pending: this.pending.size };
  }

  record(source: A, shape: Shape, out: A): void {
    this.pending.set(out, { source, shape });
    this.holds.hold(source);
  }

  /** The pending flip `array` is, for a conv2d to read its source flipped; null if it is not one. */
  fold(array: A): PendingFlip<A> | null {
    const p = this.pending.get(array);
    if (!p) return null;
    this.counters.folded++;
    return p;
  }

  /** Computes `array` if it is a pending flip (before a kernel or the host reads it). */
  materialize(array: A): void {
    const p = this.pending.get(array);
    if (!p) return;
    this.pending.delete(array);
    this.target.flip(p.source, p.shape, array);
    this.counters.materialized++;
    this.holds.unhold(p.source);
  }

  /** Computes every pending flip (before recording a step: what the recording reads must be computed outside it). */
  materializeAll(): void {
    for (const array of [...this.pending.keys()]) this.materialize(array);
  }

  /**
   * The owner is done with `array`: a pending flip is dropped. Returns true when the release must wait
   * because a pending flip reads `array` (it is released through the target once none does).
   */
  release(array: A): boolean {
    const p = this.pending.get(array);
    if (p) {
      this.pending.delete(array);
      this.counters.dropped++;
      this.holds.unhold(p.source);
    }
    return this.holds.deferRelease(array);
  }
}
