// Shared helpers of the WebGPU kernel tests: one device per test file (destroyed after the file, so Node
// exits), seeded random data, and a tolerance-aware comparison. The tests never skip: without an adapter
// they fail with the packages to install (device.ts SOFTWARE_ADAPTER_HELP).
import assert from "node:assert/strict";
import { after } from "node:test";
import type { TypedArray } from "../../src/engine/backend.ts";
import { createGpuDevice, describeAdapter, type GpuContext } from "../../src/engine/backends/webgpu/device.ts";
import { WebGpuKernels, type GpuArray, type WebGpuKernelsOptions } from "../../src/engine/backends/webgpu/kernels.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
export { rng } from "../helpers/random.ts";
import { rng } from "../helpers/random.ts";

let context: Promise<GpuContext> | null = null;
const instances = new Map<string, Promise<WebGpuKernels>>();

/**
 * Kernels on the adapter device.ts picks (TINY_DIFFUSION_WEBGPU overrides). One device per test file, shared
 * by the kernels of every options set: Dawn's OpenGL ES backend on Mesa 22.3 sometimes crashes at exit when
 * two devices lived in one process and one of them saw a validation error.
 */
export function kernels(options: WebGpuKernelsOptions = {}): Promise<WebGpuKernels> {
  context ??= createGpuDevice({ timestamps: true }).then((created) => {
    console.log(`# webgpu adapter: ${describeAdapter(created.info)}`);
    return created;
  });
  const key = JSON.stringify(options);
  let k = instances.get(key);
  if (!k) {
    k = context.then((c) => new WebGpuKernels(c.device, options, c));
    instances.set(key, k);
  }
  return k;
}

after(async () => {
  for (const k of instances.values()) {
    try {
      (await k).destroy(); // the first one destroys the shared device too
    } catch {
      // creation failed: the tests already reported it
    }
  }
  instances.clear();
  context = null;
  backendPromise = null;
});

/** A small deterministic generator (mulberry32), so failures reproduce. */
/** n float32 values uniform in [low, high) from rng(seed). */
export function uniformValues(n: number, seed: number, low = -1, high = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => low + (high - low) * r());
}


/** Uniform values in [-scale, scale). */
export function randomF32(size: number, rand: () => number, scale = 1): Float32Array {
  const a = new Float32Array(size);
  for (let i = 0; i < size; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

export function randomI32(size: number, rand: () => number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(size);
  for (let i = 0; i < size; i++) a[i] = lo + Math.floor(rand() * (hi - lo));
  return a;
}

export function absCopy(a: TypedArray): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.abs(a[i]!);
  return out;
}

/** An output array pre-filled with NaN bits (so an element the kernel forgets shows up). */
export function poisoned(k: WebGpuKernels, dtype: "float32" | "int32", length: number): GpuArray {
  const out = k.alloc(dtype, length);
  k.fill(out, dtype === "float32" ? Number.NaN : -777777, k.encoder());
  return out;
}

/**
 * Asserts |actual - expected| <= rel * scale[i] + abs elementwise, where scale[i] is the magnitude the
 * error is relative to (|expected| by default; for a dot product sum |a_k b_k|).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, scale: ArrayLike<number> | null, what: string, abs = 0): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!;
    const g = actual[i]!;
    if (Number.isNaN(e) && Number.isNaN(g)) continue;
    if (e === g) continue; // infinities
    const s = scale ? scale[i]! : Math.abs(e);
    const err = Math.abs(g - e);
    const allowed = rel * s + abs;
    if (!(err <= allowed)) {
      const ratio = Number.isNaN(err) ? Infinity : err / Math.max(allowed, 1e-300);
      if (ratio > worst || at < 0) {
        worst = ratio;
        at = i;
      }
    }
  }
  if (at >= 0) {
    assert.fail(`${what}: element ${at}: got ${actual[at]}, expected ${expected[at]} (scale ${scale ? scale[at] : Math.abs(expected[at]!)}, ${worst.toFixed(2)}x the tolerance)`);
  }
}

/** Exact equality (NaN equals NaN). */
export function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    assert.fail(`${what}: element ${i}: got ${a}, expected ${e}`);
  }
}

let backendPromise: Promise<WebGpuBackend> | null = null;

/** The engine's WebGpuBackend on this file's shared device (for tests through the Tensor frontend). */
export function webgpuBackend(): Promise<WebGpuBackend> {
  backendPromise ??= kernels().then((k) => new WebGpuBackend(k));
  return backendPromise;
}
