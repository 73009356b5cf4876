// Bit-compatible re-implementation of scikit-learn's
//   train_test_split(range(n), test_size=f, random_state=seed)
// i.e. numpy's legacy RandomState(seed).permutation(n) (MT19937 + "random_interval" rejection sampling),
// then test = perm[:ceil(f*n)], train = perm[ceil(f*n):]. This lets every digit selection get the same
// kind of split the tutorial used for the 1s (and reproduces data/split_digit1.json exactly).

/** MT19937 with numpy's legacy integer seeding (init_genrand). */
export class Mt19937 {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`MT19937 seed must be a uint32, got ${seed}`);
    const mt = this.state;
    mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      // 1812433253 * prev mod 2^32, split in 16-bit halves to stay exact in doubles.
      mt[i] = (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
    }
  }

  private twist(): void {
    const mt = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
      mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  nextUint32(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** numpy's random_interval(max): uniform integer in [0, max] by masking and rejection (max < 2^32). */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let value: number;
    do value = (this.nextUint32() & mask) >>> 0;
    while (value > max);
    return value;
  }
}

/** numpy.random.RandomState(seed).permutation(n): Fisher-Yates from the end, as numpy's legacy shuffle. */
export function numpyLegacyPermutation(n: number, seed: number): Int32Array {
  const rng = new Mt19937(seed);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.interval(i);
    const tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  return perm;
}

export interface SplitIndices {
  train: Int32Array;
  test: Int32Array;
}

/**
 * scikit-learn's train_test_split indices for n samples with a float test_size:
 * n_test = ceil(testSize * n), n_train = n - n_test; test comes first in the permutation.
 */
export function sklearnTrainTestSplit(n: number, testSize = 0.05, seed = 42): SplitIndices {
  if (!(testSize > 0 && testSize < 1)) throw new Error(`testSize must be in (0, 1), got ${testSize}`);
  const nTest = Math.ceil(testSize * n);
  if (nTest >= n) throw new Error(`split of ${n} samples with testSize ${testSize} leaves no training samples`);
  const perm = numpyLegacyPermutation(n, seed);
  return { test: perm.slice(0, nTest), train: perm.slice(nTest) };
}
