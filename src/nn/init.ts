// Flax's default initialisers: lecun_normal kernels (truncated normal), zero biases, unit LayerNorm scales.
import * as td from "../engine/index.ts";

/** variance_scaling(1, "fan_in", "truncated_normal"): std = sqrt(1/fan_in) / 0.8796 (the std of N(0,1) cut at ±2). */
export function lecunNormal(key: td.random.RandomKey, shape: readonly number[], fanIn: number, dtype: td.DType = "float32"): td.Tensor {
  const std = Math.sqrt(1 / fanIn) / 0.87962566103423978;
  const values = td.random.truncatedNormalArray(key, td.sizeOf(shape), -2, 2);
  for (let i = 0; i < values.length; i++) values[i] = values[i]! * std;
  return td.tensor(values, shape, dtype);
}
