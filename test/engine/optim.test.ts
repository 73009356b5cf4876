// td.adamwUpdate (the fused AdamW step) against the chain of elementwise ops it replaces, written out below
// exactly as src/train/optimizer.ts wrote it before the fusion: on the CPU backend the two must agree bit for
// bit in float32 and float64, for every branch (element clip on/off, global-norm scaling on/off, a NaN norm,
// weight decay zero or not). Tolerance: none (exact equality).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";

/** The step's values (the fused op takes them as a tensor [norm, lr, bc1, bc2]). */
const STEP = { lr: 3e-4, bc1: 0.19, bc2: 0.001999 };
const scalars = (norm: number, dtype: td.DType = "float32") => td.tensor([norm, STEP.lr, STEP.bc1, STEP.bc2], [4], dtype);

function chain(p: td.Tensor, g: td.Tensor, m0: td.Tensor, v0: td.Tensor, norm: td.Tensor, a: td.AdamWArgs): td.Tensor[] {
  let c = a.elementClip === null ? g : td.clip(g, -a.elementClip, a.elementClip);
  if (a.maxNorm !== null) c = td.where(td.less(norm, a.maxNorm), c, td.mul(td.div(c, norm), a.maxNorm));
  const m = td.add(td.mul(1 - a.b1, c), td.mul(a.b1, m0));
  const v = td.add(td.mul(1 - a.b2, td.square(c)), td.mul(a.b2, v0));
  const direction = td.div(td.div(m, STEP.bc1), td.add(td.sqrt(td.div(v, STEP.bc2)), a.eps));
  const update = a.weightDecay === 0 ? direction : td.add(direction, td.mul(a.weightDecay, p));
  return [td.sub(p, td.mul(STEP.lr, update)), m, v];
}

const BASE: td.AdamWArgs = { elementClip: 0.3, maxNorm: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 2e-5 };

for (const dtype of ["float32", "float64"] as const) {
  test(`adamwUpdate equals the elementwise chain exactly (${dtype})`, () => {
    const k = td.random.split(td.random.key(5), 4);
    const shape = [7, 13];
    const p = td.random.normal(k[0]!, shape, dtype);
    const g = td.mul(td.random.normal(k[1]!, shape, dtype), 0.5); // some beyond the 0.3 clip
    const m = td.mul(td.random.normal(k[2]!, shape, dtype), 0.1);
    const v = td.square(td.mul(td.random.normal(k[3]!, shape, dtype), 0.1));
    const cases: [string, Partial<td.AdamWArgs>, number][] = [
      ["both clips, norm below the limit", {}, 0.25],
      ["both clips, norm scales", {}, 1.7],
      ["a NaN norm scales", {}, NaN],
      ["no clips", { elementClip: null, maxNorm: null }, 3],
      ["no weight decay", { weightDecay: 0 }, 0.9],
    ];
    for (const [what, change, normValue] of cases) {
      const args = { ...BASE, ...change };
      const norm = td.scalar(normValue, dtype);
      const fused = td.adamwUpdate(p, g, m, v, scalars(normValue, dtype), args);
      const unfused = chain(p, g, m, v, norm, args);
      ["p", "m", "v"].forEach((name, i) => {
        const a = fused[i]!.toArray(), b = unfused[i]!.toArray();
        assert.deepEqual(a, b, `${what}: ${name}`);
      });
    }
  });
}

test("adamwUpdate: a NaN gradient element stays NaN through the clip, as td.clip and jnp.clip", () => {
  const [p, m, v] = td.adamwUpdate(td.tensor([1, 1]), td.tensor([NaN, 5]), td.zeros([2]), td.zeros([2]), scalars(0.1), { ...BASE, maxNorm: null });
  assert.ok(Number.isNaN(p.toArray()[0]!) && Number.isNaN(m.toArray()[0]!) && Number.isNaN(v.toArray()[0]!));
  assert.equal(m.toArray()[1], Math.fround(Math.fround(1 - 0.9) * Math.fround(0.3))); // 5 clipped to 0.3
});

test("adamwUpdate: mismatched shapes, dtypes and bad step values are refused with the names", () => {
  const p = td.zeros([2, 3]);
  assert.throws(() => td.adamwUpdate(p, td.zeros([3, 2]), p, p, scalars(1), BASE), /adamwUpdate: g is \[3,2\] float32, the parameter \[2,3\] float32/);
  assert.throws(() => td.adamwUpdate(p, p, td.zeros([2, 3], "float64"), p, scalars(1), BASE), /m is \[2,3\] float64/);
  assert.throws(() => td.adamwUpdate(p, p, p, p, td.zeros([2]), BASE), /stepScalars must be 4 float32 values \[norm, lr, bc1, bc2\], got \[2\]/);
  assert.throws(() => td.adamwUpdate(p, p, p, p, scalars(1, "float64"), BASE), /stepScalars must be 4 float32 values .*float64/);
});

// td.sumOfSquares on a host backend is the chain the optimizer wrote before (sum(square(clip(g))) leaf by
// leaf, added in order): exact equality.
for (const dtype of ["float32", "float64"] as const) {
  test(`sumOfSquares equals the chain sum(square(clip(t))) added leaf by leaf, exactly (${dtype})`, () => {
    const leaves = [td.tensor([0.1, -2, 0.25, 3e-3], [2, 2], dtype), td.tensor([7], [1], dtype), td.tensor([-0.4, 0.2, 0.05], [3], dtype), td.zeros([0], dtype)];
    for (const clip of [undefined, 0.3, 0]) {
      let chain = td.scalar(0, dtype);
      for (const [i, t] of leaves.entries()) {
        const leaf = td.sum(td.square(clip === undefined ? t : td.clip(t, -clip, clip)));
        chain = i === 0 ? leaf : td.add(chain, leaf);
      }
      const got = td.sumOfSquares(leaves, clip === undefined ? {} : { clip });
      assert.equal(got.dtype, dtype);
      assert.deepEqual(got.shape, []);
      assert.equal(got.item(), chain.item(), `clip ${clip}`);
    }
  });
}

test("sumOfSquares: a NaN stays NaN through the clip; no gradient is recorded; bad arguments are refused", () => {
  assert.ok(Number.isNaN(td.sumOfSquares([td.tensor([NaN, 1])], { clip: 0.5 }).item()));
  const x = td.tensor([1, 2]);
  // Not differentiable, as documented: the gradient through it is zero (as through stopGradient).
  assert.deepEqual([...td.grad((t: td.Tensor) => td.add(td.sumOfSquares([t]), td.sum(t)))(x).toArray()], [1, 1]);
  assert.throws(() => td.sumOfSquares([]), /sumOfSquares: no tensors/);
  assert.throws(() => td.sumOfSquares([td.zeros([2]), td.zeros([2], "float64")]), /every tensor must be float32, got float64/);
  assert.throws(() => td.sumOfSquares([td.zeros([2], "int32")]), /float32 or float64/);
  assert.throws(() => td.sumOfSquares([x], { clip: -1 }), /clip must be >= 0, got -1/);
});
