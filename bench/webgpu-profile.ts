// Where a step's GPU time goes: every dispatch of one replayed training step (the trainer's, on the
// tutorial's setting: digit 1, batch 172, penalty on) and of replayed sampler steps (100 images), timed
// with timestamp queries (WebGpuBackend.profile), summed per kernel. Each dispatch runs in its own pass
// while profiled, so the sums are for ranking kernels; the wall time of the same step unprofiled is
// printed beside them.
//   node --import tsx bench/webgpu-profile.ts      (FEATURES=64; SAMPLER_STEPS=4; TOP=25)
import * as td from "../src/engine/index.ts";
import { WebGpuBackend } from "../src/engine/backends/webgpu/index.ts";
import type { DispatchTime } from "../src/engine/backends/webgpu/profiler.ts";
import { loadDigitsSplit } from "../src/data/digits-node.ts";
import { initUNet, unetForward, type Timesteps } from "../src/nn/unet.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../src/diffusion/schedules.ts";
import { DDPM_SAMPLER } from "../src/diffusion/samplers.ts";
import { sample } from "../src/diffusion/sample.ts";
import { TUTORIAL_PRESET } from "../src/train/config.ts";
import { disposeRun, newRun, trainStep } from "../src/train/trainer.ts";

const features = Number(process.env.FEATURES ?? 64);
const samplerSteps = Number(process.env.SAMPLER_STEPS ?? 4);
const top = Number(process.env.TOP ?? 25);
const gpu = await WebGpuBackend.create({ timestamps: true });
td.setBackend(gpu);
console.log(`adapter: ${gpu.describe()}`);

/** The kernel a pipeline label names: "matmul+fused#12@main" -> "matmul+fused". */
const kernelOf = (label: string) => label.split("@")[0]!.replace(/#\d+/g, "");

function report(title: string, times: DispatchTime[], wallMs: number, divideBy = 1): void {
  const byKernel = new Map<string, { count: number; ns: number }>();
  for (const t of times) {
    const k = byKernel.get(kernelOf(t.label)) ?? { count: 0, ns: 0 };
    k.count++;
    k.ns += t.nanoseconds;
    byKernel.set(kernelOf(t.label), k);
  }
  const total = times.reduce((s, t) => s + t.nanoseconds, 0);
  console.log(`\n${title}: ${times.length / divideBy} dispatches, ${(total / 1e6 / divideBy).toFixed(3)} ms of kernel time (each in its own pass), ${wallMs.toFixed(3)} ms wall unprofiled`);
  console.log(`${"kernel".padEnd(34)} ${"dispatches".padStart(10)} ${"ms".padStart(9)} ${"share".padStart(6)} ${"µs each".padStart(8)}`);
  for (const [name, k] of [...byKernel].sort((a, b) => b[1].ns - a[1].ns).slice(0, top)) {
    console.log(`${name.slice(0, 34).padEnd(34)} ${String(k.count / divideBy).padStart(10)} ${(k.ns / 1e6 / divideBy).toFixed(3).padStart(9)} ${((100 * k.ns) / total).toFixed(1).padStart(5)}% ${(k.ns / 1e3 / k.count).toFixed(1).padStart(8)}`);
  }
  const slowest = [...times].sort((a, b) => b.nanoseconds - a.nanoseconds).slice(0, 8);
  console.log(`slowest dispatches: ${slowest.map((t) => `${kernelOf(t.label)} [${t.grid.join("x")}] ${(t.nanoseconds / 1e3).toFixed(0)} µs`).join("; ")}`);
}

// Training: the first step captures, the second replays (warm), then one replay timed and one profiled.
const data = loadDigitsSplit(1).train;
const run = newRun({ ...TUTORIAL_PRESET, model: { ...TUTORIAL_PRESET.model, features } });
for (let i = 0; i < 3; i++) await trainStep(run, data);
let started = performance.now();
await trainStep(run, data);
const trainWall = performance.now() - started;
const trainTimes = await gpu.profile(async () => {
  await trainStep(run, data);
});
report(`training step (replayed), features ${features}, batch 172, penalty on`, trainTimes, trainWall);
disposeRun(run);

// Sampling: replayed DDPM steps on 100 images (untrained weights: the kernels' cost does not depend on them).
const params = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
// A schedule as long as the run (DDPM takes every step of it), as bench.ts does.
const schedule = makeSchedule({ ...TUTORIAL_TRAIN_SCHEDULE, numSteps: samplerSteps });
const model = (xt: td.Tensor, t: Timesteps) => unetForward(params, xt, t);
const run100 = async (steps: number) => {
  if (steps !== schedule.numSteps) throw new Error("profile: the schedule sets the number of steps");
  const x = sample({ model, replayModel: model, schedule, sampler: DDPM_SAMPLER, shape: [100, 8, 8, 1], key: td.random.key(9) });
  await x.read();
  x.dispose();
};
await run100(samplerSteps);
started = performance.now();
await run100(samplerSteps);
const sampleWall = (performance.now() - started) / samplerSteps;
const sampleTimes = await gpu.profile(() => run100(samplerSteps));
report(`sampler step (replayed), features ${features}, 100 images, per step (${samplerSteps} steps)`, sampleTimes, sampleWall, samplerSteps);
td.dispose(params);
gpu.dispose();
