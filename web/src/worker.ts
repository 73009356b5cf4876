// The engine's thread. The page starts two of these: one samples (Generate), one trains (Train), so
// each has its own engine state and the page itself never blocks on a kernel.
import * as td from "../../src/engine/index.ts";
import { parseDigitsCsv, parseTutorialSplit, splitDigits, type DigitsDataset, type TutorialSplit } from "../../src/data/digits.ts";
import {
  checkpointState, disposeRun, newRun, samplingParams, startTrainStep, trainingTensors, type StepReport, type TrainingRun,
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

async function generate(message: Extract<ToWorker, { type: "generate" }>): Promise<void> {
  if (!model) throw new Error("no model is loaded");
  const started = performance.now();
  const images = await generateImages(model.params, model.schedule, model.config, message.sampler, message.n, message.seed, (frame) => {
    post({ type: "frame", id: message.id, index: frame.index, steps: frame.steps, t: frame.t, images: frame.images }, [frame.images.buffer]);
  });
  post({ type: "generated", id: message.id, images, n: message.n, ms: performance.now() - started }, [images.buffer]);
}

// ---- training ---------------------------------------------------------------------------------------

let digits: { all: DigitsDataset; split: TutorialSplit } | null = null;

interface Training {
  run: TrainingRun;
  data: DigitsDataset;
  options: TrainOptions;
  running: boolean;
  /** The training loop now going (null: none); a resumed loop waits for the one before it to end. */
  loop: Promise<void> | null;
  /** Which loop is current: pause + resume before the old loop noticed the pause must not leave two. */
  generation: number;
}
let training: Training | null = null;

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Work on the training run, one piece at a time. Steps, previews and checkpoint exports await the backend (on
 * WebGPU: the GPU), so without this an export could read the weights while a step replaces (and disposes) them.
 */
let runLock: Promise<unknown> = Promise.resolve();
function withRun<T>(fn: () => Promise<T>): Promise<T> {
  const result = runLock.then(fn);
  runLock = result.catch(() => {});
  return result;
}

async function setData(digitsGz: Uint8Array, split: unknown): Promise<void> {
  const text = new TextDecoder().decode(await gunzip(digitsGz));
  digits = { all: parseDigitsCsv(text), split: parseTutorialSplit(split) };
}

async function trainPreview(run: TrainingRun): Promise<void> {
  const images = await generateImages(samplingParams(run), run.schedule, run.config, TRAIN_PREVIEW.sampler, TRAIN_PREVIEW.n, TRAIN_PREVIEW.seed);
  post({ type: "trainSamples", step: run.step, images, n: TRAIN_PREVIEW.n }, [images.buffer]);
}

async function startTraining(options: TrainOptions): Promise<void> {
  if (!digits) throw new Error("the digits data is not loaded yet");
  if (training?.running) throw new Error("training is already running");
  if (training) {
    // A paused loop may still be finishing its last step.
    const old = training;
    training = null;
    await old.loop;
    await withRun(async () => disposeRun(old.run));
  }
  const config = buildTrainConfig(options);
  const split = splitDigits(digits.all, config.digit, { tutorialSplit: digits.split });
  const run = newRun(config);
  training = { run, data: split.train, options, running: false, loop: null, generation: 0 };
  post({
    type: "trainStarted",
    config: { steps: config.steps, batch: config.batchSize, features: config.model.features, digit: config.digit, images: split.train.count, weights: td.treeSize(run.params) },
  });
  resume();
}

function resume(): void {
  const t = training;
  if (!t || t.running) return;
  if (t.run.step >= t.run.config.steps) return;
  t.running = true;
  const generation = ++t.generation;
  const current = () => t.running && t.generation === generation && training === t;
  post({ type: "trainState", state: "running" });
  const previous = t.loop;
  t.loop = (async () => {
    await previous;
    try {
      const { run, data, options } = t;
      let windowStart = performance.now();
      let windowSteps = 0;
      let stepsPerSecond = 0;
      while (current() && run.step < run.config.steps) {
        // Train for ~120 ms, then report and let messages (pause, download) in. Within a slice two steps are
        // in flight (startTrainStep: on WebGPU the next step is recorded while the GPU runs this one); the
        // slice ends with every report in, so a download between slices has the whole loss history.
        const { reports, previewDue } = await withRun(async () => {
          const reports: TrainReport[] = [];
          const sliceStart = performance.now();
          let previewDue = false;
          const take = (r: StepReport): void => {
            if (!Number.isFinite(r.loss)) throw new Error(`training diverged at step ${r.step} (loss ${r.loss})`);
            reports.push({ step: r.step, loss: r.loss, smoothedLoss: r.smoothedLoss, lr: r.lr });
            windowSteps++;
          };
          let inFlight: Promise<StepReport> | null = null;
          do {
            const next = startTrainStep(run, data);
            if (options.sampleEvery > 0 && run.step % options.sampleEvery === 0) previewDue = true;
            if (inFlight) take(await inFlight);
            inFlight = next;
          } while (!previewDue && run.step < run.config.steps && performance.now() - sliceStart < 120);
          take(await inFlight);
          return { reports, previewDue };
        });
        const now = performance.now();
        if (now - windowStart > 1000 || stepsPerSecond === 0) {
          stepsPerSecond = (windowSteps * 1000) / Math.max(1, now - windowStart);
          windowStart = now;
          windowSteps = 0;
        }
        post({ type: "trainProgress", reports, stepsPerSecond });
        if (previewDue || run.step === run.config.steps) await withRun(() => trainPreview(run));
        await nextTick();
      }
      // A newer loop (resumed) or a new run now reports the state.
      if (t.generation !== generation || training !== t) return;
      const done = run.step >= run.config.steps;
      t.running = false;
      post({ type: "trainState", state: done ? "done" : "paused" });
    } catch (e) {
      if (t.generation !== generation || training !== t) return;
      t.running = false;
      post({ type: "trainState", state: "paused" });
      fail("train", e);
    }
  })();
}

async function exportCheckpoint(id: number): Promise<void> {
  const t = training;
  if (!t) throw new Error("nothing has been trained yet");
  // Between two steps: the weights, optimizer state and step number belong together.
  const { step, files } = await withRun(async () => {
    const { run } = t;
    return { step: run.step, files: await checkpointFiles(run.step, run.config, checkpointState(run), td.flattenTree(run.params), trainingTensors(run)) };
  });
  // Unzipped into a folder F, this is F/checkpoint/..., the layout of a CLI run folder: `--checkpoint F` and
  // `train --out F --resume` both work.
  const zip = zipStore(files.map((f) => ({ name: `checkpoint/${f.name}`, bytes: f.bytes })));
  post({ type: "checkpoint", id, step, files, zip }, [zip.buffer]);
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
          post({ type: "ready", backend: await selectBackend(message.choice) });
          break;
        case "loadModel":
          loadModel(message.files, message.source);
          break;
        case "generate":
          await generate(message);
          break;
        case "setData":
          await setData(message.digitsGz, message.split);
          break;
        case "trainStart":
          await startTraining(message.options);
          break;
        case "trainPause":
          if (training) training.running = false;
          break;
        case "trainResume":
          resume();
          break;
        case "exportCheckpoint":
          await exportCheckpoint(message.id);
          break;
      }
    } catch (e) {
      fail(message.type, e);
    }
  });
};
