// Elementwise fusion in the WebGpuBackend (src/engine/backends/webgpu/fusion.ts): chains of float32 unary
// and binary ops become one kernel, reductions evaluate their fused input in their loads, and results equal
// the unfused kernels and the reference CPU backend. Also the hazards: inputs freed while an expression still
// reads them, expressions past the kernel limits, one-element expressions broadcast, NaN/infinities.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import { CpuBackend } from "../../src/engine/backends/cpu/index.ts";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/index.ts";
import { kernels, rng, webgpuBackend } from "./helpers.ts";
import { assertTensorClose, randomLeaves, type Leaves } from "../helpers/backend-parity.ts";

after(() => td.setBackend(new CpuBackend()));

let unfused: WebGpuBackend | null = null;
/** The same device's kernels, one dispatch per elementwise op (fuseElementwise: false). */
async function unfusedBackend(): Promise<WebGpuBackend> {
  unfused ??= new WebGpuBackend(await kernels(), { fuseElementwise: false });
  return unfused;
}

interface Run {
  values: Float64Array[];
  /** Dispatches recorded for fn (the uploads of the inputs excluded). */
  dispatches: number;
}

/** fn on a backend over float32 copies of the leaves, inside a tidy; results read back. */
async function onBackend(backend: td.Backend, leaves: Leaves, fn: (p: Map<string, td.Tensor>) => td.Tensor[]): Promise<Run> {
  td.setBackend(backend);
  try {
    const inputs = new Map([...leaves].map(([k, v]) => [k, td.tensor(v.values, v.shape, "float32")] as const));
    const before = backend instanceof WebGpuBackend ? backend.stats().dispatches : 0;
    const outs = td.tidy(() => fn(inputs));
    backend.flush();
    const dispatches = backend instanceof WebGpuBackend ? backend.stats().dispatches - before : 0;
    const values = await Promise.all(outs.map((t) => t.read()));
    td.dispose([...outs, ...inputs.values()]);
    return { values: values.map((v) => Float64Array.from(v)), dispatches };
  } finally {
    td.setBackend(new CpuBackend());
  }
}

/** Runs fn on the reference, the unfused and the fused WebGPU backend. */
async function threeWays(leaves: Leaves, fn: (p: Map<string, td.Tensor>) => td.Tensor[]): Promise<{ ref: Run; plain: Run; fused: Run }> {
  const ref = await onBackend(new CpuBackend(), leaves, fn);
  const plain = await onBackend(await unfusedBackend(), leaves, fn);
  const fused = await onBackend(await webgpuBackend(), leaves, fn);
  return { ref, plain, fused };
}

/** Largest difference relative to the largest magnitude of b (ulp-level: ~6e-8 per rounding). */
function relDiff(a: Float64Array, b: Float64Array): number {
  let worst = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / (scale || 1);
}

test("a chain of broadcast elementwise ops and a reduction: fused equals unfused and the reference, in far fewer dispatches", async () => {
  const leaves = randomLeaves({ x: [6, 5, 7, 4], scale: [4], bias: [1, 1, 1, 4], rows: [6, 1, 1, 1] }, 3);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const x = p.get("x")!;
    const h = td.gelu(td.add(td.mul(x, p.get("scale")!), p.get("bias")!));
    const z = td.div(td.exp(td.neg(td.square(h))), td.add(td.abs(h), 1));
    const w = td.sub(td.maximum(z, 0.1), td.minimum(td.tanh(h), td.mul(p.get("rows")!, 0.5)));
    const v = td.add(td.mul(td.sin(w), td.cos(x)), td.where(td.greater(x, 0), td.sqrt(td.abs(x)), td.pow(w, 2)));
    return [v, td.sum(td.mul(v, v), [1, 2]), td.mean(td.square(td.clip(x, -0.3, 0.3)))];
  };
  const { ref, plain, fused } = await threeWays(leaves, fn);
  const names = ["v", "sum of squares over axes 1, 2", "mean of clipped squares"];
  fused.values.forEach((got, i) => {
    // Same WGSL per op; only FMA contraction by the shader compiler may differ: a few float32 roundings.
    const d = relDiff(got, plain.values[i]!);
    assert.ok(d <= 1e-6, `${names[i]}: fused vs unfused ${d}`);
    // float32 vs the reference's float64 accumulation and exact sin/cos/tanh: 1e-5 of the scale.
    assertTensorClose(got, ref.values[i]!, 1e-5, names[i]!);
  });
  console.log(`# dispatches: unfused ${plain.dispatches}, fused ${fused.dispatches}`);
  // 22 elementwise ops, a select and three reductions: the fused expressions feed the reductions directly;
  // what is left is the select (an unfused kernel), its operands, v itself and the reductions.
  assert.ok(plain.dispatches >= 25, `unfused dispatches ${plain.dispatches}`);
  assert.ok(fused.dispatches <= 9, `fused dispatches ${fused.dispatches}`);
});

test("sum(square(clip(g))) is one reduction reading g: the clip and square outputs are never computed", async () => {
  const gpu = await webgpuBackend();
  for (const shape of [[3, 3, 16, 16], [100_000], [37]]) {
    const leaves = randomLeaves({ g: shape }, 5);
    const fn = (p: Map<string, td.Tensor>): td.Tensor[] => [td.sum(td.square(td.clip(p.get("g")!, -0.3, 0.3)))];
    const ref = await onBackend(new CpuBackend(), leaves, fn);
    const before = gpu.stats().fusion!;
    const fused = await onBackend(gpu, leaves, fn);
    const after = gpu.stats().fusion!;
    assertTensorClose(fused.values[0]!, ref.values[0]!, 1e-5, `[${shape}]`);
    // One pass over g (a large input adds the sum of the per-chunk partial sums), the clip's two ops and the
    // square dropped.
    assert.ok(fused.dispatches <= 2, `[${shape}]: ${fused.dispatches} dispatches`);
    assert.equal(after.dropped - before.dropped, 3, `[${shape}]: clip (maximum, minimum) and square outputs dropped`);
    assert.equal(after.reductionsFused - before.reductionsFused, 1);
  }
});

test("a concat of pending expressions evaluates each part in its box: one dispatch per part, values as the reference", async () => {
  const gpu = await webgpuBackend();
  // The time embedding's concat([sin, cos], 1); a concat along the first axis (one run per part); along the
  // middle axis of a 3-d array (rows of 4 x 5, with a part already in memory: copied); a part read again.
  const leaves = randomLeaves({ a: [6, 8], b: [3, 4, 5] }, 9);
  const cases: [string, (p: Map<string, td.Tensor>) => td.Tensor[], number, number][] = [
    ["time embedding", (p) => [td.concat([td.sin(p.get("a")!), td.cos(p.get("a")!)], 1)], 2, 2],
    ["first axis", (p) => [td.concat([td.mul(p.get("a")!, 2), td.exp(p.get("a")!)], 0)], 2, 2],
    ["middle axis of a 3-d array", (p) => [td.concat([td.tanh(p.get("b")!), p.get("b")!], 1)], 2, 1],
    ["read again", (p) => { const e = td.exp(p.get("a")!); return [td.concat([e, p.get("a")!], 1), td.sum(e)]; }, 3, 1],
  ];
  for (const [what, fn, dispatches, copiesFused] of cases) {
    const ref = await onBackend(new CpuBackend(), leaves, fn);
    const before = gpu.stats().fusion!;
    const fused = await onBackend(gpu, leaves, fn);
    const after = gpu.stats().fusion!;
    // The same float32 operations as the reference rounds once: 1e-6 of the scale (sin, cos, exp, tanh in WGSL).
    fused.values.forEach((v, i) => assertTensorClose(v, ref.values[i]!, 1e-6, `${what}, output ${i}`));
    assert.equal(fused.dispatches, dispatches, `${what}: dispatches`);
    assert.equal(after.copiesFused - before.copiesFused, copiesFused, `${what}: parts evaluated in place`);
  }
});

test("an input freed while a pending expression reads it is kept until the expression has run", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const x = td.tensor(Float32Array.from({ length: 4096 }, (_, i) => (i % 97) / 97), [4096], "float32");
    const y = td.add(td.mul(td.exp(x), 2), 1); // pending, reads x
    x.dispose(); // x's buffer must not go back to the pool yet
    // Allocate and write buffers of x's size class: a premature reuse would overwrite x's values.
    const noise = Array.from({ length: 8 }, (_, k) => td.full([4096], 1000 + k, "float32"));
    const fresh = td.add(noise[0]!, noise[1]!);
    const [got, freshValues] = await Promise.all([y.read(), fresh.read()]);
    for (let i = 0; i < 4096; i++) {
      const expected = Math.fround(Math.fround(Math.fround(Math.exp(Math.fround((i % 97) / 97))) * 2) + 1);
      assert.ok(Math.abs(got[i]! - expected) <= 4e-7 * expected, `y[${i}] = ${got[i]}, expected ${expected}`);
    }
    assert.equal(freshValues[0], 2001);
    td.dispose([y, fresh, ...noise]);
    gpu.flush();
    const { pending, held } = gpu.stats().fusion!;
    assert.deepEqual({ pending, held }, { pending: 0, held: 0 });
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("expressions past the kernel limits (bindings, tree size, parameter words) are split, and values stay right", async () => {
  const spec: Record<string, number[]> = {};
  for (let k = 0; k < 24; k++) spec[`t${k}`] = [33, 17];
  spec.col = [33, 1];
  const leaves = randomLeaves(spec, 7);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    // 24 distinct buffers summed: more than any adapter's storage-buffer bindings per kernel.
    let total = p.get("t0")!;
    for (let k = 1; k < 24; k++) total = td.add(total, p.get(`t${k}`)!);
    // 120 unary ops in a row: past the tree-size bound.
    let deep = p.get("t1")!;
    for (let k = 0; k < 40; k++) deep = td.tanh(td.add(td.mul(deep, 1.25), -0.01 * k));
    // 60 different constants and broadcast reads (strided parameters): past the parameter budget.
    let consts = p.get("t2")!;
    for (let k = 0; k < 30; k++) consts = td.add(td.mul(consts, 1 - k / 64), td.mul(p.get("col")!, k / 32));
    // A shared subexpression used many times (x*x chains double the tree each step).
    let shared = td.mul(p.get("t3")!, 0.5);
    for (let k = 0; k < 12; k++) shared = td.tanh(td.sub(td.mul(shared, shared), shared));
    return [total, deep, consts, shared, td.sum(td.add(total, deep), [0])];
  };
  const { ref, plain, fused } = await threeWays(leaves, fn);
  const names = ["24-term sum", "deep chain", "constants", "shared", "reduction of a split expression"];
  fused.values.forEach((got, i) => {
    assert.ok(relDiff(got, plain.values[i]!) <= 1e-6, `${names[i]}: fused vs unfused ${relDiff(got, plain.values[i]!)}`);
    assertTensorClose(got, ref.values[i]!, 1e-4, names[i]!);
  });
  console.log(`# dispatches past the limits: unfused ${plain.dispatches}, fused ${fused.dispatches}`);
  assert.ok(fused.dispatches < plain.dispatches / 4, `fused ${fused.dispatches} vs unfused ${plain.dispatches}`);
});

test("a pending one-element expression broadcast over a tensor, and a scalar read", async () => {
  const leaves = randomLeaves({ x: [9, 11] }, 9);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const x = p.get("x")!;
    const norm = td.sqrt(td.sum(td.square(x))); // a reduction, then a pending one-element sqrt
    const scale = td.where(td.less(norm, 0.5), td.scalar(1, "float32"), td.div(0.5, norm)); // select: unfused
    const factor = td.add(td.mul(norm, 0.25), 1); // pending, one element
    return [td.mul(td.mul(x, factor), scale), norm, factor];
  };
  const { ref, fused } = await threeWays(leaves, fn);
  fused.values.forEach((got, i) => assertTensorClose(got, ref.values[i]!, 2e-6, `output ${i}`));
});

test("a reduction over size-1 axes only evaluates its program's parameters (constants, broadcast strides) where they are", async () => {
  // Such a reduction is an elementwise kernel over the program compiled for a reduction: the parameters must
  // sit at REDUCE_PARAM_BASE there too (once they did not, and the conditional train step drifted).
  const leaves = randomLeaves({ x: [4, 1], row: [1, 1], s: [1] }, 10);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const y = td.add(td.mul(p.get("x")!, 2.5), p.get("row")!); // a constant and a strided leaf
    const z = td.add(td.mul(p.get("s")!, td.scalar(3)), 0.5); // one element, constants only
    return [td.sum(y, [1]), td.max(y, [1], true), td.sum(z), td.sum(td.exp(z), [0])];
  };
  const { ref, plain, fused } = await threeWays(leaves, fn);
  fused.values.forEach((got, i) => {
    assertTensorClose(got, ref.values[i]!, 1e-6, `output ${i} vs the reference`);
    assert.ok(relDiff(got, plain.values[i]!) <= 1e-6, `output ${i} vs unfused`);
  });
});

test("a pending expression of a smaller shape is inlined into a broadcasting op, its leaves read through strides", async () => {
  // Normalization by per-column statistics: (x - mean) * rsqrt(var + eps), the statistics [1, 7] pending.
  const leaves = randomLeaves({ x: [9, 7] }, 12);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const x = p.get("x")!;
    const mean = td.div(td.sum(x, [0], true), 9); // pending [1, 7] over a reduction's output
    const centered = td.sub(x, mean);
    const variance = td.div(td.sum(td.square(centered), [0], true), 9);
    return [td.mul(centered, td.rsqrt(td.add(variance, 1e-5)))];
  };
  const { ref, plain, fused } = await threeWays(leaves, fn);
  assertTensorClose(fused.values[0]!, ref.values[0]!, 1e-5, "normalized");
  assert.ok(relDiff(fused.values[0]!, plain.values[0]!) <= 1e-6, "fused vs unfused");
  // Two reductions (the mean's sum, the variance's sum with the centering inlined) and the output: the
  // [1, 7] statistics are never computed on their own.
  assert.equal(fused.dispatches, 3, `fused dispatches (unfused: ${plain.dispatches})`);
});

test("an expression with more parameter words than a reduction has is computed, then reduced", async () => {
  // Five operands broadcast along alternate axes: 9 words each (rank 4, sizes, strides) = 45, within an
  // elementwise kernel's 60 but past a reduction's 40.
  const leaves = randomLeaves({ x: [2, 3, 4, 5], a: [2, 1, 4, 1], b: [2, 1, 4, 1], c: [2, 1, 4, 1], d: [2, 1, 4, 1], e: [2, 1, 4, 1] }, 13);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    let y = p.get("x")!;
    for (const k of ["a", "b", "c", "d", "e"]) y = td.add(td.mul(y, 0.5), p.get(k)!);
    return [td.sum(y, [1, 3]), y];
  };
  const gpu = await webgpuBackend();
  const before = gpu.stats().fusion!;
  const { ref, fused } = await threeWays(leaves, fn);
  fused.values.forEach((got, i) => assertTensorClose(got, ref.values[i]!, 1e-6, `output ${i}`));
  const after = gpu.stats().fusion!;
  assert.equal(after.reductionsFused - before.reductionsFused, 0, "the reduction read the computed array");
  assert.equal(fused.dispatches, 2, "one elementwise kernel for all five ops, one reduction");
});

test("NaN, infinities and signed zeros go through fused ops as through the unfused kernels", async () => {
  const special = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 3.5, -2.25, 1e-30, 1e30, 0.5];
  const a = new Float64Array(special.length * special.length);
  const b = new Float64Array(special.length * special.length);
  special.forEach((u, i) => special.forEach((v, j) => {
    a[i * special.length + j] = u;
    b[i * special.length + j] = v;
  }));
  const leaves: Leaves = new Map([["a", { values: a, shape: [a.length] }], ["b", { values: b, shape: [b.length] }]]);
  const fn = (p: Map<string, td.Tensor>): td.Tensor[] => {
    const x = p.get("a")!, y = p.get("b")!;
    return [
      td.add(td.maximum(x, y), td.minimum(y, x)),
      td.mul(td.sub(x, y), td.div(y, x)),
      td.add(td.greaterEqual(x, y), td.mul(td.equal(x, y), 2)),
      td.mul(td.sign(x), td.abs(td.neg(y))),
      td.clip(td.add(x, y), -1, 1),
    ];
  };
  const { plain, fused } = await threeWays(leaves, fn);
  fused.values.forEach((got, i) => {
    for (let k = 0; k < got.length; k++) {
      const e = plain.values[i]![k]!;
      assert.ok(Object.is(got[k], e) || (Number.isNaN(got[k]) && Number.isNaN(e)), `output ${i}, ${a[k]} and ${b[k]}: fused ${got[k]}, unfused ${e}`);
    }
  });
});

test("a long loop of fused steps: nothing stays pending or held, and the pool stops growing", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    let x = td.keep(td.random.normal(td.random.key(1), [64, 32], "float32"));
    const bytes: number[] = [];
    for (let step = 0; step < 40; step++) {
      const next = td.tidy(() => {
        const g = td.mul(td.tanh(x), td.sub(1, td.square(td.tanh(x))));
        const norm = td.sqrt(td.sum(td.square(g)));
        return td.sub(x, td.mul(td.div(g, td.add(norm, 1e-6)), 0.01));
      });
      x.dispose();
      x = td.keep(next);
      gpu.flush();
      await x.read();
      bytes.push(gpu.stats().allocatedBytes);
    }
    const fusion = gpu.stats().fusion!;
    assert.ok(fusion.dropped > 0 && fusion.materialized > 0);
    assert.deepEqual({ pending: fusion.pending, held: fusion.held }, { pending: 0, held: 0 });
    assert.deepEqual(bytes.slice(10), Array(30).fill(bytes[10]), `pool bytes grow: ${bytes.join(", ")}`);
    x.dispose();
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("a constant's buffer is written only when a kernel binds it or it is read", async () => {
  const gpu = await webgpuBackend();
  td.setBackend(gpu);
  try {
    const x = td.tensor(Float32Array.from([1, 2, 3, 4]), [4], "float32");
    const before = gpu.stats().fusion!.unwrittenConstants;
    const s = td.scalar(2.5);
    const y = td.mul(x, s); // fused: 2.5 is a parameter word
    assert.equal(gpu.stats().fusion!.unwrittenConstants, before + 1);
    assert.deepEqual(Array.from(await y.read()), [2.5, 5, 7.5, 10]);
    assert.equal(gpu.stats().fusion!.unwrittenConstants, before + 1, "reading y did not need s's buffer");
    // An unfused kernel (cast) and a read bind the buffer: it is written first.
    const c = td.tidy(() => td.cast(td.scalar(-7.75), "int32"));
    assert.deepEqual(Array.from(await c.read()), [-7]);
    assert.deepEqual(Array.from(await s.read()), [2.5]);
    assert.equal(gpu.stats().fusion!.unwrittenConstants, before);
    // A one-element op whose operands are both constants (n = 1: the constants are not read as leaves).
    const t = td.tidy(() => td.add(td.scalar(0.25), td.mul(td.scalar(3), td.scalar(0.5))));
    assert.deepEqual(Array.from(await t.read()), [1.75]);
    td.dispose([x, s, y, c, t]);
    gpu.flush();
    assert.equal(gpu.stats().fusion!.unwrittenConstants, before, "released constants are forgotten");
  } finally {
    td.setBackend(new CpuBackend());
  }
});

test("random programs (elementwise ops, broadcasts, reductions, unfused kernels, early disposals) match the reference", async () => {
  // A seeded program generator: each step applies one op to live tensors, sometimes disposes one, sometimes
  // reads one mid-program. The same program runs on the CPU backend and on the fused WebGPU backend.
  const unaries = ["exp", "tanh", "square", "abs", "neg", "sin", "gelu"] as const;
  const binaries = ["add", "sub", "mul", "maximum", "minimum"] as const;
  type Step = (live: td.Tensor[], rand: () => number) => void;
  const pick = <T,>(xs: readonly T[], rand: () => number): T => xs[Math.floor(rand() * xs.length)]!;
  const steps: Step[] = [
    (live, r) => live.push((td[pick(unaries, r)] as (x: td.Tensor) => td.Tensor)(td.tanh(pick(live, r)))), // bounded input
    (live, r) => {
      const a = pick(live, r), b = pick(live, r);
      const shapeOk = a.shape.every((d, i) => d === b.shape[i]);
      live.push((td[pick(binaries, r)] as (x: td.Tensor, y: td.Tensor) => td.Tensor)(a, shapeOk ? b : td.sum(b, [0], true)));
    },
    (live, r) => live.push(td.mul(pick(live, r), Math.round(r() * 8) / 4 - 1)), // a constant
    (live, r) => live.push(td.add(pick(live, r), td.sum(pick(live, r), [0, 1], true))), // a broadcast row
    (live, r) => live.push(td.add(pick(live, r), td.mean(pick(live, r)))), // a one-element value
    (live, r) => live.push(td.add(pick(live, r), td.mul(td.sum(pick(live, r), [0], true), 0.5))), // a pending row, inlined
    // A pending row that itself reads a broadcast leaf: computed first, then read through strides.
    (live, r) => live.push(td.sub(pick(live, r), td.add(td.sum(pick(live, r), [0], true), td.sum(pick(live, r), [0, 1], true)))),
    (live, r) => live.push(td.div(pick(live, r), td.add(td.abs(pick(live, r)), 1))),
    (live, r) => {
      const x = pick(live, r);
      live.push(td.reshape(td.matmul(td.reshape(x, [-1, 6]), td.ones([6, 6])), x.shape)); // an unfused kernel
    },
    (live, r) => live.push(td.where(td.greater(pick(live, r), 0), pick(live, r), td.scalar(0.5))),
    (live, r) => {
      if (live.length > 3) live.splice(Math.floor(r() * live.length), 1)[0]!.dispose(); // dispose early
    },
  ];
  const program = async (seed: number, backend: td.Backend): Promise<Float64Array[]> => {
    td.setBackend(backend);
    try {
      const rand = rng(seed);
      const reads: Promise<Float64Array>[] = [];
      const live: td.Tensor[] = [td.tensor(Float32Array.from({ length: 60 }, () => rand() * 4 - 2), [5, 2, 6], "float32")];
      for (let k = 0; k < 60; k++) {
        pick(steps, rand)(live, rand);
        if (rand() < 0.1) reads.push(pick(live, rand).read().then((v) => Float64Array.from(v))); // a read mid-program
      }
      reads.push(td.sum(td.concat(live.slice(-4).map((t) => td.reshape(t, [60])), 0)).read().then((v) => Float64Array.from(v)));
      for (const t of live) reads.push(t.read().then((v) => Float64Array.from(v)));
      const values = await Promise.all(reads);
      td.dispose(live);
      return values;
    } finally {
      td.setBackend(new CpuBackend());
    }
  };
  const gpu = await webgpuBackend();
  for (let seed = 1; seed <= 12; seed++) {
    const ref = await program(seed, new CpuBackend());
    const got = await program(seed, gpu);
    assert.equal(got.length, ref.length);
    // float32 with the reference's float64 sums and exact transcendental functions: 1e-4 of each value's
    // scale over 60 chained ops (measured below 1e-5).
    got.forEach((g, i) => assertTensorClose(g, ref[i]!, 1e-4, `seed ${seed}, read ${i}`));
    gpu.flush();
    const { pending, held } = gpu.stats().fusion!;
    assert.deepEqual({ pending, held }, { pending: 0, held: 0 }, `seed ${seed}: everything disposed`);
  }
});

