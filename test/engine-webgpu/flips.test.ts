// Pending kernel flips (src/engine/backends/webgpu/flips.ts): conv2d reads a flipKernel output's source
// flipped instead of running the flip; any other reader computes it. References: the CPU backend, which
// flips eagerly (ops/conv.ts: the input gradient is conv2d(g, flipKernel(kernel), kh - 1 - pad)).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { kernels, rng } from "./helpers.ts";
import { assertTensorClose } from "../helpers/backend-parity.ts";

after(() => td.setBackend(new CpuBackend()));

let gpu: WebGpuBackend | null = null;
async function backend(): Promise<WebGpuBackend> {
  gpu ??= new WebGpuBackend(await kernels());
  return gpu;
}

function randomValues(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** fn on a backend, results read back as float64. */
async function on(b: td.Backend, fn: () => td.Tensor[]): Promise<Float64Array[]> {
  td.setBackend(b);
  try {
    const outs = td.tidy(fn);
    b.flush();
    const values = await Promise.all(outs.map((t) => t.read()));
    td.dispose(outs);
    return values.map((v) => Float64Array.from(v));
  } finally {
    td.setBackend(new CpuBackend());
  }
}

// (kh, kw, c, o): a 3x3 kernel (the flip rotates taps and transposes channels), a 1x1 one (a transpose:
// conv2d runs as a matmul with B transposed), odd channel counts across the 64-wide GEMM tiles, and 40
// output channels: the input gradient's K = 9 * 40 splits in two, the second split starting mid-tap.
const CASES: [number, number, number, number][] = [[3, 3, 5, 7], [1, 1, 6, 3], [3, 3, 67, 2], [3, 3, 5, 40]];

test("a convolution's input gradient reads the kernel flipped: no flip kernel runs, values as the reference", async () => {
  const g = await backend();
  for (const [kh, kw, c, o] of CASES) {
    const x = randomValues(2 * 5 * 4 * c, 1), k = randomValues(kh * kw * c * o, 2), w = randomValues(2 * 5 * 4 * o, 3);
    const fn = (): td.Tensor[] => {
      const xs = td.tensor(x, [2, 5, 4, c]), ks = td.tensor(k, [kh, kw, c, o]), ws = td.tensor(w, [2, 5, 4, o]);
      return [td.grad((xx: td.Tensor) => td.sum(td.mul(td.conv2d(xx, ks), ws)))(xs)];
    };
    const ref = await on(new CpuBackend(), fn);
    const before = g.stats();
    const got = await on(g, fn);
    const after = g.stats();
    // float32 sums of kh*kw*o products in a different order than the float64 reference: 1e-5 of the scale.
    assertTensorClose(got[0]!, ref[0]!, 1e-5, `${kh}x${kw}, c ${c}, o ${o}`);
    assert.equal(after.flips.folded - before.flips.folded, 1, "the conv2d folded the flip");
    assert.equal(after.flips.materialized - before.flips.materialized, 0, "no flipKernel dispatch");
    assert.equal(after.flips.pending, 0);
  }
});

test("a flip read by anything but a conv2d is computed first", async () => {
  const g = await backend();
  const k = randomValues(3 * 3 * 4 * 6, 4);
  const fn = (): td.Tensor[] => {
    const flipped = td.flipKernel(td.tensor(k, [3, 3, 4, 6]));
    return [flipped, td.mul(flipped, 2), td.sum(flipped, [0, 1])]; // a read, a fused op, a reduction
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats().flips;
  const got = await on(g, fn);
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-6, `output ${i}`));
  assert.equal(g.stats().flips.materialized - before.materialized, 1, "computed once, then read as an array");
});

test("a kernel released while its flip is pending is kept until the flip is used or dropped", async () => {
  const g = await backend();
  const x = randomValues(1 * 4 * 4 * 3, 5), k = randomValues(3 * 3 * 2 * 3, 6);
  const reference = await on(new CpuBackend(), () => [td.conv2d(td.tensor(x, [1, 4, 4, 3]), td.flipKernel(td.tensor(k, [3, 3, 2, 3])), 1)]);
  td.setBackend(g);
  try {
    const kernel = td.tensor(k, [3, 3, 2, 3]);
    const flipped = td.flipKernel(kernel);
    kernel.dispose(); // its buffer must not go back to the pool yet...
    // ...where these same-sized uploads would take it and overwrite the values the flip reads.
    const decoys = Array.from({ length: 4 }, () => td.tensor(new Float32Array(k.length).fill(100), [3, 3, 2, 3]));
    const y = td.conv2d(td.tensor(x, [1, 4, 4, 3]), flipped, 1);
    assertTensorClose(Float64Array.from(await y.read()), reference[0]!, 1e-5, "conv2d of a flip whose source was released");
    td.dispose([flipped, y, ...decoys]);
    assert.equal(g.stats().flips.pending, 0);
  } finally {
    td.setBackend(new CpuBackend());
  }
});
