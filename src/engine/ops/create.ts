// Creating tensors from values.
import type { DType, Shape, TypedArray } from "../backend.ts";
import { emptyTensor, getBackend, shapeString, sizeOf, Tensor, tensorFromHost } from "../tensor.ts";
import { allocTyped } from "../backends/cpu/index.ts";

export type TensorLike = Tensor | number;

function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: invalid shape ${shapeString(shape)}`);
  }
}

/** A tensor holding a copy of `values` (flat, row-major). */
export function tensor(values: ArrayLike<number>, shape?: Shape, dtype?: DType): Tensor {
  const resolvedShape = shape ?? [values.length];
  checkShape("tensor", resolvedShape);
  const resolvedDtype: DType = dtype ?? (values instanceof Float64Array ? "float64" : values instanceof Int32Array ? "int32" : "float32");
  if (values.length !== sizeOf(resolvedShape)) {
    throw new Error(`tensor: ${values.length} values do not fill shape ${shapeString(resolvedShape)}`);
  }
  const data = allocTyped(resolvedDtype, values.length);
  if (ArrayBuffer.isView(values)) data.set(values as TypedArray);
  else for (let i = 0; i < values.length; i++) data[i] = values[i]!;
  return tensorFromHost(data, resolvedShape, resolvedDtype, "tensor");
}

export function scalar(value: number, dtype: DType = "float32"): Tensor {
  return tensor([value], [], dtype);
}

/** Tensors up to this size are filled on the host and uploaded: on a device, no command in the step. */
const HOST_FILL_MAX = 4096;

export function full(shape: Shape, value: number, dtype: DType = "float32"): Tensor {
  checkShape("full", shape);
  const size = sizeOf(shape);
  if (size <= HOST_FILL_MAX) {
    // (layerNorm's gradients ask for ones and zeros of its channel count ~60 times per training step: as
    // uploads they are no kernels, and a replayed step does not redo them.)
    const data = allocTyped(dtype, size);
    data.fill(value);
    return tensorFromHost(data, shape, dtype, "full");
  }
  const out = emptyTensor(shape, dtype, "full");
  getBackend().fill(out.storage, value);
  return out;
}

export function zeros(shape: Shape, dtype: DType = "float32"): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: Shape, dtype: DType = "float32"): Tensor {
  return full(shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype);
}

/** [start, start+1, ..., stop-1]. */
export function arange(start: number, stop: number, dtype: DType = "float32"): Tensor {
  const n = Math.max(0, Math.ceil(stop - start));
  const data = allocTyped(dtype, n);
  for (let i = 0; i < n; i++) data[i] = start + i;
  return tensorFromHost(data, [n], dtype, "arange");
}

/** NumPy's linspace with endpoint: start + i*(stop-start)/(n-1). */
export function linspace(start: number, stop: number, n: number, dtype: DType = "float32"): Tensor {
  const data = allocTyped(dtype, n);
  const step = n > 1 ? (stop - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) data[i] = i === n - 1 && n > 1 ? stop : start + i * step;
  return tensorFromHost(data, [n], dtype, "linspace");
}

/** Turns a number into a scalar tensor of `like`'s dtype. */
export function asTensor(x: TensorLike, like: Tensor): Tensor {
  return x instanceof Tensor ? x : scalar(x, like.dtype);
}
