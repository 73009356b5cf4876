// Plain-JS reference implementations (naive loops over nested indices), independent of the engine.

export function sizeOfShape(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

export function stridesOfShape(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Multi-index of flat position `flat` in `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = flat % shape[i]!;
    flat = Math.floor(flat / shape[i]!);
  }
  return idx;
}

export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let i = 0; i < shape.length; i++) flat = flat * shape[i]! + idx[i]!;
  return flat;
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error("reference: not broadcastable");
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Value of `data` (of `shape`) read at output multi-index `idx` under NumPy broadcasting. */
export function readBroadcast(data: ArrayLike<number>, shape: readonly number[], idx: readonly number[]): number {
  const off = idx.length - shape.length;
  const own = shape.map((d, i) => (d === 1 ? 0 : idx[off + i]!));
  return data[ravel(own, shape)]!;
}

export function refBinary(
  a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[], f: (x: number, y: number) => number,
): { shape: number[]; data: number[] } {
  const shape = broadcastShape(aShape, bShape);
  const data: number[] = [];
  for (let i = 0; i < sizeOfShape(shape); i++) {
    const idx = unravel(i, shape);
    data.push(f(readBroadcast(a, aShape, idx), readBroadcast(b, bShape, idx)));
  }
  return { shape, data };
}

/** C = op(A) op(B), with A [m,k] (or [k,m] if transA), B [k,n] (or [n,k] if transB). */
export function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number, transA: boolean, transB: boolean, aOff = 0, bOff = 0): number[] {
  const out: number[] = [];
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) {
        const av = transA ? a[aOff + q * m + i]! : a[aOff + i * k + q]!;
        const bv = transB ? b[bOff + j * k + q]! : b[bOff + q * n + j]!;
        s += av * bv;
      }
      out.push(s);
    }
  return out;
}

/** Naive 7-loop cross-correlation, NHWC x [B,H,W,C], HWIO K [KH,KW,C,O], zero padding `pad`, stride 1. */
export function refConv2d(x: ArrayLike<number>, xShape: readonly number[], k: ArrayLike<number>, kShape: readonly number[], pad: number): { shape: number[]; data: number[] } {
  const [B, H, W, C] = xShape as [number, number, number, number];
  const [KH, KW, , O] = kShape as [number, number, number, number];
  const OH = H + 2 * pad - KH + 1, OW = W + 2 * pad - KW + 1;
  const xpad = (b: number, i: number, j: number, c: number): number => {
    const y = i - pad, z = j - pad;
    return y < 0 || y >= H || z < 0 || z >= W ? 0 : x[((b * H + y) * W + z) * C + c]!;
  };
  const data: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let o = 0; o < O; o++) {
          let s = 0;
          for (let di = 0; di < KH; di++)
            for (let dj = 0; dj < KW; dj++)
              for (let c = 0; c < C; c++) s += xpad(b, i + di, j + dj, c) * k[((di * KW + dj) * C + c) * O + o]!;
          data.push(s);
        }
  return { shape: [B, OH, OW, O], data };
}

/** out[di,dj,c,o] = sum_{b,i,j} xpad[b,i+di,j+dj,c] g[b,i,j,o]. */
export function refConv2dKernelGrad(x: ArrayLike<number>, xShape: readonly number[], g: ArrayLike<number>, gShape: readonly number[], KH: number, KW: number, pad: number): number[] {
  const [B, H, W, C] = xShape as [number, number, number, number];
  const [, OH, OW, O] = gShape as [number, number, number, number];
  const out: number[] = [];
  for (let di = 0; di < KH; di++)
    for (let dj = 0; dj < KW; dj++)
      for (let c = 0; c < C; c++)
        for (let o = 0; o < O; o++) {
          let s = 0;
          for (let b = 0; b < B; b++)
            for (let i = 0; i < OH; i++)
              for (let j = 0; j < OW; j++) {
                const y = i + di - pad, z = j + dj - pad;
                if (y < 0 || y >= H || z < 0 || z >= W) continue;
                s += x[((b * H + y) * W + z) * C + c]! * g[((b * OH + i) * OW + j) * O + o]!;
              }
          out.push(s);
        }
  return out;
}

/** 2x2/2 max pool with 'SAME' padding (-inf at the end for odd sizes), NHWC. */
export function refMaxPool(x: ArrayLike<number>, shape: readonly number[]): { shape: number[]; data: number[] } {
  const [B, H, W, C] = shape as [number, number, number, number];
  const OH = Math.ceil(H / 2), OW = Math.ceil(W / 2);
  const data: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let c = 0; c < C; c++) {
          let m = -Infinity;
          for (let di = 0; di < 2; di++)
            for (let dj = 0; dj < 2; dj++) {
              const y = 2 * i + di, z = 2 * j + dj;
              const v = y < H && z < W ? x[((b * H + y) * W + z) * C + c]! : -Infinity;
              m = Math.max(m, v);
            }
          data.push(m);
        }
  return { shape: [B, OH, OW, C], data };
}

/** Nearest resize, src = floor((i + 0.5) * in / out). */
export function refUpsample(x: ArrayLike<number>, shape: readonly number[], OH: number, OW: number): number[] {
  const [B, H, W, C] = shape as [number, number, number, number];
  const data: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let c = 0; c < C; c++) {
          const si = Math.floor(((i + 0.5) * H) / OH), sj = Math.floor(((j + 0.5) * W) / OW);
          data.push(x[((b * H + si) * W + sj) * C + c]!);
        }
  return data;
}

/** Rows of the last axis, each mapped by `f`. */
export function mapRows(x: ArrayLike<number>, rowLength: number, f: (row: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / rowLength; r++) out.push(...f(Array.from({ length: rowLength }, (_, i) => x[r * rowLength + i]!)));
  return out;
}

export function refGelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}
