// Counter-based random numbers: Threefry-2x32 known answers, keys/splitting, and the
// distributions' statistics. Statistical bounds are 5 standard errors (two-sided p ~ 6e-7 for
// a correct generator), or chi-square quantiles at p ~ 1e-6; seeds are fixed, so runs are deterministic.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as td from "../../src/engine/index.ts";

const { random } = td;

function moments(v: ArrayLike<number>): { mean: number; variance: number; kurtosis: number } {
  const n = v.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += v[i]!;
  const mean = s / n;
  let m2 = 0, m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = v[i]! - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  return { mean, variance: m2 / n, kurtosis: m4 / n / (m2 / n) ** 2 };
}

function chiSquare(counts: number[], expected: number[]): number {
  return counts.reduce((p, c, i) => p + (c - expected[i]!) ** 2 / expected[i]!, 0);
}

describe("threefry2x32 known-answer vectors (Random123 / JAX)", () => {
  const vectors: [[number, number], [number, number], [number, number]][] = [
    [[0, 0], [0, 0], [0x6b200159, 0x99ba4efe]],
    [[0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x1cb996fc, 0xbb002be7]],
    [[0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3], [0xc4923a9c, 0x483df7a0]],
  ];
  for (const [key, [c0, c1], expected] of vectors) {
    const hex = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
    test(`key (${key.map(hex)}) counter (${hex(c0)}, ${hex(c1)}) -> (${expected.map(hex)})`, () => {
      assert.deepEqual(random.threefry2x32(key, c0, c1).map((v) => v >>> 0), expected);
    });
  }
  test("outputs are unsigned 32-bit words", () => {
    for (let i = 0; i < 100; i++) {
      for (const w of random.threefry2x32([i, 7], i * 3, 0xfffffff0)) assert.ok(Number.isInteger(w) && w >= 0 && w < 2 ** 32);
    }
  });
});

describe("keys", () => {
  test("key(seed) = [high word, low word]; invalid seeds throw", () => {
    assert.deepEqual(random.key(0), [0, 0]);
    assert.deepEqual(random.key(42), [0, 42]);
    assert.deepEqual(random.key(2 ** 32 + 5), [1, 5]);
    assert.throws(() => random.key(-1), /random\.key: seed must be a non-negative integer, got -1/);
    assert.throws(() => random.key(1.5), /random\.key: seed must be a non-negative integer, got 1\.5/);
  });

  test("same key -> same numbers; different keys -> different numbers", () => {
    const k = random.key(42);
    assert.deepEqual(random.uniformArray(k, 10), random.uniformArray(random.key(42), 10));
    assert.deepEqual(random.normalArray(k, 9), random.normalArray(k, 9));
    assert.deepEqual(random.randomBits(k, 7), random.randomBits(k, 7));
    assert.deepEqual(random.choice(k, 5, 20, [1, 2, 3, 4, 5]), random.choice(k, 5, 20, [1, 2, 3, 4, 5]));
    assert.deepEqual(random.truncatedNormalArray(k, 50), random.truncatedNormalArray(k, 50));
    assert.notDeepEqual(random.uniformArray(random.key(43), 10), random.uniformArray(k, 10));
    // Shorter draws are prefixes of longer ones (values depend only on the key and the position).
    assert.deepEqual(random.uniformArray(k, 5), random.uniformArray(k, 8).slice(0, 5));
    assert.deepEqual(random.normalArray(k, 3), random.normalArray(k, 6).slice(0, 3));
  });

  test("normalFromKey (the key as an int32 tensor, for captured steps) is random.normal on the CPU backend, exactly", () => {
    td.tidy(() => {
      for (const k of [random.key(2 ** 33 + 17), [0xdeadbeef, 0x80000001] as const]) {
        const words = random.keyWords(k);
        assert.deepEqual([words[0]! >>> 0, words[1]! >>> 0], [k[0] >>> 0, k[1] >>> 0]);
        const fromKey = random.normalFromKey(td.tensor(words, [2], "int32"), [3, 5]);
        assert.deepEqual(fromKey.data, random.normal(k, [3, 5]).data);
        assert.deepEqual(random.normalFromKey(td.tensor(words, [2], "int32"), [7], "float64").data, Float64Array.from(random.normalArray(k, 7)));
      }
      assert.throws(() => random.normalFromKey(td.zeros([3], "int32"), [2]), /int32 \[2\]/);
      assert.throws(() => random.normalFromKey(td.zeros([2], "int32"), [2], "int32"), /float dtype/);
    });
  });

  test("randomBits (rounds spelled out) gives threefry2x32's words: counter j -> words 2j, 2j + 1", () => {
    for (const k of [[0, 0], [1, 2], [0xffffffff, 0x12345678], random.key(2 ** 40 + 3)] as const) {
      for (const n of [1, 2, 7, 64, 1001]) {
        const bits = random.randomBits(k, n);
        assert.equal(bits.length, n);
        for (let i = 0; i < n; i++) assert.equal(bits[i], random.threefry2x32(k, i >>> 1, 0x5bd1e995)[i % 2], `key ${k}, n ${n}, word ${i}`);
      }
    }
  });

  test("split: deterministic, all keys distinct from each other and from the parent; foldIn", () => {
    const k = random.key(7);
    const keys = random.split(k, 8);
    assert.equal(keys.length, 8);
    assert.deepEqual(keys, random.split(random.key(7), 8));
    const names = new Set([k, ...keys].map((x) => `${x[0]},${x[1]}`));
    assert.equal(names.size, 9);
    assert.equal(random.split(k).length, 2, "default is 2");
    assert.deepEqual(random.split(k, 3).slice(0, 2), random.split(k, 2), "a key's i-th child does not depend on n");
    // Children produce unrelated streams.
    const [a, b] = random.split(k) as [td.random.RandomKey, td.random.RandomKey];
    assert.notDeepEqual(random.uniformArray(a, 4), random.uniformArray(b, 4));
    assert.notDeepEqual(random.uniformArray(a, 4), random.uniformArray(k, 4));
    assert.notDeepEqual(random.foldIn(k, 1), random.foldIn(k, 2));
    assert.deepEqual(random.foldIn(k, 1), random.foldIn(random.key(7), 1));
    // Splitting is a pure function of the key: the parent is unchanged.
    assert.deepEqual(k, [0, 7]);
  });
});

describe("distributions", () => {
  const N = 100_000;

  test("uniformArray: in [0,1), mean 1/2, variance 1/12, 20-bin chi-square", () => {
    const u = random.uniformArray(random.key(1), N);
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const { mean, variance } = moments(u);
    // Standard error of the mean sqrt(1/12/N) = 9.1e-4 -> 5 SE = 4.6e-3.
    assert.ok(Math.abs(mean - 0.5) < 4.6e-3, `mean ${mean}`);
    // SE of the variance sqrt((1/80 - 1/144)/N) = 2.4e-4 -> 5 SE = 1.2e-3.
    assert.ok(Math.abs(variance - 1 / 12) < 1.2e-3, `variance ${variance}`);
    const counts = new Array<number>(20).fill(0);
    for (const v of u) counts[Math.floor(v * 20)]!++;
    // 19 degrees of freedom: P(chi2 > 55) ~ 2e-5.
    assert.ok(chiSquare(counts, counts.map(() => N / 20)) < 55, `chi-square ${chiSquare(counts, counts.map(() => N / 20))}`);
  });

  test("normalArray: 100k samples have mean 0, variance 1, kurtosis 3 within 5 SE", () => {
    const z = random.normalArray(random.key(2), N);
    const { mean, variance, kurtosis } = moments(z);
    assert.ok(Math.abs(mean) < 5 / Math.sqrt(N), `mean ${mean} (bound ${5 / Math.sqrt(N)})`); // 0.0158
    assert.ok(Math.abs(variance - 1) < 5 * Math.sqrt(2 / N), `variance ${variance} (bound ${5 * Math.sqrt(2 / N)})`); // 0.0224
    assert.ok(Math.abs(kurtosis - 3) < 5 * Math.sqrt(24 / N), `kurtosis ${kurtosis} (bound ${5 * Math.sqrt(24 / N)})`); // 0.077
    // Tail mass beyond |z| > 2 is 4.55%; SE sqrt(p(1-p)/N) = 6.6e-4 -> 5 SE = 3.3e-3.
    const tail = z.filter((v) => Math.abs(v) > 2).length / N;
    assert.ok(Math.abs(tail - 0.0455) < 3.3e-3, `tail ${tail}`);
    assert.ok(z.every(Number.isFinite));
  });

  test("choice with probabilities matches the frequencies (chi-square), zero-probability never drawn", () => {
    const probs = [1, 2, 0, 3, 4]; // unnormalized
    const draws = random.choice(random.key(3), 5, N, probs);
    assert.ok(draws.every((v) => v >= 0 && v < 5));
    const counts = new Array<number>(5).fill(0);
    for (const d of draws) counts[d]!++;
    assert.equal(counts[2], 0);
    const nz = [0, 1, 3, 4];
    const stat = chiSquare(nz.map((i) => counts[i]!), nz.map((i) => (N * probs[i]!) / 10));
    // 3 degrees of freedom: P(chi2 > 30) ~ 1.4e-6.
    assert.ok(stat < 30, `chi-square ${stat}, counts ${counts}`);
    // A wrong distribution is far outside the bound: these counts against uniform expectations.
    assert.ok(chiSquare(nz.map((i) => counts[i]!), nz.map(() => N / 4)) > 1000);
  });

  test("choice without probabilities is uniform over [0, n); argument errors", () => {
    const draws = random.choice(random.key(4), 7, 70_000);
    const counts = new Array<number>(7).fill(0);
    for (const d of draws) counts[d]!++;
    // 6 degrees of freedom: P(chi2 > 38) ~ 1.2e-6.
    assert.ok(chiSquare(counts, counts.map(() => 10_000)) < 38, `counts ${counts}`);
    assert.throws(() => random.choice(random.key(1), 3, 5, [1, 2]), /random\.choice: 2 probabilities for 3 choices/);
    assert.throws(() => random.choice(random.key(1), 2, 5, [1, -1]), /random\.choice: probability 1 is -1/);
    assert.throws(() => random.choice(random.key(1), 2, 5, [0, 0]), /random\.choice: probabilities sum to zero/);
  });

  test("truncatedNormalArray stays within its bounds with the truncated moments", () => {
    const t = random.truncatedNormalArray(random.key(5), N);
    assert.equal(t.length, N);
    assert.ok(t.every((v) => v >= -2 && v <= 2));
    const { mean, variance } = moments(t);
    // Truncated at +-2: variance 1 - 4 phi(2) / (Phi(2) - Phi(-2)) = 0.77374 (untruncated: 1);
    // E[z^4] = 3 - 28 phi(2) / 0.9545 = 1.4162. 5 SE of the mean = 5 sqrt(0.77374 / N) = 0.014,
    // of the variance 5 sqrt((1.4162 - 0.77374^2) / N) = 0.0143.
    assert.ok(Math.abs(mean) < 0.014, `mean ${mean}`);
    assert.ok(Math.abs(variance - 0.77374) < 0.0143, `variance ${variance}`);
    const narrow = random.truncatedNormalArray(random.key(6), 1000, 0.5, 1.5);
    assert.ok(narrow.every((v) => v >= 0.5 && v <= 1.5));
    assert.equal(new Set(narrow).size, 1000, "values are not repeated");
  });

  test("tensor versions: uniform(low, high) and normal with shape and dtype", () => {
    td.tidy(() => {
      const u = random.uniform(random.key(8), [100, 10], "float64", -3, 5);
      assert.deepEqual([...u.shape], [100, 10]);
      assert.equal(u.dtype, "float64");
      assert.ok(u.toArray().every((v) => v >= -3 && v < 5));
      assert.ok(Math.abs(td.mean(u).item() - 1) < 5 * 8 / Math.sqrt(12 * 1000)); // 5 SE = 0.365
      const n = random.normal(random.key(9), [2, 3]);
      assert.equal(n.dtype, "float32");
      assert.deepEqual(n.toArray(), Array.from(random.normalArray(random.key(9), 6), Math.fround));
    });
  });

  test("randomBits: each of the 32 bit positions is set half the time", () => {
    const bits = random.randomBits(random.key(10), 20_001);
    assert.equal(bits.length, 20_001);
    for (let b = 0; b < 32; b++) {
      let ones = 0;
      for (const w of bits) ones += (w >>> b) & 1;
      // SE sqrt(N/4) = 70.7 -> 5 SE = 354.
      assert.ok(Math.abs(ones - 20_001 / 2) < 354, `bit ${b}: ${ones}`);
    }
  });
});
