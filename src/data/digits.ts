// scikit-learn's 8x8 digits as plain typed arrays (pure: no Node APIs, so it also runs in a browser).
// The file-reading part lives in digits-node.ts.
import { sklearnTrainTestSplit } from "./sklearn-split.ts";

export const DIGIT_SIDE = 8;
export const DIGIT_PIXELS = DIGIT_SIDE * DIGIT_SIDE;
/** Raw pixels are integers 0..16; images are stored divided by this, as in the tutorial. */
export const DIGIT_MAX_VALUE = 16;
/** The tutorial's split: train_test_split(test_size=0.05, random_state=42). */
export const DEFAULT_TEST_FRACTION = 0.05;
export const DEFAULT_SPLIT_SEED = 42;

/** N images, row-major 8x8 with one channel (NHWC, C=1), values pixel/16 in [0, 1]. */
export interface DigitsDataset {
  images: Float32Array; // count * 64
  labels: Int32Array; // count
  count: number;
}

/** Which images to use: one digit 0..9 (the tutorial uses 1) or all of them. */
export type DigitSelection = number | "all";

export interface DigitsSplit {
  train: DigitsDataset;
  test: DigitsDataset;
  /** Row in digits.csv of each train/test image, for tracing back to the file. */
  trainRows: Int32Array;
  testRows: Int32Array;
  /** "tutorial-json": data/split_digit1.json; "sklearn-seeded": sklearnTrainTestSplit (same algorithm). */
  method: "tutorial-json" | "sklearn-seeded";
}

/** The content of data/split_digit1.json that we use (extra fields are ignored). */
export interface TutorialSplit {
  digit: number;
  digitRowsInCsv: number[]; // row of each image of `digit`, in file order
  trainIndices: number[]; // indices into digitRowsInCsv, in train_test_split's order
  testIndices: number[];
}

/** Parses digits.csv text: one image per line, 64 pixels 0..16 then the label, no header. */
export function parseDigitsCsv(text: string): DigitsDataset {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  const count = lines.length;
  const images = new Float32Array(count * DIGIT_PIXELS);
  const labels = new Int32Array(count);
  for (let row = 0; row < count; row++) {
    const fields = lines[row].split(",");
    if (fields.length !== DIGIT_PIXELS + 1) throw new Error(`digits csv row ${row}: ${fields.length} fields, expected 65`);
    for (let p = 0; p < DIGIT_PIXELS; p++) {
      const value = Number(fields[p]);
      if (!Number.isInteger(value) || value < 0 || value > DIGIT_MAX_VALUE) throw new Error(`digits csv row ${row}: bad pixel "${fields[p]}"`);
      images[row * DIGIT_PIXELS + p] = value / DIGIT_MAX_VALUE; // exact in float32 (k/16)
    }
    const label = Number(fields[DIGIT_PIXELS]);
    if (!Number.isInteger(label) || label < 0 || label > 9) throw new Error(`digits csv row ${row}: bad label "${fields[DIGIT_PIXELS]}"`);
    labels[row] = label;
  }
  return { images, labels, count };
}

/** The images at `indices`, in that order (copies). */
export function subsetDigits(dataset: DigitsDataset, indices: ArrayLike<number>): DigitsDataset {
  const count = indices.length;
  const images = new Float32Array(count * DIGIT_PIXELS);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const src = indices[i];
    if (!Number.isInteger(src) || src < 0 || src >= dataset.count) throw new Error(`image index ${src} out of range 0..${dataset.count - 1}`);
    images.set(dataset.images.subarray(src * DIGIT_PIXELS, (src + 1) * DIGIT_PIXELS), i * DIGIT_PIXELS);
    labels[i] = dataset.labels[src];
  }
  return { images, labels, count };
}

/** Rows (file order) of the images matching `selection`. */
export function selectDigitRows(dataset: DigitsDataset, selection: DigitSelection): Int32Array {
  if (selection === "all") return Int32Array.from({ length: dataset.count }, (_, i) => i);
  if (!Number.isInteger(selection) || selection < 0 || selection > 9) throw new Error(`digit must be 0..9 or "all", got ${selection}`);
  const rows: number[] = [];
  for (let i = 0; i < dataset.count; i++) if (dataset.labels[i] === selection) rows.push(i);
  return Int32Array.from(rows);
}

/** Number of images per label 0..9. */
export function labelCounts(dataset: DigitsDataset): number[] {
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < dataset.count; i++) counts[dataset.labels[i]]++;
  return counts;
}

/** Validates the parsed JSON of data/split_digit1.json. */
export function parseTutorialSplit(json: unknown): TutorialSplit {
  const obj = json as Record<string, unknown>;
  const intArray = (key: string): number[] => {
    const value = obj?.[key];
    if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v))) throw new Error(`split json: "${key}" must be an integer array`);
    return value as number[];
  };
  if (!Number.isInteger(obj?.digit)) throw new Error(`split json: "digit" must be an integer`);
  return {
    digit: obj.digit as number,
    digitRowsInCsv: intArray("digit_rows_in_csv"),
    trainIndices: intArray("train_indices"),
    testIndices: intArray("test_indices"),
  };
}

export interface SplitOptions {
  /** Used when it is for the selected digit (the tutorial's exact split for the 1s). */
  tutorialSplit?: TutorialSplit;
  testFraction?: number;
  seed?: number;
}

/**
 * Train/test split of the selected images.
 * - Selected digit == tutorialSplit.digit (and default fraction/seed): the stored tutorial split, checked
 *   against the file's rows.
 * - Otherwise (another digit, or "all"): scikit-learn's train_test_split(test_size=0.05, random_state=42),
 *   reproduced bit for bit (see sklearn-split.ts) over the selected images in file order. For digit 1
 *   this gives the same split as the JSON, so the choice is the tutorial's own rule applied uniformly.
 */
export function splitDigits(all: DigitsDataset, selection: DigitSelection, options: SplitOptions = {}): DigitsSplit {
  const rows = selectDigitRows(all, selection);
  const tutorial = options.tutorialSplit;
  let trainIdx: ArrayLike<number>;
  let testIdx: ArrayLike<number>;
  let method: DigitsSplit["method"];
  const defaultRule = (options.testFraction ?? DEFAULT_TEST_FRACTION) === DEFAULT_TEST_FRACTION && (options.seed ?? DEFAULT_SPLIT_SEED) === DEFAULT_SPLIT_SEED;
  if (tutorial && selection === tutorial.digit && defaultRule) {
    if (tutorial.digitRowsInCsv.length !== rows.length || tutorial.digitRowsInCsv.some((r, i) => r !== rows[i])) {
      throw new Error(`split json does not match the csv: its rows of digit ${tutorial.digit} differ`);
    }
    trainIdx = tutorial.trainIndices;
    testIdx = tutorial.testIndices;
    method = "tutorial-json";
  } else {
    const split = sklearnTrainTestSplit(rows.length, options.testFraction ?? DEFAULT_TEST_FRACTION, options.seed ?? DEFAULT_SPLIT_SEED);
    trainIdx = split.train;
    testIdx = split.test;
    method = "sklearn-seeded";
  }
  const trainRows = Int32Array.from(trainIdx, (i) => rows[i]);
  const testRows = Int32Array.from(testIdx, (i) => rows[i]);
  return { train: subsetDigits(all, trainRows), test: subsetDigits(all, testRows), trainRows, testRows, method };
}
