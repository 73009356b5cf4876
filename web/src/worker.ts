// The engine's thread. The page starts two of these: one samples (Generate), one trains (Train), so
// each has its own engine state and the page itself never blocks on a kernel.
import * as td from "../../src/engine/index.ts";
import { parseDigitsCsv, parseTutorialSplit, splitDigits, type DigitsDataset, type TutorialSplit } from "../../src/data/digits.ts";
import {
  checkpointState, newRun, samplingParams, trainingTensors, trainStep, type TrainingRun,
} from "../../src/train/trainer.ts";
import { selectBackend } from "./backends.ts";
import { gunzip, zipStore, type NamedFile } from "./bytes.ts";
import { checkpointFiles, loadModelFromFiles, type LoadedModel } from "./checkpoint.ts";
import { generateImages } from "./generate.ts";
import type { FromWorker, ToWorker, TrainReport } from "./protocol.ts";
import { buildTrainConfig, type TrainOptions } from "./train-config.ts";

/** Samples drawn during training: fixed noise, so the grid shows one set of samples improving. */
export const TRAIN_PREVIEW = { n: 16, seed: 1234, sampler: { kind: "ddpm", steps: 20, clip: true } } as const;

const scope = self as unknown as {
  postMessage(message: FromWorker, options?: { transfer?: Transferable[] }): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
};

function post(message: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(message, { transfer });
}

function fail(context: string, e: unknown): void {
  post({ type: "error", context, message: e instanceof Error ? e.message : String(e) });
}

// ---- generation -------------------------------------------------------------------------------------

let model: LoadedModel | null = null;

function loadModel(files: NamedFile[], source: string): void {
  const loaded = loadModelFromFiles(new Map(files.map((f) => [f.name, f.bytes])));
  if (model) td.dispose(model.params);
  model = loaded;
  const { config } = loaded;
  post({
    type: "modelLoaded",
    info: {
      source, step: loaded.step, usedEma: loaded.usedEma, features: config.model.features, digit: config.digit,
      conditional: (config.model.numClasses ?? 0) > 0 || config.conditional, weights: loaded.weights,
      schedule: loaded.schedule.name, diffusionSteps: loaded.schedule.numSteps,
    },
  });
}

function generate(message: Extract<ToWorker, { type: "generate" }>): void {
  if (!model) throw new Error("no model is loaded");
  const started = performance.now();
  const images = generateImages(model.params, model.schedule, model.config, message.sampler, message.n, message.seed, (frame) => {
    post({ type: "frame", id: message.id, index: frame.index, steps: frame.steps, t: frame.t, images: frame.images }, [frame.images.buffer]);
  });
  post({ type: "generated", id: message.id, images, n: message.n, ms: performance.now() - started }, [images.buffer]);
}

// ---- training ---------------------------------------------------------------------------------------

let digits: { all: DigitsDataset; split: TutorialSplit } | null = null;
let training: { run: TrainingRun; data: DigitsDataset; options: TrainOptions; running: boolean; loop: Promise<void> | null } | null = null;

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function setData(digitsGz: Uint8Array, split: unknown): Promise<void> {
  const text = new TextDecoder().decode(await gunzip(digitsGz));
  digits = { all: parseDigitsCsv(text), split: parseTutorialSplit(split) };
}

function trainPreview(run: TrainingRun): void {
  const images = generateImages(samplingParams(run), run.schedule, run.config, TRAIN_PREVIEW.sampler, TRAIN_PREVIEW.n, TRAIN_PREVIEW.seed);
  post({ type: "trainSamples", step: run.step, images, n: TRAIN_PREVIEW.n }, [images.buffer]);
}

function startTraining(options: TrainOptions): void {
  if (!digits) throw new Error("the digits data is not loaded yet");
  if (training?.running) throw new Error("training is already running");
  if (training) disposeRun(training.run);
  const config = buildTrainConfig(options);
  const split = splitDigits(digits.all, config.digit, { tutorialSplit: digits.split });
  const run = newRun(config);
  training = { run, data: split.train, options, running: false, loop: null };
  post({
    type: "trainStarted",
    config: { steps: config.steps, batch: config.batchSize, features: config.model.features, digit: config.digit, images: split.train.count, weights: td.treeSize(run.params) },
  });
  resume();
}

function disposeRun(run: TrainingRun): void {
  td.dispose([run.params, run.optimizer.m, run.optimizer.v, run.ema]);
}

function resume(): void {
  const t = training;
  if (!t || t.running) return;
  if (t.run.step >= t.run.config.steps) return;
  t.running = true;
  post({ type: "trainState", state: "running" });
  t.loop = (async () => {
    try {
      const { run, data, options } = t;
      let windowStart = performance.now();
      let windowSteps = 0;
      let stepsPerSecond = 0;
      while (t.running && run.step < run.config.steps) {
        // Train for ~120 ms, then report and let messages (pause, download) in.
        const reports: TrainReport[] = [];
        const sliceStart = performance.now();
        let previewDue = false;
        do {
          const r = trainStep(run, data);
          if (!Number.isFinite(r.loss)) throw new Error(`training diverged at step ${r.step} (loss ${r.loss})`);
          reports.push({ step: r.step, loss: r.loss, smoothedLoss: r.smoothedLoss, lr: r.lr });
          windowSteps++;
          if (options.sampleEvery > 0 && run.step % options.sampleEvery === 0) previewDue = true;
        } while (!previewDue && run.step < run.config.steps && performance.now() - sliceStart < 120);
        const now = performance.now();
        if (now - windowStart > 1000 || stepsPerSecond === 0) {
          stepsPerSecond = (windowSteps * 1000) / Math.max(1, now - windowStart);
          windowStart = now;
          windowSteps = 0;
        }
        post({ type: "trainProgress", reports, stepsPerSecond });
        if (previewDue || run.step === run.config.steps) trainPreview(run);
        await nextTick();
      }
      const done = run.step >= run.config.steps;
      t.running = false;
      post({ type: "trainState", state: done ? "done" : "paused" });
    } catch (e) {
      t.running = false;
      post({ type: "trainState", state: "paused" });
      fail("train", e);
    }
  })();
}

function exportCheckpoint(id: number): void {
  if (!training) throw new Error("nothing has been trained yet");
  const { run } = training;
  const files = checkpointFiles(run.step, run.config, checkpointState(run), td.flattenTree(run.params), trainingTensors(run));
  // Unzipped into a folder F, this is F/checkpoint/..., the layout of a CLI run folder: `--checkpoint F` and
  // `train --out F --resume` both work.
  const zip = zipStore(files.map((f) => ({ name: `checkpoint/${f.name}`, bytes: f.bytes })));
  post({ type: "checkpoint", id, step: run.step, files, zip }, [zip.buffer]);
}

// ---- dispatch ---------------------------------------------------------------------------------------

// Messages are handled one at a time, in order (init's backend probe is asynchronous). The training loop
// is not part of a handler: it runs on its own and yields between slices, so pause and download get in.
let queue: Promise<void> = Promise.resolve();

scope.onmessage = (event) => {
  const message = event.data;
  queue = queue.then(async () => {
    try {
      switch (message.type) {
        case "init":
          post({ type: "ready", backend: await selectBackend(message.prefer) });
          break;
        case "loadModel":
          loadModel(message.files, message.source);
          break;
        case "generate":
          generate(message);
          break;
        case "setData":
          await setData(message.digitsGz, message.split);
          break;
        case "trainStart":
          startTraining(message.options);
          break;
        case "trainPause":
          if (training) training.running = false;
          break;
        case "trainResume":
          resume();
          break;
        case "exportCheckpoint":
          exportCheckpoint(message.id);
          break;
      }
    } catch (e) {
      fail(message.type, e);
    }
  });
};
