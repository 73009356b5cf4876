// The CLI's checkpoint layout over in-memory files (the page has no file system): the same codec
// (src/io/checkpoint-format.ts) and the same model loading (src/train/saved-model.ts) as the CLI.
import * as td from "../../src/engine/index.ts";
import { decodeCheckpoint, encodeCheckpoint, type NamedBytes } from "../../src/io/checkpoint-format.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import { modelFromCheckpoint, type LoadedModel as SavedModel } from "../../src/train/saved-model.ts";
import type { TrainingCheckpointState } from "../../src/train/trainer.ts";

export { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, MANIFEST } from "../../src/io/checkpoint-format.ts";

export interface LoadedModel extends SavedModel {
  /** Number of weights, for the page's description. */
  weights: number;
}

/**
 * The files saveCheckpoint would write for this state, byte for byte (up to savedAt). Asynchronous: on a device
 * backend (WebGPU) the tensors are read back from the GPU.
 */
export async function checkpointFiles(
  step: number, config: TrainConfig, state: TrainingCheckpointState, model: Map<string, td.Tensor>, training?: Map<string, td.Tensor>,
): Promise<NamedBytes[]> {
  return await encodeCheckpoint(step, config, state, model, training);
}

/** loadModel of the CLI over picked or fetched files (name -> bytes); prefers the EMA weights. */
export function loadModelFromFiles(files: ReadonlyMap<string, Uint8Array>): LoadedModel {
  const where = "(selected files)";
  const contents = decodeCheckpoint<TrainConfig, TrainingCheckpointState>(where, (name) => files.get(name), { withTraining: true });
  const loaded = modelFromCheckpoint(where, contents);
  return { ...loaded, weights: td.treeSize(loaded.params) };
}
