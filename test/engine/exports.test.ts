// Coverage guard: every export of the engine's public API is listed here with the test file
// that covers it. A new export fails this test until it gets tests (and a line below).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as td from "../../src/engine/index.ts";

const COVERED: Record<string, string> = {
  CpuBackend: "create", Tensor: "create", tidy: "memory", keep: "memory", dispose: "memory", memory: "memory", resetPeakMemory: "memory",
  noGrad: "autodiff", getBackend: "create", setBackend: "create", sizeOf: "create",
  gradients: "autodiff", valueAndGrad: "autodiff", grad: "autodiff", gradOfInput: "autodiff",
  flattenTree: "tree", unflattenTree: "tree", mapTree: "tree", treeSize: "tree", random: "random",
  tensor: "create", scalar: "create", full: "create", zeros: "create", ones: "create", zerosLike: "create",
  onesLike: "create", arange: "create", linspace: "create",
  neg: "elementwise", exp: "elementwise", log: "elementwise", sqrt: "elementwise", rsqrt: "elementwise",
  tanh: "elementwise", abs: "elementwise", sign: "elementwise", sin: "elementwise", cos: "elementwise",
  square: "elementwise", reciprocal: "elementwise", step: "elementwise", add: "elementwise", sub: "elementwise",
  mul: "elementwise", div: "elementwise", pow: "elementwise", maximum: "elementwise", minimum: "elementwise",
  less: "elementwise", lessEqual: "elementwise", greater: "elementwise", greaterEqual: "elementwise",
  equal: "elementwise", where: "elementwise", clip: "elementwise", stopGradient: "elementwise",
  sum: "reduce", mean: "reduce", max: "reduce", broadcastTo: "reduce", sumTo: "reduce", cumsum: "reduce", cumprod: "reduce",
  reshape: "shape", transpose: "shape", slice: "shape", padInto: "shape", concat: "shape", gatherFlat: "shape",
  scatterAddFlat: "shape", take: "shape", cast: "shape",
  matmul: "linalg", linear: "linalg",
  conv2d: "conv", conv2dInputGrad: "conv", conv2dKernelGrad: "conv", flipKernel: "conv",
  gelu: "nn", layerNorm: "nn", softmax: "nn", maxPool2x2: "nn", upsampleNearest: "nn",
  adamwUpdate: "optim", adamwUpdates: "../engine-webgpu/engine",
  sumOfSquares: "optim",
  captureStep: "../engine-webgpu/capture", canCapture: "../engine-webgpu/capture",
};
const RANDOM = ["choice", "foldIn", "key", "keyWords", "normal", "normalArray", "normalFromKey", "randomBits", "split", "threefry2x32", "truncatedNormalArray", "uniform", "uniformArray"];

test("every public export is covered by a test file that mentions it", () => {
  assert.deepEqual(Object.keys(td).sort(), Object.keys(COVERED).sort(), "exports of src/engine/index.ts vs the covered list");
  assert.deepEqual(Object.keys(td.random).sort(), [...RANDOM].sort(), "exports of random");
  const sources = new Map<string, string>();
  const read = (file: string): string => {
    if (!sources.has(file)) sources.set(file, readFileSync(new URL(`./${file}.test.ts`, import.meta.url), "utf8"));
    return sources.get(file)!;
  };
  for (const [name, file] of Object.entries(COVERED)) {
    assert.ok(new RegExp(`\\b${name}\\b`).test(read(file)), `${name} is used in ${file}.test.ts`);
  }
  for (const name of RANDOM) assert.ok(read("random").includes(`random.${name}(`), `random.${name} is used in random.test.ts`);
});
