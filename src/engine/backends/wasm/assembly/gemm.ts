// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// Packed, cache-blocked single-precision GEMM with a SIMD microkernel, plus im2col-fused packing for
// 2-D convolutions (NHWC input, HWIO kernel) and their kernel gradients. One job is run by every thread;
// threads take tasks (blocks of C, and chunks of K when split) from an atomic counter in the job block.
import { micro4x8, micro4x8r, microT8x4, microT16x1 } from "./micro";
import { J_COUNTER } from "./job";

// ---- job layout (i32 fields) ---------------------------------------------------------------------
export { J_KIND } from "./job";
const G_AMODE = 2; // 0: A [M][K], 1: A [K][M], 2: im2col rows (conv), 3: im2col^T (conv kernel gradient)
const G_A = 3;
const G_LDA = 4;
const G_ASTRIDE = 5;
const G_BTRANS = 6; // 0: B [K][N], 1: B [N][K]
const G_B = 7;
const G_LDB = 8;
const G_BSTRIDE = 9;
const G_C = 10;
const G_LDC = 11;
const G_CSTRIDE = 12;
const G_M = 13;
const G_N = 14;
const G_K = 15;
const G_BATCH = 16;
const G_MC = 17;
const G_NC = 18;
const G_KC = 19;
const G_S = 20; // number of K chunks (split-K into partial sums when > 1)
const G_KCHUNK = 21;
const G_PARTIAL = 22;
const G_H = 23;
const G_W = 24;
const G_CH = 25;
const G_OH = 26;
const G_OW = 27;
const G_TAPS = 28; // i32 pairs (dy, dx), already minus the padding
const G_NTAPS = 29;
const G_SCRATCH = 30;
const G_SCRATCH_STRIDE = 31;
const G_ZERO = 32; // 16+ zero bytes

@inline function fld(job: usize, f: i32): i32 {
  return load<i32>(job + (<usize>f << 2));
}
@inline function imin(a: i32, b: i32): i32 {
  return a < b ? a : b;
}

// ---- 4x4 transpose helpers ---------------------------------------------------------------------------
@inline function store4T(dst: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 16);
  v128.store(dst, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 32);
  v128.store(dst, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 48);
}

/** Like store4T but for B panels: the 4 transposed vectors go 32 bytes apart (at +off). */
@inline function store4TB(dst: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 32);
  v128.store(dst, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 64);
  v128.store(dst, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 96);
}

// ---- packing of A: panels of 4 rows, [kc][4] floats each, padded with zero panels to a multiple of 4 -----
/**
 * Bytes from one A panel to the next: kc * 16 plus a cache line, so that panels written side by side (the
 * kernel-gradient packing) do not all map to the same L1 sets (4 KiB aliasing when kc = 256).
 */
@inline export function panelStride(kc: i32): usize {
  return <usize>(kc * 16 + 64);
}

function padPanels(Ap: usize, panels: i32, kc: i32): void {
  const padded = (panels + 3) & ~3;
  const aps = panelStride(kc);
  for (let ip = panels; ip < padded; ip++) memory.fill(Ap + <usize>ip * aps, 0, <usize>(kc * 16));
}

/** A row-major [M][K] (lda): rows m0..m0+mc, k pc..pc+kc. */
function packA0(a: usize, lda: i32, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize, zero: usize): void {
  const panels = (mc + 3) >> 2;
  for (let ip = 0; ip < panels; ip++) {
    const r = ip * 4;
    let p0 = zero, p1 = zero, p2 = zero, p3 = zero;
    let i0: usize = 0, i1: usize = 0, i2: usize = 0, i3: usize = 0;
    const base = a + (<usize>((m0 + r) * lda + pc) << 2);
    const rs = <usize>lda << 2;
    if (r < mc) { p0 = base; i0 = 4; }
    if (r + 1 < mc) { p1 = base + rs; i1 = 4; }
    if (r + 2 < mc) { p2 = base + 2 * rs; i2 = 4; }
    if (r + 3 < mc) { p3 = base + 3 * rs; i3 = 4; }
    let dst = Ap + <usize>ip * panelStride(kc);
    let k = 0;
    for (; k + 4 <= kc; k += 4) {
      store4T(dst, v128.load(p0), v128.load(p1), v128.load(p2), v128.load(p3));
      dst += 64;
      p0 += i0 << 2; p1 += i1 << 2; p2 += i2 << 2; p3 += i3 << 2;
    }
    for (; k < kc; k++) {
      store<f32>(dst, load<f32>(p0));
      store<f32>(dst, load<f32>(p1), 4);
      store<f32>(dst, load<f32>(p2), 8);
      store<f32>(dst, load<f32>(p3), 12);
      dst += 16;
      p0 += i0; p1 += i1; p2 += i2; p3 += i3;
    }
  }
  padPanels(Ap, panels, kc);
}

/** A stored transposed, [K][M] (lda): op(A) rows m0..m0+mc, k pc..pc+kc. */
function packA1(a: usize, lda: i32, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize): void {
  const panels = (mc + 3) >> 2;
  const rs = <usize>lda << 2;
  for (let ip = 0; ip < panels; ip++) {
    const r = ip * 4;
    let src = a + (<usize>(pc * lda + m0 + r) << 2);
    let dst = Ap + <usize>ip * panelStride(kc);
    if (r + 4 <= mc) {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        dst += 16;
        src += rs;
      }
    } else {
      const valid = mc - r;
      for (let k = 0; k < kc; k++) {
        for (let q = 0; q < 4; q++) store<f32>(dst + (<usize>q << 2), q < valid ? load<f32>(src + (<usize>q << 2)) : 0);
        dst += 16;
        src += rs;
      }
    }
  }
  padPanels(Ap, panels, kc);
}

/** im2col rows: A[r][k] = xpad[pixel r shifted by tap k / C][channel k % C]. */
function packA2(job: usize, x: usize, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize, zero: usize): void {
  const M = fld(job, G_M);
  const h = fld(job, G_H), w = fld(job, G_W), C = fld(job, G_CH);
  const oh = fld(job, G_OH), ow = fld(job, G_OW);
  const taps = <usize>fld(job, G_TAPS);
  const plane = oh * ow;
  const panels = (mc + 3) >> 2;
  const t0 = pc / C;
  const c0 = pc - t0 * C;
  for (let ip = 0; ip < panels; ip++) {
    const row = m0 + ip * 4;
    // Pixel coordinates of the panel's 4 rows (-1 rows are padding).
    let n0 = -1, y0 = 0, x0 = 0, n1 = -1, y1 = 0, x1 = 0, n2 = -1, y2 = 0, x2 = 0, n3 = -1, y3 = 0, x3 = 0;
    if (row < M) { n0 = row / plane; const rr = row - n0 * plane; y0 = rr / ow; x0 = rr - y0 * ow; }
    if (row + 1 < M) { n1 = (row + 1) / plane; const rr = row + 1 - n1 * plane; y1 = rr / ow; x1 = rr - y1 * ow; }
    if (row + 2 < M) { n2 = (row + 2) / plane; const rr = row + 2 - n2 * plane; y2 = rr / ow; x2 = rr - y2 * ow; }
    if (row + 3 < M) { n3 = (row + 3) / plane; const rr = row + 3 - n3 * plane; y3 = rr / ow; x3 = rr - y3 * ow; }
    let dst = Ap + <usize>ip * panelStride(kc);
    if ((C & 3) == 0) {
      let k = pc;
      const kend = pc + kc;
      let t = t0;
      let c = c0;
      while (k < kend) {
        const dy = load<i32>(taps + (<usize>t << 3)), dx = load<i32>(taps + (<usize>t << 3), 4);
        let p0 = zero, p1 = zero, p2 = zero, p3 = zero;
        let i0: usize = 0, i1: usize = 0, i2: usize = 0, i3: usize = 0;
        let yy = y0 + dy, xx = x0 + dx;
        if (n0 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w) { p0 = x + (<usize>(((n0 * h + yy) * w + xx) * C + c) << 2); i0 = 16; }
        yy = y1 + dy; xx = x1 + dx;
        if (n1 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w) { p1 = x + (<usize>(((n1 * h + yy) * w + xx) * C + c) << 2); i1 = 16; }
        yy = y2 + dy; xx = x2 + dx;
        if (n2 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w) { p2 = x + (<usize>(((n2 * h + yy) * w + xx) * C + c) << 2); i2 = 16; }
        yy = y3 + dy; xx = x3 + dx;
        if (n3 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w) { p3 = x + (<usize>(((n3 * h + yy) * w + xx) * C + c) << 2); i3 = 16; }
        const stop = imin(kend, k + (C - c));
        for (; k < stop; k += 4) {
          store4T(dst, v128.load(p0), v128.load(p1), v128.load(p2), v128.load(p3));
          dst += 64;
          p0 += i0; p1 += i1; p2 += i2; p3 += i3;
        }
        t++;
        c = 0;
      }
    } else {
      for (let k = pc; k < pc + kc; k++) {
        const t = k / C;
        const c = k - t * C;
        const dy = load<i32>(taps + (<usize>t << 3)), dx = load<i32>(taps + (<usize>t << 3), 4);
        let yy = y0 + dy, xx = x0 + dx;
        store<f32>(dst, n0 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w ? load<f32>(x + (<usize>(((n0 * h + yy) * w + xx) * C + c) << 2)) : 0);
        yy = y1 + dy; xx = x1 + dx;
        store<f32>(dst, n1 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w ? load<f32>(x + (<usize>(((n1 * h + yy) * w + xx) * C + c) << 2)) : 0, 4);
        yy = y2 + dy; xx = x2 + dx;
        store<f32>(dst, n2 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w ? load<f32>(x + (<usize>(((n2 * h + yy) * w + xx) * C + c) << 2)) : 0, 8);
        yy = y3 + dy; xx = x3 + dx;
        store<f32>(dst, n3 >= 0 && <u32>yy < <u32>h && <u32>xx < <u32>w ? load<f32>(x + (<usize>(((n3 * h + yy) * w + xx) * C + c) << 2)) : 0, 12);
        dst += 16;
      }
    }
  }
  padPanels(Ap, panels, kc);
}

/** im2col^T: op(A)[p][r] = cols[r][p] for patch entries p in m0..m0+mc and pixels r in pc..pc+kc. */
function packA3(job: usize, x: usize, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize, zero: usize): void {
  const M = fld(job, G_M);
  const h = fld(job, G_H), w = fld(job, G_W), C = fld(job, G_CH);
  const oh = fld(job, G_OH), ow = fld(job, G_OW);
  const taps = <usize>fld(job, G_TAPS);
  const plane = oh * ow;
  const panels = (mc + 3) >> 2;
  const aps = panelStride(kc);
  const pixelBytes = <usize>C << 2;
  const n0 = pc / plane;
  const rr0 = pc - n0 * plane;
  const i0 = rr0 / ow;
  const j0 = rr0 - i0 * ow;
  if ((C & 3) == 0) {
    // Tap by tap: the panels of one tap (4 channels each) read the same pixels, one cache line per pixel.
    let ip = 0;
    while (ip < panels) {
      const p = m0 + ip * 4;
      const t = p / C;
      const c = p - t * C;
      const cnt = imin(panels - ip, (C - c) >> 2);
      const dy = load<i32>(taps + (<usize>t << 3)), dx = load<i32>(taps + (<usize>t << 3), 4);
      const off = <isize>((dy * w + dx) * C + c) << 2;
      let n = n0, i = i0, j = j0;
      let pix = x + (<usize>(((n * h + i) * w + j) * C) << 2);
      let dst = Ap + <usize>ip * aps;
      for (let kk = 0; kk < kc; kk++) {
        if (<u32>(i + dy) < <u32>h && <u32>(j + dx) < <u32>w) {
          const src = <usize>(<isize>pix + off);
          for (let q = 0; q < cnt; q++) v128.store(dst + <usize>q * aps, v128.load(src + (<usize>q << 4)));
        } else {
          for (let q = 0; q < cnt; q++) v128.store(dst + <usize>q * aps, v128.load(zero));
        }
        dst += 16;
        pix += pixelBytes;
        if (++j == ow) {
          j = 0;
          if (++i == oh) {
            i = 0;
            n++;
          }
          pix = x + (<usize>(((n * h + i) * w + j) * C) << 2);
        }
      }
      ip += cnt;
    }
  } else {
    let n = n0, i = i0, j = j0;
    for (let kk = 0; kk < kc; kk++) {
      const pix = x + (<usize>(((n * h + i) * w + j) * C) << 2);
      for (let q = 0; q < panels * 4; q++) {
        const p = m0 + q;
        let v: f32 = 0;
        if (p < M) {
          const t = p / C;
          const c = p - t * C;
          const dy = load<i32>(taps + (<usize>t << 3)), dx = load<i32>(taps + (<usize>t << 3), 4);
          const yy = i + dy, xx = j + dx;
          if (<u32>yy < <u32>h && <u32>xx < <u32>w) v = load<f32>(<usize>(<isize>pix + (<isize>((dy * w + dx) * C + c) << 2)));
        }
        store<f32>(Ap + <usize>(q >> 2) * aps + (<usize>kk << 4) + (<usize>(q & 3) << 2), v);
      }
      if (++j == ow) {
        j = 0;
        if (++i == oh) {
          i = 0;
          n++;
        }
      }
    }
  }
  padPanels(Ap, panels, kc);
}

// ---- row format: panels of 4 rows of kc floats each (rowStride(kc) bytes apart), no transposes -------
// Used for A read by rows (plain matrices and im2col) when N > 4; the microkernel micro4x8r reads 4 rows.
@inline export function rowStride(kc: i32): usize {
  return <usize>(kc * 4 + 64);
}

function padRows(Ap: usize, rows: i32, kc: i32): void {
  const padded = (rows + 3) & ~3;
  const rs = rowStride(kc);
  for (let r = rows; r < padded; r++) zeroRow(Ap + <usize>r * rs, kc);
}

@inline function copyRow(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const off = <usize>i << 2;
    v128.store(dst + off, v128.load(src + off));
    v128.store(dst + off, v128.load(src + off, 16), 16);
  }
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

@inline function zeroRow(dst: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), z);
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), 0);
}

/** A row-major [M][K] (lda) in row format. */
function packA0r(a: usize, lda: i32, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize): void {
  const rs = rowStride(kc);
  for (let r = 0; r < mc; r++) copyRow(Ap + <usize>r * rs, a + (<usize>((m0 + r) * lda + pc) << 2), kc);
  padRows(Ap, mc, kc);
}

/** im2col rows in row format: per row and tap, C contiguous channels (or zeros where the tap sees padding). */
function packA2r(job: usize, x: usize, m0: i32, mc: i32, pc: i32, kc: i32, Ap: usize): void {
  const h = fld(job, G_H), w = fld(job, G_W), C = fld(job, G_CH);
  const oh = fld(job, G_OH), ow = fld(job, G_OW);
  const taps = <usize>fld(job, G_TAPS);
  const plane = oh * ow;
  const rs = rowStride(kc);
  const t0 = pc / C;
  const c0 = pc - t0 * C;
  const kend = pc + kc;
  let n = m0 / plane;
  const rr = m0 - n * plane;
  let i = rr / ow;
  let j = rr - i * ow;
  for (let r = 0; r < mc; r++) {
    let dst = Ap + <usize>r * rs;
    let k = pc, t = t0, c = c0;
    while (k < kend) {
      const len = imin(C - c, kend - k);
      const dy = load<i32>(taps + (<usize>t << 3)), dx = load<i32>(taps + (<usize>t << 3), 4);
      const yy = i + dy, xx = j + dx;
      if (<u32>yy < <u32>h && <u32>xx < <u32>w) copyRow(dst, x + (<usize>(((n * h + yy) * w + xx) * C + c) << 2), len);
      else zeroRow(dst, len);
      dst += <usize>len << 2;
      k += len;
      t++;
      c = 0;
    }
    if (++j == ow) {
      j = 0;
      if (++i == oh) {
        i = 0;
        n++;
      }
    }
  }
  padRows(Ap, mc, kc);
}

// ---- packing of B: panels of 8 columns, [kc][8] floats each -------------------------------------------
/** B row-major [K][N] (ldb): k pc..pc+kc, columns n0..n0+nc. */
function packB0(b: usize, ldb: i32, n0: i32, nc: i32, pc: i32, kc: i32, Bp: usize): void {
  const panels = (nc + 7) >> 3;
  const rs = <usize>ldb << 2;
  for (let jp = 0; jp < panels; jp++) {
    const col = jp * 8;
    let src = b + (<usize>(pc * ldb + n0 + col) << 2);
    let dst = Bp + <usize>(jp * kc * 32);
    const nr = imin(8, nc - col);
    if (nr == 8) {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        dst += 32;
        src += rs;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let q = 0; q < 8; q++) store<f32>(dst + (<usize>q << 2), q < nr ? load<f32>(src + (<usize>q << 2)) : 0);
        dst += 32;
        src += rs;
      }
    }
  }
}

/** B stored transposed, [N][K] (ldb). */
function packB1(b: usize, ldb: i32, n0: i32, nc: i32, pc: i32, kc: i32, Bp: usize, zero: usize): void {
  const panels = (nc + 7) >> 3;
  const rs = <usize>ldb << 2;
  for (let jp = 0; jp < panels; jp++) {
    const col = jp * 8;
    const nr = imin(8, nc - col);
    const base = b + (<usize>((n0 + col) * ldb + pc) << 2);
    let dst = Bp + <usize>(jp * kc * 32);
    let p0 = zero, p1 = zero, p2 = zero, p3 = zero, p4 = zero, p5 = zero, p6 = zero, p7 = zero;
    let i0: usize = 0, i1: usize = 0, i2: usize = 0, i3: usize = 0, i4: usize = 0, i5: usize = 0, i6: usize = 0, i7: usize = 0;
    if (nr > 0) { p0 = base; i0 = 4; }
    if (nr > 1) { p1 = base + rs; i1 = 4; }
    if (nr > 2) { p2 = base + 2 * rs; i2 = 4; }
    if (nr > 3) { p3 = base + 3 * rs; i3 = 4; }
    if (nr > 4) { p4 = base + 4 * rs; i4 = 4; }
    if (nr > 5) { p5 = base + 5 * rs; i5 = 4; }
    if (nr > 6) { p6 = base + 6 * rs; i6 = 4; }
    if (nr > 7) { p7 = base + 7 * rs; i7 = 4; }
    let k = 0;
    for (; k + 4 <= kc; k += 4) {
      store4TB(dst, v128.load(p0), v128.load(p1), v128.load(p2), v128.load(p3));
      store4TB(dst + 16, v128.load(p4), v128.load(p5), v128.load(p6), v128.load(p7));
      dst += 128;
      p0 += i0 << 2; p1 += i1 << 2; p2 += i2 << 2; p3 += i3 << 2;
      p4 += i4 << 2; p5 += i5 << 2; p6 += i6 << 2; p7 += i7 << 2;
    }
    for (; k < kc; k++) {
      store<f32>(dst, load<f32>(p0));
      store<f32>(dst, load<f32>(p1), 4);
      store<f32>(dst, load<f32>(p2), 8);
      store<f32>(dst, load<f32>(p3), 12);
      store<f32>(dst, load<f32>(p4), 16);
      store<f32>(dst, load<f32>(p5), 20);
      store<f32>(dst, load<f32>(p6), 24);
      store<f32>(dst, load<f32>(p7), 28);
      dst += 32;
      p0 += i0; p1 += i1; p2 += i2; p3 += i3; p4 += i4; p5 += i5; p6 += i6; p7 += i7;
    }
  }
}

// ---- block multiply ---------------------------------------------------------------------------------
/** C[mc x nc] (=|+=) packed A block * packed B block. ldc in elements. */
function multiplyBlock(Ap: usize, Bp: usize, mc: i32, nc: i32, kc: i32, c: usize, ldc: i32, acc: i32, tile: usize, rowFormat: bool, rs: usize): void {
  const mPanels = (mc + 3) >> 2;
  const nPanels = (nc + 7) >> 3;
  const ldcb = <usize>ldc << 2;
  const aps = panelStride(kc);
  for (let jp = 0; jp < nPanels; jp++) {
    const nr = imin(8, nc - jp * 8);
    const bp = Bp + <usize>(jp * kc * 32);
    const cc = c + (<usize>(jp * 8) << 2);
    if (rowFormat) {
      for (let ip = 0; ip < mPanels; ip++) {
        const mr = imin(4, mc - ip * 4);
        const cp = cc + <usize>(ip * 4) * ldcb;
        const ap = Ap + <usize>(ip * 4) * rs;
        if (mr == 4 && nr == 8) {
          micro4x8r(ap, rs, bp, kc, cp, ldcb, acc);
        } else {
          micro4x8r(ap, rs, bp, kc, tile, 32, 0);
          for (let r = 0; r < mr; r++) {
            for (let q = 0; q < nr; q++) {
              const at = cp + <usize>r * ldcb + (<usize>q << 2);
              const v = load<f32>(tile + <usize>(r * 32 + q * 4));
              store<f32>(at, acc ? load<f32>(at) + v : v);
            }
          }
        }
      }
    } else if (nr > 4) {
      for (let ip = 0; ip < mPanels; ip++) {
        const mr = imin(4, mc - ip * 4);
        const cp = cc + <usize>(ip * 4) * ldcb;
        const ap = Ap + <usize>ip * aps;
        if (mr == 4 && nr == 8) {
          micro4x8(ap, bp, kc, cp, ldcb, acc);
        } else {
          micro4x8(ap, bp, kc, tile, 32, 0);
          for (let r = 0; r < mr; r++) {
            for (let q = 0; q < nr; q++) {
              const at = cp + <usize>r * ldcb + (<usize>q << 2);
              const v = load<f32>(tile + <usize>(r * 32 + q * 4));
              store<f32>(at, acc ? load<f32>(at) + v : v);
            }
          }
        }
      }
    } else if (nr == 1) {
      for (let ip = 0; ip < mPanels; ip += 4) {
        microT16x1(Ap + <usize>ip * aps, aps, bp, kc, cc + <usize>(ip * 4) * ldcb, ldcb, acc, mc - ip * 4, nr);
      }
    } else {
      for (let ip = 0; ip < mPanels; ip += 2) {
        microT8x4(Ap + <usize>ip * aps, aps, bp, kc, cc + <usize>(ip * 4) * ldcb, ldcb, acc, mc - ip * 4, nr);
      }
    }
  }
}

// ---- the job ---------------------------------------------------------------------------------------
export function gemmRun(job: usize, tid: i32): void {
  const aMode = fld(job, G_AMODE), bTrans = fld(job, G_BTRANS);
  const a = <usize>fld(job, G_A), lda = fld(job, G_LDA), aStride = fld(job, G_ASTRIDE);
  const b = <usize>fld(job, G_B), ldb = fld(job, G_LDB), bStride = fld(job, G_BSTRIDE);
  const c = <usize>fld(job, G_C), ldc = fld(job, G_LDC), cStride = fld(job, G_CSTRIDE);
  const M = fld(job, G_M), N = fld(job, G_N), K = fld(job, G_K), batch = fld(job, G_BATCH);
  const MC = fld(job, G_MC), NC = fld(job, G_NC), KC = fld(job, G_KC);
  const S = fld(job, G_S), kChunk = fld(job, G_KCHUNK);
  const partial = <usize>fld(job, G_PARTIAL);
  const zero = <usize>fld(job, G_ZERO);
  const scratch = <usize>fld(job, G_SCRATCH) + <usize>tid * <usize>fld(job, G_SCRATCH_STRIDE);
  const Ap = scratch;
  const Bp = Ap + <usize>MC * rowStride(KC); // >= the panel format's (MC / 4) * panelStride(KC)
  const rowFormat = (aMode == 0 || aMode == 2) && N > 4;
  const tile = Bp + <usize>(((NC + 7) & ~7) * KC * 4);
  const mBlocks = (M + MC - 1) / MC;
  const nBlocks = (N + NC - 1) / NC;
  const nTasks = batch * S * nBlocks * mBlocks;
  while (true) {
    const task = atomic.add<i32>(job + (<usize>J_COUNTER << 2), 1);
    if (task >= nTasks) break;
    let r = task;
    const mb = r % mBlocks;
    r = r / mBlocks;
    const nb = r % nBlocks;
    r = r / nBlocks;
    const s = r % S;
    const bi = r / S;
    const m0 = mb * MC, mc = imin(MC, M - m0);
    const n0 = nb * NC, nc = imin(NC, N - n0);
    const k0 = s * kChunk, k1 = imin(K, k0 + kChunk);
    let cp: usize;
    let ldcT = ldc;
    if (S > 1) {
      cp = partial + (<usize>(s * M * N + m0 * N + n0) << 2);
      ldcT = N;
    } else {
      cp = c + (<usize>(bi * cStride + m0 * ldc + n0) << 2);
    }
    const aB = a + (<usize>(bi * aStride) << 2);
    const bB = b + (<usize>(bi * bStride) << 2);
    for (let pc = k0; pc < k1; pc += KC) {
      const kc = imin(KC, k1 - pc);
      if (bTrans) packB1(bB, ldb, n0, nc, pc, kc, Bp, zero);
      else packB0(bB, ldb, n0, nc, pc, kc, Bp);
      const acc = pc == k0 ? 0 : 1;
      if (rowFormat && aMode == 0) {
        // Whole panels straight from A (its rows are the microkernel's rows); a partial last panel is packed.
        const full = mc & ~3;
        if (full > 0) multiplyBlock(aB + (<usize>(m0 * lda + pc) << 2), Bp, full, nc, kc, cp, ldcT, acc, tile, true, <usize>lda << 2);
        if (full < mc) {
          packA0r(aB, lda, m0 + full, mc - full, pc, kc, Ap);
          multiplyBlock(Ap, Bp, mc - full, nc, kc, cp + <usize>full * (<usize>ldcT << 2), ldcT, acc, tile, true, rowStride(kc));
        }
        continue;
      }
      if (rowFormat) packA2r(job, aB, m0, mc, pc, kc, Ap);
      else if (aMode == 0) packA0(aB, lda, m0, mc, pc, kc, Ap, zero);
      else if (aMode == 1) packA1(aB, lda, m0, mc, pc, kc, Ap);
      else if (aMode == 2) packA2(job, aB, m0, mc, pc, kc, Ap, zero);
      else packA3(job, aB, m0, mc, pc, kc, Ap, zero);
      multiplyBlock(Ap, Bp, mc, nc, kc, cp, ldcT, acc, tile, rowFormat, rowStride(kc));
    }
  }
}

/** out[i] = sum over s < S of partial[s * count + i] (the split-K reduction). */
export function sumPartials(partial: usize, S: i32, count: i32, out: usize): void {
  const bytes = <usize>count << 2;
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const off = <usize>i << 2;
    let v = v128.load(partial + off);
    for (let s = 1; s < S; s++) v = f32x4.add(v, v128.load(partial + off + <usize>s * bytes));
    v128.store(out + off, v);
  }
  for (; i < count; i++) {
    const off = <usize>i << 2;
    let v = load<f32>(partial + off);
    for (let s = 1; s < S; s++) v += load<f32>(partial + off + <usize>s * bytes);
    store<f32>(out + off, v);
  }
}
