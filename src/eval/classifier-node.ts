// Node-only: reads the shipped classifier weights from the repository (models/digit-classifier.safetensors).
// The decoding itself is pure (decodeClassifier in classifier.ts), so a browser can fetch the same file.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { decodeClassifier, type DigitClassifier } from "./classifier.ts";

export const CLASSIFIER_WEIGHTS_PATH = fileURLToPath(new URL("../../models/digit-classifier.safetensors", import.meta.url));

let cachedBytes: Uint8Array | undefined;

/**
 * The shipped classifier. The file is read once per process; each call builds fresh tensors on the active
 * backend (the caller owns them: dispose() when done).
 */
export function loadShippedClassifier(): DigitClassifier {
  cachedBytes ??= readWeightsFile(CLASSIFIER_WEIGHTS_PATH);
  return decodeClassifier(cachedBytes);
}

/** A classifier from another weights file (e.g. one scripts/train-classifier.ts just wrote). */
export function readClassifier(path: string): DigitClassifier {
  return decodeClassifier(readWeightsFile(path));
}

function readWeightsFile(path: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the classifier weights ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
