// WGSL for fused elementwise expressions (see ../fusion.ts): an expression tree over leaf buffers and
// constants becomes `fn fused(i: u32) -> f32`, the value of element i, which an elementwise kernel
// stores and a reduction loads. Each op is the same WGSL snippet as in its own kernel (elementwise.ts),
// so fused and unfused results agree up to the compiler's freedom to contract a*b+c into an FMA.
import type { BinaryOp, UnaryOp } from "../../../backend.ts";
import { COMMON, f32Bits, typeAlias } from "./common.ts";
import { BINARY_EXPR, BINARY_HELPERS, MATH, UNARY_EXPR } from "./elementwise.ts";

/** How a leaf is indexed from the flat index i of the value being computed. */
export type LeafIndex =
  | { readonly kind: "same" } // element i (a full-size operand)
  | { readonly kind: "first" } // element 0 (a one-element operand)
  | { readonly kind: "strided"; readonly sizes: readonly number[]; readonly strides: readonly number[] }; // broadcasting

/** A leaf is any object with a `.length` standing for one storage buffer (a GpuArray in the backend). */
export type Expr<L> =
  | { readonly kind: "leaf"; readonly array: L; readonly index: LeafIndex }
  | { readonly kind: "constant"; readonly value: number }
  | { readonly kind: "unary"; readonly op: UnaryOp; readonly x: Expr<L> }
  | { readonly kind: "binary"; readonly op: BinaryOp; readonly a: Expr<L>; readonly b: Expr<L> };

export const SAME: LeafIndex = { kind: "same" };
export const FIRST: LeafIndex = { kind: "first" };

/** Parameter words a leaf index or constant takes (a strided index: rank, sizes, strides). */
export function paramWordsOf(e: Expr<unknown>): number {
  if (e.kind === "constant") return 1;
  if (e.kind === "leaf") return e.index.kind === "strided" ? 1 + 2 * e.index.sizes.length : 0;
  return 0;
}

/** A compiled expression: `body` (WGSL) depends only on the structure, so it keys the pipeline. */
export interface FusedProgram<L> {
  /** Leaf buffers in binding order (bindings 1..leaves.length). */
  readonly leaves: readonly L[];
  /** Parameter words from `paramBase` on (constants' f32 bits, strided index tables). */
  readonly params: readonly number[];
  /** `fn fused(i: u32) -> f32`; also the pipeline cache key. */
  readonly body: string;
  readonly usesMath: boolean;
}


/** Compiles an expression whose parameter words start at `paramBase` (shared subtrees are computed once). */
export function compileExpr<L>(root: Expr<L>, paramBase: number): FusedProgram<L> {
  const leaves: L[] = [];
  const bindings = new Map<L, number>();
  const params: number[] = [];
  const names = new Map<Expr<L>, string>();
  const lines: string[] = [];
  let usesMath = false;
  const visit = (e: Expr<L>): string => {
    const known = names.get(e);
    if (known) return known;
    let value: string;
    if (e.kind === "leaf") {
      let binding = bindings.get(e.array);
      if (binding === undefined) {
        leaves.push(e.array);
        bindings.set(e.array, (binding = leaves.length));
      }
      let index: string;
      if (e.index.kind === "same") index = "i";
      else if (e.index.kind === "first") index = "0u";
      else {
        index = `stridedOffset(i, ${paramBase + params.length}u)`;
        params.push(e.index.sizes.length, ...e.index.sizes, ...e.index.strides);
      }
      value = `L${binding}[${index}]`;
    } else if (e.kind === "constant") {
      value = `Pf(${paramBase + params.length}u)`;
      params.push(f32Bits(e.value));
    } else if (e.kind === "unary") {
      const x = visit(e.x);
      if (e.op === "sin" || e.op === "cos" || e.op === "tanh" || e.op.startsWith("gelu")) usesMath = true;
      value = `u_${e.op}(${x})`;
    } else {
      const a = visit(e.a);
      const b = visit(e.b);
      value = `b_${e.op}(${a}, ${b})`;
    }
    const name = `v${names.size}`;
    names.set(e, name);
    lines.push(`  let ${name} = ${value};`);
    return name;
  };
  const result = visit(root);
  const body = `fn fused(i: u32) -> f32 {\n${lines.join("\n")}\n  return ${result};\n}\n`;
  return { leaves, params, body, usesMath };
}

const STRIDED_OFFSET = /* wgsl */ `
// P(base) = rank, then rank sizes, then rank strides: the offset of element i of a broadcast operand.
fn stridedOffset(i: u32, base: u32) -> u32 {
  let rank = P(base);
  var rem = i;
  var off = 0u;
  for (var d = rank; d > 0u; d--) {
    let size = P(base + d);
    off += (rem % size) * P(base + rank + d);
    rem = rem / size;
  }
  return off;
}
`;

/** Declarations for a program: leaf bindings, the op functions it calls, and `fused`. */
export function fusedDeclarations(program: FusedProgram<unknown>): string {
  const ops: string[] = [];
  for (const m of program.body.matchAll(/\b([ub])_(\w+)\(/g)) {
    const fn = `${m[1]}_${m[2]}`;
    if (ops.includes(fn)) continue;
    ops.push(fn);
  }
  const fns = ops.map((fn) => fn.startsWith("u_")
    ? `fn ${fn}(v: f32) -> f32 { return ${UNARY_EXPR[fn.slice(2) as UnaryOp]}; }`
    : `fn ${fn}(a: f32, b: f32) -> f32 { return ${BINARY_EXPR[fn.slice(2) as BinaryOp]}; }`);
  const bindings = program.leaves.map((_, k) => `@group(0) @binding(${k + 1}) var<storage, read> L${k + 1}: array<f32>;`);
  return `${program.usesMath ? MATH : ""}${BINARY_HELPERS.float32}
fn ordered(a: T, b: T) -> bool { return !isNan(a) && !isNan(b); }
${STRIDED_OFFSET}
${fns.join("\n")}
${bindings.join("\n")}
${program.body}`;
}

/**
 * Whether the program reads leaf `leaf` (0-based) only at element i (not broadcast, not element 0): then a
 * kernel that has just computed that leaf's element i can evaluate the program as an epilogue.
 */
export function readsLeafAtI(program: FusedProgram<unknown>, leaf: number): boolean {
  const uses = program.body.match(new RegExp(`\\bL${leaf + 1}\\[[^\\]]*\\]`, "g")) ?? [];
  return uses.length > 0 && uses.every((u) => u === `L${leaf + 1}[i]`);
}

/**
 * fusedDeclarations for an epilogue (see readsLeafAtI): leaf `leaf` is read from `buffer`; the other leaves
 * are bound from `firstBinding` on, in order.
 */
export function fusedEpilogueDeclarations(program: FusedProgram<unknown>, leaf: number, buffer: string, firstBinding: number): string {
  const others = program.leaves.map((_, k) => k).filter((k) => k !== leaf);
  const bindings = others.map((k, m) => `@group(0) @binding(${firstBinding + m}) var<storage, read> L${k + 1}: array<f32>;`);
  const declarations = fusedDeclarations({ ...program, leaves: [] }).replace(new RegExp(`\\bL${leaf + 1}\\[i\\]`, "g"), `${buffer}[i]`);
  return `${typeAlias("float32")}${bindings.join("\n")}\n${declarations}`;
}

/** Parameter word where an elementwise kernel's program starts (P(0) = n). */
export const FUSED_ELEMENTWISE_PARAM_BASE = 4;

/** out[i] = fused(i) for i < P(0); the output follows the leaves' bindings. */
export function fusedElementwiseSource(program: FusedProgram<unknown>, intoBox = false): string {
  // Into a box: element i goes to row i / P(2), column i % P(2) of a box at P(1) with rows P(3) apart.
  const store = intoBox ? "Out[P(1) + (i / P(2)) * P(3) + i % P(2)] = fused(i);" : "Out[i] = fused(i);";
  return `${typeAlias("float32")}${COMMON}${fusedDeclarations(program)}
@group(0) @binding(${program.leaves.length + 1}) var<storage, read_write> Out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatId(wid, nwg, lid);
  if (i < P(0)) { ${store} }
}
`;
}
