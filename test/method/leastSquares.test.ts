// Least-squares compensation (DESIGN.md section 6): the engine's map from running X^T X / X^T Y
// accumulators (Cholesky of the normal equations) against an independent float64 reference
// that never forms X^T X: Householder QR of the stacked data [X; sqrt(a) I] and [Y; 0]. The
// low-rank variant is checked against a planted correction it must recover exactly, and the
// fold W' = W T against applying W then T.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { foldMap, LsAccumulator, lsResidual, solveLeastSquares } from '../../src/engine/linalg/leastSquares';
import { mat } from '../../src/engine/linalg/svd';
import { Rng } from '../support/prng';

type Dense = number[][];

function gaussian(rng: Rng, r: number, c: number): Dense {
  return Array.from({ length: r }, () => Array.from({ length: c }, () => rng.normal()));
}
function mul(a: Dense, b: Dense): Dense {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, x, t) => s + x * b[t][j], 0)));
}

/** min ||A Z - B|| by Householder QR of A (m x n, m >= n), all in float64. */
function qrSolve(A: Dense, B: Dense): Dense {
  const a = A.map((r) => [...r]);
  const b = B.map((r) => [...r]);
  const m = a.length;
  const n = a[0].length;
  for (let k = 0; k < n; k++) {
    let norm = 0;
    for (let i = k; i < m; i++) norm += a[i][k] ** 2;
    norm = Math.sqrt(norm);
    const alpha = a[k][k] > 0 ? -norm : norm;
    const v = new Array<number>(m).fill(0);
    for (let i = k; i < m; i++) v[i] = a[i][k];
    v[k] -= alpha;
    const vv = v.reduce((s, x) => s + x * x, 0);
    if (vv === 0) continue;
    const reflect = (M: Dense) => {
      for (let j = 0; j < M[0].length; j++) {
        let s = 0;
        for (let i = k; i < m; i++) s += v[i] * M[i][j];
        const f = (2 * s) / vv;
        for (let i = k; i < m; i++) M[i][j] -= f * v[i];
      }
    };
    reflect(a);
    reflect(b);
  }
  const z: Dense = Array.from({ length: n }, () => new Array<number>(b[0].length).fill(0));
  for (let j = 0; j < b[0].length; j++) {
    for (let i = n - 1; i >= 0; i--) {
      let s = b[i][j];
      for (let t = i + 1; t < n; t++) s -= a[i][t] * z[t][j];
      z[i][j] = s / a[i][i];
    }
  }
  return z;
}

function accumulate(X: Dense, Y: Dense, chunks = 3): LsAccumulator {
  const D = X[0].length;
  const acc = new LsAccumulator(D);
  // In several calls, as the engine adds one sample at a time; the last chunk by token list.
  const per = Math.ceil(X.length / chunks);
  for (let s = 0; s < X.length; s += per) {
    const xs = X.slice(s, s + per);
    const ys = Y.slice(s, s + per);
    if (s + per >= X.length) acc.add(Float32Array.from(xs.flat()), Float64Array.from(ys.flat()), xs.map((_, i) => i));
    else acc.add(Float64Array.from(xs.flat()), Float64Array.from(ys.flat()));
  }
  return acc;
}

test('the full-rank least-squares map equals a float64 QR reference, with and without ridge', () => {
  const rng = new Rng(101);
  const N = 60;
  const D = 7;
  // Float32-representable X so that accumulating from a Float32Array loses nothing.
  const X = gaussian(rng, N, D).map((r) => r.map((x) => Math.fround(x * 2 + 0.3)));
  const Ttrue = gaussian(rng, D, D);
  const Y = mul(X, Ttrue).map((r) => r.map((y) => y + 0.5 * rng.normal()));
  for (const ridge of [0, 0.05]) {
    const acc = accumulate(X, Y);
    assert.equal(acc.rows, N);
    const T = solveLeastSquares(acc, { ridge });
    let trace = 0;
    for (const r of X) for (const x of r) trace += x * x;
    const a = (ridge * trace) / D;
    const A = [...X, ...Array.from({ length: D }, (_, i) => Array.from({ length: D }, (_, j) => (i === j ? Math.sqrt(a) : 0)))];
    const B = [...Y, ...Array.from({ length: D }, () => new Array<number>(D).fill(0))];
    const ref = ridge ? qrSolve(A, B) : qrSolve(X, Y);
    let err = 0;
    let scale = 0;
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) {
      err = Math.max(err, Math.abs(T.data[i * D + j] - ref[i][j]));
      scale = Math.max(scale, Math.abs(ref[i][j]));
    }
    assert.ok(err <= 1e-10 * scale, `ridge ${ridge}: max |T - T_ref| = ${err}`);
    // The residual from the accumulators matches the residual computed on the data.
    const yy = Y.flat().reduce((s, y) => s + y * y, 0);
    const fit = mul(X, ref);
    const direct = fit.reduce((s, r, i) => s + r.reduce((t, v, j) => t + (v - Y[i][j]) ** 2, 0), 0);
    assert.ok(Math.abs(lsResidual(acc, yy, T) - direct) <= 1e-8 * yy);
  }
});

test('the low-rank map recovers a planted identity-plus-rank-2 correction and never beats full rank', () => {
  const rng = new Rng(202);
  const N = 80;
  const D = 6;
  const X = gaussian(rng, N, D).map((r) => r.map(Math.fround));
  const U = gaussian(rng, D, 2);
  const V = gaussian(rng, 2, D);
  const planted = mul(U, V).map((r, i) => r.map((x, j) => x + (i === j ? 1 : 0)));
  const Y = mul(X, planted);
  const acc = accumulate(X, Y);
  const T2 = solveLeastSquares(acc, { ridge: 0, rank: 2 });
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) assert.ok(Math.abs(T2.data[i * D + j] - planted[i][j]) < 1e-9, `T[${i}][${j}]`);
  // With noise, rank 1 fits worse than full rank, which fits no worse than any rank.
  const Yn = Y.map((r) => r.map((y) => y + 0.3 * rng.normal()));
  const accN = accumulate(X, Yn);
  const yy = Yn.flat().reduce((s, y) => s + y * y, 0);
  const full = lsResidual(accN, yy, solveLeastSquares(accN, { ridge: 0 }));
  const r1 = lsResidual(accN, yy, solveLeastSquares(accN, { ridge: 0, rank: 1 }));
  const r2 = lsResidual(accN, yy, solveLeastSquares(accN, { ridge: 0, rank: 2 }));
  const ident = lsResidual(accN, yy, mat(D, D, Float64Array.from({ length: D * D }, (_, i) => (i % (D + 1) === 0 ? 1 : 0))));
  assert.ok(full <= r2 + 1e-9 && r2 < r1 && r1 < ident, `residuals full ${full} r2 ${r2} r1 ${r1} identity ${ident}`);
});

test('folding the map into a weight equals applying the weight, then the map, in both layouts', () => {
  const rng = new Rng(303);
  const inner = 5;
  const D = 4;
  const W = gaussian(rng, inner, D); // [in, out]
  const T = gaussian(rng, D, D);
  const x = gaussian(rng, 3, inner);
  const want = mul(mul(x, W), T);
  const Tm = mat(D, D, Float64Array.from(T.flat()));
  const Wf = foldMap(Float64Array.from(W.flat()), inner, D, Tm, true);
  const got = mul(x, Array.from({ length: inner }, (_, i) => Array.from(Wf.subarray(i * D, (i + 1) * D))));
  // [out, in] layout: the same weight transposed; x W^T.
  const Wt = W[0].map((_, j) => W.map((r) => r[j]));
  const Wtf = foldMap(Float64Array.from(Wt.flat()), D, inner, Tm, false);
  const WtfD = Array.from({ length: D }, (_, i) => Array.from(Wtf.subarray(i * inner, (i + 1) * inner)));
  const got2 = mul(x, WtfD[0].map((_, j) => WtfD.map((r) => r[j])));
  for (let i = 0; i < 3; i++) for (let j = 0; j < D; j++) {
    assert.ok(Math.abs(got[i][j] - want[i][j]) < 1e-12);
    assert.ok(Math.abs(got2[i][j] - want[i][j]) < 1e-12);
  }
});
