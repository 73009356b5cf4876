// The command line run as a person would: real processes, real files, exit codes and one-line errors.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeNpy } from "../../src/io/npy.ts";
import { decode } from "fast-png";

const BIN = new URL("../../bin/tiny-diffusion.mjs", import.meta.url).pathname;

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0, "must exit non-zero");
  const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("(run with --help"));
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "td-cli-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("tiny-diffusion CLI", () => {
  test("--help lists the commands; each command has --help", () => {
    const r = cli(["--help"]);
    assert.equal(r.code, 0);
    for (const c of ["train", "sample", "devices", "quickstart"]) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
    for (const c of ["train", "sample", "devices"]) {
      const h = cli([c, "--help"]);
      assert.equal(h.code, 0, c);
      assert.match(h.stdout, /Usage: tiny-diffusion/);
    }
  });

  test("devices lists the reference CPU backend", () => {
    const r = cli(["devices"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^cpu: /m);
  });

  test("misuse gives a one-line error and a non-zero exit", () => {
    assertOneLineError(cli(["frobnicate"]), /unknown command/);
    assertOneLineError(cli(["train", "--steps", "ten"]), /--steps must be a positive integer/);
    assertOneLineError(cli(["train", "--digit", "12"]), /--digit must be 0-9 or 'all'/);
    assertOneLineError(cli(["train", "--preset", "huge"]), /preset/);
    assertOneLineError(cli(["train", "--conditional", "--digit", "1", "--out", join(dir, "x")]), /conditional model needs --digit all/);
    assertOneLineError(cli(["sample", "--checkpoint", join(dir, "missing"), "--out", join(dir, "a.npy")]), /does not exist/);
    assertOneLineError(cli(["sample", "--out", join(dir, "a.npy")]), /required option '--checkpoint/);
    assertOneLineError(cli(["train", "--resume", "--out", join(dir, "nothing-here")]), /no checkpoint/);
  });

  test("train -> pictures -> sample -> resume, end to end", () => {
    const run = join(dir, "run");
    const common = ["--features", "2", "--batch", "8", "--diffusion-steps", "40", "--backend", "cpu", "--no-progress"];
    const t = cli(["train", "--steps", "4", "--out", run, ...common]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /trained in/);
    for (const f of ["data.png", "loss.png", "samples.png", "reconstructions.png", "forward_reverse.png"]) {
      const png = decode(readFileSync(join(run, f)));
      assert.ok(png.width > 40 && png.height > 20, f);
    }
    const manifest = JSON.parse(readFileSync(join(run, "checkpoint", "checkpoint.json"), "utf8"));
    assert.equal(manifest.step, 4);
    assert.equal(manifest.config.model.features, 2);

    // A second train into the same folder must not overwrite it silently.
    assertOneLineError(cli(["train", "--steps", "4", "--out", run, ...common]), /already holds a run/);
    // Resume may extend the run but not change it.
    assertOneLineError(cli(["train", "--resume", "--features", "3", "--out", run]), /options differ from the checkpoint: --features 3/);
    const r = cli(["train", "--resume", "--steps", "6", "--out", run, "--backend", "cpu", "--no-progress", "--no-pictures"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /steps 4 -> 6/);
    assert.equal(JSON.parse(readFileSync(join(run, "checkpoint", "checkpoint.json"), "utf8")).step, 6);

    const npy = join(dir, "out", "s.npy");
    const png = join(dir, "out", "s.png");
    const s = cli(["sample", "--checkpoint", run, "--n", "5", "--out", npy, "--png", png, "--sampler", "ddim", "--steps", "10", "--backend", "cpu"]);
    assert.equal(s.code, 0, s.stderr);
    const decoded = decodeNpy(new Uint8Array(readFileSync(npy)));
    assert.deepEqual(decoded.shape, [5, 8, 8]);
    assert.equal(decoded.dtype, "<f4");
    assert.ok(Array.from(decoded.data).every((v) => v >= 0 && v <= 1));
    assert.ok(existsSync(png));
    // Same seed, same images.
    const npy2 = join(dir, "out", "s2.npy");
    cli(["sample", "--checkpoint", run, "--n", "5", "--out", npy2, "--sampler", "ddim", "--steps", "10", "--backend", "cpu"]);
    assert.deepEqual(readFileSync(npy2), readFileSync(npy));

    // The tutorial's sampling schedule, on purpose (an untrained model saturates either way, so the
    // message is what tells the schedule apart).
    const npy3 = join(dir, "out", "s3.npy");
    const tut = cli(["sample", "--checkpoint", run, "--n", "5", "--out", npy3, "--sampler", "ddim", "--steps", "10", "--tutorial-sampler-schedule", "--backend", "cpu"]);
    assert.equal(tut.code, 0, tut.stderr);
    assert.match(tut.stdout, /with the tutorial's linear sampling schedule \(not the model's\)/);
    assert.doesNotMatch(s.stdout, /tutorial's linear/);

    assertOneLineError(cli(["sample", "--checkpoint", run, "--out", join(dir, "x.txt")]), /--out must name a \.npy file/);
    assertOneLineError(cli(["sample", "--checkpoint", run, "--out", npy, "--steps", "41"]), /exceeds the model's 40 diffusion steps/);
    assertOneLineError(cli(["sample", "--checkpoint", run, "--out", npy, "--class", "3"]), /need a conditional model/);

    // A corrupted weights file is refused with a message naming the problem.
    const weights = join(run, "checkpoint", manifest.files.model.replace("0000004", "0000006"));
    const bytes = readFileSync(weights);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(weights, bytes);
    assertOneLineError(cli(["sample", "--checkpoint", run, "--out", npy]), /corrupt or was changed/);
    writeFileSync(weights, bytes.subarray(0, 100));
    assertOneLineError(cli(["sample", "--checkpoint", run, "--out", npy]), /checkpoint .*: /);
  });

  test("class-conditional: train on all digits, sample every class with guidance, evaluate", () => {
    const run = join(dir, "cond");
    const t = cli(["train", "--digit", "all", "--conditional", "--features", "2", "--steps", "3", "--batch", "16",
      "--diffusion-steps", "20", "--out", run, "--backend", "cpu", "--no-progress", "--no-pictures"]);
    assert.equal(t.code, 0, t.stderr);
    const npy = join(dir, "cond", "s.npy");
    const s = cli(["sample", "--checkpoint", run, "--n", "20", "--class", "all", "--guidance", "2", "--out", npy,
      "--sampler", "ddim", "--steps", "5", "--backend", "cpu"]);
    assert.equal(s.code, 0, s.stderr);
    const labels = decodeNpy(new Uint8Array(readFileSync(join(dir, "cond", "s.labels.npy"))));
    assert.deepEqual(Array.from(labels.data), Array.from({ length: 20 }, (_, i) => i % 10));
    const e = cli(["eval", npy, "--json"]);
    assert.equal(e.code, 0, e.stderr);
    const report = JSON.parse(e.stdout.trim().split("\n").pop()!);
    assert.equal(report.n, 20);
    assert.ok(Number.isFinite(report.fid));
  });
});

