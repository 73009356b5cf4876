// Trains the digit classifier that `tiny-diffusion eval` uses and writes models/digit-classifier.safetensors.
//
//   node --import tsx scripts/train-classifier.ts [--epochs 40] [--seed 0] [--out models/digit-classifier.safetensors]
//
// Deterministic: the same seed gives the same bytes (CPU backend, float32; checked by running a 2-epoch training twice).
// Trained on the "all" split's training images minus every image that is a test image of some per-digit split
// (src/eval/heldout.ts): 1,616 images. The all-digit split has 1,707 training and 90 test images; 91 more images
// are test images of a per-digit split (loadDigitsSplit(d), the tutorial's split for d = 1), so 181 are held out.
// Architecture and features: src/eval/classifier.ts. AdamW (lr 3e-3, 1 epoch warm-up, cosine to 2%, weight
// decay 1e-4, global-norm clip 1), batch 64, 40 epochs; each training image is shifted by -1, 0 or +1 pixel in x
// and in y (zero fill, seeded). The epoch count was fixed in advance, not picked on the test images.
// The shipped weights (seed 0, 40 epochs, ~4.5 min on one shared core):
//   accuracy on the "all" split's 90 test images:         1.0000 (90/90)
//   accuracy on all 181 images held out from it:          0.9945 (180/181)
//   accuracy on its own 1,616 training images:            0.9994 (1615/1616)
import * as td from "../src/engine/index.ts";
import { readDigits, loadDigitsSplit } from "../src/data/digits-node.ts";
import type { DigitsDataset } from "../src/data/digits.ts";
import { classifierForward, crossEntropy, DigitClassifier, encodeClassifier, initClassifier, NUM_CLASSES, type ClassifierParams } from "../src/eval/classifier.ts";
import { classifierHeldOutSet, classifierTrainingSet } from "../src/eval/heldout.ts";
import { initOptimizerState, optimizerStep, type OptimizerConfig, type OptimizerState } from "../src/train/optimizer.ts";
import { writeFileAtomicSync } from "../src/io/atomic-file.ts";
import { fileURLToPath } from "node:url";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const epochs = Number(arg("--epochs", "40"));
const seed = Number(arg("--seed", "0"));
const out = arg("--out", fileURLToPath(new URL("../models/digit-classifier.safetensors", import.meta.url)));
const BATCH = 64;
if (!(Number.isInteger(epochs) && epochs >= 1) || !(Number.isInteger(seed) && seed >= 0)) {
  console.error("--epochs must be a positive integer and --seed a non-negative integer");
  process.exit(2);
}

td.setBackend(new td.CpuBackend());

const all = readDigits();
const allSplit = loadDigitsSplit("all");
const digitSplits = Array.from({ length: 10 }, (_, d) => loadDigitsSplit(d));
const { data: train } = classifierTrainingSet(all, allSplit, digitSplits);
const { data: heldOut } = classifierHeldOutSet(all, [allSplit, ...digitSplits]);
const stepsPerEpoch = Math.ceil(train.count / BATCH);
const totalSteps = epochs * stepsPerEpoch;
console.log(`training on ${train.count} images, ${epochs} epochs of ${stepsPerEpoch} steps; held out: ${allSplit.test.count} (all split) / ${heldOut.count} (any split)`);

const optimizer: OptimizerConfig = {
  elementwiseClip: null,
  globalNormClip: 1,
  b1: 0.9,
  b2: 0.999,
  eps: 1e-8,
  weightDecay: 1e-4,
  lr: { peak: 3e-3, warmupSteps: stepsPerEpoch, totalSteps, alpha: 0.02 },
};

/** Images shifted by (dy, dx) in {-1,0,1}^2 per image, zero fill: a copy. */
function shiftImages(images: Float32Array, count: number, shifts: Float64Array): Float32Array {
  const outImages = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    const dy = Math.floor(shifts[2 * n]! * 3) - 1;
    const dx = Math.floor(shifts[2 * n + 1]! * 3) - 1;
    for (let y = 0; y < 8; y++) {
      const sy = y - dy;
      if (sy < 0 || sy > 7) continue;
      for (let x = 0; x < 8; x++) {
        const sx = x - dx;
        if (sx < 0 || sx > 7) continue;
        outImages[n * 64 + y * 8 + x] = images[n * 64 + sy * 8 + sx]!;
      }
    }
  }
  return outImages;
}

async function accuracy(classifier: DigitClassifier, data: DigitsDataset): Promise<number> {
  const { labels } = await classifier.classify(data.images, data.count);
  let right = 0;
  for (let i = 0; i < data.count; i++) if (labels[i] === data.labels[i]) right++;
  return right / data.count;
}

const lossOf = (p: ClassifierParams, x: td.Tensor, oneHot: td.Tensor) => crossEntropy(classifierForward(p, x).logits, oneHot);
const valueAndGrad = td.valueAndGrad(lossOf);

let params = initClassifier(seed);
let state: OptimizerState = initOptimizerState(params);
const root = td.random.key(seed + 1);
const started = performance.now();
for (let epoch = 0; epoch < epochs; epoch++) {
  const order = td.random.uniformArray(td.random.foldIn(root, 2 * epoch), train.count);
  const perm = Array.from({ length: train.count }, (_, i) => i).sort((a, b) => order[a]! - order[b]! || a - b);
  const shifts = td.random.uniformArray(td.random.foldIn(root, 2 * epoch + 1), 2 * train.count);
  let lossSum = 0;
  for (let s = 0; s < stepsPerEpoch; s++) {
    const idx = perm.slice(s * BATCH, (s + 1) * BATCH);
    const m = idx.length;
    const raw = new Float32Array(m * 64);
    const hot = new Float32Array(m * NUM_CLASSES);
    idx.forEach((src, i) => {
      raw.set(train.images.subarray(src * 64, (src + 1) * 64), i * 64);
      hot[i * NUM_CLASSES + train.labels[src]!] = 1;
    });
    const batch = shiftImages(raw, m, shifts.subarray(2 * s * BATCH, 2 * (s * BATCH + m)));
    const next = td.tidy(() => {
      const { value, grads } = valueAndGrad(params, td.tensor(batch, [m, 8, 8, 1]), td.tensor(hot, [m, NUM_CLASSES]));
      const step = optimizerStep(params, grads, state, optimizer);
      return { loss: value, params: step.params, state: step.state };
    });
    lossSum += next.loss.item() * m;
    next.loss.dispose();
    td.dispose(params);
    td.dispose(state);
    params = next.params;
    state = next.state;
  }
  const c = new DigitClassifier(params);
  const line = `epoch ${epoch + 1}/${epochs}: loss ${(lossSum / train.count).toFixed(4)}, test acc ${(await accuracy(c, allSplit.test)).toFixed(4)}, held-out acc ${(await accuracy(c, heldOut)).toFixed(4)} (${((performance.now() - started) / 1000).toFixed(0)} s)`;
  console.log(line);
}

const classifier = new DigitClassifier(params);
const testAcc = await accuracy(classifier, allSplit.test);
const heldOutAcc = await accuracy(classifier, heldOut);
const trainAcc = await accuracy(classifier, train);
const bytes = await encodeClassifier(params, {
  seed: String(seed),
  epochs: String(epochs),
  trained_on: `${train.count} images: loadDigitsSplit("all").train minus every per-digit test image`,
  test_accuracy: testAcc.toFixed(4),
  heldout_accuracy: heldOutAcc.toFixed(4),
  train_accuracy: trainAcc.toFixed(4),
});
writeFileAtomicSync(out, bytes);
console.log(`accuracy: test ${testAcc.toFixed(4)} (${allSplit.test.count}), held-out ${heldOutAcc.toFixed(4)} (${heldOut.count}), train ${trainAcc.toFixed(4)} (${train.count})`);
console.log(`wrote ${out} (${bytes.length} bytes)`);
