// Lazy elementwise fusion for the WebGPU backend. A float32 unary or binary op does not dispatch: its
// output becomes a *pending* expression over materialized buffers ("leaves") and constants. Consumers
// that are elementwise inline that expression; a reduction evaluates it inside its loads; any other
// kernel, a read or a flush first *materializes* it (one dispatch computing the whole expression). A
// pending output released before anything needed it is never computed at all: e.g. in
// sum(square(clip(g))) the clip and square outputs are dropped and the reduction reads g directly.
//
// Why this is safe with the buffer pool (which reuses released buffers in encoding order): a pending
// expression holds its leaves, so a leaf released meanwhile goes back to the pool only after the last
// expression reading it has been encoded or dropped. A pending output is written only when materialized,
// and every non-elementwise call materializes the pending arrays it is given before it is encoded.
import type { BinaryOp, Shape, UnaryOp } from "../../backend.ts";
import { stridesOf } from "../cpu/elementwise.ts";
import { compileExpr, FIRST, FUSED_ELEMENTWISE_PARAM_BASE, paramWordsOf, SAME, type Expr, type FusedProgram, type LeafIndex } from "./shaders/fused.ts";
import { Holds } from "./holds.ts";
import { REDUCE_PARAM_BASE } from "./shaders/reduce.ts";

/** What fusion needs from the kernels: the arrays' type, one dispatch, and the pool. */
export interface FusionTarget<A extends { readonly length: number }> {
  /** Storage buffers a kernel may bind for reading (the adapter's limit less the output). */
  readonly maxLeaves: number;
  emit(program: FusedProgram<A>, out: A): void;
  release(array: A): void;
  /** The broadcast strides of operand `shape` against `outShape`, merged (kernels.coalesce). */
  coalesce(sizes: readonly number[], strides: readonly number[]): { sizes: number[]; strides: number[] };
}

/** An expression with what bounds its kernel: distinct leaves, tree size, parameter words. */
interface Part<A> {
  readonly expr: Expr<A>;
  readonly leaves: readonly A[];
  readonly nodes: number;
  readonly paramWords: number;
  /** For an inlined pending expression: its array (null otherwise), and how this part indexes it. */
  readonly from: A | null;
  readonly fromIndex: LeafIndex;
}

/** Inlined expressions stay below this many tree nodes (shared subtrees counted each time). */
const MAX_NODES = 48;
/**
 * Parameter words for constants and strided indices: a slot has 64, an elementwise kernel uses the first
 * 4, a reduction the first 24 (a larger expression is computed before a reduction reads it).
 */
const PARAM_BUDGET = 64 - FUSED_ELEMENTWISE_PARAM_BASE;

export interface FusionStats {
  /** Elementwise ops recorded lazily. */
  ops: number;
  /** Dispatches that materialized an expression. */
  materialized: number;
  /** Pending outputs released before anything needed them (never computed). */
  dropped: number;
  /** Reductions that evaluated a pending expression in their loads. */
  reductionsFused: number;
  /** Copies into a box (concat parts) that evaluated a pending expression straight into place. */
  copiesFused: number;
  /** Now: expressions not yet materialized or dropped, and buffers they keep from the pool. */
  pending: number;
  held: number;
  /** Constants uploaded but not written (no kernel has bound them). */
  unwrittenConstants: number;
}

export class ElementwiseFusion<A extends { readonly length: number }> {
  /** Pending arrays and their expressions (a Part with `from` = the array itself). */
  private readonly pending = new Map<A, Part<A>>();
  /** Leaves pending expressions read (one hold per expression). */
  private readonly holds: Holds<A>;
  /** Values of one-element float32 arrays uploaded from the host (constants go into parameters, not bindings). */
  private readonly constants = new WeakMap<A, number>();
  /** Constants whose buffer is written only if a kernel binds it (most are only ever parameters). */
  private readonly unwritten = new Map<A, () => void>();
  private readonly counters = { ops: 0, materialized: 0, dropped: 0, reductionsFused: 0, copiesFused: 0 };

  constructor(private readonly target: FusionTarget<A>) {
    this.holds = new Holds<A>((array) => target.release(array));
  }

  stats(): FusionStats {
    return { ...this.counters, pending: this.pending.size, held: this.holds.size, unwrittenConstants: this.unwritten.size };
  }

  /** A one-element array holding `value`; `write` (if given) fills its buffer, and runs when a kernel needs it. */
  noteConstant(array: A, value: number, write: (() => void) | null = null): void {
    this.constants.set(array, value);
    if (write) this.unwritten.set(array, write);
  }

  unary(op: UnaryOp, x: A, out: A): void {
    const operand = this.operand(x, null, null, out.length);
    this.record(out, { kind: "unary", op, x: operand.expr }, operand.leaves, operand.nodes + 1, operand.paramWords);
  }

  /** NumPy broadcasting as Backend.binary (equal ranks). */
  binary(op: BinaryOp, a: A, aShape: Shape, b: A, bShape: Shape, out: A, outShape: Shape): void {
    const n = out.length;
    let pa = this.operand(a, aShape, outShape, n);
    let pb = this.operand(b, bShape, outShape, n);
    // Within the kernel bounds: while too large, the larger inlined operand is computed and read instead.
    for (;;) {
      const leaves = pa.leaves.length === 0 ? pb.leaves : pb.leaves.length === 0 ? pa.leaves : union(pa.leaves, pb.leaves);
      const nodes = pa.nodes + pb.nodes + 1;
      const paramWords = pa.paramWords + pb.paramWords;
      if (leaves.length <= this.target.maxLeaves && nodes <= MAX_NODES && paramWords <= PARAM_BUDGET) {
        this.record(out, { kind: "binary", op, a: pa.expr, b: pb.expr }, leaves, nodes, paramWords);
        return;
      }
      const larger = pa.from !== null && (pb.from === null || pa.nodes >= pb.nodes) ? pa : pb;
      if (larger.from === null) throw new Error("webgpu fusion: an op's own operands exceed the kernel limits");
      // Both operands may inline the same array: both read it once it is computed (its leaves may then be freed).
      const array = larger.from;
      this.materialize(array);
      if (pa.from === array) pa = leafPart(array, pa.fromIndex);
      if (pb.from === array) pb = leafPart(array, pb.fromIndex);
    }
  }

  /** Computes `array` into its buffer if it is pending (before a kernel reads it or a host read). */
  materialize(array: A): void {
    const write = this.unwritten.get(array);
    if (write) {
      this.unwritten.delete(array);
      write();
    }
    const p = this.pending.get(array);
    if (!p) return;
    this.pending.delete(array);
    this.target.emit(compileExpr(p.expr, 4), array);
    this.counters.materialized++;
    this.unhold(p.leaves);
  }

  materializeAll(): void {
    for (const array of [...this.pending.keys()]) this.materialize(array);
  }

  /**
   * The program computing a pending array, for a copy into a box to evaluate in place (parameters from
   * FUSED_ELEMENTWISE_PARAM_BASE); null when the array is in memory. The array stays pending.
   */
  programForCopy(array: A): FusedProgram<A> | null {
    const p = this.pending.get(array);
    if (!p) return null;
    this.counters.copiesFused++;
    return compileExpr(p.expr, FUSED_ELEMENTWISE_PARAM_BASE);
  }

  /**
   * The program computing a pending array, for a reduction to evaluate in its loads (parameters from
   * REDUCE_PARAM_BASE); null when the array is in memory or the program needs more parameter words than a
   * reduction has (the caller then materializes it). The array stays pending.
   */
  programFor(array: A): FusedProgram<A> | null {
    const program = this.programForInput(array, REDUCE_PARAM_BASE);
    if (program) this.counters.reductionsFused++;
    return program; // null: computed first, then reduced
  }

  /**
   * The program computing a pending array, for a kernel to evaluate where it loads the array (parameters
   * from `paramBase`, up to word 64); null when the array is in memory or the program does not fit. The
   * array stays pending.
   */
  programForInput(array: A, paramBase: number): FusedProgram<A> | null {
    const p = this.pending.get(array);
    if (!p) return null;
    const program = compileExpr(p.expr, paramBase);
    return paramBase + program.params.length <= 64 ? program : null;
  }

  /** The owner is done with `array`: a pending one is dropped uncomputed, a held one freed later. */
  release(array: A): void {
    this.constants.delete(array);
    this.unwritten.delete(array);
    const p = this.pending.get(array);
    if (p) {
      this.pending.delete(array);
      this.counters.dropped++;
      this.unhold(p.leaves);
    } else if (this.holds.deferRelease(array)) {
      return;
    }
    this.target.release(array);
  }

  private unhold(leaves: readonly A[]): void {
    for (const leaf of leaves) this.holds.unhold(leaf);
  }

  private record(out: A, expr: Expr<A>, leaves: readonly A[], nodes: number, paramWords: number): void {
    this.counters.ops++;
    this.pending.set(out, { expr, leaves, nodes, paramWords, from: out, fromIndex: SAME });
    for (const leaf of leaves) this.holds.hold(leaf);
  }

  /** An operand of an op with `n` outputs; shapes null for a unary op (same size). */
  private operand(x: A, shape: Shape | null, outShape: Shape | null, n: number): Part<A> {
    if (x.length === 1) {
      // (A constant's buffer may be unwritten: it is never read as a leaf.)
      const value = this.constants.get(x);
      if (value !== undefined) return { expr: { kind: "constant", value }, leaves: [], nodes: 1, paramWords: 1, from: null, fromIndex: SAME };
    }
    if (x.length === n) return this.pending.get(x) ?? leafPart(x, SAME);
    if (x.length === 1) {
      const p = this.pending.get(x);
      // A pending one-element expression reads only one-element leaves: index them at 0 instead of i.
      if (p) return { expr: atFirst(p.expr, new Map()), leaves: p.leaves, nodes: p.nodes, paramWords: p.paramWords, from: x, fromIndex: FIRST };
      return leafPart(x, FIRST);
    }
    // A broadcast operand is read through strides. A pending one whose leaves are all x-sized (or single
    // elements) is inlined with its leaves read through the same strides; any other is computed first.
    const strides = stridesOf(shape!);
    const merged = this.target.coalesce(outShape!, outShape!.map((d, i) => (shape![i] === d ? strides[i]! : 0)));
    const index: LeafIndex = { kind: "strided", sizes: merged.sizes, strides: merged.strides };
    const p = this.pending.get(x);
    if (p) {
      const expr = broadcastLeaves(p.expr, index, new Map());
      if (expr) return { expr, leaves: p.leaves, nodes: p.nodes, paramWords: treeParamWords(expr), from: x, fromIndex: index };
      this.materialize(x);
    }
    return leafPart(x, index);
  }
}

function leafPart<A>(array: A, index: LeafIndex): Part<A> {
  const expr: Expr<A> = { kind: "leaf", array, index };
  return { expr, leaves: [array], nodes: 1, paramWords: paramWordsOf(expr), from: null, fromIndex: index };
}

/** The distinct leaves of both lists (short lists: a scan beats a Set). */
function union<A>(a: readonly A[], b: readonly A[]): A[] {
  const out = a.slice();
  for (const x of b) if (!out.includes(x)) out.push(x);
  return out;
}

/**
 * The expression with its full-size leaves read through `index` (a broadcast of the expression's shape);
 * null if a leaf is itself broadcast (strided), since two broadcasts do not compose into one table here.
 */
function broadcastLeaves<A>(e: Expr<A>, index: LeafIndex, memo: Map<Expr<A>, Expr<A> | null>): Expr<A> | null {
  if (memo.has(e)) return memo.get(e)!;
  let r: Expr<A> | null;
  if (e.kind === "leaf") r = e.index.kind === "same" ? { kind: "leaf", array: e.array, index } : e.index.kind === "first" ? e : null;
  else if (e.kind === "constant") r = e;
  else if (e.kind === "unary") {
    const x = broadcastLeaves(e.x, index, memo);
    r = x && { kind: "unary", op: e.op, x };
  } else {
    const a = broadcastLeaves(e.a, index, memo);
    const b = a && broadcastLeaves(e.b, index, memo);
    r = a && b && { kind: "binary", op: e.op, a, b };
  }
  memo.set(e, r);
  return r;
}

/** Parameter words of a tree, shared subtrees counted each time (an upper bound, as Part.paramWords). */
function treeParamWords(e: Expr<unknown>): number {
  if (e.kind === "unary") return treeParamWords(e.x);
  if (e.kind === "binary") return treeParamWords(e.a) + treeParamWords(e.b);
  return paramWordsOf(e);
}

/** The expression with every leaf read at element 0 (for a one-element expression broadcast). */
function atFirst<A>(e: Expr<A>, memo: Map<Expr<A>, Expr<A>>): Expr<A> {
  const known = memo.get(e);
  if (known) return known;
  let r: Expr<A>;
  if (e.kind === "leaf") r = { kind: "leaf", array: e.array, index: FIRST };
  else if (e.kind === "constant") r = e;
  else if (e.kind === "unary") r = { kind: "unary", op: e.op, x: atFirst(e.x, memo) };
  else r = { kind: "binary", op: e.op, a: atFirst(e.a, memo), b: atFirst(e.b, memo) };
  memo.set(e, r);
  return r;
}
