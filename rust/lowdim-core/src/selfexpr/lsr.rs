//! LSR: least squares regression with exclusion of self, and the per-point ridge solve that
//! EnSC uses for `tau = 0`.
//!
//! Both solve, for every unit-norm point `x_j` and a ridge `lambda_j > 0`,
//! `min_c ||x_j - sum_{i != j} c_i x_i||^2 + lambda_j ||c||^2`, in closed form from one
//! eigendecomposition of the smaller of the two Gram matrices ([`ridge_factor`]):
//! * `N >= D` ("primal"): `X^T X = V diag(l) V^T` (`D x D`). With `M = (X^T X + lambda I)^{-1}`,
//!   Sherman-Morrison removes `x_j x_j^T`: `c_i = <x_i, w_j>`, `w_j = M x_j / (1 - x_j^T M x_j)`
//!   ([`ridge_weight`], `O(D^2)` per point; the products with all points by GEMM, [`ridge_rows`]).
//!   Memory `O(D^2)`.
//! * `N < D` ("dual", wide data): `G = X X^T = U diag(l) U^T` (`N x N`). Since
//!   `X M X^T = I - lambda Z` with `Z = (G + lambda I)^{-1} = U diag(1 / (l + lambda)) U^T`,
//!   `<x_i, M x_j> = -lambda Z_ij` and `1 - x_j^T M x_j = lambda Z_jj`, so
//!   `c_i = -Z_ij / Z_jj` (the classical LSR closed form), `O(N^2)` per point by GEMM on the
//!   eigenvectors ([`dual_rows`]). `Z_jj` is a sum of positive terms (no cancellation). Memory
//!   `O(N^2)` (`G` and `U`), below the `O(N D)` of the normalized copy of the points.
//!
//! The two routes give the same coefficients up to rounding. Every point's computation is
//! sequential and the Gram matrices are summed in a fixed order, so the results do not depend
//! on the number of threads.
use super::{block_view, by_blocks, check_count, normalize, scan, Points, Scratch, SparseRows};
use super::{keep_top, push_above, TopK};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::spectral::row_gram;
use crate::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

/// The eigendecomposition `(eigenvalues clipped at 0, eigenvectors)` of a Gram matrix.
pub(crate) struct Eig {
    pub lam: Vec<f64>,
    /// Column `k` is the eigenvector of `lam[k]`.
    pub v: Mat<f64>,
}

/// The factorization the ridge solves run on (see the module docs).
pub(crate) enum RidgeFactor {
    /// Of `X^T X` (`D x D`), when `N >= D`.
    Primal(Eig),
    /// Of `X X^T` (`N x N`), when `N < D`.
    Dual(Eig),
}

fn eig_clipped(g: Mat<f64>) -> Result<Eig> {
    let n = g.nrows();
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let s = evd.S().column_vector();
    Ok(Eig {
        lam: (0..n).map(|k| s[k].max(0.0)).collect(),
        v: evd.U().to_owned(),
    })
}

/// The eigendecomposition of the smaller Gram matrix of the points: `X X^T` when `N < D`,
/// else `X^T X`.
pub(crate) fn ridge_factor<T: Real>(pts: &Points<T>, par: Par) -> Result<RidgeFactor> {
    if pts.n < pts.d {
        Ok(RidgeFactor::Dual(eig_clipped(row_gram(
            &pts.x, pts.n, pts.d, par,
        ))?))
    } else {
        Ok(RidgeFactor::Primal(gram_eig(pts)?))
    }
}

/// The ridge-with-exclusion rows of the points `r0..r0 + lambdas.len()`, point `r0 + r` with
/// ridge `lambdas[r]` (None: an empty row), each keeping its `n_nonzero` entries of largest
/// `|c|` (ties: smallest index; zeros dropped).
pub(crate) fn ridge_block<T: Real>(
    pts: &Points<T>,
    f: &RidgeFactor,
    r0: usize,
    lambdas: &[Option<f64>],
    n_nonzero: usize,
) -> Vec<Vec<(usize, T)>> {
    match f {
        RidgeFactor::Primal(e) => {
            let ws: Vec<Option<Vec<f64>>> = lambdas
                .iter()
                .enumerate()
                .map(|(r, l)| {
                    let j = r0 + r;
                    l.and_then(|l| ridge_weight(e, &point_f64(pts, j), pts.sq[j], l))
                })
                .collect();
            ridge_rows(pts, r0, &ws, n_nonzero)
        }
        RidgeFactor::Dual(e) => dual_rows(pts, e, r0, lambdas, n_nonzero),
    }
}

/// The dual route of [`ridge_block`]: with `G = U diag(l) U^T`, the column `z = Z e_j` of
/// `Z = (G + lambda_j I)^{-1}` is `U a` with `a_k = U_jk / (l_k + lambda_j)` (one GEMM for the
/// block), and `c_i = -z_i / z_j` for `i != j`. Zero points get coefficient 0 exactly (as
/// `<0, w> = 0` in the primal route).
fn dual_rows<T: Real>(
    pts: &Points<T>,
    e: &Eig,
    r0: usize,
    lambdas: &[Option<f64>],
    n_nonzero: usize,
) -> Vec<Vec<(usize, T)>> {
    let n = pts.n;
    let m = lambdas.len();
    let k = n_nonzero.min(n - 1);
    let u = e.v.as_ref();
    let a = Mat::<f64>::from_fn(n, m, |kk, r| match lambdas[r] {
        Some(l) => u[(r0 + r, kk)] / (e.lam[kk] + l),
        None => 0.0,
    });
    let mut z = Mat::<f64>::zeros(n, m);
    matmul(z.as_mut(), Accum::Replace, u, a.as_ref(), 1.0, Par::Seq);
    (0..m)
        .map(|r| {
            let j = r0 + r;
            let zj = z[(j, r)];
            if lambdas[r].is_none() || !(zj > 0.0 && zj.is_finite()) {
                return Vec::new();
            }
            let row: Vec<(usize, f64)> = (0..n)
                .filter(|&i| i != j && !pts.is_zero(i))
                .map(|i| (i, -z[(i, r)] / zj))
                .collect();
            keep_top::<T>(row, k)
        })
        .collect()
}

/// `X^T X` (`D x D`, f64, summed sequentially) and its eigendecomposition.
fn gram_eig<T: Real>(pts: &Points<T>) -> Result<Eig> {
    let d = pts.d;
    // Sequential, fixed order: the sums do not depend on the thread count.
    let mut g = Mat::<f64>::zeros(d, d);
    let mut row = vec![0.0f64; d];
    for i in 0..pts.n {
        for (r, t) in row.iter_mut().zip(pts.row(i)) {
            *r = t.to_f64();
        }
        for b in 0..d {
            let xb = row[b];
            if xb == 0.0 {
                continue;
            }
            let col = g.col_mut(b);
            let col = col.try_as_col_major_mut().expect("contiguous column");
            for (a, gv) in col.as_slice_mut().iter_mut().enumerate().skip(b) {
                *gv += row[a] * xb;
            }
        }
    }
    eig_clipped(g)
}

/// For point `x` (f64) and ridge `lambda`, `w = M x / (1 - x^T M x)` with
/// `M = (X^T X + lambda I)^{-1}`, so that the coefficients of `x` over the other points are
/// `c_i = <x_i, w>` (Sherman-Morrison removes `x x^T` from `X^T X`). None if `1 - x^T M x`
/// is not positive (the point is numerically not representable).
fn ridge_weight(e: &Eig, x: &[f64], sq: f64, lambda: f64) -> Option<Vec<f64>> {
    let d = x.len();
    let mut u = vec![0.0f64; d];
    let mut s = 0.0f64;
    for (k, uk) in u.iter_mut().enumerate() {
        let col = e.v.col(k);
        let y: f64 = x.iter().enumerate().map(|(a, xa)| col[a] * xa).sum();
        *uk = y / (e.lam[k] + lambda);
        s += y * *uk;
    }
    let den = sq - s;
    if den.is_nan() || den <= 0.0 {
        return None;
    }
    let mut w = vec![0.0f64; d];
    for (k, uk) in u.iter().enumerate() {
        let col = e.v.col(k);
        let f = uk / den;
        for (a, wa) in w.iter_mut().enumerate() {
            *wa += col[a] * f;
        }
    }
    Some(w)
}

/// The ridge-with-exclusion rows `c_j[i] = <x_i, w_j>` for the given per-point weights
/// (None: empty row), keeping the `n_nonzero` largest `|c|` per row.
fn ridge_rows<T: Real>(
    pts: &Points<T>,
    r0: usize,
    ws: &[Option<Vec<f64>>],
    n_nonzero: usize,
) -> Vec<Vec<(usize, T)>> {
    let d = pts.d;
    let m = ws.len();
    let k = n_nonzero.min(pts.n - 1);
    let mut lhs = vec![T::from_f64(0.0); m * d];
    for (r, w) in ws.iter().enumerate() {
        if let Some(w) = w {
            for a in 0..d {
                lhs[r * d + a] = T::from_f64(w[a]);
            }
        }
    }
    let mut tops: Vec<TopK> = (0..m).map(|_| TopK::new(k, 0.0)).collect();
    let mut scratch = Scratch::new();
    let mut pos = Vec::new();
    scan(
        MatRef::from_row_major_slice(&lhs, m, d),
        pts,
        &mut scratch,
        |r, c0, vals| {
            if ws[r].is_none() {
                return;
            }
            let j = r0 + r;
            push_above(vals, c0, &mut tops[r], &mut pos, |i| i == j);
        },
    );
    tops.into_iter()
        .enumerate()
        .map(|(r, t)| match &ws[r] {
            None => Vec::new(),
            Some(w) => {
                // Recompute the kept values in f64 (the GEMM ran in T).
                let row: Vec<(usize, f64)> = t
                    .finish()
                    .into_iter()
                    .map(|(_, i)| (i, pts.dot(i, w)))
                    .collect();
                keep_top::<T>(row, k)
            }
        })
        .collect()
}

/// The unit-norm point `j` in f64.
pub(crate) fn point_f64<T: Real>(pts: &Points<T>, j: usize) -> Vec<f64> {
    pts.row(j).iter().map(|v| v.to_f64()).collect()
}

/// LSR: least squares regression with exclusion of self,
/// `min ||X^T - X^T C||_F^2 + lambda ||C||_F^2` subject to `diag(C) = 0`, `lambda = 1/gamma`,
/// on the unit-norm points (columns of `X^T`). With `A = X^T` and `P = (A^T A + lambda I)^{-1}`
/// the solution is `c_j = -P e_j / P_jj` without its diagonal entry. When `N < D` it is
/// computed so (dual route of the module docs: `O(N^2 D + N^3)` time, `O(N^2)` memory besides
/// the points); otherwise by Woodbury `P = (I - A^T M A) / lambda`,
/// `M = (A A^T + lambda I)^{-1}` (`D x D`, from one eigendecomposition), so
/// `c_j[i] = <x_i, M x_j> / (1 - <x_j, M x_j>)`, computed in blocks of rows without forming
/// anything `N x N` (`O(N D^2 + D^3)` time, `O(D^2)` memory). Row `j` keeps its `n_nonzero`
/// entries of largest magnitude (ties: smallest index; `n_nonzero >= N - 1` keeps all).
pub fn lsr<T: Real>(
    x: MatRef<'_, T>,
    gamma: f64,
    n_nonzero: usize,
    par: Par,
    progress: &dyn Progress,
) -> Result<SparseRows<T>> {
    check_count(n_nonzero, "n_nonzero")?;
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "gamma must be a finite number > 0, got {gamma}"
        )));
    }
    let pts = normalize(x, par)?;
    let f = ridge_factor(&pts, par)?;
    let lambda = 1.0 / gamma;
    let rows = by_blocks(pts.n, par, progress, |r0, m| {
        let lambdas: Vec<Option<f64>> = (r0..r0 + m)
            .map(|j| (!pts.is_zero(j)).then_some(lambda))
            .collect();
        ridge_block(&pts, &f, r0, &lambdas, n_nonzero)
    });
    Ok(SparseRows::from_rows(rows?))
}

/// `mu_j = max_{i != j} |<x_i, x_j>|` for the points of a block.
pub(crate) fn block_mu<T: Real>(pts: &Points<T>, r0: usize, m: usize) -> Vec<f64> {
    let mut mu = vec![0.0f64; m];
    let mut scratch = Scratch::new();
    scan(block_view(pts, r0, m), pts, &mut scratch, |r, c0, vals| {
        let j = r0 + r;
        if j >= c0 && j < c0 + vals.len() {
            vals[j - c0] = T::from_f64(0.0);
        }
        mu[r] = mu[r].max(super::max_abs(vals).to_f64());
    });
    mu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::SILENT;
    use faer::linalg::solvers::Solve;

    /// `n x d` test points: Gaussian, then row `zero` set to 0 and row 1 a copy of row 0.
    fn points(n: usize, d: usize, zero: Option<usize>) -> Mat<f64> {
        let mut x = crate::rng::gaussian::<f64>(n, d, 7, 0, 0, Par::Seq);
        for e in 0..d {
            x[(1, e)] = x[(0, e)];
            if let Some(z) = zero {
                x[(z, e)] = 0.0;
            }
        }
        x
    }

    /// The ridge with exclusion of self solved densely: for every nonzero point `j`,
    /// `c = (A^T A + lambda_j I)^{-1} A^T x_j` with `A` the other normalized points.
    fn dense_ridge(xn: &Mat<f64>, lambdas: &[f64]) -> Mat<f64> {
        let (n, d) = xn.shape();
        let mut c = Mat::<f64>::zeros(n, n);
        for j in 0..n {
            if (0..d).all(|e| xn[(j, e)] == 0.0) {
                continue;
            }
            let others: Vec<usize> = (0..n).filter(|&i| i != j).collect();
            let a = Mat::<f64>::from_fn(d, n - 1, |e, t| xn[(others[t], e)]);
            let h =
                a.transpose() * &a + Mat::<f64>::identity(n - 1, n - 1) * faer::Scale(lambdas[j]);
            let rhs = a.transpose() * Mat::<f64>::from_fn(d, 1, |e, _| xn[(j, e)]);
            let sol = h.partial_piv_lu().solve(rhs);
            for (t, &i) in others.iter().enumerate() {
                c[(j, i)] = sol[(t, 0)];
            }
        }
        c
    }

    fn dense_rows(rows: &[Vec<(usize, f64)>], n: usize) -> Mat<f64> {
        let mut c = Mat::<f64>::zeros(n, n);
        for (j, r) in rows.iter().enumerate() {
            for &(i, v) in r {
                c[(j, i)] = v;
            }
        }
        c
    }

    fn normalized(x: &Mat<f64>) -> Mat<f64> {
        let pts = normalize(x.as_ref(), Par::Seq).unwrap();
        Mat::from_fn(pts.n, pts.d, |i, e| pts.row(i)[e])
    }

    /// Both factorizations, on wide (`N < D`) and tall data, with a zero point, a duplicate
    /// and a different ridge per point (as EnSC's `tau = 0`), equal the dense ridge solve.
    #[test]
    fn primal_and_dual_routes_match_dense_ridge() {
        for &(n, d) in &[(13usize, 40usize), (30, 6), (9, 9)] {
            let x = points(n, d, Some(n - 1));
            let pts = normalize(x.as_ref(), Par::Seq).unwrap();
            let lambdas: Vec<Option<f64>> = (0..n)
                .map(|j| (!pts.is_zero(j)).then_some(0.05 + 0.1 * (j % 4) as f64))
                .collect();
            let lam: Vec<f64> = lambdas.iter().map(|l| l.unwrap_or(1.0)).collect();
            let want = dense_ridge(&normalized(&x), &lam);
            let primal = RidgeFactor::Primal(gram_eig(&pts).unwrap());
            let dual = RidgeFactor::Dual(eig_clipped(row_gram(&pts.x, n, d, Par::Seq)).unwrap());
            let auto = ridge_factor(&pts, Par::Seq).unwrap();
            assert_eq!(matches!(auto, RidgeFactor::Dual(_)), n < d);
            for f in [&primal, &dual] {
                let got = dense_rows(&ridge_block(&pts, f, 0, &lambdas, n), n);
                let err = (&got - &want).norm_max();
                assert!(err < 1e-10 * (1.0 + want.norm_max()), "({n}, {d}): {err}");
                // the zero point: an empty row and a zero column
                assert!((0..n).all(|i| got[(n - 1, i)] == 0.0 && got[(i, n - 1)] == 0.0));
            }
            // blocks starting inside the data give the same rows
            let tail = ridge_block(&pts, &dual, 5, &lambdas[5..], n);
            let all = ridge_block(&pts, &dual, 0, &lambdas, n);
            assert_eq!(&all[5..], &tail[..]);
        }
    }

    /// The dual route keeps the `n_nonzero` largest `|c|` as the primal one does.
    #[test]
    fn dual_route_keeps_the_same_top_entries() {
        let (n, d) = (25usize, 60usize);
        let x = points(n, d, None);
        let pts = normalize(x.as_ref(), Par::Seq).unwrap();
        let lambdas = vec![Some(0.3); n];
        let primal = RidgeFactor::Primal(gram_eig(&pts).unwrap());
        let dual = ridge_factor(&pts, Par::Seq).unwrap();
        for k in [1usize, 4, 24, 100] {
            let a: Vec<Vec<(usize, f64)>> = ridge_block(&pts, &primal, 0, &lambdas, k);
            let b: Vec<Vec<(usize, f64)>> = ridge_block(&pts, &dual, 0, &lambdas, k);
            for (ra, rb) in a.iter().zip(&b) {
                assert_eq!(ra.len(), k.min(n - 1));
                let ia: Vec<usize> = ra.iter().map(|p| p.0).collect();
                let ib: Vec<usize> = rb.iter().map(|p| p.0).collect();
                assert_eq!(ia, ib);
                for (p, q) in ra.iter().zip(rb) {
                    assert!((p.1 - q.1).abs() < 1e-10 * (1.0 + p.1.abs()));
                }
            }
        }
    }

    /// LSR on wide data (the dual route) equals the dense closed form, in f64 and f32, and
    /// does not depend on the thread count.
    #[test]
    fn wide_lsr_matches_dense_closed_form() {
        let (n, d) = (20usize, 300usize);
        let x = points(n, d, None);
        let gamma = 4.0;
        let want = dense_ridge(&normalized(&x), &vec![1.0 / gamma; n]);
        let out = lsr(x.as_ref(), gamma, n, Par::Seq, &SILENT).unwrap();
        let mut got = Mat::<f64>::zeros(n, n);
        for j in 0..n {
            let (idx, val) = out.row(j);
            assert_eq!(idx.len(), n - 1);
            for (&i, &v) in idx.iter().zip(val) {
                got[(j, i as usize)] = v;
            }
        }
        assert!((&got - &want).norm_max() < 1e-10 * (1.0 + want.norm_max()));
        let par = lsr(x.as_ref(), gamma, 5, Par::rayon(2), &SILENT).unwrap();
        let seq = lsr(x.as_ref(), gamma, 5, Par::Seq, &SILENT).unwrap();
        assert_eq!(par, seq);
        let x32 = Mat::<f32>::from_fn(n, d, |i, e| x[(i, e)] as f32);
        let out32 = lsr(x32.as_ref(), gamma, n, Par::Seq, &SILENT).unwrap();
        for j in 0..n {
            let (idx, val) = out32.row(j);
            for (&i, &v) in idx.iter().zip(val) {
                let w = want[(j, i as usize)];
                assert!((v as f64 - w).abs() < 1e-5 * (1.0 + w.abs()), "{v} {w}");
            }
        }
    }

    #[test]
    fn matches_dense_closed_form() {
        let (n, d) = (17usize, 5usize);
        let x = Mat::<f64>::from_fn(n, d, |i, j| (((i * 13 + j * 7) % 17) as f64 - 8.0) / 3.0);
        let gamma = 3.0;
        let out = lsr(x.as_ref(), gamma, n, Par::Seq, &SILENT).unwrap();
        // Dense: A = normalized X^T, P = (A^T A + I/gamma)^{-1}.
        let xn = Mat::<f64>::from_fn(n, d, |i, j| {
            let s: f64 = (0..d).map(|k| x[(i, k)] * x[(i, k)]).sum::<f64>().sqrt();
            x[(i, j)] / s
        });
        let g = &xn * xn.transpose() + Mat::<f64>::identity(n, n) * faer::Scale(1.0 / gamma);
        let p = g.partial_piv_lu().solve(Mat::<f64>::identity(n, n));
        for j in 0..n {
            let (idx, val) = out.row(j);
            assert_eq!(idx.len(), n - 1);
            for (&i, &v) in idx.iter().zip(val) {
                let want = -p[(i as usize, j)] / p[(j, j)];
                assert!((v - want).abs() < 1e-10 * (1.0 + want.abs()), "{v} {want}");
            }
        }
    }
}
