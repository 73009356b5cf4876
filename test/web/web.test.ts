// End-to-end test of the web app (web/): builds it with Vite, serves web/dist from 127.0.0.1, drives Debian's
// Chromium (/usr/bin/chromium) with playwright-core, and checks the page against the CLI's own code:
//  * Generate: with clipping off the canvas holds exactly the pixels of `tiny-diffusion sample` for the same
//    checkpoint, seed and sampler (both run the engine's WebAssembly backend, the page in its engine workers
//    on a cross-origin isolated page, Node as the CLI's default; the forward pass's products have K < 512, so
//    no split-K and the same sums in the same order whatever the thread count: bit-exact); with the page's defaults (DDPM 50 steps,
//    clipped x0) it equals src/diffusion's sample() in Node, the samples look like digits (ink, smooth
//    strokes, unlike the noise of frame 0), and the animation drew the real states from noise to sample.
//  * Train: steps run in the tab, the loss text and chart update, pause/resume work, and the downloaded zip is
//    a CLI checkpoint: it loads with the CLI's loader, holds the same losses as the same run in Node, and
//    `train --resume` continues it.
//  * Backends: with the flags (--disable-gpu) the page reports WebGPU missing, says why and that it falls
//    back to WebAssembly, and everything above runs there. A second launch gives Chromium's WebGPU a software
//    adapter (SwiftShader, shipped in Debian's chromium package): the page picks WebGPU, names the adapter,
//    generates samples close to the CLI's (float32 tolerance) and trains a few steps like Node.
//  * Takes a screenshot: into the temp folder, or over web/screenshot.png with UPDATE_SCREENSHOT=1.
import { after, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import type { BrowserContext, Page } from "playwright-core";
import * as td from "../../src/engine/index.ts";
import { WasmBackend } from "../../src/engine/backends/wasm/index.ts";
import { generateImages } from "../../src/cli/sample-command.ts";
import { loadModel, noiseModel } from "../../src/cli/model-loading.ts";
import { sample } from "../../src/diffusion/sample.ts";
import { runTraining } from "../../src/cli/train-command.ts";
import { loadDigitsSplit } from "../../src/data/digits-node.ts";
import { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, loadCheckpoint } from "../../src/io/checkpoint.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import { newRun, trainStep, type TrainingCheckpointState } from "../../src/train/trainer.ts";
import { sha256Hex, unzipStore } from "../../web/src/bytes.ts";
import * as webCheckpoint from "../../web/src/checkpoint.ts";
import { gridLayout, gridRgba, INK, PAPER } from "../../web/src/render.ts";
import { buildTrainConfig, type TrainOptions } from "../../web/src/train-config.ts";
import { createHash } from "node:crypto";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const CHROMIUM = "/usr/bin/chromium";
/** The flags (plus --disable-quic): no GPU, so no WebGPU adapter; the page runs on WebAssembly. */
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-quic",
];
/**
 * WebGPU on a software adapter: --enable-unsafe-webgpu lets headless Chromium on Linux expose WebGPU, and with no
 * usable GPU (--disable-gpu stays) Dawn takes SwiftShader's Vulkan (/usr/lib/chromium/libvk_swiftshader.so, part of
 * Debian's chromium package); --use-webgpu-adapter=swiftshader asks for it by name, so a machine with a GPU gets
 * the same adapter. Measured on 2 cores: ~1 s per sampling step of 16 images, ~2-5 s per training step.
 */
const WEBGPU_ARGS = [...CHROMIUM_ARGS, "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];
const SHIPPED_MODEL = join(ROOT, "web/public/model");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json", ".gz": "application/gzip", ".safetensors": "application/octet-stream", ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** A static file server for web/dist on 127.0.0.1 and a random port. */
async function serve(dir: string): Promise<{ server: Server; url: string }> {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(root + sep) || !existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store",
      // Cross-origin isolation, as web/vite.config.ts serves it: the page's Wasm backend needs SharedArrayBuffer.
      "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp",
    });
    res.end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** Tiles (values 0..1, 1 = ink) read back from a canvas drawn by gridRgba. */
function tilesFromCanvas(rgba: ArrayLike<number>, width: number, n: number): Float64Array {
  const { cols, scale, padding } = gridLayout(n);
  const out = new Float64Array(n * 64);
  for (let k = 0; k < n; k++) {
    const x0 = padding + (k % cols) * (8 * scale + padding);
    const y0 = padding + Math.floor(k / cols) * (8 * scale + padding);
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) {
        const at = ((y0 + i * scale + (scale >> 1)) * width + x0 + j * scale + (scale >> 1)) * 4;
        out[k * 64 + i * 8 + j] = (PAPER[0] - rgba[at]!) / (PAPER[0] - INK[0]);
      }
    }
  }
  return out;
}

/** Mean correlation of horizontally and vertically adjacent pixels inside each 8x8 tile: ~0 for noise. */
function neighbourCorrelation(tiles: ArrayLike<number>): number {
  const a: number[] = [], b: number[] = [];
  for (let k = 0; k < tiles.length / 64; k++) {
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) {
        const v = tiles[k * 64 + i * 8 + j]!;
        if (j < 7) { a.push(v); b.push(tiles[k * 64 + i * 8 + j + 1]!); }
        if (i < 7) { a.push(v); b.push(tiles[k * 64 + (i + 1) * 8 + j]!); }
      }
    }
  }
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a), mb = mean(b);
  let cov = 0, va = 0, vb = 0;
  for (let i = 0; i < a.length; i++) {
    cov += (a[i]! - ma) * (b[i]! - mb);
    va += (a[i]! - ma) ** 2;
    vb += (b[i]! - mb) ** 2;
  }
  return cov / Math.sqrt(va * vb || 1);
}

test("web helpers match the CLI's checkpoint format and Node's SHA-256", () => {
  assert.equal(webCheckpoint.CHECKPOINT_FORMAT, CHECKPOINT_FORMAT);
  assert.equal(webCheckpoint.CHECKPOINT_VERSION, CHECKPOINT_VERSION);
  for (const size of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
    const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 131 + 7) & 0xff);
    assert.equal(sha256Hex(bytes), createHash("sha256").update(bytes).digest("hex"), `sha256 of ${size} bytes`);
  }
});


// ---- shared by the browser tests ------------------------------------------------------------------------

/** web/dist built once and served from 127.0.0.1 for both browser tests. */
let site: Promise<{ server: Server; url: string }> | null = null;
function builtSite(): Promise<{ server: Server; url: string }> {
  site ??= (async () => {
    const { build } = await import("vite");
    await build({ configFile: join(ROOT, "web/vite.config.ts"), logLevel: "warn" });
    assert.ok(existsSync(join(ROOT, "web/dist/index.html")), "vite build wrote no web/dist/index.html");
    return serve(join(ROOT, "web/dist"));
  })();
  return site;
}

/**
 * Node runs the page's CPU backend too (the CLI's default, `--backend auto`): the WebAssembly one, with as many
 * threads as the browser's navigator.hardwareConcurrency (both are the machine's logical cores).
 */
let nodeWasm: Promise<WasmBackend> | null = null;
async function useNodeWasm(t: TestContext): Promise<void> {
  nodeWasm ??= WasmBackend.create();
  const previous = td.getBackend();
  td.setBackend(await nodeWasm);
  t.after(() => td.setBackend(previous));
}

after(async () => {
  if (site) (await site).server.close();
  if (nodeWasm) (await nodeWasm).dispose();
});

function assertChromium(): void {
  assert.ok(
    existsSync(CHROMIUM),
    `Debian's Chromium is missing (${CHROMIUM}). The web test drives it and never downloads a browser: ` +
      "install it with `apt-get update && apt-get install -y chromium`.",
  );
}

interface Canvas {
  width: number;
  height: number;
  data: number[];
}

interface App {
  context: BrowserContext;
  page: Page;
  /** Page errors, console errors and failed requests seen so far. */
  problems: string[];
  work: string;
  state(name: string): Promise<string>;
  waitFor(what: string, fn: () => boolean, timeout?: number): Promise<void>;
  readCanvas(id: string): Promise<Canvas>;
  /** The float values behind the Generate canvas (window.tinyDiffusion.samples()). */
  samples(): Promise<{ n: number; images: number[] } | null>;
  close(): Promise<void>;
}

/** Chromium with a fresh profile on the built page, with the helpers the tests share. */
async function openApp(args: string[]): Promise<App> {
  const { chromium } = await import("playwright-core");
  const { url } = await builtSite();
  const profile = mkdtempSync(join(tmpdir(), "tiny-diffusion-chromium-"));
  const work = mkdtempSync(join(tmpdir(), "tiny-diffusion-web-test-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 1360, height: 940 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
  const app: App = {
    context, page, problems, work,
    state: (name) => page.evaluate((key) => document.body.dataset[key] ?? "", name),
    async waitFor(what, fn, timeout = 60_000) {
      try {
        await page.waitForFunction(fn, null, { timeout, polling: 50 });
      } catch (e) {
        const status = await page.evaluate(() => ({
          gen: document.getElementById("gen-status")?.textContent, train: document.getElementById("train-status")?.textContent,
          backend: document.getElementById("backend")?.textContent?.replace(/\s+/g, " ").trim(), data: { ...document.body.dataset },
        }));
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status)}; ${problems.join("; ")}\n${(e as Error).message}`);
      }
    },
    readCanvas: (id) => page.evaluate((canvasId) => {
      const c = document.getElementById(canvasId) as HTMLCanvasElement;
      return { width: c.width, height: c.height, data: Array.from(c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data) };
    }, id),
    samples: () => page.evaluate(() => (window as unknown as { tinyDiffusion: { samples(): { n: number; images: number[] } | null } }).tinyDiffusion.samples()),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    },
  };
  await page.goto(url);
  return app;
}

/** The canvas against the pixels gridRgba draws for these images; max channel difference <= 2 (see the callers). */
function compareCanvas(t: TestContext, what: string, got: Canvas, images: Float32Array, n: number): void {
  const expected = gridRgba(images, n);
  assert.equal(got.width, expected.width, `${what}: canvas width`);
  assert.equal(got.height, expected.height, `${what}: canvas height`);
  let maxDiff = 0, differing = 0;
  for (let i = 0; i < got.data.length; i++) {
    const d = Math.abs(got.data[i]! - expected.data[i]!);
    maxDiff = Math.max(maxDiff, d);
    if (d > 0) differing++;
  }
  t.diagnostic(`${what}: max channel difference ${maxDiff}, ${differing} of ${got.data.length} channels differ`);
  assert.ok(maxDiff <= 2, `${what}: the browser's samples match Node's (max channel difference ${maxDiff} > 2)`);
}

type GenerateOptions = { sampler: "ddpm" | "ddim"; steps: number; n: number; seed: number; clip: boolean };

/** Sets the Generate form, presses Generate from the keyboard, waits for the end; returns the canvas. */
async function generateInPage(app: App, o: GenerateOptions, timeout = 60_000): Promise<Canvas> {
  const { page } = app;
  await page.selectOption("#gen-sampler", o.sampler);
  await page.selectOption("#gen-steps", String(o.steps));
  await page.selectOption("#gen-n", String(o.n));
  await page.fill("#gen-seed", String(o.seed));
  await page.setChecked("#gen-clip", o.clip);
  await page.focus("#gen-run");
  await page.keyboard.press("Enter"); // keyboard-operable
  await app.waitFor("generation to finish", () => document.body.dataset.genState === "done", timeout);
  assert.equal(await app.state("genFrames"), String(o.steps + 1), "one frame per step plus the initial noise");
  return app.readCanvas("gen-canvas");
}

/** Fills the Train form and starts; waits until at least `steps` steps ran, pauses, waits for the pause. */
async function trainInPage(app: App, options: TrainOptions, steps: number, timeout = 60_000): Promise<number> {
  const { page } = app;
  await app.waitFor("the digits to load", () => document.body.dataset.trainState === "idle");
  await page.selectOption("#train-digit", String(options.digit));
  await page.selectOption("#train-features", String(options.features));
  await page.selectOption("#train-batch", String(options.batch));
  await page.fill("#train-steps", String(options.steps));
  await page.fill("#train-every", String(options.sampleEvery));
  await page.fill("#train-seed", String(options.seed));
  await page.click("#train-start");
  await page.waitForFunction((n) => Number(document.body.dataset.trainStep ?? 0) >= n, steps, { timeout, polling: 50 });
  await page.click("#train-pause");
  await app.waitFor("training to pause", () => document.body.dataset.trainState === "paused", timeout);
  return Number(await app.state("trainStep"));
}

/** The loss text is a number, the step counter is right, and the chart shows a curve (blue pixels). */
async function checkTrainDisplay(t: TestContext, app: App, pausedAt: number, total: number, minCurve: number): Promise<void> {
  const lossText = (await app.page.textContent("#train-loss")) ?? "";
  assert.ok(Number(lossText) > 0 && Number.isFinite(Number(lossText)), `the loss text shows a number: '${lossText}'`);
  assert.match((await app.page.textContent("#train-step")) ?? "", new RegExp(`^${pausedAt} / ${total}$`));
  const chart = await app.readCanvas("train-chart");
  let curve = 0;
  for (let i = 0; i < chart.data.length; i += 4) if (chart.data[i + 2]! > 150 && chart.data[i]! < 120 && chart.data[i + 3]! > 0) curve++;
  t.diagnostic(`loss chart after ${pausedAt} of ${total} steps: ${curve} blue pixels`);
  assert.ok(curve > minCurve, `the loss chart shows a curve (${curve} blue pixels)`);
}

/** Downloads the checkpoint zip and unpacks it as a CLI run folder; returns the zip's path and the folder. */
async function downloadCheckpoint(app: App): Promise<{ zipPath: string; runDir: string }> {
  const [download] = await Promise.all([app.page.waitForEvent("download"), app.page.click("#train-download")]);
  assert.match(download.suggestedFilename(), /^tiny-diffusion-web-step\d+\.zip$/);
  const zipPath = join(app.work, "checkpoint.zip");
  await download.saveAs(zipPath);
  const runDir = join(app.work, "run");
  for (const f of unzipStore(new Uint8Array(readFileSync(zipPath)))) {
    assert.match(f.name, /^checkpoint\/(checkpoint\.json|model-\d{7}\.safetensors|training-\d{7}\.safetensors)$/);
    mkdirSync(join(runDir, "checkpoint"), { recursive: true });
    writeFileSync(join(runDir, f.name), f.bytes);
  }
  return { zipPath, runDir };
}

/**
 * The same run in Node (on the Wasm backend): the smoothed losses the browser saved should be the same up to
 * float32 rounding. They are not bit-exact even Wasm against Wasm: the kernel gradients' GEMMs with K >= 512 split
 * K into partial sums whose number depends on the thread count, and the Wasm thread pool's contention guard runs
 * jobs on one thread while another process (a full `npm test`, the browser's own workers) takes the cores, so
 * the summation order can differ from step to step; WebGPU sums in yet another order. Adam divides by
 * sqrt(v), so a rounding difference in a small gradient becomes a relative one in its update, and the runs drift
 * apart slowly. Seen: 2e-8 (Wasm, idle machine), 3.4e-5 after 22 steps (Wasm, full suite) on losses ~0.5-1.
 * Bound: relative 1e-4 per step (i + 1 steps in: 1e-4 (i + 1) |loss|), so 2.2e-3 relative at step 22, 30x the
 * worst drift seen, while a real difference (another batch, noise draw or gradient) moves the loss by percents
 * from the first steps on.
 */
async function compareLossesWithNode(t: TestContext, what: string, options: TrainOptions, steps: number, browserLosses: readonly number[]): Promise<void> {
  const nodeRun = newRun(buildTrainConfig(options));
  const data = loadDigitsSplit(options.digit).train;
  try {
    for (let i = 0; i < steps; i++) await trainStep(nodeRun, data);
    let worst = 0, maxDiff = 0;
    for (let i = 0; i < steps; i++) {
      const node = nodeRun.lossHistory[i]!, browser = browserLosses[i]!;
      const diff = Math.abs(node - browser);
      maxDiff = Math.max(maxDiff, diff);
      worst = Math.max(worst, diff / (1e-4 * (i + 1) * Math.abs(node)));
    }
    t.diagnostic(`${what}: ${steps} training steps: max |browser - Node| smoothed loss ${maxDiff.toExponential(2)} (${(100 * worst).toFixed(1)}% of the bound)`);
    assert.ok(worst <= 1, `${what}: the browser trains like Node (max loss difference ${maxDiff.toExponential(2)}, ${worst.toFixed(2)}x the bound 1e-4 (i+1) |loss_i|)`);
  } finally {
    td.dispose([nodeRun.params, nodeRun.optimizer.m, nodeRun.optimizer.v, nodeRun.ema]);
  }
}

/** Named laps in milliseconds, for the diagnostics. */
function stopwatch(): { timings: Record<string, number>; lap: (name: string) => void } {
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string): void => {
    const now = performance.now();
    timings[name] = Math.round(now - mark);
    mark = now;
  };
  return { timings, lap };
}

test("web app in Chromium without WebGPU: the Wasm fallback; generate matches the CLI, train in the tab, download a CLI checkpoint", { timeout: 240_000 }, async (t) => {
  assertChromium();
  const { timings, lap } = stopwatch();

  await builtSite();
  lap("vite build");
  await useNodeWasm(t);

  const app = await openApp(CHROMIUM_ARGS);
  const { page, context, problems, state, waitFor, readCanvas } = app;
  try {
    lap("launch chromium");
    await waitFor("the pretrained model to load", () => document.body.dataset.genState === "ready");
    await waitFor("the training worker's backend", () => !!document.body.dataset.trainBackend);
    lap("page load + model");
    // Everything is fetched at start-up: the rest of the test runs offline.
    await context.setOffline(true);
    const backend = ((await page.textContent("#backend")) ?? "").replace(/\s+/g, " ");
    assert.match(backend, /WebAssembly SIMD/, `the backend badge names the WebAssembly backend: ${backend}`);
    assert.equal(await state("backend"), "wasm", "the engine workers run the WebAssembly backend");
    assert.equal(await state("trainBackend"), "wasm", "the training worker runs the WebAssembly backend");
    // --disable-gpu: navigator.gpu exists but offers no adapter; the badge says so and names the fallback.
    assert.match(backend, /WebGPU is not available: the browser offers no WebGPU adapter.*Falling back to WebAssembly\./,
      `the backend badge says why WebGPU is not used and that the page falls back to WebAssembly: ${backend}`);

    // ---- Generate ----------------------------------------------------------------------------------------
    // 0. Stop interrupts a long run (the worker is replaced) and the page is ready again.
    await page.selectOption("#gen-sampler", "ddpm");
    await page.selectOption("#gen-steps", "1000");
    await page.click("#gen-run");
    await waitFor("a few DDPM frames", () => Number(document.body.dataset.genFrames ?? 0) >= 3);
    await page.click("#gen-stop");
    await waitFor("the sampler to restart after Stop", () => document.body.dataset.genState === "ready");
    lap("start and stop a DDPM 1000 run");

    // 1. Exactly `tiny-diffusion sample` (DDIM, --no-clip): the CLI's own generateImages in Node. Both run the
    //    Wasm backend and the forward pass's products have K < 512 (no split-K): the same sums in the same order,
    //    so the canvas matches to the colour rounding (max channel difference <= 2).
    const n = 16, seed = 7;
    const cliCanvas = await generateInPage(app, { sampler: "ddim", steps: 10, n, seed, clip: false });
    lap("generate in browser (DDIM 10)");
    const cli = await generateImages({ checkpoint: SHIPPED_MODEL, n, seed, steps: 10, sampler: "ddim", clip: false });
    lap("same samples with the CLI's code in Node");
    compareCanvas(t, "DDIM 10 vs tiny-diffusion sample", cliCanvas, cli.images, n);

    // 2. The page's defaults (DDPM 50 steps, predicted x0 clipped): src/diffusion's sample() in Node.
    await page.evaluate(() => {
      const shown = new Set<string>();
      (window as unknown as { __shown: Set<string> }).__shown = shown;
      new MutationObserver(() => shown.add(document.body.dataset.genShown ?? "")).observe(document.body, { attributes: true, attributeFilter: ["data-gen-shown"] });
    });
    const steps = 50;
    const got = await generateInPage(app, { sampler: "ddpm", steps, n, seed, clip: true });
    lap("generate in browser (DDPM 50, clipped)");
    const shown = await page.evaluate(() => [...(window as unknown as { __shown: Set<string> }).__shown].map(Number));
    assert.ok(shown.length >= 10 && shown.includes(0) && shown.includes(steps), `the animation drew noise, intermediate states and the sample: ${shown}`);
    const loaded = loadModel(SHIPPED_MODEL);
    const x = td.tidy(() => sample({
      model: noiseModel(loaded.params), schedule: loaded.schedule, sampler: { kind: "ddpm", steps }, shape: [n, 8, 8, 1],
      key: td.random.key(seed), clipDenoised: true,
    }));
    const reference = Float32Array.from(await x.read(), (v) => Math.min(1, Math.max(0, v)));
    td.dispose([x, loaded.params]);
    lap("same samples in Node");
    compareCanvas(t, "DDPM 50 clipped vs sample()", got, reference, n);

    const tiles = tilesFromCanvas(got.data, got.width, n);
    const ink = tiles.filter((v) => v > 0.5).length / tiles.length;
    const corr = neighbourCorrelation(tiles);
    t.diagnostic(`final samples: ink fraction ${ink.toFixed(3)}, neighbour correlation ${corr.toFixed(3)}`);
    assert.ok(ink > 0.05 && ink < 0.6, `samples are not blank or solid (ink fraction ${ink.toFixed(3)})`);
    assert.ok(corr > 0.4, `samples have strokes, not noise (neighbour correlation ${corr.toFixed(3)})`);

    // The slider shows the real initial state: noise.
    const scrubTo = (value: "0" | "max") => page.$eval("#gen-frame", (el, v) => {
      const input = el as HTMLInputElement;
      input.value = v === "max" ? input.max : v;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }, value);
    await scrubTo("0");
    const noise = tilesFromCanvas((await readCanvas("gen-canvas")).data, got.width, n);
    const noiseCorr = neighbourCorrelation(noise);
    t.diagnostic(`initial frame: neighbour correlation ${noiseCorr.toFixed(3)}`);
    assert.ok(Math.abs(noiseCorr) < 0.15, `frame 0 is noise (neighbour correlation ${noiseCorr.toFixed(3)})`);
    await scrubTo("max");

    // ---- Train -----------------------------------------------------------------------------------------
    const options: TrainOptions = { digit: 1, features: 4, batch: 16, steps: 100, seed: 0, sampleEvery: 50 };
    const pausedAt = await trainInPage(app, options, 10);
    lap("train to pause in browser");
    await checkTrainDisplay(t, app, pausedAt, options.steps, 50);

    // Download: a zip with the CLI's checkpoint folder.
    const { zipPath, runDir } = await downloadCheckpoint(app);
    const saved = loadCheckpoint<TrainConfig, TrainingCheckpointState>(join(runDir, "checkpoint"), { withTraining: true });
    assert.equal(saved.manifest.step, pausedAt, "the checkpoint holds the step training paused at");
    assert.deepEqual(saved.manifest.config, buildTrainConfig(options));
    td.dispose([...saved.model.values(), ...saved.training.values()]);
    const downloaded = loadModel(runDir);
    assert.ok(downloaded.usedEma, "the CLI samples the downloaded run with its EMA weights");
    td.dispose(downloaded.params);

    // The same run in Node gives the same losses, to float32 rounding (see compareLossesWithNode).
    await compareLossesWithNode(t, "Wasm", options, pausedAt, saved.manifest.state.lossHistory);
    // ...and `tiny-diffusion train --resume` continues it.
    const resumed = await runTraining({ preset: "quick", out: runDir, resume: true, steps: pausedAt + 1, progress: false, log: () => {} });
    assert.equal(resumed.run.step, pausedAt + 1);
    lap("check the download in Node");

    // The trained weights go to the Generate panel; a checkpoint picked as files loads too; then back.
    const modelInfo = () => page.textContent("#model-info").then((x) => x ?? "");
    await page.click("#train-use");
    await waitFor("the trained model in Generate", () => (document.getElementById("model-info")?.textContent ?? "").includes("trained in this tab"));
    assert.match(await modelInfo(), new RegExp(`trained ${pausedAt} steps on digit 1, EMA weights`));
    const pickedDir = join(app.work, "picked");
    mkdirSync(pickedDir);
    const files = unzipStore(new Uint8Array(readFileSync(zipPath))).map((f) => {
      const path = join(pickedDir, f.name.slice("checkpoint/".length));
      writeFileSync(path, f.bytes);
      return path;
    });
    await page.click(".load summary");
    // A checkpoint without its data file is refused with a clear message; the model in use stays.
    await page.setInputFiles("#gen-files", files.filter((f) => f.endsWith("checkpoint.json")));
    await waitFor("the incomplete checkpoint to be refused", () => document.body.dataset.genState === "error");
    assert.match((await page.textContent("#gen-status")) ?? "", /missing data file model-\d{7}\.safetensors/);
    assert.equal(await page.isEnabled("#gen-run"), true, "Generate still works after a refused checkpoint");
    await page.setInputFiles("#gen-files", files);
    await waitFor("the picked checkpoint in Generate", () => (document.getElementById("model-info")?.textContent ?? "").startsWith("Your checkpoint"));
    await page.click("#gen-shipped");
    await waitFor("the pretrained model again", () => (document.getElementById("model-info")?.textContent ?? "").startsWith("Pretrained model"));
    await page.click(".load summary");
    lap("switch models");

    // Resume in the page and train to the end.
    await page.click("#train-pause");
    await waitFor("training to finish", () => document.body.dataset.trainState === "done" && document.body.dataset.trainSamplesStep === "100", 90_000);
    lap("train to the end in browser");
    assert.equal(await state("trainStep"), String(options.steps));

    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: process.env.UPDATE_SCREENSHOT ? join(ROOT, "web/screenshot.png") : join(tmpdir(), "tiny-diffusion-web.png"), fullPage: true });
    lap("screenshot");
    assert.deepEqual(problems, [], `the page logged no errors: ${problems.join("; ")}`);
    t.diagnostic(`timings (ms): ${JSON.stringify(timings)}`);
  } finally {
    await app.close();
  }
});

test("web app in Chromium with WebGPU (SwiftShader): the adapter is named, samples match the CLI, training runs", { timeout: 300_000 }, async (t) => {
  assertChromium();
  const { timings, lap } = stopwatch();
  await builtSite();
  await useNodeWasm(t);
  const app = await openApp(WEBGPU_ARGS);
  const { page, problems, state, waitFor } = app;
  try {
    await waitFor("the pretrained model to load", () => document.body.dataset.genState === "ready");
    await waitFor("the training worker's backend", () => !!document.body.dataset.trainBackend);
    lap("launch + page load + model");
    const backend = ((await page.textContent("#backend")) ?? "").replace(/\s+/g, " ");
    assert.equal(await state("backend"), "webgpu",
      `with ${WEBGPU_ARGS.slice(CHROMIUM_ARGS.length).join(" ")} Chromium offers SwiftShader's WebGPU adapter and the page uses it: ${backend}`);
    assert.equal(await state("trainBackend"), "webgpu", "the training worker runs WebGPU too");
    assert.match(backend, /WebGPU Adapter: .*swiftshader.*\(browser, core, software\)/i, `the badge names the adapter: ${backend}`);
    assert.match(backend, /software renderer/, `the badge says the adapter is a software one: ${backend}`);
    t.diagnostic(`badge: ${backend}`);

    // Generate on the GPU: DDIM 10 without clipping is `tiny-diffusion sample`; compared with the CLI's code in
    // Node (Wasm backend) through the values behind the canvas.
    const n = 4, seed = 7;
    const canvas = await generateInPage(app, { sampler: "ddim", steps: 10, n, seed, clip: false }, 120_000);
    lap("generate in browser on WebGPU (DDIM 10, 4 samples)");
    const cli = await generateImages({ checkpoint: SHIPPED_MODEL, n, seed, steps: 10, sampler: "ddim", clip: false });
    const gpu = await app.samples();
    assert.ok(gpu && gpu.n === n && gpu.images.length === n * 64, "the page exposes the generated values");
    let maxDiff = 0;
    for (let i = 0; i < n * 64; i++) maxDiff = Math.max(maxDiff, Math.abs(gpu.images[i]! - cli.images[i]!));
    t.diagnostic(`DDIM 10 on WebGPU vs tiny-diffusion sample (Wasm): max |difference| ${maxDiff.toExponential(2)} (pixel/16 units, values in [0, 1])`);
    // float32 on both sides. Measured: 0 (SwiftShader's shaders add each product's terms in the Wasm kernels'
    // order, without FMA). Another adapter may sum in another order or fuse multiply-adds: ~1e-7 relative per
    // product, amplified by DDIM's x0 prediction (a division by sqrt(abar_t)) over 10 steps to ~1e-5. The bound,
    // 1e-3 (a quarter of one 8-bit grey level), leaves room for that and still fails on any real mistake (a wrong
    // kernel moves samples by 1e-2 and more).
    assert.ok(maxDiff <= 1e-3, `WebGPU samples equal the CLI's to float32 rounding (max difference ${maxDiff} > 1e-3)`);
    compareCanvas(t, "DDIM 10 on WebGPU vs tiny-diffusion sample", canvas, cli.images, n);

    // Train a few steps on the GPU: the loss chart updates, and the downloaded run's losses match Node's.
    // Pause at 3 of 8 steps: the end (and its 16-sample preview, ~20 s on SwiftShader) stays ~15 s away.
    const options: TrainOptions = { digit: 1, features: 4, batch: 8, steps: 8, seed: 0, sampleEvery: 0 };
    const pausedAt = await trainInPage(app, options, 3, 180_000);
    lap(`train ${pausedAt} steps in browser on WebGPU`);
    await checkTrainDisplay(t, app, pausedAt, options.steps, 30);
    const { runDir } = await downloadCheckpoint(app);
    const saved = loadCheckpoint<TrainConfig, TrainingCheckpointState>(join(runDir, "checkpoint"), { withTraining: true });
    assert.equal(saved.manifest.step, pausedAt, "the checkpoint holds the step training paused at");
    td.dispose([...saved.model.values(), ...saved.training.values()]);
    await compareLossesWithNode(t, "WebGPU", options, pausedAt, saved.manifest.state.lossHistory);
    lap("download + the same steps in Node");

    // The backend select: switching restarts both engines (after a confirmation, as the run in the tab is lost)
    // and reloads the model in use; the choice goes into the address (?backend=wasm).
    page.once("dialog", (dialog) => void dialog.accept());
    await page.selectOption("#backend-choice", "wasm");
    await waitFor("the engines on WebAssembly", () => document.body.dataset.backend === "wasm" && document.body.dataset.trainBackend === "wasm" &&
      document.body.dataset.genState === "ready" && document.body.dataset.trainState === "idle");
    const switched = ((await page.textContent("#backend")) ?? "").replace(/\s+/g, " ");
    assert.match(switched, /WebAssembly SIMD.*WebGPU is not used \(backend set to wasm\)/, `the badge after switching: ${switched}`);
    assert.equal(new URL(page.url()).searchParams.get("backend"), "wasm");
    assert.equal(await page.textContent("#train-step"), "–", "the run in the tab is gone");
    lap("switch to WebAssembly");
    assert.deepEqual(problems, [], `the page logged no errors: ${problems.join("; ")}`);
    t.diagnostic(`timings (ms): ${JSON.stringify(timings)}`);
  } finally {
    await app.close();
  }
});
