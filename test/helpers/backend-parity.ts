// Shared by the tests that run the same computation on a faster backend and on the reference: seeded
// parameter leaves, and whole-tensor comparisons with errors relative to each tensor's scale (its largest
// magnitude), the way float32 sums err.
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";

/** Named values with shapes (float64, made into tensors of any dtype on any backend by the test). */
export type Leaves = Map<string, { values: Float64Array; shape: number[] }>;

/** Standard-normal leaves from a seed; names starting with "k" (kernels) are scaled by 1/sqrt(fan-in). */
export function randomLeaves(spec: Record<string, number[]>, seed: number): Leaves {
  let key = td.random.key(seed);
  const out: Leaves = new Map();
  for (const [name, shape] of Object.entries(spec)) {
    const [k, next] = td.random.split(key) as [td.random.RandomKey, td.random.RandomKey];
    key = next;
    const n = shape.reduce((p, d) => p * d, 1);
    const values = td.random.normalArray(k, n).map((v) => v * (name.startsWith("k") ? 1 / Math.sqrt(n / shape[shape.length - 1]!) : 1));
    out.set(name, { values, shape });
  }
  return out;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** |a - b| <= rel * max(max|b|, floor) elementwise; returns the worst error relative to that scale. */
export function assertTensorClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, what: string, floor = 0): number {
  assert.equal(a.length, b.length, `${what}: length`);
  const scale = Math.max(maxAbs(b), floor);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst <= rel * scale + 1e-30, `${what}: max error ${worst} > ${rel} * ${scale}`);
  return scale === 0 ? worst : worst / scale;
}
