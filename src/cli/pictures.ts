// The run's pictures, as the tutorial draws them: a 3x3 data grid, the loss curve (log scale),
// a grid of samples, originals vs. reconstructions, and the forward and reverse strips. The
// reverse strip shows the sampler's real intermediate states (the tutorial drew a linear blend).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import * as td from "../engine/index.ts";
import { loadDigitsSplit } from "../data/digits-node.ts";
import { addNoise } from "../diffusion/noising.ts";
import { sampleWithSnapshots } from "../diffusion/sample.ts";
import { DDPM_SAMPLER } from "../diffusion/samplers.ts";
import { writeFileAtomicSync } from "../io/atomic-file.ts";
import { imageGridPng, labeledRowsPng } from "../viz/grid.ts";
import { lineChartPng } from "../viz/plot.ts";
import { samplingParams, type TrainingRun } from "../train/trainer.ts";
import { noiseModel } from "./model-loading.ts";

const SAMPLES = 16;
const RECONSTRUCTIONS = 9;
const STRIP = 9;

function rows(x: Float32Array, from: number, count: number): Float32Array {
  return x.slice(from * 64, (from + count) * 64);
}

export async function writeRunPictures(runDir: string, run: TrainingRun, options: { log: (l: string) => void; seed?: number }): Promise<string[]> {
  mkdirSync(runDir, { recursive: true });
  const written: string[] = [];
  const write = (name: string, png: Uint8Array) => {
    const path = join(runDir, name);
    writeFileAtomicSync(path, png);
    written.push(path);
  };
  const { train, test } = loadDigitsSplit(run.config.digit);
  write("data.png", imageGridPng(train.images.subarray(0, 9 * 64), 9, 8, 8, { cols: 3 }));
  write("loss.png", lineChartPng([{ values: run.lossHistory, label: "smoothed loss" }], {
    title: "Training Loss Over Time", xLabel: "Step", yLabel: "Loss", logY: true,
  }));

  const T = run.schedule.numSteps;
  const stripT = Array.from({ length: STRIP }, (_, i) => Math.floor((i * (T - 1)) / (STRIP - 1)));
  const key = td.random.key(options.seed ?? 0);
  const [kNoise, kForward, kSample] = td.random.split(key, 3) as [td.random.RandomKey, td.random.RandomKey, td.random.RandomKey];
  const started = performance.now();
  // Everything is recorded on the active backend inside one tidy; the four results come back with one read
  // each at the end (on a device backend that is where we wait for the GPU).
  const tensors = td.tidy(() => {
    const originals = td.tensor(test.images.subarray(0, RECONSTRUCTIONS * 64), [Math.min(RECONSTRUCTIONS, test.count), 8, 8, 1]);
    const reconCount = originals.shape[0]!;
    // Forward process of one test image at the strip's timesteps, all from one noise draw.
    const first = td.slice(originals, [0, 0, 0, 0], [1, 8, 8, 1]);
    const forward = addNoise(first, td.random.normal(kForward, [STRIP, 8, 8, 1]), stripT, run.schedule);
    // One sampler run for everything: pure noise for samples, noised test images for reconstructions,
    // and the forward strip's last state for the reverse strip.
    const noisyTests = addNoise(originals, td.random.normal(kNoise, originals.shape), T - 1, run.schedule);
    const start = td.concat([td.random.normal(kSample, [SAMPLES, 8, 8, 1]), noisyTests, td.slice(forward, [STRIP - 1, 0, 0, 0], [1, 8, 8, 1])], 0);
    const model = noiseModel(samplingParams(run));
    const { sample, snapshots } = sampleWithSnapshots({
      model, replayModel: model, schedule: run.schedule, sampler: DDPM_SAMPLER, key: kSample, x: start,
      // x0 clipped to the data range at each step: at the cosine schedule's noisiest steps
      // 1/sqrt(alpha_t) reaches ~30 and would amplify any error in the predicted noise.
      clipDenoised: true,
    }, [...stripT].reverse().map((t) => (t === 0 ? -1 : t)));
    const last = SAMPLES + reconCount;
    const reverse = snapshots.map((s) => td.slice(s.x, [last, 0, 0, 0], [1, 8, 8, 1]));
    return {
      samples: sample,
      originals,
      forward,
      reverse: td.concat(reverse, 0),
      reverseT: snapshots.map((s) => s.requested),
      reconCount,
    };
  });
  const read = async (t: td.Tensor): Promise<Float32Array> => Float32Array.from(await t.read());
  let result: { samples: Float32Array; originals: Float32Array; forward: Float32Array; reverse: Float32Array; reverseT: number[]; reconCount: number };
  try {
    const [samples, originals, forward, reverse] = await Promise.all([tensors.samples, tensors.originals, tensors.forward, tensors.reverse].map(read));
    result = { samples: samples!, originals: originals!, forward: forward!, reverse: reverse!, reverseT: tensors.reverseT, reconCount: tensors.reconCount };
  } finally {
    td.dispose([tensors.samples, tensors.originals, tensors.forward, tensors.reverse]);
  }
  options.log(`sampled ${SAMPLES + result.reconCount + 1} images with ${T} DDPM steps in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  write("samples.png", imageGridPng(rows(result.samples, 0, SAMPLES), SAMPLES, 8, 8, { cols: 4 }));
  write("reconstructions.png", labeledRowsPng([
    { label: "Original", images: result.originals },
    { label: "Reconstructed", images: rows(result.samples, SAMPLES, result.reconCount) },
  ], 8, 8, { scale: 6 }));
  write("forward_reverse.png", labeledRowsPng([
    { label: "Forward", images: result.forward, tileLabels: stripT.map((t) => `t=${t}`) },
    { label: "Reverse", images: result.reverse, tileLabels: result.reverseT.map((t) => (t < 0 ? "final" : `t=${t}`)) },
  ], 8, 8, { scale: 6, invert: true, title: "Forward and Reverse Diffusion Process (real sampler states)" }));
  return written;
}
