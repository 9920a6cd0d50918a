//! Spectral embedding and normalized spectral clustering of a sparse affinity matrix.
//!
//! The embedding is the top eigenpairs (largest algebraic eigenvalues) of the normalized
//! affinity `S = D^{-1/2} W D^{-1/2}` (`D = diag(W 1)`; a node of degree 0 gets
//! `d^{-1/2} := 0`), i.e. the bottom of the normalized Laplacian `I - S`. The spectrum of `S`
//! lies in `[-1, 1]`; the eigenvalue 1 has the multiplicity of the number of connected
//! components (of positive degree).
//!
//! Solver: Chebyshev-filtered subspace iteration (Zhou & Saad), all in f64, never forming a
//! dense `N x N` matrix:
//! * a block of `b = k + max(5, ceil(k/4))` vectors (`k` wanted plus guard vectors), started
//!   from the seeded Gaussian block of [`crate::rng`];
//! * each sweep applies the Chebyshev polynomial that is bounded by 1 on `[-1, a]` and grows
//!   fastest above it, where `a` is the smallest Ritz value of the block (the exact lower end
//!   -1 is known, so eigenvalues near -1, e.g. of bipartite parts, are damped too); when a
//!   sweep lowers the residuals by less than 10%, `a` is moved below the block's Ritz values
//!   by 3, 15, 63, ... times their spread (a block inside a cluster of eigenvalues). The degree
//!   is what the slowest unconverged pair needs to reach its tolerance (predicted from the
//!   Ritz values), capped so that the filter amplifies by at most ~1e10 (`4 <= m <= 60`);
//! * SVQB orthonormalization (f64 Gram, eigh, twice; Householder QR if the block is
//!   numerically rank deficient), then Rayleigh-Ritz with faer's self-adjoint eigh;
//! * stop when the `k` wanted residuals `||S v - lambda v||` are `<= 1e-7` (S has norm 1, so
//!   this is relative), or after 300 sweeps (the last Ritz pairs are then returned as they are).
//!   When spectral clustering estimates the number of clusters, the extra eigenvalues beyond
//!   the chosen `k` only need residuals `<= 1e-4`, or `<= 1e-2` once the eigengap choice
//!   cannot change within those residuals (an eigenvalue's error is at most its residual,
//!   typically its square over the gap to the rest of the spectrum).
//!
//! Tiny problems (`N <= 3 b`) use a dense eigendecomposition instead.
//!
//! Products are CSR x block products ([`crate::sparse::csr_matmul`], rows owned by one task)
//! and dense reductions over fixed blocks of rows added in order, so results do not depend on
//! the number of threads. Eigenvector signs are fixed: the entry of largest magnitude of each
//! vector is positive.
use crate::error::{invalid, Error, Result};
use crate::kmeans::{kmeans_rows, scaled_tol, Points};
use crate::progress::{report, Progress, SILENT};
use crate::scalar::Real;
use crate::sparse::{csr_matmul, Csr, CsrRef, SpIndex};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;

/// Rows per block in the dense reductions (fixed, for thread-count independence).
const CHUNK: usize = 2048;
/// Residual tolerance of the eigensolver (`||S v - lambda v||`, `||v|| = 1`, `||S|| <= 1`).
const TOL: f64 = 1e-7;
/// Residual tolerance of eigenvalues computed only to estimate the number of clusters (the
/// eigenvalue error is at most the residual, and typically its square).
const TOL_VAL: f64 = 1e-4;
/// Residual tolerance of those eigenvalues once the eigengap choice is settled.
const TOL_LOOSE: f64 = 1e-2;
/// Largest number of filter sweeps.
const MAX_SWEEPS: usize = 300;
/// Largest amplification of one filter application (bounds the block's conditioning).
const MAX_AMP: f64 = 1e10;
const MIN_DEG: usize = 4;
const MAX_DEG: usize = 60;

/// `a^T b` in f64, summed over fixed blocks of rows in order.
pub(crate) fn gram(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let n = a.nrows();
    let parts = crate::kmeans::par_blocks(n, CHUNK, par, |_, r| {
        let mut g = Mat::<f64>::zeros(a.ncols(), b.ncols());
        matmul(
            g.as_mut(),
            Accum::Replace,
            a.subrows(r.start, r.len()).transpose(),
            b.subrows(r.start, r.len()),
            1.0,
            Par::Seq,
        );
        g
    });
    let mut g = Mat::<f64>::zeros(a.ncols(), b.ncols());
    for p in parts {
        g += p;
    }
    g
}

/// Columns (features) per slab of [`row_gram`].
const SLAB: usize = 512;
/// Rows of the result per task of [`row_gram`].
const GRAM_ROWS: usize = 256;

/// `X X^T` (`n x n`, f64) of the `n x d` row-major points `x`: the "dual" Gram matrix, for
/// `n < d`. The features are converted to f64 one slab of [`SLAB`] columns at a time (scratch
/// `n x SLAB`) and the slabs are added in order; within a slab each block of [`GRAM_ROWS`]
/// rows of the lower block triangle is one sequential GEMM, and the upper triangle is copied
/// from the lower one. The blocking is fixed, so the result does not depend on the number of
/// threads.
pub(crate) fn row_gram<T: Real>(x: &[T], n: usize, d: usize, par: Par) -> Mat<f64> {
    let mut g = Mat::<f64>::zeros(n, n);
    if n == 0 || d == 0 {
        return g;
    }
    let sw = SLAB.min(d);
    let mut buf = vec![0.0f64; n * sw];
    let mut c0 = 0;
    while c0 < d {
        let w = sw.min(d - c0);
        for (i, row) in buf.chunks_exact_mut(w).take(n).enumerate() {
            let src = &x[i * d + c0..i * d + c0 + w];
            row.iter_mut().zip(src).for_each(|(b, v)| *b = v.to_f64());
        }
        let s = MatRef::from_row_major_slice(&buf[..n * w], n, w);
        let task = |(bi, gb): (usize, faer::MatMut<'_, f64>)| {
            let (r0, h) = (bi * GRAM_ROWS, gb.nrows());
            matmul(
                gb.subcols_mut(0, r0 + h),
                Accum::Add,
                s.subrows(r0, h),
                s.subrows(0, r0 + h).transpose(),
                1.0,
                Par::Seq,
            );
        };
        if crate::threads::is_parallel(par) && n > GRAM_ROWS {
            g.as_mut()
                .par_row_chunks_mut(GRAM_ROWS)
                .enumerate()
                .for_each(task);
        } else {
            let mut r0 = 0;
            while r0 < n {
                let h = GRAM_ROWS.min(n - r0);
                task((r0 / GRAM_ROWS, g.as_mut().subrows_mut(r0, h)));
                r0 += h;
            }
        }
        c0 += w;
    }
    for j in 1..n {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    g
}

/// `a v` for a tall `a` and a small `v`, computed over fixed blocks of rows.
pub(crate) fn mul_small(a: MatRef<'_, f64>, v: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), v.ncols());
    let task = |(ci, o): (usize, faer::MatMut<'_, f64>)| {
        let h = o.nrows();
        matmul(
            o,
            Accum::Replace,
            a.subrows(ci * CHUNK, h),
            v,
            1.0,
            Par::Seq,
        );
    };
    if crate::threads::is_parallel(par) {
        out.as_mut()
            .par_row_chunks_mut(CHUNK)
            .enumerate()
            .for_each(task);
    } else {
        let n = a.nrows();
        let mut r0 = 0;
        while r0 < n {
            let h = CHUNK.min(n - r0);
            task((r0 / CHUNK, out.as_mut().subrows_mut(r0, h)));
            r0 += h;
        }
    }
    out
}

/// Self-adjoint eigendecomposition of a small symmetric matrix, eigenvalues descending.
fn eigh_desc(h: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let b = h.nrows();
    let sym = Mat::<f64>::from_fn(b, b, |i, j| 0.5 * (h[(i, j)] + h[(j, i)]));
    let evd = sym
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let lam = evd.S().column_vector();
    let u = evd.U();
    let vals = (0..b).map(|j| lam[b - 1 - j]).collect();
    Ok((vals, Mat::from_fn(b, b, |i, j| u[(i, b - 1 - j)])))
}

/// Orthonormal basis of the columns of `y` (same span): SVQB twice with column scaling,
/// Householder QR when the block is numerically rank deficient.
fn orthonormalize(y: Mat<f64>, par: Par) -> Mat<f64> {
    let b = y.ncols();
    let mut y = y;
    for pass in 0..2 {
        let g = gram(y.as_ref(), y.as_ref(), par);
        let dsc: Vec<f64> = (0..b)
            .map(|i| {
                let d = g[(i, i)];
                if d > 0.0 && d.is_finite() {
                    1.0 / d.sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let gs = Mat::<f64>::from_fn(b, b, |i, j| g[(i, j)] * dsc[i] * dsc[j]);
        let Ok((lam, v)) = eigh_desc(&gs) else {
            break;
        };
        let (lmax, lmin) = (lam[0], lam[b - 1]);
        if !(lmax > 0.0 && lmax.is_finite()) || lmin < 1e-13 * lmax {
            break;
        }
        let w = Mat::<f64>::from_fn(b, b, |i, j| dsc[i] * v[(i, j)] / lam[j].sqrt());
        y = mul_small(y.as_ref(), w.as_ref(), par);
        if pass == 1 && lmin > 0.5 * lmax {
            return y;
        }
        if pass == 0 && lmin > 1.0 - 1e-10 && lmax < 1.0 + 1e-10 {
            return y;
        }
    }
    // Rank deficient (or not finite): Householder QR always returns orthonormal columns.
    let qr = y.qr();
    qr.compute_thin_Q()
}

/// Applies `S` to a block.
fn apply<I: SpIndex>(s: CsrRef<'_, f64, I>, x: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut y = Mat::<f64>::zeros(s.nrows(), x.ncols());
    csr_matmul(s, x, y.as_mut(), par);
    y
}

/// `z := alpha (z - c y1) - beta y0`, column by column (in parallel over columns).
fn cheb_step(z: &mut Mat<f64>, y1: &Mat<f64>, y0: &Mat<f64>, alpha: f64, c: f64, beta: f64) {
    z.as_mut()
        .par_col_iter_mut()
        .enumerate()
        .for_each(|(j, mut col)| {
            let (a1, a0) = (y1.col(j), y0.col(j));
            for i in 0..col.nrows() {
                col[i] = alpha * (col[i] - c * a1[i]) - beta * a0[i];
            }
        });
}

/// `||sx_j - theta_j x_j||` per column.
fn residuals(x: &Mat<f64>, sx: &Mat<f64>, theta: &[f64]) -> Vec<f64> {
    (0..x.ncols())
        .into_par_iter()
        .map(|j| {
            let (a, b) = (x.col(j), sx.col(j));
            let mut s = 0.0;
            for i in 0..a.nrows() {
                let r = b[i] - theta[j] * a[i];
                s += r * r;
            }
            s.sqrt()
        })
        .collect()
}

/// Flips each column so that its entry of largest magnitude (first one on ties) is positive.
fn fix_signs(v: &mut Mat<f64>) {
    for j in 0..v.ncols() {
        let mut arg = 0;
        let mut best = -1.0;
        for i in 0..v.nrows() {
            let a = v[(i, j)].abs();
            if a > best {
                best = a;
                arg = i;
            }
        }
        if v[(arg, j)] < 0.0 {
            for i in 0..v.nrows() {
                v[(i, j)] = -v[(i, j)];
            }
        }
    }
}

#[inline]
fn row_of<T: Copy, I: SpIndex>(c: &Csr<T, I>, i: usize) -> (&[I], &[T]) {
    let a = c.indptr[i].to_usize().unwrap_or(0);
    let b = c.indptr[i + 1].to_usize().unwrap_or(0);
    (&c.indices[a..b], &c.data[a..b])
}

/// Whether two CSR rows with sorted column indices hold the same values (duplicates summed)
/// up to `atol`.
fn rows_match<T: Real, I: SpIndex>(ac: &[I], av: &[T], bc: &[I], bv: &[T], atol: f64) -> bool {
    let col = |c: &[I], p: usize| c.get(p).and_then(|v| v.to_usize());
    let (mut p, mut q) = (0, 0);
    while p < ac.len() || q < bc.len() {
        let c = match (col(ac, p), col(bc, q)) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) => x,
            (None, Some(y)) => y,
            (None, None) => break,
        };
        let (mut sa, mut sb) = (0.0, 0.0);
        while col(ac, p) == Some(c) {
            sa += av[p].to_f64();
            p += 1;
        }
        while col(bc, q) == Some(c) {
            sb += bv[q].to_f64();
            q += 1;
        }
        if (sa - sb).abs() > atol {
            return false;
        }
    }
    true
}

/// Validates the affinity (square, nonnegative, symmetric; finiteness and structure are
/// checked by [`CsrRef::new`]) and returns `S = D^{-1/2} W D^{-1/2}` as an f64 CSR matrix.
fn normalized_affinity<T: Real, I: SpIndex>(w: CsrRef<'_, T, I>) -> Result<Csr<f64, I>> {
    let n = w.nrows();
    if w.ncols() != n {
        return invalid(format!(
            "the affinity matrix must be square, got shape ({n}, {})",
            w.ncols()
        ));
    }
    if n == 0 {
        return invalid("the affinity matrix is empty (0 nodes)");
    }
    let wt = w.transpose();
    if let Some(v) = wt.data.iter().find(|v| v.to_f64() < 0.0) {
        return invalid(format!(
            "the affinity matrix must be nonnegative, found the weight {v:?}; use |W| or a \
             nonnegative kernel"
        ));
    }
    // `ws` is W with sorted column indices; W is symmetric iff it equals W^T (= `wt`).
    let ws = wt.as_ref().transpose();
    let wmax = wt.data.iter().fold(0.0f64, |m, v| m.max(v.to_f64()));
    let atol = T::EPS.sqrt() * wmax;
    let bad = (0..n).into_par_iter().find_first(|&i| {
        let (ac, av) = row_of(&ws, i);
        let (bc, bv) = row_of(&wt, i);
        !rows_match(ac, av, bc, bv, atol)
    });
    if let Some(i) = bad {
        return invalid(format!(
            "the affinity matrix must be symmetric, but row {i} differs from column {i}; \
             symmetrize it first, e.g. (W + W.T) / 2"
        ));
    }
    drop(wt);
    // S = D^-1/2 W D^-1/2 does not change when W is scaled: scale by a power of two near
    // 1 / max W (exact), or the degrees of weights near 1e308 sum to infinity (S = 0).
    let c = if wmax > 0.0 && wmax.is_finite() {
        crate::scalar::pow2_near_inverse::<f64>(wmax)
    } else {
        1.0
    };
    let dinv: Vec<f64> = (0..n)
        .map(|i| {
            let d: f64 = row_of(&ws, i).1.iter().map(|v| v.to_f64() * c).sum();
            if d > 0.0 {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let mut data = Vec::with_capacity(ws.data.len());
    for i in 0..n {
        let (cols, vals) = row_of(&ws, i);
        for (col, v) in cols.iter().zip(vals) {
            data.push(v.to_f64() * c * dinv[i] * dinv[col.to_usize().unwrap_or(0)]);
        }
    }
    Ok(Csr {
        nrows: n,
        ncols: n,
        indptr: ws.indptr,
        indices: ws.indices,
        data,
    })
}

/// The `k` largest eigenpairs of the symmetric `S` (f64, eigenvalues descending).
fn top_eigenpairs<I: SpIndex>(
    s: &Csr<f64, I>,
    k: usize,
    seed: u64,
    par: Par,
    targets: Targets<'_>,
    stop: &dyn Progress,
) -> Result<(Vec<f64>, Mat<f64>)> {
    let n = s.nrows;
    let b = n.min(k + 5.max(k.div_ceil(4)));
    let (vals, mut vecs) = if n <= 3 * b {
        dense_eigenpairs(s, k)?
    } else {
        chfsi(s.as_ref(), k, b, seed, par, targets, stop)?
    };
    fix_signs(&mut vecs);
    Ok((vals, vecs))
}

fn dense_eigenpairs<I: SpIndex>(s: &Csr<f64, I>, k: usize) -> Result<(Vec<f64>, Mat<f64>)> {
    let n = s.nrows;
    let mut a = Mat::<f64>::zeros(n, n);
    for i in 0..n {
        let (cols, vals) = row_of(s, i);
        for (c, v) in cols.iter().zip(vals) {
            a[(i, c.to_usize().unwrap_or(0))] += v;
        }
    }
    let (vals, v) = eigh_desc(&a)?;
    Ok((vals[..k].to_vec(), v.subcols(0, k).to_owned()))
}

/// What the eigensolver still needs, given the top Ritz values and residuals: `None` when done,
/// else the residual tolerance each pair is aiming for (to pick the filter degree).
type Targets<'a> = &'a dyn Fn(&[f64], &[f64]) -> Option<Vec<f64>>;

/// All pairs to `TOL`.
fn all_tight(_theta: &[f64], res: &[f64]) -> Option<Vec<f64>> {
    (!res.iter().all(|&r| r <= TOL)).then(|| vec![TOL; res.len()])
}

/// Chebyshev-filtered subspace iteration with block size `b`, returning the top `n_vals`
/// Ritz pairs once `targets` is satisfied (or after `MAX_SWEEPS`).
fn chfsi<I: SpIndex>(
    s: CsrRef<'_, f64, I>,
    n_vals: usize,
    b: usize,
    seed: u64,
    par: Par,
    targets: Targets<'_>,
    stop: &dyn Progress,
) -> Result<(Vec<f64>, Mat<f64>)> {
    let n = s.nrows();
    let rr = |q: Mat<f64>| -> Result<(Vec<f64>, Mat<f64>, Mat<f64>)> {
        let sq = apply(s, q.as_ref(), par);
        let h = gram(q.as_ref(), sq.as_ref(), par);
        let (theta, v) = eigh_desc(&h)?;
        Ok((
            theta,
            mul_small(q.as_ref(), v.as_ref(), par),
            mul_small(sq.as_ref(), v.as_ref(), par),
        ))
    };
    let q = orthonormalize(crate::rng::gaussian::<f64>(n, b, seed, 0, 0, par), par);
    let (mut theta, mut x, mut sx) = rr(q)?;
    let (mut stalls, mut prev_worst) = (0i32, f64::INFINITY);
    for _ in 0..MAX_SWEEPS {
        report(stop, 0, 1)?;
        let res = residuals(&x, &sx, &theta);
        if res.iter().any(|r| !r.is_finite()) {
            return Err(Error::LinAlg(
                "the spectral eigensolver produced non-finite values".into(),
            ));
        }
        let Some(tols) = targets(&theta[..n_vals], &res[..n_vals]) else {
            break;
        };
        let tol = |j: usize| tols[j];
        // Damp [-1, a], a = smallest Ritz value; amplify (a, 1]. If a sweep barely lowered
        // the residuals (the block sits inside a cluster of eigenvalues, e.g. eigenvalue 1
        // of more components than the block has vectors), `a` is moved down step by step.
        let worst = (0..n_vals)
            .filter(|&j| res[j] > tols[j])
            .fold(0.0f64, |m, j| m.max(res[j]));
        if worst > 0.9 * prev_worst {
            stalls += 1;
        }
        prev_worst = worst;
        let spread = (theta[0] - theta[b - 1]).max(1e-4);
        let a = (theta[b - 1] - spread * (4f64.powi(stalls.min(20)) - 1.0)).clamp(-1.0 + 1e-6, 1.0);
        // Center and half-width of [lo, a] with lo = -1.
        let (c, e) = ((a - 1.0) / 2.0, (a + 1.0) / 2.0);
        let xi = (1.0 - c) / e;
        if xi <= 1.0 + 1e-12 {
            break; // every Ritz value is 1: the block spans an eigenspace of 1 already
        }
        // Degree: enough to bring the slowest unconverged pair to its tolerance (with a
        // margin of 10), as far as the amplification cap allows.
        let m_cap = ((MAX_AMP.acosh() / xi.acosh()).floor() as usize).clamp(MIN_DEG, MAX_DEG);
        let m_need = (0..n_vals)
            .filter(|&j| res[j] > tol(j))
            .map(|j| {
                let xj = (theta[j] - c) / e;
                if xj <= 1.0 + 1e-12 {
                    MAX_DEG
                } else {
                    ((10.0 * res[j] / tol(j)).acosh() / xj.acosh()).ceil() as usize
                }
            })
            .max()
            .unwrap_or(MIN_DEG);
        let m = m_need.clamp(MIN_DEG, m_cap);
        // Normalized recurrence: Y_j = T_j(xi(S)) X / T_j(xi), xi(t) = (t - c) / e.
        let (mut r0, mut r1) = (1.0, xi);
        let mut y0 = x;
        let mut y1 = sx;
        cheb_step(&mut y1, &y0, &y0, 1.0 / (e * r1), c, 0.0);
        for _ in 1..m {
            let mut z = apply(s, y1.as_ref(), par);
            let r2 = 2.0 * xi * r1 - r0;
            cheb_step(&mut z, &y1, &y0, 2.0 * r1 / (e * r2), c, r0 / r2);
            y0 = std::mem::replace(&mut y1, z);
            (r0, r1) = (r1, r2);
        }
        drop(y0);
        (theta, x, sx) = rr(orthonormalize(y1, par))?;
    }
    Ok((theta[..n_vals].to_vec(), x.subcols(0, n_vals).to_owned()))
}

/// Top `n_components` eigenpairs of `D^{-1/2} W D^{-1/2}` for a symmetric nonnegative CSR
/// affinity `W` (`N x N`): `(eigenvalues descending, N x n_components eigenvectors)`.
pub fn spectral_embedding<T: Real, I: SpIndex>(
    w: CsrRef<'_, T, I>,
    n_components: usize,
    seed: u64,
    par: Par,
) -> Result<(Vec<f64>, Mat<T>)> {
    let n = w.nrows();
    if n_components == 0 || n_components > n {
        return invalid(format!(
            "n_components must be in [1, n_nodes={n}], got {n_components}"
        ));
    }
    let s = normalized_affinity(w)?;
    let (vals, v) = top_eigenpairs(&s, n_components, seed, par, &all_tight, &SILENT)?;
    Ok((
        vals,
        Mat::from_fn(n, n_components, |i, j| T::from_f64(v[(i, j)])),
    ))
}

/// The eigengap choice of the number of clusters: with eigenvalues `l_1 >= l_2 >= ...`
/// (1-based), the `k` in `1..=max_k` maximizing `l_k - l_{k+1}` (smallest `k` on ties).
/// Needs `vals.len() >= max_k + 1`; with a single eigenvalue, 1.
pub fn eigengap_k(vals: &[f64], max_k: usize) -> usize {
    let mut best = 1;
    let mut gap = f64::NEG_INFINITY;
    for k in 1..=max_k.min(vals.len().saturating_sub(1)) {
        let g = vals[k - 1] - vals[k];
        if g > gap {
            gap = g;
            best = k;
        }
    }
    best
}

/// Targets when `k` is estimated: the top `k` pairs (by the current eigengap choice) to `TOL`;
/// the others to `TOL_VAL`, or only to `TOL_LOOSE` once the choice of `k` is settled: the gap
/// `l_k - l_{k+1}` stays the largest for all eigenvalues within their residuals of the Ritz
/// values (each Ritz value is within its residual of an eigenvalue).
fn estimate_targets(theta: &[f64], res: &[f64], max_k: usize) -> Option<Vec<f64>> {
    let k = eigengap_k(theta, max_k);
    let n = theta.len();
    let settled = n <= 1 || {
        let lo_k = (theta[k - 1] - res[k - 1]) - (theta[k] + res[k]);
        (1..=max_k.min(n - 1))
            .filter(|&j| j != k)
            .all(|j| (theta[j - 1] + res[j - 1]) - (theta[j] - res[j]) < lo_k)
    };
    let loose = if settled { TOL_LOOSE } else { TOL_VAL };
    let tols: Vec<f64> = (0..n).map(|j| if j < k { TOL } else { loose }).collect();
    (!res.iter().zip(&tols).all(|(r, t)| r <= t)).then_some(tols)
}

/// Normalized spectral clustering (Ng-Jordan-Weiss): top-`k` eigenvectors of
/// `D^{-1/2} W D^{-1/2}`, rows scaled to unit norm (zero rows stay zero), k-means++ with
/// `n_init` restarts. When `n_clusters` is `None`, the top `min(max_clusters + 1, N)`
/// eigenvalues are computed and `k` is picked by [`eigengap_k`]. Returns
/// `(labels, eigenvalues computed, k)`; labels are renumbered in order of first appearance.
pub fn spectral_clustering<T: Real, I: SpIndex>(
    w: CsrRef<'_, T, I>,
    n_clusters: Option<usize>,
    max_clusters: usize,
    n_init: usize,
    seed: u64,
    par: Par,
) -> Result<(Vec<usize>, Vec<f64>, usize)> {
    spectral_clustering_with_progress(w, n_clusters, max_clusters, n_init, seed, par, &SILENT)
}

/// [`spectral_clustering`] that polls `stop` between eigensolver sweeps and k-means
/// iterations (reported as 0 of 1 steps: the number of either is not known in advance) and
/// returns [`Error::Interrupted`] when it asks to stop (Ctrl-C from the Python bindings).
pub fn spectral_clustering_with_progress<T: Real, I: SpIndex>(
    w: CsrRef<'_, T, I>,
    n_clusters: Option<usize>,
    max_clusters: usize,
    n_init: usize,
    seed: u64,
    par: Par,
    stop: &dyn Progress,
) -> Result<(Vec<usize>, Vec<f64>, usize)> {
    let n = w.nrows();
    if n_init == 0 {
        return invalid("n_init must be >= 1");
    }
    let ncomp = match n_clusters {
        Some(k) if k == 0 || k > n => {
            return invalid(format!(
                "n_clusters must be in [1, n_nodes={n}] (or estimated), got {k}"
            ))
        }
        Some(k) => k,
        None if max_clusters == 0 => return invalid("max_clusters must be >= 1"),
        None => (max_clusters + 1).min(n),
    };
    let s = normalized_affinity(w)?;
    let (vals, v) = match n_clusters {
        Some(_) => top_eigenpairs(&s, ncomp, seed, par, &all_tight, stop)?,
        None => top_eigenpairs(
            &s,
            ncomp,
            seed,
            par,
            &|theta, res| estimate_targets(theta, res, max_clusters),
            stop,
        )?,
    };
    drop(s);
    let k = n_clusters.unwrap_or_else(|| eigengap_k(&vals, max_clusters));
    let mut emb = vec![0.0; n * k];
    for (i, row) in emb.chunks_exact_mut(k).enumerate() {
        let mut nrm = 0.0;
        for (j, e) in row.iter_mut().enumerate() {
            *e = v[(i, j)];
            nrm += *e * *e;
        }
        if nrm > 0.0 {
            let inv = 1.0 / nrm.sqrt();
            row.iter_mut().for_each(|e| *e *= inv);
        }
    }
    let p = Points { x: &emb, n, d: k };
    let tol = scaled_tol(&p, 1e-4);
    let (labels, _, _) = kmeans_rows(&p, k, n_init, 300, tol, seed, par, stop)?;
    Ok((relabel(&labels, k), vals, k))
}

/// Renumbers labels in order of first appearance.
pub fn relabel(labels: &[usize], k: usize) -> Vec<usize> {
    let mut map = vec![usize::MAX; k.max(labels.iter().max().map_or(0, |m| m + 1))];
    let mut next = 0;
    labels
        .iter()
        .map(|&l| {
            if map[l] == usize::MAX {
                map[l] = next;
                next += 1;
            }
            map[l]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `X X^T` across slab and row-block boundaries, f64 and f32 points, any thread count.
    #[test]
    fn row_gram_matches_naive() {
        let (n, d) = (GRAM_ROWS + 37, 2 * SLAB + 11);
        let x = crate::rng::gaussian::<f64>(n, d, 3, 0, 0, Par::Seq);
        let rows: Vec<f64> = (0..n * d).map(|t| x[(t / d, t % d)]).collect();
        let g = row_gram(&rows, n, d, Par::Seq);
        let want = &x * x.transpose();
        assert!((&g - &want).norm_max() < 1e-12 * d as f64);
        assert!((0..n).all(|i| (0..n).all(|j| g[(i, j)] == g[(j, i)])));
        assert_eq!(g, row_gram(&rows, n, d, Par::rayon(2)));
        let r32: Vec<f32> = rows.iter().map(|&v| v as f32).collect();
        let g32 = row_gram(&r32, n, d, Par::rayon(2));
        let x32 = Mat::<f64>::from_fn(n, d, |i, e| r32[i * d + e] as f64);
        assert!((&g32 - &x32 * x32.transpose()).norm_max() < 1e-12 * d as f64);
    }

    /// A ring-of-cliques style graph: `c` groups of `m` nodes, each node linked to `deg`
    /// pseudo-random nodes of its own group, plus a few links between groups.
    fn graph(c: usize, m: usize, deg: usize, cross: usize) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
        let n = c * m;
        let mut trip = std::collections::BTreeMap::<(usize, usize), f64>::new();
        let mut h = 12345u64;
        let mut next = || {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            h
        };
        for i in 0..n {
            let g = i / m;
            for _ in 0..deg {
                let j = g * m + (next() as usize % m);
                if j != i {
                    let w = 0.5 + (next() % 100) as f64 / 100.0;
                    *trip.entry((i, j)).or_default() += w;
                    *trip.entry((j, i)).or_default() += w;
                }
            }
        }
        for _ in 0..cross {
            let (i, j) = (next() as usize % n, next() as usize % n);
            if i != j {
                *trip.entry((i, j)).or_default() += 0.05;
                *trip.entry((j, i)).or_default() += 0.05;
            }
        }
        let mut indptr = vec![0i64; n + 1];
        let mut idx = Vec::new();
        let mut dat = Vec::new();
        for (&(i, j), &w) in &trip {
            indptr[i + 1] += 1;
            idx.push(j as i64);
            dat.push(w);
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        (indptr, idx, dat)
    }

    fn dense_top(p: &[i64], i: &[i64], d: &[f64], n: usize, k: usize) -> Vec<f64> {
        let w = CsrRef::new(n, n, p, i, d).unwrap();
        let s = normalized_affinity(w).unwrap();
        dense_eigenpairs(&s, k).unwrap().0
    }

    #[test]
    fn chfsi_matches_dense() {
        let (p, i, d) = graph(4, 100, 6, 30);
        let n = 400;
        let w = CsrRef::new(n, n, &p, &i, &d).unwrap();
        let s = normalized_affinity(w).unwrap();
        let (vals, vecs) = chfsi(s.as_ref(), 6, 11, 3, Par::rayon(2), &all_tight, &SILENT).unwrap();
        let exact = dense_top(&p, &i, &d, n, 6);
        for (a, b) in vals.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-9, "{vals:?} vs {exact:?}");
        }
        // Residuals.
        let sv = apply(s.as_ref(), vecs.as_ref(), Par::Seq);
        for j in 0..6 {
            let r: f64 = (0..n)
                .map(|r| (sv[(r, j)] - vals[j] * vecs[(r, j)]).powi(2))
                .sum();
            assert!(r.sqrt() < 1e-6);
        }
        // Thread-count independence.
        let (vals1, vecs1) = chfsi(s.as_ref(), 6, 11, 3, Par::Seq, &all_tight, &SILENT).unwrap();
        assert_eq!(vals, vals1);
        assert!((&vecs - &vecs1).norm_max() == 0.0);
    }

    #[test]
    fn clustering_recovers_groups_and_k() {
        let (p, i, d) = graph(5, 80, 8, 20);
        let n = 400;
        let w = CsrRef::new(n, n, &p, &i, &d).unwrap();
        let (labels, vals, k) = spectral_clustering(w, None, 10, 5, 0, Par::rayon(2)).unwrap();
        assert_eq!(k, 5, "{vals:?}");
        assert_eq!(vals.len(), 11);
        for r in 0..n {
            assert_eq!(labels[r], labels[(r / 80) * 80]);
        }
        assert_eq!(labels[0], 0);
    }

    /// A hook that asks to stop after `n` polls ends the eigensolver (large graph: ChFSI) or
    /// k-means with `Interrupted`; one that never does gives the plain function's result.
    #[test]
    fn the_hook_stops_the_eigensolver_and_kmeans() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (p, i, d) = graph(5, 80, 8, 20);
        let w = CsrRef::new(400, 400, &p, &i, &d).unwrap();
        let polls = AtomicUsize::new(0);
        let count = |_: usize, _: usize| {
            polls.fetch_add(1, Ordering::Relaxed);
            true
        };
        let out = spectral_clustering_with_progress(w, Some(5), 10, 3, 0, Par::Seq, &count);
        assert_eq!(
            out.unwrap(),
            spectral_clustering(w, Some(5), 10, 3, 0, Par::Seq).unwrap()
        );
        let total = polls.load(Ordering::Relaxed);
        assert!(total >= 4, "{total} polls");
        for stop_at in [1, total / 2, total] {
            let seen = AtomicUsize::new(0);
            let hook = |_: usize, _: usize| seen.fetch_add(1, Ordering::Relaxed) + 1 < stop_at;
            let r = spectral_clustering_with_progress(w, Some(5), 10, 3, 0, Par::Seq, &hook);
            assert!(
                matches!(r, Err(Error::Interrupted)),
                "stop at poll {stop_at}"
            );
        }
    }

    #[test]
    fn weights_near_the_float64_limit_give_the_same_clustering() {
        // degrees of weights of 3e307 summed to infinity: S = 0, eigenvalues 0
        let (p, i, d) = graph(3, 40, 6, 0);
        let n = 120;
        let w = CsrRef::new(n, n, &p, &i, &d).unwrap();
        let (labels, vals, _) = spectral_clustering(w, Some(3), 10, 3, 0, Par::Seq).unwrap();
        for c in [3e307, 1e-310] {
            let big: Vec<f64> = d.iter().map(|v| v * c).collect();
            let wb = CsrRef::new(n, n, &p, &i, &big).unwrap();
            let (lb, vb, _) = spectral_clustering(wb, Some(3), 10, 3, 0, Par::Seq).unwrap();
            assert_eq!(lb, labels, "scale {c}");
            for (a, b) in vb.iter().zip(&vals) {
                assert!((a - b).abs() < 1e-6, "scale {c}: {vb:?} vs {vals:?}");
            }
        }
    }

    #[test]
    fn validation() {
        let p = vec![0i64, 1, 2];
        let i = vec![1i64, 0];
        assert!(spectral_embedding(
            CsrRef::new(2, 2, &p, &i, &[1.0, -1.0]).unwrap(),
            1,
            0,
            Par::Seq
        )
        .is_err());
        assert!(spectral_embedding(
            CsrRef::new(2, 2, &p, &i, &[1.0, 2.0]).unwrap(),
            1,
            0,
            Par::Seq
        )
        .is_err());
        assert!(spectral_embedding(
            CsrRef::new(2, 3, &p, &i, &[1.0, 1.0]).unwrap(),
            1,
            0,
            Par::Seq
        )
        .is_err());
        assert!(spectral_embedding(
            CsrRef::new(2, 2, &p, &i, &[1.0, 1.0]).unwrap(),
            3,
            0,
            Par::Seq
        )
        .is_err());
        let (vals, _) = spectral_embedding(
            CsrRef::new(2, 2, &p, &i, &[1.0, 1.0]).unwrap(),
            2,
            0,
            Par::Seq,
        )
        .unwrap();
        assert!((vals[0] - 1.0).abs() < 1e-12 && (vals[1] + 1.0).abs() < 1e-12);
    }
}
