// SCP linear algebra (DESIGN.md section 1, "SCP"): the symmetric eigensolver, the top-k right
// singular vectors through each path (N x N Gram, D x D Gram, subspace iteration) and the
// weight projection W (I + V_k V_k^T) in both layouts and on both sides. The reference is a
// one-sided (Hestenes) Jacobi SVD of H itself, written here: it never forms a Gram matrix, so
// it shares no algorithm with the engine, and it is checked first against matrices built with
// a known spectrum.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mat, Mat, projectWeight, symmetricEigen, topRightSingular } from '../../src/engine/linalg/svd';
import { Rng } from '../support/prng';

type Dense = number[][];

// ----------------------------------------------------------------------------- small dense helpers

function zeros(r: number, c: number): Dense {
  return Array.from({ length: r }, () => new Array<number>(c).fill(0));
}
function gaussian(rng: Rng, r: number, c: number): Dense {
  return Array.from({ length: r }, () => Array.from({ length: c }, () => rng.normal()));
}
function mul(a: Dense, b: Dense): Dense {
  const out = zeros(a.length, b[0].length);
  for (let i = 0; i < a.length; i++) for (let j = 0; j < b[0].length; j++) {
    let s = 0;
    for (let t = 0; t < b.length; t++) s += a[i][t] * b[t][j];
    out[i][j] = s;
  }
  return out;
}
function tr(a: Dense): Dense {
  return a[0].map((_, j) => a.map((row) => row[j]));
}
function sub(a: Dense, b: Dense): Dense {
  return a.map((row, i) => row.map((x, j) => x - b[i][j]));
}
function add(a: Dense, b: Dense): Dense {
  return a.map((row, i) => row.map((x, j) => x + b[i][j]));
}
function eye(n: number): Dense {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}
function frob2(a: Dense): number {
  return a.reduce((s, row) => s + row.reduce((t, x) => t + x * x, 0), 0);
}
function maxAbs(a: Dense): number {
  return a.reduce((m, row) => row.reduce((n, x) => Math.max(n, Math.abs(x)), m), 0);
}
function toMat(a: Dense): Mat {
  return mat(a.length, a[0].length, Float64Array.from(a.flat()));
}
function fromMat(m: Mat): Dense {
  return Array.from({ length: m.rows }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
}
function cols(a: Dense, k: number): Dense {
  return a.map((row) => row.slice(0, k));
}

/** n x k with orthonormal columns: modified Gram-Schmidt on Gaussian columns. */
function randomOrthonormal(rng: Rng, n: number, k: number): Dense {
  const q = gaussian(rng, n, k);
  for (let j = 0; j < k; j++) {
    for (let rep = 0; rep < 2; rep++) {
      for (let i = 0; i < j; i++) {
        let d = 0;
        for (let r = 0; r < n; r++) d += q[r][i] * q[r][j];
        for (let r = 0; r < n; r++) q[r][j] -= d * q[r][i];
      }
    }
    const nrm = Math.sqrt(q.reduce((s, row) => s + row[j] ** 2, 0));
    for (let r = 0; r < n; r++) q[r][j] /= nrm;
  }
  return q;
}

/**
 * One-sided Jacobi SVD: rotates pairs of columns of H until all are mutually orthogonal; the
 * column norms are then the singular values and the accumulated rotations the right singular
 * vectors. Returns all D right singular vectors (columns of V) and D values, descending.
 */
function jacobiSvd(h: Dense): { s: number[]; V: Dense } {
  const N = h.length;
  const D = h[0].length;
  const A = h.map((row) => row.slice());
  const V = eye(D);
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < D - 1; p++) {
      for (let q = p + 1; q < D; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let r = 0; r < N; r++) {
          alpha += A[r][p] ** 2;
          beta += A[r][q] ** 2;
          gamma += A[r][p] * A[r][q];
        }
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let r = 0; r < N; r++) {
          const x = A[r][p];
          const y = A[r][q];
          A[r][p] = c * x - s * y;
          A[r][q] = s * x + c * y;
        }
        for (let r = 0; r < D; r++) {
          const x = V[r][p];
          const y = V[r][q];
          V[r][p] = c * x - s * y;
          V[r][q] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: D }, (_, j) => Math.sqrt(A.reduce((t, row) => t + row[j] ** 2, 0)));
  const order = norms.map((_, j) => j).sort((a, b) => norms[b] - norms[a]);
  return { s: order.map((j) => norms[j]), V: V.map((row) => order.map((j) => row[j])) };
}

function projector(V: Dense): Dense {
  return mul(V, tr(V));
}

/** H = U diag(s) W^T with random orthonormal U (N x m), W (D x m); m = s.length. */
function withSpectrum(rng: Rng, N: number, D: number, s: number[]): { H: Dense; W: Dense } {
  const m = s.length;
  const U = randomOrthonormal(rng, N, m);
  const W = randomOrthonormal(rng, D, m);
  const US = U.map((row) => row.map((x, j) => x * s[j]));
  return { H: mul(US, tr(W)), W };
}

function checkOrthonormal(V: Dense, tol: number, what: string): void {
  const G = mul(tr(V), V);
  const err = maxAbs(sub(G, eye(G.length)));
  assert.ok(err <= tol, `${what}: V^T V - I = ${err.toExponential(2)}`);
}

// ----------------------------------------------------------------------------- the reference itself

test('reference Jacobi SVD recovers a known spectrum and subspace', () => {
  const rng = new Rng('jacobi self-check');
  for (const [N, D] of [[20, 9], [9, 20]]) {
    const s = Array.from({ length: Math.min(N, D) }, (_, i) => 10 * 0.7 ** i);
    const { H, W } = withSpectrum(rng, N, D, s);
    const ref = jacobiSvd(H);
    for (let i = 0; i < s.length; i++) assert.ok(Math.abs(ref.s[i] - s[i]) < 1e-12 * s[0], `sv ${i}`);
    for (let i = s.length; i < D; i++) assert.ok(ref.s[i] < 1e-12 * s[0], `zero sv ${i}`);
    checkOrthonormal(ref.V, 1e-13, 'reference V');
    for (const k of [1, 3, s.length]) assert.ok(maxAbs(sub(projector(cols(ref.V, k)), projector(cols(W, k)))) < 1e-11, `projector k=${k}`);
  }
});

// ----------------------------------------------------------------------------- symmetricEigen

test('symmetricEigen: A v = lambda v, orthonormal vectors, descending values', () => {
  const rng = new Rng('eigen');
  const cases: Array<[string, Dense, number[] | undefined]> = [];
  const g = gaussian(rng, 11, 11);
  cases.push(['random symmetric', add(g, tr(g)), undefined]);
  const lam = [5, 5, 3, -1, -1, -1, 0, 2e-9, 7];
  const Q = randomOrthonormal(rng, lam.length, lam.length);
  cases.push(['known, repeated and negative eigenvalues', mul(Q.map((row) => row.map((x, j) => x * lam[j])), tr(Q)), lam]);
  cases.push(['diagonal', [[1, 0, 0], [0, 3, 0], [0, 0, 2]], [1, 3, 2]]);
  cases.push(['1 x 1', [[4]], [4]]);
  cases.push(['zero', zeros(4, 4), [0, 0, 0, 0]]);
  for (const [name, A, known] of cases) {
    const n = A.length;
    const { values, vectors } = symmetricEigen(toMat(A));
    const V = fromMat(vectors);
    checkOrthonormal(V, 1e-12, name);
    const scale = Math.max(1, maxAbs(A));
    for (let c = 0; c < n; c++) {
      for (let r = 0; r < n; r++) {
        let av = 0;
        for (let t = 0; t < n; t++) av += A[r][t] * V[t][c];
        assert.ok(Math.abs(av - values[c] * V[r][c]) < 1e-12 * scale, `${name}: (A v - lambda v)[${r}] for eigenpair ${c}`);
      }
      if (c > 0) assert.ok(values[c] <= values[c - 1], `${name}: descending`);
    }
    if (known) {
      const sorted = known.slice().sort((a, b) => b - a);
      for (let i = 0; i < n; i++) assert.ok(Math.abs(values[i] - sorted[i]) < 1e-12 * scale, `${name}: value ${i}`);
    }
    // The input is not modified.
    assert.deepEqual(Array.from(toMat(A).data), A.flat());
  }
});

// ----------------------------------------------------------------------------- topRightSingular

interface SvdCase {
  name: string;
  N: number;
  D: number;
  k: number;
  exactLimit?: number;
}

const PATHS: SvdCase[] = [
  { name: 'tall, exact (D x D Gram)', N: 30, D: 12, k: 4 },
  { name: 'wide, exact (N x N Gram)', N: 12, D: 30, k: 4 },
  { name: 'tall, subspace iteration', N: 60, D: 36, k: 5, exactLimit: 8 },
  { name: 'wide, subspace iteration', N: 36, D: 60, k: 5, exactLimit: 8 },
];

function checkTopK(H: Dense, k: number, opts: { exactLimit?: number }, expectCols: number, projTol: number, what: string): void {
  const ref = jacobiSvd(H);
  const top = topRightSingular(toMat(H), k, opts);
  const V = fromMat(top.V);
  assert.equal(top.V.rows, H[0].length, `${what}: V rows`);
  assert.equal(top.V.cols, expectCols, `${what}: V columns (k clamped to the rank)`);
  if (expectCols === 0) return;
  checkOrthonormal(V, 1e-10, what);
  const pErr = maxAbs(sub(projector(V), projector(cols(ref.V, expectCols))));
  assert.ok(pErr <= projTol, `${what}: projector V V^T differs from the reference by ${pErr.toExponential(2)}`);
  for (let i = 0; i < expectCols; i++) {
    const e = Math.abs(top.singularValues[i] - ref.s[i]);
    assert.ok(e <= 1e-9 * ref.s[0], `${what}: singular value ${i}: ${top.singularValues[i]} vs ${ref.s[i]}`);
  }
  // ||H - H V V^T||_F^2 = sum of the remaining squared singular values.
  const resid = frob2(sub(H, mul(mul(H, V), tr(V))));
  const rest = ref.s.slice(expectCols).reduce((a, s) => a + s * s, 0);
  assert.ok(Math.abs(resid - rest) <= 1e-9 * frob2(H), `${what}: residual ${resid} vs ${rest}`);
}

for (const c of PATHS) {
  test(`topRightSingular, ${c.name}: decaying spectrum`, () => {
    const rng = new Rng(`svd spectrum ${c.name}`);
    const s = Array.from({ length: Math.min(c.N, c.D) }, (_, i) => 20 * 0.8 ** i);
    const { H } = withSpectrum(rng, c.N, c.D, s);
    checkTopK(H, c.k, { exactLimit: c.exactLimit }, c.k, 1e-9, c.name);
    checkTopK(H, 1, { exactLimit: c.exactLimit }, 1, 1e-9, `${c.name}, k = 1`);
  });

  test(`topRightSingular, ${c.name}: Gaussian matrix`, () => {
    const rng = new Rng(`svd gaussian ${c.name}`);
    const H = gaussian(rng, c.N, c.D);
    if (c.exactLimit === undefined) {
      checkTopK(H, c.k, {}, c.k, 1e-8, c.name);
      return;
    }
    // Subspace iteration runs a fixed 12 iterations: on a flat spectrum (no gap after sigma_k)
    // the subspace is not converged to 1e-8, but it must be orthonormal and capture all but a
    // sliver of the optimal energy sum_{i<=k} sigma_i^2.
    const ref = jacobiSvd(H);
    const top = topRightSingular(toMat(H), c.k, { exactLimit: c.exactLimit });
    const V = fromMat(top.V);
    assert.equal(top.V.cols, c.k);
    checkOrthonormal(V, 1e-10, c.name);
    const captured = frob2(mul(H, V));
    const best = ref.s.slice(0, c.k).reduce((a, s) => a + s * s, 0);
    assert.ok(captured <= best * (1 + 1e-12), 'cannot beat the optimum');
    assert.ok(captured >= best * (1 - 1e-4), `captured ${captured} of ${best}`);
  });

  test(`topRightSingular, ${c.name}: rank-deficient input, k clamped to the rank`, () => {
    const rng = new Rng(`svd rank ${c.name}`);
    const r = 3;
    const H = mul(gaussian(rng, c.N, r), gaussian(rng, r, c.D));
    const top = topRightSingular(toMat(H), 6, { exactLimit: c.exactLimit });
    assert.equal(top.rank, r, `${c.name}: numerical rank`);
    checkTopK(H, 6, { exactLimit: c.exactLimit }, r, 1e-9, `${c.name}, rank ${r}`);
    // Duplicated calibration rows (rank below N): same subspace, same clamp.
    const dup = [...H.slice(0, 4), ...H.slice(0, 4), ...H.slice(0, 4)];
    const topDup = topRightSingular(toMat(dup), 6, { exactLimit: c.exactLimit });
    assert.equal(topDup.V.cols, Math.min(4, r), `${c.name}: duplicated rows`);
  });
}

test('topRightSingular: k above min(N, D) on a full-rank matrix is clamped; a zero matrix gives no vectors', () => {
  const rng = new Rng('svd clamp');
  const H = gaussian(rng, 7, 15);
  checkTopK(H, 20, {}, 7, 1e-8, 'wide, k > N');
  checkTopK(tr(H), 20, {}, 7, 1e-8, 'tall, k > D');
  const Z = zeros(5, 8);
  for (const exactLimit of [undefined, 2]) {
    const top = topRightSingular(toMat(Z), 3, { exactLimit });
    assert.equal(top.V.cols, 0);
    assert.equal(top.rank, 0);
  }
});

// ----------------------------------------------------------------------------- projectWeight

test('projectWeight: output and input side, [in, out] and [out, in] layouts, vs dense (I + V V^T)', () => {
  const rng = new Rng('project');
  const D = 16;
  const other = 11;
  for (const k of [1, 3]) {
    const Vd = randomOrthonormal(rng, D, k);
    const V = toMat(Vd);
    const P = add(eye(D), projector(Vd));
    const Pperp = sub(eye(D), projector(Vd));
    const cases: Array<{ side: 'output' | 'input'; inOut: boolean; rows: number; cols: number; right: boolean }> = [
      // output side, ONNX [in, out]: y = x W  ->  y' = y (I + V V^T)  ->  W' = W (I + V V^T)
      { side: 'output', inOut: true, rows: other, cols: D, right: true },
      // output side, torch [out, in]: y = W x  ->  W' = (I + V V^T) W
      { side: 'output', inOut: false, rows: D, cols: other, right: false },
      // input side (eq. 10 literally), [in, out]: y = x (I + V V^T) W  ->  W' = (I + V V^T) W
      { side: 'input', inOut: true, rows: D, cols: other, right: false },
      // input side, [out, in]: y = W (I + V V^T) x  ->  W' = W (I + V V^T)
      { side: 'input', inOut: false, rows: other, cols: D, right: true },
    ];
    for (const c of cases) {
      const what = `${c.side} side, ${c.inOut ? '[in, out]' : '[out, in]'}, k=${k}`;
      const W = gaussian(rng, c.rows, c.cols);
      const expected = c.right ? mul(W, P) : mul(P, W);
      for (const w of [Float64Array.from(W.flat()), Float32Array.from(W.flat())]) {
        const Wq = Array.from({ length: c.rows }, (_, i) => Array.from(w.subarray(i * c.cols, (i + 1) * c.cols)));
        const exp = w instanceof Float32Array ? (c.right ? mul(Wq, P) : mul(P, Wq)) : expected;
        const out = projectWeight(w, c.rows, c.cols, V, c.side, c.inOut);
        assert.ok(out instanceof Float64Array && out.length === c.rows * c.cols, `${what}: shape`);
        const Wp = Array.from({ length: c.rows }, (_, i) => Array.from(out.subarray(i * c.cols, (i + 1) * c.cols)));
        assert.ok(maxAbs(sub(Wp, exp)) < 1e-12, `${what}: W' vs dense product`);
        // W' - W has rank <= k and lies in span(V): its rows (right) or columns (left) are
        // unchanged by V V^T, and its singular values beyond k vanish.
        const delta = sub(Wp, Wq);
        const inSpan = c.right ? mul(delta, Pperp) : mul(Pperp, delta);
        assert.ok(maxAbs(inSpan) < 1e-12, `${what}: W' - W outside span(V)`);
        const sv = jacobiSvd(c.rows >= c.cols ? delta : tr(delta)).s;
        assert.ok(sv.slice(k).every((s) => s < 1e-12 * Math.max(1, sv[0])), `${what}: rank(W' - W) <= ${k}`);
      }
      // Wrong orientation: the subspace dimension must match the side being multiplied.
      assert.throws(() => projectWeight(new Float64Array(c.rows * c.cols), c.cols, c.rows, V, c.side, c.inOut), /projection/);
    }
  }
});

test('projectWeight, output side: the layer output gains exactly its own component in span(V)', () => {
  const rng = new Rng('project semantics');
  const D = 12;
  const inDim = 9;
  const Vd = randomOrthonormal(rng, D, 2);
  const W = gaussian(rng, inDim, D); // [in, out]
  const Wp = projectWeight(Float64Array.from(W.flat()), inDim, D, toMat(Vd), 'output', true);
  const x = gaussian(rng, 1, inDim);
  const y = mul(x, W)[0];
  const yp = mul(x, Array.from({ length: inDim }, (_, i) => Array.from(Wp.subarray(i * D, (i + 1) * D))))[0];
  // y' - y = sum_c (y . v_c) v_c
  for (let d = 0; d < D; d++) {
    let p = 0;
    for (let c = 0; c < 2; c++) p += y.reduce((s, yy, e) => s + yy * Vd[e][c], 0) * Vd[d][c];
    assert.ok(Math.abs(yp[d] - y[d] - p) < 1e-12);
  }
  // An empty basis (rank 0) leaves the weight as it was.
  const same = projectWeight(Float64Array.from(W.flat()), inDim, D, mat(D, 0), 'output', true);
  assert.deepEqual(Array.from(same), W.flat());
});
