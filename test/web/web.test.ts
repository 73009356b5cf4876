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
//  * Takes a screenshot: into the temp folder, or over web/screenshot.png with UPDATE_SCREENSHOT=1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
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
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-quic",
];
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

test("web app in Chromium: generate matches the CLI, train in the tab, download a CLI checkpoint", { timeout: 240_000 }, async (t) => {
  assert.ok(
    existsSync(CHROMIUM),
    `Debian's Chromium is missing (${CHROMIUM}). The web test drives it and never downloads a browser: ` +
      "install it with `apt-get update && apt-get install -y chromium`.",
  );
  const { chromium } = await import("playwright-core");
  const { build } = await import("vite");
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = Math.round(now - mark);
    mark = now;
  };

  await build({ configFile: join(ROOT, "web/vite.config.ts"), logLevel: "warn" });
  lap("vite build");
  assert.ok(existsSync(join(ROOT, "web/dist/index.html")), "vite build wrote no web/dist/index.html");

  // Node runs the page's backend too (the CLI's default, `--backend auto`): the WebAssembly one, with as many
  // threads as the browser's navigator.hardwareConcurrency (both are the machine's logical cores).
  const previousBackend = td.getBackend();
  const nodeWasm = await WasmBackend.create();
  td.setBackend(nodeWasm);
  t.after(() => {
    td.setBackend(previousBackend);
    nodeWasm.dispose();
  });

  const { server, url } = await serve(join(ROOT, "web/dist"));
  const profile = mkdtempSync(join(tmpdir(), "tiny-diffusion-chromium-"));
  const work = mkdtempSync(join(tmpdir(), "tiny-diffusion-web-test-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 940 },
    acceptDownloads: true,
  });
  try {
    lap("launch chromium");
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console error: ${m.text()}`);
    });
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
    const state = (name: string) => page.evaluate((key) => document.body.dataset[key] ?? "", name);
    const waitFor = async (what: string, fn: () => boolean, timeout = 60_000) => {
      try {
        await page.waitForFunction(fn, null, { timeout, polling: 50 });
      } catch (e) {
        const status = await page.evaluate(() => ({
          gen: document.getElementById("gen-status")?.textContent, train: document.getElementById("train-status")?.textContent,
          data: { ...document.body.dataset },
        }));
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status)}; ${problems.join("; ")}\n${(e as Error).message}`);
      }
    };

    await page.goto(url);
    await waitFor("the pretrained model to load", () => document.body.dataset.genState === "ready");
    lap("page load + model");
    // Everything is fetched at start-up: the rest of the test runs offline.
    await context.setOffline(true);
    const backend = (await page.textContent("#backend")) ?? "";
    assert.match(backend, /WebAssembly SIMD/, `the backend badge names the WebAssembly backend: ${backend}`);
    assert.equal(await state("backend"), "wasm", "the engine workers run the WebAssembly backend");
    assert.match(backend, /WebGPU is not used yet/, `the backend badge says WebGPU is not used yet: ${backend}`);

    // ---- Generate ----------------------------------------------------------------------------------------
    const readCanvas = (id: string) => page.evaluate((canvasId) => {
      const c = document.getElementById(canvasId) as HTMLCanvasElement;
      return { width: c.width, height: c.height, data: Array.from(c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data) };
    }, id);
    const compare = (what: string, got: { width: number; height: number; data: number[] }, images: Float32Array, n: number) => {
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
    };
    const generateInPage = async (o: { sampler: "ddpm" | "ddim"; steps: number; n: number; seed: number; clip: boolean }) => {
      await page.selectOption("#gen-sampler", o.sampler);
      await page.selectOption("#gen-steps", String(o.steps));
      await page.selectOption("#gen-n", String(o.n));
      await page.fill("#gen-seed", String(o.seed));
      await page.setChecked("#gen-clip", o.clip);
      await page.focus("#gen-run");
      await page.keyboard.press("Enter"); // keyboard-operable
      await waitFor("generation to finish", () => document.body.dataset.genState === "done");
      assert.equal(await state("genFrames"), String(o.steps + 1), "one frame per step plus the initial noise");
      return readCanvas("gen-canvas");
    };

    // 0. Stop interrupts a long run (the worker is replaced) and the page is ready again.
    await page.selectOption("#gen-sampler", "ddpm");
    await page.selectOption("#gen-steps", "1000");
    await page.click("#gen-run");
    await waitFor("a few DDPM frames", () => Number(document.body.dataset.genFrames ?? 0) >= 3);
    await page.click("#gen-stop");
    await waitFor("the sampler to restart after Stop", () => document.body.dataset.genState === "ready");
    lap("start and stop a DDPM 1000 run");

    // 1. Exactly `tiny-diffusion sample` (DDIM, --no-clip): the CLI's own generateImages in Node.
    const n = 16, seed = 7;
    const cliCanvas = await generateInPage({ sampler: "ddim", steps: 10, n, seed, clip: false });
    lap("generate in browser (DDIM 10)");
    const cli = generateImages({ checkpoint: SHIPPED_MODEL, n, seed, steps: 10, sampler: "ddim", clip: false });
    lap("same samples with the CLI's code in Node");
    compare("DDIM 10 vs tiny-diffusion sample", cliCanvas, cli.images, n);

    // 2. The page's defaults (DDPM 50 steps, predicted x0 clipped): src/diffusion's sample() in Node.
    await page.evaluate(() => {
      const shown = new Set<string>();
      (window as unknown as { __shown: Set<string> }).__shown = shown;
      new MutationObserver(() => shown.add(document.body.dataset.genShown ?? "")).observe(document.body, { attributes: true, attributeFilter: ["data-gen-shown"] });
    });
    const steps = 50;
    const got = await generateInPage({ sampler: "ddpm", steps, n, seed, clip: true });
    lap("generate in browser (DDPM 50, clipped)");
    const shown = await page.evaluate(() => [...(window as unknown as { __shown: Set<string> }).__shown].map(Number));
    assert.ok(shown.length >= 10 && shown.includes(0) && shown.includes(steps), `the animation drew noise, intermediate states and the sample: ${shown}`);
    const loaded = loadModel(SHIPPED_MODEL);
    const reference = td.tidy(() => {
      const x = sample({
        model: noiseModel(loaded.params), schedule: loaded.schedule, sampler: { kind: "ddpm", steps }, shape: [n, 8, 8, 1],
        key: td.random.key(seed), clipDenoised: true,
      });
      return Float32Array.from(x.data, (v) => Math.min(1, Math.max(0, v)));
    });
    td.dispose(loaded.params);
    lap("same samples in Node");
    compare("DDPM 50 clipped vs sample()", got, reference, n);

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
    await waitFor("the digits to load", () => document.body.dataset.trainState === "idle");
    await page.selectOption("#train-digit", String(options.digit));
    await page.selectOption("#train-features", String(options.features));
    await page.selectOption("#train-batch", String(options.batch));
    await page.fill("#train-steps", String(options.steps));
    await page.fill("#train-every", String(options.sampleEvery));
    await page.fill("#train-seed", String(options.seed));
    await page.click("#train-start");
    await waitFor("10 training steps", () => Number(document.body.dataset.trainStep ?? 0) >= 10);
    await page.click("#train-pause");
    await waitFor("training to pause", () => document.body.dataset.trainState === "paused");
    lap("train to pause in browser");
    const pausedAt = Number(await state("trainStep"));
    const lossText = (await page.textContent("#train-loss")) ?? "";
    assert.ok(Number(lossText) > 0 && Number.isFinite(Number(lossText)), `the loss text shows a number: '${lossText}'`);
    assert.match((await page.textContent("#train-step")) ?? "", new RegExp(`^${pausedAt} / ${options.steps}$`));
    const chart = await readCanvas("train-chart");
    let curve = 0;
    for (let i = 0; i < chart.data.length; i += 4) if (chart.data[i + 2]! > 150 && chart.data[i]! < 120 && chart.data[i + 3]! > 0) curve++;
    assert.ok(curve > 50, `the loss chart shows a curve (${curve} blue pixels)`);

    // Download: a zip with the CLI's checkpoint folder.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#train-download")]);
    assert.match(download.suggestedFilename(), /^tiny-diffusion-web-step\d+\.zip$/);
    const zipPath = join(work, "checkpoint.zip");
    await download.saveAs(zipPath);
    const runDir = join(work, "run");
    for (const f of unzipStore(new Uint8Array(readFileSync(zipPath)))) {
      assert.match(f.name, /^checkpoint\/(checkpoint\.json|model-\d{7}\.safetensors|training-\d{7}\.safetensors)$/);
      mkdirSync(join(runDir, "checkpoint"), { recursive: true });
      writeFileSync(join(runDir, f.name), f.bytes);
    }
    const saved = loadCheckpoint<TrainConfig, TrainingCheckpointState>(join(runDir, "checkpoint"), { withTraining: true });
    assert.equal(saved.manifest.step, pausedAt, "the checkpoint holds the step training paused at");
    assert.deepEqual(saved.manifest.config, buildTrainConfig(options));
    td.dispose([...saved.model.values(), ...saved.training.values()]);
    const downloaded = loadModel(runDir);
    assert.ok(downloaded.usedEma, "the CLI samples the downloaded run with its EMA weights");
    td.dispose(downloaded.params);

    // The same run in Node gives the same losses (both run the trainer on the WebAssembly backend; the kernel
    // gradients' split-K depends on the thread count and the contention guard, so allow rounding: 1e-5).
    const nodeRun = newRun(buildTrainConfig(options));
    const data = loadDigitsSplit(options.digit).train;
    for (let i = 0; i < pausedAt; i++) trainStep(nodeRun, data);
    let lossDiff = 0;
    for (let i = 0; i < pausedAt; i++) lossDiff = Math.max(lossDiff, Math.abs(nodeRun.lossHistory[i]! - saved.manifest.state.lossHistory[i]!));
    t.diagnostic(`${pausedAt} training steps: max |browser - Node| smoothed loss ${lossDiff.toExponential(2)}`);
    assert.ok(lossDiff < 1e-5, `the browser trains like Node (max loss difference ${lossDiff})`);
    td.dispose([nodeRun.params, nodeRun.optimizer.m, nodeRun.optimizer.v, nodeRun.ema]);
    // ...and `tiny-diffusion train --resume` continues it.
    const resumed = runTraining({ preset: "quick", out: runDir, resume: true, steps: pausedAt + 1, progress: false, log: () => {} });
    assert.equal(resumed.run.step, pausedAt + 1);
    lap("check the download in Node");

    // The trained weights go to the Generate panel; a checkpoint picked as files loads too; then back.
    const modelInfo = () => page.textContent("#model-info").then((x) => x ?? "");
    await page.click("#train-use");
    await waitFor("the trained model in Generate", () => (document.getElementById("model-info")?.textContent ?? "").includes("trained in this tab"));
    assert.match(await modelInfo(), new RegExp(`trained ${pausedAt} steps on digit 1, EMA weights`));
    const pickedDir = join(work, "picked");
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
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
