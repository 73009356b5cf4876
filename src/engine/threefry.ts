// Threefry-2x32 counter-based random numbers and the arrays drawn from them: pure functions on host
// numbers (no tensors), so that backends can draw the same values as random.ts (see Backend.randomNormal).
/** Two 32-bit words. Keys are values: splitting never mutates. */
export type RandomKey = readonly [number, number];

const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** Threefry-2x32 with 20 rounds on one counter pair (Salmon et al. 2011). */
export function threefry2x32(key: RandomKey, c0: number, c1: number): [number, number] {
  const k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  const k2 = (k0 ^ k1 ^ 0x1bd11bda) >>> 0;
  const ks = [k0, k1, k2];
  let x0 = (c0 + k0) >>> 0;
  let x1 = (c1 + k1) >>> 0;
  for (let block = 0; block < 5; block++) {
    for (let r = 0; r < 4; r++) {
      x0 = (x0 + x1) >>> 0;
      x1 = rotl(x1, ROTATIONS[(block % 2) * 4 + r]!) ^ x0;
    }
    const s = block + 1;
    x0 = (x0 + ks[s % 3]!) >>> 0;
    x1 = (x1 + ks[(s + 1) % 3]! + s) >>> 0;
  }
  return [x0, x1];
}

export function key(seed: number): RandomKey {
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`random.key: seed must be a non-negative integer, got ${seed}`);
  return [Math.floor(seed / 2 ** 32) >>> 0, seed >>> 0];
}

export function split(k: RandomKey, n = 2): RandomKey[] {
  const out: RandomKey[] = [];
  for (let i = 0; i < n; i++) out.push(threefry2x32(k, 0, i));
  return out;
}

/** A new key for each of several named uses of one parent key. */
export function foldIn(k: RandomKey, data: number): RandomKey {
  return threefry2x32(k, 0x9e3779b9, data >>> 0);
}

/** n uniform 32-bit words: threefry2x32(k, j, 0x5bd1e995) gives words 2j and 2j + 1. */
export function randomBits(k: RandomKey, n: number): Uint32Array {
  const out = new Uint32Array(n + (n % 2));
  threefryWords(k[0] >>> 0, k[1] >>> 0, 0x5bd1e995, out);
  return n % 2 ? out.subarray(0, n) : out;
}

/**
 * threefry2x32 of the counters (j, c1), j = 0, 1, ..., written to out[2j], out[2j + 1]: the same rounds
 * spelled out, without arrays (5x faster; a sampler step draws 6,400 normals, 12,800 words, per step).
 */
function threefryWords(k0: number, k1: number, c1: number, out: Uint32Array): void {
  const k2 = (k0 ^ k1 ^ 0x1bd11bda) >>> 0;
  for (let j = 0; 2 * j < out.length; j++) {
    let x0 = (j + k0) | 0;
    let x1 = (c1 + k1) | 0;
    // Rotations 13 15 26 6 | 17 29 16 24, then key injection s = 1..5 (ks[s % 3], ks[(s + 1) % 3] + s).
    x0 = (x0 + x1) | 0; x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + k1) | 0; x1 = (x1 + k2 + 1) | 0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
    x0 = (x0 + k2) | 0; x1 = (x1 + k0 + 2) | 0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + k0) | 0; x1 = (x1 + k1 + 3) | 0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
    x0 = (x0 + k1) | 0; x1 = (x1 + k2 + 4) | 0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0; x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + k2) | 0; x1 = (x1 + k0 + 5) | 0;
    out[2 * j] = x0;
    out[2 * j + 1] = x1;
  }
}

/** Uniform in [0, 1) with 53 random bits per value (in float64, before any rounding). */
export function uniformArray(k: RandomKey, n: number): Float64Array {
  const bits = randomBits(k, 2 * n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((bits[2 * i]! >>> 5) * 67108864 + (bits[2 * i + 1]! >>> 6)) / 9007199254740992;
  return out;
}

/** Standard normal by Box-Muller on pairs of uniforms. */
export function normalArray(k: RandomKey, n: number): Float64Array {
  const u = uniformArray(k, n + (n % 2));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u[i]!));
    const theta = 2 * Math.PI * u[i + 1]!;
    out[i] = r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}
