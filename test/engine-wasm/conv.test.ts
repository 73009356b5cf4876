// WasmBackend.conv2d and conv2dKernelGrad against the reference backend: kernel sizes 1/3/5 (and 2x3),
// paddings 0..2, channel counts that are and are not multiples of 4, spatial sizes down to 1x1 (where
// only some taps see data), output channels 1..17, on 1 and 2 threads.
// Tolerance: |err| <= 1e-5 * sqrt(K) * (the same sum over |x| and |kernel|), K = the reduction length.
import { test, after } from "node:test";
import type { ConvArgs } from "../../src/engine/backend.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { absCopy, assertClose, disposeBackends, randomIn, rng, wasmBackend } from "./helpers.ts";

after(disposeBackends);
const cpu = new CpuBackend();

type Geo = [b: number, h: number, w: number, c: number, kh: number, kw: number, o: number, pad: number];
const GEOMETRIES: Geo[] = [
  [1, 1, 1, 1, 1, 1, 1, 0], [2, 3, 3, 1, 3, 3, 4, 1], [2, 8, 8, 1, 3, 3, 16, 1], [3, 8, 8, 16, 3, 3, 16, 1],
  [2, 8, 8, 16, 3, 3, 1, 1], [2, 4, 4, 32, 3, 3, 32, 1], [4, 2, 2, 64, 3, 3, 20, 1], [5, 1, 1, 48, 3, 3, 17, 1],
  [3, 1, 1, 5, 3, 3, 3, 1], [2, 5, 7, 3, 3, 3, 5, 1], [2, 6, 5, 12, 5, 5, 9, 2], [1, 4, 4, 8, 3, 3, 2, 0],
  [2, 2, 2, 4, 5, 5, 6, 2], [1, 1, 3, 4, 3, 3, 8, 1], [3, 5, 5, 20, 1, 1, 7, 0], [2, 3, 4, 2, 2, 3, 3, 1],
  [1, 1, 1, 260, 3, 3, 8, 1], [2, 2, 2, 3, 3, 3, 2, 2], [1, 9, 9, 4, 3, 3, 13, 0], [8, 8, 8, 48, 3, 3, 16, 1],
];

function args([b, h, w, c, kh, kw, o, pad]: Geo): ConvArgs {
  return { b, h, w, c, kh, kw, o, pad, oh: h + 2 * pad - kh + 1, ow: w + 2 * pad - kw + 1 };
}

for (const threads of [1, 2]) {
  test(`conv2d, ${threads} thread(s)`, async () => {
    const w = await wasmBackend(threads);
    let seed = 10 + threads;
    for (const geo of GEOMETRIES) {
      const a = args(geo);
      const rand = rng(seed++);
      const x = randomIn(w, a.b * a.h * a.w * a.c, rand);
      const kernel = randomIn(w, a.kh * a.kw * a.c * a.o, rand);
      const out = w.alloc("float32", a.b * a.oh * a.ow * a.o).fill(Number.NaN);
      w.conv2d(x, kernel, out, a);
      const ref = new Float32Array(out.length), scale = new Float32Array(out.length);
      cpu.conv2d(x, kernel, ref, a);
      cpu.conv2d(absCopy(x), absCopy(kernel), scale, a);
      assertClose(out, ref, 1e-5 * Math.sqrt(a.kh * a.kw * a.c), scale, `conv2d ${JSON.stringify(a)} threads ${threads}`, 1e-30);
      for (const t of [x, kernel, out]) w.release(t);
    }
  });

  test(`conv2dKernelGrad, ${threads} thread(s)`, async () => {
    const w = await wasmBackend(threads);
    let seed = 100 + threads;
    for (const geo of GEOMETRIES) {
      const a = args(geo);
      const rand = rng(seed++);
      const x = randomIn(w, a.b * a.h * a.w * a.c, rand);
      const g = randomIn(w, a.b * a.oh * a.ow * a.o, rand);
      const out = w.alloc("float32", a.kh * a.kw * a.c * a.o).fill(Number.NaN);
      w.conv2dKernelGrad(x, g, out, a);
      const ref = new Float32Array(out.length), scale = new Float32Array(out.length);
      cpu.conv2dKernelGrad(x, g, ref, a);
      cpu.conv2dKernelGrad(absCopy(x), absCopy(g), scale, a);
      assertClose(out, ref, 1e-5 * Math.sqrt(a.b * a.oh * a.ow), scale, `conv2dKernelGrad ${JSON.stringify(a)} threads ${threads}`, 1e-30);
      for (const t of [x, g, out]) w.release(t);
    }
  });
}

test("convolutions on a large batch (split-K kernel gradient, many tasks), 2 threads", async () => {
  const w = await wasmBackend(2);
  let seed = 5;
  for (const geo of [[172, 8, 8, 16, 3, 3, 16, 1], [172, 8, 8, 1, 3, 3, 16, 1], [172, 4, 4, 32, 3, 3, 1, 1], [172, 1, 1, 64, 3, 3, 32, 1]] as Geo[]) {
    const a = args(geo);
    const rand = rng(seed++);
    const x = randomIn(w, a.b * a.h * a.w * a.c, rand);
    const g = randomIn(w, a.b * a.oh * a.ow * a.o, rand);
    const kernel = randomIn(w, a.kh * a.kw * a.c * a.o, rand);
    const kg = w.alloc("float32", kernel.length), y = w.alloc("float32", g.length);
    w.conv2dKernelGrad(x, g, kg, a);
    w.conv2d(x, kernel, y, a);
    const refKg = new Float32Array(kg.length), scaleKg = new Float32Array(kg.length);
    cpu.conv2dKernelGrad(x, g, refKg, a);
    cpu.conv2dKernelGrad(absCopy(x), absCopy(g), scaleKg, a);
    assertClose(kg, refKg, 1e-5 * Math.sqrt(a.b * a.oh * a.ow), scaleKg, `conv2dKernelGrad ${JSON.stringify(a)}`, 1e-30);
    const refY = new Float32Array(y.length), scaleY = new Float32Array(y.length);
    cpu.conv2d(x, kernel, refY, a);
    cpu.conv2d(absCopy(x), absCopy(kernel), scaleY, a);
    assertClose(y, refY, 1e-5 * Math.sqrt(a.kh * a.kw * a.c), scaleY, `conv2d ${JSON.stringify(a)}`, 1e-30);
  }
});
