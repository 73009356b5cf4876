// Sample-quality metrics in plain float64 (pure: no engine, no Node APIs).
//
// Fréchet distance between Gaussian fits N(mu1, S1), N(mu2, S2) of two feature sets (FID's formula):
//   FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})
// S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix R = S1^{1/2} S2 S1^{1/2}
// (S1 S2 = S1^{1/2} R S1^{-1/2} when S1 is invertible, and by continuity otherwise), so
// tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(R)). Both square roots come from symmetric eigen-decompositions
// (cyclic Jacobi), with round-off negatives clamped to 0: no complex parts to discard, unlike scipy's sqrtm,
// and exact for rank-deficient covariances (fewer samples than feature dimensions).
//
// Copy check: the L2 distance (pixel/16 units, 64 pixels) from each sample to its nearest training image,
// compared with the same distance for real held-out images: memorised training images score well on FD and
// class accuracy, but sit at distance ~0 from the training set.

/** A Gaussian fit: mean [dim] and covariance [dim*dim] row-major, from n samples. */
export interface GaussianFit {
  mean: Float64Array;
  cov: Float64Array;
  dim: number;
  n: number;
}

/** Mean and unbiased covariance (divided by n - 1, as numpy.cov) of n rows of `dim` values (row-major). */
export function gaussianFit(rows: ArrayLike<number>, n: number, dim: number): GaussianFit {
  if (!Number.isInteger(n) || !Number.isInteger(dim) || dim < 1) throw new Error(`gaussianFit: bad sizes n=${n}, dim=${dim}`);
  if (rows.length !== n * dim) throw new Error(`gaussianFit: ${rows.length} values are not ${n} rows of ${dim}`);
  if (n < 2) throw new Error(`gaussianFit: need at least 2 samples for a covariance, got ${n}`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j]! += rows[i * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const cov = new Float64Array(dim * dim);
  const centered = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) centered[j] = rows[i * dim + j]! - mean[j]!;
    for (let a = 0; a < dim; a++) {
      const ca = centered[a]!;
      if (ca === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b]! += ca * centered[b]!;
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b]! / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { mean, cov, dim, n };
}

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /** Eigenvectors as the COLUMNS of a dim*dim row-major matrix, in the order of `values`. */
  vectors: Float64Array;
}

/**
 * Eigen-decomposition of a symmetric matrix (dim*dim row-major; only symmetric input is meaningful, the
 * average of A and A^T is used) by the cyclic Jacobi method: A = V diag(values) V^T with V orthogonal.
 * Accurate to a few ulps of the matrix norm.
 */
export function symmetricEigen(matrix: ArrayLike<number>, dim: number): SymmetricEigen {
  if (matrix.length !== dim * dim) throw new Error(`symmetricEigen: ${matrix.length} values are not a ${dim}x${dim} matrix`);
  const a = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) a[i * dim + j] = 0.5 * (matrix[i * dim + j]! + matrix[j * dim + i]!);
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new Error("symmetricEigen: the matrix has a non-finite entry");
  const v = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) v[i * dim + i] = 1;

  let total = 0;
  for (let i = 0; i < a.length; i++) total += a[i]! * a[i]!;
  const tolerance = (Number.EPSILON * Number.EPSILON) * total;
  // Off-diagonal entries this small change no eigenvalue by more than round-off: set them to 0 instead of
  // rotating (which also keeps the iteration out of subnormal numbers for singular matrices).
  const negligible = 1e-2 * Number.EPSILON * Math.sqrt(total);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < dim; p++) for (let q = p + 1; q < dim; q++) off += a[p * dim + q]! * a[p * dim + q]!;
    if (off <= tolerance || off === 0) break;
    for (let p = 0; p < dim - 1; p++) {
      for (let q = p + 1; q < dim; q++) {
        const apq = a[p * dim + q]!;
        if (apq === 0) continue;
        const app = a[p * dim + p]!;
        const aqq = a[q * dim + q]!;
        const small = 100 * Math.abs(apq);
        if (Math.abs(apq) <= negligible || (Math.abs(app) + small === Math.abs(app) && Math.abs(aqq) + small === Math.abs(aqq))) {
          a[p * dim + q] = 0;
          a[q * dim + p] = 0;
          continue;
        }
        // Golub & Van Loan, sym.schur2: the rotation [c s; -s c] that zeroes a_pq.
        const tau = (aqq - app) / (2 * apq);
        const t = tau >= 0 ? 1 / (tau + Math.sqrt(1 + tau * tau)) : -1 / (-tau + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < dim; k++) { // A <- A J (columns p, q)
          const akp = a[k * dim + p]!;
          const akq = a[k * dim + q]!;
          a[k * dim + p] = c * akp - s * akq;
          a[k * dim + q] = s * akp + c * akq;
        }
        for (let k = 0; k < dim; k++) { // A <- J^T A (rows p, q)
          const apk = a[p * dim + k]!;
          const aqk = a[q * dim + k]!;
          a[p * dim + k] = c * apk - s * aqk;
          a[q * dim + k] = s * apk + c * aqk;
        }
        a[p * dim + q] = 0;
        a[q * dim + p] = 0;
        for (let k = 0; k < dim; k++) { // V <- V J
          const vkp = v[k * dim + p]!;
          const vkq = v[k * dim + q]!;
          v[k * dim + p] = c * vkp - s * vkq;
          v[k * dim + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: dim }, (_, i) => i).sort((i, j) => a[i * dim + i]! - a[j * dim + j]! || i - j);
  const values = Float64Array.from(order, (i) => a[i * dim + i]!);
  const vectors = new Float64Array(dim * dim);
  for (let col = 0; col < dim; col++) for (let k = 0; k < dim; k++) vectors[k * dim + col] = v[k * dim + order[col]!]!;
  return { values, vectors };
}

/** The PSD square root of a symmetric positive semi-definite matrix (negative eigenvalues from round-off -> 0). */
export function sqrtmPsd(matrix: ArrayLike<number>, dim: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, dim);
  const out = new Float64Array(dim * dim);
  for (let k = 0; k < dim; k++) {
    const r = Math.sqrt(Math.max(0, values[k]!));
    if (r === 0) continue;
    for (let i = 0; i < dim; i++) {
      const vi = vectors[i * dim + k]! * r;
      if (vi === 0) continue;
      for (let j = 0; j < dim; j++) out[i * dim + j]! += vi * vectors[j * dim + k]!;
    }
  }
  return out;
}

function matmulSquare(x: Float64Array, y: Float64Array, dim: number): Float64Array {
  const out = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let k = 0; k < dim; k++) {
      const xik = x[i * dim + k]!;
      if (xik === 0) continue;
      for (let j = 0; j < dim; j++) out[i * dim + j]! += xik * y[k * dim + j]!;
    }
  }
  return out;
}

/** tr((S1 S2)^{1/2}) for symmetric PSD S1, S2: the sum of sqrt(eigenvalues of S1^{1/2} S2 S1^{1/2}). */
export function traceSqrtProduct(s1: ArrayLike<number>, s2: ArrayLike<number>, dim: number): number {
  const root = sqrtmPsd(s1, dim);
  const r = matmulSquare(matmulSquare(root, Float64Array.from(s2), dim), root, dim);
  const { values } = symmetricEigen(r, dim);
  let sum = 0;
  for (const l of values) sum += Math.sqrt(Math.max(0, l));
  return sum;
}

/** Fréchet distance between two Gaussians; >= 0 (a round-off negative is returned as 0). */
export function frechetDistance(a: Pick<GaussianFit, "mean" | "cov">, b: Pick<GaussianFit, "mean" | "cov">): number {
  const dim = a.mean.length;
  if (b.mean.length !== dim || a.cov.length !== dim * dim || b.cov.length !== dim * dim) {
    throw new Error(`frechetDistance: dimensions differ (${a.mean.length} vs ${b.mean.length})`);
  }
  let meanTerm = 0;
  for (let i = 0; i < dim; i++) meanTerm += (a.mean[i]! - b.mean[i]!) ** 2;
  let traces = 0;
  for (let i = 0; i < dim; i++) traces += a.cov[i * dim + i]! + b.cov[i * dim + i]!;
  const fd = meanTerm + traces - 2 * traceSqrtProduct(a.cov, b.cov, dim);
  return Math.max(0, fd);
}

/** Fréchet distance between the Gaussian fits of two feature sets ([n1, dim] and [n2, dim], row-major). */
export function featureFrechetDistance(f1: ArrayLike<number>, n1: number, f2: ArrayLike<number>, n2: number, dim: number): number {
  return frechetDistance(gaussianFit(f1, n1, dim), gaussianFit(f2, n2, dim));
}

/** Median of the values (mean of the two middle ones for an even count); NaN for none. */
export function median(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : 0.5 * (sorted[mid - 1]! + sorted[mid]!);
}

export interface NearestTraining {
  /** L2 distance from each sample to its nearest training image. */
  distances: Float64Array;
  /** Index (into the training images) of that nearest image (the first one on ties). */
  nearest: Int32Array;
  median: number;
}

/**
 * For each sample, the L2 distance to the nearest training image (images are `pixels` values each, row-major;
 * samples and training images in the same units).
 */
export function nearestTrainingDistance(samples: ArrayLike<number>, trainImages: ArrayLike<number>, pixels = 64): NearestTraining {
  const n = samples.length / pixels;
  const m = trainImages.length / pixels;
  if (!Number.isInteger(n) || !Number.isInteger(m)) throw new Error(`nearestTrainingDistance: sizes are not multiples of ${pixels} pixels`);
  if (m === 0) throw new Error("nearestTrainingDistance: no training images");
  const train = Float64Array.from(trainImages);
  const distances = new Float64Array(n);
  const nearest = new Int32Array(n);
  const x = new Float64Array(pixels);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < pixels; p++) x[p] = samples[i * pixels + p]!;
    let best = Infinity;
    let bestIndex = 0;
    for (let j = 0; j < m; j++) {
      let d = 0;
      const base = j * pixels;
      for (let p = 0; p < pixels && d < best; p++) {
        const diff = x[p]! - train[base + p]!;
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        bestIndex = j;
      }
    }
    distances[i] = Math.sqrt(best);
    nearest[i] = bestIndex;
  }
  return { distances, nearest, median: median(distances) };
}

export interface CopyCheck {
  /** Median over the samples of the distance to the nearest training image. */
  medianNearestTrainDistance: number;
  /** The same median for real held-out images: what a model that generalises (does not copy) gets. */
  testMedianNearestTrainDistance: number;
  /** Fraction of samples nearer to a training image than that held-out median (about 0.5 for new digits like the held-out ones; near 1 when copying). */
  fractionCloserThanTestMedian: number;
}

/** The copy check of samples against the training images, calibrated by held-out real images. */
export function copyCheck(samples: ArrayLike<number>, trainImages: ArrayLike<number>, heldOutImages: ArrayLike<number>, pixels = 64): CopyCheck {
  const s = nearestTrainingDistance(samples, trainImages, pixels);
  const t = nearestTrainingDistance(heldOutImages, trainImages, pixels);
  let closer = 0;
  for (const d of s.distances) if (d < t.median) closer++;
  return {
    medianNearestTrainDistance: s.median,
    testMedianNearestTrainDistance: t.median,
    fractionCloserThanTestMedian: s.distances.length === 0 ? NaN : closer / s.distances.length,
  };
}
