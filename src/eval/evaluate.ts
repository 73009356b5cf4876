// The sample-quality report, pure (no Node APIs): the caller supplies the classifier and the digits splits
// (report.ts does so from the repository's files; a browser could from fetched ones).
//
// Every score comes with reference values computed the same way, with the same sample counts, so that a user
// can tell good from bad without knowing what "FID 4.2" means on 8x8 digits:
//   - classifier accuracy / confidence: of the samples; of real held-out images of the same class(es); of
//     uniform noise images.
//   - FID: the Fréchet distance between Gaussian fits of the classifier's 32-d penultimate features of the
//     samples and of the real reference images (by default the HELD-OUT test images of the class(es) of the
//     split the model was trained on). References: real-vs-real (real training images of the same classes,
//     as many as there are samples, vs the same reference) and noise-vs-real (as many uniform-noise images as
//     there are samples vs the same reference).
//   - copy check: distance of each sample to its nearest training image, against the same distance for real
//     held-out images (memorised training images would score perfectly on FID and accuracy).
// FID is biased upward for small sets (the digits have only ~9-10 held-out images per class): the report states
// the counts, and only the comparison with the reference values, computed with the same counts, is meaningful.
// Deterministic: no randomness except the noise images, which use a fixed seed.
import * as td from "../engine/index.ts";
import { DIGIT_PIXELS, subsetDigits, type DigitSelection, type DigitsDataset, type DigitsSplit } from "../data/digits.ts";
import { FEATURE_DIM, NUM_CLASSES, type DigitClassifier } from "./classifier.ts";
import { copyCheck, featureFrechetDistance, type CopyCheck } from "./metrics.ts";

/** Seed of the uniform-noise reference images. */
export const NOISE_SEED = 0;

export interface EvaluateOptions {
  /** The class every sample should be (a digit), or one label per sample; omitted: no expected class. */
  expectedClass?: number | ArrayLike<number>;
  /** Real images the samples are compared with: the split's held-out "test" images (default) or its "train" images. */
  reference?: "test" | "train";
  /**
   * The split the model was trained on (`train --digit`): a digit or "all". Default: the expected class when it
   * is one number (an unconditional model of that digit), otherwise "all" (per-sample labels come from a
   * conditional model, which trains on all digits). A digit here without an expected class implies that class.
   * A conditional model's samples of one class given as a number need "all" here.
   */
  trainSplit?: DigitSelection;
}

export interface EvalContext {
  classifier: DigitClassifier;
  /** The train/test split a model trained on `selection` used (loadDigitsSplit in Node). */
  split(selection: DigitSelection): DigitsSplit;
}

export interface EvalReport {
  n: number;
  /** The expected classes that occur (sorted), or null when none was given. */
  expectedClasses: number[] | null;
  trainSplit: DigitSelection;
  reference: "test" | "train";
  /** Fraction of samples classified as their expected class; null without an expected class. */
  classifierAccuracy: number | null;
  /** How many samples the classifier puts in each class 0..9. */
  classHistogram: number[];
  /** Mean over the samples of the classifier's top probability (how clearly they look like some digit). */
  meanConfidence: number;
  /** Mean probability of the expected class; null without one. */
  meanExpectedClassProbability: number | null;
  /** The same scores for real held-out images of the classes and for uniform noise (accuracy null without a class). */
  referenceScores: {
    real: { classifierAccuracy: number | null; meanConfidence: number; n: number };
    noise: { classifierAccuracy: number | null; meanConfidence: number; n: number };
  };
  /** Fréchet distance of the classifier features: samples vs the reference images. */
  fid: number;
  referenceFid: {
    /**
     * Real images vs the reference: training images of the samples' classes, as many as there are samples
     * (reference "test"; the mean over up to 5 disjoint such sets when there are enough), or the held-out
     * images (reference "train").
     */
    realVsReal: number;
    /** Smallest and largest real-vs-real value over those sets: how much FID varies between real sets of this size. */
    realVsRealRange: [number, number];
    /** Uniform-noise images vs the reference. */
    noiseVsReal: number;
  };
  copy: CopyCheck;
  /** The sample counts behind each number (FID's bias depends on them). */
  counts: {
    samples: number;
    reference: number;
    /** Images per real-vs-real set, and how many sets. */
    realVsReal: number;
    realVsRealSets: number;
    noise: number;
    trainImages: number;
    heldOutImages: number;
    featureDim: number;
  };
  /** Caveats worth printing (small reference sets, few samples). */
  notes: string[];
}

function fail(message: string): never {
  throw new Error(message);
}

/** Per-sample expected labels (Int32Array of length n), or null. */
function expectedLabels(expected: EvaluateOptions["expectedClass"], n: number): Int32Array | null {
  if (expected === undefined) return null;
  const check = (c: number, where: string) => {
    if (!Number.isInteger(c) || c < 0 || c >= NUM_CLASSES) fail(`${where} must be a digit 0-9, got ${c}`);
  };
  if (typeof expected === "number") {
    check(expected, "the expected class");
    return new Int32Array(n).fill(expected);
  }
  if (expected.length !== n) fail(`${expected.length} labels for ${n} samples`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    check(expected[i]!, `label ${i}`);
    out[i] = expected[i]!;
  }
  return out;
}

function selectClasses(data: DigitsDataset, classes: ReadonlySet<number>): DigitsDataset {
  const idx: number[] = [];
  for (let i = 0; i < data.count; i++) if (classes.has(data.labels[i]!)) idx.push(i);
  return subsetDigits(data, idx);
}

/** At most this many real-vs-real sets, and about this many real images in them in all. */
const MAX_REAL_SETS = 5;
const MAX_REAL_IMAGES = 2000;

/**
 * Disjoint sets of real training images paired with the samples: in each set, for each sample the next unused
 * training image of its class (in the split's shuffled order). Only complete sets are kept, except that a
 * first, incomplete one (a class with fewer training images than samples) is kept alone.
 */
function matchedTrainSubsets(pool: DigitsDataset, labels: Int32Array | null, n: number): DigitsDataset[] {
  const queues: number[][] = Array.from({ length: NUM_CLASSES }, () => []);
  for (let i = 0; i < pool.count; i++) queues[labels ? pool.labels[i]! : 0]!.push(i);
  const next = new Array<number>(NUM_CLASSES).fill(0);
  const maxSets = Math.max(1, Math.min(MAX_REAL_SETS, Math.floor(MAX_REAL_IMAGES / n)));
  const sets: DigitsDataset[] = [];
  for (let k = 0; k < maxSets; k++) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = labels ? labels[i]! : 0;
      if (next[c]! < queues[c]!.length) idx.push(queues[c]![next[c]!++]!);
    }
    if (idx.length < n) {
      if (k === 0 && idx.length >= 2) sets.push(subsetDigits(pool, idx));
      break;
    }
    sets.push(subsetDigits(pool, idx));
  }
  return sets;
}

async function scores(classifier: DigitClassifier, images: Float32Array, n: number, labels: Int32Array | null) {
  const { probs, labels: predicted, features } = await classifier.classifyWithFeatures(images, n);
  const histogram = new Array<number>(NUM_CLASSES).fill(0);
  let confidence = 0;
  let right = 0;
  let expectedProb = 0;
  for (let i = 0; i < n; i++) {
    histogram[predicted[i]!]!++;
    confidence += probs[i * NUM_CLASSES + predicted[i]!]!;
    if (labels) {
      if (predicted[i] === labels[i]) right++;
      expectedProb += probs[i * NUM_CLASSES + labels[i]!]!;
    }
  }
  return {
    histogram,
    features,
    meanConfidence: confidence / n,
    accuracy: labels ? right / n : null,
    meanExpectedProb: labels ? expectedProb / n : null,
  };
}

/** n uniform-noise images in [0,1), from NOISE_SEED. */
export function noiseImages(n: number): Float32Array {
  return Float32Array.from(td.random.uniformArray(td.random.key(NOISE_SEED), n * DIGIT_PIXELS));
}

/**
 * The quality report of n samples (N*64 values in [0,1], pixel/16 units, row-major 8x8). The classifier runs on
 * the active backend (any: its results are read back asynchronously); inconsistent options reject.
 */
export async function evaluateWith(context: EvalContext, samples: Float32Array, n: number, options: EvaluateOptions = {}): Promise<EvalReport> {
  if (!Number.isInteger(n) || samples.length !== n * DIGIT_PIXELS) fail(`${samples.length} values are not ${n} images of 64 pixels`);
  if (n < 2) fail(`need at least 2 samples, got ${n}`);
  // A model trained on one digit only is expected to draw that digit.
  const implied = options.expectedClass === undefined && typeof options.trainSplit === "number" ? options.trainSplit : options.expectedClass;
  const labels = expectedLabels(implied, n);
  const classes = labels ? [...new Set(labels)].sort((a, b) => a - b) : Array.from({ length: NUM_CLASSES }, (_, c) => c);
  const classSet = new Set(classes);
  const trainSplit: DigitSelection = options.trainSplit ?? (typeof options.expectedClass === "number" ? options.expectedClass : "all");
  if (trainSplit !== "all" && (classes.length !== 1 || classes[0] !== trainSplit)) {
    fail(`a model trained on digit ${trainSplit} only: the expected class must be ${trainSplit} (got ${classes.join(", ")})`);
  }
  const reference = options.reference ?? "test";
  if (reference !== "test" && reference !== "train") fail(`reference must be "test" or "train", got ${String(reference)}`);

  const split = context.split(trainSplit);
  const heldOut = selectClasses(split.test, classSet);
  const trainPool = selectClasses(split.train, classSet);
  if (heldOut.count < 2) fail(`only ${heldOut.count} held-out images of class ${classes.join(", ")}: too few to compare with`);
  const refData = reference === "test" ? heldOut : trainPool;
  const realSets = reference === "test" ? matchedTrainSubsets(trainPool, labels, n) : [heldOut];

  const classifier = context.classifier;
  const s = await scores(classifier, samples, n, labels);
  const real = await scores(classifier, heldOut.images, heldOut.count, labels ? heldOut.labels : null);
  const ref = reference === "test" ? real : await scores(classifier, refData.images, refData.count, null);
  const realForFid = reference === "test" ? await Promise.all(realSets.map((set) => scores(classifier, set.images, set.count, null))) : [real];
  const noise = noiseImages(n);
  const noiseScores = await scores(classifier, noise, n, labels);

  const dim = FEATURE_DIM;
  const fd = (a: { features: { data: Float32Array; n: number } }) => featureFrechetDistance(a.features.data, a.features.n, ref.features.data, ref.features.n, dim);
  const fid = fd(s);
  const realFids = realForFid.map(fd);
  const realVsReal = realFids.length > 0 ? realFids.reduce((a, b) => a + b, 0) / realFids.length : NaN;
  const realCount = realSets[0]?.count ?? 0;
  const noiseVsReal = fd(noiseScores);
  const copy = copyCheck(samples, split.train.images, heldOut.images);

  const notes: string[] = [];
  if (refData.count <= dim) {
    notes.push(`the reference has ${refData.count} real images, fewer than the ${dim} feature dimensions: its covariance is singular and every FID here is biased upward; compare the FID only with the reference values beside it (same counts)`);
  }
  if (n < 50) notes.push(`only ${n} samples: FID is strongly biased upward for small sets (use a few hundred for a stable value)`);
  if (reference === "test" && realCount < n) notes.push(`real-vs-real uses ${realCount} training images (fewer than the ${n} samples: not enough of the class)`);
  if (!labels) {
    const top = s.histogram.indexOf(Math.max(...s.histogram));
    if (s.histogram[top]! >= 0.8 * n) notes.push(`${Math.round((100 * s.histogram[top]!) / n)}% of the samples look like ${top}s: for their accuracy and a FID against real ${top}s, give the class (--class ${top})`);
  }

  return {
    n,
    expectedClasses: labels ? classes : null,
    trainSplit,
    reference,
    classifierAccuracy: s.accuracy,
    classHistogram: s.histogram,
    meanConfidence: s.meanConfidence,
    meanExpectedClassProbability: s.meanExpectedProb,
    referenceScores: {
      real: { classifierAccuracy: real.accuracy, meanConfidence: real.meanConfidence, n: heldOut.count },
      noise: { classifierAccuracy: noiseScores.accuracy, meanConfidence: noiseScores.meanConfidence, n },
    },
    fid,
    referenceFid: {
      realVsReal,
      realVsRealRange: realFids.length > 0 ? [Math.min(...realFids), Math.max(...realFids)] : [NaN, NaN],
      noiseVsReal,
    },
    copy,
    counts: {
      samples: n,
      reference: refData.count,
      realVsReal: realCount,
      realVsRealSets: realFids.length,
      noise: n,
      trainImages: split.train.count,
      heldOutImages: heldOut.count,
      featureDim: dim,
    },
    notes,
  };
}

function fmt(x: number | null, digits = 3): string {
  return x === null ? "-" : Number.isNaN(x) ? "n/a" : x.toFixed(digits);
}

function pct(x: number): string {
  return `${(100 * x).toFixed(0)}%`;
}

/** A readable report: one score per line with its reference values beside it. */
export function formatReport(r: EvalReport): string[] {
  const classWord = r.expectedClasses === null ? "no expected class" : r.expectedClasses.length === 1 ? `expected class ${r.expectedClasses[0]}` : `expected classes ${r.expectedClasses.join(",")} (per-sample labels)`;
  const splitWord = r.trainSplit === "all" ? "the all-digit split" : `the digit-${r.trainSplit} split`;
  const realWord = r.expectedClasses === null ? "real held-out digits" : r.expectedClasses.length === 1 ? `real held-out ${r.expectedClasses[0]}s` : "real held-out digits of those classes";
  const refWord = r.reference === "test" ? `${r.counts.reference} held-out real images` : `${r.counts.reference} real training images`;
  const lines = [
    `${r.n} samples, ${classWord}; real images from ${splitWord} (${r.counts.trainImages} training images, ${r.counts.heldOutImages} held out of ${r.expectedClasses === null ? "all classes" : "these classes"})`,
  ];
  if (r.classifierAccuracy !== null) {
    lines.push(`classifier accuracy   ${fmt(r.classifierAccuracy)}   (${realWord}: ${fmt(r.referenceScores.real.classifierAccuracy)}, uniform noise: ${fmt(r.referenceScores.noise.classifierAccuracy)})`);
  }
  lines.push(`mean confidence       ${fmt(r.meanConfidence)}   (${realWord}: ${fmt(r.referenceScores.real.meanConfidence)}, uniform noise: ${fmt(r.referenceScores.noise.meanConfidence)})`);
  lines.push(`classified as         ${r.classHistogram.map((count, c) => `${c}:${count}`).join("  ")}`);
  const realVsRealWord = r.reference === "test" ? `${r.counts.realVsReal} real training images` : `${r.counts.realVsReal} real held-out images`;
  const [lo, hi] = r.referenceFid.realVsRealRange;
  const spread = r.counts.realVsRealSets > 1 ? ` (mean of ${r.counts.realVsRealSets} sets, ${fmt(lo, 2)}-${fmt(hi, 2)})` : "";
  lines.push(`FID                   ${fmt(r.fid, 2)}   (lower is better; ${realVsRealWord}: ${fmt(r.referenceFid.realVsReal, 2)}${spread}, ${r.counts.noise} uniform-noise images: ${fmt(r.referenceFid.noiseVsReal, 2)}; all vs ${refWord}, ${r.counts.featureDim}-d classifier features)`);
  lines.push(`nearest training image: median distance ${fmt(r.copy.medianNearestTrainDistance, 2)}   (real held-out images: ${fmt(r.copy.testMedianNearestTrainDistance, 2)}); ${pct(r.copy.fractionCloserThanTestMedian)} of the samples are closer than that (about 50% for new digits, near 100% for copies)`);
  for (const note of r.notes) lines.push(`note: ${note}`);
  return lines;
}
