// `npm run bench`: seconds per full training step of the trainer (tutorial loss with the gradient penalty,
// AdamW, batch 172; on webgpu replayed and through the frontend) at features 16/32/64, U-Net forward at batch 9 and 1000, GEMM GFLOP/s at 1024^3, and
// (by default on webgpu only) DDPM sampling of B images x K steps.
// Flags: --backend auto|cpu|wasm|webgpu  --features 16[,32,...]  --steps N (timed steps per size, default 3)
//        --warmup N (untimed steps first; default 1, on webgpu 20: until then a step still creates ~1,100 GPU
//        bind groups at ~18 µs each, which later steps find cached)
//        --sampling BxK (e.g. 100x1000; 0 = skip; default 100x1000 on webgpu, else 0)
//        --skip-forward  --skip-gemm  --json (ends with one line of JSON)
//        --no-fuse (webgpu: one dispatch per elementwise op, for comparing against fusion)
//        --gemm-rows 4|8 (webgpu: rows of a product per invocation, i.e. 64x64 or 128x64 tiles; default 4)
//        --split-k-min N (webgpu: products with fewer output tiles than N split their K; default 256 on a GPU)
//        --small-tiles (webgpu: such products take 32x32 tiles first, splitting K only if still too few)
//        --features none: no training steps (forward and sampling then at features 64)
//        --skip-eager (webgpu: no runs through the frontend beside the replayed ones)
// Every timing ends with a read back to the host (the step's loss, the sample, the product), so a device
// backend is timed to completion, as a training loop that logs its loss sees it.
import { availableParallelism, cpus } from "node:os";
import * as td from "../src/engine/index.ts";
import { useBackend, type BackendChoice } from "../src/cli/backend.ts";
import { initUNet, unetForward, type Timesteps } from "../src/nn/unet.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../src/diffusion/schedules.ts";
import { DDPM_SAMPLER } from "../src/diffusion/samplers.ts";
import { sample } from "../src/diffusion/sample.ts";
import { loadDigitsSplit } from "../src/data/digits-node.ts";
import { TUTORIAL_PRESET } from "../src/train/config.ts";
import { disposeRun, newRun, startTrainStep, type StepReport } from "../src/train/trainer.ts";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const has = (name: string) => process.argv.includes(`--${name}`);

const backendChoice = (flag("backend") ?? "auto") as BackendChoice;
const featureFlag = flag("features") ?? "16,32,64";
const featureList = featureFlag === "none" ? [] : featureFlag.split(",").map(Number);
if (featureList.some((f) => !(Number.isInteger(f) && f > 0))) throw new Error(`--features must be a list like 16,64 or none, got ${featureFlag}`);
/** The model size of the forward and sampling figures: 64 when measured (the targets' size), else the first. */
const modelFeatures = featureList.includes(64) ? 64 : (featureList[0] ?? 64);
const timedSteps = Number(flag("steps") ?? 3);
const BATCH = 172;
const digitOne = loadDigitsSplit(1).train;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** GPU dispatches and submits so far, when the backend counts them (webgpu). */
function kernelCounts(): { dispatches: number; submits: number } | null {
  const b = td.getBackend() as td.Backend & { stats?: () => { dispatches: number; submits: number } };
  return b.stats ? b.stats() : null;
}
let dispatchesPerStep: number | null = null;
/** Host time to record one step (before its submit): on a device backend, the floor of the step time. */
let recordSecondsPerStep: number[] = [];

/**
 * Seconds per training step of the trainer (src/train/trainer.ts) on the tutorial's setting (digit 1: 172
 * images, full batch, penalty on, progressive timesteps), two ways: awaited (record, run, read the loss, then
 * the next step) and pipelined (two steps in flight, as `train` runs: a device computes step k while the host
 * records k + 1; the same on host backends). `replay`: on a recording backend, steps after the first replay
 * a captured one (the trainer's default); false sends every step through the frontend.
 */
async function trainStepSeconds(features: number, replay: boolean): Promise<{ awaited: number; pipelined: number }> {
  const run = newRun({ ...TUTORIAL_PRESET, model: { ...TUTORIAL_PRESET.model, features } });
  if (digitOne.count !== BATCH) throw new Error(`bench: digit 1 has ${digitOne.count} training images, expected ${BATCH}`);
  const checked = (report: StepReport): StepReport => {
    if (!Number.isFinite(report.loss)) throw new Error(`bench: the loss is ${report.loss}`);
    return report;
  };
  const times: number[] = [];
  const warmup = Number(flag("warmup") ?? (td.getBackend().name === "webgpu" ? 20 : 1));
  for (let i = 0; i < warmup + timedSteps; i++) {
    const started = performance.now();
    const before = kernelCounts();
    const report = startTrainStep(run, digitOne, { replay });
    const recorded = performance.now();
    checked(await report);
    const after = kernelCounts();
    if (before && after) dispatchesPerStep = after.dispatches - before.dispatches;
    if (i < warmup) continue;
    times.push((performance.now() - started) / 1000);
    recordSecondsPerStep.push((recorded - started) / 1000);
  }
  // Pipelined: at most two steps in flight; timed from the first submit to the last loss.
  const started = performance.now();
  let inFlight: Promise<StepReport> | null = null;
  const pipelinedSteps = Math.max(2, timedSteps);
  for (let i = 0; i < pipelinedSteps; i++) {
    const next = startTrainStep(run, digitOne, { replay });
    if (inFlight) checked(await inFlight);
    inFlight = next;
  }
  checked(await inFlight!);
  const pipelined = (performance.now() - started) / 1000 / pipelinedSteps;
  disposeRun(run);
  return { awaited: median(times), pipelined };
}

async function forwardSeconds(features: number, batch: number): Promise<number> {
  const params = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
  const x = td.keep(td.random.normal(td.random.key(3), [batch, 8, 8, 1]));
  const t = new Int32Array(batch).fill(500);
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const started = performance.now();
    const out = td.tidy(() => td.noGrad(() => unetForward(params, x, t)));
    await out.read();
    out.dispose();
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  td.dispose([params, x]);
  return median(times);
}

async function gemmGflops(n: number): Promise<number> {
  const a = td.keep(td.random.normal(td.random.key(4), [n, n]));
  const b = td.keep(td.random.normal(td.random.key(5), [n, n]));
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const c = td.tidy(() => td.sum(td.matmul(a, b)));
    await c.read();
    c.dispose();
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  td.dispose([a, b]);
  return (2 * n * n * n) / median(times) / 1e9;
}

/**
 * Seconds for DDPM sampling of `batch` images over `steps` timesteps (the U-Net at `features`, untrained
 * weights). `replay`: give sample() the tensor-timestep model, so a recording backend replays one captured step.
 */
async function samplingSeconds(features: number, batch: number, steps: number, replay: boolean): Promise<number> {
  const params = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
  const schedule = makeSchedule({ ...TUTORIAL_TRAIN_SCHEDULE, numSteps: steps });
  const run = async (): Promise<number> => {
    const started = performance.now();
    const model = (xt: td.Tensor, t: Timesteps) => unetForward(params, xt, t);
    const x = sample({ model, replayModel: replay ? model : undefined, schedule, sampler: DDPM_SAMPLER, shape: [batch, 8, 8, 1], key: td.random.key(9) });
    await x.read();
    x.dispose();
    return (performance.now() - started) / 1000;
  };
  await run(); // compiles and warms up
  const seconds = await run();
  td.dispose(params);
  return seconds;
}

const gemmRows = flag("gemm-rows");
if (gemmRows !== undefined && gemmRows !== "4" && gemmRows !== "8") throw new Error(`--gemm-rows must be 4 or 8, got ${gemmRows}`);
const splitKMin = flag("split-k-min");
if (splitKMin !== undefined && !(Number.isInteger(Number(splitKMin)) && Number(splitKMin) >= 1)) throw new Error(`--split-k-min must be a positive integer, got ${splitKMin}`);
if ((gemmRows !== undefined || splitKMin !== undefined || has("small-tiles") || has("no-fuse")) && backendChoice !== "webgpu") {
  throw new Error("--gemm-rows, --split-k-min, --small-tiles and --no-fuse apply to --backend webgpu");
}
const active = await useBackend(backendChoice, {
  fuseElementwise: !has("no-fuse"),
  ...(gemmRows ? { gemmRows: Number(gemmRows) as 4 | 8 } : {}),
  ...(splitKMin ? { splitKMinWorkgroups: Number(splitKMin) } : {}),
  ...(has("small-tiles") ? { smallTiles: true } : {}),
});
const threads = active.name === "cpu" ? 1 : availableParallelism();
const result: Record<string, unknown> = { backend: active.name, threads, cpu: cpus()[0]?.model ?? "unknown", date: new Date().toISOString().slice(0, 10) };
// Each figure is printed as soon as it is measured (a run cut short by a time limit keeps what it measured).
const settings = `${has("no-fuse") ? " (elementwise fusion off)" : ""}${gemmRows ? ` (gemmRows ${gemmRows})` : ""}${splitKMin ? ` (splitKMinWorkgroups ${splitKMin})` : ""}${has("small-tiles") ? " (small tiles)" : ""}`;
console.log(`backend ${active.description}${settings}, ${threads} thread(s), ${result.cpu}`);
if (gemmRows) result.gemm_rows = Number(gemmRows);
if (splitKMin) result.split_k_min_workgroups = Number(splitKMin);
if (has("small-tiles")) result.small_tiles = true;
const rows = { push([what, value]: [string, string]): void { console.log(`${what.padEnd(82)}  ${value}`); } };
const trainSteps: Record<string, number> = {};
const pipelinedSteps: Record<string, number> = {};
const eagerSteps: Record<string, number> = {};
for (const f of featureList) {
  const seconds = await trainStepSeconds(f, true);
  trainSteps[String(f)] = Number(seconds.awaited.toFixed(4));
  pipelinedSteps[String(f)] = Number(seconds.pipelined.toFixed(4));
  rows.push([`train step, features ${f}, batch ${BATCH}, penalty on (s)`, trainSteps[String(f)]!.toFixed(3)]);
  rows.push([`  the same, two steps in flight as \`train\` runs (s per step)`, pipelinedSteps[String(f)]!.toFixed(3)]);
  if (dispatchesPerStep !== null) {
    rows.push([`  GPU dispatches per step, features ${f}`, String(dispatchesPerStep)]);
    rows.push([`  host time recording${td.canCapture() ? " (replaying)" : ""} the step, features ${f} (s)`, median(recordSecondsPerStep).toFixed(4)]);
    result[`record_s_f${f}`] = Number(median(recordSecondsPerStep).toFixed(4));
  }
  recordSecondsPerStep = [];
  if (td.canCapture() && !has("skip-eager")) {
    // The same with every step through the frontend (what replay saves).
    const eager = await trainStepSeconds(f, false);
    eagerSteps[String(f)] = Number(eager.awaited.toFixed(4));
    rows.push([`  the same, every step through the frontend (no replay), awaited / in flight (s)`, `${eager.awaited.toFixed(3)} / ${eager.pipelined.toFixed(3)}`]);
    rows.push([`  host time recording the step without replay (s)`, median(recordSecondsPerStep).toFixed(4)]);
    result[`record_eager_s_f${f}`] = Number(median(recordSecondsPerStep).toFixed(4));
    recordSecondsPerStep = [];
  }
}
if (Object.keys(eagerSteps).length) result.train_step_eager_s = eagerSteps;
result.train_step_s = trainSteps;
result.train_step_pipelined_s = pipelinedSteps;
if (dispatchesPerStep !== null) result.dispatches_per_step = dispatchesPerStep;
if (!has("skip-forward")) {
  const f = modelFeatures;
  const fwd: Record<string, number> = {};
  for (const batch of [9, 1000]) {
    fwd[String(batch)] = Number((await forwardSeconds(f, batch)).toFixed(4));
    rows.push([`U-Net forward, features ${f}, batch ${batch} (s)`, fwd[String(batch)]!.toFixed(4)]);
  }
  result.forward_s = { features: f, ...fwd };
}
if (!has("skip-gemm")) {
  result.gemm_gflops_1024 = Number((await gemmGflops(1024)).toFixed(2));
  rows.push(["GEMM 1024^3 (GFLOP/s)", String(result.gemm_gflops_1024)]);
}
const sampling = flag("sampling") ?? (active.name === "webgpu" ? "100x1000" : "0");
if (sampling !== "0") {
  const [batch, steps] = sampling.split("x").map(Number) as [number, number];
  if (!(batch > 0 && steps > 0)) throw new Error(`--sampling must look like 100x1000, got ${sampling}`);
  const f = modelFeatures;
  const seconds = Number((await samplingSeconds(f, batch, steps, true)).toFixed(3));
  result.sampling_s = { features: f, batch, steps, seconds };
  rows.push([`DDPM sampling, features ${f}, ${batch} images x ${steps} steps (s)`, seconds.toFixed(3)]);
  if (td.canCapture() && !has("skip-eager")) {
    // The same without replay: every step through the frontend (what replay saves).
    const eager = Number((await samplingSeconds(f, batch, steps, false)).toFixed(3));
    result.sampling_eager_s = eager;
    rows.push([`  the same, every step through the frontend (no replay) (s)`, eager.toFixed(3)]);
  }
}
result.device = active.description;
if (has("json")) console.log(JSON.stringify(result));
active.dispose?.();
