// Pending producers (src/engine/backends/webgpu/producers.ts): a fused expression of a layer norm's, a
// matmul's, a convolution's or a convolution kernel gradient's output runs in that kernel (an epilogue: gelu(layerNorm(h)) and conv + bias are
// one dispatch each); any other reader computes the producer alone first, and so does a split-K product.
// Reference: the CPU backend, which runs every op on its own.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { kernels, uniformValues, webgpuBackend } from "./helpers.ts";

after(() => td.setBackend(new CpuBackend()));

const randomValues = (n: number, seed: number): Float32Array => uniformValues(n, seed, -2, 2);

const ROWS = 37;
const COLS = 96; // more than the kernel's 64 invocations per row
const x = randomValues(ROWS * COLS, 1);
const scale = randomValues(COLS, 2);
const bias = randomValues(COLS, 3);
const other = randomValues(ROWS * COLS, 4);

let splitting: WebGpuBackend | null = null;
/** A backend whose kernels split every product along K (so no GEMM can take an epilogue). */
async function splittingBackend(): Promise<WebGpuBackend> {
  splitting ??= new WebGpuBackend(await kernels({ splitKMinWorkgroups: 1e9, splitKMinLength: 16 }));
  return splitting;
}

/** fn of (x, scale, bias, other) on a backend; outputs read back. */
async function on(b: td.Backend, fn: (t: td.Tensor[]) => td.Tensor[]): Promise<Float32Array[]> {
  td.setBackend(b);
  try {
    const inputs = [td.tensor(x, [ROWS, COLS]), td.tensor(scale, [COLS]), td.tensor(bias, [COLS]), td.tensor(other, [ROWS, COLS])];
    const outs = td.tidy(() => fn(inputs));
    b.flush();
    const values = await Promise.all(outs.map(async (o) => Float32Array.from(await o.read())));
    td.dispose([...outs, ...inputs]);
    return values;
  } finally {
    td.setBackend(new CpuBackend());
  }
}

/** Compares with the CPU backend: the norm's float32 statistics differ by rounding (two-pass mean/variance vs float64). */
async function check(what: string, fn: (t: td.Tensor[]) => td.Tensor[], gpu: WebGpuBackend | null = null): Promise<{ dispatches: number; withEpilogue: number; dropped: number }> {
  gpu ??= await webgpuBackend();
  const ref = await on(new CpuBackend(), fn);
  const before = gpu.stats();
  const got = await on(gpu, fn);
  const after = gpu.stats();
  got.forEach((g, k) => {
    const r = ref[k]!;
    assert.equal(g.length, r.length);
    // Values up to ~|6|; the reference normalizes in float64: measured ~1e-6, bound 2e-5.
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - r[i]!) <= 2e-5 * (1 + Math.abs(r[i]!)), `${what}, output ${k}[${i}]: ${g[i]} vs ${r[i]}`);
  });
  return {
    dispatches: after.dispatches - before.dispatches,
    withEpilogue: after.producers.withEpilogue - before.producers.withEpilogue,
    dropped: after.producers.dropped - before.producers.dropped,
  };
}

const norm = (t: td.Tensor[]) => td.layerNorm(t[0]!, t[1]!, t[2]!, 1e-6);

test("gelu(layerNorm(x)) runs in one kernel (the norm's, with the expression as its epilogue)", async () => {
  const s = await check("gelu(norm)", (t) => [td.gelu(norm(t))]);
  assert.equal(s.withEpilogue, 1);
  // The norm with its epilogue, plus the uploads' copies none: one dispatch in all (uploads are not dispatches).
  assert.equal(s.dispatches, 1, `dispatches: ${s.dispatches}`);
});

test("an epilogue with another leaf (gelu(norm) + r, the residual block's sum), and the norm read again afterwards", async () => {
  const s = await check("gelu(norm) + r; norm", (t) => {
    const h = norm(t);
    // Two pending norms in one expression: one is the epilogue's, the other is computed first.
    return [td.add(td.gelu(h), t[3]!), td.mul(h, 2), td.add(td.gelu(norm(t)), td.layerNorm(t[3]!, t[1]!, t[2]!, 1e-6))];
  });
  assert.equal(s.withEpilogue, 2);
});

test("a norm read any other way is computed on its own first: broadcast, reduction, matmul", async () => {
  const s = await check("others", (t) => {
    const h = norm(t);
    const row = td.slice(h, [0, 0], [1, COLS]); // a copy
    return [td.add(td.reshape(h, [1, ROWS, COLS]), td.zeros([2, ROWS, COLS])), td.sum(td.square(norm(t)), [1]), td.matmul(norm(t), td.transpose(td.tensor(other, [ROWS, COLS]), [1, 0])), row];
  });
  assert.equal(s.withEpilogue, 0);
});

test("a norm released unused is never computed; an input released while the norm is pending stays intact", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const before = gpu.stats();
    td.tidy(() => {
      norm([td.tensor(x, [ROWS, COLS]), td.tensor(scale, [COLS]), td.tensor(bias, [COLS])]);
    });
    gpu.flush();
    const after = gpu.stats();
    assert.equal(after.producers.dropped - before.producers.dropped, 1);
    assert.equal(after.dispatches - before.dispatches, 0, "no dispatch for a norm nobody read");
  } finally {
    td.setBackend(new CpuBackend());
  }
  // The input is released (tidy) before the norm is read; then kernels of its size class run, which would take
  // its buffer if the release were not deferred.
  const fn = (t: td.Tensor[]): td.Tensor[] => {
    const h = td.tidy(() => td.layerNorm(td.add(t[0]!, 1), t[1]!, t[2]!, 1e-6)); // x + 1 freed here
    const noise = td.tidy(() => [td.matmul(td.tensor(other, [ROWS, COLS]), td.tensor(randomValues(COLS * COLS, 9), [COLS, COLS])), td.mul(t[3]!, 3)]);
    const out = td.gelu(h);
    return [out, ...noise];
  };
  await check("input released early", fn);
});

const W = randomValues(COLS * 48, 5);
const K3 = randomValues(3 * 3 * 4 * 6, 6);
const imgs = randomValues(5 * 8 * 8 * 4, 7);
const product = (t: td.Tensor[]): td.Tensor[] => {
  const w = td.tensor(W, [COLS, 48]);
  const lin = td.gelu(td.add(td.matmul(t[0]!, w), td.tensor(randomValues(48, 8), [48]))); // linear + bias + gelu
  const conv = td.add(td.conv2d(td.tensor(imgs, [5, 8, 8, 4]), td.tensor(K3, [3, 3, 4, 6]), 1), 0.5);
  return [lin, conv];
};

test("a matmul's and a convolution's expression (bias, activation) run as their epilogue", async () => {
  const s = await check("matmul/conv epilogues", product);
  assert.equal(s.withEpilogue, 2);
});

test("split along K: the sum of the partial products carries the epilogue; past 32 splits the expression runs alone", async () => {
  const s = await check("split-K", product, await splittingBackend());
  assert.equal(s.withEpilogue, 2);
  // K = 640 in steps of 16: 40 splits.
  const long = (): td.Tensor[] => [td.add(td.matmul(td.tensor(randomValues(3 * 640, 10), [3, 640]), td.tensor(randomValues(640 * 5, 11), [640, 5])), 1)];
  const t = await check("40 splits", long, await splittingBackend());
  assert.equal(t.withEpilogue, 0);
});

test("a convolution kernel gradient's expression (a weight's two gradients summed) runs as its epilogue, split or not", async () => {
  const G = randomValues(5 * 8 * 8 * 6, 12);
  const kernelGrads = (): td.Tensor[] => {
    const x = td.tensor(imgs, [5, 8, 8, 4]);
    const g = td.tensor(G, [5, 8, 8, 6]);
    const first = td.conv2dKernelGrad(x, g, 3, 3, 1);
    const second = td.conv2dKernelGrad(td.mul(x, 0.5), g, 3, 3, 1);
    // 1x1: the kernel gradient is a matmul (x^T g), which takes the epilogue too.
    const pointwise = td.add(td.conv2dKernelGrad(x, g, 1, 1, 0), 1);
    return [td.add(first, second), pointwise];
  };
  for (const [what, gpu] of [["unsplit", null], ["split along K", await splittingBackend()]] as const) {
    const s = await check(`kernel gradients, ${what}`, kernelGrads, gpu);
    assert.equal(s.withEpilogue, 2, `${what}: both sums ran in a kernel gradient's kernel`);
  }
});

test("a layer norm's gradient kernels read a pending cotangent (g * gelu'(norm)) as an expression, to second order", async () => {
  const gpu = await webgpuBackend();
  const secondOrder = (t: td.Tensor[]): td.Tensor[] => {
    const x = t[0]!;
    x.requiresGrad = true;
    const y = td.sum(td.mul(td.gelu(td.layerNorm(x, t[1]!, t[2]!, 1e-6)), t[3]!));
    const [gx] = td.gradients(y, [x], { createGraph: true });
    const [gxx] = td.gradients(td.sum(td.mul(td.gelu(gx!), t[3]!)), [x]);
    x.requiresGrad = false;
    return [gx!, gxx!];
  };
  await check("layer norm gradients of a pending cotangent", secondOrder, gpu);
  const keys = gpu.kernels.pipelineKeys();
  for (const kernel of ["layerNormGradX", "layerNormGradXGradX"]) {
    assert.ok(keys.some((k) => k.startsWith(`${kernel}:`) && k.includes(":fused#")), `${kernel} ran with a fused cotangent: ${keys.filter((k) => k.startsWith("layerNorm")).join(", ")}`);
  }
});
