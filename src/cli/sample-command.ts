// `tiny-diffusion sample`: N images from a checkpoint as .npy (and optionally a PNG grid).
import { dirname } from "node:path";
import { mkdirSync } from "node:fs";
import * as td from "../engine/index.ts";
import { sample } from "../diffusion/sample.ts";
import type { SamplerConfig } from "../diffusion/samplers.ts";
import { makeSchedule, TUTORIAL_SAMPLER_SCHEDULE } from "../diffusion/schedules.ts";
import { writeFileAtomicSync } from "../io/atomic-file.ts";
import { encodeNpy } from "../io/npy.ts";
import { imageGridPng } from "../viz/grid.ts";
import { UserError } from "./errors.ts";
import { loadModel, noiseModel, type LoadedModel } from "./model-loading.ts";

export interface SampleCommandOptions {
  checkpoint: string;
  n: number;
  out: string;
  png?: string;
  seed: number;
  steps?: number;
  sampler: "ddpm" | "ddim";
  class?: number | "all";
  guidance?: number;
  rawWeights?: boolean;
  /** Reproduce the tutorial's bug: sample with linspace(1e-4, 0.02, 1000) whatever the model trained with. */
  tutorialSamplerSchedule?: boolean;
  /** Clip the predicted x0 to the data range [0, 1] at every step (default true). */
  clip?: boolean;
  log: (line: string) => void;
}

/**
 * Model outputs clipped to [0, 1] (pixel/16 units), as float32 [N, 8, 8]. Samples on the active backend (the
 * model is loaded onto it) and reads the result back once, at the end, so a device backend (WebGPU) only
 * waits for the GPU there.
 */
export async function generateImages(o: Omit<SampleCommandOptions, "out" | "log" | "png">): Promise<{ images: Float32Array; info: string; labels?: Int32Array }> {
  const loaded = loadModel(o.checkpoint, { rawWeights: o.rawWeights });
  try {
    return await sampleLoaded(o, loaded);
  } finally {
    td.dispose(loaded.params);
  }
}

async function sampleLoaded(o: Omit<SampleCommandOptions, "out" | "log" | "png">, loaded: LoadedModel): Promise<{ images: Float32Array; info: string; labels?: Int32Array }> {
  const conditional = (loaded.config.model.numClasses ?? 0) > 0 || loaded.config.conditional;
  if ((o.class !== undefined || o.guidance !== undefined) && !conditional) {
    throw new UserError("--class/--guidance need a conditional model (train with --digit all --conditional)");
  }
  const sampler: SamplerConfig = { kind: o.sampler, ...(o.steps !== undefined ? { steps: o.steps } : {}) };
  if (o.steps !== undefined && o.steps > loaded.schedule.numSteps) {
    throw new UserError(`--steps ${o.steps} exceeds the model's ${loaded.schedule.numSteps} diffusion steps`);
  }
  const labels = conditional ? Int32Array.from({ length: o.n }, (_, i) => (o.class === undefined || o.class === "all" ? i % 10 : o.class)) : undefined;
  const model = noiseModel(loaded.params);
  const x = td.tidy(() => sample({
    model,
    replayModel: model,
    schedule: o.tutorialSamplerSchedule ? makeSchedule(TUTORIAL_SAMPLER_SCHEDULE) : loaded.schedule,
    sampler,
    shape: [o.n, 8, 8, 1],
    key: td.random.key(o.seed),
    labels,
    guidanceScale: conditional ? (o.guidance ?? 2) : undefined,
    clipDenoised: o.clip ?? true,
  }));
  let values: ArrayLike<number>;
  try {
    values = await x.read();
  } finally {
    x.dispose();
  }
  const images = Float32Array.from(values, (v) => Math.min(1, Math.max(0, v)));
  const scheduleNote = o.tutorialSamplerSchedule ? " with the tutorial's linear sampling schedule (not the model's)" : "";
  const info = `${o.n} samples, ${o.sampler}${o.steps ? ` ${o.steps} steps` : ""}, step-${loaded.step} ${loaded.usedEma ? "EMA " : ""}weights${scheduleNote}`;
  return { images, info, labels };
}

export async function runSample(o: SampleCommandOptions): Promise<void> {
  if (!o.out.endsWith(".npy")) throw new UserError(`--out must name a .npy file, got '${o.out}'`);
  if (o.png !== undefined && !o.png.endsWith(".png")) throw new UserError(`--png must name a .png file, got '${o.png}'`);
  const started = performance.now();
  const { images, info, labels } = await generateImages(o);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileAtomicSync(o.out, encodeNpy(images, [o.n, 8, 8]));
  // The class of each sample, for `eval --labels`.
  const labelsFile = labels ? o.out.replace(/\.npy$/, ".labels.npy") : undefined;
  if (labels && labelsFile) writeFileAtomicSync(labelsFile, encodeNpy(labels, [o.n]));
  if (o.png) {
    mkdirSync(dirname(o.png), { recursive: true });
    // With --class all the labels cycle 0-9: ten columns put one digit in each.
    const cols = o.class === "all" ? 10 : undefined;
    writeFileAtomicSync(o.png, imageGridPng(images, o.n, 8, 8, { invert: true, cols }));
  }
  o.log(`${info} in ${((performance.now() - started) / 1000).toFixed(1)} s -> ${o.out}${o.png ? ` and ${o.png}` : ""}${labelsFile ? ` (labels: ${labelsFile})` : ""}`);
}
