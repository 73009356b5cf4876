// The whole engine on the WasmBackend (setBackend): a small conv net and the U-Net (features 4) with the
// training loss, whose gradient penalty needs second-order gradients. Values, first- and second-order
// gradients must equal the reference backend's within float32 tolerances (stated at each assertion).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";
import { initUNet, unetForward, type UNetParams } from "../../src/nn/unet.ts";
import { diffusionLoss } from "../../src/train/loss.ts";
import { assertTensorClose, maxAbs, randomLeaves, type Leaves } from "../helpers/backend-parity.ts";

const backends: WasmBackend[] = [];
after(() => {
  td.setBackend(new CpuBackend());
  for (const b of backends) b.dispose();
});

/** Runs fn on a backend with copies of the given leaves; returns plain Float64Arrays of the results. */
function onBackend(backend: td.Backend, leaves: Leaves, fn: (p: Map<string, td.Tensor>) => td.Tensor[]): Float64Array[] {
  td.setBackend(backend);
  try {
    return td.tidy(() => {
      const p = new Map([...leaves].map(([k, v]) => [k, td.tensor(v.values, v.shape, "float32")] as const));
      return fn(p).map((t) => Float64Array.from(t.toTypedArray()));
    });
  } finally {
    td.setBackend(new CpuBackend());
  }
}

test("a small conv net: forward, parameter gradients and a gradient-penalty second-order gradient match the reference", async () => {
  const wasm = await WasmBackend.create({ threads: 2, parallelMinFlops: 0, parallelMinElements: 1, stallMs: 0 });
  backends.push(wasm);
  const leaves = randomLeaves({ x: [6, 8, 8, 3], k1: [3, 3, 3, 16], b1: [16], k2: [3, 3, 16, 8], k3: [1, 1, 8, 4], scale: [8], w: [4, 5] }, 1);
  const model = (p: Map<string, td.Tensor>, x: td.Tensor): td.Tensor => {
    let h = td.gelu(td.add(td.conv2d(x, p.get("k1")!), p.get("b1")!));
    h = td.maxPool2x2(h);
    h = td.conv2d(h, p.get("k2")!);
    h = td.layerNorm(h, p.get("scale")!, td.zerosLike(p.get("scale")!));
    h = td.tanh(td.conv2d(h, p.get("k3")!));
    return td.matmul(td.reshape(h, [-1, 4]), p.get("w")!);
  };
  const run = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const names = ["k1", "b1", "k2", "k3", "scale", "w"];
    const params = names.map((n) => p.get(n)!);
    const x = p.get("x")!;
    for (const t of [...params, x]) t.requiresGrad = true;
    const y = model(p, x);
    const [gx] = td.gradients(td.mean(y), [x], { createGraph: true });
    const loss = td.add(td.mean(td.square(y)), td.mul(0.5, td.mean(td.square(gx!))));
    const grads = td.gradients(loss, params);
    return [y, gx!, loss, ...grads];
  };
  const ref = onBackend(new CpuBackend(), leaves, run);
  const got = onBackend(wasm, leaves, run);
  const names = ["output", "input gradient", "loss", "dk1", "db1", "dk2", "dk3", "dscale", "dw"];
  // float32 throughout (the reference sums products in double): errors of a few 1e-6 of each tensor's scale.
  got.forEach((g, i) => assertTensorClose(g, ref[i]!, 2e-5, names[i]!));
});

test("the U-Net (features 4) training loss with its gradient penalty: loss and all parameter gradients match", async () => {
  const wasm = await WasmBackend.create({ threads: 2 });
  backends.push(wasm);
  const batch = 5;
  const config = { inChannels: 1, outChannels: 1, features: 4, timeEmbDim: 16 };
  const images = td.random.normalArray(td.random.key(3), batch * 64);
  const noise = td.random.normalArray(td.random.key(4), batch * 64);
  const t = Int32Array.from({ length: batch }, (_, i) => 37 + 211 * i);
  const sa = Array.from({ length: 1000 }, (_, i) => Math.sqrt(1 - i / 1000));
  const ss = Array.from({ length: 1000 }, (_, i) => Math.sqrt(i / 1000 + 1e-3));
  const run = (): Float64Array[] => {
    const params = initUNet(config, td.random.key(7));
    const f = (p: UNetParams): td.Tensor =>
      diffusionLoss((q: UNetParams, x, tt) => unetForward(q, x, tt), p, {
        images: td.tensor(images, [batch, 8, 8, 1], "float32"), t, noise: td.tensor(noise, [batch, 8, 8, 1], "float32"),
        sqrtAlphaCumulative: sa, sqrtOneMinusAlphaCumulative: ss,
      }, { penaltyWeight: 0.02 }).total;
    const { value, grads } = td.valueAndGrad(f)(params);
    return [Float64Array.from(value.toTypedArray()), ...[...td.flattenTree(grads).values()].map((g) => Float64Array.from(g.toTypedArray()))];
  };
  const ref = onBackend(new CpuBackend(), new Map(), () => run().map((a) => td.tensor(a, [a.length], "float64")));
  const got = onBackend(wasm, new Map(), () => run().map((a) => td.tensor(a, [a.length], "float64")));
  assert.equal(got.length, ref.length);
  // The loss: within 1e-5 relative. Each gradient: within 1e-4 of its largest entry (observed: below 1e-5),
  // or of 1e-3 of the largest gradient entry overall for gradients that are zero in exact arithmetic and
  // only rounding noise here (the attention key bias: softmax ignores a shift of every score).
  assertTensorClose(got[0]!, ref[0]!, 1e-5, "loss");
  const overall = Math.max(...ref.slice(1).map(maxAbs));
  for (let i = 1; i < got.length; i++) assertTensorClose(got[i]!, ref[i]!, 1e-4, `gradient #${i}`, 1e-3 * overall);
});
