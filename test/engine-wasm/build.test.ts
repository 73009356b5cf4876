// The committed Wasm binary (kernels.wasm / kernels-wasm.ts) and the generated AssemblyScript sources are
// what `npm run build:wasm` makes from src/engine/backends/wasm/assembly (the build is deterministic).
// Skipped where the assemblyscript devDependency is not installed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { kernelBytes } from "../../src/engine/backends/wasm/module.ts";

const compiler = existsSync("node_modules/assemblyscript/package.json");

test("kernels-wasm.ts embeds exactly kernels.wasm", () => {
  assert.ok(Buffer.from(kernelBytes()).equals(readFileSync("src/engine/backends/wasm/kernels.wasm")));
  assert.ok(WebAssembly.validate(kernelBytes()));
});

test("the committed build outputs are up to date with the sources", { skip: compiler ? false : "assemblyscript is not installed" }, () => {
  const r = spawnSync(process.execPath, ["scripts/build-wasm.mjs", "--check"], { encoding: "utf8" });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});
