// random.normalFromKey on the GPU (shaders/random.ts): the host's threefry words bit for bit, the float
// steps in f32. Reference: random.normalArray (float64, engine/threefry.ts) rounded to float32, as the CPU
// backend's normalFromKey gives it.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { webgpuBackend } from "./helpers.ts";

after(() => td.setBackend(new CpuBackend()));

test("normalFromKey on webgpu: the host's normals to float32 rounding (keys with high bits set, odd n)", async () => {
  const gpu = await webgpuBackend();
  // 200,001 values: every region of the uniforms, including u1 near 0 and 1 (the tails) and both branches.
  const n = 200_001;
  let worstAbs = 0;
  let worstUlps = 0;
  for (const k of [td.random.key(0), td.random.key(7), [0xdeadbeef, 0x80000001] as const]) {
    td.setBackend(gpu);
    let got: Float32Array;
    try {
      const z = td.random.normalFromKey(td.tensor(td.random.keyWords(k), [2], "int32"), [n]);
      got = (await z.read()) as Float32Array;
      z.dispose();
    } finally {
      td.setBackend(new CpuBackend());
    }
    const expected = Float32Array.from(td.random.normalArray(k, n));
    for (let i = 0; i < n; i++) {
      const e = expected[i]!;
      const err = Math.abs(got[i]! - e);
      worstAbs = Math.max(worstAbs, err);
      // Error in units of float32 spacing at |e| (floored at 2^-23 for values near 0).
      const spacing = Math.max(2 ** -23, 2 ** (Math.floor(Math.log2(Math.abs(e) || 1)) - 23));
      worstUlps = Math.max(worstUlps, err / spacing);
    }
  }
  console.log(`# normalFromKey webgpu vs host: max abs error ${worstAbs.toExponential(2)}, ${worstUlps.toFixed(1)} float32 spacings`);
  // f32 log/sqrt/sin/cos polynomials around exact integer-derived arguments: a few float32 spacings.
  // Measured on lavapipe: 3.0 spacings (4.8e-7 absolute); bound 16 (a wrong formula gives errors of order 1).
  assert.ok(worstUlps <= 16, `normals differ by ${worstUlps} float32 spacings (abs ${worstAbs})`);
});
