// The training path on the WebGpuBackend: trainStep (forward, backward with the gradient penalty, the
// optimizer with both clips, EMA; a conditional model with labels and label dropout) must match the reference
// CPU backend step for step within float32 tolerances (stated at each assertion), read back only once per
// step (the loss and the gradient norm), and keep memory flat.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { loadDigitsSplit } from "../../src/data/digits-node.ts";
import { QUICK_PRESET, type TrainConfig } from "../../src/train/config.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import {
  checkpointState, disposeRun, newRun, restoreRun, startTrainStep, trainingTensors, trainStep,
  type StepReport, type TrainingCheckpointState, type TrainingRun,
} from "../../src/train/trainer.ts";
import { kernels, webgpuBackend } from "./helpers.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { maxAbs } from "../helpers/backend-parity.ts";

after(() => td.setBackend(new CpuBackend()));

const STEPS = 3;
const config: TrainConfig = {
  ...structuredClone(QUICK_PRESET),
  model: { inChannels: 1, outChannels: 1, features: 4, timeEmbDim: 16 },
  schedule: { kind: "cosine", numSteps: 100 },
  // No warm-up, so every update moves the weights (lr(0) = 2e-3, then the cosine decay).
  optimizer: { ...QUICK_PRESET.optimizer, lr: { peak: 2e-3, warmupSteps: 0, totalSteps: 100, alpha: 0.05 } },
  penaltyWeight: 0.02,
  digit: "all",
  conditional: true,
  labelDropout: 0.1,
  steps: 100,
  batchSize: 16,
  timesteps: "uniform",
  seed: 3,
  emaDecay: 0.9,
};
const data = loadDigitsSplit("all").train;

/** Every tensor of a run by name: "p.*" weights, "m.*"/"v.*" moments, "ema.*" averages, as float64 copies. */
async function snapshot(run: TrainingRun): Promise<Map<string, Float64Array>> {
  const tensors = new Map<string, td.Tensor>();
  for (const [name, t] of td.flattenTree(run.params)) tensors.set(`p.${name}`, t);
  for (const [name, t] of trainingTensors(run)) tensors.set(name, t);
  const values = await Promise.all([...tensors.values()].map((t) => t.read()));
  return new Map([...tensors.keys()].map((name, i) => [name, Float64Array.from(values[i]!)]));
}

async function train(backend: td.Backend, steps: number): Promise<{ init: Map<string, Float64Array>; reports: StepReport[]; final: Map<string, Float64Array> }> {
  td.setBackend(backend);
  try {
    const run = newRun(config);
    const init = await snapshot(run);
    const reports: StepReport[] = [];
    for (let i = 0; i < steps; i++) reports.push(await trainStep(run, data));
    const final = await snapshot(run);
    td.dispose([run.params, run.optimizer, run.ema]);
    return { init, reports, final };
  } finally {
    td.setBackend(new CpuBackend());
  }
}

test(`${STEPS} conditional train steps (features 4, batch 16, penalty 0.02, EMA) match the CPU backend`, async () => {
  const gpu = await webgpuBackend();
  const cpu = await train(new CpuBackend(), STEPS);
  let reads = 0;
  const read = gpu.read;
  gpu.read = (storage) => {
    reads++;
    return read.call(gpu, storage);
  };
  let onGpu: Awaited<ReturnType<typeof train>>;
  try {
    onGpu = await train(gpu, STEPS);
  } finally {
    gpu.read = read;
  }
  // Reads: the initial and final snapshots (one per tensor each), plus exactly one per step (loss and norm).
  assert.equal(reads, 2 * cpu.init.size + STEPS, "one read back per train step");

  // The initial weights are generated on the host (the same counter-based random numbers) and uploaded.
  for (const [name, values] of cpu.init) assert.deepEqual(onGpu.init.get(name), values, `initial ${name}`);

  // Loss and gradient norm per step. The loss: float32 forward sums in another order, within 1e-5 relative
  // (measured <= 6.8e-8). The norm: the square root of a sum over every gradient element, whose errors are
  // ~1e-5 of each tensor's scale at most and average out: within 1e-5 relative (measured <= 6.7e-7).
  const lossErrors: number[] = [];
  const normErrors: number[] = [];
  cpu.reports.forEach((c, k) => {
    const g = onGpu.reports[k]!;
    assert.equal(g.step, c.step);
    assert.equal(g.lr, c.lr);
    lossErrors.push(Math.abs(g.loss - c.loss) / Math.abs(c.loss));
    normErrors.push(Math.abs(g.gradNorm - c.gradNorm) / Math.abs(c.gradNorm));
    assert.ok(lossErrors[k]! < 1e-5, `step ${k + 1}: loss ${g.loss} vs ${c.loss}`);
    assert.ok(normErrors[k]! < 1e-5, `step ${k + 1}: grad norm ${g.gradNorm} vs ${c.gradNorm}`);
  });
  console.log(`# loss rel errors ${lossErrors.map((e) => e.toExponential(2)).join(", ")}; grad norm rel errors ${normErrors.map((e) => e.toExponential(2)).join(", ")}`);

  // After the steps: every weight, moment and EMA tensor.
  //  - m (~(1 - b1) g) and v (~(1 - b2) g^2): the gradients' float32 errors, within 1e-4 of the tensor's largest
  //    entry (measured <= 1.1e-5 for m, 2.4e-5 for v), as test/engine.test.ts bounds the U-Net gradients. A
  //    moment that is only rounding noise (attention1.key_proj.bias: softmax ignores a shift of every score,
  //    so its exact gradient is 0) is bounded by 1e-4 of a floor instead: 1e-3 of the largest m anywhere, and
  //    (1e-3)^2 of the largest v (measured: m 2.1e-11 and v 1.4e-22 at most, on both backends).
  //  - weights and EMA: compared by their change from the (identical) initial weights. Adam divides each
  //    gradient element by its own running RMS, so an element whose gradient is small next to its tensor's
  //    round-off moves by a direction that carries that round-off at full size; the error is therefore measured
  //    in units of the largest possible move, the sum of the learning rates (each update moves an element by
  //    at most ~lr here). Bound 0.05 of it (measured: 1.15e-2 for the weights (down_conv3.conv1.kernel), 1.15e-2
  //    for the EMA, and 2.2e-2 for the noise-driven attention1.key_proj.bias). The EMA is a convex combination
  //    of the weights after each update, so the same bound holds for it.
  const sumLr = cpu.reports.reduce((s, r) => s + r.lr, 0);
  const floor = { m: 1e-3 * Math.max(...[...cpu.final].filter(([n]) => n.startsWith("m.")).map(([, v]) => maxAbs(v))), v: 0 };
  floor.v = 1e-6 * Math.max(...[...cpu.final].filter(([n]) => n.startsWith("v.")).map(([, v]) => maxAbs(v)));
  const worst = new Map<string, { err: number; name: string }>();
  for (const [name, c] of cpu.final) {
    const g = onGpu.final.get(name)!;
    assert.equal(g.length, c.length, name);
    const kind = name.split(".")[0]!;
    let err: number;
    if (kind === "m" || kind === "v") {
      err = maxAbs(g.map((x, i) => x - c[i]!)) / Math.max(maxAbs(c), floor[kind]);
      assert.ok(err <= 1e-4, `${name}: error ${err} of its scale`);
    } else {
      err = maxAbs(g.map((x, i) => x - c[i]!)) / sumLr;
      assert.ok(err <= 0.05, `${name}: error ${err} of the summed learning rates ${sumLr}`);
    }
    if (err >= (worst.get(kind)?.err ?? -1)) worst.set(kind, { err, name });
  }
  console.log(`# worst after ${STEPS} steps: ${[...worst].map(([kind, w]) => `${kind} ${w.err.toExponential(2)} (${w.name})`).join("; ")}`);
});

test("10 webgpu train steps: live tensors constant, the buffer pool stops growing, nothing left pending, one read back per step", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  const read = gpu.read;
  let reads = 0;
  gpu.read = (storage) => {
    reads++;
    return read.call(gpu, storage);
  };
  try {
    const run = newRun(config);
    const tensors: number[] = [];
    const allocated: number[] = [];
    const readsPerStep: number[] = [];
    const pendingPerStep: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = reads;
      const report = await trainStep(run, data);
      assert.ok(Number.isFinite(report.loss) && Number.isFinite(report.gradNorm), `step ${i + 1}: ${JSON.stringify(report)}`);
      readsPerStep.push(reads - before);
      tensors.push(td.memory().tensors);
      allocated.push(gpu.stats().allocatedBytes);
      const { flips, upsamples, slices, producers, fusion } = gpu.stats();
      pendingPerStep.push(flips.pending + upsamples.pending + slices.pending + producers.pending + (fusion?.pending ?? 0));
    }
    console.log(`# live tensors ${tensors.join(", ")}; pool bytes ${allocated.join(", ")}`);
    assert.deepEqual(readsPerStep, readsPerStep.map(() => 1), "reads per step");
    assert.ok(tensors.every((n) => n === tensors[0]), `live tensors per step: ${tensors.join(", ")}`);
    assert.deepEqual(pendingPerStep, pendingPerStep.map(() => 0), "deferred ops, producers and expressions left pending after a step");
    // The pool reaches its size in the first steps (a step's buffers are reused by the next one).
    assert.ok(allocated.slice(2).every((b) => b === allocated[1]), `pool bytes per step: ${allocated.join(", ")}`);
    td.dispose([run.params, run.optimizer, run.ema]);
  } finally {
    gpu.read = read;
    td.setBackend(new CpuBackend());
  }
});

test("startTrainStep on webgpu (two steps in flight, as `train` runs them) equals awaited trainStep, bit for bit", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const awaited = newRun(config);
    const awaitedReports: StepReport[] = [];
    for (let i = 0; i < 4; i++) awaitedReports.push(await trainStep(awaited, data));
    const pipelined = newRun(config);
    const reports: StepReport[] = [];
    let inFlight: Promise<StepReport> | null = null;
    const live: number[] = [];
    for (let i = 0; i < 4; i++) {
      const next = startTrainStep(pipelined, data); // recorded while the previous step may still run
      if (inFlight) reports.push(await inFlight);
      inFlight = next;
      live.push(td.memory().tensors);
    }
    reports.push(await inFlight!);
    // The same kernels on the same values in the same order: equal, not just close.
    assert.deepEqual(reports, awaitedReports);
    assert.deepEqual(pipelined.lossHistory, awaited.lossHistory);
    const [a, b] = [await snapshot(awaited), await snapshot(pipelined)];
    for (const [name, values] of a) assert.deepEqual(b.get(name), values, name);
    assert.ok(live.every((n) => n === live[0]), `live tensors per step: ${live.join(", ")}`);
    td.dispose([awaited.params, awaited.optimizer, awaited.ema, pipelined.params, pipelined.optimizer, pipelined.ema]);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("with a GPU's split-K threshold (products of < 256 tiles split along K, their sums carrying epilogues), train steps match the CPU backend", async () => {
  const gpuLike = new WebGpuBackend(await kernels({ splitKMinWorkgroups: 256 }));
  const cpu = await train(new CpuBackend(), 2);
  const before = gpuLike.stats();
  const got = await train(gpuLike, 2);
  const after = gpuLike.stats();
  // As the first test: loss and gradient norm within 1e-5 relative (measured on lavapipe: <= 6.6e-7).
  cpu.reports.forEach((c, k) => {
    const g = got.reports[k]!;
    assert.ok(Math.abs(g.loss - c.loss) / Math.abs(c.loss) < 1e-5, `step ${k + 1}: loss ${g.loss} vs ${c.loss}`);
    assert.ok(Math.abs(g.gradNorm - c.gradNorm) / Math.abs(c.gradNorm) < 1e-5, `step ${k + 1}: grad norm ${g.gradNorm} vs ${c.gradNorm}`);
  });
  assert.ok(after.producers.withEpilogue - before.producers.withEpilogue > 0, "some split products carried an epilogue");
});

test("replayed train steps (the first captured, the rest replayed) equal eager steps bit for bit; a replay makes no bind groups", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const eager = newRun(config);
    const eagerReports: StepReport[] = [];
    for (let i = 0; i < 4; i++) eagerReports.push(await trainStep(eager, data, { replay: false }));
    const replayed = newRun(config);
    const reports: StepReport[] = [];
    const bindGroups: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = gpu.stats().bindGroupsCreated;
      reports.push(await trainStep(replayed, data));
      bindGroups.push(gpu.stats().bindGroupsCreated - before);
    }
    // The same body on the same values: the host values (noise, embedding, coefficients, lr, EMA weights)
    // are written into the capture's inputs, so every kernel sees what the eager step computes with.
    assert.deepEqual(reports, eagerReports);
    assert.deepEqual(replayed.lossHistory, eager.lossHistory);
    const [a, b] = [await snapshot(eager), await snapshot(replayed)];
    for (const [name, values] of a) assert.deepEqual(b.get(name), values, name);
    // Step 1 records (and makes its bind groups); steps 2-4 re-encode the recording.
    assert.ok(bindGroups[0]! > 100, `bind groups made by the captured step: ${bindGroups[0]}`);
    assert.deepEqual(bindGroups.slice(1), [0, 0, 0], `bind groups per replayed step: ${bindGroups.join(", ")}`);
    disposeRun(eager);
    disposeRun(replayed);
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("a replayed run interleaved with eager steps, resumed from its tensors, and disposed: same numbers, nothing left behind", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const liveBefore = td.memory().tensors;
    const straight = newRun(config);
    for (let i = 0; i < 5; i++) await trainStep(straight, data, { replay: false });
    // Replayed, then an eager step (the run's state is the capture's output: it is copied out and the capture
    // dropped), then replayed again (captured anew), two in flight at the end.
    const mixed = newRun(config);
    await trainStep(mixed, data);
    await trainStep(mixed, data);
    await trainStep(mixed, data, { replay: false });
    await trainStep(mixed, data);
    const last = startTrainStep(mixed, data);
    await last;
    assert.deepEqual(mixed.lossHistory, straight.lossHistory);
    const [a, b] = [await snapshot(straight), await snapshot(mixed)];
    for (const [name, values] of a) assert.deepEqual(b.get(name), values, name);
    disposeRun(straight);
    disposeRun(mixed);
    assert.equal(td.memory().tensors, liveBefore, "live tensors after disposeRun");
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("a replayed webgpu run checkpointed mid-way and resumed (captured anew) equals the uninterrupted run, bit for bit", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  const dir = mkdtempSync(join(tmpdir(), "td-webgpu-resume-"));
  try {
    const straight = newRun(config);
    for (let i = 0; i < 5; i++) await trainStep(straight, data);
    const first = newRun(config);
    for (let i = 0; i < 3; i++) await trainStep(first, data);
    // The run's tensors are the capture's outputs here: the checkpoint reads them as of step 3.
    await saveCheckpoint(dir, first.step, first.config, checkpointState(first), td.flattenTree(first.params), trainingTensors(first));
    await trainStep(first, data); // the capture moves on; the checkpoint must not
    const loaded = loadCheckpoint<TrainConfig, TrainingCheckpointState>(dir, { withTraining: true });
    const resumed = restoreRun(loaded.manifest.config, loaded.manifest.step, loaded.manifest.state, loaded.model, loaded.training);
    assert.equal(resumed.step, 3);
    for (let i = 0; i < 2; i++) await trainStep(resumed, data);
    assert.deepEqual(resumed.lossHistory, straight.lossHistory);
    const [a, b] = [await snapshot(straight), await snapshot(resumed)];
    for (const [name, values] of a) assert.deepEqual(b.get(name), values, name);
    for (const run of [straight, first, resumed]) disposeRun(run);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    td.setBackend(new CpuBackend());
  }
});
