// The CLI's checkpoint layout (src/io/checkpoint.ts), read and written without a file system:
//   checkpoint.json                 manifest: format, version, step, config, state, files + SHA-256
//   model-<step>.safetensors        the weights (dotted names)
//   training-<step>.safetensors     optional: optimizer moments m.*, v.* and EMA weights ema.*
// src/io/checkpoint.ts uses node:fs and node:crypto, so the browser gets this twin that works on
// in-memory files; both share the safetensors codec, the trainer's tensor naming and the U-Net.
import * as td from "../../src/engine/index.ts";
import { makeSchedule, type NoiseSchedule } from "../../src/diffusion/schedules.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "../../src/io/safetensors.ts";
import { initUNet, type UNetParams } from "../../src/nn/unet.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import { modelConfigOf, type TrainingCheckpointState } from "../../src/train/trainer.ts";
import { sha256Hex, type NamedFile } from "./bytes.ts";

// Must equal CHECKPOINT_FORMAT / CHECKPOINT_VERSION in src/io/checkpoint.ts (checked by test/web).
export const CHECKPOINT_FORMAT = "tiny-diffusion-checkpoint";
export const CHECKPOINT_VERSION = 1;
export const MANIFEST = "checkpoint.json";

export interface Manifest {
  format: string;
  version: number;
  step: number;
  config: TrainConfig;
  state: TrainingCheckpointState;
  files: { model: string; modelSha256: string; training?: string; trainingSha256?: string };
  savedAt: string;
}

const DTYPE_TO_ST = { float32: "F32", float64: "F64", int32: "I32" } as const;
const ST_TO_DTYPE = { F32: "float32", F64: "float64", I32: "int32" } as const;

function encodeTensors(tensors: Map<string, td.Tensor>, metadata: Record<string, string>): Uint8Array {
  const record: Record<string, SafetensorsTensor> = {};
  for (const [name, t] of tensors) record[name] = { dtype: DTYPE_TO_ST[t.dtype], shape: [...t.shape], data: t.data };
  return encodeSafetensors(record, metadata);
}

/** The files saveCheckpoint would write for this state, byte for byte (up to savedAt). */
export function checkpointFiles(
  step: number, config: TrainConfig, state: TrainingCheckpointState, model: Map<string, td.Tensor>, training?: Map<string, td.Tensor>,
): NamedFile[] {
  const tag = String(step).padStart(7, "0");
  const modelFile = `model-${tag}.safetensors`;
  const modelBytes = encodeTensors(model, { format: CHECKPOINT_FORMAT, config: JSON.stringify(config) });
  const out: NamedFile[] = [{ name: modelFile, bytes: modelBytes }];
  const files: Manifest["files"] = { model: modelFile, modelSha256: sha256Hex(modelBytes) };
  if (training) {
    const trainingFile = `training-${tag}.safetensors`;
    const trainingBytes = encodeTensors(training, { format: CHECKPOINT_FORMAT });
    out.push({ name: trainingFile, bytes: trainingBytes });
    files.training = trainingFile;
    files.trainingSha256 = sha256Hex(trainingBytes);
  }
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, config, state, files, savedAt: new Date().toISOString(),
  };
  out.unshift({ name: MANIFEST, bytes: new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n") });
  return out;
}

export class CheckpointError extends Error {
  constructor(problem: string) {
    super(`checkpoint: ${problem}`);
    this.name = "CheckpointError";
  }
}

/** Parses and validates checkpoint.json (the checks loadCheckpoint makes). */
export function parseManifest(bytes: Uint8Array): Manifest {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as Manifest;
  } catch (e) {
    throw new CheckpointError(`${MANIFEST} is not valid JSON (${(e as Error).message})`);
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${MANIFEST} is not a ${CHECKPOINT_FORMAT} manifest`);
  }
  if (manifest.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(`format version ${manifest.version} is not supported (this build reads version ${CHECKPOINT_VERSION})`);
  }
  if (!Number.isInteger(manifest.step) || manifest.step < 0 || typeof manifest.files?.model !== "string") {
    throw new CheckpointError(`${MANIFEST} lacks a valid step or model file`);
  }
  if (!manifest.config?.model || !manifest.config?.schedule) throw new CheckpointError(`${MANIFEST} has no model or schedule config`);
  return manifest;
}

function decodeVerified(name: string, bytes: Uint8Array, expectedSha: string | undefined): Map<string, td.Tensor> {
  if (expectedSha && sha256Hex(bytes) !== expectedSha) {
    throw new CheckpointError(`${name} is corrupt or was changed (SHA-256 does not match ${MANIFEST})`);
  }
  let decoded;
  try {
    decoded = decodeSafetensors(bytes, { copy: true });
  } catch (e) {
    throw new CheckpointError(`${name}: ${(e as Error).message}`);
  }
  const out = new Map<string, td.Tensor>();
  for (const [tensorName, t] of decoded.tensors) out.set(tensorName, td.tensor(t.data, t.shape, ST_TO_DTYPE[t.dtype]));
  return out;
}

function checkTensorsMatch(what: string, expected: Map<string, td.Tensor>, loaded: Map<string, td.Tensor>): void {
  for (const [name, t] of expected) {
    const got = loaded.get(name);
    if (!got) throw new CheckpointError(`${what} is missing tensor '${name}'`);
    if (got.shape.length !== t.shape.length || got.shape.some((d, i) => d !== t.shape[i])) {
      throw new CheckpointError(`${what} tensor '${name}' has shape [${got.shape}], the model expects [${t.shape}]`);
    }
    if (got.dtype !== t.dtype) throw new CheckpointError(`${what} tensor '${name}' is ${got.dtype}, expected ${t.dtype}`);
  }
  for (const name of loaded.keys()) {
    if (!expected.has(name)) throw new CheckpointError(`${what} has unexpected tensor '${name}' (a different model?)`);
  }
}

export interface LoadedModel {
  config: TrainConfig;
  params: UNetParams;
  schedule: NoiseSchedule;
  step: number;
  usedEma: boolean;
  weights: number;
}

/**
 * src/cli/model-loading.ts's loadModel over in-memory files (name -> bytes): verifies hashes, checks every
 * tensor against the U-Net the config describes, and prefers the EMA weights when the training file is given.
 */
export function loadModelFromFiles(files: ReadonlyMap<string, Uint8Array>): LoadedModel {
  const manifestBytes = files.get(MANIFEST);
  if (!manifestBytes) throw new CheckpointError(`no ${MANIFEST} among the files`);
  const manifest = parseManifest(manifestBytes);
  const modelBytes = files.get(manifest.files.model);
  if (!modelBytes) throw new CheckpointError(`missing data file ${manifest.files.model}`);
  const trainingBytes = manifest.files.training ? files.get(manifest.files.training) : undefined;
  const config = manifest.config;
  return td.tidy(() => {
    const expected = td.flattenTree(initUNet(modelConfigOf(config), td.random.key(0)));
    const model = decodeVerified(manifest.files.model, modelBytes, manifest.files.modelSha256);
    checkTensorsMatch("model", expected, model);
    let weights = model;
    let usedEma = false;
    if (trainingBytes) {
      const training = decodeVerified(manifest.files.training!, trainingBytes, manifest.files.trainingSha256);
      const ema = new Map([...training].filter(([n]) => n.startsWith("ema.")).map(([n, t]) => [n.slice(4), t] as [string, td.Tensor]));
      if (ema.size > 0) {
        checkTensorsMatch("EMA weights", expected, ema);
        weights = ema;
        usedEma = true;
      }
    }
    const params = td.unflattenTree(weights) as UNetParams;
    return {
      config, params, schedule: makeSchedule(config.schedule), step: manifest.step, usedEma, weights: td.treeSize(params),
    };
  });
}
