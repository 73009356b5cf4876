// Checkpoint folders: bit-exact round trip, crash-safe layout, and refusal of every kind of bad file
// with a message that names the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as td from "../../src/engine/index.ts";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { QUICK_PRESET, type TrainConfig } from "../../src/train/config.ts";
import { modelFromCheckpoint, type TrainingCheckpoint } from "../../src/train/saved-model.ts";
import { initUNet } from "../../src/nn/unet.ts";

const config: TrainConfig = { ...structuredClone(QUICK_PRESET), model: { inChannels: 1, outChannels: 1, features: 2, timeEmbDim: 16 } };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "td-ckpt-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function weights(seed: number): Map<string, td.Tensor> {
  return td.flattenTree(initUNet(config.model, td.random.key(seed)));
}

test("round trip is bit-exact, including float64, int32, NaN and -0", async () => {
  await withDir(async (dir) => {
    const model = weights(1);
    const training = new Map<string, td.Tensor>([
      ["m.x", td.tensor([NaN, -0, 1e-45, 3.4e38], [2, 2])],
      ["count", td.tensor([7, -3], [2], "int32")],
      ["f64", td.tensor([Math.PI, 1e-300], [2], "float64")],
    ]);
    await saveCheckpoint(dir, 12, config, { note: "state" }, model, training);
    const loaded = loadCheckpoint<TrainConfig, { note: string }>(dir, { withTraining: true });
    assert.equal(loaded.manifest.step, 12);
    assert.deepEqual(loaded.manifest.config, config);
    assert.deepEqual(loaded.manifest.state, { note: "state" });
    for (const [name, t] of [...model, ...training]) {
      const got = (loaded.model.get(name) ?? loaded.training.get(name))!;
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual(got.shape, t.shape, name);
      assert.deepEqual(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), name);
    }
  });
});

test("a newer save replaces the data files only after the manifest points to them", async () => {
  await withDir(async (dir) => {
    await saveCheckpoint(dir, 1, config, {}, weights(1));
    await saveCheckpoint(dir, 2, config, {}, weights(2));
    assert.deepEqual(readdirSync(dir).sort(), ["checkpoint.json", "model-0000002.safetensors"]);
    assert.equal(loadCheckpoint(dir).manifest.step, 2);
  });
});

test("bad checkpoints are refused with a message naming the problem", async () => {
  await withDir(async (dir) => {
    await saveCheckpoint(dir, 3, config, {}, weights(1));
    const manifestPath = join(dir, "checkpoint.json");
    const manifest = readFileSync(manifestPath, "utf8");
    const modelPath = join(dir, "model-0000003.safetensors");
    const model = readFileSync(modelPath);

    const refuses = (pattern: RegExp) => assert.throws(() => loadCheckpoint(dir), (e: Error) => pattern.test(e.message) && e.message.startsWith(`checkpoint ${dir}:`));
    writeFileSync(manifestPath, "{ not json");
    refuses(/checkpoint\.json is not valid JSON/);
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(manifest), version: 99 }));
    refuses(/format version 99 is not supported/);
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(manifest), format: "other" }));
    refuses(/not a tiny-diffusion-checkpoint manifest/);
    writeFileSync(manifestPath, manifest);
    const flipped = Buffer.from(model);
    flipped[flipped.length - 1] ^= 1;
    writeFileSync(modelPath, flipped);
    refuses(/model-0000003\.safetensors is corrupt or was changed/);
    // Without a recorded hash a truncated file is still caught by the safetensors decoder.
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(manifest), files: { model: "model-0000003.safetensors" } }));
    writeFileSync(modelPath, model.subarray(0, model.length - 10));
    refuses(/model-0000003\.safetensors: safetensors: /);
    unlinkSync(modelPath);
    refuses(/missing data file model-0000003\.safetensors/);
    assert.throws(() => loadCheckpoint(join(dir, "nope")), /no such directory/);
  });
});

test("weights of another model are refused by name and shape", async () => {
  await withDir(async (dir) => {
    const other = { ...config, model: { ...config.model, features: 3 } };
    await saveCheckpoint(dir, 1, config, {}, td.flattenTree(initUNet(other.model, td.random.key(0))));
    const contents = loadCheckpoint(dir) as TrainingCheckpoint;
    assert.throws(() => modelFromCheckpoint(dir, contents), /model tensor 'attention1\.key_proj\.bias' has shape \[12\], the model expects \[8\]/);
  });
});
