// WebGpuBackend.profile: GPU time per dispatch from timestamp queries (src/engine/backends/webgpu/profiler.ts),
// for eager work and for a replayed capture; refused with a message on a device without timestamp-query.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { kernels } from "./helpers.ts";

after(() => td.setBackend(new CpuBackend()));

test("profile: one timed entry per dispatch, in order, labelled by kernel; a replay is profiled too", async () => {
  const k = await kernels();
  const gpu = new WebGpuBackend(k);
  td.setBackend(gpu);
  if (!k.device.features.has("timestamp-query")) {
    // This adapter cannot time kernels: the profiler must say so instead of returning nothing.
    await assert.rejects(gpu.profile(() => undefined), /no timestamp-query feature/);
    return;
  }
  const a = td.keep(td.random.normal(td.random.key(1), [96, 80]));
  const b = td.keep(td.random.normal(td.random.key(2), [80, 70]));
  const before = gpu.stats().dispatches;
  let product: td.Tensor | null = null;
  const times = await gpu.profile(() => {
    product = td.keep(td.tidy(() => td.sum(td.gelu(td.matmul(a, b)), [1])));
  });
  const dispatched = gpu.stats().dispatches - before;
  assert.equal(times.length, dispatched, "entries per dispatch");
  assert.ok(times.some((t) => t.label.startsWith("matmul")), `labels: ${times.map((t) => t.label).join(", ")}`);
  for (const t of times) assert.ok(Number.isFinite(t.nanoseconds) && t.nanoseconds >= 0 && t.grid.every((g) => g >= 1), JSON.stringify(t));
  assert.ok(times.reduce((s, t) => s + t.nanoseconds, 0) > 0, "some GPU time");
  // Full resolution: Dawn rounds to multiples of 65,536 ns unless its timestamp quantization is off (a
  // device made with { timestamps: true } in Node turns it off); some duration is then off a 4,096 ns grid.
  assert.ok(times.some((t) => t.nanoseconds % 4096 !== 0), `durations at full resolution: ${times.map((t) => t.nanoseconds).join(", ")}`);
  // Profiled work computes the same values as unprofiled work.
  const plain = td.tidy(() => td.sum(td.gelu(td.matmul(a, b)), [1]));
  assert.deepEqual(await product!.read(), await plain.read());

  const step = td.captureStep(([x]) => [td.mul(td.exp(x!), 2)], [a]);
  const replayed = await gpu.profile(() => step.replay([null]));
  assert.equal(replayed.length, step.dispatches, "a replay's dispatches");
  step.dispose();
  td.dispose([a, b, product!, plain]);
});
