// Sampling on the WebGpuBackend: DDPM, DDIM and classifier-free guidance with a small U-Net (features 4) give
// the reference CPU backend's images, same seed, within float32 tolerances (stated at each assertion, with the
// errors measured on Mesa lavapipe); intermediate states read from onStep callbacks and sampleWithSnapshots'
// copies too. The run pictures and the evaluation classifier on webgpu equal the CPU backend's. Then the CLI
// end to end: `sample --backend webgpu` writes the .npy that `--backend cpu` writes, within tolerance, and a
// bad adapter setting is a one-line error with a non-zero exit.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { initUNet, unetForward, type Timesteps, type UNetParams } from "../../src/nn/unet.ts";
import { sample, sampleWithSnapshots, type NoiseModel, type SampleOptions, type TimestepTensorModel } from "../../src/diffusion/sample.ts";
import { makeSchedule } from "../../src/diffusion/schedules.ts";
import type { SamplerConfig } from "../../src/diffusion/samplers.ts";
import { decodeNpy } from "../../src/io/npy.ts";
import { writeRunPictures } from "../../src/cli/pictures.ts";
import type { TrainingRun } from "../../src/train/trainer.ts";
import type { TrainConfig } from "../../src/train/config.ts";
import { decode } from "fast-png";
import { loadShippedClassifier } from "../../src/eval/classifier-node.ts";
import { loadDigitsSplit } from "../../src/data/digits-node.ts";
import { webgpuBackend } from "./helpers.ts";

after(() => td.setBackend(new CpuBackend()));

const schedule = makeSchedule({ kind: "cosine", numSteps: 50 });
const conditionalConfig = { inChannels: 1, outChannels: 1, features: 4, timeEmbDim: 16, numClasses: 10 };
const plainConfig = { inChannels: 1, outChannels: 1, features: 4, timeEmbDim: 16 };

interface Sampled {
  final: Float32Array;
  /** onStep's x of every step, read in the callback (read() takes its copy at call time). */
  steps: Float32Array[];
}

/** Samples on `backend` with a freshly initialized model (same key, so the same weights on every backend). */
async function sampleOn(backend: td.Backend, config: typeof plainConfig & { numClasses?: number }, options: Omit<SampleOptions, "model" | "schedule" | "key">, replay = false): Promise<Sampled> {
  td.setBackend(backend);
  try {
    const params: UNetParams = initUNet(config, td.random.key(11));
    const model: NoiseModel & TimestepTensorModel = (x: td.Tensor, t: Timesteps, labels?: Int32Array) => unetForward(params, x, t, { labels });
    const reads: Promise<td.TypedArray>[] = [];
    const x = td.tidy(() => sample({
      ...options, model, replayModel: replay ? model : undefined, schedule, key: td.random.key(5), onStep: (info) => void reads.push(info.x.read()),
    }));
    const final = Float32Array.from(await x.read());
    x.dispose();
    td.dispose(params);
    const steps = (await Promise.all(reads)).map((v) => Float32Array.from(v));
    return { final, steps };
  } finally {
    td.setBackend(new CpuBackend());
  }
}

/** max |a - b| */
function maxError(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Compares a run on the GPU with the reference; returns the worst error over the final image and every step. */
function compareRuns(got: Sampled, ref: Sampled, what: string, tolerance: number): number {
  assert.equal(got.steps.length, ref.steps.length, `${what}: steps`);
  for (const v of [...got.steps, got.final]) for (const x of v) assert.ok(Number.isFinite(x), `${what}: non-finite value`);
  const final = maxError(got.final, ref.final);
  const worstStep = Math.max(...got.steps.map((s, i) => maxError(s, ref.steps[i]!)));
  const range = Math.max(...ref.steps.map(maxAbs));
  console.log(`# ${what}: max |gpu - cpu| final ${final.toExponential(2)}, over all steps ${worstStep.toExponential(2)} (states up to |${range.toFixed(2)}|)`);
  assert.ok(final <= tolerance, `${what}: final images differ by ${final} > ${tolerance}`);
  assert.ok(worstStep <= tolerance, `${what}: an intermediate state differs by ${worstStep} > ${tolerance}`);
  return final;
}

/** sampleWithSnapshots on `backend` (DDPM, T=50, 2 images): the final sample, then the snapshots at 49, 30, 10, -1. */
async function snapshotsOn(backend: td.Backend, replay: boolean): Promise<Float32Array[]> {
  td.setBackend(backend);
  try {
    const params = initUNet(plainConfig, td.random.key(11));
    const model = (x: td.Tensor, t: Timesteps): td.Tensor => unetForward(params, x, t);
    const { sample: x, snapshots } = sampleWithSnapshots({
      model, replayModel: replay ? model : undefined, schedule, sampler: { kind: "ddpm" }, shape: [2, 8, 8, 1], key: td.random.key(9), clipDenoised: true,
    }, [49, 30, 10, -1]);
    assert.equal(snapshots[0]!.x.isHost, backend instanceof CpuBackend, "the copies live where the sampler ran");
    const values = await Promise.all([x, ...snapshots.map((s) => s.x)].map(async (t) => Float32Array.from(await t.read())));
    td.dispose([x, ...snapshots.map((s) => s.x), params]);
    return values;
  } finally {
    td.setBackend(new CpuBackend());
  }
}

describe("sampling on webgpu equals the reference CPU backend", () => {
  const shape = [4, 8, 8, 1];

  test("DDPM, all 50 steps of a T=50 cosine schedule (clipped x0, fresh noise z each step)", async () => {
    const gpu = await webgpuBackend();
    const options = { sampler: { kind: "ddpm" } as SamplerConfig, shape, clipDenoised: true };
    const ref = await sampleOn(new CpuBackend(), plainConfig, options);
    const got = await sampleOn(gpu, plainConfig, options);
    // float32 on both sides, same noise (drawn on the host, uploaded); the model's sums run in another order on
    // the GPU and WGSL's exp/tanh are a few ulp off, so each eps differs by ~1e-7..1e-6; 50 steps of
    // x_{t-1} = c1 x0 + c2 x_t + sigma z carry those errors along without growth (c2 < 1, x0 clipped to [0, 1]).
    // Measured on lavapipe: 3.9e-7 final, 4.8e-7 worst intermediate state (states up to |3.5|). Bound:
    // 1e-5, 20x that, for other GPUs' rounding.
    compareRuns(got, ref, "DDPM 50", 1e-5);
  });

  test("DDIM (10 of 50 steps, eta 0) and DDIM with eta 0.5", async () => {
    const gpu = await webgpuBackend();
    for (const sampler of [{ kind: "ddim", steps: 10 }, { kind: "ddim", steps: 10, eta: 0.5 }] as SamplerConfig[]) {
      const options = { sampler, shape, clipDenoised: true };
      const ref = await sampleOn(new CpuBackend(), plainConfig, options);
      const got = await sampleOn(gpu, plainConfig, options);
      // As DDPM above, over 10 steps. Measured on lavapipe: 1.5e-7 (eta 0), 3.3e-7 final and 4.8e-7 worst
      // state (eta 0.5).
      compareRuns(got, ref, `DDIM 10 eta ${sampler.eta ?? 0}`, 1e-5);
    }
  });

  test("classifier-free guidance (w = 2) with a class-conditional model, labels on the device", async () => {
    const gpu = await webgpuBackend();
    const options = { sampler: { kind: "ddim", steps: 10 } as SamplerConfig, shape, clipDenoised: true, labels: [3, 0, 9, 3], guidanceScale: 2 };
    const ref = await sampleOn(new CpuBackend(), conditionalConfig, options);
    const got = await sampleOn(gpu, conditionalConfig, options);
    // eps = eps_u + 2 (eps_c - eps_u) at most triples the model's rounding differences. Measured on
    // lavapipe: 1.9e-7.
    compareRuns(got, ref, "DDIM 10 guided w=2", 1e-5);
  });

  test("sampleWithSnapshots keeps engine copies on the device, equal to the reference's", async () => {
    const gpu = await webgpuBackend();
    const run = (backend: td.Backend) => snapshotsOn(backend, false);
    const live = td.memory().tensors;
    const ref = await run(new CpuBackend());
    const got = await run(gpu);
    assert.equal(td.memory().tensors, live, "every tensor disposed");
    assert.deepEqual(ref[0], ref[4], "the -1 snapshot is the final sample");
    // The first snapshot (t = 49) is the initial noise: generated on the host, uploaded, copied: exact.
    assert.deepEqual(got[1], ref[1]);
    // As the DDPM test above (the same sampler and schedule).
    got.forEach((g, i) => assert.ok(maxError(g, ref[i]!) <= 1e-5, `state ${i}: ${maxError(g, ref[i]!)}`));
  });
});

describe("replayed sampling (one step captured, replayed for the rest) equals the reference CPU backend", () => {
  const shape = [4, 8, 8, 1];
  // Each case as the eager tests above, now with replayModel: a step's scalars, timesteps and noise are the
  // replay's inputs. Clipped: the same tolerance as there (1e-5; the replayed step runs the eager step's ops
  // on the same values). Unclipped, this untrained model's states grow to |3400| (1/sqrt(alpha_t) reaches ~30
  // at the cosine schedule's noisy end), so float32 rounding differences grow with them: measured on lavapipe
  // 1.2e-3 (DDPM) and 4.9e-4 (DDIM) at |3400|, i.e. 3.6e-7 of the states' range; bound 5e-3 (1.5e-6 of it).
  const cases: { what: string; config: typeof conditionalConfig | typeof plainConfig; options: Omit<SampleOptions, "model" | "schedule" | "key">; tolerance: number }[] = [
    { what: "DDPM 50, unclipped (the tutorial's update; no noise at the last step)", config: plainConfig, options: { sampler: { kind: "ddpm" }, shape }, tolerance: 5e-3 },
    { what: "DDPM 50, clipped x0", config: plainConfig, options: { sampler: { kind: "ddpm" }, shape, clipDenoised: true }, tolerance: 1e-5 },
    { what: "DDIM 10 eta 0 (no noise input)", config: plainConfig, options: { sampler: { kind: "ddim", steps: 10 }, shape, clipDenoised: true }, tolerance: 1e-5 },
    { what: "DDIM 10 eta 0.5, unclipped", config: plainConfig, options: { sampler: { kind: "ddim", steps: 10, eta: 0.5 }, shape }, tolerance: 5e-3 },
    {
      what: "DDIM 10 guided w=2", config: conditionalConfig, tolerance: 1e-5,
      options: { sampler: { kind: "ddim", steps: 10 }, shape, clipDenoised: true, labels: [3, 0, 9, 3], guidanceScale: 2 },
    },
  ];
  for (const { what, config, options, tolerance } of cases) {
    test(what, async () => {
      const gpu = await webgpuBackend();
      const ref = await sampleOn(new CpuBackend(), config, options);
      const before = gpu.stats();
      const got = await sampleOn(gpu, config, options, true);
      const after = gpu.stats();
      compareRuns(got, ref, `replayed ${what}`, tolerance);
      // The mechanism: each replay is one submit (and each onStep read one more).
      const steps = got.steps.length;
      console.log(`# replayed ${what}: ${after.dispatches - before.dispatches} dispatches, ${after.bindGroupsCreated - before.bindGroupsCreated} bind groups created, ${after.submits - before.submits} submits for ${steps} steps`);
      assert.ok(after.submits - before.submits <= 2 * steps + 6, `submits: ${after.submits - before.submits} for ${steps} steps`);
      // Nothing left pending once the sample is read and disposed (deferred ops, producers, expressions).
      const left = after.flips.pending + after.upsamples.pending + after.slices.pending + after.producers.pending + (after.fusion?.pending ?? 0);
      assert.equal(left, 0, "pending after sampling");
    });
  }

  test("without onStep, replayed steps share submits (8 per submit); the same final sample", async () => {
    const gpu = await webgpuBackend();
    const final = async (backend: td.Backend): Promise<{ values: Float32Array; submits: number }> => {
      td.setBackend(backend);
      try {
        const params = initUNet(plainConfig, td.random.key(11));
        const model = (x: td.Tensor, t: Timesteps): td.Tensor => unetForward(params, x, t);
        const before = backend instanceof CpuBackend ? 0 : gpu.stats().submits;
        const x = sample({ model, replayModel: model, schedule, sampler: { kind: "ddpm" }, shape: [3, 8, 8, 1], key: td.random.key(12), clipDenoised: true });
        const values = Float32Array.from(await x.read());
        const submits = backend instanceof CpuBackend ? 0 : gpu.stats().submits - before;
        td.dispose([x, params]);
        return { values, submits };
      } finally {
        td.setBackend(new CpuBackend());
      }
    };
    const ref = await final(new CpuBackend());
    const got = await final(gpu);
    // 50 steps: the capture, 49 replays in submits of 8, the final copy's read.
    assert.ok(got.submits <= 12, `submits: ${got.submits} for 50 steps`);
    // As the replayed DDPM 50 clipped case above.
    assert.ok(maxError(got.values, ref.values) <= 1e-5, `final sample differs by ${maxError(got.values, ref.values)}`);
  });

  test("the replayed steps create no bind groups and record no frontend work", async () => {
    const gpu = await webgpuBackend();
    td.setBackend(gpu);
    try {
      const params = initUNet(plainConfig, td.random.key(11));
      const model = (x: td.Tensor, t: Timesteps): td.Tensor => unetForward(params, x, t);
      const created: number[] = [];
      const liveDuring: number[] = [];
      const x = sample({
        model, replayModel: model, schedule, sampler: { kind: "ddpm" }, shape: [2, 8, 8, 1], key: td.random.key(3),
        onStep: () => {
          created.push(gpu.stats().bindGroupsCreated);
          liveDuring.push(td.memory().tensors);
        },
      });
      assert.equal(created.length, 50);
      assert.equal(created[49], created[1], "no bind group created after the captured step");
      assert.ok(liveDuring.every((n) => n === liveDuring[0]), "no tensors made per step");
      const values = await x.read();
      assert.ok(values.every(Number.isFinite));
      td.dispose([x, params]);
    } finally {
      td.setBackend(new CpuBackend());
    }
  });

  test("sampleWithSnapshots with replayModel: the snapshots are copies taken at their step", async () => {
    const gpu = await webgpuBackend();
    const run = (backend: td.Backend) => snapshotsOn(backend, true);
    const live = td.memory().tensors;
    const ref = await run(new CpuBackend());
    const got = await run(gpu);
    assert.equal(td.memory().tensors, live, "every tensor disposed");
    // Distinct states (a snapshot that aliased the step's output would equal the final sample).
    assert.ok(maxError(got[2]!, got[0]!) > 0.01, "t = 30 differs from the final sample");
    got.forEach((g, i) => assert.ok(maxError(g, ref[i]!) <= 1e-5, `state ${i}: ${maxError(g, ref[i]!)}`));
  });
});

test("writeRunPictures (what train writes after training) on webgpu draws the CPU backend's pictures", async () => {
  const gpu = await webgpuBackend();
  const dir = mkdtempSync(join(tmpdir(), "td-webgpu-pictures-"));
  try {
    const draw = async (backend: td.Backend, name: string): Promise<Map<string, Uint8Array>> => {
      td.setBackend(backend);
      try {
        const params = initUNet(plainConfig, td.random.key(11));
        // A run as trainer.ts leaves it, reduced to what the pictures use: the digit, the losses, the schedule
        // (T = 40: 40 DDPM steps) and the weights.
        const run = { config: { digit: 1 } as TrainConfig, schedule: makeSchedule({ kind: "cosine", numSteps: 40 }), params, optimizer: {}, ema: null, step: 3, lossHistory: [0.9, 0.7, 0.6] } as unknown as TrainingRun;
        const lines: string[] = [];
        const written = await writeRunPictures(join(dir, name), run, { log: (l) => lines.push(l), seed: 2 });
        assert.match(lines.join("\n"), /sampled 26 images with 40 DDPM steps/);
        td.dispose(params);
        return new Map(written.map((path) => [path.slice(path.lastIndexOf("/") + 1), decode(readFileSync(path)).data as Uint8Array]));
      } finally {
        td.setBackend(new CpuBackend());
      }
    };
    const live = td.memory().tensors;
    const ref = await draw(new CpuBackend(), "cpu");
    const got = await draw(gpu, "gpu");
    assert.equal(td.memory().tensors, live, "every tensor disposed");
    assert.deepEqual([...got.keys()], ["data.png", "loss.png", "samples.png", "reconstructions.png", "forward_reverse.png"]);
    for (const [file, pixels] of ref) {
      const other = got.get(file)!;
      assert.equal(other.length, pixels.length, file);
      // 8-bit pixels of values that agree to ~1e-6: equal (measured on lavapipe: every pixel), or one level apart
      // where a value sits on a rounding edge.
      let worst = 0;
      let differ = 0;
      for (let i = 0; i < pixels.length; i++) {
        const d = Math.abs(other[i]! - pixels[i]!);
        worst = Math.max(worst, d);
        if (d > 0) differ++;
      }
      if (differ > 0) console.log(`# ${file}: ${differ} of ${pixels.length} channel values differ by up to ${worst}`);
      assert.ok(worst <= 1, `${file}: pixels differ by ${worst} levels`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the shipped digit classifier runs on webgpu: the CPU backend's probabilities, labels and features", async () => {
  const gpu = await webgpuBackend();
  const images = loadDigitsSplit("all").test.images; // 90 real digits
  const run = async (backend: td.Backend) => {
    td.setBackend(backend);
    const c = loadShippedClassifier();
    try {
      return await c.classifyWithFeatures(images);
    } finally {
      c.dispose();
      td.setBackend(new CpuBackend());
    }
  };
  const ref = await run(new CpuBackend());
  const got = await run(gpu);
  assert.deepEqual(got.labels, ref.labels);
  const probs = maxError(got.probs, ref.probs);
  const features = maxError(got.features.data, ref.features.data) / maxAbs(ref.features.data);
  console.log(`# classifier: max |gpu - cpu| probabilities ${probs.toExponential(2)}, features ${features.toExponential(2)} of their largest`);
  // Three convolutions and two dense layers in float32, sums in another order: measured on lavapipe 4.3e-7
  // (probabilities) and 4.9e-7 (features, relative to the largest). Bound: 1e-5.
  assert.ok(probs <= 1e-5 && features <= 1e-5);
});

// ---------------------------------------------------------------------------------------------------------------
// The command line. The shipped web model (features 4, cosine T = 1000, EMA weights) is the checkpoint.

const BIN = new URL("../../bin/tiny-diffusion.mjs", import.meta.url).pathname;
const MODEL = new URL("../../web/public/model", import.meta.url).pathname;

function cli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 300_000, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function readNpy(path: string): Float32Array {
  const bytes = readFileSync(path);
  const npy = decodeNpy(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  assert.deepEqual(npy.shape, [8, 8, 8]);
  return Float32Array.from(npy.data);
}

describe("tiny-diffusion sample --backend webgpu", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "td-webgpu-cli-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("writes the samples --backend cpu writes (DDPM and DDIM), within float32 tolerance", () => {
    assert.ok(existsSync(join(MODEL, "checkpoint.json")), `the shipped model ${MODEL}`);
    for (const sampler of [["--sampler", "ddim", "--steps", "20"], ["--sampler", "ddpm", "--steps", "50"]]) {
      const common = ["sample", "--checkpoint", MODEL, "--n", "8", "--seed", "3", ...sampler];
      const cpu = cli([...common, "--out", join(dir, "cpu.npy"), "--backend", "cpu"]);
      assert.equal(cpu.code, 0, cpu.stderr);
      const gpu = cli([...common, "--out", join(dir, "gpu.npy"), "--png", join(dir, "gpu.png"), "--backend", "webgpu"]);
      assert.equal(gpu.code, 0, gpu.stderr);
      assert.match(gpu.stdout, /8 samples/);
      assert.ok(existsSync(join(dir, "gpu.png")));
      const a = readNpy(join(dir, "cpu.npy"));
      const b = readNpy(join(dir, "gpu.npy"));
      const error = maxError(b, a);
      console.log(`# CLI ${sampler.join(" ")}: max |gpu - cpu| ${error.toExponential(2)} over ${a.length} pixels in [0, 1]`);
      // As the engine-level tests above, with the trained model (features 4) and its T = 1000 cosine schedule,
      // outputs clipped to [0, 1]. Measured on lavapipe: 8.0e-7 (DDIM 20), 2.0e-6 (DDPM 50). Bound: 2e-5.
      assert.ok(error <= 2e-5, `${sampler.join(" ")}: ${error}`);
    }
  });

  test("eval --backend webgpu scores the samples as --backend cpu does", () => {
    const npy = join(dir, "cpu.npy"); // written by the test above
    const reports = ["cpu", "webgpu"].map((backend) => {
      const r = cli(["eval", npy, "--class", "1", "--json", "--backend", backend]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split("\n").pop()!) as { n: number; classHistogram: number[]; fid: number };
    });
    assert.equal(reports[0]!.n, 8);
    assert.deepEqual(reports[1]!.classHistogram, reports[0]!.classHistogram);
    // The classifier's features agree to ~5e-7 of their scale (test above); the FID of 8 samples moves by far less than 1e-3.
    assert.ok(Math.abs(reports[1]!.fid - reports[0]!.fid) <= 1e-3 * Math.max(1, reports[0]!.fid), `${reports[1]!.fid} vs ${reports[0]!.fid}`);
  });

  test("a bad adapter setting is a one-line error and a non-zero exit", () => {
    const r = cli(["sample", "--checkpoint", MODEL, "--n", "2", "--out", join(dir, "bad.npy"), "--backend", "webgpu"], { TINY_DIFFUSION_WEBGPU: "no-such-adapter" });
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^tiny-diffusion: --backend webgpu: TINY_DIFFUSION_WEBGPU must be auto, gpu, vulkan or opengles/);
    assert.ok(!existsSync(join(dir, "bad.npy")));
  });
});
