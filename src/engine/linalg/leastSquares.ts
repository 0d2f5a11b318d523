// Least-squares linear compensation (ReplaceMe-like, DESIGN.md section 6): a D x D map T with
// X T ~ Y, estimated in float64 from running accumulators X^T X and X^T Y over calibration
// tokens (memory does not grow with the number of tokens), ridge-regularised, full rank or
// I + a rank-k correction, and folded into the weight that writes X (W' = W T, no node added).

import { Mat, mat, symmetricEigen } from './svd';

/** Running float64 sums of X^T X, X^T Y (D x D) and the token count. */
export class LsAccumulator {
  readonly xtx: Float64Array;
  readonly xty: Float64Array;
  rows = 0;

  constructor(readonly dim: number) {
    this.xtx = new Float64Array(dim * dim);
    this.xty = new Float64Array(dim * dim);
  }

  /** Adds the rows `tokens` (all when omitted) of x and y, both [S, D] row-major. */
  add(x: ArrayLike<number>, y: ArrayLike<number>, tokens?: Iterable<number>): void {
    const D = this.dim;
    const xs = new Float64Array(D);
    const ys = new Float64Array(D);
    const rows = tokens ?? Array.from({ length: x.length / D }, (_, i) => i);
    for (const t of rows) {
      for (let d = 0; d < D; d++) {
        xs[d] = x[t * D + d];
        ys[d] = y[t * D + d];
      }
      for (let i = 0; i < D; i++) {
        const xi = xs[i];
        if (xi === 0) continue;
        const o = i * D;
        for (let j = 0; j < D; j++) {
          this.xtx[o + j] += xi * xs[j];
          this.xty[o + j] += xi * ys[j];
        }
      }
      this.rows++;
    }
  }
}

/** Cholesky factor L (lower, row-major) of a symmetric positive definite matrix; throws if not SPD. */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new Error('least squares: X^T X + ridge is not positive definite; raise --ls-ridge');
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j];
    }
  }
  return l;
}

/** Solves (L L^T) Z = B for Z (n x m), B row-major. */
function choleskySolve(l: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const z = Float64Array.from(b);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = z[i * m + c];
      for (let k = 0; k < i; k++) s -= l[i * n + k] * z[k * m + c];
      z[i * m + c] = s / l[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = z[i * m + c];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * z[k * m + c];
      z[i * m + c] = s / l[i * n + i];
    }
  }
  return z;
}

export interface LsOptions {
  /**
   * Ridge strength relative to the mean diagonal of X^T X: a = ridge * trace(X^T X) / D, so the
   * same value means the same thing for any activation scale. 0 = plain least squares.
   */
  ridge: number;
  /** undefined = full rank; k = identity plus the best rank-k correction (reduced-rank regression). */
  rank?: number;
}

/**
 * T = argmin ||X T - Y||^2 + a ||T||^2 = (X^T X + a I)^-1 X^T Y (full rank). With a rank k, the
 * map is I + Delta_k, where Delta = (X^T X + a I)^-1 X^T (Y - X) and Delta_k = Delta V_k V_k^T
 * keeps the k directions in which the fitted correction X Delta is largest (V_k: top
 * eigenvectors of Delta^T X^T X Delta), the reduced-rank regression solution.
 */
export function solveLeastSquares(acc: LsAccumulator, o: LsOptions): Mat {
  const D = acc.dim;
  if (!acc.rows) throw new Error('least squares: no calibration tokens');
  let trace = 0;
  for (let i = 0; i < D; i++) trace += acc.xtx[i * D + i];
  const a = (o.ridge * trace) / D;
  const g = Float64Array.from(acc.xtx);
  for (let i = 0; i < D; i++) g[i * D + i] += a;
  const l = cholesky(g, D);
  if (o.rank === undefined || o.rank >= D) return mat(D, D, choleskySolve(l, D, acc.xty, D));
  // Delta from the residual target Y - X: X^T (Y - X) = X^T Y - X^T X.
  const rhs = new Float64Array(D * D);
  for (let i = 0; i < D * D; i++) rhs[i] = acc.xty[i] - acc.xtx[i];
  const delta = choleskySolve(l, D, rhs, D);
  // Covariance of the fitted correction: Delta^T (X^T X) Delta.
  const gd = matMul(acc.xtx, delta, D);
  const c = matMul(transposeSq(delta, D), gd, D);
  for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) c[i * D + j] = c[j * D + i] = (c[i * D + j] + c[j * D + i]) / 2;
  const { vectors } = symmetricEigen(mat(D, D, c));
  const k = Math.max(0, o.rank);
  // Delta V_k V_k^T, then + I.
  const dv = new Float64Array(D * k);
  for (let r = 0; r < D; r++) for (let j = 0; j < k; j++) {
    let s = 0;
    for (let q = 0; q < D; q++) s += delta[r * D + q] * vectors.data[q * D + j];
    dv[r * k + j] = s;
  }
  const t = new Float64Array(D * D);
  for (let r = 0; r < D; r++) {
    t[r * D + r] = 1;
    for (let q = 0; q < D; q++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += dv[r * k + j] * vectors.data[q * D + j];
      t[r * D + q] += s;
    }
  }
  return mat(D, D, t);
}

function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const x = a[i * n + k];
    if (x === 0) continue;
    for (let j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
  }
  return c;
}

function transposeSq(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

/** Residual sum of squares ||X T - Y||^2 from the accumulators and the sum of squares of Y. */
export function lsResidual(acc: LsAccumulator, yy: number, t: Mat): number {
  // ||XT - Y||^2 = tr(T^T XtX T) - 2 tr(T^T XtY) + tr(Y^T Y)
  const D = acc.dim;
  const gt = matMul(acc.xtx, t.data, D);
  let quad = 0;
  let cross = 0;
  for (let i = 0; i < D * D; i++) {
    quad += t.data[i] * gt[i];
    cross += t.data[i] * acc.xty[i];
  }
  return quad - 2 * cross + yy;
}

/**
 * Folds T into the weight that produces X: [in, out] layout (ONNX MatMul, x W): W' = W T;
 * [out, in] layout (x W^T): W' = T^T W.
 */
export function foldMap(w: ArrayLike<number>, rows: number, cols: number, t: Mat, inOut: boolean): Float64Array {
  const D = t.rows;
  if (inOut) {
    if (cols !== D) throw new Error(`fold: weight has ${cols} output columns, map is ${D} x ${D}`);
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let k = 0; k < D; k++) {
      const x = w[r * cols + k];
      if (x === 0) continue;
      for (let j = 0; j < D; j++) out[r * cols + j] += x * t.data[k * D + j];
    }
    return out;
  }
  if (rows !== D) throw new Error(`fold: weight has ${rows} output rows, map is ${D} x ${D}`);
  const out = new Float64Array(rows * cols);
  for (let j = 0; j < D; j++) for (let k = 0; k < D; k++) {
    const tkj = t.data[k * D + j];
    if (tkj === 0) continue;
    for (let c = 0; c < cols; c++) out[j * cols + c] += tkj * w[k * cols + c];
  }
  return out;
}
