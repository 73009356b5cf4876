// Node-only: reads the digits files shipped in data/. Everything else is in the pure digits.ts.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { parseDigitsCsv, parseTutorialSplit, splitDigits } from "./digits.ts";
import type { DigitSelection, DigitsDataset, DigitsSplit, SplitOptions, TutorialSplit } from "./digits.ts";

/** data/digits.csv.gz (scikit-learn's file: 1797 rows). */
export const DIGITS_CSV_PATH = fileURLToPath(new URL("../../data/digits.csv.gz", import.meta.url));
/** data/split_digit1.json (the tutorial's train_test_split of the 1s). */
export const TUTORIAL_SPLIT_PATH = fileURLToPath(new URL("../../data/split_digit1.json", import.meta.url));

/** All 1797 images in file order. Accepts a .csv or .csv.gz path. */
export function readDigits(path: string = DIGITS_CSV_PATH): DigitsDataset {
  const bytes = readFileSync(path);
  const text = path.endsWith(".gz") ? gunzipSync(bytes).toString("utf8") : bytes.toString("utf8");
  return parseDigitsCsv(text);
}

export function readTutorialSplit(path: string = TUTORIAL_SPLIT_PATH): TutorialSplit {
  return parseTutorialSplit(JSON.parse(readFileSync(path, "utf8")));
}

/** Train/test images for a selection (default: the tutorial's digit 1 with its exact 172/10 split). */
export function loadDigitsSplit(selection: DigitSelection = 1, options: SplitOptions = {}): DigitsSplit {
  const tutorialSplit = options.tutorialSplit ?? readTutorialSplit();
  return splitDigits(readDigits(), selection, { ...options, tutorialSplit });
}
