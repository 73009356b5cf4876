// Elementwise, broadcast and reduction kernels of the reference CPU backend.
import type { BinaryOp, ReduceOp, Shape, TypedArray, UnaryOp } from "../../backend.ts";

// gelu with the tanh approximation (Flax's default), u = c (x + a x^3), c = sqrt(2/pi), a = 0.044715:
//   gelu(x) = 0.5 x (1 + tanh(u))                                   = x s
//   gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) u'         = s + 2 x q u'
//   gelu''(x) = (1 - tanh(u)^2) u' + 0.5 x (1 - tanh(u)^2)(u'' - 2 tanh(u) u'^2)
//             = 4 q (u' + 0.5 x u'' - x tanh(u) u'^2)
// with u' = c (1 + 3 a x^2), u'' = 6 a c x, s = sigmoid(2u) = (1 + tanh(u)) / 2 and q = s (1 - s) =
// (1 - tanh(u)^2) / 4. s, q and tanh(u) come from e = exp(-2|u|) <= 1 (no overflow, no cancellation:
// 1 + tanh(u) for u << 0 would lose every digit). Evaluated in float64 (rounded once for float32); the
// Wasm kernels evaluate the same expressions in the same order (assembly/math.ts).
export const GELU_C = Math.sqrt(2 / Math.PI);
export const GELU_A = 0.044715;
const GELU_3A = 3 * GELU_A;
const GELU_6AC = 6 * GELU_A * GELU_C;

export function gelu(x: number): number {
  const x2 = x * x;
  const u = GELU_C * (x + GELU_A * (x * x2));
  const e = Math.exp(-2 * Math.abs(u));
  const d = 1 / (1 + e);
  return x * (u >= 0 ? d : e * d);
}

export function geluD1(x: number): number {
  const x2 = x * x;
  const u = GELU_C * (x + GELU_A * (x * x2));
  const up = GELU_C * (1 + GELU_3A * x2);
  const e = Math.exp(-2 * Math.abs(u));
  const d = 1 / (1 + e);
  const q = e * d * d;
  return (u >= 0 ? d : e * d) + 2 * x * q * up;
}

export function geluD2(x: number): number {
  const x2 = x * x;
  const u = GELU_C * (x + GELU_A * (x * x2));
  const up = GELU_C * (1 + GELU_3A * x2);
  const e = Math.exp(-2 * Math.abs(u));
  const d = 1 / (1 + e);
  const q = e * d * d;
  const m = (1 - e) * d;
  const th = u >= 0 ? m : -m;
  return 4 * q * (up + 0.5 * x * (GELU_6AC * x) - x * th * up * up);
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  abs: Math.abs,
  sign: Math.sign,
  sin: Math.sin,
  cos: Math.cos,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  step: (x) => (x > 0 ? 1 : 0),
  gelu,
  geluD1,
  geluD2,
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  // NaN in either operand gives NaN, as numpy/jnp.maximum (a when a is NaN, else b).
  maximum: (a, b) => ((a >= b || a !== a) && b === b ? a : b),
  minimum: (a, b) => ((a <= b || a !== a) && b === b ? a : b),
  less: (a, b) => (a < b ? 1 : 0),
  lessEqual: (a, b) => (a <= b ? 1 : 0),
  greater: (a, b) => (a > b ? 1 : 0),
  greaterEqual: (a, b) => (a >= b ? 1 : 0),
  equal: (a, b) => (a === b ? 1 : 0),
};

export function unary(op: UnaryOp, x: TypedArray, out: TypedArray): void {
  const f = UNARY[op];
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = f(x[i]!);
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** Strides of `shape` read as if broadcast to `outShape` (0 on broadcast axes). */
function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(shape);
  return outShape.map((d, i) => (shape[i] === d ? strides[i]! : 0));
}

export function binary(op: BinaryOp, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): void {
  const f = BINARY[op];
  const n = out.length;
  if (a.length === n && b.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
    return;
  }
  if (b.length === 1 && a.length === n) {
    const bv = b[0]!;
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, bv);
    return;
  }
  if (a.length === 1 && b.length === n) {
    const av = a[0]!;
    for (let i = 0; i < n; i++) out[i] = f(av, b[i]!);
    return;
  }
  // General case: odometer over the leading axes, tight loop over the last one.
  const rank = outShape.length;
  const as = broadcastStrides(aShape, outShape);
  const bs = broadcastStrides(bShape, outShape);
  const last = outShape[rank - 1]!;
  const aStep = as[rank - 1]!;
  const bStep = bs[rank - 1]!;
  const index = new Array<number>(rank).fill(0);
  let ai = 0, bi = 0;
  for (let o = 0; o < n; o += last) {
    for (let j = 0, aj = ai, bj = bi; j < last; j++, aj += aStep, bj += bStep) out[o + j] = f(a[aj]!, b[bj]!);
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      ai += as[d]!;
      bi += bs[d]!;
      if (index[d]! < outShape[d]!) break;
      ai -= as[d]! * outShape[d]!;
      bi -= bs[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}

export function select(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void {
  for (let i = 0; i < out.length; i++) out[i] = cond[i] !== 0 ? a[i]! : b[i]!;
}

/** Sums in float64, so the reference backend is more exact than float32 accumulation. */
export function reduce(op: ReduceOp, x: TypedArray, shape: Shape, axes: readonly number[], out: TypedArray): void {
  const rank = shape.length;
  const reduced = new Array<boolean>(rank).fill(false);
  for (const a of axes) reduced[a] = true;
  // Fast path: reducing a trailing block of axes [outer, inner-reduced].
  const firstReduced = reduced.indexOf(true);
  const trailing = firstReduced >= 0 && reduced.slice(firstReduced).every((r) => r);
  const leading = firstReduced === 0 && reduced.lastIndexOf(true) === axes.length - 1;
  if (firstReduced < 0) {
    out.set(x);
    return;
  }
  if (trailing) {
    const inner = shape.slice(firstReduced).reduce((p, d) => p * d, 1);
    const outer = out.length;
    for (let o = 0; o < outer; o++) {
      const base = o * inner;
      if (op === "sum") {
        let s = 0;
        for (let i = 0; i < inner; i++) s += x[base + i]!;
        out[o] = s;
      } else {
        let m = -Infinity;
        for (let i = 0; i < inner; i++) {
          const v = x[base + i]!;
          if (v > m || v !== v) m = v;
        }
        out[o] = m;
      }
    }
    return;
  }
  if (leading) {
    const inner = out.length;
    const outer = x.length / inner;
    const acc = new Float64Array(inner).fill(op === "sum" ? 0 : -Infinity);
    for (let o = 0; o < outer; o++) {
      const base = o * inner;
      if (op === "sum") for (let i = 0; i < inner; i++) acc[i] += x[base + i]!;
      else for (let i = 0; i < inner; i++) { const v = x[base + i]!; if (v > acc[i]! || v !== v) acc[i] = v; }
    }
    out.set(acc);
    return;
  }
  const outShape = shape.map((d, i) => (reduced[i] ? 1 : d));
  const os = broadcastStrides(outShape, shape).map((s, i) => (reduced[i] ? 0 : s));
  const acc = new Float64Array(out.length).fill(op === "sum" ? 0 : -Infinity);
  const index = new Array<number>(rank).fill(0);
  let oi = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (op === "sum") acc[oi] += v;
    else if (v > acc[oi]! || v !== v) acc[oi] = v;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      oi += os[d]!;
      if (index[d]! < shape[d]!) break;
      oi -= os[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  out.set(acc);
}

export function cumulative(op: "sum" | "prod", x: TypedArray, shape: Shape, axis: number, reverse: boolean, out: TypedArray): void {
  const len = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const outer = x.length / (len * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === "sum" ? 0 : 1;
      for (let s = 0; s < len; s++) {
        const k = reverse ? len - 1 - s : s;
        const at = (o * len + k) * inner + i;
        acc = op === "sum" ? acc + x[at]! : acc * x[at]!;
        out[at] = acc;
      }
    }
  }
}

/**
 * Of one row: stats[0] = mean, stats[1] = 1/sqrt(max(0, E[x^2] - E[x]^2) + eps) (flax's fast variance),
 * stats[2] = 1 where that variance was not clamped (the gradient flows through it), else 0.
 */
function rowStats(x: TypedArray, base: number, cols: number, eps: number, stats: Float64Array): void {
  let s = 0, s2 = 0;
  for (let i = 0; i < cols; i++) {
    const v = x[base + i]!;
    s += v;
    s2 += v * v;
  }
  const mu = s / cols;
  const v = s2 / cols - mu * mu;
  stats[0] = mu;
  stats[1] = 1 / Math.sqrt((v >= 0 ? v : 0) + eps);
  stats[2] = v >= 0 ? 1 : 0;
}

/**
 * Layer normalization over rows (see Backend.layerNorm). In float64 this is, operation for operation, the
 * composite mean / square / maximum / rsqrt / mul / add formula (sums in order, divided by the count).
 */
export function layerNorm(x: TypedArray, rows: number, cols: number, scale: TypedArray, bias: TypedArray, eps: number, out: TypedArray): void {
  const stats = new Float64Array(3);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    rowStats(x, base, cols, eps, stats);
    const mu = stats[0]!, rstd = stats[1]!;
    for (let i = 0; i < cols; i++) out[base + i] = (x[base + i]! - mu) * rstd * scale[i]! + bias[i]!;
  }
}

/** The input gradient of layerNorm (see Backend.layerNormGradX); in float64 the composite formula's operations. */
export function layerNormGradX(x: TypedArray, g: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
  const stats = new Float64Array(3);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    rowStats(x, base, cols, eps, stats);
    const mu = stats[0]!, rstd = stats[1]!;
    let sg = 0, sgx = 0;
    for (let i = 0; i < cols; i++) {
      const gs = g[base + i]! * scale[i]!;
      sg += gs;
      sgx += gs * ((x[base + i]! - mu) * rstd);
    }
    const m1 = sg / cols;
    const m2 = stats[2] ? sgx / cols : 0;
    for (let i = 0; i < cols; i++) {
      const gs = g[base + i]! * scale[i]!;
      out[base + i] = rstd * (gs - m1 - (x[base + i]! - mu) * rstd * m2);
    }
  }
}

/** The x-gradient of layerNormGradX for the cotangent h (see Backend.layerNormGradXGradX), in float64. */
export function layerNormGradXGradX(x: TypedArray, g: TypedArray, h: TypedArray, rows: number, cols: number, scale: TypedArray, eps: number, out: TypedArray): void {
  const stats = new Float64Array(3);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    rowStats(x, base, cols, eps, stats);
    const mu = stats[0]!, rstd = stats[1]!;
    if (!stats[2]) {
      out.fill(0, base, base + cols); // the clamped variance passes no gradient
      continue;
    }
    let sh = 0, sa = 0, sax = 0, shx = 0, sha = 0;
    for (let i = 0; i < cols; i++) {
      const xhat = (x[base + i]! - mu) * rstd, a = g[base + i]! * scale[i]!, hv = h[base + i]!;
      sh += hv;
      sa += a;
      sax += a * xhat;
      shx += hv * xhat;
      sha += hv * a;
    }
    const hBar = sh / cols, aBar = sa / cols, c = sax / cols, d = shx / cols;
    const k = rstd * rstd;
    const k1 = k * (3 * c * d - sha / cols + hBar * aBar);
    for (let i = 0; i < cols; i++) {
      const xhat = (x[base + i]! - mu) * rstd, a = g[base + i]! * scale[i]!;
      out[base + i] = k1 * xhat - k * c * (h[base + i]! - hBar) - k * d * (a - aBar);
    }
  }
}
