// A small digit classifier for judging generated 8x8 digits (pure: no Node APIs, so a browser can fetch the
// weights file and call decodeClassifier on its bytes). classifier-node.ts reads the shipped weights.
//
//   x [N,8,8,1] -> conv3x3(16) gelu -> conv3x3(32) gelu -> maxpool -> [N,4,4,32]
//              -> conv3x3(32) gelu -> maxpool -> [N,2,2,32] -> flatten 128
//              -> dense(32) gelu  = features (the "penultimate layer", used for the Fréchet distance)
//              -> dense(10)       = logits
//
// Trained by scripts/train-classifier.ts on the digits' training images only (see that script for the
// exact image set, the seed and the accuracy it reaches); the weights ship in models/digit-classifier.safetensors.
import * as td from "../engine/index.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "../io/safetensors.ts";
import { lecunNormal } from "../nn/init.ts";

export const CLASSIFIER_IMAGE_SIDE = 8;
export const CLASSIFIER_PIXELS = 64;
export const NUM_CLASSES = 10;
/** Width of the penultimate layer: the dimension of features(). */
export const FEATURE_DIM = 32;
/** Written into the weights file's metadata; decodeClassifier refuses other architectures. */
export const CLASSIFIER_ARCHITECTURE = "conv16-conv32-pool-conv32-pool-dense32-dense10/gelu/v1";

interface Dense { [name: string]: td.Tensor; kernel: td.Tensor; bias: td.Tensor }

/** Parameter tree (dotted names in the weights file: "conv1.kernel", ..., "logits.bias"). */
export interface ClassifierParams {
  [name: string]: Dense;
  conv1: Dense; // [3,3,1,16]
  conv2: Dense; // [3,3,16,32]
  conv3: Dense; // [3,3,32,32]
  hidden: Dense; // [128,32]
  logits: Dense; // [32,10]
}

/** Shapes of every tensor of the parameter tree, by dotted name. */
export const CLASSIFIER_SHAPES: Readonly<Record<string, readonly number[]>> = {
  "conv1.kernel": [3, 3, 1, 16], "conv1.bias": [16],
  "conv2.kernel": [3, 3, 16, 32], "conv2.bias": [32],
  "conv3.kernel": [3, 3, 32, 32], "conv3.bias": [32],
  "hidden.kernel": [128, FEATURE_DIM], "hidden.bias": [FEATURE_DIM],
  "logits.kernel": [FEATURE_DIM, NUM_CLASSES], "logits.bias": [NUM_CLASSES],
};

/** Fresh parameters (lecun-normal kernels, zero biases), deterministic in the seed. */
export function initClassifier(seed: number): ClassifierParams {
  const keys = td.random.split(td.random.key(seed), 5);
  const dense = (i: number, name: string): Dense => {
    const kShape = CLASSIFIER_SHAPES[`${name}.kernel`]!;
    const fanIn = kShape.slice(0, -1).reduce((a, b) => a * b, 1);
    return { kernel: lecunNormal(keys[i]!, kShape, fanIn), bias: td.zeros(CLASSIFIER_SHAPES[`${name}.bias`]!) };
  };
  return { conv1: dense(0, "conv1"), conv2: dense(1, "conv2"), conv3: dense(2, "conv3"), hidden: dense(3, "hidden"), logits: dense(4, "logits") };
}

/** Forward pass on x [N,8,8,1]: the penultimate features [N,32] and the logits [N,10]. Differentiable. */
export function classifierForward(p: ClassifierParams, x: td.Tensor): { features: td.Tensor; logits: td.Tensor } {
  const conv = (d: Dense, h: td.Tensor) => td.gelu(td.add(td.conv2d(h, d.kernel), d.bias));
  let h = conv(p.conv1, x);
  h = td.maxPool2x2(conv(p.conv2, h)); // [N,4,4,32]
  h = td.maxPool2x2(conv(p.conv3, h)); // [N,2,2,32]
  const flat = td.reshape(h, [x.shape[0]!, 128]);
  const features = td.gelu(td.linear(flat, p.hidden.kernel, p.hidden.bias));
  const logits = td.linear(features, p.logits.kernel, p.logits.bias);
  return { features, logits };
}

/** Mean cross-entropy of the logits [N,10] against integer labels (as a one-hot [N,10] float tensor). */
export function crossEntropy(logits: td.Tensor, oneHot: td.Tensor): td.Tensor {
  const shifted = td.sub(logits, td.noGrad(() => td.max(logits, -1, true))); // a constant, without a copy
  const logSumExp = td.log(td.sum(td.exp(shifted), -1, true));
  const logProbs = td.sub(shifted, logSumExp);
  return td.neg(td.mean(td.sum(td.mul(logProbs, oneHot), -1)));
}

export interface Classification {
  /** Softmax probabilities, N*10 row-major. */
  probs: Float32Array;
  /** Most probable class of each image (ties: the lower class). */
  labels: Int32Array;
}

export interface FeatureMatrix {
  /** N*dim row-major. */
  data: Float32Array;
  n: number;
  dim: number;
}

function checkImages(images: Float32Array, n: number | undefined): number {
  if (!(images instanceof Float32Array)) throw new Error("classifier: images must be a Float32Array");
  const count = n ?? images.length / CLASSIFIER_PIXELS;
  if (!Number.isInteger(count) || count < 0 || count * CLASSIFIER_PIXELS !== images.length) {
    throw new Error(`classifier: ${images.length} values are not ${n ?? "a whole number of"} images of 64 pixels`);
  }
  return count;
}

/** How many images one forward pass takes (bounds the memory of the activations). */
const CHUNK = 256;

/**
 * A trained classifier: inference only, without gradient recording, in chunks of images. The forward pass runs
 * on the active backend (the one the weights were decoded on); results come back with await t.read(), so it
 * works on host backends and on WebGPU alike.
 */
export class DigitClassifier {
  readonly params: ClassifierParams;
  readonly metadata: Readonly<Record<string, string>>;

  constructor(params: ClassifierParams, metadata: Record<string, string> = {}) {
    this.params = params;
    this.metadata = metadata;
  }

  /**
   * Probabilities (N*10) and/or features (N*32) of the images. Every chunk's work is recorded and its reads are
   * started (each read captures its values at call time) before anything is awaited, so a device backend runs
   * the chunks back to back.
   */
  private async run(images: Float32Array, n: number | undefined, want: { probs: boolean; features: boolean }): Promise<{ count: number; probs: Float32Array; features: Float32Array }> {
    const count = checkImages(images, n);
    const probs = new Float32Array(want.probs ? count * NUM_CLASSES : 0);
    const features = new Float32Array(want.features ? count * FEATURE_DIM : 0);
    const reads: Promise<void>[] = [];
    const readInto = (t: td.Tensor, into: Float32Array, offset: number): void => {
      reads.push(t.read().then((values) => into.set(values, offset)));
      t.dispose();
    };
    td.noGrad(() => {
      for (let start = 0; start < count; start += CHUNK) {
        const m = Math.min(CHUNK, count - start);
        const out = td.tidy(() => {
          const x = td.tensor(images.subarray(start * CLASSIFIER_PIXELS, (start + m) * CLASSIFIER_PIXELS), [m, 8, 8, 1]);
          const { features: f, logits } = classifierForward(this.params, x);
          return { probs: want.probs ? td.softmax(logits, -1) : null, features: want.features ? f : null };
        });
        if (out.probs) readInto(out.probs, probs, start * NUM_CLASSES);
        if (out.features) readInto(out.features, features, start * FEATURE_DIM);
        td.getBackend().flush();
      }
    });
    await Promise.all(reads);
    return { count, probs, features };
  }

  /** Class probabilities and predicted labels of images in [0,1] (pixel/16 units), N*64 row-major. */
  async classify(images: Float32Array, n?: number): Promise<Classification> {
    const { count, probs } = await this.run(images, n, { probs: true, features: false });
    return { probs, labels: argmaxRows(probs, count) };
  }

  /** Penultimate-layer features [N, FEATURE_DIM] (post-GELU) of images in [0,1]. */
  async features(images: Float32Array, n?: number): Promise<FeatureMatrix> {
    const { count, features } = await this.run(images, n, { probs: false, features: true });
    return { data: features, n: count, dim: FEATURE_DIM };
  }

  /** Both at once (one forward pass). */
  async classifyWithFeatures(images: Float32Array, n?: number): Promise<Classification & { features: FeatureMatrix }> {
    const { count, probs, features } = await this.run(images, n, { probs: true, features: true });
    return { probs, labels: argmaxRows(probs, count), features: { data: features, n: count, dim: FEATURE_DIM } };
  }

  /** Frees the weights' tensors. */
  dispose(): void {
    td.dispose(this.params);
  }
}

/** The most probable class of each row of probs (N*10; ties: the lower class). */
function argmaxRows(probs: Float32Array, count: number): Int32Array {
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let c = 1; c < NUM_CLASSES; c++) if (probs[i * NUM_CLASSES + c]! > probs[i * NUM_CLASSES + best]!) best = c;
    labels[i] = best;
  }
  return labels;
}

/**
 * The weights file: float32 tensors by dotted name, plus string metadata (architecture, training facts). Reads
 * the tensors with await t.read(), so the parameters may live on any backend.
 */
export async function encodeClassifier(params: ClassifierParams, metadata: Record<string, string> = {}): Promise<Uint8Array> {
  const tensors: Record<string, SafetensorsTensor> = {};
  const entries = [...td.flattenTree(params)];
  const values = await Promise.all(entries.map(([, t]) => t.read()));
  entries.forEach(([name, t], i) => {
    tensors[name] = { dtype: "F32", shape: [...t.shape], data: Float32Array.from(values[i]!) };
  });
  return encodeSafetensors(tensors, { ...metadata, architecture: CLASSIFIER_ARCHITECTURE });
}

/** Parses a weights file (e.g. fetched bytes). Checks the architecture tag, names, shapes and dtypes. */
export function decodeClassifier(bytes: Uint8Array): DigitClassifier {
  const { tensors, metadata } = decodeSafetensors(bytes, { copy: true });
  if (metadata.architecture !== CLASSIFIER_ARCHITECTURE) {
    throw new Error(`classifier weights: architecture '${metadata.architecture ?? "(none)"}', expected '${CLASSIFIER_ARCHITECTURE}'`);
  }
  const entries: [string, td.Tensor][] = [];
  for (const [name, shape] of Object.entries(CLASSIFIER_SHAPES)) {
    const t = tensors.get(name);
    if (!t) throw new Error(`classifier weights: missing tensor '${name}'`);
    if (t.dtype !== "F32" || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`classifier weights: '${name}' is ${t.dtype} [${t.shape}], expected F32 [${shape}]`);
    }
    entries.push([name, td.tensor(t.data as Float32Array, shape, "float32")]);
  }
  if (tensors.size !== entries.length) throw new Error(`classifier weights: ${tensors.size} tensors, expected ${entries.length}`);
  return new DigitClassifier(td.unflattenTree(entries) as ClassifierParams, metadata);
}
