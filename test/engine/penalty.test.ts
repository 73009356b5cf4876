// The gradient-penalty path end to end: a tiny conv -> layerNorm -> gelu -> attention(softmax)
// -> maxPool -> upsample -> concat -> 1x1 conv network, and
//   P(w) = mean( grad_x( mean(net(x; w)) )^2 ),
// differentiated w.r.t. every weight and checked against central finite differences of P.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";
import type { Tensor } from "../../src/engine/index.ts";
import { assertClose, gradcheck, randn } from "./gradcheck.ts";

const B = 2, H = 4, W = 4, CIN = 2, C = 3, COUT = 2;

type Weights = {
  k1: Tensor; b1: Tensor; lnScale: Tensor; lnBias: Tensor; wq: Tensor; wk: Tensor; wv: Tensor; k2: Tensor;
};
const NAMES = ["k1", "b1", "lnScale", "lnBias", "wq", "wk", "wv", "k2"] as const;

function makeWeights(): Weights {
  return {
    k1: randn(300, [3, 3, CIN, C], 0.4),
    b1: randn(301, [C], 0.1),
    lnScale: randn(302, [C], 0.2, 1),
    lnBias: randn(303, [C], 0.1),
    wq: randn(304, [C, C], 0.6),
    wk: randn(305, [C, C], 0.6),
    wv: randn(306, [C, C], 0.6),
    k2: randn(307, [1, 1, 2 * C, COUT], 0.5),
  };
}

/** Returns the output and the pre-pool map (to check for near-ties in the pooling windows). */
function net(x: Tensor, w: Weights): { out: Tensor; prePool: Tensor } {
  let h = td.add(td.conv2d(x, w.k1, 1), w.b1); // [B,H,W,C] + [C]
  h = td.gelu(td.layerNorm(h, w.lnScale, w.lnBias));
  const tokens = td.reshape(h, [B, H * W, C]);
  const q = td.linear(tokens, w.wq);
  const k = td.linear(tokens, w.wk);
  const v = td.linear(tokens, w.wv);
  const scores = td.div(td.matmul(q, k, { transB: true }), Math.sqrt(C)); // [B,HW,HW]
  const attended = td.matmul(td.softmax(scores, -1), v); // [B,HW,C]
  const h2 = td.add(h, td.reshape(attended, [B, H, W, C]));
  const pooled = td.maxPool2x2(h2); // [B,H/2,W/2,C]
  const up = td.upsampleNearest(pooled, H, W);
  const cat = td.concat([h2, up], 3); // [B,H,W,2C]
  return { out: td.conv2d(cat, w.k2, 0), prePool: h2 };
}

function penalty(x: Tensor, w: Weights): Tensor {
  const gx = td.gradOfInput((t) => td.mean(net(t, w).out), x, { createGraph: true });
  return td.mean(td.square(gx));
}

describe("gradient penalty through the composite network", () => {
  const x = td.keep(randn(310, [B, H, W, CIN]));
  const weights = td.keep(makeWeights());
  const list = NAMES.map((n) => weights[n]);
  const fromList = (ts: Tensor[]): Weights => Object.fromEntries(NAMES.map((n, i) => [n, ts[i]!])) as unknown as Weights;

  test("precondition: no near-ties in the pooling windows (finite differences stay on one branch)", () => {
    td.tidy(() => {
      const h2 = td.noGrad(() => net(x, weights).prePool);
      const d = h2.data;
      let minGap = Infinity;
      for (let b = 0; b < B; b++)
        for (let i = 0; i < H; i += 2)
          for (let j = 0; j < W; j += 2)
            for (let c = 0; c < C; c++) {
              const vals = [0, 1].flatMap((di) => [0, 1].map((dj) => d[((b * H + i + di) * W + j + dj) * C + c]!)).sort((p, q) => q - p);
              minGap = Math.min(minGap, vals[0]! - vals[1]!);
            }
      // Weights move by eps = 1e-6 in the check; a gap of 1e-3 cannot close.
      assert.ok(minGap > 1e-3, `smallest top-2 gap in a pooling window is ${minGap}`);
      assert.ok(td.noGrad(() => penalty(x, weights)).item() > 1e-6, "penalty is not trivially zero");
    });
  });

  test("d penalty / d weights matches finite differences (all 8 weight tensors)", () => {
    // Tolerances: rtol 1e-5, atol 1e-7. The penalty is O(1e-2..1e-1) and its weight gradients
    // O(1e-3..1e-1); central differences with eps 1e-6 are accurate to ~1e-10 here
    // (float64 round-off / eps), while a missing or wrong second-order rule anywhere on the
    // path changes these gradients by O(their size).
    gradcheck((...ws) => penalty(x, fromList(ws)), list, { name: "gradient penalty", secondOrder: false, rtol: 1e-5, atol: 1e-7 });
  });

  test("td.grad with createGraph inside gives the same weight gradients as gradients()", () => {
    td.tidy(() => {
      const viaGrad = td.grad((w: Weights) => penalty(x, w))(weights);
      for (const t of list) t.requiresGrad = true;
      const viaGradients = td.gradients(penalty(x, weights), list);
      for (const t of list) t.requiresGrad = false;
      NAMES.forEach((n, i) => {
        // Same computation in the same order: identical up to 0 (allow 1e-15 absolute).
        assertClose(viaGrad[n].data, viaGradients[i]!.data, 0, 1e-15, n);
        assert.ok(viaGrad[n].toArray().some((v) => v !== 0), `${n} gets a non-zero gradient`);
      });
    });
  });

  test("also the input-gradient itself (first order w.r.t. x) and second order w.r.t. x", () => {
    gradcheck((t) => td.mean(net(t, weights).out), [x], { name: "mean(net(x))", rtol: 1e-5, atol: 1e-7 });
  });

  test("cleanup", () => {
    td.dispose([x, weights]);
    assert.ok(x.isDisposed);
  });
});
