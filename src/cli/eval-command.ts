// `tiny-diffusion eval SAMPLES.npy [--class <d> | --labels FILE.npy] [--json]`: how good are generated digits?
// Reads the images `sample` writes (float32 [N,8,8] in [0,1]; [N,64] and [N,8,8,1] too), scores them with the
// shipped digit classifier against real held-out digits (src/eval/evaluate.ts) and prints a report with the
// reference values beside each score, or one JSON line. Without --class/--labels it uses SAMPLES.labels.npy when
// present (what `sample` writes for a conditional model).
import { existsSync, readFileSync, statSync } from "node:fs";
import { decodeNpy, type DecodedNpy } from "../io/npy.ts";
import type { DigitSelection } from "../data/digits.ts";
import { evaluateSamples, formatReport, type EvalReport } from "../eval/report.ts";
import { UserError } from "./errors.ts";

/** Values this far outside [0, 1] are accepted (and clipped): float round-off of a sampler's output. */
export const RANGE_TOLERANCE = 1e-3;

export interface EvalCommandOptions {
  /** Path of the samples .npy. */
  samples: string;
  /** The digit every sample should be. */
  class?: number;
  /** Path of a .npy with one expected digit per sample. */
  labels?: string;
  /** Real images to compare with: the held-out "test" images (default) or the "train" ones. */
  reference?: "test" | "train";
  /** The split the model was trained on (default: --class, else all). */
  trainSplit?: DigitSelection;
  json?: boolean;
  log: (line: string) => void;
}

function readNpyFile(path: string, what: string): DecodedNpy {
  if (!existsSync(path)) throw new UserError(`${what} file '${path}' does not exist`);
  if (!statSync(path).isFile()) throw new UserError(`${what} file '${path}' is not a file`);
  const bytes = readFileSync(path);
  try {
    return decodeNpy(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new UserError(`${what} file '${path}' is not a readable .npy file (${(e as Error).message})`);
  }
}

const shapeText = (shape: number[]) => `[${shape.join(",")}]`;

/** The images of a samples .npy, validated: float32/float64 [N,8,8], [N,64] or [N,8,8,1], N >= 2, values in [0,1]. */
export function readSamplesNpy(path: string): { images: Float32Array; n: number } {
  const npy = readNpyFile(path, "samples");
  if (npy.dtype === "<i4") {
    throw new UserError(`samples in '${path}' are int32; expected float32 images in [0,1] (pixel/16 units, as \`sample\` writes)`);
  }
  const s = npy.shape;
  const ok = (s.length === 3 && s[1] === 8 && s[2] === 8) || (s.length === 2 && s[1] === 64) || (s.length === 4 && s[1] === 8 && s[2] === 8 && s[3] === 1);
  if (!ok) throw new UserError(`samples in '${path}' have shape ${shapeText(s)}; expected [N,8,8], [N,64] or [N,8,8,1]`);
  const n = s[0]!;
  if (n < 2) throw new UserError(`'${path}' holds ${n} image${n === 1 ? "" : "s"}; eval needs at least 2`);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < npy.data.length; i++) {
    const v = npy.data[i]!;
    if (!Number.isFinite(v)) throw new UserError(`samples in '${path}' contain a non-finite value (${v}) in image ${Math.floor(i / 64)}`);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo < -RANGE_TOLERANCE || hi > 1 + RANGE_TOLERANCE) {
    const hint = hi > 1.5 && hi <= 16 + RANGE_TOLERANCE && lo >= -RANGE_TOLERANCE ? " (raw 0-16 pixels? divide by 16)" : lo < -0.5 ? " (model outputs in [-1,1]? map them to [0,1])" : "";
    throw new UserError(`samples in '${path}' range over [${lo.toPrecision(4)}, ${hi.toPrecision(4)}]; expected values in [0,1]${hint}`);
  }
  const images = Float32Array.from(npy.data, (v) => Math.min(1, Math.max(0, v)));
  return { images, n };
}

/** One expected digit per sample from a .npy: int32 or integer-valued floats, shape [N] or [N,1]. */
export function readLabelsNpy(path: string, n: number): Int32Array {
  const npy = readNpyFile(path, "labels");
  const s = npy.shape;
  if (!((s.length === 1) || (s.length === 2 && s[1] === 1))) throw new UserError(`labels in '${path}' have shape ${shapeText(s)}; expected [N] or [N,1]`);
  if (s[0] !== n) throw new UserError(`'${path}' has ${s[0]} labels for ${n} samples`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = npy.data[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 9) throw new UserError(`label ${i} in '${path}' is ${v}; labels must be digits 0-9`);
    out[i] = v;
  }
  return out;
}

/** Runs the command: prints the report (or one JSON line) through o.log and returns it. */
export async function runEval(o: EvalCommandOptions): Promise<EvalReport> {
  if (o.class !== undefined && o.labels !== undefined) throw new UserError("give either --class or --labels, not both");
  if (o.class !== undefined && !(Number.isInteger(o.class) && o.class >= 0 && o.class <= 9)) throw new UserError(`--class must be a digit 0-9, got ${o.class}`);
  const { images, n } = readSamplesNpy(o.samples);
  // `sample` writes FILE.labels.npy beside a conditional model's FILE.npy: use it when no class is given.
  const besideLabels = o.samples.endsWith(".npy") ? `${o.samples.slice(0, -4)}.labels.npy` : undefined;
  const labelsPath = o.labels ?? (o.class === undefined && besideLabels !== undefined && existsSync(besideLabels) ? besideLabels : undefined);
  const expectedClass = labelsPath !== undefined ? readLabelsNpy(labelsPath, n) : o.class;
  if (labelsPath !== undefined && o.labels === undefined && !o.json) o.log(`expected classes from ${labelsPath} (written by sample; --class overrides)`);
  // Inconsistent options (e.g. --train-split 3 with --class 5) throw plain one-line errors: main() prints them, exit 1.
  const report = await evaluateSamples(images, n, { expectedClass, reference: o.reference, trainSplit: o.trainSplit });
  if (o.json) o.log(JSON.stringify(report));
  else for (const line of formatReport(report)) o.log(line);
  return report;
}
