// Messages between the page (main.ts) and the engine workers (worker.ts).
import type { BackendChoice, BackendReport } from "./backends.ts";
import type { NamedFile } from "./bytes.ts";
import type { TrainOptions } from "./train-config.ts";

export interface SamplerChoice {
  /** "ddpm": ancestral (stochastic); "ddim": deterministic (eta = 0). */
  kind: "ddpm" | "ddim";
  /** Reverse steps; omitted: the CLI's default (all T for DDPM, 50 for DDIM). */
  steps?: number;
  /** Clip the predicted x_0 to [0, 1] at every step (sample()'s clipDenoised; the CLI does not clip). */
  clip?: boolean;
}

export interface ModelInfo {
  source: string;
  step: number;
  usedEma: boolean;
  features: number;
  digit: number | "all";
  conditional: boolean;
  weights: number;
  schedule: string;
  diffusionSteps: number;
}

export interface TrainReport {
  step: number;
  loss: number;
  smoothedLoss: number;
  lr: number;
}

export type ToWorker =
  | { type: "init"; choice: BackendChoice }
  | { type: "loadModel"; files: NamedFile[]; source: string }
  | { type: "generate"; id: number; sampler: SamplerChoice; n: number; seed: number }
  | { type: "setData"; digitsGz: Uint8Array; split: unknown }
  | { type: "trainStart"; options: TrainOptions }
  | { type: "trainPause" }
  | { type: "trainResume" }
  | { type: "exportCheckpoint"; id: number };

export type FromWorker =
  | { type: "ready"; backend: BackendReport }
  | { type: "modelLoaded"; info: ModelInfo }
  /** Frame 0 is the initial noise; frame k (1..steps) the state after reverse step k. */
  | { type: "frame"; id: number; index: number; steps: number; t: number; images: Float32Array }
  | { type: "generated"; id: number; images: Float32Array; n: number; ms: number }
  | { type: "trainStarted"; config: { steps: number; batch: number | "full"; features: number; digit: number | "all"; images: number; weights: number } }
  | { type: "trainProgress"; reports: TrainReport[]; stepsPerSecond: number }
  | { type: "trainSamples"; step: number; images: Float32Array; n: number }
  | { type: "trainState"; state: "running" | "paused" | "done" }
  | { type: "checkpoint"; id: number; step: number; files: NamedFile[]; zip: Uint8Array }
  | { type: "error"; context: string; message: string };
