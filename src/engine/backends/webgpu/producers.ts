// Kernels whose output an elementwise expression may take as an epilogue (layer norms, matmuls,
// convolutions) are recorded instead of run. When a fused expression with such an output among its leaves
// (read element by element, over the output's size) is computed, the producer's kernel runs with the
// expression as its epilogue: it stores its own element and then the expression's (one dispatch instead of
// two; the U-Net's gelu(layerNorm(h)) and conv(x) + bias). Any other use computes the producer alone first.
// A pending producer holds its inputs: their owner's release waits until it is computed or dropped (as
// flips.ts does).
import { Holds } from "./holds.ts";
import type { FusedProgram } from "./shaders/fused.ts";

export interface Producer<A> {
  /** What the kernel reads (held while pending). */
  readonly inputs: readonly A[];
  /** Runs the kernel into `out`. */
  run(out: A): void;
  /**
   * Runs the kernel into `out` and, in the same dispatch, `program` (whose leaf `leaf` is `out`) into
   * `out2`. Returns false, having done nothing, when this kernel cannot (e.g. a split-K matmul).
   */
  runWithEpilogue(out: A, program: FusedProgram<A>, leaf: number, out2: A): boolean;
}

export interface ProducerStats {
  /** Producers run with an expression of their output as epilogue. */
  withEpilogue: number;
  /** Producers run alone, because something else read their output first (or they could not). */
  alone: number;
  /** Producers released while pending (never run). */
  dropped: number;
  /** Now: pending producers. */
  pending: number;
}

export class PendingProducers<A> {
  private readonly pending = new Map<A, Producer<A>>();
  private readonly holds: Holds<A>;
  private readonly counters = { withEpilogue: 0, alone: 0, dropped: 0 };

  /** `release`: releases an array for good (an input whose release was deferred). */
  constructor(release: (array: A) => void) {
    this.holds = new Holds<A>(release);
  }

  stats(): ProducerStats {
    return { ...this.counters, pending: this.pending.size };
  }

  record(out: A, producer: Producer<A>): void {
    this.pending.set(out, producer);
    for (const input of producer.inputs) this.holds.hold(input);
  }

  isPending(array: A): boolean {
    return this.pending.has(array);
  }

  /** Runs the pending producer of `out` with `program` as epilogue; false (nothing done) if it cannot. */
  runWithEpilogue(out: A, program: FusedProgram<A>, leaf: number, out2: A): boolean {
    const producer = this.pending.get(out);
    if (!producer || !producer.runWithEpilogue(out, program, leaf, out2)) return false;
    this.settle(out, producer);
    this.counters.withEpilogue++;
    return true;
  }

  /** Runs the producer of `array` if it is pending (before a kernel or the host reads it). */
  materialize(array: A): void {
    const producer = this.pending.get(array);
    if (!producer) return;
    producer.run(array);
    this.settle(array, producer);
    this.counters.alone++;
  }

  /** Runs every pending producer (before recording a step: what the recording reads must be computed outside it). */
  materializeAll(): void {
    for (const array of [...this.pending.keys()]) this.materialize(array);
  }

  /**
   * The owner is done with `array`: a pending producer of it is dropped. Returns true when the release must
   * wait because a pending producer reads `array` (it is released through `release` once none does).
   */
  release(array: A): boolean {
    const producer = this.pending.get(array);
    if (producer) {
      this.settle(array, producer);
      this.counters.dropped++;
    }
    return this.holds.deferRelease(array);
  }

  private settle(array: A, producer: Producer<A>): void {
    this.pending.delete(array);
    for (const input of producer.inputs) this.holds.unhold(input);
  }
}
