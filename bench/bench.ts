// `npm run bench`: seconds per full training step (tutorial loss with the gradient penalty, AdamW,
// batch 172) at features 16/32/64, U-Net forward at batch 9 and 1000, and GEMM GFLOP/s at 1024^3.
// Flags: --backend auto|cpu|wasm  --features 16[,32,...]  --steps N (timed steps per size, default 3)
//        --skip-forward  --skip-gemm  --json (ends with one line of JSON)
import { availableParallelism, cpus } from "node:os";
import * as td from "../src/engine/index.ts";
import { useBackend, type BackendChoice } from "../src/cli/backend.ts";
import { initUNet, unetForward, type UNetParams } from "../src/nn/unet.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../src/diffusion/schedules.ts";
import { diffusionLoss } from "../src/train/loss.ts";
import { initOptimizerState, optimizerStep, TUTORIAL_OPTIMIZER, type OptimizerState } from "../src/train/optimizer.ts";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const has = (name: string) => process.argv.includes(`--${name}`);

const backendChoice = (flag("backend") ?? "auto") as BackendChoice;
const featureList = (flag("features") ?? "16,32,64").split(",").map(Number);
const timedSteps = Number(flag("steps") ?? 3);
const BATCH = 172;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function trainStepSeconds(features: number): number {
  const schedule = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  let params: UNetParams = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
  let state: OptimizerState = td.keep(initOptimizerState(params));
  const images = td.keep(td.random.uniform(td.random.key(2), [BATCH, 8, 8, 1]));
  const model = (p: UNetParams, x: td.Tensor, t: Int32Array) => unetForward(p, x, t);
  const times: number[] = [];
  for (let i = 0; i < timedSteps + 1; i++) {
    const started = performance.now();
    const next = td.tidy(() => {
      const noise = td.random.normal(td.random.key(10 + i), [BATCH, 8, 8, 1]);
      const t = td.random.choice(td.random.key(100 + i), 1000, BATCH);
      // As the trainer: an inner scope frees the activations before the optimizer runs.
      const { grads } = td.tidy(() => td.valueAndGrad((p: UNetParams) => diffusionLoss(model, p, {
        images, t, noise, sqrtAlphaCumulative: schedule.sqrtAlphaCumulative, sqrtOneMinusAlphaCumulative: schedule.sqrtOneMinusAlphaCumulative,
      }, { penaltyWeight: 0.02 }).total)(params));
      const update = optimizerStep(params, grads, state, TUTORIAL_OPTIMIZER);
      return { params: update.params, state: update.state };
    });
    td.dispose([params, state]);
    params = td.keep(next.params);
    state = td.keep(next.state);
    if (i > 0) times.push((performance.now() - started) / 1000); // the first step warms up
  }
  td.dispose([params, state, images]);
  return median(times);
}

function forwardSeconds(features: number, batch: number): number {
  const params = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
  const x = td.keep(td.random.normal(td.random.key(3), [batch, 8, 8, 1]));
  const t = new Int32Array(batch).fill(500);
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const started = performance.now();
    td.tidy(() => td.noGrad(() => unetForward(params, x, t)));
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  td.dispose([params, x]);
  return median(times);
}

function gemmGflops(n: number): number {
  const a = td.keep(td.random.normal(td.random.key(4), [n, n]));
  const b = td.keep(td.random.normal(td.random.key(5), [n, n]));
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    td.tidy(() => td.matmul(a, b));
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  td.dispose([a, b]);
  return (2 * n * n * n) / median(times) / 1e9;
}

const active = await useBackend(backendChoice);
const threads = active.name === "cpu" ? 1 : availableParallelism();
const result: Record<string, unknown> = { backend: active.name, threads, cpu: cpus()[0]?.model ?? "unknown", date: new Date().toISOString().slice(0, 10) };
const rows: [string, string][] = [];
const trainSteps: Record<string, number> = {};
for (const f of featureList) {
  trainSteps[String(f)] = Number(trainStepSeconds(f).toFixed(4));
  rows.push([`train step, features ${f}, batch ${BATCH}, penalty on (s)`, trainSteps[String(f)]!.toFixed(3)]);
}
result.train_step_s = trainSteps;
if (!has("skip-forward")) {
  const f = featureList.includes(64) ? 64 : featureList[0]!;
  const fwd: Record<string, number> = {};
  for (const batch of [9, 1000]) {
    fwd[String(batch)] = Number(forwardSeconds(f, batch).toFixed(4));
    rows.push([`U-Net forward, features ${f}, batch ${batch} (s)`, fwd[String(batch)]!.toFixed(4)]);
  }
  result.forward_s = { features: f, ...fwd };
}
if (!has("skip-gemm")) {
  result.gemm_gflops_1024 = Number(gemmGflops(1024).toFixed(2));
  rows.push(["GEMM 1024^3 (GFLOP/s)", String(result.gemm_gflops_1024)]);
}
console.log(`backend ${active.name}, ${threads} thread(s), ${result.cpu}`);
const width = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
if (has("json")) console.log(JSON.stringify(result));
active.dispose?.();
