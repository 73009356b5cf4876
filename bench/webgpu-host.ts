// The host side of the WebGPU backend: GPU dispatches per training step and per sampler step, bind groups
// created (the rest come from the cache), and the host time spent recording them. On a real GPU the step
// time cannot drop below the recording time, so this is the figure to watch on any adapter (a software
// adapter included: recording does not depend on it).
//   TINY_DIFFUSION_WEBGPU=vulkan node --import tsx bench/webgpu-host.ts   (FEATURES=16|64, default 64; STEPS=8;
//   SAMPLER_STEPS=12; ENCODES=50; FUSE=0 records one dispatch per elementwise op, as before fusion; SPLITK=256 splits
//   products as on a GPU). Last, the host time to encode a replayed forward pass alone.
import * as td from "../src/engine/index.ts";
import { WebGpuBackend } from "../src/engine/backends/webgpu/index.ts";
import { initUNet, unetForward, type Timesteps, type UNetParams } from "../src/nn/unet.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../src/diffusion/schedules.ts";
import { DDPM_SAMPLER } from "../src/diffusion/samplers.ts";
import { sample } from "../src/diffusion/sample.ts";
import { diffusionLoss } from "../src/train/loss.ts";
import { initOptimizerState, optimizerStep, TUTORIAL_OPTIMIZER } from "../src/train/optimizer.ts";

// SPLITK=256: a GPU's split-K threshold on a software adapter (whose default, 4, splits few products).
const gpu = await WebGpuBackend.create({ fuseElementwise: process.env.FUSE !== "0", ...(process.env.SPLITK ? { splitKMinWorkgroups: Number(process.env.SPLITK) } : {}) });
td.setBackend(gpu);
console.log(`adapter: ${gpu.describe()}; elementwise fusion ${process.env.FUSE !== "0" ? "on" : "off"}`);
const features = Number(process.env.FEATURES ?? 64);
const BATCH = 172;
const STEPS = Number(process.env.STEPS ?? 8);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Training: record a step (nothing runs until the flush), then wait for it, so recording is timed alone.
const schedule = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
let params: UNetParams = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
let state = td.keep(initOptimizerState(params));
const images = td.keep(td.random.uniform(td.random.key(2), [BATCH, 8, 8, 1]));
const record: number[] = [];
let dispatches = 0, created = 0, passes = 0;
for (let i = 0; i < STEPS; i++) {
  const before = gpu.stats();
  const started = performance.now();
  const next = td.tidy(() => {
    const noise = td.random.normal(td.random.key(10 + i), [BATCH, 8, 8, 1]);
    const t = td.random.choice(td.random.key(100 + i), 1000, BATCH);
    const { value, grads } = td.tidy(() => td.valueAndGrad((p: UNetParams) => diffusionLoss((q, x, tt) => unetForward(q, x, tt), p, {
      images, t, noise, sqrtAlphaCumulative: schedule.sqrtAlphaCumulative, sqrtOneMinusAlphaCumulative: schedule.sqrtOneMinusAlphaCumulative,
    }, { penaltyWeight: 0.02 }).total)(params));
    const update = optimizerStep(params, grads, state, TUTORIAL_OPTIMIZER);
    return { params: update.params, state: update.state, loss: value };
  });
  const recorded = performance.now();
  td.dispose([params, state]);
  params = td.keep(next.params);
  state = td.keep(next.state);
  gpu.flush();
  await next.loss.read();
  next.loss.dispose();
  const after = gpu.stats();
  // The second half: the first ~20 steps still create GPU bind groups (~18 µs each), later ones find them cached.
  if (i >= Math.min(STEPS - 1, STEPS / 2)) record.push(recorded - started);
  dispatches = after.dispatches - before.dispatches;
  passes = after.passes - before.passes;
  created = after.bindGroupsCreated - before.bindGroupsCreated;
}
console.log(`training step, features ${features}, batch ${BATCH}, penalty on: ${dispatches} dispatches in ${passes} compute pass(es), ${created} bind groups created, recorded in ${median(record).toFixed(1)} ms (median of the last ${record.length} of ${STEPS}); ${gpu.stats().pipelines} pipelines`);
td.dispose([params, state, images]);

// Sampling: the host time per sampler step between onStep calls (the GPU runs the previous step meanwhile),
// every step through the frontend, then with one captured step replayed (sample()'s replayModel).
const model = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
const network = (xt: td.Tensor, t: Timesteps) => unetForward(model, xt, t);
const SAMPLER_STEPS = Number(process.env.SAMPLER_STEPS ?? 12);
for (const replay of [false, true]) {
  const perStep: number[] = [];
  let last = performance.now(), lastStats = gpu.stats(), stepDispatches = 0, stepPasses = 0, stepCreated = 0;
  const x = sample({
    model: network, replayModel: replay ? network : undefined, schedule: makeSchedule({ ...TUTORIAL_TRAIN_SCHEDULE, numSteps: SAMPLER_STEPS }),
    sampler: DDPM_SAMPLER, shape: [100, 8, 8, 1], key: td.random.key(9),
    onStep: () => {
      const now = performance.now(), s = gpu.stats();
      perStep.push(now - last);
      stepDispatches = s.dispatches - lastStats.dispatches;
      stepPasses = s.passes - lastStats.passes;
      stepCreated = s.bindGroupsCreated - lastStats.bindGroupsCreated;
      last = now;
      lastStats = s;
    },
  });
  await x.read();
  x.dispose();
  const timed = perStep.length > 4 ? perStep.slice(4) : perStep; // the first steps build pipelines and bind groups
  console.log(`sampler step${replay ? " (replayed)" : ""}, features ${features}, 100 images: ${stepDispatches} dispatches in ${stepPasses} compute pass(es), ${stepCreated} bind groups created, ` +
    `${median(timed).toFixed(2)} ms host per step (median of the last ${timed.length} of ${SAMPLER_STEPS})`);
}

// Encoding alone: a captured U-Net forward (100 images) replayed without submitting, so neither the GPU's
// work nor a submit is in the time (on a software adapter both compete with the host for the cores).
const forward = td.captureStep((inputs) => [unetForward(model, inputs[0]!, inputs[1]!)],
  [td.random.normal(td.random.key(2), [100, 8, 8, 1]), td.tensor(new Int32Array(100).fill(500), [100], "int32")]);
await forward.outputs[0]!.read();
const ENCODES = Number(process.env.ENCODES ?? 50);
const encodeMs: number[] = [];
for (let rep = 0; rep < 4; rep++) {
  const started = performance.now();
  for (let i = 0; i < ENCODES; i++) forward.replay([null, null], { submit: false });
  if (rep > 0) encodeMs.push((performance.now() - started) / ENCODES); // the first warms up
}
await forward.outputs[0]!.read(); // submits them all (the GPU runs them; not timed)
console.log(`replayed U-Net forward, features ${features}, 100 images, encoded without submitting: ${forward.dispatches} dispatches, ` +
  `${(median(encodeMs) * 1000).toFixed(0)} µs (${(median(encodeMs) * 1000 / forward.dispatches).toFixed(1)} µs per dispatch; median of 3 x ${ENCODES})`);
forward.dispose();
gpu.dispose();
