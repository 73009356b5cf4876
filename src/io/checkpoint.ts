// Checkpoint folders on disk (Node). The layout and its checks are in checkpoint-format.ts. Data files
// carry the step in their name and checkpoint.json is replaced last and atomically, so a crash mid-save
// leaves the previous checkpoint whole; older data files are removed only after that.
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type * as td from "../engine/index.ts";
import { writeFileAtomicSync } from "./atomic-file.ts";
import { CheckpointError, decodeCheckpoint, encodeCheckpoint, MANIFEST, type CheckpointContents } from "./checkpoint-format.ts";

export {
  CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, checkTensorsMatch, type CheckpointContents, type CheckpointManifest,
} from "./checkpoint-format.ts";

/**
 * Writes a checkpoint into `dir` and resolves to its manifest's path. Async because the tensors are read with
 * `await t.read()` (they may live on a device); their values, and `config` and `state`, are those at the call.
 */
export async function saveCheckpoint<Config, State>(
  dir: string, step: number, config: Config, state: State, model: Map<string, td.Tensor>, training?: Map<string, td.Tensor>,
): Promise<string> {
  const encoded = encodeCheckpoint(step, config, state, model, training);
  mkdirSync(dir, { recursive: true });
  const files = await encoded;
  for (const { name, bytes } of files) writeFileAtomicSync(join(dir, name), bytes);
  const current = new Set(files.map((f) => f.name));
  for (const name of readdirSync(dir)) {
    if (/^(model|training)-\d+\.safetensors$/.test(name) && !current.has(name)) unlinkSync(join(dir, name));
  }
  return join(dir, MANIFEST);
}

export function isCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, MANIFEST));
}

export function loadCheckpoint<Config, State>(dir: string, options: { withTraining?: boolean } = {}): CheckpointContents<Config, State> {
  if (!existsSync(dir)) throw new CheckpointError(dir, "no such directory");
  const read = (name: string): Uint8Array | undefined => {
    const path = join(dir, name);
    if (!existsSync(path)) return undefined;
    const buf = readFileSync(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  };
  return decodeCheckpoint<Config, State>(dir, read, options);
}
