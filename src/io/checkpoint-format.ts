// The checkpoint layout, as bytes (no file system: the CLI writes these files to a folder, the web page
// to a zip or reads them from picked files):
//   checkpoint.json               manifest: format, version, step, config, JSON state, data files + SHA-256
//   model-<step>.safetensors      the weights, by dotted names
//   training-<step>.safetensors   optional: optimizer moments and EMA weights
import * as td from "../engine/index.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "./safetensors.ts";
import { sha256Hex } from "./sha256.ts";

export const CHECKPOINT_FORMAT = "tiny-diffusion-checkpoint";
export const CHECKPOINT_VERSION = 1;
export const MANIFEST = "checkpoint.json";

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
  /** Optimizer moments, EMA weights, ... by dotted name (empty when not asked for or not saved). */
  training: Map<string, td.Tensor>;
}

export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

export class CheckpointError extends Error {
  /** `where` names the folder or file set, so the one-line message says which checkpoint is bad. */
  constructor(where: string, problem: string) {
    super(`checkpoint ${where}: ${problem}`);
    this.name = "CheckpointError";
  }
}

const DTYPE_TO_ST = { float32: "F32", float64: "F64", int32: "I32" } as const;
const ST_TO_DTYPE = { F32: "float32", F64: "float64", I32: "int32" } as const;

/**
 * Starts reading every tensor at once (read() captures the values at the call, on every backend) and
 * encodes them when all have arrived.
 */
async function encodeTensors(tensors: Map<string, td.Tensor>, metadata: Record<string, string>): Promise<Uint8Array> {
  const entries = [...tensors].map(([name, t]) => ({ name, dtype: DTYPE_TO_ST[t.dtype], shape: [...t.shape], data: t.read() }));
  const record: Record<string, SafetensorsTensor> = {};
  for (const { name, dtype, shape, data } of entries) record[name] = { dtype, shape, data: await data };
  return encodeSafetensors(record, metadata);
}

/** A deep copy through JSON (what the manifest would store anyway). */
function snapshotJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/**
 * The files of a checkpoint: data files first, the manifest last (the order a crash-safe writer needs).
 * Async because tensors on a device backend are read back with `await t.read()`. It is a snapshot of the
 * call: the tensors' values and the JSON of `config` and `state` are captured before the first await, so
 * the caller may go on (e.g. train, and dispose these tensors) while the bytes are being assembled.
 */
export async function encodeCheckpoint<Config, State>(
  step: number, config: Config, state: State, model: Map<string, td.Tensor>, training?: Map<string, td.Tensor>,
): Promise<NamedBytes[]> {
  const tag = String(step).padStart(7, "0");
  // JSON round trips: the manifest keeps the values of this call even if the caller changes the objects later.
  const configJson = JSON.stringify(config);
  const manifestConfig = snapshotJson(config);
  const manifestState = snapshotJson(state);
  const modelBytes = encodeTensors(model, { format: CHECKPOINT_FORMAT, config: configJson });
  const trainingBytes = training ? encodeTensors(training, { format: CHECKPOINT_FORMAT }) : null;
  const out: NamedBytes[] = [];
  const add = (name: string, bytes: Uint8Array): string => {
    out.push({ name, bytes });
    return sha256Hex(bytes);
  };
  const files: CheckpointManifest<Config, State>["files"] = { model: `model-${tag}.safetensors`, modelSha256: "" };
  files.modelSha256 = add(files.model, await modelBytes);
  if (trainingBytes) {
    files.training = `training-${tag}.safetensors`;
    files.trainingSha256 = add(files.training, await trainingBytes);
  }
  const manifest: CheckpointManifest<Config, State> = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, config: manifestConfig, state: manifestState, files, savedAt: new Date().toISOString(),
  };
  add(MANIFEST, new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"));
  return out;
}

export function parseManifest<Config, State>(where: string, bytes: Uint8Array): CheckpointManifest<Config, State> {
  let manifest: CheckpointManifest<Config, State>;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as CheckpointManifest<Config, State>;
  } catch (e) {
    throw new CheckpointError(where, `${MANIFEST} is not valid JSON (${(e as Error).message})`);
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(where, `${MANIFEST} is not a ${CHECKPOINT_FORMAT} manifest`);
  }
  if (manifest.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(where, `format version ${manifest.version} is not supported (this build reads version ${CHECKPOINT_VERSION})`);
  }
  if (!Number.isInteger(manifest.step) || manifest.step < 0 || typeof manifest.files?.model !== "string") {
    throw new CheckpointError(where, `${MANIFEST} lacks a valid step or model file`);
  }
  return manifest;
}

function decodeVerified(where: string, file: string, bytes: Uint8Array | undefined, expectedSha: string | undefined): Map<string, td.Tensor> {
  if (!bytes) throw new CheckpointError(where, `missing data file ${file}`);
  if (expectedSha && sha256Hex(bytes) !== expectedSha) {
    throw new CheckpointError(where, `${file} is corrupt or was changed (SHA-256 does not match ${MANIFEST})`);
  }
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new CheckpointError(where, `${file}: ${(e as Error).message}`);
  }
  const out = new Map<string, td.Tensor>();
  for (const [name, t] of decoded.tensors) out.set(name, td.tensor(t.data, t.shape, ST_TO_DTYPE[t.dtype]));
  return out;
}

/** Reads a checkpoint through `file(name)` (undefined = missing), verifying every data file's hash. */
export function decodeCheckpoint<Config, State>(
  where: string, file: (name: string) => Uint8Array | undefined, options: { withTraining?: boolean } = {},
): CheckpointContents<Config, State> {
  const manifestBytes = file(MANIFEST);
  if (!manifestBytes) throw new CheckpointError(where, `no ${MANIFEST} (not a checkpoint)`);
  const manifest = parseManifest<Config, State>(where, manifestBytes);
  const { files } = manifest;
  const model = decodeVerified(where, files.model, file(files.model), files.modelSha256);
  const training = options.withTraining && files.training
    ? decodeVerified(where, files.training, file(files.training), files.trainingSha256)
    : new Map<string, td.Tensor>();
  return { manifest, model, training };
}

/** Checks that loaded tensors have exactly the names, shapes and dtypes a model expects. */
export function checkTensorsMatch(where: string, what: string, expected: Map<string, td.Tensor>, loaded: Map<string, td.Tensor>): void {
  for (const [name, t] of expected) {
    const got = loaded.get(name);
    if (!got) throw new CheckpointError(where, `${what} is missing tensor '${name}'`);
    if (got.shape.length !== t.shape.length || got.shape.some((d, i) => d !== t.shape[i])) {
      throw new CheckpointError(where, `${what} tensor '${name}' has shape [${got.shape}], the model expects [${t.shape}]`);
    }
    if (got.dtype !== t.dtype) throw new CheckpointError(where, `${what} tensor '${name}' is ${got.dtype}, expected ${t.dtype}`);
  }
  for (const name of loaded.keys()) {
    if (!expected.has(name)) throw new CheckpointError(where, `${what} has unexpected tensor '${name}' (a different model?)`);
  }
}
