// Neural-network building blocks composed from primitives (so every order of derivative
// is exact), plus the pooling/upsampling primitives with gather/scatter adjoints.
import { emptyTensor, getBackend, record, shapeString, Tensor } from "../tensor.ts";
import { checkFloat, checkRank } from "./checks.ts";
import { add, exp, maximum, mul, rsqrt, stopGradient, sub, tanh, square, div } from "./elementwise.ts";
import { max, mean, sum } from "./reduce.ts";
import { matmul } from "./linalg.ts";
import { gatherFlat, scatterAddFlat } from "./shape.ts";

const GELU_C = Math.sqrt(2 / Math.PI);

/** Tanh approximation (Flax's default): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function gelu(x: Tensor): Tensor {
  const inner = mul(GELU_C, add(x, mul(0.044715, mul(x, square(x)))));
  return mul(mul(0.5, x), add(1, tanh(inner)));
}

/**
 * Over the last axis, as flax LayerNorm with use_fast_variance:
 * var = max(0, E[x^2] - E[x]^2), y = (x - mean) * rsqrt(var + eps) * scale + bias.
 */
export function layerNorm(x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-6): Tensor {
  const c = x.shape[x.rank - 1]!;
  if (scale.size !== c || bias.size !== c) {
    throw new Error(`layerNorm: scale ${shapeString(scale.shape)} / bias ${shapeString(bias.shape)} do not match ${c} channels of ${shapeString(x.shape)}`);
  }
  const axis = x.rank - 1;
  const mu = mean(x, axis, true);
  const variance = maximum(sub(mean(square(x), axis, true), square(mu)), 0);
  const normalized = mul(sub(x, mu), rsqrt(add(variance, eps)));
  return add(mul(normalized, scale), bias);
}

/** Softmax over an axis, shifted by the (constant) max for stability. */
export function softmax(x: Tensor, axis = -1): Tensor {
  const shifted = sub(x, stopGradient(max(x, axis, true)));
  const e = exp(shifted);
  return div(e, sum(e, axis, true));
}

/** NHWC 2x2 max pool, stride 2, 'SAME' padding (a 1x1 map stays 1x1). */
export function maxPool2x2(x: Tensor): Tensor {
  checkRank("maxPool2x2", x, 4);
  checkFloat("maxPool2x2", x);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const outShape = [b, Math.ceil(h / 2), Math.ceil(w / 2), c];
  const out = emptyTensor(outShape, x.dtype, "maxPool2x2");
  const argmax = emptyTensor(outShape, "int32", "maxPool2x2.argmax");
  getBackend().maxPool2x2(x.data, x.shape, out.data, argmax.data as Int32Array);
  return record(out, "maxPool2x2", [x], (g) => [scatterAddFlat(g, argmax, x.shape, true)]);
}

/** Nearest-neighbour resize of NHWC maps: src = floor((i + 0.5) * in / out), as jax.image.resize. */
export function upsampleNearest(x: Tensor, height: number, width: number): Tensor {
  checkRank("upsampleNearest", x, 4);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  if (h === height && w === width) return x;
  const index = emptyTensor([b, height, width, c], "int32", "upsampleNearest.index");
  const idx = index.data;
  let at = 0;
  for (let n = 0; n < b; n++)
    for (let i = 0; i < height; i++) {
      const si = Math.floor(((i + 0.5) * h) / height);
      for (let j = 0; j < width; j++) {
        const sj = Math.floor(((j + 0.5) * w) / width);
        for (let q = 0; q < c; q++) idx[at++] = ((n * h + si) * w + sj) * c + q;
      }
    }
  return gatherFlat(x, index, true);
}

/** y = x @ kernel + bias over the last axis (kernel [in, out], as Flax). */
export function linear(x: Tensor, kernel: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, kernel);
  return bias ? add(y, bias) : y;
}
