// How work is encoded: a chain of kernels (a conv block forward and its kernel gradient) in one command
// encoder with one submit and intermediates released mid-chain (their buffers reused in stream order), an
// encoder of the caller's own, uploads after releases (never into a buffer a pending command reads),
// GPU validation errors surfacing as exceptions, and the adapter report.
// Tolerances: the chain is compared with the reference backend at 2e-6 * sqrt(K) relative to the same chain
// on |values| (products) and 64 eps elsewhere; the reuse checks are exact.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ConvArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { dawnFlags, describeAdapter } from "../../src/engine/backends/webgpu/device.ts";
import { BufferPool, USAGE } from "../../src/engine/backends/webgpu/buffers.ts";
import { assertClose, assertSame, kernels, randomF32, rng } from "./helpers.ts";

const cpu = new CpuBackend();
const EPS = 2 ** -23;

test("adapter: a device exists and reports what it is", async () => {
  const k = await kernels();
  assert.ok(k.info, "the kernels know their adapter");
  console.log(`# ${describeAdapter(k.info)}; limits: storage binding ${k.device.limits.maxStorageBufferBindingSize} B, workgroup memory ${k.device.limits.maxComputeWorkgroupStorageSize} B`);
  assert.ok(k.device.limits.maxComputeInvocationsPerWorkgroup >= 256);
});

test("Dawn's flags: the backend, unrounded timestamps when timing, then TINY_DIFFUSION_DAWN_FLAGS' words", () => {
  assert.deepEqual(dawnFlags(["backend=vulkan"], false, undefined), ["backend=vulkan"]);
  assert.deepEqual(dawnFlags(["backend=vulkan"], true, ""), ["backend=vulkan", "disable-dawn-features=timestamp_quantization"]);
  assert.deepEqual(dawnFlags(["backend=vulkan"], false, " enable-dawn-features=disable_robustness  dump_shaders "),
    ["backend=vulkan", "enable-dawn-features=disable_robustness", "dump_shaders"]);
});

test("a conv block forward + kernel gradient encoded in one encoder, one submit, intermediates released mid-chain", async () => {
  const k = await kernels();
  const rand = rng(1);
  const args: ConvArgs = { b: 8, h: 8, w: 8, c: 16, kh: 3, kw: 3, o: 24, pad: 1, oh: 8, ow: 8 };
  const x = randomF32(8 * 8 * 8 * 16, rand);
  const kernel = randomF32(3 * 3 * 16 * 24, rand, 0.3);
  const bias = randomF32(24, rand);
  const yShape = [8, 8, 8, 24];
  const n = 8 * 8 * 8 * 24;

  // Reference: y = gelu(conv(x) + bias); s = sum over all but channels; kg = conv2dKernelGrad(x, y).
  const conv = new Float32Array(n);
  cpu.conv2d(x, kernel, conv, args);
  const pre = new Float32Array(n);
  cpu.binary("add", conv, yShape, bias, [1, 1, 1, 24], pre, yShape);
  const y = new Float32Array(n);
  cpu.unary("gelu", pre, y);
  const s = new Float32Array(24);
  cpu.reduce("sum", y, yShape, [0, 1, 2], s);
  const kg = new Float32Array(3 * 3 * 16 * 24);
  cpu.conv2dKernelGrad(x, y, kg, args);

  const submitsBefore = k.stats().submits;
  const enc = k.encoder();
  const gx = k.upload(x);
  const gk = k.upload(kernel);
  const gb = k.upload(bias);
  const gconv = k.alloc("float32", n);
  k.conv2d(gx, gk, gconv, args, enc);
  const gpre = k.alloc("float32", n);
  k.binary("add", gconv, yShape, gb, [1, 1, 1, 24], gpre, yShape, enc);
  k.release(gconv); // read by the add above; the next output of this size reuses it after that add
  const gy = k.alloc("float32", n);
  k.unary("gelu", gpre, gy, enc);
  k.release(gpre);
  const gs = k.alloc("float32", 24);
  k.reduce("sum", gy, yShape, [0, 1, 2], gs, enc);
  const gkg = k.alloc("float32", kg.length);
  k.conv2dKernelGrad(gx, gy, gkg, args, enc);
  const scratch = k.alloc("float32", n); // takes gconv's or gpre's buffer: written after their readers
  k.fill(scratch, 123, enc);

  const gotKg = await k.download(gkg); // the one submit
  assert.equal(k.stats().submits - submitsBefore, 1, "the whole chain went in one submit");
  const scaleKg = new Float32Array(kg.length);
  cpu.conv2dKernelGrad(x.map(Math.abs), y.map(Math.abs), scaleKg, args);
  assertClose(gotKg, kg, 64 * EPS * Math.sqrt(8 * 8 * 8), scaleKg, "kernel gradient after the chain", 1e-30);
  const absSum = new Float32Array(24);
  cpu.reduce("sum", y.map(Math.abs), yShape, [0, 1, 2], absSum);
  assertClose(await k.download(gs), s, 64 * EPS * Math.sqrt(512), absSum, "channel sums after the chain", 1e-30);
  assertClose(await k.download(gy), y, 64 * EPS, null, "gelu(conv + bias)", 1e-6);
  assertSame(await k.download(scratch), new Float32Array(n).fill(123), "reused buffer");
  for (const t of [gx, gk, gb, gy, gs, gkg, scratch]) k.release(t);
});

test("uploads after a release never overwrite what a pending command reads; outputs reuse in stream order", async () => {
  const k = await kernels();
  const a = Float32Array.from({ length: 1000 }, (_, i) => i);
  const ga = k.upload(a);
  const neg = k.alloc("float32", 1000);
  k.unary("neg", ga, neg); // encoded, not submitted
  k.release(ga);
  const gb = k.upload(new Float32Array(1000).fill(-5)); // must not land in ga's buffer before the neg runs
  const reused = k.alloc("float32", 1000); // may take ga's buffer: written after the neg in stream order
  k.fill(reused, 7);
  assertSame(await k.download(neg), a.map((v) => -v), "neg of the released input");
  assertSame(await k.download(gb), new Float32Array(1000).fill(-5), "the upload");
  assertSame(await k.download(reused), new Float32Array(1000).fill(7), "the reused output");
});

test("an encoder of the caller's own, finished and submitted through the kernels", async () => {
  const k = await kernels();
  const x = randomF32(300, rng(3));
  const gx = k.upload(x);
  const out = k.alloc("float32", 300);
  const enc = k.device.createCommandEncoder();
  k.unary("square", gx, out, enc);
  k.submit([k.finish(enc)]);
  assertSame(await k.download(out), x.map((v) => Math.fround(v * v)), "square via an external encoder");
});

test("GPU validation errors surface as exceptions (an output aliasing its input); the device stays usable", async () => {
  const k = await kernels();
  const x = k.upload(new Float32Array(64));
  k.unary("exp", x, x);
  await assert.rejects(k.download(x), /GPU error/);
  const out = k.alloc("float32", 64);
  k.unary("exp", x, out);
  assertSame(await k.download(out), new Float32Array(64).fill(1), "exp(0) after the error");
});

test("bind groups are reused when a step repeats on the same buffers, and rebuilt after trim() destroys buffers", async () => {
  const k = await kernels({ splitKMinWorkgroups: 3 }); // its own kernels (own cache) on the shared device
  const rand = rng(31);
  const xs = randomF32(1000, rand), ys = randomF32(1000, rand);
  const expected = new Float32Array(1000);
  const scale = new Float32Array(1000); // tanh(x) + y may cancel: errors relative to (|tanh x| + |y|) |y|
  for (let i = 0; i < 1000; i++) {
    expected[i] = Math.fround(Math.fround(Math.tanh(xs[i]!) + ys[i]!) * ys[i]!);
    scale[i] = (Math.abs(Math.tanh(xs[i]!)) + Math.abs(ys[i]!)) * Math.abs(ys[i]!);
  }
  const step = async (): Promise<Float32Array> => {
    const x = k.upload(xs), y = k.upload(ys);
    const t = k.alloc("float32", 1000), s = k.alloc("float32", 1000), out = k.alloc("float32", 1000);
    k.unary("tanh", x, t);
    k.binary("add", t, [1000], y, [1000], s, [1000]);
    k.binary("mul", s, [1000], y, [1000], out, [1000]);
    const values = (await k.download(out)) as Float32Array;
    for (const a of [x, y, t, s, out]) k.release(a);
    return values;
  };
  assertClose(await step(), expected, 8 * EPS, scale, "first step"); // tanh within a few ulp
  // The pool's free lists settle into a cycle within a few steps (uploads take only settled buffers).
  for (let i = 0; i < 4; i++) await step();
  const created = k.stats().bindGroupsCreated;
  for (let i = 0; i < 3; i++) assertSame(await step(), await step(), "repeated steps");
  assert.equal(k.stats().bindGroupsCreated, created, "the repeated steps created no bind group");
  k.trim(); // destroys the free buffers the cached bind groups refer to
  assertClose(await step(), expected, 8 * EPS, scale, "after trim");
  assert.ok(k.stats().bindGroupsCreated > created, "bind groups were rebuilt on new buffers");
});

test("the buffer pool hands out settled buffers oldest first, whatever order they were released in", async () => {
  const k = await kernels();
  const pool = new BufferPool(k.device, USAGE.STORAGE | USAGE.COPY_DST, "test");
  const made = [0, 1, 2, 3].map(() => pool.acquire(1024, true));
  for (const i of [2, 0, 3, 1]) pool.release(made[i]!);
  pool.settle();
  assert.deepEqual([0, 1, 2, 3].map(() => made.indexOf(pool.acquire(1024, true))), [0, 1, 2, 3]);
  for (const b of made) pool.release(b, true);
  pool.trim();
});

test("releasing an array twice is refused (its buffer would be handed out twice)", async () => {
  const k = await kernels();
  for (const a of [k.alloc("float32", 8), k.upload(Float32Array.from([1, 2]))]) {
    k.release(a);
    assert.throws(() => k.release(a), /released twice/);
  }
});
