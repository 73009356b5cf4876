// Layer norms are recorded instead of run, so that the elementwise expression applied to one (the U-Net's
// gelu(layerNorm(h))) can run in the same kernel: when a fused expression whose only leaf is a pending norm's
// output is computed, the norm kernel writes the norm and, per element, the expression of it (one dispatch
// instead of two). Any other use computes the norm on its own first. A pending norm holds its inputs (x,
// scale, bias): their owner's release waits until the norm is computed or dropped (as flips.ts does).
import { Holds } from "./holds.ts";

export interface NormArgs<A> {
  readonly x: A;
  readonly rows: number;
  readonly cols: number;
  readonly scale: A;
  readonly bias: A;
  readonly eps: number;
}

export interface NormStats {
  /** Norms computed together with an expression of them (one kernel). */
  withEpilogue: number;
  /** Norms computed on their own, because something else read them first. */
  alone: number;
  /** Norms released while pending (never computed). */
  dropped: number;
  /** Now: pending norms. */
  pending: number;
}

export interface NormTarget<A> {
  /** Records the norm into out. */
  norm(args: NormArgs<A>, out: A): void;
  /** Releases an array for good (an input whose release was deferred). */
  release(array: A): void;
}

export class PendingNorms<A> {
  private readonly pending = new Map<A, NormArgs<A>>();
  private readonly holds: Holds<A>;
  private readonly counters = { withEpilogue: 0, alone: 0, dropped: 0 };

  constructor(private readonly target: NormTarget<A>) {
    this.holds = new Holds<A>((array) => target.release(array));
  }

  stats(): NormStats {
    return { ...this.counters, pending: this.pending.size };
  }

  record(args: NormArgs<A>, out: A): void {
    this.pending.set(out, args);
    for (const input of [args.x, args.scale, args.bias]) this.holds.hold(input);
  }

  /** The pending norm `array` is the output of, or undefined. */
  get(array: A): NormArgs<A> | undefined {
    return this.pending.get(array);
  }

  /**
   * The caller computes the pending norm of `array` itself (with an expression of it): it is no longer
   * pending. Returns its arguments.
   */
  take(array: A): NormArgs<A> {
    const args = this.pending.get(array);
    if (!args) throw new Error("PendingNorms.take: not a pending norm");
    this.settle(array, args);
    this.counters.withEpilogue++;
    return args;
  }

  /** Computes `array` if it is a pending norm (before a kernel or the host reads it). */
  materialize(array: A): void {
    const args = this.pending.get(array);
    if (!args) return;
    this.target.norm(args, array);
    this.settle(array, args);
    this.counters.alone++;
  }

  /** Computes every pending norm (before recording a step: what the recording reads must be computed outside it). */
  materializeAll(): void {
    for (const array of [...this.pending.keys()]) this.materialize(array);
  }

  /**
   * The owner is done with `array`: a pending norm is dropped. Returns true when the release must wait
   * because a pending norm reads `array` (it is released through the target once none does).
   */
  release(array: A): boolean {
    const args = this.pending.get(array);
    if (args) {
      this.settle(array, args);
      this.counters.dropped++;
    }
    return this.holds.deferRelease(array);
  }

  private settle(array: A, args: NormArgs<A>): void {
    this.pending.delete(array);
    for (const input of [args.x, args.scale, args.bias]) this.holds.unhold(input);
  }
}
