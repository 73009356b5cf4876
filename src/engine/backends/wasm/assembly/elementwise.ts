// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// Elementwise, reduction and data-movement kernels on float32 (int32 for indices). Jobs split the flat
// output range into chunks that the threads take from the job's atomic counter.
import { binary2d } from "./binary-ops";
import { unarySeg } from "./unary-ops";
import { gelu4, loadPartial, storePartial } from "./math";
import { claimChunk } from "./job";

// Elementwise job fields (i32 slots).
const E_OP = 2;
const E_A = 3;
const E_B = 4;
const E_O = 5;
const E_INNER = 6;
const E_AOS = 7;
const E_AIS = 8;
const E_BOS = 9;
const E_BIS = 10;
const E_TOTAL = 11;
const E_CHUNK = 12;

@inline function fld(job: usize, f: i32): i32 {
  return load<i32>(job + (<usize>f << 2));
}

/**
 * out[e] = a[row*aos + i*ais] op b[row*bos + i*bis] for flat output indices e in [e0, e1), where
 * row = e / inner and i = e % inner (ais, bis are 0 or 1): a partial first row, whole rows, a partial last row.
 */
export function binaryRange(op: i32, a: usize, b: usize, o: usize, inner: i32, aos: i32, ais: i32, bos: i32, bis: i32, e0: i32, e1: i32): void {
  if (e0 >= e1) return;
  let row = e0 / inner;
  let i = e0 - row * inner;
  if (i > 0) {
    const len = min(inner - i, e1 - e0);
    binary2d(op, a + (<usize>(row * aos + i * ais) << 2), b + (<usize>(row * bos + i * bis) << 2), o + (<usize>e0 << 2), 1, len, 0, ais, 0, bis);
    e0 += len;
    row++;
  }
  const rows = (e1 - e0) / inner;
  if (rows > 0) {
    binary2d(op, a + (<usize>(row * aos) << 2), b + (<usize>(row * bos) << 2), o + (<usize>e0 << 2), rows, inner, aos, ais, bos, bis);
    e0 += rows * inner;
    row += rows;
  }
  if (e0 < e1) binary2d(op, a + (<usize>(row * aos) << 2), b + (<usize>(row * bos) << 2), o + (<usize>e0 << 2), 1, e1 - e0, 0, ais, 0, bis);
}

export function binaryJob(job: usize): void {
  const total = fld(job, E_TOTAL), chunk = fld(job, E_CHUNK);
  for (let e0 = claimChunk(job, total, chunk); e0 >= 0; e0 = claimChunk(job, total, chunk)) {
    binaryRange(fld(job, E_OP), <usize>fld(job, E_A), <usize>fld(job, E_B), <usize>fld(job, E_O), fld(job, E_INNER),
      fld(job, E_AOS), fld(job, E_AIS), fld(job, E_BOS), fld(job, E_BIS), e0, min(total, e0 + chunk));
  }
}

/** Unary op codes of the gelu kernels (after the generated ones in unary-ops.ts; must match UNARY_OPS in ../index.ts). */
const OP_GELU = 11;

@inline function geluSeg(which: i32, x: usize, o: usize, n: i32, k: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    v128.store(o + off, gelu4(v128.load(x + off), k, which));
  }
  if (i < n) {
    const off = <usize>i << 2;
    storePartial(o + off, gelu4(loadPartial(x + off, n - i), k, which), n - i);
  }
}
function un_gelu(x: usize, o: usize, n: i32, k: usize): void { geluSeg(0, x, o, n, k); }
function un_geluD1(x: usize, o: usize, n: i32, k: usize): void { geluSeg(1, x, o, n, k); }
function un_geluD2(x: usize, o: usize, n: i32, k: usize): void { geluSeg(2, x, o, n, k); }

/** out[e] = op(x[e]) for e in [e0, e1); k: the constants table (see math.ts). */
export function unaryRange(op: i32, x: usize, o: usize, e0: i32, e1: i32, k: usize): void {
  if (e1 <= e0) return;
  const xs = x + (<usize>e0 << 2), os = o + (<usize>e0 << 2), n = e1 - e0;
  if (op == OP_GELU) un_gelu(xs, os, n, k);
  else if (op == OP_GELU + 1) un_geluD1(xs, os, n, k);
  else if (op == OP_GELU + 2) un_geluD2(xs, os, n, k);
  else unarySeg(op, xs, os, n, k);
}

export function unaryJob(job: usize): void {
  const total = fld(job, E_TOTAL), chunk = fld(job, E_CHUNK);
  for (let e0 = claimChunk(job, total, chunk); e0 >= 0; e0 = claimChunk(job, total, chunk)) {
    unaryRange(fld(job, E_OP), <usize>fld(job, E_A), <usize>fld(job, E_O), e0, min(total, e0 + chunk), <usize>fld(job, E_B));
  }
}

// ---- reductions (sums in double precision, as the reference) --------------------------------------
/** out[r] = sum (op 0) or max (op 1) of x[r*cols .. r*cols + cols) for rows [r0, r1). */
export function reduceRows(op: i32, x: usize, r0: i32, r1: i32, cols: i32, out: usize): void {
  for (let r = r0; r < r1; r++) {
    const p = x + (<usize>(r * cols) << 2);
    let c = 0;
    if (op == 0) {
      let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
      for (; c + 4 <= cols; c += 4) {
        const v = v128.load(p + (<usize>c << 2));
        s0 = f64x2.add(s0, f64x2.promote_low_f32x4(v));
        s1 = f64x2.add(s1, f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0)));
      }
      s0 = f64x2.add(s0, s1);
      let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
      for (; c < cols; c++) s += <f64>load<f32>(p + (<usize>c << 2));
      store<f32>(out + (<usize>r << 2), <f32>s);
    } else {
      let m = f32x4.splat(-Infinity);
      for (; c + 4 <= cols; c += 4) {
        const v = v128.load(p + (<usize>c << 2));
        m = v128.bitselect(v, m, v128.or(f32x4.gt(v, m), f32x4.ne(v, v)));
      }
      let s: f32 = -Infinity;
      for (let l = 0; l < 4; l++) {
        const v = l == 0 ? f32x4.extract_lane(m, 0) : l == 1 ? f32x4.extract_lane(m, 1) : l == 2 ? f32x4.extract_lane(m, 2) : f32x4.extract_lane(m, 3);
        if (v > s || v != v) s = v;
      }
      for (; c < cols; c++) {
        const v = load<f32>(p + (<usize>c << 2));
        if (v > s || v != v) s = v;
      }
      store<f32>(out + (<usize>r << 2), s);
    }
  }
}

/**
 * Column reduction over rows [r0, r1) of x [rows][cols] into acc: sums into f64 acc[cols] (op 0),
 * maxima into f32 acc[cols] (op 1). `init` starts acc from 0 / -inf.
 */
export function reduceColsAcc(op: i32, x: usize, r0: i32, r1: i32, cols: i32, acc: usize, init: i32): void {
  if (op == 0) {
    if (init) memory.fill(acc, 0, <usize>cols << 3);
    for (let r = r0; r < r1; r++) {
      const p = x + (<usize>(r * cols) << 2);
      let c = 0;
      for (; c + 4 <= cols; c += 4) {
        const v = v128.load(p + (<usize>c << 2));
        const q = acc + (<usize>c << 3);
        v128.store(q, f64x2.add(v128.load(q), f64x2.promote_low_f32x4(v)));
        v128.store(q, f64x2.add(v128.load(q, 16), f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0))), 16);
      }
      for (; c < cols; c++) {
        const q = acc + (<usize>c << 3);
        store<f64>(q, load<f64>(q) + <f64>load<f32>(p + (<usize>c << 2)));
      }
    }
  } else {
    if (init) for (let c = 0; c < cols; c++) store<f32>(acc + (<usize>c << 2), -Infinity);
    for (let r = r0; r < r1; r++) {
      const p = x + (<usize>(r * cols) << 2);
      let c = 0;
      for (; c + 4 <= cols; c += 4) {
        const v = v128.load(p + (<usize>c << 2));
        const q = acc + (<usize>c << 2);
        const m = v128.load(q);
        v128.store(q, v128.bitselect(v, m, v128.or(f32x4.gt(v, m), f32x4.ne(v, v))));
      }
      for (; c < cols; c++) {
        const v = load<f32>(p + (<usize>c << 2));
        const q = acc + (<usize>c << 2);
        const m = load<f32>(q);
        if (v > m || v != v) store<f32>(q, v);
      }
    }
  }
}

/** out[c] = f32(acc[c]) for f64 sums (op 0); out = acc for maxima (op 1). */
export function reduceColsFinish(op: i32, acc: usize, cols: i32, out: usize): void {
  if (op == 0) for (let c = 0; c < cols; c++) store<f32>(out + (<usize>c << 2), <f32>load<f64>(acc + (<usize>c << 3)));
  else memory.copy(out, acc, <usize>cols << 2);
}

/** out[c] = sum / max over rows of x [rows][cols] (acc: scratch of cols f64). */
export function reduceCols(op: i32, x: usize, rows: i32, cols: i32, out: usize, acc: usize): void {
  reduceColsAcc(op, x, 0, rows, cols, acc, 1);
  reduceColsFinish(op, acc, cols, out);
}

// ---- data movement ----------------------------------------------------------------------------------
export function gather32(x: usize, index: usize, n: i32, out: usize): void {
  for (let i = 0; i < n; i++) {
    const k = load<i32>(index + (<usize>i << 2));
    store<i32>(out + (<usize>i << 2), load<i32>(x + (<usize>k << 2)));
  }
}

/** out = 0 (outN elements); out[index[i]] += g[i]. */
export function scatterAdd32(g: usize, index: usize, n: i32, out: usize, outN: i32): void {
  memory.fill(out, 0, <usize>outN << 2);
  for (let i = 0; i < n; i++) {
    const q = out + (<usize>load<i32>(index + (<usize>i << 2)) << 2);
    store<f32>(q, load<f32>(q) + load<f32>(g + (<usize>i << 2)));
  }
}

/** out[j][i] = x[i][j] for x [rows][cols]: 32x32 tiles (cache), 4x4 blocks transposed in registers. */
function transpose2d(x: usize, rows: i32, cols: i32, out: usize): void {
  const rs = <usize>cols << 2, os = <usize>rows << 2;
  for (let i0 = 0; i0 < rows; i0 += 32) {
    const i1 = min(rows, i0 + 32);
    for (let j0 = 0; j0 < cols; j0 += 32) {
      const j1 = min(cols, j0 + 32);
      let i = i0;
      for (; i + 4 <= i1; i += 4) {
        const src = x + <usize>i * rs;
        let j = j0;
        for (; j + 4 <= j1; j += 4) {
          const p = src + (<usize>j << 2);
          const r0 = v128.load(p), r1 = v128.load(p + rs), r2 = v128.load(p + 2 * rs), r3 = v128.load(p + 3 * rs);
          const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
          const t2 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5), t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
          const q = out + <usize>j * os + (<usize>i << 2);
          v128.store(q, v128.shuffle<i64>(t0, t2, 0, 2));
          v128.store(q + os, v128.shuffle<i64>(t0, t2, 1, 3));
          v128.store(q + 2 * os, v128.shuffle<i64>(t1, t3, 0, 2));
          v128.store(q + 3 * os, v128.shuffle<i64>(t1, t3, 1, 3));
        }
        for (; j < j1; j++) {
          for (let k = 0; k < 4; k++) store<i32>(out + <usize>j * os + (<usize>(i + k) << 2), load<i32>(x + <usize>(i + k) * rs + (<usize>j << 2)));
        }
      }
      for (; i < i1; i++) {
        for (let j = j0; j < j1; j++) store<i32>(out + <usize>j * os + (<usize>i << 2), load<i32>(x + <usize>i * rs + (<usize>j << 2)));
      }
    }
  }
}

/** out[j][i][t] = x[i][j][t] for x [rows][cols][inner] (a swap of two adjacent axes groups). */
export function transpose3(x: usize, rows: i32, cols: i32, inner: i32, out: usize): void {
  if (inner == 1) return transpose2d(x, rows, cols, out);
  const ib = <usize>inner << 2;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const src = x + <usize>(i * cols + j) * ib;
      const dst = out + <usize>(j * rows + i) * ib;
      if (inner == 1) store<f32>(dst, load<f32>(src));
      else memory.copy(dst, src, ib);
    }
  }
}

/**
 * A strided box copy of 32-bit elements: dst[i0*ds0 + i1*ds1 + i2] = src[i0*ss0 + i1*ss1 + i2] for
 * i0 < n0, i1 < n1, i2 < n2 (strides in elements; the innermost axis is contiguous in both).
 */
export function copy3d(src: usize, dst: usize, n0: i32, n1: i32, n2: i32, ss0: i32, ss1: i32, ds0: i32, ds1: i32): void {
  const rowBytes = <usize>n2 << 2;
  for (let i0 = 0; i0 < n0; i0++) {
    let s = src + (<usize>(i0 * ss0) << 2);
    let d = dst + (<usize>(i0 * ds0) << 2);
    const sStep = <usize>ss1 << 2, dStep = <usize>ds1 << 2;
    if (n2 >= 64) {
      for (let i1 = 0; i1 < n1; i1++) {
        memory.copy(d, s, rowBytes);
        s += sStep;
        d += dStep;
      }
    } else {
      for (let i1 = 0; i1 < n1; i1++) {
        let i = 0;
        for (; i + 4 <= n2; i += 4) v128.store(d + (<usize>i << 2), v128.load(s + (<usize>i << 2)));
        for (; i < n2; i++) store<i32>(d + (<usize>i << 2), load<i32>(s + (<usize>i << 2)));
        s += sStep;
        d += dStep;
      }
    }
  }
}

/** 2x2 stride-2 max pool with 'SAME' padding on NHWC x [b][h][w][c]; argmax gets flat indices into x. */
export function maxPool2x2(x: usize, b: i32, h: i32, w: i32, c: i32, out: usize, argmax: usize): void {
  const oh = (h + 1) >> 1, ow = (w + 1) >> 1;
  let o: usize = 0;
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const base = ((n * h + 2 * i) * w + 2 * j) * c;
        const right = 2 * j + 1 < w;
        const down = 2 * i + 1 < h;
        for (let q = 0; q < c; q++) {
          // The reference's order: (0,0), (0,1), (1,0), (1,1); a NaN or a strictly larger value wins.
          let at = base + q;
          let best = load<f32>(x + (<usize>at << 2));
          if (right) {
            const k = at + c;
            const v = load<f32>(x + (<usize>k << 2));
            if (v > best || v != v) { best = v; at = k; }
          }
          if (down) {
            const k0 = base + w * c + q;
            let v = load<f32>(x + (<usize>k0 << 2));
            if (v > best || v != v) { best = v; at = k0; }
            if (right) {
              const k1 = k0 + c;
              v = load<f32>(x + (<usize>k1 << 2));
              if (v > best || v != v) { best = v; at = k1; }
            }
          }
          store<f32>(out + (o << 2), best);
          store<i32>(argmax + (o << 2), at);
          o++;
        }
      }
    }
  }
}

// ---- layer normalization ----------------------------------------------------------------------------
// Job fields (i32 slots; eps is an f64 at byte 40). Must match LN in ../index.ts.
const L_X = 2;
const L_SCALE = 3;
const L_BIAS = 4;
const L_OUT = 5;
const L_ROWS = 6;
const L_COLS = 7;
const L_CHUNK = 8;
const L_EPS_BYTE = 40;

// Results of rowMoments (globals are per instance, so per thread).
let rowMean: f64 = 0;
let rowVariance: f64 = 0;

/** Mean and E[x^2] - E[x]^2 of one f32 row, summed in double precision (may be slightly negative). */
function rowMoments(p: usize, cols: i32): void {
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0), q0 = f64x2.splat(0), q1 = f64x2.splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) {
    const v = v128.load(p + (<usize>c << 2));
    const lo = f64x2.promote_low_f32x4(v);
    const hi = f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0));
    s0 = f64x2.add(s0, lo);
    s1 = f64x2.add(s1, hi);
    q0 = f64x2.add(q0, f64x2.mul(lo, lo));
    q1 = f64x2.add(q1, f64x2.mul(hi, hi));
  }
  s0 = f64x2.add(s0, s1);
  q0 = f64x2.add(q0, q1);
  let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
  let s2 = f64x2.extract_lane(q0, 0) + f64x2.extract_lane(q0, 1);
  for (; c < cols; c++) {
    const v = <f64>load<f32>(p + (<usize>c << 2));
    s += v;
    s2 += v * v;
  }
  const n = <f64>cols;
  rowMean = s / n;
  rowVariance = s2 / n - rowMean * rowMean;
}

/**
 * Layer norm of rows [r0, r1) of x [rows][cols]: sums of x and x^2 in double precision, var = max(0,
 * E[x^2] - E[x]^2) (NaN -> 0), out = (x - mean) * (1 / sqrt(var + eps)) * scale + bias evaluated in double
 * precision and rounded once (as the reference; only the order of the sums differs).
 */
export function layerNormRows(x: usize, r0: i32, r1: i32, cols: i32, scale: usize, bias: usize, eps: f64, out: usize): void {
  for (let r = r0; r < r1; r++) {
    const p = x + ((<usize>r * <usize>cols) << 2);
    const o = out + ((<usize>r * <usize>cols) << 2);
    rowMoments(p, cols);
    const mu = rowMean;
    const variance = rowVariance;
    let c = 0;
    const rstd = 1 / Math.sqrt((variance >= 0 ? variance : 0) + eps);
    const vm = f64x2.splat(mu), vr = f64x2.splat(rstd);
    c = 0;
    for (; c + 4 <= cols; c += 4) {
      const off = <usize>c << 2;
      const v = v128.load(p + off), g = v128.load(scale + off), b = v128.load(bias + off);
      const lo = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vr), f64x2.promote_low_f32x4(g)), f64x2.promote_low_f32x4(b));
      const hi = f64x2.add(
        f64x2.mul(f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0)), vm), vr), f64x2.promote_low_f32x4(v128.shuffle<i64>(g, g, 1, 0))),
        f64x2.promote_low_f32x4(v128.shuffle<i64>(b, b, 1, 0)),
      );
      v128.store(o + off, v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2));
    }
    for (; c < cols; c++) {
      const off = <usize>c << 2;
      store<f32>(o + off, <f32>((<f64>load<f32>(p + off) - mu) * rstd * <f64>load<f32>(scale + off) + <f64>load<f32>(bias + off)));
    }
  }
}

export function layerNormJob(job: usize): void {
  const rows = fld(job, L_ROWS), chunk = fld(job, L_CHUNK);
  for (let r0 = claimChunk(job, rows, chunk); r0 >= 0; r0 = claimChunk(job, rows, chunk)) {
    layerNormRows(<usize>fld(job, L_X), r0, min(rows, r0 + chunk), fld(job, L_COLS), <usize>fld(job, L_SCALE), <usize>fld(job, L_BIAS),
      load<f64>(job + L_EPS_BYTE), <usize>fld(job, L_OUT));
  }
}

const L_G = 9;

/**
 * The input gradient of layerNorm for rows [r0, r1) (see Backend.layerNormGradX): statistics of x as in
 * layerNormRows, sums of gs = g * scale and gs * xhat in double precision, out = rstd * (gs - mean(gs) -
 * xhat * mean(gs * xhat)) (the last term only where var >= 0), evaluated in double precision, rounded once.
 */
export function layerNormGradRows(x: usize, g: usize, r0: i32, r1: i32, cols: i32, scale: usize, eps: f64, out: usize): void {
  const n = <f64>cols;
  for (let r = r0; r < r1; r++) {
    const rowOff = (<usize>r * <usize>cols) << 2;
    const p = x + rowOff, q = g + rowOff, o = out + rowOff;
    rowMoments(p, cols);
    const mu = rowMean;
    const variance = rowVariance;
    let c = 0;
    const rstd = 1 / Math.sqrt((variance >= 0 ? variance : 0) + eps);
    const vm = f64x2.splat(mu), vr = f64x2.splat(rstd);
    // Sums of gs and gs * xhat.
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), b0 = f64x2.splat(0), b1 = f64x2.splat(0);
    c = 0;
    for (; c + 4 <= cols; c += 4) {
      const off = <usize>c << 2;
      const v = v128.load(p + off), gv = v128.load(q + off), sv = v128.load(scale + off);
      const gl = f64x2.mul(f64x2.promote_low_f32x4(gv), f64x2.promote_low_f32x4(sv));
      const gh = f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<i64>(gv, gv, 1, 0)), f64x2.promote_low_f32x4(v128.shuffle<i64>(sv, sv, 1, 0)));
      const xl = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vr);
      const xh = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0)), vm), vr);
      a0 = f64x2.add(a0, gl);
      a1 = f64x2.add(a1, gh);
      b0 = f64x2.add(b0, f64x2.mul(gl, xl));
      b1 = f64x2.add(b1, f64x2.mul(gh, xh));
    }
    a0 = f64x2.add(a0, a1);
    b0 = f64x2.add(b0, b1);
    let sg = f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1);
    let sgx = f64x2.extract_lane(b0, 0) + f64x2.extract_lane(b0, 1);
    for (; c < cols; c++) {
      const off = <usize>c << 2;
      const gs = <f64>load<f32>(q + off) * <f64>load<f32>(scale + off);
      sg += gs;
      sgx += gs * ((<f64>load<f32>(p + off) - mu) * rstd);
    }
    const m1 = sg / n;
    const m2 = variance >= 0 ? sgx / n : 0;
    const v1 = f64x2.splat(m1), v2 = f64x2.splat(m2);
    c = 0;
    for (; c + 4 <= cols; c += 4) {
      const off = <usize>c << 2;
      const v = v128.load(p + off), gv = v128.load(q + off), sv = v128.load(scale + off);
      const gl = f64x2.mul(f64x2.promote_low_f32x4(gv), f64x2.promote_low_f32x4(sv));
      const gh = f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<i64>(gv, gv, 1, 0)), f64x2.promote_low_f32x4(v128.shuffle<i64>(sv, sv, 1, 0)));
      const xl = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), vr);
      const xh = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<i64>(v, v, 1, 0)), vm), vr);
      const lo = f64x2.mul(vr, f64x2.sub(f64x2.sub(gl, v1), f64x2.mul(xl, v2)));
      const hi = f64x2.mul(vr, f64x2.sub(f64x2.sub(gh, v1), f64x2.mul(xh, v2)));
      v128.store(o + off, v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2));
    }
    for (; c < cols; c++) {
      const off = <usize>c << 2;
      const gs = <f64>load<f32>(q + off) * <f64>load<f32>(scale + off);
      store<f32>(o + off, <f32>(rstd * (gs - m1 - (<f64>load<f32>(p + off) - mu) * rstd * m2)));
    }
  }
}

export function layerNormGradJob(job: usize): void {
  const rows = fld(job, L_ROWS), chunk = fld(job, L_CHUNK);
  for (let r0 = claimChunk(job, rows, chunk); r0 >= 0; r0 = claimChunk(job, rows, chunk)) {
    layerNormGradRows(<usize>fld(job, L_X), <usize>fld(job, L_G), r0, min(rows, r0 + chunk), fld(job, L_COLS), <usize>fld(job, L_SCALE),
      load<f64>(job + L_EPS_BYTE), <usize>fld(job, L_OUT));
  }
}

const L_H = 12;

/**
 * The x-gradient of layerNormGradX for the cotangent h, rows [r0, r1) (see Backend.layerNormGradXGradX):
 * statistics of x as in layerNormRows, the five row sums and the result in double precision, rounded once.
 * Scalar: it runs once per layer norm of a gradient-penalty step, on rows of a few channels.
 */
export function layerNormGradGradRows(x: usize, g: usize, h: usize, r0: i32, r1: i32, cols: i32, scale: usize, eps: f64, out: usize): void {
  const n = <f64>cols;
  for (let r = r0; r < r1; r++) {
    const rowOff = (<usize>r * <usize>cols) << 2;
    const p = x + rowOff, q = g + rowOff, u = h + rowOff, o = out + rowOff;
    rowMoments(p, cols);
    const mu = rowMean;
    const variance = rowVariance;
    if (!(variance >= 0)) {
      memory.fill(o, 0, <usize>cols << 2); // the clamped variance passes no gradient
      continue;
    }
    const rstd = 1 / Math.sqrt(variance + eps);
    let sh = 0.0, sa = 0.0, sax = 0.0, shx = 0.0, sha = 0.0;
    for (let c = 0; c < cols; c++) {
      const off = <usize>c << 2;
      const xhat = (<f64>load<f32>(p + off) - mu) * rstd;
      const a = <f64>load<f32>(q + off) * <f64>load<f32>(scale + off);
      const hv = <f64>load<f32>(u + off);
      sh += hv;
      sa += a;
      sax += a * xhat;
      shx += hv * xhat;
      sha += hv * a;
    }
    const hBar = sh / n, aBar = sa / n, cm = sax / n, dm = shx / n;
    const k = rstd * rstd;
    const k1 = k * (3 * cm * dm - sha / n + hBar * aBar);
    for (let c = 0; c < cols; c++) {
      const off = <usize>c << 2;
      const xhat = (<f64>load<f32>(p + off) - mu) * rstd;
      const a = <f64>load<f32>(q + off) * <f64>load<f32>(scale + off);
      store<f32>(o + off, <f32>(k1 * xhat - k * cm * (<f64>load<f32>(u + off) - hBar) - k * dm * (a - aBar)));
    }
  }
}

export function layerNormGradGradJob(job: usize): void {
  const rows = fld(job, L_ROWS), chunk = fld(job, L_CHUNK);
  for (let r0 = claimChunk(job, rows, chunk); r0 >= 0; r0 = claimChunk(job, rows, chunk)) {
    layerNormGradGradRows(<usize>fld(job, L_X), <usize>fld(job, L_G), <usize>fld(job, L_H), r0, min(rows, r0 + chunk), fld(job, L_COLS),
      <usize>fld(job, L_SCALE), load<f64>(job + L_EPS_BYTE), <usize>fld(job, L_OUT));
  }
}
