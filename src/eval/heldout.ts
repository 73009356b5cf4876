// Which digits images count as "held out" for evaluation, and which ones the classifier may train on.
//
// A diffusion model is trained on one of eleven splits: loadDigitsSplit(d) for one digit d (the tutorial's
// exact split for d = 1, the seeded scikit-learn split otherwise) or loadDigitsSplit("all"). The evaluation
// compares samples with the TEST images of the split the model used, so the classifier that embeds them must
// not have seen any of those: it trains on the "all" split's training images minus every per-digit test
// image (i.e. on no image that is a test image of any of the eleven splits).
import type { DigitsDataset, DigitsSplit } from "../data/digits.ts";
import { subsetDigits } from "../data/digits.ts";

/** Rows (in digits.csv) of every image that is a test image of some split. */
export function heldOutRows(splits: readonly DigitsSplit[]): Set<number> {
  const rows = new Set<number>();
  for (const s of splits) for (const r of s.testRows) rows.add(r);
  return rows;
}

/**
 * The classifier's training images: the "all" split's training images that are a test image of no split,
 * in the "all" split's (seeded, shuffled) order.
 */
export function classifierTrainingSet(all: DigitsDataset, allSplit: DigitsSplit, perDigitSplits: readonly DigitsSplit[]): { data: DigitsDataset; rows: Int32Array } {
  const excluded = heldOutRows([allSplit, ...perDigitSplits]);
  const rows = Int32Array.from(Array.from(allSplit.trainRows).filter((r) => !excluded.has(r)));
  return { data: subsetDigits(all, rows), rows };
}

/** Every image that is a test image of some split (file order): the classifier never saw any of them. */
export function classifierHeldOutSet(all: DigitsDataset, splits: readonly DigitsSplit[]): { data: DigitsDataset; rows: Int32Array } {
  const rows = Int32Array.from([...heldOutRows(splits)].sort((a, b) => a - b));
  return { data: subsetDigits(all, rows), rows };
}
