// Makes the web app's pretrained model from a CLI run: the sampling weights (EMA when the run has them)
// saved as a weights-only checkpoint in the CLI's layout, small enough to ship with the page.
//
//   node bin/tiny-diffusion.mjs train --features 4 --steps 1500 --batch 32 --out /tmp/webmodel --backend cpu
//   node --import tsx web/scripts/export-model.ts /tmp/webmodel web/public/model
import { existsSync, readdirSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import * as td from "../../src/engine/index.ts";
import { loadModel } from "../../src/cli/model-loading.ts";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { resolveCheckpointDir } from "../../src/cli/model-loading.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import type { TrainingCheckpointState } from "../../src/train/trainer.ts";

const [from, to = "web/public/model"] = process.argv.slice(2);
if (!from) {
  console.error("usage: node --import tsx web/scripts/export-model.ts <run or checkpoint folder> [out folder]");
  process.exit(2);
}
const loaded = loadModel(from);
const { manifest } = loadCheckpoint<TrainConfig, TrainingCheckpointState>(resolveCheckpointDir(from));
if (existsSync(to)) for (const name of readdirSync(to)) if (/^(model|training)-\d+\.safetensors$|^checkpoint\.json$/.test(name)) unlinkSync(join(to, name));
// The weights-only checkpoint keeps the run's config and loss history; its "model" file holds the weights to
// sample with, so the CLI and the page both load them without the (3x larger) training file.
await saveCheckpoint(to, manifest.step, loaded.config, manifest.state, td.flattenTree(loaded.params));
const size = readdirSync(to).reduce((s, n) => s + statSync(join(to, n)).size, 0);
console.log(`${to}: step ${manifest.step}, ${loaded.usedEma ? "EMA" : "raw"} weights, ${td.treeSize(loaded.params).toLocaleString("en-US")} weights, ${(size / 1e6).toFixed(2)} MB`);
