import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic, writeFileAtomicSync } from "../../src/io/atomic-file.ts";

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), "atomic-file-test-"));
}

const variants = [
  { name: "async", write: (p: string, d: Uint8Array | string) => writeFileAtomic(p, d) },
  { name: "sync", write: async (p: string, d: Uint8Array | string) => writeFileAtomicSync(p, d) },
];

for (const { name, write } of variants) {
  test(`${name}: creates a new file and leaves no temp files`, async () => {
    const dir = freshDir();
    try {
      const bytes = new Uint8Array([0, 1, 2, 255]);
      await write(join(dir, "a.bin"), bytes.subarray(1)); // a view, not the whole buffer
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, "a.bin"))), new Uint8Array([1, 2, 255]));
      await write(join(dir, "b.txt"), "héllo\n");
      assert.equal(readFileSync(join(dir, "b.txt"), "utf8"), "héllo\n");
      assert.deepEqual(readdirSync(dir).sort(), ["a.bin", "b.txt"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: replaces an existing file and keeps its permissions`, async () => {
    const dir = freshDir();
    try {
      const target = join(dir, "model.safetensors");
      writeFileSync(target, "old content that is longer than the new one");
      chmodSync(target, 0o640);
      await write(target, "new");
      assert.equal(readFileSync(target, "utf8"), "new");
      assert.equal(statSync(target).mode & 0o777, 0o640);
      assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: missing target directory fails and creates nothing`, async () => {
    const dir = freshDir();
    try {
      await assert.rejects(write(join(dir, "missing", "x.bin"), "data"), { code: "ENOENT" });
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: failure after the temp file exists removes it and keeps the old file`, async () => {
    const dir = freshDir();
    try {
      const target = join(dir, "keep.txt");
      writeFileSync(target, "old");
      // Invalid data makes the write fail after the temp file has been created.
      await assert.rejects(write(target, 42 as unknown as string));
      assert.equal(readFileSync(target, "utf8"), "old");
      assert.deepEqual(readdirSync(dir), ["keep.txt"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: failed rename (target is a directory) removes the fully written temp file`, async () => {
    const dir = freshDir();
    try {
      const target = join(dir, "out");
      mkdirSync(target);
      writeFileSync(join(target, "inside.txt"), "still here");
      await assert.rejects(write(target, new Uint8Array(1000)));
      assert.deepEqual(readdirSync(dir), ["out"]);
      assert.equal(readFileSync(join(target, "inside.txt"), "utf8"), "still here");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("concurrent writers: the result is one complete version and no temp files remain", async () => {
  const dir = freshDir();
  try {
    const target = join(dir, "shared.bin");
    const versions = Array.from({ length: 20 }, (_, i) => new Uint8Array(50_000 + i).fill(i));
    await Promise.all(versions.map((v) => writeFileAtomic(target, v)));
    const got = new Uint8Array(readFileSync(target));
    const i = got[0]!;
    assert.deepEqual(got, versions[i]);
    assert.deepEqual(readdirSync(dir), ["shared.bin"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
