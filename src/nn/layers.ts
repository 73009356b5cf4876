// The U-Net's layers as plain parameter records plus pure apply functions (Flax names and layouts).
import * as td from "../engine/index.ts";
import { lecunNormal } from "./init.ts";

type Key = td.random.RandomKey;

export interface LinearParams { [name: string]: td.Tensor; kernel: td.Tensor; bias: td.Tensor }
export interface ConvParams { [name: string]: td.Tensor; kernel: td.Tensor; bias: td.Tensor }
export interface LayerNormParams { [name: string]: td.Tensor; scale: td.Tensor; bias: td.Tensor }

export interface ResidualBlockParams {
  [name: string]: td.TensorTreeOf;
  conv1: ConvParams; norm1: LayerNormParams; conv2: ConvParams; norm2: LayerNormParams; shortcut: ConvParams;
}
export interface AttentionParams {
  [name: string]: td.TensorTreeOf;
  query_proj: LinearParams; key_proj: LinearParams; value_proj: LinearParams;
}

export function initLinear(key: Key, inFeatures: number, outFeatures: number, dtype: td.DType): LinearParams {
  return { kernel: lecunNormal(key, [inFeatures, outFeatures], inFeatures, dtype), bias: td.zeros([outFeatures], dtype) };
}

export function initConv(key: Key, size: number, inChannels: number, outChannels: number, dtype: td.DType): ConvParams {
  return {
    kernel: lecunNormal(key, [size, size, inChannels, outChannels], size * size * inChannels, dtype),
    bias: td.zeros([outChannels], dtype),
  };
}

export function initLayerNorm(channels: number, dtype: td.DType): LayerNormParams {
  return { scale: td.ones([channels], dtype), bias: td.zeros([channels], dtype) };
}

export function initResidualBlock(key: Key, inChannels: number, outChannels: number, dtype: td.DType): ResidualBlockParams {
  const [k1, k2, k3] = td.random.split(key, 3) as [Key, Key, Key];
  return {
    conv1: initConv(k1, 3, inChannels, outChannels, dtype),
    norm1: initLayerNorm(outChannels, dtype),
    conv2: initConv(k2, 3, outChannels, outChannels, dtype),
    norm2: initLayerNorm(outChannels, dtype),
    shortcut: initConv(k3, 1, inChannels, outChannels, dtype),
  };
}

export function initAttention(key: Key, channels: number, dtype: td.DType): AttentionParams {
  const [kq, kk, kv] = td.random.split(key, 3) as [Key, Key, Key];
  return {
    query_proj: initLinear(kq, channels, channels, dtype),
    key_proj: initLinear(kk, channels, channels, dtype),
    value_proj: initLinear(kv, channels, channels, dtype),
  };
}

export const linear = (p: LinearParams, x: td.Tensor): td.Tensor => td.linear(x, p.kernel, p.bias);

export const conv = (p: ConvParams, x: td.Tensor): td.Tensor => td.add(td.conv2d(x, p.kernel), p.bias);

export const layerNorm = (p: LayerNormParams, x: td.Tensor): td.Tensor => td.layerNorm(x, p.scale, p.bias, 1e-6);

/** gelu(norm2(conv2(gelu(norm1(conv1(x)))))) + shortcut(x). */
export function residualBlock(p: ResidualBlockParams, x: td.Tensor): td.Tensor {
  const identity = conv(p.shortcut, x);
  let h = td.gelu(layerNorm(p.norm1, conv(p.conv1, x)));
  h = td.gelu(layerNorm(p.norm2, conv(p.conv2, h)));
  return td.add(h, identity);
}

/** Single-head self-attention over the H*W positions, no output projection: x + softmax(q k^T / sqrt(C)) v. */
export function attentionBlock(p: AttentionParams, x: td.Tensor): td.Tensor {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const v = linear(p.value_proj, x);
  // With one position the softmax is exactly 1 and q, k do not matter (their gradients are exactly 0).
  if (h * w === 1) return td.add(x, v);
  const q = td.reshape(linear(p.query_proj, x), [b, h * w, c]);
  const k = td.reshape(linear(p.key_proj, x), [b, h * w, c]);
  const scores = td.div(td.matmul(q, k, { transB: true }), Math.sqrt(c));
  const attended = td.matmul(td.softmax(scores, -1), td.reshape(v, [b, h * w, c]));
  return td.add(x, td.reshape(attended, [b, h, w, c]));
}
