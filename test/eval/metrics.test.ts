// Fréchet distance and copy-check math against hand cases and an independent matrix square root.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rng } from "../helpers/random.ts";
import {
  copyCheck, featureFrechetDistance, frechetDistance, gaussianFit, median, nearestTrainingDistance,
  sqrtmPsd, symmetricEigen, traceSqrtProduct,
} from "../../src/eval/metrics.ts";


function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) out[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  return out;
}

function transpose(a: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j]!;
  return out;
}

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/** Gauss-Jordan inverse with partial pivoting (reference only). */
function inverse(a: ArrayLike<number>, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = identity(n);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r * n + col]!) > Math.abs(m[pivot * n + col]!)) pivot = r;
    for (let j = 0; j < n; j++) {
      [m[col * n + j], m[pivot * n + j]] = [m[pivot * n + j]!, m[col * n + j]!];
      [inv[col * n + j], inv[pivot * n + j]] = [inv[pivot * n + j]!, inv[col * n + j]!];
    }
    const d = m[col * n + col]!;
    for (let j = 0; j < n; j++) {
      m[col * n + j]! /= d;
      inv[col * n + j]! /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r * n + col]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j]! -= f * m[col * n + j]!;
        inv[r * n + j]! -= f * inv[col * n + j]!;
      }
    }
  }
  return inv;
}

/**
 * Reference: the principal square root of a general (non-symmetric) matrix with positive eigenvalues by the
 * Denman-Beavers iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2 (Y -> A^{1/2}): no eigen-decomposition.
 */
function sqrtmDenmanBeavers(a: ArrayLike<number>, n: number): Float64Array {
  let y = Float64Array.from(a);
  let z = identity(n);
  for (let k = 0; k < 100; k++) {
    const yi = inverse(y, n);
    const zi = inverse(z, n);
    const y2 = Float64Array.from(y, (v, i) => 0.5 * (v + zi[i]!));
    const z2 = Float64Array.from(z, (v, i) => 0.5 * (v + yi[i]!));
    let change = 0;
    for (let i = 0; i < y.length; i++) change = Math.max(change, Math.abs(y2[i]! - y[i]!));
    y = y2;
    z = z2;
    if (change < 1e-15) break;
  }
  return y;
}

function trace(a: ArrayLike<number>, n: number): number {
  let t = 0;
  for (let i = 0; i < n; i++) t += a[i * n + i]!;
  return t;
}

/** A random SPD matrix B B^T + eps I. */
function randomSpd(n: number, next: () => number, eps = 0.1): Float64Array {
  const b = Float64Array.from({ length: n * n }, () => 2 * next() - 1);
  const s = matmul(b, transpose(b, n), n);
  for (let i = 0; i < n; i++) s[i * n + i]! += eps;
  return s;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("symmetric eigen-decomposition (Jacobi)", () => {
  test("reconstructs random symmetric matrices with orthonormal vectors and sorted values", () => {
    const next = rng(1);
    for (const n of [1, 2, 3, 7, 32]) {
      const a = randomSpd(n, next);
      for (let i = 0; i < n; i++) a[i * n + i]! -= 1; // indefinite too
      const { values, vectors } = symmetricEigen(a, n);
      const lambda = new Float64Array(n * n);
      for (let i = 0; i < n; i++) lambda[i * n + i] = values[i]!;
      const back = matmul(matmul(vectors, lambda, n), transpose(vectors, n), n);
      assert.ok(maxAbsDiff(back, a) < 1e-12 * n, `n=${n}: reconstruction error ${maxAbsDiff(back, a)}`);
      assert.ok(maxAbsDiff(matmul(transpose(vectors, n), vectors, n), identity(n)) < 1e-13 * n, `n=${n}: V not orthonormal`);
      for (let i = 1; i < n; i++) assert.ok(values[i - 1]! <= values[i]!);
      assert.ok(Math.abs(trace(a, n) - values.reduce((s, v) => s + v, 0)) < 1e-12 * n);
    }
  });

  test("diagonal and degenerate matrices", () => {
    assert.deepEqual([...symmetricEigen([3, 0, 0, 1], 2).values], [1, 3]);
    const { values } = symmetricEigen([2, 1, 1, 2], 2);
    assert.ok(Math.abs(values[0]! - 1) < 1e-15 && Math.abs(values[1]! - 3) < 1e-15);
    assert.deepEqual([...symmetricEigen(new Float64Array(9), 3).values], [0, 0, 0]);
    assert.throws(() => symmetricEigen([1, NaN, NaN, 1], 2), /non-finite/);
  });

  test("sqrtmPsd squares back to the matrix, also when singular", () => {
    const next = rng(2);
    const n = 6;
    const spd = randomSpd(n, next);
    const r = sqrtmPsd(spd, n);
    assert.ok(maxAbsDiff(matmul(r, r, n), spd) < 1e-12);
    assert.ok(maxAbsDiff(r, transpose(r, n)) < 1e-13);
    // Rank 2 in 6-d: B B^T with B 6x2.
    const b = Float64Array.from({ length: n * n }, (_, i) => (i % n < 2 ? 2 * next() - 1 : 0));
    const singular = matmul(b, transpose(b, n), n);
    const rs = sqrtmPsd(singular, n);
    assert.ok(maxAbsDiff(matmul(rs, rs, n), singular) < 1e-12);
  });
});

describe("Fréchet distance", () => {
  test("identical feature sets give 0", () => {
    const next = rng(3);
    const dim = 8;
    const n = 40;
    const f = Float64Array.from({ length: n * dim }, () => next());
    assert.ok(featureFrechetDistance(f, n, f, n, dim) < 1e-12);
    // Fewer samples than dimensions (singular covariance) too.
    assert.ok(featureFrechetDistance(f.subarray(0, 5 * dim), 5, f.subarray(0, 5 * dim), 5, dim) < 1e-12);
  });

  test("two 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2", () => {
    for (const [m1, s1, m2, s2] of [[0, 1, 0, 1], [1, 2, -3, 0.5], [0.25, 0, 2, 3], [5, 1e-3, 5, 1e3]] as const) {
      const fd = frechetDistance({ mean: Float64Array.of(m1), cov: Float64Array.of(s1 * s1) }, { mean: Float64Array.of(m2), cov: Float64Array.of(s2 * s2) });
      const expected = (m1 - m2) ** 2 + (s1 - s2) ** 2;
      assert.ok(Math.abs(fd - expected) <= 1e-12 * Math.max(1, expected), `${[m1, s1, m2, s2]}: ${fd} vs ${expected}`);
    }
    // From samples: the fits' means and unbiased variances.
    const a = [1, 2, 3, 4];
    const b = [10, 14];
    const fitA = gaussianFit(a, 4, 1);
    const fitB = gaussianFit(b, 2, 1);
    assert.equal(fitA.mean[0], 2.5);
    assert.ok(Math.abs(fitA.cov[0]! - 5 / 3) < 1e-15);
    assert.equal(fitB.cov[0], 8);
    const expected = (2.5 - 12) ** 2 + (Math.sqrt(5 / 3) - Math.sqrt(8)) ** 2;
    assert.ok(Math.abs(featureFrechetDistance(a, 4, b, 2, 1) - expected) < 1e-12);
  });

  test("diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2", () => {
    const da = [1, 4, 0.25, 9, 0];
    const db = [4, 4, 1, 0.01, 2];
    const dim = da.length;
    const diag = (d: number[]) => {
      const m = new Float64Array(dim * dim);
      d.forEach((v, i) => (m[i * dim + i] = v));
      return m;
    };
    const mu1 = Float64Array.of(0, 1, 2, 3, 4);
    const mu2 = Float64Array.of(1, 1, 0, 3, 4.5);
    let expected = 1 + 0 + 4 + 0 + 0.25;
    for (let i = 0; i < dim; i++) expected += (Math.sqrt(da[i]!) - Math.sqrt(db[i]!)) ** 2;
    const fd = frechetDistance({ mean: mu1, cov: diag(da) }, { mean: mu2, cov: diag(db) });
    assert.ok(Math.abs(fd - expected) < 1e-12, `${fd} vs ${expected}`);
  });

  test("equal covariances leave only the mean term; symmetric in its arguments", () => {
    const next = rng(4);
    const dim = 5;
    const s = randomSpd(dim, next);
    const mu1 = Float64Array.from({ length: dim }, () => next());
    const mu2 = Float64Array.from({ length: dim }, () => next());
    let meanTerm = 0;
    for (let i = 0; i < dim; i++) meanTerm += (mu1[i]! - mu2[i]!) ** 2;
    assert.ok(Math.abs(frechetDistance({ mean: mu1, cov: s }, { mean: mu2, cov: s }) - meanTerm) < 1e-11);
    const s2 = randomSpd(dim, next);
    const ab = frechetDistance({ mean: mu1, cov: s }, { mean: mu2, cov: s2 });
    const ba = frechetDistance({ mean: mu2, cov: s2 }, { mean: mu1, cov: s });
    assert.ok(Math.abs(ab - ba) < 1e-11 * Math.max(1, ab));
  });

  test("random SPD matrices: tr((S1 S2)^1/2) matches a Denman-Beavers square root of S1 S2", () => {
    const next = rng(5);
    for (const dim of [2, 3, 8, 16, 32]) {
      const s1 = randomSpd(dim, next, 0.5);
      const s2 = randomSpd(dim, next, 0.5);
      const reference = trace(sqrtmDenmanBeavers(matmul(s1, s2, dim), dim), dim);
      const ours = traceSqrtProduct(s1, s2, dim);
      assert.ok(Math.abs(ours - reference) < 1e-9 * Math.abs(reference), `dim ${dim}: ${ours} vs ${reference}`);
    }
  });

  test("rank-deficient covariances (fewer samples than dimensions) stay finite and non-negative", () => {
    const next = rng(6);
    const dim = 32;
    const a = Float64Array.from({ length: 10 * dim }, () => next());
    const b = Float64Array.from({ length: 12 * dim }, () => next() + 0.1);
    const fd = featureFrechetDistance(a, 10, b, 12, dim);
    assert.ok(Number.isFinite(fd) && fd > 0);
    // Invariant under a rotation of the feature space (here a permutation with sign flips).
    const perm = Array.from({ length: dim }, (_, i) => (i * 7) % dim);
    const rot = (x: Float64Array, n: number) => Float64Array.from({ length: n * dim }, (_, k) => (perm[k % dim]! % 2 ? -1 : 1) * x[Math.floor(k / dim) * dim + perm[k % dim]!]!);
    // (sqrt of the ~1e-17 round-off eigenvalues of the null space limits the agreement to ~1e-9 relative)
    assert.ok(Math.abs(featureFrechetDistance(rot(a, 10), 10, rot(b, 12), 12, dim) - fd) < 1e-7 * fd);
  });

  test("input errors", () => {
    assert.throws(() => gaussianFit([1, 2], 1, 2), /at least 2 samples/);
    assert.throws(() => gaussianFit([1, 2, 3], 2, 2), /not 2 rows/);
    assert.throws(() => frechetDistance({ mean: new Float64Array(2), cov: new Float64Array(4) }, { mean: new Float64Array(3), cov: new Float64Array(9) }), /dimensions differ/);
  });
});

describe("copy check", () => {
  test("nearest training distance and index", () => {
    const train = Float32Array.of(0, 0, 1, 1, 3, 4); // three 2-pixel "images"
    const samples = Float32Array.of(0, 0, 3, 4.5, 1, 2);
    const r = nearestTrainingDistance(samples, train, 2);
    assert.deepEqual([...r.nearest], [0, 2, 1]);
    assert.deepEqual([...r.distances], [0, 0.5, 1]);
    assert.equal(r.median, 0.5);
    assert.equal(median([3, 1, 2, 10]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  test("copies of training images are all closer than the held-out median; far samples are not", () => {
    const next = rng(7);
    const train = Float32Array.from({ length: 50 * 64 }, () => next());
    const heldOut = Float32Array.from({ length: 20 * 64 }, () => next());
    const copies = train.slice(0, 10 * 64);
    const c = copyCheck(copies, train, heldOut);
    assert.equal(c.medianNearestTrainDistance, 0);
    assert.equal(c.fractionCloserThanTestMedian, 1);
    assert.ok(c.testMedianNearestTrainDistance > 1);
    const far = Float32Array.from({ length: 10 * 64 }, () => 5 + next());
    assert.equal(copyCheck(far, train, heldOut).fractionCloserThanTestMedian, 0);
  });
});
