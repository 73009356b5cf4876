// Matrix products and convolution (im2col + matmul) of the reference CPU backend.
import type { ConvArgs, MatmulArgs, TypedArray } from "../../backend.ts";

/**
 * C[b] = op(A[b]) @ op(B[b]). Rows of C are accumulated in a float64 buffer
 * (the reference backend favours exactness); the loops run over contiguous memory.
 */
export function matmul(a: TypedArray, b: TypedArray, out: TypedArray, args: MatmulArgs): void {
  const { batch, m, n, k, transA, transB, aBatchStride, bBatchStride } = args;
  const row = new Float64Array(n);
  for (let p = 0; p < batch; p++) {
    const aOff = p * aBatchStride;
    const bOff = p * bBatchStride;
    const cOff = p * m * n;
    for (let i = 0; i < m; i++) {
      if (transB) {
        // B is [n, k]: each output is a dot product of two contiguous rows (when !transA).
        for (let j = 0; j < n; j++) {
          let s = 0;
          const bRow = bOff + j * k;
          if (transA) for (let q = 0; q < k; q++) s += a[aOff + q * m + i]! * b[bRow + q]!;
          else {
            const aRow = aOff + i * k;
            for (let q = 0; q < k; q++) s += a[aRow + q]! * b[bRow + q]!;
          }
          out[cOff + i * n + j] = s;
        }
        continue;
      }
      row.fill(0);
      for (let q = 0; q < k; q++) {
        const av = transA ? a[aOff + q * m + i]! : a[aOff + i * k + q]!;
        if (av === 0) continue;
        const bRow = bOff + q * n;
        for (let j = 0; j < n; j++) row[j] += av * b[bRow + j]!;
      }
      out.set(row, cOff + i * n);
    }
  }
}

/** Rows of patches: [b*oh*ow, kh*kw*c], zeros where the window covers padding. */
export function im2col(x: TypedArray, args: ConvArgs, cols: TypedArray): void {
  const { b, h, w, c, kh, kw, pad, oh, ow } = args;
  const patch = kh * kw * c;
  let r = 0;
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++, r++) {
        let at = r * patch;
        for (let di = 0; di < kh; di++) {
          const y = i + di - pad;
          for (let dj = 0; dj < kw; dj++, at += c) {
            const xx = j + dj - pad;
            if (y < 0 || y >= h || xx < 0 || xx >= w) cols.fill(0, at, at + c);
            else {
              const src = ((n * h + y) * w + xx) * c;
              for (let q = 0; q < c; q++) cols[at + q] = x[src + q]!;
            }
          }
        }
      }
    }
  }
}

function isPointwise(args: ConvArgs): boolean {
  return args.kh === 1 && args.kw === 1 && args.pad === 0;
}

export function conv2d(x: TypedArray, kernel: TypedArray, out: TypedArray, args: ConvArgs, scratch: (size: number) => TypedArray): void {
  const rows = args.b * args.oh * args.ow;
  const patch = args.kh * args.kw * args.c;
  const cols = isPointwise(args) ? x : scratch(rows * patch);
  if (cols !== x) im2col(x, args, cols);
  matmul(cols, kernel, out, { batch: 1, m: rows, n: args.o, k: patch, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
}

export function conv2dKernelGrad(x: TypedArray, g: TypedArray, out: TypedArray, args: ConvArgs, scratch: (size: number) => TypedArray): void {
  const rows = args.b * args.oh * args.ow;
  const patch = args.kh * args.kw * args.c;
  const cols = isPointwise(args) ? x : scratch(rows * patch);
  if (cols !== x) im2col(x, args, cols);
  matmul(cols, g, out, { batch: 1, m: patch, n: args.o, k: rows, transA: true, transB: false, aBatchStride: 0, bBatchStride: 0 });
}
