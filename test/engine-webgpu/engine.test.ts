// The whole engine on the WebGpuBackend (setBackend): a small conv net with a second-order gradient, and the
// U-Net (features 4) training loss with its gradient penalty. Values and gradients must equal the reference
// CPU backend's within float32 tolerances (stated at each assertion). Results come back with await t.read().
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { initUNet, unetForward, type UNetParams } from "../../src/nn/unet.ts";
import { diffusionLoss } from "../../src/train/loss.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { kernels, webgpuBackend } from "./helpers.ts";
import { assertTensorClose, maxAbs, randomLeaves, type Leaves } from "../helpers/backend-parity.ts";

after(() => td.setBackend(new CpuBackend()));

/** Runs fn on a backend with float32 copies of the leaves; reads the results back as Float64Arrays. */
async function onBackend(backend: td.Backend, leaves: Leaves, fn: (p: Map<string, td.Tensor>) => td.Tensor[]): Promise<Float64Array[]> {
  td.setBackend(backend);
  try {
    const outs = td.tidy(() => fn(new Map([...leaves].map(([k, v]) => [k, td.tensor(v.values, v.shape, "float32")] as const))));
    const values = await Promise.all(outs.map((t) => t.read()));
    td.dispose(outs);
    return values.map((v) => Float64Array.from(v));
  } finally {
    td.setBackend(new CpuBackend());
  }
}

test("a small conv net: forward, parameter gradients and a gradient-penalty second-order gradient match the reference", async () => {
  const gpu = await webgpuBackend();
  const leaves = randomLeaves({ x: [6, 8, 8, 3], k1: [3, 3, 3, 16], b1: [16], k2: [3, 3, 16, 8], k3: [1, 1, 8, 4], scale: [8], w: [4, 5], e: [10, 4] }, 1);
  const model = (p: Map<string, td.Tensor>, x: td.Tensor): td.Tensor => {
    let h = td.gelu(td.add(td.conv2d(x, p.get("k1")!), p.get("b1")!));
    h = td.maxPool2x2(h);
    h = td.conv2d(h, p.get("k2")!);
    h = td.upsampleNearest(h, 8, 8);
    h = td.layerNorm(h, p.get("scale")!, td.zerosLike(p.get("scale")!));
    h = td.tanh(td.conv2d(h, p.get("k3")!));
    // take with device indices (the class-embedding path), softmax and a broadcast.
    const emb = td.take(p.get("e")!, td.tensor(Int32Array.from([3, 0, 9, 3, 1, 7]), [6], "int32"));
    h = td.add(h, td.reshape(td.softmax(emb, -1), [6, 1, 1, 4]));
    return td.matmul(td.reshape(h, [-1, 4]), p.get("w")!);
  };
  const run = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const names = ["k1", "b1", "k2", "k3", "scale", "w", "e"];
    const params = names.map((n) => p.get(n)!);
    const x = p.get("x")!;
    for (const t of [...params, x]) t.requiresGrad = true;
    const y = model(p, x);
    const [gx] = td.gradients(td.mean(y), [x], { createGraph: true });
    const loss = td.add(td.mean(td.square(y)), td.mul(0.5, td.mean(td.square(gx!))));
    const grads = td.gradients(loss, params);
    return [y, gx!, loss, ...grads];
  };
  const ref = await onBackend(new CpuBackend(), leaves, run);
  const got = await onBackend(gpu, leaves, run);
  const names = ["output", "input gradient", "loss", "dk1", "db1", "dk2", "dk3", "dscale", "dw", "de"];
  // float32 throughout (the reference sums products in double; WGSL's exp/tanh are a few ulp): errors of a
  // few 1e-6 of each tensor's scale.
  got.forEach((g, i) => assertTensorClose(g, ref[i]!, 2e-5, names[i]!));
});

test("the U-Net (features 4) training loss with its gradient penalty: loss and all parameter gradients match", async () => {
  const gpu = await webgpuBackend();
  const batch = 5;
  const config = { inChannels: 1, outChannels: 1, features: 4, timeEmbDim: 16, numClasses: 10 };
  const images = td.random.normalArray(td.random.key(3), batch * 64);
  const noise = td.random.normalArray(td.random.key(4), batch * 64);
  const t = Int32Array.from({ length: batch }, (_, i) => 37 + 211 * i);
  const labels = Int32Array.from([3, -1, 0, 9, 5]);
  const sa = Array.from({ length: 1000 }, (_, i) => Math.sqrt(1 - i / 1000));
  const ss = Array.from({ length: 1000 }, (_, i) => Math.sqrt(i / 1000 + 1e-3));
  const run = (): td.Tensor[] => {
    const params = initUNet(config, td.random.key(7));
    const f = (p: UNetParams): td.Tensor =>
      diffusionLoss((q: UNetParams, x, tt, l) => unetForward(q, x, tt, { labels: l }), p, {
        images: td.tensor(images, [batch, 8, 8, 1], "float32"), t, labels, noise: td.tensor(noise, [batch, 8, 8, 1], "float32"),
        sqrtAlphaCumulative: sa, sqrtOneMinusAlphaCumulative: ss,
      }, { penaltyWeight: 0.02 }).total;
    const { value, grads } = td.valueAndGrad(f)(params);
    return [value, ...td.flattenTree(grads).values()];
  };
  const ref = await onBackend(new CpuBackend(), new Map(), run);
  const got = await onBackend(gpu, new Map(), run);
  assert.equal(got.length, ref.length);
  // The loss: within 1e-5 relative. Each gradient: within 1e-4 of its largest entry, or of 1e-3 of the
  // largest gradient entry overall for gradients that are zero in exact arithmetic and only rounding noise
  // here (the attention key bias: softmax ignores a shift of every score).
  assertTensorClose(got[0]!, ref[0]!, 1e-5, "loss");
  const overall = Math.max(...ref.slice(1).map(maxAbs));
  let worst = 0;
  for (let i = 1; i < got.length; i++) worst = Math.max(worst, assertTensorClose(got[i]!, ref[i]!, 1e-4, `gradient #${i}`, 1e-3 * overall));
  console.log(`# worst gradient error relative to scale: ${worst.toExponential(2)}`);
});

test("adamwUpdates: tensors of different sizes, several per kernel, the same bits as one adamwUpdate each", async () => {
  const gpu = await webgpuBackend();
  const perKernel = Math.min(8, Math.floor((gpu.kernels.maxStorageBuffers - 1) / 7));
  assert.ok(perKernel >= 2, `this adapter binds ${gpu.kernels.maxStorageBuffers} storage buffers: two tensors per kernel untested`);
  const sizes = [[300, 700], [5], [64, 3], [1], [0], [17, 9], [2000]];
  const spec: Record<string, number[]> = {};
  sizes.forEach((shape, i) => { for (const part of ["p", "g", "m", "v"]) spec[`${part}${i}`] = shape; });
  const leaves = randomLeaves(spec, 33);
  const args: td.AdamWArgs = { elementClip: 0.3, maxNorm: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 2e-5 };
  const items = (t: Map<string, td.Tensor>) => sizes.map((_, i) => ({ p: t.get(`p${i}`)!, g: t.get(`g${i}`)!, m: t.get(`m${i}`)!, v: td.square(t.get(`v${i}`)!) }));
  const scalars = () => td.tensor([0.8, 3e-4, 0.19, 0.001999]);
  const before = gpu.stats().dispatches;
  const many = await onBackend(gpu, leaves, (t) => td.adamwUpdates(items(t), scalars(), args).flat());
  // The squares of the 6 non-empty v run first (an empty one dispatches nothing); then the updates of the 6
  // non-empty tensors, perKernel at a time.
  assert.equal(gpu.stats().dispatches - before, 6 + Math.ceil(6 / perKernel), "dispatches");
  const one = await onBackend(gpu, leaves, (t) => items(t).flatMap(({ p, g, m, v }) => td.adamwUpdate(p, g, m, v, scalars(), args)));
  many.forEach((values, i) => assert.deepEqual(values, one[i], `output ${i}: bit for bit`)); // the same float operations
  const ref = await onBackend(new CpuBackend(), leaves, (t) => td.adamwUpdates(items(t), scalars(), args).flat());
  many.forEach((values, i) => assertTensorClose(values, ref[i]!, 1e-5, `output ${i} vs the reference`, 1e-3));
});

test("sumOfSquares (the optimizer's global norm): one kernel per 15 tensors (3 with 4 storage buffers) and a sum, as the reference", async () => {
  const full = await webgpuBackend();
  const compat = new WebGpuBackend(await kernels({ maxStorageBuffers: 4 }));
  // 40 tensors: one of 300,000 elements (more than 64 workgroups' worth of 4,096), empty ones, odd sizes.
  const spec: Record<string, number[]> = { big: [300, 1000], empty: [0], one: [1] };
  for (let i = 0; i < 37; i++) spec[`t${i}`] = [1 + ((i * 37) % 97), 1 + (i % 5)];
  const leaves = randomLeaves(spec, 21);
  for (const [gpu, perKernel] of [[full, Math.min(15, full.kernels.maxStorageBuffers - 1)], [compat, 3]] as const) {
    for (const clip of [undefined, 0.3]) {
      const run = (t: Map<string, td.Tensor>): td.Tensor[] => [td.sumOfSquares([...t.values()], clip === undefined ? {} : { clip })];
      const ref = await onBackend(new CpuBackend(), leaves, run);
      const before = gpu.stats().dispatches;
      const got = await onBackend(gpu, leaves, run);
      // The partial sums (one kernel per perKernel tensors), then their sum.
      assert.equal(gpu.stats().dispatches - before, Math.ceil(leaves.size / perKernel) + 1, `dispatches, ${perKernel} tensors per kernel`);
      // A float32 sum of ~300,000 positive terms in another order: 1e-5 relative (measured ~1e-7).
      const e = assertTensorClose(got[0]!, ref[0]!, 1e-5, `sumOfSquares, clip ${clip}, ${perKernel} per kernel`);
      console.log(`# sumOfSquares (${perKernel} tensors per kernel, clip ${clip}): relative error ${e.toExponential(1)}`);
    }
  }
  // A NaN element stays NaN through the clip (as the chain's clip).
  const nan = await onBackend(full, new Map([["x", { values: Float64Array.of(1, NaN, 2), shape: [3] }]]), (t) => [td.sumOfSquares([t.get("x")!], { clip: 0.5 })]);
  assert.ok(Number.isNaN(nan[0]![0]!), "NaN through the clip");
});

test("adamwUpdate (fused AdamW: one dispatch, or four with 4 storage buffers) matches the reference for every branch", async () => {
  const full = await webgpuBackend();
  // WebGPU's compatibility mode (4 storage buffers per stage): the four-dispatch form.
  const compat = new WebGpuBackend(await kernels({ maxStorageBuffers: 4 }));
  assert.ok(full.kernels.maxStorageBuffers >= 8, `this adapter binds ${full.kernels.maxStorageBuffers} storage buffers: the one-dispatch form is untested`);
  for (const [gpu, dispatches] of [[full, 1], [compat, 4]] as const) {
    const base: td.AdamWArgs = { elementClip: 0.3, maxNorm: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 2e-5 };
    const leaves = randomLeaves({ p: [33, 70], g: [33, 70], m: [33, 70], v: [33, 70] }, 9);
    const cases: [string, Partial<td.AdamWArgs>, number][] = [
      ["norm below the limit", {}, 0.25], ["norm scales", {}, 1.7], ["NaN norm", {}, NaN],
      ["no clips", { elementClip: null, maxNorm: null }, 3], ["no weight decay", { weightDecay: 0 }, 0.9],
    ];
    for (const [what, change, norm] of cases) {
      const run = (t: Map<string, td.Tensor>): td.Tensor[] => {
        const v = td.mul(td.square(t.get("v")!), 0.01); // second moments are >= 0
        return td.adamwUpdate(t.get("p")!, t.get("g")!, td.mul(t.get("m")!, 0.1), v, td.tensor([norm, 3e-4, 0.19, 0.001999]), { ...base, ...change });
      };
      const ref = await onBackend(new CpuBackend(), leaves, run);
      const before = gpu.stats().dispatches;
      const got = await onBackend(gpu, leaves, run);
      // The update (and the two fused elementwise inputs m * 0.1 and v^2 * 0.01) ran on the GPU.
      assert.equal(gpu.stats().dispatches - before, dispatches + 2, "dispatches of the update");
      // m and v: a few float32 roundings (WGSL division is within 2.5 ulp): 1e-6 of each tensor's scale. The
      // parameter's error is bounded against its move (at most ~lr per step): the Adam direction divides by
      // sqrt(v), which amplifies rounding in v where v is tiny; 1e-3 of the move. lavapipe (IEEE f32) measured 0.
      if (Number.isNaN(norm)) {
        got.forEach((g, i) => assert.ok(g.every((x, j) => Object.is(x, ref[i]![j]) || (Number.isNaN(x) && Number.isNaN(ref[i]![j]!))), `${what}: NaN pattern ${i}`));
        continue;
      }
      const em = assertTensorClose(got[1]!, ref[1]!, 1e-6, `${what}: m`);
      const ev = assertTensorClose(got[2]!, ref[2]!, 1e-6, `${what}: v`);
      const moved = ref[0]!.map((x, j) => x - leaves.get("p")!.values[j]!);
      const ep = assertTensorClose(got[0]!.map((x, j) => x - leaves.get("p")!.values[j]!), moved, 1e-3, `${what}: p's move`, 0);
      console.log(`# adamw (${dispatches} dispatch${dispatches > 1 ? "es" : ""}) ${what}: m ${em.toExponential(1)}, v ${ev.toExponential(1)}, p's move ${ep.toExponential(1)} of scale`);
    }
  }
});
