// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// f32x4 versions of exp, log and tanh (Cephes-style range reduction + minimax polynomials, within 1 ulp of
// the correctly rounded result on the tested ranges), and helpers for the elementwise kernels.
//
// V8 builds every v128 constant with several instructions wherever it is used (it does not hoist them out
// of loops), so the constants live in a table in memory (written once by initConstants) and are read with
// v128.load32_splat, one instruction each. `k` is the table's address.

// Table slots (byte offsets), f32 unless noted.
// 0 exp hi clamp, 4 exp lo clamp, 8 log2(e), 12 1.5*2^23, 16 ln2 hi, 20 ln2 lo, 24..44 exp poly p0..p5,
// 48 one, 52 i32 0x4b400000, 56 i32 127, 60 +inf, 64 -inf, 68 NaN, 72 2^23, 76 smallest normal,
// 80 i32 0x807fffff, 84 i32 0x3f000000, 88 sqrt(1/2), 92..124 log poly q0..q8, 128 half, 132 i32 126,
// 136..152 tanh poly t0..t4, 156 0.625, 160 two, 164 twenty, 168 i32 sign bit, 172 zero.
// f64 (gelu): 256 c = sqrt(2/pi), 264 a = 0.044715, 272 3a, 280 6ac, 288 -2, 296 -708 (exp clamp),
// 304 log2(e), 312 1.5*2^52, 320 ln2 hi, 328 ln2 lo, 336..400 exp poly 1/10! .. 1/2!, 408 one,
// 416 i64 1023, 424 half, 432 two, 440 four, 448 zero.
export const CONSTANTS_BYTES = 512;

export function initConstants(k: usize): void {
  store<f32>(k, 88.72283935546875, 0);
  store<f32>(k, -103.97208, 4);
  store<f32>(k, 1.44269504088896341, 8);
  store<f32>(k, 12582912.0, 12);
  store<f32>(k, 0.693359375, 16);
  store<f32>(k, -2.12194440e-4, 20);
  store<f32>(k, 1.9875691500e-4, 24);
  store<f32>(k, 1.3981999507e-3, 28);
  store<f32>(k, 8.3334519073e-3, 32);
  store<f32>(k, 4.1665795894e-2, 36);
  store<f32>(k, 1.6666665459e-1, 40);
  store<f32>(k, 5.0000001201e-1, 44);
  store<f32>(k, 1.0, 48);
  store<i32>(k, 0x4b400000, 52);
  store<i32>(k, 127, 56);
  store<f32>(k, Infinity, 60);
  store<f32>(k, -Infinity, 64);
  store<f32>(k, NaN, 68);
  store<f32>(k, 8388608.0, 72);
  store<f32>(k, 1.17549435e-38, 76);
  store<i32>(k, 0x807fffff, 80);
  store<i32>(k, 0x3f000000, 84);
  store<f32>(k, 0.707106781186547524, 88);
  store<f32>(k, 7.0376836292e-2, 92);
  store<f32>(k, -1.1514610310e-1, 96);
  store<f32>(k, 1.1676998740e-1, 100);
  store<f32>(k, -1.2420140846e-1, 104);
  store<f32>(k, 1.4249322787e-1, 108);
  store<f32>(k, -1.6668057665e-1, 112);
  store<f32>(k, 2.0000714765e-1, 116);
  store<f32>(k, -2.4999993993e-1, 120);
  store<f32>(k, 3.3333331174e-1, 124);
  store<f32>(k, 0.5, 128);
  store<i32>(k, 126, 132);
  store<f32>(k, -5.70498872745e-3, 136);
  store<f32>(k, 2.06390887954e-2, 140);
  store<f32>(k, -5.37397155531e-2, 144);
  store<f32>(k, 1.33314422036e-1, 148);
  store<f32>(k, -3.33332819422e-1, 152);
  store<f32>(k, 0.625, 156);
  store<f32>(k, 2.0, 160);
  store<f32>(k, 20.0, 164);
  store<i32>(k, 0x80000000, 168);
  store<f32>(k, 0.0, 172);
  const c = Math.sqrt(2 / Math.PI);
  const a = 0.044715;
  store<f64>(k, c, 256);
  store<f64>(k, a, 264);
  store<f64>(k, 3 * a, 272);
  store<f64>(k, 6 * a * c, 280);
  store<f64>(k, -2.0, 288);
  store<f64>(k, -708.0, 296);
  store<f64>(k, 1.4426950408889634, 304);
  store<f64>(k, 6755399441055744.0, 312);
  store<f64>(k, 6.93147180369123816490e-01, 320);
  store<f64>(k, 1.90821492927058770002e-10, 328);
  let f: f64 = 1;
  for (let i = 2; i <= 10; i++) {
    f *= <f64>i;
    store<f64>(k + <usize>(400 - 8 * (i - 2)), 1 / f);
  }
  store<f64>(k, 1.0, 408);
  store<i64>(k, 1023, 416);
  store<f64>(k, 0.5, 424);
  store<f64>(k, 2.0, 432);
  store<f64>(k, 4.0, 440);
  store<f64>(k, 0.0, 448);
}

/**
 * exp(t) on f64x2 for t in [-708, 0] (callers clamp): t = n ln2 + r (Cody-Waite), |r| <= ln2/2, exp(r) by
 * its Taylor polynomial of degree 10 (truncation < 3e-13 relative), times 2^n (a normal double).
 */
@inline function expNeg64(t: v128, k: usize): v128 {
  const magic = v128.load64_splat(k, 312);
  const kf = f64x2.add(f64x2.mul(t, v128.load64_splat(k, 304)), magic);
  const n = f64x2.sub(kf, magic);
  let r = f64x2.sub(t, f64x2.mul(n, v128.load64_splat(k, 320)));
  r = f64x2.sub(r, f64x2.mul(n, v128.load64_splat(k, 328)));
  // The polynomial 1/2! + r/3! + ... + r^8/10! by Estrin's scheme (short dependency chains: the gelu
  // loops are latency bound).
  const r2 = f64x2.mul(r, r);
  const r4 = f64x2.mul(r2, r2);
  const p01 = f64x2.add(v128.load64_splat(k, 400), f64x2.mul(v128.load64_splat(k, 392), r));
  const p23 = f64x2.add(v128.load64_splat(k, 384), f64x2.mul(v128.load64_splat(k, 376), r));
  const p45 = f64x2.add(v128.load64_splat(k, 368), f64x2.mul(v128.load64_splat(k, 360), r));
  const p67 = f64x2.add(v128.load64_splat(k, 352), f64x2.mul(v128.load64_splat(k, 344), r));
  const q0 = f64x2.add(p01, f64x2.mul(p23, r2));
  const q1 = f64x2.add(p45, f64x2.mul(p67, r2));
  const p = f64x2.add(q0, f64x2.mul(f64x2.add(q1, f64x2.mul(v128.load64_splat(k, 336), r4)), r4));
  const y = f64x2.add(v128.load64_splat(k, 408), f64x2.add(r, f64x2.mul(r2, p)));
  // n is in the low bits of kf; 2^n = (n + 1023) << 52 for n >= -1022.
  return f64x2.mul(y, i64x2.shl(i64x2.add(i64x2.sub(kf, magic), v128.load64_splat(k, 416)), 52));
}

/**
 * gelu (which 0), gelu' (1) or gelu'' (2) on f64x2: the reference's expressions (backends/cpu/elementwise.ts),
 * operation for operation, with its Math.exp replaced by expNeg64.
 */
@inline function gelu64(x: v128, k: usize, which: i32): v128 {
  const one = v128.load64_splat(k, 408);
  const c = v128.load64_splat(k, 256);
  const x2 = f64x2.mul(x, x);
  const u = f64x2.mul(c, f64x2.add(x, f64x2.mul(v128.load64_splat(k, 264), f64x2.mul(x, x2))));
  // e = exp(-2|u|), flushed to 0 below exp(-708) (where every result rounds to a float32 zero anyway,
  // except x = -inf: NaN as the reference); NaN lanes give e = 0 and propagate through x and u.
  const t = f64x2.mul(v128.load64_splat(k, 288), f64x2.abs(u));
  const lo = v128.load64_splat(k, 296);
  const e = v128.and(expNeg64(f64x2.pmax(t, lo), k), f64x2.ge(t, lo));
  const d = f64x2.div(one, f64x2.add(one, e));
  const ed = f64x2.mul(e, d);
  const pos = f64x2.ge(u, v128.load64_splat(k, 448));
  const s = v128.bitselect(d, ed, pos);
  if (which == 0) return f64x2.mul(x, s);
  const up = f64x2.mul(c, f64x2.add(one, f64x2.mul(v128.load64_splat(k, 272), x2)));
  const q = f64x2.mul(ed, d);
  if (which == 1) return f64x2.add(s, f64x2.mul(f64x2.mul(f64x2.mul(v128.load64_splat(k, 432), x), q), up));
  const m = f64x2.mul(f64x2.sub(one, e), d);
  const th = v128.bitselect(m, f64x2.neg(m), pos);
  const a1 = f64x2.add(up, f64x2.mul(f64x2.mul(v128.load64_splat(k, 424), x), f64x2.mul(v128.load64_splat(k, 280), x)));
  const a2 = f64x2.mul(f64x2.mul(f64x2.mul(x, th), up), up);
  return f64x2.mul(f64x2.mul(v128.load64_splat(k, 440), q), f64x2.sub(a1, a2));
}

/** gelu / gelu' / gelu'' (which 0 / 1 / 2) of four floats, evaluated in double precision and rounded once. */
@inline export function gelu4(x: v128, k: usize, which: i32): v128 {
  const lo = gelu64(f64x2.promote_low_f32x4(x), k, which);
  const hi = gelu64(f64x2.promote_low_f32x4(v128.shuffle<i64>(x, x, 1, 0)), k, which);
  return v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
}

/**
 * exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, scaled by 2^n in two steps (so
 * results in the subnormal range round correctly). n is rounded with the 1.5 * 2^23 trick; pmin/pmax clamp
 * in one instruction each (NaN lanes are restored at the end).
 */
@inline export function exp4(x: v128, k: usize): v128 {
  const hi = v128.load32_splat(k, 0);
  const xc = f32x4.pmax(f32x4.pmin(x, hi), v128.load32_splat(k, 4));
  const magic = v128.load32_splat(k, 12);
  const t = f32x4.add(f32x4.mul(xc, v128.load32_splat(k, 8)), magic);
  const n = f32x4.sub(t, magic);
  let r = f32x4.sub(xc, f32x4.mul(n, v128.load32_splat(k, 16)));
  r = f32x4.sub(r, f32x4.mul(n, v128.load32_splat(k, 20)));
  let p = v128.load32_splat(k, 24);
  p = f32x4.add(f32x4.mul(p, r), v128.load32_splat(k, 28));
  p = f32x4.add(f32x4.mul(p, r), v128.load32_splat(k, 32));
  p = f32x4.add(f32x4.mul(p, r), v128.load32_splat(k, 36));
  p = f32x4.add(f32x4.mul(p, r), v128.load32_splat(k, 40));
  p = f32x4.add(f32x4.mul(p, r), v128.load32_splat(k, 44));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), v128.load32_splat(k, 48));
  // 2^n = 2^(n >> 1) * 2^(n - (n >> 1)), each factor a normal float for n in [-150, 128].
  const ni = i32x4.sub(t, v128.load32_splat(k, 52));
  const n1 = i32x4.shr_s(ni, 1);
  const bias = v128.load32_splat(k, 56);
  const s1 = i32x4.shl(i32x4.add(n1, bias), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, n1), bias), 23);
  let y = f32x4.mul(f32x4.mul(p, s1), s2);
  y = v128.bitselect(v128.load32_splat(k, 60), y, f32x4.gt(x, hi));
  return v128.bitselect(x, y, f32x4.ne(x, x));
}

/** log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial. */
@inline export function log4(x: v128, k: usize): v128 {
  // Subnormals: scale by 2^23 first.
  const sub = f32x4.lt(x, v128.load32_splat(k, 76));
  const bits = v128.bitselect(f32x4.mul(x, v128.load32_splat(k, 72)), x, sub);
  let e = i32x4.sub(i32x4.shr_u(bits, 23), v128.load32_splat(k, 132));
  e = i32x4.sub(e, v128.and(sub, i32x4.splat(23)));
  // m in [0.5, 1)
  let m = v128.or(v128.and(bits, v128.load32_splat(k, 80)), v128.load32_splat(k, 84));
  const lo = f32x4.lt(m, v128.load32_splat(k, 88));
  // m < sqrt(1/2): e -= 1, m = 2m - 1; else m = m - 1 (lo lanes are -1).
  e = i32x4.add(e, lo);
  const one = v128.load32_splat(k, 48);
  m = f32x4.sub(f32x4.add(m, v128.and(m, lo)), one);
  const ef = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(m, m);
  let p = v128.load32_splat(k, 92);
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 96));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 100));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 104));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 108));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 112));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 116));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 120));
  p = f32x4.add(f32x4.mul(p, m), v128.load32_splat(k, 124));
  let y = f32x4.mul(f32x4.mul(p, m), z);
  y = f32x4.add(y, f32x4.mul(ef, v128.load32_splat(k, 20)));
  y = f32x4.sub(y, f32x4.mul(z, v128.load32_splat(k, 128)));
  let r = f32x4.add(f32x4.add(m, y), f32x4.mul(ef, v128.load32_splat(k, 16)));
  // Special values: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, log(NaN) = NaN.
  const zero = v128.load32_splat(k, 172);
  const inf = v128.load32_splat(k, 60);
  r = v128.bitselect(v128.load32_splat(k, 64), r, f32x4.eq(x, zero));
  r = v128.bitselect(v128.load32_splat(k, 68), r, f32x4.lt(x, zero));
  return v128.bitselect(x, r, v128.or(f32x4.eq(x, inf), f32x4.ne(x, x)));
}

/** tanh(x): an odd polynomial for |x| < 0.625, else sign(x) (1 - 2 / (exp(2|x|) + 1)). */
@inline export function tanh4(x: v128, k: usize): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = v128.load32_splat(k, 136);
  p = f32x4.add(f32x4.mul(p, z), v128.load32_splat(k, 140));
  p = f32x4.add(f32x4.mul(p, z), v128.load32_splat(k, 144));
  p = f32x4.add(f32x4.mul(p, z), v128.load32_splat(k, 148));
  p = f32x4.add(f32x4.mul(p, z), v128.load32_splat(k, 152));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const two = v128.load32_splat(k, 160);
  const one = v128.load32_splat(k, 48);
  const e = exp4(f32x4.mul(f32x4.pmin(ax, v128.load32_splat(k, 164)), two), k);
  let large = f32x4.sub(one, f32x4.div(two, f32x4.add(e, one)));
  large = v128.or(large, v128.and(x, v128.load32_splat(k, 168))); // copy the sign
  const r = v128.bitselect(small, large, f32x4.lt(ax, v128.load32_splat(k, 156)));
  return v128.bitselect(x, r, f32x4.ne(x, x));
}

/** 1 / sqrt(x) rounded once (computed in double precision, as the reference backend). */
@inline export function rsqrt4(x: v128): v128 {
  const lo = f64x2.div(f64x2.splat(1), f64x2.sqrt(f64x2.promote_low_f32x4(x)));
  const hi = f64x2.div(f64x2.splat(1), f64x2.sqrt(f64x2.promote_low_f32x4(v128.shuffle<i64>(x, x, 1, 0))));
  return v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
}

@inline export function sign4(x: v128, k: usize): v128 {
  const one = v128.load32_splat(k, 48);
  const zero = v128.load32_splat(k, 172);
  const pos = v128.and(f32x4.gt(x, zero), one);
  const neg = v128.and(f32x4.lt(x, zero), one);
  return v128.bitselect(x, f32x4.sub(pos, neg), f32x4.ne(x, x));
}

/** The vector lanes [0, n) of memory at p, the rest zero (tails of the elementwise loops). */
@inline export function loadPartial(p: usize, n: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

@inline export function storePartial(p: usize, v: v128, n: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}
