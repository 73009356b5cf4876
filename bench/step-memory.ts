// Peak memory and time of one U-Net training step (tutorial loss with the gradient penalty, AdamW, batch 172).
// Usage: node --import tsx bench/step-memory.ts [cpu|wasm] [features,...] [steps] [penalty]
// Prints, per size: the parameters (+ Adam moments) in MB, the step's peak tensor bytes (td.memory().peakBytes,
// total and above the kept state), the Wasm heap's high-water mark (bytes ever carved from the shared memory,
// which must stay under 4 GiB) and the seconds per step (median of the timed steps after one warm-up).
import * as td from "../src/engine/index.ts";
import { initUNet, unetForward, type UNetParams } from "../src/nn/unet.ts";
import { makeSchedule, TUTORIAL_TRAIN_SCHEDULE } from "../src/diffusion/schedules.ts";
import { diffusionLoss } from "../src/train/loss.ts";
import { initOptimizerState, optimizerStep, TUTORIAL_OPTIMIZER, type OptimizerState } from "../src/train/optimizer.ts";

const which = process.argv[2] ?? "wasm";
const featureList = (process.argv[3] ?? "16").split(",").map(Number);
const steps = Number(process.argv[4] ?? 2);
const penalty = Number(process.argv[5] ?? 0.02);
const BATCH = Number(process.env.BATCH ?? 172);

let heap: { usedBytes: number; peakUsedBytes?: number } | null = null;
if (which === "wasm") {
  const { WasmBackend } = await import("../src/engine/backends/wasm/index.ts");
  const backend = await WasmBackend.create();
  heap = backend.heap;
  td.setBackend(backend);
}
const mb = (b: number): string => (b / 1e6).toFixed(0);

for (const features of featureList) {
  const schedule = makeSchedule(TUTORIAL_TRAIN_SCHEDULE);
  let params: UNetParams = td.keep(initUNet({ inChannels: 1, outChannels: 1, features, timeEmbDim: 128 }, td.random.key(1)));
  let state: OptimizerState = td.keep(initOptimizerState(params));
  const images = td.keep(td.random.uniform(td.random.key(2), [BATCH, 8, 8, 1]));
  const model = (p: UNetParams, x: td.Tensor, t: Int32Array) => unetForward(p, x, t);
  const kept = td.memory().bytes;
  const times: number[] = [];
  let peak = 0;
  for (let i = 0; i < steps + 1; i++) {
    td.resetPeakMemory();
    const started = performance.now();
    const next = td.tidy(() => {
      const noise = td.random.normal(td.random.key(10 + i), [BATCH, 8, 8, 1]);
      const t = td.random.choice(td.random.key(100 + i), 1000, BATCH);
      const { grads } = td.valueAndGrad((p: UNetParams) => diffusionLoss(model, p, {
        images, t, noise, sqrtAlphaCumulative: schedule.sqrtAlphaCumulative, sqrtOneMinusAlphaCumulative: schedule.sqrtOneMinusAlphaCumulative,
      }, { penaltyWeight: penalty }).total)(params);
      const update = optimizerStep(params, grads, state, TUTORIAL_OPTIMIZER);
      return { params: update.params, state: update.state };
    });
    td.dispose([params, state]);
    params = td.keep(next.params);
    state = td.keep(next.state);
    peak = Math.max(peak, td.memory().peakBytes);
    const s = (performance.now() - started) / 1000;
    if (i > 0 || steps === 0) times.push(s);
    console.log(`  F${features} step ${i}: ${s.toFixed(3)} s`);
  }
  td.dispose([params, state, images]);
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    `F${features} B${BATCH} penalty ${penalty} ${which}: state ${mb(kept)} MB, peak ${mb(peak)} MB (+${mb(peak - kept)} MB)` +
      (heap ? `, wasm heap ${mb(heap.peakUsedBytes ?? heap.usedBytes)} MB` : "") +
      `, step ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} s (best ${sorted[0]!.toFixed(3)})`,
  );
}
process.exit(0);
