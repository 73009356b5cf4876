// Argument checks shared by the ops: errors name the op, the shapes and the dtypes.
import type { Shape } from "../backend.ts";
import { shapeString, Tensor } from "../tensor.ts";

export function checkSameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new Error(`${op}: dtype mismatch: ${a.dtype} ${shapeString(a.shape)} vs ${b.dtype} ${shapeString(b.shape)}`);
  }
}

export function checkFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype === "int32") throw new Error(`${op}: expected a float tensor, got int32 ${shapeString(t.shape)}`);
  }
}

export function checkRank(op: string, t: Tensor, rank: number, what = "input"): void {
  if (t.rank !== rank) throw new Error(`${op}: ${what} must have rank ${rank}, got shape ${shapeString(t.shape)}`);
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${shapeString(a)} and ${shapeString(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Left-pads a shape with 1s to a rank. */
export function padShape(shape: Shape, rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

export function normalizeAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
