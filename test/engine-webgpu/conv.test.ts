// WebGpuKernels.conv2d (implicit GEMM) and conv2dKernelGrad (implicit im2col^T @ g) against the reference:
// kernel sizes 1x1 / 2x3 / 3x3 / 5x5, paddings 0..2, 1x1 and odd spatial maps, channel counts that do not
// divide the tiles, batches, split-K forced on and off, both tile heights (4 and 8 rows per invocation), and
// small tiles (32x32, 64 invocations: the forward conv; the kernel gradient keeps its 256-invocation tiles).
// Tolerance: |err| <= 2e-6 * sqrt(K) * sum |x w| + 1e-30 with K the reduction length (kh*kw*c for conv2d,
// b*oh*ow for the kernel gradient); the scale is the same op on |x| and |w|.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ConvArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import type { WebGpuKernels } from "../../src/engine/backends/webgpu/kernels.ts";
import { absCopy, assertClose, kernels, poisoned, randomF32, rng } from "./helpers.ts";

const cpu = new CpuBackend();

type Case = [b: number, h: number, w: number, c: number, kh: number, kw: number, o: number, pad: number];
const CASES: Case[] = [
  [1, 1, 1, 1, 1, 1, 1, 0], [2, 3, 3, 1, 3, 3, 4, 1], [1, 8, 8, 3, 3, 3, 5, 1], [3, 5, 7, 6, 3, 3, 2, 1],
  [2, 6, 5, 4, 1, 1, 9, 0], [2, 4, 4, 5, 2, 3, 3, 0], [1, 7, 6, 3, 5, 5, 4, 2], [2, 4, 4, 3, 3, 3, 3, 0],
  [4, 1, 1, 7, 1, 1, 5, 0], [3, 2, 2, 17, 3, 3, 19, 1], [2, 8, 8, 33, 3, 3, 65, 1], [5, 4, 4, 64, 3, 3, 70, 1],
  [2, 3, 4, 5, 3, 3, 6, 2], [1, 9, 9, 2, 3, 3, 1, 1], [6, 8, 8, 1, 3, 3, 16, 1],
];

function argsOf([b, h, w, c, kh, kw, o, pad]: Case): ConvArgs {
  return { b, h, w, c, kh, kw, o, pad, oh: h + 2 * pad - kh + 1, ow: w + 2 * pad - kw + 1 };
}

async function checkConv(k: WebGpuKernels, cs: Case, seed: number, what: string): Promise<void> {
  const args = argsOf(cs);
  const { b, h, w, c, kh, kw, o, oh, ow } = args;
  const rand = rng(seed);
  const x = randomF32(b * h * w * c, rand);
  const kernel = randomF32(kh * kw * c * o, rand);
  const g = randomF32(b * oh * ow * o, rand);
  const gx = k.upload(x);
  const gk = k.upload(kernel);
  const gg = k.upload(g);

  const out = poisoned(k, "float32", b * oh * ow * o);
  k.conv2d(gx, gk, out, args);
  const ref = new Float32Array(out.length);
  cpu.conv2d(x, kernel, ref, args);
  const scale = new Float32Array(out.length);
  cpu.conv2d(absCopy(x), absCopy(kernel), scale, args);
  assertClose(await k.download(out), ref, 2e-6 * Math.sqrt(kh * kw * c), scale, `${what} conv2d ${JSON.stringify(args)}`, 1e-30);

  const kg = poisoned(k, "float32", kh * kw * c * o);
  k.conv2dKernelGrad(gx, gg, kg, args);
  const kref = new Float32Array(kg.length);
  cpu.conv2dKernelGrad(x, g, kref, args);
  const kscale = new Float32Array(kg.length);
  cpu.conv2dKernelGrad(absCopy(x), absCopy(g), kscale, args);
  assertClose(await k.download(kg), kref, 2e-6 * Math.sqrt(b * oh * ow), kscale, `${what} conv2dKernelGrad ${JSON.stringify(args)}`, 1e-30);
  for (const t of [gx, gk, gg, out, kg]) k.release(t);
}

test("conv2d and conv2dKernelGrad: kernel sizes, paddings, odd maps and channels (one pass per tile)", async () => {
  const k = await kernels({ splitKMinWorkgroups: 1 });
  let seed = 1;
  for (const cs of CASES) await checkConv(k, cs, seed++, "single-pass");
});

test("conv2d and conv2dKernelGrad: split-K", async () => {
  const k = await kernels({ splitKMinWorkgroups: 1 << 20, splitKMinLength: 16 });
  let seed = 100;
  for (const cs of CASES) await checkConv(k, cs, seed++, "split-K");
});

test("conv2d and conv2dKernelGrad with 8 rows per invocation (128x64 tiles): single-pass and split-K", async () => {
  const single = await kernels({ splitKMinWorkgroups: 1, gemmRows: 8 });
  const split = await kernels({ splitKMinWorkgroups: 1 << 20, splitKMinLength: 16, gemmRows: 8 });
  let seed = 300;
  for (const cs of CASES) {
    await checkConv(single, cs, seed++, "8 rows, single-pass");
    await checkConv(split, cs, seed++, "8 rows, split-K");
  }
});

test("conv2d with small tiles (32x32, 64 invocations): single-pass and split-K", async () => {
  const single = await kernels({ smallTiles: true, splitKMinWorkgroups: 1 << 20, splitKMinLength: 1 << 20 });
  const split = await kernels({ smallTiles: true, splitKMinWorkgroups: 1 << 20, splitKMinLength: 16 });
  let seed = 400;
  for (const cs of CASES) {
    await checkConv(single, cs, seed++, "small tiles, single-pass");
    await checkConv(split, cs, seed++, "small tiles, split-K");
  }
  for (const k of [single, split]) {
    const keys = k.pipelineKeys();
    assert.ok(keys.includes("conv2d:s32@main") && !keys.some((key) => key.startsWith("conv2dKernelGrad:s32")), `small tiles for conv2d only: ${keys.join(", ")}`);
  }
});

test("conv2d: the U-Net's 8x8 shapes at batch 16 (3x3 64->64, 1x1 shortcut 192->64, final 64->1)", async () => {
  const k = await kernels();
  let seed = 200;
  for (const cs of [[16, 8, 8, 64, 3, 3, 64, 1], [16, 8, 8, 192, 1, 1, 64, 0], [16, 8, 8, 64, 3, 3, 1, 1], [16, 4, 4, 128, 3, 3, 128, 1]] as Case[]) {
    await checkConv(k, cs, seed++, "unet");
  }
});
