// Checkpoints: a folder with the weights as safetensors (dotted names), the training tensors
// (optimizer moments, EMA weights) as a second safetensors file, and checkpoint.json (config,
// step, loss history, and the SHA-256 of both data files). Data files carry the step in their
// name and checkpoint.json is replaced last and atomically, so a crash mid-save leaves the
// previous checkpoint intact; a file that does not match its recorded hash is refused.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import * as td from "../engine/index.ts";
import { writeFileAtomicSync } from "./atomic-file.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "./safetensors.ts";

export const CHECKPOINT_FORMAT = "tiny-diffusion-checkpoint";
export const CHECKPOINT_VERSION = 1;
const MANIFEST = "checkpoint.json";

export interface CheckpointManifest<Config, State> {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  config: Config;
  /** Small JSON-able training state (loss history, optimizer step count, ...). */
  state: State;
  files: { model: string; modelSha256: string; training?: string; trainingSha256?: string };
  savedAt: string;
}

export interface CheckpointContents<Config, State> {
  manifest: CheckpointManifest<Config, State>;
  /** Weights by dotted name. */
  model: Map<string, td.Tensor>;
  /** Optimizer moments, EMA weights, ... by dotted name (empty for weights-only checkpoints). */
  training: Map<string, td.Tensor>;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const DTYPE_TO_ST = { float32: "F32", float64: "F64", int32: "I32" } as const;
const ST_TO_DTYPE = { F32: "float32", F64: "float64", I32: "int32" } as const;

function encodeTensors(tensors: Map<string, td.Tensor>, metadata: Record<string, string>): Uint8Array {
  const record: Record<string, SafetensorsTensor> = {};
  for (const [name, t] of tensors) record[name] = { dtype: DTYPE_TO_ST[t.dtype], shape: [...t.shape], data: t.data };
  return encodeSafetensors(record, metadata);
}

export function saveCheckpoint<Config, State>(
  dir: string, step: number, config: Config, state: State, model: Map<string, td.Tensor>, training?: Map<string, td.Tensor>,
): string {
  mkdirSync(dir, { recursive: true });
  const tag = String(step).padStart(7, "0");
  const modelFile = `model-${tag}.safetensors`;
  const modelBytes = encodeTensors(model, { format: CHECKPOINT_FORMAT, config: JSON.stringify(config) });
  writeFileAtomicSync(join(dir, modelFile), modelBytes);
  const files: CheckpointManifest<Config, State>["files"] = { model: modelFile, modelSha256: sha256(modelBytes) };
  if (training) {
    const trainingFile = `training-${tag}.safetensors`;
    const trainingBytes = encodeTensors(training, { format: CHECKPOINT_FORMAT });
    writeFileAtomicSync(join(dir, trainingFile), trainingBytes);
    files.training = trainingFile;
    files.trainingSha256 = sha256(trainingBytes);
  }
  const manifest: CheckpointManifest<Config, State> = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, config, state, files, savedAt: new Date().toISOString(),
  };
  writeFileAtomicSync(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
  // Only now are older data files unreferenced.
  for (const name of readdirSync(dir)) {
    if (/^(model|training)-\d+\.safetensors$/.test(name) && name !== files.model && name !== files.training) unlinkSync(join(dir, name));
  }
  return join(dir, MANIFEST);
}

export class CheckpointError extends Error {
  constructor(dir: string, problem: string) {
    super(`checkpoint ${dir}: ${problem}`);
    this.name = "CheckpointError";
  }
}

function readVerified(dir: string, file: string, expectedSha: string | undefined): Uint8Array {
  const path = join(dir, file);
  if (!existsSync(path)) throw new CheckpointError(dir, `missing data file ${file}`);
  const buf = readFileSync(path);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (expectedSha && sha256(bytes) !== expectedSha) {
    throw new CheckpointError(dir, `${file} is corrupt or was changed (SHA-256 does not match checkpoint.json)`);
  }
  return bytes;
}

function decodeTensors(dir: string, file: string, bytes: Uint8Array): Map<string, td.Tensor> {
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new CheckpointError(dir, `${file}: ${(e as Error).message}`);
  }
  const out = new Map<string, td.Tensor>();
  for (const [name, t] of decoded.tensors) out.set(name, td.tensor(t.data, t.shape, ST_TO_DTYPE[t.dtype]));
  return out;
}

export function isCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, MANIFEST));
}

export function loadCheckpoint<Config, State>(dir: string, options: { withTraining?: boolean } = {}): CheckpointContents<Config, State> {
  const manifestPath = join(dir, MANIFEST);
  if (!existsSync(dir)) throw new CheckpointError(dir, "no such directory");
  if (!existsSync(manifestPath)) throw new CheckpointError(dir, `no ${MANIFEST} (not a checkpoint folder)`);
  let manifest: CheckpointManifest<Config, State>;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as CheckpointManifest<Config, State>;
  } catch (e) {
    throw new CheckpointError(dir, `${MANIFEST} is not valid JSON (${(e as Error).message})`);
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(dir, `${MANIFEST} is not a ${CHECKPOINT_FORMAT} manifest`);
  }
  if (manifest.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(dir, `format version ${manifest.version} is not supported (this build reads version ${CHECKPOINT_VERSION})`);
  }
  if (!Number.isInteger(manifest.step) || manifest.step < 0 || typeof manifest.files?.model !== "string") {
    throw new CheckpointError(dir, `${MANIFEST} lacks a valid step or model file`);
  }
  const model = decodeTensors(dir, manifest.files.model, readVerified(dir, manifest.files.model, manifest.files.modelSha256));
  let training = new Map<string, td.Tensor>();
  if (options.withTraining && manifest.files.training) {
    training = decodeTensors(dir, manifest.files.training, readVerified(dir, manifest.files.training, manifest.files.trainingSha256));
  }
  return { manifest, model, training };
}

/** Checks that loaded tensors have exactly the names and shapes a model expects. */
export function checkTensorsMatch(dir: string, what: string, expected: Map<string, td.Tensor>, loaded: Map<string, td.Tensor>): void {
  for (const [name, t] of expected) {
    const got = loaded.get(name);
    if (!got) throw new CheckpointError(dir, `${what} is missing tensor '${name}'`);
    if (got.shape.length !== t.shape.length || got.shape.some((d, i) => d !== t.shape[i])) {
      throw new CheckpointError(dir, `${what} tensor '${name}' has shape [${got.shape}], the model expects [${t.shape}]`);
    }
    if (got.dtype !== t.dtype) throw new CheckpointError(dir, `${what} tensor '${name}' is ${got.dtype}, expected ${t.dtype}`);
  }
  for (const name of loaded.keys()) {
    if (!expected.has(name)) throw new CheckpointError(dir, `${what} has unexpected tensor '${name}' (a different model?)`);
  }
}
