// The tutorial's U-Net (jax-ai-stack "digits diffusion model"), with every weight a parameter.
import * as td from "../engine/index.ts";
import {
  attentionBlock, initAttention, initConv, initLayerNorm, initLinear, initResidualBlock, layerNorm, linear, conv, residualBlock,
  type AttentionParams, type ConvParams, type LayerNormParams, type LinearParams, type ResidualBlockParams,
} from "./layers.ts";

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  features: number;
  timeEmbDim: number;
  /** Number of class labels for conditioning (0 = unconditional, as the tutorial). */
  numClasses?: number;
}

export interface UNetParams {
  [name: string]: td.TensorTreeOf;
  time_mlp_1: LinearParams; time_mlp_2: LinearParams;
  time_proj1: LinearParams; time_proj2: LinearParams; time_proj3: LinearParams; time_proj4: LinearParams;
  down_conv1: ResidualBlockParams; down_conv2: ResidualBlockParams; down_conv3: ResidualBlockParams; down_conv4: ResidualBlockParams;
  attention1: AttentionParams; attention2: AttentionParams;
  bridge_down: ResidualBlockParams; bridge_attention: AttentionParams; bridge_up: ResidualBlockParams;
  up_conv4: ResidualBlockParams; up_conv3: ResidualBlockParams; up_conv2: ResidualBlockParams; up_conv1: ResidualBlockParams;
  final_norm: LayerNormParams; final_conv: ConvParams;
}

export const TUTORIAL_UNET: UNetConfig = { inChannels: 1, outChannels: 1, features: 64, timeEmbDim: 128 };

export function initUNet(config: UNetConfig, key: td.random.RandomKey, dtype: td.DType = "float32"): UNetParams {
  const { inChannels: cin, outChannels: cout, features: f, timeEmbDim: e } = config;
  const keys = td.random.split(key, 24);
  let next = 0;
  const k = (): td.random.RandomKey => keys[next++]!;
  const params: UNetParams = {
    time_mlp_1: initLinear(k(), e, e, dtype),
    time_mlp_2: initLinear(k(), e, e, dtype),
    time_proj1: initLinear(k(), e, f, dtype),
    time_proj2: initLinear(k(), e, 2 * f, dtype),
    time_proj3: initLinear(k(), e, 4 * f, dtype),
    time_proj4: initLinear(k(), e, 8 * f, dtype),
    down_conv1: initResidualBlock(k(), cin, f, dtype),
    down_conv2: initResidualBlock(k(), f, 2 * f, dtype),
    down_conv3: initResidualBlock(k(), 2 * f, 4 * f, dtype),
    down_conv4: initResidualBlock(k(), 4 * f, 8 * f, dtype),
    attention1: initAttention(k(), 4 * f, dtype),
    attention2: initAttention(k(), 8 * f, dtype),
    bridge_down: initResidualBlock(k(), 8 * f, 16 * f, dtype),
    bridge_attention: initAttention(k(), 16 * f, dtype),
    bridge_up: initResidualBlock(k(), 16 * f, 16 * f, dtype),
    up_conv4: initResidualBlock(k(), 24 * f, 8 * f, dtype),
    up_conv3: initResidualBlock(k(), 12 * f, 4 * f, dtype),
    up_conv2: initResidualBlock(k(), 6 * f, 2 * f, dtype),
    up_conv1: initResidualBlock(k(), 3 * f, f, dtype),
    final_norm: initLayerNorm(f, dtype),
    final_conv: initConv(k(), 3, f, cout, dtype),
  };
  if (config.numClasses) params.class_embedding = { table: td.tidy(() => td.mul(td.random.normal(k(), [config.numClasses!, e], dtype), 0.02)) };
  return params;
}

/**
 * Timesteps: host numbers, an int32 tensor [B] (values on the device, e.g. a captured sampler step's input),
 * or their embedding already made ([B, dim], timestepEmbeddingValues: a captured training step's input).
 */
export type Timesteps = ArrayLike<number> | td.Tensor | { readonly embedding: td.Tensor };

/**
 * Sinusoidal embedding [sin(t f), cos(t f)], f = exp(-i log(10000)/(half-1)). In float32 every
 * intermediate is rounded as JAX does, because the angles reach ~1000 rad and rounding them matters.
 * From a tensor t the same products are formed by the backend (t is exact in float32), and sin/cos there.
 */
export function timestepEmbedding(t: Timesteps, dim: number, dtype: td.DType): td.Tensor {
  if ("embedding" in t) {
    const e = t.embedding;
    if (e.rank !== 2 || e.shape[1] !== dim || e.dtype !== dtype) throw new Error(`timestep embedding must be ${dtype} [B,${dim}], got ${e.dtype} [${e.shape.join(",")}]`);
    return e;
  }
  if (t instanceof td.Tensor) {
    const freqs = embeddingFrequencies(dim, dtype);
    if (t.dtype !== "int32" || t.rank !== 1) throw new Error(`timesteps tensor must be int32 [B], got ${t.dtype} [${t.shape.join(",")}]`);
    const angles = td.mul(td.reshape(td.cast(t, dtype), [t.size, 1]), td.tensor(freqs, [1, dim / 2], dtype));
    return td.concat([td.sin(angles), td.cos(angles)], 1);
  }
  return td.tensor(timestepEmbeddingValues(t, dim, dtype), [t.length, dim], dtype);
}

function embeddingFrequencies(dim: number, dtype: td.DType): number[] {
  const half = dim / 2;
  const round = dtype === "float32" ? Math.fround : (v: number) => v;
  const step = round(Math.log(10000) / (half - 1));
  return Array.from({ length: half }, (_, i) => round(Math.exp(round(i * round(-step)))));
}

/** The embedding of host timesteps as values ([B, dim] row-major), computed on the host as timestepEmbedding does. */
export function timestepEmbeddingValues(t: ArrayLike<number>, dim: number, dtype: td.DType): Float64Array {
  const half = dim / 2;
  const round = dtype === "float32" ? Math.fround : (v: number) => v;
  const freqs = embeddingFrequencies(dim, dtype);
  const out = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let i = 0; i < half; i++) {
      const angle = round(t[b]! * freqs[i]!);
      out[b * dim + i] = Math.sin(angle);
      out[b * dim + half + i] = Math.cos(angle);
    }
  }
  return out;
}

/** Per-block outputs, for parity tests against the reference activations. */
export type Activations = Map<string, td.Tensor>;

function maxPool(x: td.Tensor): td.Tensor {
  return td.maxPool2x2(x);
}

function upAndConcat(x: td.Tensor, skip: td.Tensor): td.Tensor {
  return td.concat([td.upsampleNearest(x, skip.shape[1]!, skip.shape[2]!), skip], -1);
}

function addTime(x: td.Tensor, timeProjection: td.Tensor): td.Tensor {
  return td.add(x, td.reshape(timeProjection, [timeProjection.shape[0]!, 1, 1, timeProjection.shape[1]!]));
}

/**
 * Predicts the noise in x [B,8,8,C] at integer timesteps t (length B: host numbers or an int32 tensor). `labels` (length B, -1 = none)
 * adds a learned class embedding to the time embedding when the model has one.
 */
export function unetForward(params: UNetParams, x: td.Tensor, t: Timesteps, options: { labels?: ArrayLike<number> | td.Tensor; capture?: Activations } = {}): td.Tensor {
  const capture = (name: string, value: td.Tensor): td.Tensor => {
    options.capture?.set(name, value);
    return value;
  };
  const timeEmbDim = params.time_mlp_1.kernel.shape[0]!;
  let emb = capture("pos_encoding", timestepEmbedding(t, timeEmbDim, x.dtype));
  emb = capture("time_mlp_1", linear(params.time_mlp_1, emb));
  emb = capture("time_mlp_2", linear(params.time_mlp_2, td.gelu(emb)));
  if (options.labels && params.class_embedding) emb = td.add(emb, classEmbedding(params.class_embedding as { table: td.Tensor }, options.labels));
  const t1 = capture("time_proj1", linear(params.time_proj1, emb));
  const t2 = capture("time_proj2", linear(params.time_proj2, emb));
  const t3 = capture("time_proj3", linear(params.time_proj3, emb));
  const t4 = capture("time_proj4", linear(params.time_proj4, emb));

  const d1 = addTime(capture("down_conv1", residualBlock(params.down_conv1, x)), t1);
  const d2 = addTime(capture("down_conv2", residualBlock(params.down_conv2, maxPool(d1))), t2);
  let d3 = capture("down_conv3", residualBlock(params.down_conv3, maxPool(d2)));
  d3 = addTime(capture("attention1", attentionBlock(params.attention1, d3)), t3);
  let d4 = capture("down_conv4", residualBlock(params.down_conv4, maxPool(d3)));
  d4 = addTime(capture("attention2", attentionBlock(params.attention2, d4)), t4);

  let b = capture("bridge_down", residualBlock(params.bridge_down, maxPool(d4)));
  b = capture("bridge_attention", attentionBlock(params.bridge_attention, b));
  b = capture("bridge_up", residualBlock(params.bridge_up, b));

  const u4 = capture("up_conv4", residualBlock(params.up_conv4, upAndConcat(b, d4)));
  const u3 = capture("up_conv3", residualBlock(params.up_conv3, upAndConcat(u4, d3)));
  const u2 = capture("up_conv2", residualBlock(params.up_conv2, upAndConcat(u3, d2)));
  const u1 = capture("up_conv1", residualBlock(params.up_conv1, upAndConcat(u2, d1)));

  const h = capture("final_norm", layerNorm(params.final_norm, u1));
  return capture("final_conv", conv(params.final_conv, td.gelu(h)));
}

/** Rows of the class table for each label (host numbers or an int32 tensor [B]); label -1 (unconditional) gets zeros. */
function classEmbedding(p: { table: td.Tensor }, labels: ArrayLike<number> | td.Tensor): td.Tensor {
  const numClasses = p.table.shape[0]!;
  const withNull = td.concat([p.table, td.zeros([1, p.table.shape[1]!], p.table.dtype)], 0);
  if (labels instanceof td.Tensor && (labels.dtype !== "int32" || labels.rank !== 1)) throw new Error(`labels tensor must be int32 [B], got ${labels.dtype} [${labels.shape.join(",")}]`);
  const index = labels instanceof td.Tensor
    ? td.where(td.less(labels, 0), numClasses, labels)
    : td.tensor(Array.from(labels, (l) => (l < 0 ? numClasses : l)), [labels.length], "int32");
  return td.take(withNull, index, 0);
}
