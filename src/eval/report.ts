// evaluateSamples: the sample-quality report (evaluate.ts) with the repository's classifier weights and digits
// files (Node). The pure core, for other environments, is evaluateWith in evaluate.ts.
import { loadDigitsSplit } from "../data/digits-node.ts";
import type { DigitSelection, DigitsSplit } from "../data/digits.ts";
import { loadShippedClassifier } from "./classifier-node.ts";
import { evaluateWith, type EvalContext, type EvalReport, type EvaluateOptions } from "./evaluate.ts";

export { formatReport, evaluateWith, noiseImages, NOISE_SEED } from "./evaluate.ts";
export type { EvalContext, EvalReport, EvaluateOptions } from "./evaluate.ts";

const splits = new Map<DigitSelection, DigitsSplit>();

/** loadDigitsSplit, memoised (the splits are fixed: same files, same seed). */
export function cachedSplit(selection: DigitSelection): DigitsSplit {
  let s = splits.get(selection);
  if (!s) {
    s = loadDigitsSplit(selection);
    splits.set(selection, s);
  }
  return s;
}

/**
 * The quality report of n generated images (samples: n*64 values in [0,1], pixel/16 units), scored by the
 * shipped classifier (on the active backend) against the real digits of the split the model was trained on.
 * See evaluate.ts.
 */
export async function evaluateSamples(samples: Float32Array, n: number, options: EvaluateOptions = {}): Promise<EvalReport> {
  const classifier = loadShippedClassifier();
  try {
    const context: EvalContext = { classifier, split: cachedSplit };
    return await evaluateWith(context, samples, n, options);
  } finally {
    classifier.dispose();
  }
}
