// Matrix products: [..., m, k] @ [..., k, n], with optional transposes of either operand.
import { emptyTensor, getBackend, record, shapeString, sizeOf, Tensor, needsGrad } from "../tensor.ts";
import { checkFloat, checkSameDtype } from "./checks.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Batch dims must be equal, or one operand is a plain matrix shared by the batch.
 * A batched A with a plain, untransposed B folds into one big product (Linear layers).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  checkSameDtype("matmul", a, b);
  checkFloat("matmul", a, b);
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank >= 2, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  if (b.rank === 2 && a.rank > 2 && !transA) {
    const folded = matmul(reshape(a, [-1, a.shape[a.rank - 1]!]), b, options);
    return reshape(folded, [...a.shape.slice(0, -1), folded.shape[1]!]);
  }
  const [m, ka] = transA ? [a.shape[a.rank - 1]!, a.shape[a.rank - 2]!] : [a.shape[a.rank - 2]!, a.shape[a.rank - 1]!];
  const [kb, n] = transB ? [b.shape[b.rank - 1]!, b.shape[b.rank - 2]!] : [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = aBatch.length ? aBatch : bBatch;
  const sameBatch = aBatch.length === bBatch.length && aBatch.every((d, i) => d === bBatch[i]);
  if (ka !== kb || !(sameBatch || aBatch.length === 0 || bBatch.length === 0)) {
    throw new Error(
      `matmul: shapes ${shapeString(a.shape)}${transA ? "^T" : ""} and ${shapeString(b.shape)}${transB ? "^T" : ""} do not fit`,
    );
  }
  const batch = sizeOf(batchShape);
  const out = emptyTensor([...batchShape, m, n], a.dtype, "matmul");
  getBackend().matmul(a.storage, b.storage, out.storage, {
    batch, m, n, k: ka, transA, transB,
    aBatchStride: aBatch.length ? m * ka : 0,
    bBatchStride: bBatch.length ? ka * n : 0,
  });
  return record(out, "matmul", [a, b], (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needsGrad(a)) {
      ga = transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      if (aBatch.length === 0 && bBatch.length) ga = sum(ga, ga.shape.slice(0, -2).map((_, i) => i));
    }
    if (needsGrad(b)) {
      gb = transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      if (bBatch.length === 0 && aBatch.length) gb = sum(gb, gb.shape.slice(0, -2).map((_, i) => i));
    }
    return [ga, gb];
  });
}
