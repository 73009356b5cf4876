// Loads the JAX/Flax golden fixtures (fixtures/, made by fixtures/gen_fixtures.py from the tutorial's
// model with every parameter trained) into engine tensors.
import * as td from "../../src/engine/index.ts";
import type { UNetParams } from "../../src/nn/unet.ts";
import { fixtureTensor, loadFixture } from "../helpers/fixtures.ts";

export function loadParams(features: 4 | 8, dtype: td.DType): UNetParams {
  const entries: [string, td.Tensor][] = [];
  for (const [name, t] of loadFixture(`unet_f${features}.safetensors`)) entries.push([name, td.tensor(t.data, t.shape, dtype)]);
  return td.unflattenTree(entries) as unknown as UNetParams;
}

export function caseTensor(features: 4 | 8, name: string, dtype?: td.DType): td.Tensor {
  const t = fixtureTensor(`case_f${features}.safetensors`, name);
  return td.tensor(t.data, t.shape, dtype ?? (t.dtype === "F64" ? "float64" : t.dtype === "I32" ? "int32" : "float32"));
}

export function caseArray(features: 4 | 8, name: string): Float32Array | Float64Array | Int32Array {
  return fixtureTensor(`case_f${features}.safetensors`, name).data;
}

/** max |a - b| / max |b|: the error relative to the tensor's scale (the fixtures' rel_to_max). */
export function relToMax(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  if (actual.length !== expected.length) return Infinity;
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = actual.length === expected.length ? 0 : Infinity;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i]! - expected[i]!));
  return m;
}
