// The page: wires the controls to two engine workers (Generate and Train), animates the reverse
// process, draws the live loss chart and sample grids, and hands checkpoints in and out.
import digitsGzUrl from "../../data/digits.csv.gz?url";
import tutorialSplit from "../../data/split_digit1.json";
import { parseBackendChoice, type BackendChoice, type BackendReport } from "./backends.ts";
import type { NamedFile } from "./bytes.ts";
import { drawLossChart, type LossPoint } from "./chart.ts";
import { MANIFEST } from "./checkpoint.ts";
import type { FromWorker, ModelInfo, SamplerChoice, ToWorker } from "./protocol.ts";
import { gridRgba } from "./render.ts";
import type { TrainOptions } from "./train-config.ts";

// ---- small helpers ----------------------------------------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

const body = document.body;
const reducedMotion = window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;

function setStatus(el: HTMLElement, text: string, kind: "info" | "ok" | "error" = "info"): void {
  el.textContent = text;
  el.classList.toggle("ok", kind === "ok");
  el.classList.toggle("error", kind === "error");
}

function drawGrid(canvas: HTMLCanvasElement, images: Float32Array, n: number): void {
  const img = gridRgba(images, n);
  if (canvas.width !== img.width || canvas.height !== img.height) {
    canvas.width = img.width;
    canvas.height = img.height;
  }
  canvas.getContext("2d")!.putImageData(new ImageData(img.data as Uint8ClampedArray<ArrayBuffer>, img.width, img.height), 0, 0);
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "–";
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}

function digitName(d: number | "all"): string {
  return d === "all" ? "all digits" : `digit ${d}`;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function download(bytes: Uint8Array, name: string, type: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** web/public/model: the sampling (EMA) weights of a CLI run, exported by web/scripts/export-model.ts. */
const SHIPPED_NAME = "Pretrained model";

const params = new URLSearchParams(location.search);
/** ?backend=auto|webgpu|wasm|cpu, or the select in the header. */
let backendChoice: BackendChoice = parseBackendChoice(params.get("backend"));

// ---- workers ----------------------------------------------------------------------------------------

type Handler = (message: FromWorker) => void;

class EngineWorker {
  private worker: Worker;
  /** A started, idle worker to switch to on restart(), so Stop works offline too (no script fetch then). */
  private spare: { worker: Worker; failed: boolean } | null = null;
  constructor(private readonly name: string, private readonly handler: Handler, keepSpare = false) {
    this.worker = this.attach(this.spawn());
    if (keepSpare) this.spare = this.spawnSpare();
  }
  private spawn(): Worker {
    return new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: this.name });
  }
  private spawnSpare(): { worker: Worker; failed: boolean } {
    const spare = { worker: this.spawn(), failed: false };
    spare.worker.onerror = () => {
      spare.failed = true;
    };
    return spare;
  }
  private attach(worker: Worker): Worker {
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.handler(event.data);
    worker.onerror = (event) => this.handler({ type: "error", context: "worker", message: event.message || "the worker failed to start" });
    return worker;
  }
  send(message: ToWorker, transfer: Transferable[] = []): void {
    this.worker.postMessage(message, transfer);
  }
  /** Kills the worker mid-computation and switches to a fresh one (the only way to stop a synchronous loop). */
  restart(): void {
    this.worker.terminate();
    const spare = this.spare;
    this.worker = this.attach(spare && !spare.failed ? spare.worker : this.spawn());
    if (spare?.failed) spare.worker.terminate();
    this.spare = null;
    // The next spare needs the script from the server: fetch it now, or once the network is back.
    if (navigator.onLine) this.spare = this.spawnSpare();
    else window.addEventListener("online", () => (this.spare ??= this.spawnSpare()), { once: true });
  }
}

// ---- backend badge ------------------------------------------------------------------------------------

const backendSelect = $<HTMLSelectElement>("backend-choice");
backendSelect.value = backendChoice;

function showBackend(report: BackendReport, trainReport: BackendReport | null): void {
  const { active } = report;
  $("backend-name").textContent = active.label;
  $("backend-device").textContent = active.id === "webgpu" ? `Adapter: ${active.device}` : `On ${active.device}`;
  const trainOn = trainReport && trainReport.active.id !== active.id ? ` (training: ${trainReport.active.label})` : "";
  $("backend-where").textContent = `in two Web Workers (sampling, training), so the page stays responsive${trainOn}`;
  const gpu = report.candidates.find((c) => c.id === "webgpu");
  let note = "";
  if (active.id === "webgpu") {
    if (active.software) note = "This WebGPU adapter is a software renderer (on the CPU): expect it to be slower than a GPU.";
  } else if (gpu?.status === "unavailable") {
    note = `WebGPU is not available: ${gpu.detail}. Falling back to ${active.id === "wasm" ? "WebAssembly" : "the CPU backend"}.`;
  } else if (gpu?.status === "skipped") {
    note = `WebGPU is not used (backend set to ${report.choice}).`;
  }
  $("backend-note").textContent = note;
  body.dataset.backend = active.id;
  body.dataset.backendDevice = active.device;
}

let genBackend: BackendReport | null = null;
let trainBackend: BackendReport | null = null;
function onBackendReady(which: "gen" | "train", report: BackendReport): void {
  if (which === "gen") genBackend = report;
  else trainBackend = report;
  body.dataset.trainBackend = trainBackend?.active.id ?? "";
  if (genBackend) showBackend(genBackend, trainBackend);
}

// ---- Generate panel -----------------------------------------------------------------------------------

const gen = {
  form: $<HTMLFormElement>("gen-form"),
  sampler: $<HTMLSelectElement>("gen-sampler"),
  steps: $<HTMLSelectElement>("gen-steps"),
  clip: $<HTMLInputElement>("gen-clip"),
  n: $<HTMLSelectElement>("gen-n"),
  seed: $<HTMLInputElement>("gen-seed"),
  seedRandom: $<HTMLButtonElement>("gen-seed-random"),
  run: $<HTMLButtonElement>("gen-run"),
  stop: $<HTMLButtonElement>("gen-stop"),
  canvas: $<HTMLCanvasElement>("gen-canvas"),
  caption: $("gen-caption"),
  frame: $<HTMLInputElement>("gen-frame"),
  replay: $<HTMLButtonElement>("gen-replay"),
  progress: $<HTMLProgressElement>("gen-progress"),
  files: $<HTMLInputElement>("gen-files"),
  shipped: $<HTMLButtonElement>("gen-shipped"),
  status: $("gen-status"),
  modelInfo: $("model-info"),
};

interface Animation {
  id: number;
  n: number;
  steps: number;
  label: string;
  frames: Float32Array[];
  timesteps: number[];
  shown: number;
  lastDraw: number;
  done: boolean;
  ms: number;
  playing: boolean;
  /** The final samples, clipped to [0, 1] (set when done). */
  images?: Float32Array;
}

let shippedFiles: NamedFile[] | null = null;
let currentModelFiles: { files: NamedFile[]; source: string } | null = null;
let lastGoodModel: { files: NamedFile[]; source: string } | null = null;
let modelInfo: ModelInfo | null = null;
let genReady = false;
let genRunning = false;
let nextId = 1;
let anim: Animation | null = null;
let reloadOnReady = false;

function readSampler(diffusionSteps: number): SamplerChoice {
  return {
    kind: gen.sampler.value === "ddim" ? "ddim" : "ddpm",
    steps: Math.min(Number(gen.steps.value), diffusionSteps),
    clip: gen.clip.checked,
  };
}

function samplerLabel(choice: SamplerChoice): string {
  return `${choice.kind.toUpperCase()}, ${choice.steps} steps${choice.clip ? ", x̂₀ clipped" : ""}`;
}

function updateGenControls(): void {
  gen.run.disabled = !genReady || genRunning;
  gen.stop.disabled = !genRunning;
  gen.shipped.disabled = genRunning || !shippedFiles || currentModelFiles?.files === shippedFiles;
  gen.files.disabled = genRunning;
  gen.replay.disabled = !anim || !anim.done || anim.frames.length < 2;
  gen.frame.disabled = !anim || anim.frames.length < 2;
}

function describeModel(info: ModelInfo): string {
  return `${info.source}: ${info.features}-feature U-Net (${info.weights.toLocaleString("en-US")} weights) trained ${info.step} steps on ${digitName(info.digit)}` +
    `${info.conditional ? " (class-conditional; samples cycle through 0–9)" : ""}${info.usedEma ? ", EMA weights" : ""}, ${info.schedule} noise schedule.`;
}

function showFrame(a: Animation, index: number): void {
  const frame = a.frames[index];
  if (!frame) return;
  drawGrid(gen.canvas, frame, a.n);
  a.shown = index;
  const t = a.timesteps[index]!;
  const what = index === 0 ? "pure noise" : t < 0 ? "final sample" : `t = ${t}`;
  gen.caption.textContent = `Step ${index} of ${a.steps} · ${what}`;
  gen.canvas.setAttribute("aria-label", `${a.n} ${index === a.steps ? "generated digits" : "digits being denoised"}, step ${index} of ${a.steps} (${what})`);
  gen.frame.max = String(Math.max(0, a.frames.length - 1));
  gen.frame.value = String(index);
  gen.frame.setAttribute("aria-valuetext", `step ${index} of ${a.steps}, ${what}`);
  body.dataset.genShown = String(index);
  if (a.done && index === a.frames.length - 1 && body.dataset.genState !== "done") {
    body.dataset.genState = "done";
    updateGenControls();
  }
}

/** Plays the frames in order, at least ~1.5 s for the whole run, and keeps up with the sampler. */
function animate(now: number): void {
  const a = anim;
  if (!a || !a.playing) return;
  const interval = Math.min(90, Math.max(12, 1500 / Math.max(1, a.steps)));
  const last = a.frames.length - 1;
  if (a.shown < last && now - a.lastDraw >= interval) {
    const behind = last - a.shown;
    const stride = reducedMotion ? behind : Math.max(1, Math.ceil(a.steps / 150), a.done ? 1 : Math.floor(behind / 4));
    a.lastDraw = now;
    showFrame(a, Math.min(last, a.shown + stride));
  }
  if (a.done && a.shown === last) {
    a.playing = false;
    return;
  }
  requestAnimationFrame(animate);
}

function startAnimation(a: Animation): void {
  a.playing = true;
  a.lastDraw = -Infinity;
  requestAnimationFrame(animate);
}

function onGenMessage(m: FromWorker): void {
  switch (m.type) {
    case "ready":
      onBackendReady("gen", m.backend);
      // After Stop the fresh worker has no model: send it the one in use again.
      if (reloadOnReady && currentModelFiles) genWorker.send({ type: "loadModel", files: currentModelFiles.files, source: currentModelFiles.source });
      break;
    case "modelLoaded":
      modelInfo = m.info;
      lastGoodModel = currentModelFiles;
      genReady = true;
      gen.modelInfo.textContent = describeModel(m.info);
      if (!genRunning) {
        body.dataset.genState = anim?.done ? "done" : "ready";
        if (!anim) setStatus(gen.status, "Ready. Choose a sampler, the number of samples and a seed, then press Generate.");
        else setStatus(gen.status, `Loaded: ${m.info.source}.`, "ok");
      }
      updateGenControls();
      break;
    case "frame": {
      const a = anim;
      if (!a || a.id !== m.id) return;
      a.frames[m.index] = m.images;
      a.timesteps[m.index] = m.t;
      a.steps = m.steps;
      gen.progress.max = m.steps;
      gen.progress.value = m.index;
      body.dataset.genFrames = String(a.frames.length);
      if (m.index === 0) showFrame(a, 0);
      break;
    }
    case "generated": {
      const a = anim;
      if (!a || a.id !== m.id) return;
      a.done = true;
      a.ms = m.ms;
      a.images = m.images;
      genRunning = false;
      setStatus(gen.status, `Generated ${m.n} samples in ${(m.ms / 1000).toFixed(2)} s (${a.label}, seed ${gen.seed.value}). Drag the slider to revisit any step.`, "ok");
      if (!a.playing) startAnimation(a);
      updateGenControls();
      break;
    }
    case "error":
      genRunning = false;
      if (anim && !anim.done) anim.playing = false;
      if (m.context === "loadModel" && lastGoodModel) {
        // The worker keeps the model it had: carry on with that one.
        currentModelFiles = lastGoodModel;
        genReady = true;
      }
      body.dataset.genState = "error";
      setStatus(gen.status, `Error (${m.context}): ${m.message}`, "error");
      updateGenControls();
      break;
    default:
      break;
  }
}

const genWorker = new EngineWorker("generate", onGenMessage, true);

// For tests and the devtools console: the values behind the Generate canvas (the canvas holds 8-bit colours).
(window as unknown as { tinyDiffusion: object }).tinyDiffusion = {
  /** The last finished generation's samples: n images of 8x8 values in [0, 1] (pixel/16 units), or null. */
  samples(): { n: number; images: number[] } | null {
    return anim?.done && anim.images ? { n: anim.n, images: Array.from(anim.images) } : null;
  },
};

function generate(): void {
  if (!genReady || genRunning || !modelInfo) return;
  const seed = Number(gen.seed.value);
  if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) {
    setStatus(gen.status, "The seed must be a whole number from 0 to 4294967295.", "error");
    gen.seed.focus();
    return;
  }
  const sampler = readSampler(modelInfo.diffusionSteps);
  const n = Number(gen.n.value);
  const id = nextId++;
  const label = samplerLabel(sampler);
  anim = { id, n, steps: sampler.steps!, label, frames: [], timesteps: [], shown: -1, lastDraw: 0, done: false, ms: 0, playing: false };
  genRunning = true;
  body.dataset.genState = "running";
  body.dataset.genFrames = "0";
  gen.progress.value = 0;
  setStatus(gen.status, `Sampling ${n} digits with ${label}…`);
  updateGenControls();
  genWorker.send({ type: "generate", id, sampler, n, seed });
  startAnimation(anim);
}

gen.form.addEventListener("submit", (e) => {
  e.preventDefault();
  generate();
});
gen.seedRandom.addEventListener("click", () => {
  gen.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
});
gen.stop.addEventListener("click", () => {
  if (!genRunning) return;
  genRunning = false;
  genReady = false;
  if (anim) anim.playing = false;
  anim = null;
  body.dataset.genState = "loading";
  setStatus(gen.status, "Stopped. Restarting the sampler…");
  genWorker.restart();
  reloadOnReady = true;
  genWorker.send({ type: "init", choice: backendChoice });
  updateGenControls();
});
gen.frame.addEventListener("input", () => {
  if (!anim) return;
  anim.playing = false;
  showFrame(anim, Number(gen.frame.value));
});
gen.replay.addEventListener("click", () => {
  if (!anim || !anim.done) return;
  showFrame(anim, 0);
  startAnimation(anim);
});

function loadModel(files: NamedFile[], source: string): void {
  currentModelFiles = { files, source };
  genReady = false;
  body.dataset.genState = "loading";
  setStatus(gen.status, `Loading ${source}…`);
  updateGenControls();
  genWorker.send({ type: "loadModel", files, source });
}

gen.files.addEventListener("change", async () => {
  const list = Array.from(gen.files.files ?? []);
  if (list.length === 0) return;
  const files = await Promise.all(list.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
  if (!files.some((f) => f.name === MANIFEST)) {
    setStatus(gen.status, `Pick ${MANIFEST} together with its .safetensors files.`, "error");
    return;
  }
  loadModel(files, `Your checkpoint (${list.length} files)`);
});
gen.shipped.addEventListener("click", () => {
  if (shippedFiles) loadModel(shippedFiles, SHIPPED_NAME);
});

// ---- Train panel --------------------------------------------------------------------------------------

const tr = {
  form: $<HTMLFormElement>("train-form"),
  digit: $<HTMLSelectElement>("train-digit"),
  features: $<HTMLSelectElement>("train-features"),
  batch: $<HTMLSelectElement>("train-batch"),
  steps: $<HTMLInputElement>("train-steps"),
  every: $<HTMLInputElement>("train-every"),
  seed: $<HTMLInputElement>("train-seed"),
  start: $<HTMLButtonElement>("train-start"),
  pause: $<HTMLButtonElement>("train-pause"),
  download: $<HTMLButtonElement>("train-download"),
  use: $<HTMLButtonElement>("train-use"),
  step: $("train-step"),
  loss: $("train-loss"),
  speed: $("train-speed"),
  eta: $("train-eta"),
  progress: $<HTMLProgressElement>("train-progress"),
  chart: $<HTMLCanvasElement>("train-chart"),
  samples: $<HTMLCanvasElement>("train-samples"),
  samplesCaption: $("train-samples-caption"),
  status: $("train-status"),
};

let trainState: "loading" | "idle" | "running" | "paused" | "done" = "loading";
let trainTotal = 0;
let trainStep = 0;
let lossPoints: LossPoint[] = [];
let chartQueued = false;
const exportPurpose = new Map<number, "download" | "use">();

function setTrainState(state: typeof trainState): void {
  trainState = state;
  body.dataset.trainState = state;
  const has = trainStep > 0;
  tr.start.disabled = state === "loading" || state === "running";
  tr.start.textContent = has ? "Start a new run" : "Start training";
  tr.pause.disabled = !(state === "running" || state === "paused");
  tr.pause.textContent = state === "paused" ? "Resume" : "Pause";
  tr.pause.setAttribute("aria-pressed", String(state === "paused"));
  tr.download.disabled = !has;
  tr.use.disabled = !has;
  for (const el of [tr.digit, tr.features, tr.batch, tr.steps, tr.every, tr.seed]) el.disabled = state === "running";
}

function queueChart(): void {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => {
    chartQueued = false;
    drawLossChart(tr.chart, lossPoints, trainTotal || Number(tr.steps.value) || 1);
    const last = lossPoints[lossPoints.length - 1];
    tr.chart.setAttribute("aria-label", last ? `Training loss chart: ${lossPoints.length} steps, smoothed loss now ${last.smoothed.toFixed(4)}` : "Training loss chart (no data yet)");
  });
}

function readTrainOptions(): TrainOptions | string {
  const int = (el: HTMLInputElement, name: string, lo: number, hi: number): number | string => {
    const v = Number(el.value);
    return Number.isInteger(v) && v >= lo && v <= hi ? v : `${name} must be a whole number from ${lo} to ${hi}.`;
  };
  const steps = int(tr.steps, "Steps", 1, 20000);
  const every = int(tr.every, "Samples every", 0, 20000);
  const seed = int(tr.seed, "Seed", 0, 2 ** 31 - 1);
  for (const v of [steps, every, seed]) if (typeof v === "string") return v;
  return {
    digit: tr.digit.value === "all" ? "all" : Number(tr.digit.value),
    features: Number(tr.features.value),
    batch: Number(tr.batch.value),
    steps: steps as number,
    sampleEvery: every as number,
    seed: seed as number,
  };
}

function onTrainMessage(m: FromWorker): void {
  switch (m.type) {
    case "ready":
      onBackendReady("train", m.backend);
      break;
    case "trainStarted":
      trainTotal = m.config.steps;
      trainStep = 0;
      lossPoints = [];
      tr.progress.max = m.config.steps;
      tr.progress.value = 0;
      tr.step.textContent = `0 / ${m.config.steps}`;
      tr.loss.textContent = "–";
      tr.speed.textContent = "–";
      tr.eta.textContent = "–";
      setStatus(tr.status, `Training a ${m.config.features}-feature U-Net (${m.config.weights.toLocaleString("en-US")} weights) on ${m.config.images} images of ${digitName(m.config.digit)}, batch ${m.config.batch}.`);
      queueChart();
      break;
    case "trainProgress": {
      for (const r of m.reports) lossPoints.push({ step: r.step, loss: r.loss, smoothed: r.smoothedLoss });
      const last = m.reports[m.reports.length - 1];
      if (!last) break;
      trainStep = last.step;
      body.dataset.trainStep = String(trainStep);
      tr.step.textContent = `${trainStep} / ${trainTotal}`;
      tr.loss.textContent = last.smoothedLoss.toFixed(4);
      tr.speed.textContent = `${m.stepsPerSecond.toFixed(1)} steps/s`;
      tr.eta.textContent = formatSeconds((trainTotal - trainStep) / Math.max(m.stepsPerSecond, 1e-9));
      tr.progress.value = trainStep;
      if (trainStep > 0 && tr.download.disabled) setTrainState(trainState);
      queueChart();
      break;
    }
    case "trainSamples":
      drawGrid(tr.samples, m.images, m.n);
      tr.samplesCaption.textContent = `Samples at step ${m.step} (DDPM, 20 steps, fixed noise)`;
      tr.samples.setAttribute("aria-label", `${m.n} samples from the model being trained, at step ${m.step}`);
      body.dataset.trainSamplesStep = String(m.step);
      break;
    case "trainState":
      setTrainState(m.state);
      if (m.state === "paused") setStatus(tr.status, `Paused at step ${trainStep}. Resume, or download the checkpoint.`);
      if (m.state === "running" && trainStep > 0) setStatus(tr.status, `Training… (step ${trainStep})`);
      if (m.state === "done") setStatus(tr.status, `Done: ${trainStep} steps. Download the checkpoint, or use it in Generate.`, "ok");
      break;
    case "checkpoint": {
      const purpose = exportPurpose.get(m.id) ?? "download";
      exportPurpose.delete(m.id);
      if (purpose === "download") {
        download(m.zip, `tiny-diffusion-web-step${m.step}.zip`, "application/zip");
        setStatus(tr.status, `Downloaded the step-${m.step} checkpoint (${(m.zip.length / 1e6).toFixed(2)} MB).`, "ok");
      } else {
        loadModel(m.files, `Model trained in this tab (step ${m.step})`);
        setStatus(tr.status, `Sent the step-${m.step} weights to the Generate panel.`, "ok");
        document.getElementById("generate")?.scrollIntoView({ behavior: reducedMotion ? "auto" : "smooth" });
      }
      break;
    }
    case "error":
      if (m.context === "trainStart") setTrainState(trainStep > 0 ? "paused" : "idle");
      setStatus(tr.status, `Error (${m.context}): ${m.message}`, "error");
      break;
    default:
      break;
  }
}

// Both workers keep a spare, so that switching the backend works offline too.
const trainWorker = new EngineWorker("train", onTrainMessage, true);

tr.form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (trainState === "loading" || trainState === "running") return;
  const options = readTrainOptions();
  if (typeof options === "string") {
    setStatus(tr.status, options, "error");
    return;
  }
  setStatus(tr.status, "Starting…");
  setTrainState("running");
  trainWorker.send({ type: "trainStart", options });
});
tr.pause.addEventListener("click", () => {
  if (trainState === "running") trainWorker.send({ type: "trainPause" });
  else if (trainState === "paused") trainWorker.send({ type: "trainResume" });
});
function requestExport(purpose: "download" | "use"): void {
  const id = nextId++;
  exportPurpose.set(id, purpose);
  setStatus(tr.status, purpose === "download" ? "Preparing the checkpoint…" : "Preparing the weights…");
  trainWorker.send({ type: "exportCheckpoint", id });
}
tr.download.addEventListener("click", () => requestExport("download"));
tr.use.addEventListener("click", () => requestExport("use"));
window.addEventListener("resize", queueChart);

// ---- switching the backend -----------------------------------------------------------------------------

let digitsBytes: Uint8Array | null = null;

/** Starts both engines afresh on the chosen backend; the model in Generate is reloaded, a training run is lost. */
function switchBackend(choice: BackendChoice): void {
  if (choice === backendChoice) return;
  if (trainStep > 0 && !confirm("Switching the backend restarts the engines: the model being trained here is lost unless you download it first. Switch?")) {
    backendSelect.value = backendChoice;
    return;
  }
  backendChoice = choice;
  const url = new URL(location.href);
  if (choice === "auto") url.searchParams.delete("backend");
  else url.searchParams.set("backend", choice);
  history.replaceState(null, "", url);
  genBackend = trainBackend = null;
  $("backend-name").textContent = "starting…";
  for (const id of ["backend-device", "backend-where", "backend-note"]) $(id).textContent = "";
  delete body.dataset.backend;
  // Generate: like Stop, then the model in use again.
  genRunning = false;
  genReady = false;
  if (anim) anim.playing = false;
  anim = null;
  body.dataset.genState = "loading";
  setStatus(gen.status, "Restarting the sampler on the chosen backend…");
  genWorker.restart();
  reloadOnReady = true;
  genWorker.send({ type: "init", choice });
  updateGenControls();
  // Train: a fresh worker with the digits.
  trainWorker.restart();
  trainWorker.send({ type: "init", choice });
  trainStep = 0;
  trainTotal = 0;
  lossPoints = [];
  delete body.dataset.trainStep;
  delete body.dataset.trainSamplesStep;
  tr.progress.value = 0;
  tr.step.textContent = "–";
  tr.loss.textContent = "–";
  tr.speed.textContent = "–";
  tr.eta.textContent = "–";
  queueChart();
  if (digitsBytes) {
    const copy = digitsBytes.slice();
    trainWorker.send({ type: "setData", digitsGz: copy, split: tutorialSplit }, [copy.buffer]);
    setTrainState("idle");
    setStatus(tr.status, "Ready. Choose the settings and press Start training.");
  } else {
    setTrainState("loading");
  }
}
backendSelect.addEventListener("change", () => switchBackend(parseBackendChoice(backendSelect.value)));

// ---- start-up -----------------------------------------------------------------------------------------

async function start(): Promise<void> {
  genWorker.send({ type: "init", choice: backendChoice });
  trainWorker.send({ type: "init", choice: backendChoice });
  setTrainState("loading");
  queueChart();
  // Everything the page needs is fetched now, so it keeps working offline once loaded.
  const modelBase = new URL("model/", document.baseURI);
  const [shipped, digitsGz] = await Promise.all([
    (async () => {
      const manifestBytes = await fetchBytes(new URL(MANIFEST, modelBase).href);
      const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as { files: { model: string; training?: string } };
      const names = [manifest.files.model, ...(manifest.files.training ? [manifest.files.training] : [])];
      const data = await Promise.all(names.map(async (name) => ({ name, bytes: await fetchBytes(new URL(name, modelBase).href) })));
      return [{ name: MANIFEST, bytes: manifestBytes }, ...data];
    })().catch((e: Error) => {
      body.dataset.genState = "error";
      setStatus(gen.status, `Could not load the pretrained model: ${e.message}`, "error");
      return null;
    }),
    fetchBytes(digitsGzUrl).catch((e: Error) => {
      setStatus(tr.status, `Could not load the digits: ${e.message}`, "error");
      return null;
    }),
  ]);
  if (shipped) {
    shippedFiles = shipped;
    loadModel(shipped, SHIPPED_NAME);
  }
  if (digitsGz) {
    digitsBytes = digitsGz;
    trainWorker.send({ type: "setData", digitsGz, split: tutorialSplit });
    setTrainState("idle");
    setStatus(tr.status, "Ready. Choose the settings and press Start training.");
  }
}

void start();
