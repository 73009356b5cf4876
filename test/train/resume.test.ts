// A run interrupted by a checkpoint and resumed must equal the uninterrupted run bit for bit
// (CPU reference backend): same weights, optimizer moments, EMA weights and loss history.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as td from "../../src/engine/index.ts";
import { loadDigitsSplit } from "../../src/data/digits-node.ts";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { QUICK_PRESET, type TrainConfig } from "../../src/train/config.ts";
import { checkpointState, newRun, restoreRun, startTrainStep, trainingTensors, trainStep, type StepReport, type TrainingCheckpointState, type TrainingRun } from "../../src/train/trainer.ts";

const config: TrainConfig = {
  ...structuredClone(QUICK_PRESET),
  model: { inChannels: 1, outChannels: 1, features: 2, timeEmbDim: 16 },
  schedule: { kind: "cosine", numSteps: 50 },
  penaltyWeight: 0.02, // exercise the double backward too
  steps: 6,
  batchSize: 8,
  timesteps: "progressive",
  emaDecay: 0.9,
};
const data = loadDigitsSplit(1).train;

function snapshot(run: TrainingRun): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, t] of td.flattenTree(run.params)) out.set(`p.${name}`, t.toArray());
  for (const [name, t] of trainingTensors(run)) out.set(name, t.toArray());
  return out;
}

test("resume from a checkpoint equals the uninterrupted run, bit for bit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "td-resume-"));
  try {
    const straight = newRun(config);
    for (let i = 0; i < 6; i++) await trainStep(straight, data);

    const first = newRun(config);
    for (let i = 0; i < 3; i++) await trainStep(first, data);
    await saveCheckpoint(dir, first.step, first.config, checkpointState(first), td.flattenTree(first.params), trainingTensors(first));
    const loaded = loadCheckpoint<TrainConfig, TrainingCheckpointState>(dir, { withTraining: true });
    const resumed = restoreRun(loaded.manifest.config, loaded.manifest.step, loaded.manifest.state, loaded.model, loaded.training);
    assert.equal(resumed.step, 3);
    for (let i = 0; i < 3; i++) await trainStep(resumed, data);

    assert.deepEqual(resumed.lossHistory, straight.lossHistory);
    const a = snapshot(straight);
    const b = snapshot(resumed);
    assert.equal(b.size, a.size);
    for (const [name, values] of a) assert.deepEqual(b.get(name), values, name); // exact equality
    // The run really trained: weights moved away from the initial ones.
    const init = snapshot(newRun(config));
    assert.notDeepEqual(init.get("p.final_conv.kernel"), a.get("p.final_conv.kernel"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("startTrainStep (steps in flight, as `train` runs them) equals trainStep: reports, loss history, weights", async () => {
  const awaited = newRun({ ...config, emaDecay: 0.9 });
  const awaitedReports: StepReport[] = [];
  for (let i = 0; i < 5; i++) awaitedReports.push(await trainStep(awaited, data));

  const pipelined = newRun({ ...config, emaDecay: 0.9 });
  const pending: Promise<StepReport>[] = [];
  for (let i = 0; i < 5; i++) {
    pending.push(startTrainStep(pipelined, data));
    assert.equal(pipelined.step, i + 1, "the run advances when the step is recorded");
  }
  const reports = await Promise.all(pending);
  assert.deepEqual(reports, awaitedReports);
  assert.deepEqual(pipelined.lossHistory, awaited.lossHistory);
  const a = snapshot(awaited);
  const b = snapshot(pipelined);
  for (const [name, values] of a) assert.deepEqual(b.get(name), values, name); // exact equality
  // trainStep after startTrainStep waits for the reports in flight: the history stays in step order.
  const mixed = newRun(config);
  void startTrainStep(mixed, data);
  const second = await trainStep(mixed, data);
  assert.equal(second.step, 2);
  assert.equal(mixed.lossHistory.length, 2);
});

test("training memory stays flat: live tensors are constant across steps", async () => {
  const run = newRun({ ...config, penaltyWeight: 0.02 });
  await trainStep(run, data);
  const before = td.memory().tensors;
  for (let i = 0; i < 4; i++) await trainStep(run, data);
  assert.equal(td.memory().tensors, before);
});
