// Float64 linear algebra for SCP: symmetric eigendecomposition (cyclic Jacobi), top-k right
// singular vectors of a tall or wide matrix (through the smaller Gram matrix, or by subspace
// iteration when both sides are large), and the low-rank projection of a weight matrix that
// never forms a D x D matrix. Matrices are row-major Float64Array with explicit sizes.

export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array): Mat {
  return { rows, cols, data: data ?? new Float64Array(rows * cols) };
}

/** Eigenvalues (descending) and eigenvectors (columns of `vectors`) of a symmetric matrix. */
export function symmetricEigen(a: Mat): { values: Float64Array; vectors: Mat } {
  const n = a.rows;
  const A = Float64Array.from(a.data);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(A[i]));
  const tol = Math.max(scale, 1e-300) * 1e-15;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off = Math.max(off, Math.abs(A[p * n + q]));
    if (off <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (Math.abs(apq) <= tol * 1e-3) continue;
        const app = A[p * n + p];
        const aqq = A[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p];
          const akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k];
          const aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p];
          const vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => A[j * n + j] - A[i * n + i]);
  const values = Float64Array.from(order, (i) => A[i * n + i]);
  const vectors = mat(n, n);
  for (let c = 0; c < n; c++) for (let r = 0; r < n; r++) vectors.data[r * n + c] = V[r * n + order[c]];
  return { values, vectors };
}

/** C = A B (A: m x k, B: k x n). */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}x${a.cols} times ${b.rows}x${b.cols}`);
  const c = mat(a.rows, b.cols);
  const n = b.cols;
  for (let i = 0; i < a.rows; i++) {
    const ci = i * n;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k];
      if (aik === 0) continue;
      const bk = k * n;
      for (let j = 0; j < n; j++) c.data[ci + j] += aik * b.data[bk + j];
    }
  }
  return c;
}

export function transpose(a: Mat): Mat {
  const t = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) t.data[j * a.rows + i] = a.data[i * a.cols + j];
  return t;
}

/** Gram-Schmidt (twice) on the columns of a; returns a matrix with orthonormal columns. */
function orthonormalizeColumns(a: Mat): Mat {
  const { rows, cols } = a;
  const q = mat(rows, cols, Float64Array.from(a.data));
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let r = 0; r < rows; r++) dot += q.data[r * cols + i] * q.data[r * cols + j];
        for (let r = 0; r < rows; r++) q.data[r * cols + j] -= dot * q.data[r * cols + i];
      }
    }
    let norm = 0;
    for (let r = 0; r < rows; r++) norm += q.data[r * cols + j] ** 2;
    norm = Math.sqrt(norm);
    for (let r = 0; r < rows; r++) q.data[r * cols + j] = norm > 1e-300 ? q.data[r * cols + j] / norm : 0;
  }
  return q;
}

export interface TopK {
  /** D x k, orthonormal columns: the top-k right singular vectors. */
  V: Mat;
  /** All singular values found (descending), at least the top k. */
  singularValues: number[];
  rank: number;
}

/**
 * Top-k right singular vectors of H (N x D). Exact through the N x N (or D x D) Gram matrix
 * when the smaller side is at most `exactLimit`; otherwise block subspace iteration.
 * k is clamped to the numerical rank.
 */
export function topRightSingular(h: Mat, k: number, opts: { exactLimit?: number; iterations?: number; seed?: number } = {}): TopK {
  const { rows: N, cols: D } = h;
  const exactLimit = opts.exactLimit ?? 384;
  if (Math.min(N, D) <= exactLimit) {
    if (N <= D) {
      // G = H H^T = U S^2 U^T; V = H^T U S^-1.
      const g = matmul(h, transpose(h));
      const { values, vectors } = symmetricEigen(g);
      const sv = Array.from(values, (x) => Math.sqrt(Math.max(0, x)));
      const rank = numericalRank(sv, Math.max(N, D));
      const kk = Math.min(k, rank);
      const V = mat(D, kk);
      const ht = transpose(h);
      for (let c = 0; c < kk; c++) {
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let n = 0; n < N; n++) s += ht.data[d * N + n] * vectors.data[n * N + c];
          V.data[d * kk + c] = s / sv[c];
        }
      }
      return { V: orthonormalizeColumns(V), singularValues: sv, rank };
    }
    const g = matmul(transpose(h), h);
    const { values, vectors } = symmetricEigen(g);
    const sv = Array.from(values, (x) => Math.sqrt(Math.max(0, x)));
    const rank = numericalRank(sv, Math.max(N, D));
    const kk = Math.min(k, rank);
    const V = mat(D, kk);
    for (let d = 0; d < D; d++) for (let c = 0; c < kk; c++) V.data[d * kk + c] = vectors.data[d * D + c];
    return { V, singularValues: sv, rank };
  }
  // Subspace iteration on H^T H with oversampling, then a small exact problem.
  const p = Math.min(D, k + 10);
  let seed = opts.seed ?? 1234567;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  let Q = orthonormalizeColumns(mat(D, p, Float64Array.from({ length: D * p }, rand)));
  const ht = transpose(h);
  // Iterate until the leading singular values settle (flat spectra need more than a few).
  let prev: number[] = [];
  for (let it = 0; it < (opts.iterations ?? 200); it++) {
    const Z = matmul(h, Q);
    let moved = 0;
    const norms = Array.from({ length: p }, (_, c) => {
      let s = 0;
      for (let r = 0; r < N; r++) s += Z.data[r * p + c] ** 2;
      return Math.sqrt(s);
    });
    norms.sort((a, b) => b - a);
    for (let c = 0; c < Math.min(k, p); c++) moved = Math.max(moved, Math.abs(norms[c] - (prev[c] ?? 0)) / (norms[0] || 1));
    prev = norms;
    Q = orthonormalizeColumns(matmul(ht, Z));
    if (it >= 4 && moved < 1e-13) break;
  }
  const B = matmul(h, Q); // N x p
  const small = symmetricEigen(matmul(transpose(B), B)); // p x p
  const sv = Array.from(small.values, (x) => Math.sqrt(Math.max(0, x)));
  const rank = numericalRank(sv, Math.max(N, D));
  const kk = Math.min(k, rank);
  const W = mat(p, kk);
  for (let r = 0; r < p; r++) for (let c = 0; c < kk; c++) W.data[r * kk + c] = small.vectors.data[r * p + c];
  return { V: orthonormalizeColumns(matmul(Q, W)), singularValues: sv, rank };
}

/**
 * Every path takes the singular values as square roots of a Gram matrix's eigenvalues
 * (H H^T, H^T H or B^T B), which carry an absolute error of about maxDim * eps * sigma_1^2: a
 * zero singular value comes back as about sqrt(eps) * sigma_1 (1e-8 relative), not 0. So the
 * cut is on the eigenvalues, sigma_i^2 <= sigma_1^2 * maxDim * 1e-14, i.e. on sigma_i at
 * sigma_1 * sqrt(maxDim * 1e-14) (5e-7 relative for maxDim 30, 6e-6 for 4096).
 */
function numericalRank(sv: number[], maxDim: number): number {
  const tol = (sv[0] ?? 0) * Math.sqrt(maxDim * 1e-14);
  return sv.filter((s) => s > tol && s > 0).length;
}

/**
 * Projects a weight that writes into the residual stream onto (I + V V^T) on its output side:
 * [in, out] layout: W' = W + (W V) V^T;  [out, in] layout: W' = W + V (V^T W).
 * With `inputSide`, the literal reading of the paper's eq. 10 on a layer's input weights:
 * [in, out]: W' = W + V (V^T W);  [out, in]: W' = W + (W V) V^T.
 */
export function projectWeight(w: Float32Array | Float64Array, rows: number, cols: number, V: Mat, side: 'output' | 'input', inOut: boolean): Float64Array {
  const out = Float64Array.from(w);
  const k = V.cols;
  const D = V.rows;
  const rightMultiply = (side === 'output') === inOut; // W (I + V V^T)
  if (rightMultiply) {
    if (cols !== D) throw new Error(`projection: weight has ${cols} columns, subspace dimension ${D}`);
    const wv = new Float64Array(k);
    for (let r = 0; r < rows; r++) {
      wv.fill(0);
      for (let c = 0; c < cols; c++) {
        const x = w[r * cols + c];
        for (let j = 0; j < k; j++) wv[j] += x * V.data[c * k + j];
      }
      for (let c = 0; c < cols; c++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += wv[j] * V.data[c * k + j];
        out[r * cols + c] += s;
      }
    }
  } else {
    if (rows !== D) throw new Error(`projection: weight has ${rows} rows, subspace dimension ${D}`);
    const vtw = new Float64Array(k * cols); // V^T W
    for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) {
      const v = V.data[r * k + j];
      if (v === 0) continue;
      for (let c = 0; c < cols; c++) vtw[j * cols + c] += v * w[r * cols + c];
    }
    for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) {
      const v = V.data[r * k + j];
      for (let c = 0; c < cols; c++) out[r * cols + c] += v * vtw[j * cols + c];
    }
  }
  return out;
}
