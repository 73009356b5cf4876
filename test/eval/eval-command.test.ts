// `tiny-diffusion eval`: the command's function on temporary .npy files (inputs, errors, --json), and the
// real binary once for exit codes and one-line errors.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeNpy, type NpyData } from "../../src/io/npy.ts";
import { loadDigitsSplit } from "../../src/data/digits-node.ts";
import { readSamplesNpy, runEval } from "../../src/cli/eval-command.ts";
import { UserError } from "../../src/cli/errors.ts";

const BIN = new URL("../../bin/tiny-diffusion.mjs", import.meta.url).pathname;
const ones = loadDigitsSplit(1);

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "td-eval-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function npy(name: string, data: NpyData, shape: number[]): string {
  const path = join(dir, name);
  writeFileSync(path, encodeNpy(data, shape));
  return path;
}

async function run(args: Partial<Parameters<typeof runEval>[0]> & { samples: string }): Promise<{ lines: string[] }> {
  const lines: string[] = [];
  await runEval({ log: (l) => lines.push(l), ...args });
  return { lines };
}

async function rejectsWith(args: Partial<Parameters<typeof runEval>[0]> & { samples: string }, pattern: RegExp): Promise<void> {
  await assert.rejects(run(args), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, pattern);
    assert.equal(e.message.includes("\n"), false, "one line");
    return true;
  });
}

describe("eval command", () => {
  test("a readable report with reference values, and --json as one parseable line", async () => {
    const path = npy("ones.npy", ones.train.images.slice(0, 20 * 64), [20, 8, 8]);
    const { lines } = await run({ samples: path, class: 1 });
    const text = lines.join("\n");
    assert.match(text, /^20 samples, expected class 1/);
    assert.match(text, /classifier accuracy\s+1\.000\s+\(real held-out 1s: 1\.000, uniform noise: 0\.000\)/);
    assert.match(text, /FID\s+[\d.]+\s+\(lower is better; 20 real training images: [\d.]+ \(mean of \d sets/);
    assert.match(text, /100% of the samples are closer/);
    const json = await run({ samples: path, class: 1, json: true });
    assert.equal(json.lines.length, 1);
    const report = JSON.parse(json.lines[0]!);
    assert.equal(report.n, 20);
    assert.equal(report.classifierAccuracy, 1);
    assert.equal(typeof report.fid, "number");
    assert.deepEqual(Object.keys(report.referenceFid), ["realVsReal", "realVsRealRange", "noiseVsReal"]);
  });

  test("accepted layouts: [N,64], [N,8,8,1], float64, labels file; tiny overshoot is clipped", async () => {
    const images = ones.train.images.slice(0, 4 * 64);
    images[0] = 1.0004;
    images[1] = -0.0004;
    const flat = readSamplesNpy(npy("flat.npy", images, [4, 64]));
    assert.equal(flat.n, 4);
    assert.equal(flat.images[0], 1);
    assert.equal(flat.images[1], 0);
    assert.equal(readSamplesNpy(npy("nhwc.npy", images, [4, 8, 8, 1])).n, 4);
    assert.equal(readSamplesNpy(npy("f64.npy", Float64Array.from(images), [4, 8, 8])).n, 4);
    const labels = npy("labels.npy", Int32Array.of(1, 1, 1, 1), [4]);
    const { lines } = await run({ samples: join(dir, "flat.npy"), labels, json: true });
    assert.equal(JSON.parse(lines[0]!).classifierAccuracy, 1);
    const floatLabels = npy("flabels.npy", Float32Array.of(1, 1, 1, 1), [4, 1]);
    await run({ samples: join(dir, "flat.npy"), labels: floatLabels });
  });

  test("no --class: the class histogram and a hint", async () => {
    const path = npy("ones-noclass.npy", ones.train.images.slice(0, 10 * 64), [10, 8, 8]);
    const { lines } = await run({ samples: path });
    const text = lines.join("\n");
    assert.match(text, /classified as\s+0:0 {2}1:10 {2}2:0/);
    assert.match(text, /look like 1s.*--class 1/);
  });

  test("SAMPLES.labels.npy beside the samples (as sample writes for a conditional model) is used without --class", async () => {
    const all = loadDigitsSplit("all");
    const n = 20;
    const path = npy("cond.npy", all.train.images.slice(-n * 64), [n, 8, 8]);
    npy("cond.labels.npy", all.train.labels.slice(-n), [n]);
    const { lines } = await run({ samples: path });
    assert.match(lines[0]!, /^expected classes from .*cond\.labels\.npy/);
    assert.match(lines[1]!, /^20 samples, expected classes [0-9,]+ \(per-sample labels\); real images from the all-digit split/);
    const json = JSON.parse((await run({ samples: path, json: true })).lines[0]!);
    assert.equal(json.trainSplit, "all");
    assert.ok(json.classifierAccuracy >= 0.95);
    // --class overrides the file (and, as one number, means a model of that digit alone).
    const one = JSON.parse((await run({ samples: path, class: 1, json: true })).lines[0]!);
    assert.equal(one.trainSplit, 1);
    assert.deepEqual(one.expectedClasses, [1]);
  });

  test("bad inputs: one-line errors", async () => {
    const ok = ones.train.images.slice(0, 3 * 64);
    await rejectsWith({ samples: join(dir, "missing.npy") }, /samples file '.*missing\.npy' does not exist/);
    writeFileSync(join(dir, "junk.npy"), "not numpy");
    await rejectsWith({ samples: join(dir, "junk.npy") }, /is not a readable \.npy file \(npy: /);
    await rejectsWith({ samples: npy("int.npy", new Int32Array(3 * 64), [3, 8, 8]) }, /int32; expected float32/);
    await rejectsWith({ samples: npy("shape.npy", ok, [3, 4, 16]) }, /shape \[3,4,16\]; expected \[N,8,8\], \[N,64\] or \[N,8,8,1\]/);
    await rejectsWith({ samples: npy("one.npy", ok.slice(0, 64), [1, 8, 8]) }, /holds 1 image; eval needs at least 2/);
    await rejectsWith({ samples: npy("raw.npy", Float32Array.from(ok, (v) => v * 16), [3, 8, 8]) }, /range over \[0\.000, 16\.00\]; expected values in \[0,1\] \(raw 0-16 pixels\? divide by 16\)/);
    await rejectsWith({ samples: npy("pm1.npy", Float32Array.from(ok, (v) => 2 * v - 1), [3, 8, 8]) }, /\[-1\.000, 1\.000\].*\[-1,1\]\?/);
    const nan = ok.slice();
    nan[70] = NaN;
    await rejectsWith({ samples: npy("nan.npy", nan, [3, 8, 8]) }, /non-finite value \(NaN\) in image 1/);
    const good = npy("good.npy", ok, [3, 8, 8]);
    await rejectsWith({ samples: good, class: 1, labels: good }, /either --class or --labels/);
    await rejectsWith({ samples: good, labels: npy("l2.npy", Int32Array.of(1, 1), [2]) }, /has 2 labels for 3 samples/);
    await rejectsWith({ samples: good, labels: npy("l10.npy", Int32Array.of(1, 10, 1), [3]) }, /label 1 .* is 10; labels must be digits 0-9/);
    await rejectsWith({ samples: good, labels: npy("lf.npy", Float32Array.of(1, 1.5, 1), [3]) }, /is 1\.5/);
    await rejectsWith({ samples: good, class: 3, trainSplit: 1 }, /trained on digit 1 only/);
    await assert.rejects(run({ samples: join(dir, "missing.npy") }), UserError);
  });

  test("the binary: exit 0 with one JSON line; non-zero exits with one-line errors", () => {
    const good = npy("bin.npy", ones.train.images.slice(0, 6 * 64), [6, 8, 8]);
    const r = spawnSync(process.execPath, [BIN, "eval", good, "--class", "1", "--json"], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 1);
    assert.equal(JSON.parse(r.stdout).classifierAccuracy, 1);
    for (const [args, pattern] of [
      [["eval", join(dir, "nope.npy")], /^tiny-diffusion: samples file '.*nope\.npy' does not exist$/],
      [["eval", good, "--class", "12"], /--class must be a digit 0-9, got '12'/],
    ] as const) {
      const e = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 120_000 });
      assert.notEqual(e.status, 0);
      const lines = e.stderr.trim().split("\n").filter((l) => !l.startsWith("(run with --help"));
      assert.equal(lines.length, 1, e.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});
