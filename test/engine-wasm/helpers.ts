// Shared helpers of the WasmBackend tests: seeded random data, backends, and a tolerance-aware comparison.
import assert from "node:assert/strict";
import type { TypedArray } from "../../src/engine/backend.ts";
import type { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WasmBackend, type WasmBackendOptions } from "../../src/engine/backends/wasm/index.ts";
export { rng } from "../helpers/random.ts";


/** Fills with uniform values in [-1, 1). */
export function fillRandom(a: TypedArray, rand: () => number, scale = 1): TypedArray {
  for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** An array of `size` random values allocated by `backend` (in its memory). */
export function randomIn(backend: CpuBackend, size: number, rand: () => number, scale = 1): Float32Array {
  return fillRandom(backend.alloc("float32", size), rand, scale) as Float32Array;
}

export function absCopy(a: TypedArray): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.abs(a[i]!);
  return out;
}

/**
 * Asserts |actual - expected| <= rel * scale[i] + abs elementwise, where scale[i] is the magnitude the
 * error is relative to (for a dot product: sum |a_k b_k|, computed by the reference on |A| and |B|).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, scale: ArrayLike<number> | null, what: string, abs = 0): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const s = scale ? scale[i]! : Math.abs(expected[i]!);
    const err = Math.abs(actual[i]! - expected[i]!);
    const allowed = rel * s + abs;
    if (!(err <= allowed)) {
      const ratio = Number.isNaN(err) ? Infinity : err / Math.max(allowed, 1e-300);
      if (ratio > worst) {
        worst = ratio;
        at = i;
      }
    }
  }
  if (at >= 0) {
    assert.fail(`${what}: element ${at}: got ${actual[at]}, expected ${expected[at]} (scale ${scale ? scale[at] : Math.abs(expected[at]!)}, ${worst.toFixed(2)}x the tolerance)`);
  }
}

const backends = new Map<string, WasmBackend>();

/** Shared backends for a test file: threads 1 or 2, every product split across threads (parallelMinFlops 0, and no contention guard: stallMs 0). */
export async function wasmBackend(threads: number, options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const key = `${threads}:${JSON.stringify(options)}`;
  let b = backends.get(key);
  if (!b) {
    b = await WasmBackend.create({ threads, parallelMinFlops: 0, stallMs: 0, ...options });
    backends.set(key, b);
  }
  return b;
}

export function disposeBackends(): void {
  for (const b of backends.values()) b.dispose();
  backends.clear();
}

/** Exact equality, NaN equal to NaN (and 0 equal to -0). */
export function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const x = actual[i]!, y = expected[i]!;
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    assert.fail(`${what}: element ${i}: got ${x}, expected ${y}`);
  }
}

/** Distance in units in the last place of float32 (0 for equal values, NaN pairs and equal infinities). */
export function ulpDistance(x: number, y: number): number {
  if (x === y || (Number.isNaN(x) && Number.isNaN(y))) return 0;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return Infinity;
  const f = new Float32Array([x, y]);
  const i = new Int32Array(f.buffer);
  const ord = (v: number): number => (v < 0 ? -2147483648 - v : v);
  return Math.abs(ord(i[0]!) - ord(i[1]!));
}
