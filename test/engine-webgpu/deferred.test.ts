// Deferred layout ops (src/engine/backends/webgpu/deferred.ts). Kernel flips: conv2d reads a flipKernel
// output's source flipped instead of running the flip. Upsamples: a copy of a whole upsampleNearest output
// into a box (concat) writes the upsampled source in place. Any other reader computes them. References: the
// CPU backend, which runs both eagerly (ops/conv.ts: the input gradient is conv2d(g, flipKernel(kernel),
// kh - 1 - pad); ops/nn.ts upsampleNearest; ops/shape.ts concat: one copyBox per part).
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

// Upsamples. (b, h, w, c) -> (height, width), and the concat: the U-Net's decoder (2x, skip after, channels
// last), the upsample second (a channel offset), a concat along the batch axis (an offset on axis 0), and a
// resize that is not a whole multiple (5 -> 8, 3 -> 7: jax.image.resize's nearest rounding).
const UPSAMPLE_CASES: { shape: [number, number, number, number]; size: [number, number]; other: [number, number, number, number]; axis: number; first: boolean }[] = [
  { shape: [2, 4, 4, 3], size: [8, 8], other: [2, 8, 8, 5], axis: -1, first: true },
  { shape: [3, 2, 2, 4], size: [4, 4], other: [3, 4, 4, 2], axis: 3, first: false },
  { shape: [2, 5, 3, 2], size: [8, 7], other: [1, 8, 7, 2], axis: 0, first: false },
];

test("concat of an upsample writes it in place: no upsample dispatch of its own, values as the reference", async () => {
  const g = await backend();
  for (const [i, { shape, size, other, axis, first }] of UPSAMPLE_CASES.entries()) {
    const xv = randomValues(shape.reduce((a, b) => a * b), 10 + i), ov = randomValues(other.reduce((a, b) => a * b), 20 + i);
    const fn = (): td.Tensor[] => {
      const up = td.upsampleNearest(td.tensor(xv, shape), size[0], size[1]);
      const skip = td.tensor(ov, other);
      return [td.concat(first ? [up, skip] : [skip, up], axis)];
    };
    const ref = await on(new CpuBackend(), fn);
    const before = g.stats();
    const got = await on(g, fn);
    const after = g.stats();
    assert.deepEqual(got[0], ref[0], `case ${i}: copies, bit for bit`);
    assert.equal(after.upsamples.folded - before.upsamples.folded, 1, `case ${i}: the concat folded the upsample`);
    assert.equal(after.upsamples.materialized - before.upsamples.materialized, 0, `case ${i}: no upsample of its own`);
    // Along the batch axis the other part is contiguous: a buffer copy, not a dispatch.
    assert.equal(after.dispatches - before.dispatches, axis === 0 ? 1 : 2, `case ${i}: one dispatch per part of the concat`);
    assert.equal(after.upsamples.pending, 0);
  }
});

test("an upsample read by anything but a whole copy into a box is computed first", async () => {
  const g = await backend();
  const xv = randomValues(2 * 3 * 3 * 4, 30);
  const fn = (): td.Tensor[] => {
    const up = td.upsampleNearest(td.tensor(xv, [2, 3, 3, 4]), 6, 6);
    // a read, a fused op, a reduction, a part of it sliced out, a copy that takes only a box of it
    return [up, td.mul(up, 2), td.sum(up, [1, 2]), td.slice(up, [0, 1, 2, 0], [2, 3, 3, 4]), td.concat([td.slice(up, [0, 0, 0, 1], [2, 6, 6, 2]), up], 3)];
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats().upsamples;
  const got = await on(g, fn);
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-6, `output ${i}`));
  const after = g.stats().upsamples;
  assert.equal(after.materialized - before.materialized, 1, "computed once, then read as an array");
  assert.equal(after.folded - before.folded, 0, "read as an array once computed");
});

test("gradients through concat(upsample(x), skip), to second order, as the reference", async () => {
  const g = await backend();
  const xv = randomValues(2 * 2 * 2 * 3, 40), sv = randomValues(2 * 4 * 4 * 2, 41), wv = randomValues(3 * 3 * 5 * 2, 42);
  // The U-Net's pattern: a conv after the concat; the penalty's shape: the gradient's square, differentiated again.
  const fn = (): td.Tensor[] => {
    const skip = td.tensor(sv, [2, 4, 4, 2]), w = td.tensor(wv, [3, 3, 5, 2]);
    const f = (x: td.Tensor): td.Tensor => td.sum(td.square(td.conv2d(td.concat([td.upsampleNearest(x, 4, 4), skip], -1), w)));
    const penalty = (x: td.Tensor): td.Tensor => td.sum(td.square(td.grad(f)(x)));
    const x = td.tensor(xv, [2, 2, 2, 3]);
    return [f(x), td.grad(f)(x), td.grad(penalty)(x)];
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats().upsamples;
  const got = await on(g, fn);
  // float32 sums in another order than the float64 reference, squared twice: 1e-4 of the scale.
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-4, ["value", "gradient", "second order"][i]!));
  assert.ok(g.stats().upsamples.folded > before.folded, "the forward passes folded their upsamples");
});

test("an input released while its upsample is pending is kept until the upsample is used or dropped", async () => {
  const g = await backend();
  const xv = randomValues(1 * 2 * 2 * 3, 50), sv = randomValues(1 * 4 * 4 * 1, 51);
  const reference = await on(new CpuBackend(), () => [td.concat([td.upsampleNearest(td.tensor(xv, [1, 2, 2, 3]), 4, 4), td.tensor(sv, [1, 4, 4, 1])], -1)]);
  td.setBackend(g);
  try {
    const x = td.tensor(xv, [1, 2, 2, 3]);
    const up = td.upsampleNearest(x, 4, 4);
    x.dispose(); // its buffer must not go back to the pool yet...
    // ...where these same-sized uploads would take it and overwrite the values the upsample reads.
    const decoys = Array.from({ length: 4 }, () => td.tensor(new Float32Array(xv.length).fill(100), [1, 2, 2, 3]));
    const y = td.concat([up, td.tensor(sv, [1, 4, 4, 1])], -1);
    assert.deepEqual(Float64Array.from(await y.read()), reference[0]!, "concat of an upsample whose input was released");
    td.dispose([up, y, ...decoys]);
    const dropped = g.stats().upsamples;
    const source = td.tensor(xv, [1, 2, 2, 3]);
    td.upsampleNearest(source, 4, 4).dispose();
    source.dispose();
    assert.equal(g.stats().upsamples.dropped - dropped.dropped, 1, "an upsample nobody read is never run");
    assert.equal(g.stats().upsamples.pending, 0);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

// Slices. A contiguous slice copied whole into its own array is deferred; a matmul, or a 1x1 convolution
// (a matmul), reads it in its source at an offset. The U-Net's case: on a 1x1 map a 3x3 convolution uses
// only its kernel's centre tap (ops/conv.ts slices it out), every step.
test("a 3x3 convolution on a 1x1 map reads its kernel's centre tap in place: no copy, values as the reference", async () => {
  const g = await backend();
  const xv = randomValues(6 * 1 * 1 * 5, 60), kv = randomValues(3 * 3 * 5 * 7, 61), bv = randomValues(7, 62);
  const fn = (): td.Tensor[] => [td.add(td.conv2d(td.tensor(xv, [6, 1, 1, 5]), td.tensor(kv, [3, 3, 5, 7])), td.tensor(bv, [7]))];
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats();
  const got = await on(g, fn);
  const after = g.stats();
  // float32 sums of 5 products against the float64 reference: 1e-6 of the scale.
  assertTensorClose(got[0]!, ref[0]!, 1e-6, "conv2d on a 1x1 map, bias as its epilogue");
  assert.equal(after.slices.folded - before.slices.folded, 1, "the product read the centre tap in place");
  assert.equal(after.slices.materialized - before.slices.materialized, 0, "no copy of it");
  assert.equal(after.dispatches - before.dispatches, 1, "one dispatch: the product with its bias");
  assert.equal(after.slices.pending, 0);
});

test("matmul reads a slice of rows in place (batched, transposed); other readers and non-contiguous boxes copy", async () => {
  const g = await backend();
  const av = randomValues(3 * 4 * 6, 70), bv = randomValues(10 * 4 * 5, 71);
  const fn = (): td.Tensor[] => {
    const b = td.tensor(bv, [10, 4, 5]);
    const rows = td.slice(b, [4, 0, 0], [3, 4, 5]); // contiguous: matrices 4..6
    const a = td.tensor(av, [3, 4, 6]);
    return [
      td.matmul(td.transpose(a, [0, 2, 1]), rows), // [3, 6, 5]
      td.matmul(a, td.slice(b, [0, 0, 1], [3, 4, 3]), { transA: true }), // not contiguous: copied first
      td.mul(td.slice(b, [9, 0, 0], [1, 4, 5]), 2), // contiguous but read by a fused op: copied first
    ];
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats().slices;
  const got = await on(g, fn);
  const after = g.stats().slices;
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-6, `output ${i}`));
  assert.equal(after.folded - before.folded, 1, "the contiguous rows read in place");
  assert.equal(after.materialized - before.materialized, 1, "the slice read by a fused op copied once");
});

test("gradients through a 3x3 convolution on a 1x1 map, to second order, as the reference; the centre tap read in place throughout", async () => {
  const g = await backend();
  const xv = randomValues(2 * 1 * 1 * 3, 80), kv = randomValues(3 * 3 * 3 * 4, 81);
  const fn = (): td.Tensor[] => {
    const k = td.tensor(kv, [3, 3, 3, 4]);
    const f = (x: td.Tensor): td.Tensor => td.sum(td.square(td.conv2d(x, k)));
    const penalty = (kk: td.Tensor): td.Tensor => td.sum(td.square(td.grad((x: td.Tensor) => td.sum(td.square(td.conv2d(x, kk))))(td.tensor(xv, [2, 1, 1, 3]))));
    const x = td.tensor(xv, [2, 1, 1, 3]);
    return [f(x), td.grad(f)(x), td.grad(penalty)(k)];
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats().slices;
  const got = await on(g, fn);
  // float32 against float64, squared twice: 1e-5 of the scale.
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-5, ["value", "input gradient", "kernel gradient of the penalty"][i]!));
  const after = g.stats().slices;
  assert.ok(after.folded > before.folded, "the convolutions read the centre tap in place");
  // The input gradients read it flipped in place too (a 1x1 flip is a transposed read): never copied.
  assert.equal(after.materialized - before.materialized, 0, `the centre tap never copied (${after.folded - before.folded} reads in place)`);
});

test("a pending slice keeps its values when a replay overwrites its source; a released source waits for it", async () => {
  const g = await backend();
  td.setBackend(g);
  try {
    const step = td.captureStep(([x]: td.Tensor[]) => [td.mul(x!, 2)], [td.tensor(Float32Array.of(1, 2, 3, 4), [4])]);
    try {
      const early = td.slice(step.outputs[0]!, [1], [2]); // pending: reads the output's buffer
      step.replay([Float32Array.of(10, 20, 30, 40)]); // overwrites that buffer
      assert.deepEqual(Array.from(await early.read()), [4, 6], "the slice holds the values it was taken from");
      assert.deepEqual(Array.from(await step.outputs[0]!.read()), [20, 40, 60, 80]);
      early.dispose();
    } finally {
      step.dispose();
    }
    const source = td.tensor(Float32Array.of(1, 2, 3, 4, 5, 6), [6]);
    const part = td.slice(source, [2], [3]);
    source.dispose(); // its buffer must not go back to the pool while the slice is pending
    const decoys = Array.from({ length: 4 }, () => td.tensor(new Float32Array(6).fill(100), [6]));
    assert.deepEqual(Array.from(await part.read()), [3, 4, 5], "a slice whose source was released");
    td.dispose([part, ...decoys]);
    assert.equal(g.stats().slices.pending, 0);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("a flip of a pending centre tap read by anything but a conv2d computes both, in order", async () => {
  const g = await backend();
  const kv = randomValues(3 * 3 * 4 * 6, 90);
  const fn = (): td.Tensor[] => {
    const flipped = td.flipKernel(td.slice(td.tensor(kv, [3, 3, 4, 6]), [1, 1, 0, 0], [1, 1, 4, 6]));
    return [td.mul(flipped, 3), td.sum(flipped, [2])];
  };
  const ref = await on(new CpuBackend(), fn);
  const before = g.stats();
  const got = await on(g, fn);
  got.forEach((v, i) => assertTensorClose(v, ref[i]!, 1e-6, `output ${i}`));
  assert.equal(g.stats().slices.materialized - before.slices.materialized, 1, "the slice copied once, before the flip");
  assert.equal(g.stats().flips.materialized - before.flips.materialized, 1);
});
