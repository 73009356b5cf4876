// Finite-difference gradient checks for the engine (float64), first and second order,
// plus deterministic input generators that keep away from kinks.
//
// First order: for a random cotangent u (so non-scalar outputs are covered),
//   analytic  = gradients(f(x), xs, { seed: u })
//   numeric_j = (L(x + eps e_j) - L(x - eps e_j)) / (2 eps),  L(x) = <u, f(x)>.
// Second order: for a random direction v_i per input,
//   analytic  = gradients(S, xs) with S = sum_i <v_i, g_i(x)>, g from gradients(..., { seed: u, createGraph: true })
//   numeric_j = (S(x + eps e_j) - S(x - eps e_j)) / (2 eps), S evaluated with first-order gradients.
//
// Tolerances (defaults): |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|),
// rtol = 1e-5, atol = 1e-6. Why: with eps = 1e-6 in float64 the central difference has
// truncation error ~eps^2 |f'''| / 6 ~ 1e-13 and rounding error ~2^-52 |L| / eps ~ 2e-10 |L|;
// our test functions have |L| <= ~100, so the numeric error is <= ~1e-8, about 100x below atol,
// while a wrong gradient rule is off by O(1) relative error.
import assert from "node:assert/strict";
import { gradients, noGrad, random, tensor, tidy, add, mul, sum, type Tensor } from "../../src/engine/index.ts";

export interface GradcheckOptions {
  /** Label used in failure messages. */
  name?: string;
  /** Central-difference step (default 1e-6). */
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Also check second derivatives (default true). */
  secondOrder?: boolean;
  /** Seed of the random cotangent / directions. */
  seed?: number;
  /** Separate tolerances for the second-order check (default: same as first order). */
  rtol2?: number;
  atol2?: number;
}

// ---- deterministic inputs ------------------------------------------------

/** Standard normals * scale + shift, float64, from the engine's Threefry generator. */
export function randn(seed: number, shape: readonly number[], scale = 1, shift = 0): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = random.normalArray(random.key(seed), n);
  for (let i = 0; i < n; i++) v[i] = v[i]! * scale + shift;
  return tensor(v, shape, "float64");
}

/** Normals pushed away from 0: sign(z) * (min + |z| * scale). For abs/sign/div/reciprocal. */
export function awayFromZero(seed: number, shape: readonly number[], min = 0.3, scale = 1): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = random.normalArray(random.key(seed), n);
  for (let i = 0; i < n; i++) v[i] = (v[i]! >= 0 ? 1 : -1) * (min + Math.abs(v[i]!) * scale);
  return tensor(v, shape, "float64");
}

/** Uniform in [lo, hi), float64. For log/sqrt/rsqrt/pow bases/cumprod. */
export function uniformIn(seed: number, shape: readonly number[], lo: number, hi: number): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = random.uniformArray(random.key(seed), n);
  for (let i = 0; i < n; i++) v[i] = lo + (hi - lo) * v[i]!;
  return tensor(v, shape, "float64");
}

/**
 * A shuffled grid center + k * spacing (k integer, |k| <= n/2): all values distinct, any two
 * at least `spacing` apart. Two grids with centers offset by spacing/2 never come closer than spacing/2.
 * For max/maxPool/maximum/clip: no ties, and eps = 1e-6 can never flip an ordering.
 */
export function distinct(seed: number, shape: readonly number[], spacing = 0.1, center = 0.0137): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const u = random.uniformArray(random.key(seed), n);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => u[a]! - u[b]!);
  const v = new Float64Array(n);
  order.forEach((slot, rank) => (v[slot] = center + (rank - Math.floor((n - 1) / 2)) * spacing));
  return tensor(v, shape, "float64");
}

// ---- comparison ------------------------------------------------------------

export interface Mismatch {
  index: number;
  actual: number;
  expected: number;
  diff: number;
  tol: number;
}

/** The worst element with |a - e| > atol + rtol * max(|a|, |e|), or null. */
export function worstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): Mismatch | null {
  assert.equal(actual.length, expected.length, "length mismatch");
  let worst: Mismatch | null = null;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const diff = Math.abs(a - e);
    const tol = atol + rtol * Math.max(Math.abs(a), Math.abs(e));
    if (!(diff <= tol) && (!worst || diff - tol > worst.diff - worst.tol)) worst = { index: i, actual: a, expected: e, diff, tol };
  }
  return worst;
}

/** Asserts elementwise closeness (NaN never passes). */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, label = ""): void {
  const w = worstMismatch(actual, expected, rtol, atol);
  if (w) {
    assert.fail(`${label}: element ${w.index}: got ${w.actual}, expected ${w.expected} (|diff| ${w.diff.toExponential(3)} > tol ${w.tol.toExponential(3)})`);
  }
}

/** Asserts a tensor's shape and values. */
export function assertTensor(t: Tensor, shape: readonly number[], expected: ArrayLike<number>, rtol: number, atol: number, label = ""): void {
  assert.deepEqual([...t.shape], [...shape], `${label}: shape`);
  assertClose(t.data, expected, rtol, atol, label);
}

// ---- gradient checks ---------------------------------------------------------

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function withGrad<T>(xs: readonly Tensor[], fn: () => T): T {
  const before = xs.map((x) => x.requiresGrad);
  for (const x of xs) x.requiresGrad = true;
  try {
    return fn();
  } finally {
    xs.forEach((x, i) => (x.requiresGrad = before[i]!));
  }
}

/** Central differences of a scalar function of the inputs' values, one element at a time. */
function numericGradient(xs: readonly Tensor[], eps: number, value: () => number): Float64Array[] {
  return xs.map((x) => {
    const d = x.data as Float64Array;
    const out = new Float64Array(d.length);
    for (let j = 0; j < d.length; j++) {
      const orig = d[j]!;
      d[j] = orig + eps;
      const plus = value();
      d[j] = orig - eps;
      const minus = value();
      d[j] = orig;
      out[j] = (plus - minus) / (2 * eps);
    }
    return out;
  });
}

/** First-order gradients of <u, f(xs)> (fresh graph each call). */
function firstOrder(f: (...xs: Tensor[]) => Tensor, xs: readonly Tensor[], u: Float64Array): Float64Array[] {
  return tidy(() =>
    withGrad(xs, () => {
      const y = f(...xs);
      const gs = gradients(y, xs, { seed: tensor(u, y.shape, "float64") });
      gs.forEach((g, i) => assert.deepEqual([...g.shape], [...xs[i]!.shape], `gradient ${i} has the input's shape`));
      return gs.map((g) => Float64Array.from(g.data));
    }),
  );
}

function report(name: string, what: string, i: number, xs: readonly Tensor[], w: Mismatch): string {
  return `${name}: ${what} w.r.t. input ${i} (shape [${xs[i]!.shape.join(",")}]) element ${w.index}: analytic ${w.actual}, numeric ${w.expected} (|diff| ${w.diff.toExponential(3)} > tol ${w.tol.toExponential(3)})`;
}

/**
 * Checks gradients of f at xs (all float64) against finite differences; throws an
 * AssertionError naming the input and element on failure. Inputs are restored afterwards.
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, xs: readonly Tensor[], options: GradcheckOptions = {}): void {
  const name = options.name ?? "gradcheck";
  const eps = options.eps ?? 1e-6;
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  const rtol2 = options.rtol2 ?? rtol;
  const atol2 = options.atol2 ?? atol;
  const seed = options.seed ?? 1234;
  for (const x of xs) assert.equal(x.dtype, "float64", `${name}: gradcheck inputs must be float64`);

  // Output shape/dtype and the random cotangent.
  const outShape = tidy(() => {
    const y = noGrad(() => f(...xs));
    assert.equal(y.dtype, "float64", `${name}: output must be float64`);
    return [...y.shape];
  });
  const outSize = outShape.reduce((p, d) => p * d, 1);
  const u = random.normalArray(random.key(seed), outSize);
  const value = (): number => tidy(() => dot(noGrad(() => f(...xs)).data, u));

  // (a) first order.
  const analytic = firstOrder(f, xs, u);
  const numeric = numericGradient(xs, eps, value);
  analytic.forEach((a, i) => {
    const w = worstMismatch(a, numeric[i]!, rtol, atol);
    if (w) assert.fail(report(name, "first-order gradient", i, xs, w));
  });
  if (options.secondOrder === false) return;

  // (b) second order: d/dx <v, g(x)> with g recorded (createGraph) vs differences of g.
  const vs = xs.map((x, i) => random.normalArray(random.key(seed + 1 + i), x.size));
  const analytic2 = tidy(() =>
    withGrad(xs, () => {
      const y = f(...xs);
      const gs = gradients(y, xs, { seed: tensor(u, y.shape, "float64"), createGraph: true });
      let s: Tensor | null = null;
      gs.forEach((g, i) => {
        const term = sum(mul(g, tensor(vs[i]!, g.shape, "float64")));
        s = s ? add(s, term) : term;
      });
      const hs = gradients(s!, xs);
      hs.forEach((h, i) => assert.deepEqual([...h.shape], [...xs[i]!.shape], `second-order gradient ${i} has the input's shape`));
      return hs.map((h) => Float64Array.from(h.data));
    }),
  );
  const numeric2 = numericGradient(xs, eps, () => firstOrder(f, xs, u).reduce((acc, g, i) => acc + dot(g, vs[i]!), 0));
  analytic2.forEach((a, i) => {
    const w = worstMismatch(a, numeric2[i]!, rtol2, atol2);
    if (w) assert.fail(report(name, "second-order gradient", i, xs, w));
  });
}
