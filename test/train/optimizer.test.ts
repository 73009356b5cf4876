// Unit tests of the optimizer on tiny problems: the optax formulas by hand, clipping, the LR schedule's
// count, a quadratic, state round-trips, purity and memory.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import {
  initOptimizerState, optimizerStateFromTensors, optimizerStateTensors, optimizerStep, TUTORIAL_OPTIMIZER,
  validateOptimizerConfig, type OptimizerConfig, type OptimizerState,
} from "../../src/train/optimizer.ts";
import { lrAt } from "../../src/train/lr-schedule.ts";

type Tree = { w: td.Tensor; layer: { b: td.Tensor; k: td.Tensor } };

function tree(dtype: td.DType, w: number[], b: number[], k: number[]): Tree {
  return { w: td.tensor(w, [w.length], dtype), layer: { b: td.tensor(b, [b.length], dtype), k: td.tensor(k, [2, k.length / 2], dtype) } };
}

/** A constant-ish schedule without warm-up, so updates move the params from step 0. */
const CONFIG: OptimizerConfig = {
  ...TUTORIAL_OPTIMIZER,
  lr: { peak: 0.01, warmupSteps: 0, totalSteps: 1_000_000, alpha: 1 },
};

/** optax's chain(clip elementwise, clip_by_global_norm, adamw), in plain float64 over flat arrays. */
function referenceStep(p: number[], g: number[], m: number[], v: number[], count: number, lr: number, c: OptimizerConfig) {
  let clipped = g.map((x) => (c.elementwiseClip === null ? x : Math.min(Math.max(x, -c.elementwiseClip), c.elementwiseClip)));
  const norm = Math.sqrt(clipped.reduce((s, x) => s + x * x, 0));
  if (c.globalNormClip !== null && !(norm < c.globalNormClip)) clipped = clipped.map((x) => (x / norm) * c.globalNormClip!);
  const m2 = clipped.map((x, i) => (1 - c.b1) * x + c.b1 * m[i]!);
  const v2 = clipped.map((x, i) => (1 - c.b2) * x * x + c.b2 * v[i]!);
  const p2 = p.map((x, i) => {
    const mHat = m2[i]! / (1 - c.b1 ** count);
    const vHat = v2[i]! / (1 - c.b2 ** count);
    return x - lr * (mHat / (Math.sqrt(vHat) + c.eps) + c.weightDecay * x);
  });
  return { p: p2, m: m2, v: v2, norm };
}

/** Values in construction order: w, layer.b, layer.k. */
const flat = (t: Tree): number[] => [...t.w.toArray(), ...t.layer.b.toArray(), ...t.layer.k.toArray()];

function assertClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= tol * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${a} vs ${expected[i]}`));
}

describe("optimizerStep: optax semantics", () => {
  test("five float64 updates equal the hand-written optax chain (clips active and inactive)", () => {
    td.tidy(() => {
      let params = tree("float64", [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]);
      let state: OptimizerState<Tree> = initOptimizerState(params);
      let p = flat(params);
      let m = p.map(() => 0);
      let v = p.map(() => 0);
      // Step 0: large (element clip + norm clip), 1: small (neither), 2: some elements above 0.3, norm below
      // 0.5 is impossible then, so norm clip on; 3: zero gradient; 4: mixed signs.
      const gradSets = [
        [[2, -3, 0.1], [0.05, -7], [1, 1, -1, 0.2]],
        [[0.01, -0.02, 0.03], [0.0, 0.04], [-0.05, 0.06, 0.07, -0.08]],
        [[0.31, -0.29, 0], [0, 0], [0, 0, 0, 0]],
        [[0, 0, 0], [0, 0], [0, 0, 0, 0]],
        [[-0.1, 0.2, -0.3], [0.4, -0.5], [0.6, -0.7, 0.8, -0.9]],
      ];
      gradSets.forEach(([gw, gb, gk], k) => {
        const grads = tree("float64", gw!, gb!, gk!);
        const out = optimizerStep(params, grads, state, CONFIG, { countClipped: true });
        const lr = lrAt(k, CONFIG.lr);
        const ref = referenceStep(p, flat(grads), m, v, k + 1, lr, CONFIG);
        assert.equal(out.lr, lr);
        assert.equal(out.state.step, k + 1);
        assert.ok(Math.abs(out.gradNorm.item() - ref.norm) <= 1e-15 * Math.max(1, ref.norm), `norm ${out.gradNorm.item()} vs ${ref.norm}`);
        // Same formulas in float64, up to the order of a few roundings.
        assertClose(flat(out.params), ref.p, 1e-15, `params after ${k}`);
        assertClose(flat(out.state.m), ref.m, 1e-15, `m after ${k}`);
        assertClose(flat(out.state.v), ref.v, 1e-15, `v after ${k}`);
        ({ p, m, v } = ref);
        params = out.params;
        state = out.state;
      });
    });
  });

  test("float32 updates round like the float64 ones to float32 precision", () => {
    td.tidy(() => {
      const grads = [[0.2, -0.1, 0.05], [0.3, -0.25], [0.01, 0.02, -0.03, 0.04]] as const;
      const run = (dtype: td.DType) => {
        let params = tree(dtype, [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]);
        let state = initOptimizerState(params);
        for (let k = 0; k < 3; k++) {
          const out = optimizerStep(params, tree(dtype, [...grads[0]], [...grads[1]], [...grads[2]]), state, CONFIG, { countClipped: true });
          params = out.params;
          state = out.state;
        }
        return flat(params);
      };
      // The steps are ~1e-2 on values ~1: float32 keeps ~1e-7 of the value.
      assertClose(run("float32"), run("float64"), 3e-7, "float32 vs float64");
    });
  });

  test("the first update uses lr(0): with the tutorial's warm-up the params do not move, the moments do", () => {
    td.tidy(() => {
      const params = tree("float32", [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]);
      const out = optimizerStep(params, tree("float32", [1, 2, 3], [4, 5], [6, 7, 8, 9]), initOptimizerState(params), TUTORIAL_OPTIMIZER, { countClipped: true });
      assert.equal(out.lr, 0);
      assert.deepEqual(flat(out.params), flat(params)); // bit-identical, as in JAX (weight decay too is * lr)
      assert.ok(flat(out.state.m).every((x) => x !== 0));
      const next = optimizerStep(out.params, tree("float32", [1, 2, 3], [4, 5], [6, 7, 8, 9]), out.state, TUTORIAL_OPTIMIZER);
      assert.equal(next.elementsClipped, null, "the clipped count is computed only when asked for");
      assert.equal(next.lr, lrAt(1, TUTORIAL_OPTIMIZER.lr)); // 1e-7
      assert.ok(flat(next.params).some((x, i) => x !== flat(params)[i]));
    });
  });

  test("an explicit lr overrides the schedule", () => {
    td.tidy(() => {
      const params = tree("float64", [1], [1], [1, 1]);
      const grads = tree("float64", [0.1], [0.1], [0.1, 0.1]);
      const out = optimizerStep(params, grads, initOptimizerState(params), TUTORIAL_OPTIMIZER, { lr: 0.5, countClipped: true });
      assert.equal(out.lr, 0.5);
      // First Adam step: m_hat/sqrt(v_hat) = g/|g| = 1 (up to eps), plus weight decay 2e-5 * 1.
      assertClose(flat(out.params), [1, 1, 1, 1].map((x) => x - 0.5 * (0.1 / (0.1 + 1e-8) + 2e-5 * x)), 1e-15, "params");
    });
  });
});

describe("optimizerStep: clipping", () => {
  test("element-wise clip bounds every gradient element at 0.3 before the norm", () => {
    td.tidy(() => {
      const params = tree("float64", [0, 0, 0], [0, 0], [0, 0, 0, 0]);
      const config = { ...CONFIG, globalNormClip: null };
      const g = [[5, -5, 0.1], [-0.3, 0.31], [-100, 0.2, 0, 1e-3]];
      const out = optimizerStep(params, tree("float64", g[0]!, g[1]!, g[2]!), initOptimizerState(params), config, { countClipped: true });
      // With no norm clip, m after one update is (1 - b1) * clip(g).
      const cClipped = flat(out.state.m).map((x) => x / (1 - config.b1));
      assert.ok(cClipped.every((x) => Math.abs(x) <= 0.3 + 1e-15));
      assertClose(cClipped, [0.3, -0.3, 0.1, -0.3, 0.3, -0.3, 0.2, 0, 1e-3], 1e-15, "clipped gradient");
      assert.equal(out.elementsClipped!.item(), 4); // 5, -5, 0.31, -100 (-0.3 itself is not above the bound)
      // gradNorm is the norm AFTER the element-wise clip.
      const norm = Math.hypot(0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.2, 0, 1e-3);
      assert.ok(Math.abs(out.gradNorm.item() - norm) < 1e-15);
      assert.equal(out.clipScale.item(), 1);
    });
  });

  test("global-norm clip rescales to norm 0.5 when the norm is not below 0.5, and leaves it alone below", () => {
    td.tidy(() => {
      const params = tree("float64", [0, 0, 0], [0, 0], [0, 0, 0, 0]);
      const firstMoment = (g: number[][], config: OptimizerConfig) => {
        const out = optimizerStep(params, tree("float64", g[0]!, g[1]!, g[2]!), initOptimizerState(params), config, { countClipped: true });
        return { c: flat(out.state.m).map((x) => x / (1 - config.b1)), out };
      };
      // Above: norm(clipped) = sqrt(9 * 0.09) = 0.9 -> scaled by 0.5/0.9.
      const big = firstMoment([[1, 1, 1], [1, 1], [1, 1, 1, -1]], TUTORIAL_OPTIMIZER);
      assert.ok(Math.abs(big.out.gradNorm.item() - 0.9) < 1e-15);
      assert.ok(Math.abs(big.out.clipScale.item() - 0.5 / 0.9) < 1e-15);
      assert.ok(Math.abs(Math.hypot(...big.c) - 0.5) < 1e-15);
      assertClose(big.c, [1, 1, 1, 1, 1, 1, 1, 1, -1].map((s) => (s * 0.3 / 0.9) * 0.5), 1e-15, "scaled");
      // Below: untouched (bit-exact: the select takes the unscaled branch).
      const g = [[0.1, -0.1, 0], [0.2, 0], [0, 0, 0.3, -0.1]];
      const small = firstMoment(g, TUTORIAL_OPTIMIZER);
      assert.equal(small.out.clipScale.item(), 1);
      assertClose(small.c, g.flat(), 1e-15, "unscaled");
      // Exactly at the limit: optax scales (n < max is false) by 1.
      const edge = firstMoment([[0.3, 0.4, 0], [0, 0], [0, 0, 0, 0]], { ...TUTORIAL_OPTIMIZER, elementwiseClip: null });
      assert.equal(edge.out.gradNorm.item(), 0.5);
      assert.equal(edge.out.clipScale.item(), 1);
    });
  });

  test("a NaN norm takes the scaling branch, as optax's select does: every clipped gradient becomes NaN", () => {
    td.tidy(() => {
      const params = tree("float32", [0, 0, 0], [0, 0], [0, 0, 0, 0]);
      // Without the element-wise clip: td.clip (maximum, then minimum) maps NaN to the lower bound.
      const config = { ...TUTORIAL_OPTIMIZER, elementwiseClip: null };
      const out = optimizerStep(params, tree("float32", [NaN, 0.1, 0], [0, 0], [0, 0, 0, 0]), initOptimizerState(params), config, { countClipped: true });
      assert.ok(Number.isNaN(out.gradNorm.item()));
      assert.ok(Number.isNaN(out.clipScale.item()));
      // (c / NaN) * 0.5 is NaN for every element, also the zero gradients of the other leaves.
      assert.ok(flat(out.state.m).every((x) => Number.isNaN(x)));
      // The statistics are scalar tensors in the params' dtype.
      for (const t of [out.gradNorm, out.clipScale, out.elementsClipped!]) {
        assert.deepEqual(t.shape, []);
        assert.equal(t.dtype, "float32");
      }
    });
  });

  test("clips off (null): the raw gradient reaches Adam", () => {
    td.tidy(() => {
      const params = tree("float64", [0, 0, 0], [0, 0], [0, 0, 0, 0]);
      const config = { ...CONFIG, elementwiseClip: null, globalNormClip: null };
      const g = [[3, -4, 0], [0, 0], [0, 0, 0, 12]];
      const out = optimizerStep(params, tree("float64", g[0]!, g[1]!, g[2]!), initOptimizerState(params), config, { countClipped: true });
      assert.equal(out.gradNorm.item(), 13);
      assert.equal(out.elementsClipped!.item(), 0);
      assertClose(flat(out.state.m), g.flat().map((x) => 0.1 * x), 1e-15, "m");
    });
  });
});

describe("optimizerStep: behaviour", () => {
  test("decreases a quadratic's loss", () => {
    const target = tree("float64", [1, -2, 3], [0.5, -0.5], [2, 0, -1, 4]);
    const scales = tree("float64", [1, 10, 0.1], [1, 1], [5, 1, 1, 0.5]);
    const loss = (p: Tree) => {
      let total = td.scalar(0, "float64");
      for (const [name, t] of td.flattenTree(p)) {
        const d = td.sub(t, td.flattenTree(target).get(name)!);
        total = td.add(total, td.sum(td.mul(td.flattenTree(scales).get(name)!, td.square(d))));
      }
      return total;
    };
    let params = td.keep(tree("float64", [0, 0, 0], [0, 0], [0, 0, 0, 0]));
    let state = td.keep(initOptimizerState(params));
    const config: OptimizerConfig = { ...CONFIG, weightDecay: 0, lr: { peak: 0.05, warmupSteps: 10, totalSteps: 600, alpha: 0.01 } };
    const history: number[] = [];
    for (let k = 0; k < 600; k++) {
      const out = td.tidy(() => {
        const { value, grads } = td.valueAndGrad(loss)(params);
        const step = optimizerStep(params, grads, state, config, { countClipped: true });
        return { loss: value.item(), params: step.params, state: step.state };
      });
      td.dispose([params, state]);
      params = td.keep(out.params);
      state = td.keep(out.state);
      history.push(out.loss);
    }
    const final = td.tidy(() => loss(params).item());
    // Starting loss 1*1 + 10*4 + 0.1*9 + 1*0.25*2 + 5*4 + 1*0 + 1*1 + 0.5*16 = 71.4.
    assert.ok(Math.abs(history[0]! - 71.4) < 1e-12, `initial loss ${history[0]}`);
    assert.ok(final < 1e-3 * history[0]!, `final loss ${final}`);
    assert.ok(history[300]! < history[50]! && history[50]! < history[0]!);
    td.dispose([params, state]);
  });

  test("is pure: inputs are neither modified, disposed nor aliased by the result", () => {
    td.tidy(() => {
      const params = tree("float32", [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]);
      const grads = tree("float32", [1, 2, 3], [4, 5], [6, 7, 8, 9]);
      const state = initOptimizerState(params);
      const before = [flat(params), flat(grads), flat(state.m), flat(state.v)];
      const out = optimizerStep(params, grads, state, TUTORIAL_OPTIMIZER, { countClipped: true }); // lr 0: same values, new tensors
      assert.deepEqual([flat(params), flat(grads), flat(state.m), flat(state.v)], before);
      assert.equal(state.step, 0);
      const inputs = new Set([...td.flattenTree(params).values(), ...td.flattenTree(grads).values(), ...optimizerStateTensors(state).values()]);
      for (const t of [...td.flattenTree(out.params).values(), ...optimizerStateTensors(out.state).values()]) {
        assert.ok(!inputs.has(t));
        assert.ok(!t.isDisposed);
        assert.equal(t.requiresGrad, false);
        assert.equal(t.node, null);
      }
      // The result has the params' structure.
      assert.deepEqual(Object.keys(out.params).sort(), ["layer", "w"]);
      assert.deepEqual([...td.flattenTree(out.state.m).keys()], ["layer.b", "layer.k", "w"]);
    });
  });

  test("memory stays flat over 1000 steps (tidy per step, dispose the previous generation)", () => {
    let params = td.keep(tree("float32", [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]));
    let state = td.keep(initOptimizerState(params));
    const config: OptimizerConfig = { ...CONFIG, lr: { peak: 1e-3, warmupSteps: 10, totalSteps: 1000, alpha: 0.01 } };
    const loss = (p: Tree) => td.add(td.sum(td.square(p.w)), td.sum(td.mul(p.layer.k, td.sum(p.layer.b))));
    const counts: number[] = [];
    for (let k = 0; k < 1000; k++) {
      const out = td.tidy(() => {
        const { grads } = td.valueAndGrad(loss)(params);
        const step = optimizerStep(params, grads, state, config, { countClipped: true });
        td.keep(step.params);
        td.keep(step.state);
        return { params: step.params, state: step.state }; // the statistics (scalar tensors) are freed here
      });
      td.dispose(params);
      td.dispose(state);
      params = out.params;
      state = out.state;
      counts.push(td.memory().tensors);
    }
    assert.equal(state.step, 1000);
    // 3 params + 3 m + 3 v are alive between steps, nothing else from the optimizer.
    assert.ok(counts.every((c) => c === counts[0]), `live tensors went from ${counts[0]} to ${Math.max(...counts)}`);
    const liveBefore = td.memory().tensors;
    td.dispose([params, state]);
    assert.equal(td.memory().tensors, liveBefore - 9);
  });
});

describe("optimizer state: serialization", () => {
  test("round-trips through names (m.*, v.*) and flatten/unflatten, and continues identically", () => {
    td.tidy(() => {
      const params = tree("float64", [0.5, -1.5, 2], [0, 0.1], [1, -2, 3, -4]);
      const g1 = tree("float64", [1, -2, 0.1], [0.2, 0.3], [-0.4, 0.5, 0.6, -0.7]);
      const g2 = tree("float64", [-0.2, 0.1, 0.1], [0.05, -0.3], [0.4, 0.5, -0.06, 0.07]);
      const a = optimizerStep(params, g1, initOptimizerState(params), CONFIG, { countClipped: true });
      const tensors = optimizerStateTensors(a.state);
      assert.deepEqual([...tensors.keys()], ["m.layer.b", "m.layer.k", "m.w", "v.layer.b", "v.layer.k", "v.w"]);
      // As a checkpoint would: copy the values out (plain arrays + shapes + JSON step) and back in.
      const saved = JSON.parse(JSON.stringify({
        step: a.state.step,
        tensors: [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.toArray() })),
      })) as { step: number; tensors: { name: string; shape: number[]; data: number[] }[] };
      const restored = optimizerStateFromTensors<Tree>(
        saved.tensors.map(({ name, shape, data }) => [name, td.tensor(data, shape, "float64")] as [string, td.Tensor]),
        saved.step,
        a.params,
      );
      assert.equal(restored.step, 1);
      assert.deepEqual(flat(restored.m), flat(a.state.m));
      assert.deepEqual(flat(restored.v), flat(a.state.v));
      const direct = optimizerStep(a.params, g2, a.state, CONFIG, { countClipped: true });
      const resumed = optimizerStep(a.params, g2, restored, CONFIG, { countClipped: true });
      assert.deepEqual(flat(resumed.params), flat(direct.params));
      assert.deepEqual(flat(resumed.state.m), flat(direct.state.m));
      // And with the engine's own flatten/unflatten on m and v.
      const viaTree: OptimizerState<Tree> = {
        step: a.state.step,
        m: td.unflattenTree(td.flattenTree(a.state.m)) as Tree,
        v: td.unflattenTree(td.flattenTree(a.state.v)) as Tree,
      };
      assert.deepEqual(flat(optimizerStep(a.params, g2, viaTree, CONFIG, { countClipped: true }).params), flat(direct.params));
    });
  });

  test("the config is plain JSON", () => {
    assert.deepEqual(JSON.parse(JSON.stringify(TUTORIAL_OPTIMIZER)), TUTORIAL_OPTIMIZER);
    assert.deepEqual(TUTORIAL_OPTIMIZER, {
      elementwiseClip: 0.3, globalNormClip: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 2e-5,
      lr: { peak: 1e-4, warmupSteps: 1000, totalSteps: 5000, alpha: 0.01 },
    });
    validateOptimizerConfig(TUTORIAL_OPTIMIZER);
    const nullClips = { ...TUTORIAL_OPTIMIZER, elementwiseClip: null, globalNormClip: null };
    assert.deepEqual(JSON.parse(JSON.stringify(nullClips)), nullClips);
  });
});

describe("optimizer: errors", () => {
  test("mismatched trees, shapes, dtypes, states and configs are rejected", () => {
    td.tidy(() => {
      const params = tree("float64", [1, 2, 3], [1, 2], [1, 2, 3, 4]);
      const state = initOptimizerState(params);
      const ok = tree("float64", [1, 2, 3], [1, 2], [1, 2, 3, 4]);
      assert.throws(() => optimizerStep(params, { w: ok.w, layer: { b: ok.layer.b } }, state, CONFIG, { countClipped: true }), /grads has 2 tensors/);
      assert.throws(() => optimizerStep(params, { w: ok.w, layer: { b: ok.layer.b, q: ok.layer.k } }, state, CONFIG, { countClipped: true }), /no tensor 'layer.k'/);
      assert.throws(() => optimizerStep(params, tree("float64", [1, 2], [1, 2, 3], [1, 2, 3, 4]), state, CONFIG, { countClipped: true }), /grads 'layer.b'/);
      assert.throws(() => optimizerStep(params, tree("float32", [1, 2, 3], [1, 2], [1, 2, 3, 4]), state, CONFIG, { countClipped: true }), /float32/);
      assert.throws(() => optimizerStep(params, ok, { ...state, step: -1 }, CONFIG, { countClipped: true }), /step/);
      assert.throws(() => optimizerStep(params, ok, initOptimizerState(tree("float64", [1], [1, 2], [1, 2, 3, 4])), CONFIG, { countClipped: true }), /state.m 'w'/);
      assert.throws(() => optimizerStep(params, ok, state, CONFIG, { lr: NaN }), /learning rate/);
      assert.throws(() => optimizerStateFromTensors([["x.w", ok.w]], 0), /unexpected state tensor/);
      assert.throws(() => optimizerStateFromTensors([["m.w", ok.w], ["v.w", ok.w]], 0, params), /has 1 tensors/);
      for (const bad of [{ b1: 1 }, { b2: -0.1 }, { eps: -1 }, { weightDecay: NaN }, { elementwiseClip: 0 }, { globalNormClip: -1 }]) {
        assert.throws(() => validateOptimizerConfig({ ...CONFIG, ...bad }), /optimizer/, JSON.stringify(bad));
      }
      assert.throws(() => validateOptimizerConfig({ ...CONFIG, lr: { ...CONFIG.lr, totalSteps: 0 } }), /totalSteps/);
    });
  });
});
