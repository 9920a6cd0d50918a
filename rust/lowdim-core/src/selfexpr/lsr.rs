//! LSR: least squares regression with exclusion of self, and the per-point ridge solve that
//! EnSC uses for `tau = 0`.
use super::{block_view, by_blocks, check_count, normalize, scan, Points, Scratch, SparseRows};
use super::{keep_top, push_above, TopK};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::Real;
use faer::{Mat, MatRef, Par, Side};

/// `X^T X` (`d x d`, f64) and its eigendecomposition `(eigenvalues, eigenvectors)`.
pub(crate) struct Eig {
    pub lam: Vec<f64>,
    /// `d x d`, column `k` is the eigenvector of `lam[k]`.
    pub v: Mat<f64>,
}

pub(crate) fn gram_eig<T: Real>(pts: &Points<T>) -> Result<Eig> {
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
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let s = evd.S().column_vector();
    Ok(Eig {
        lam: (0..d).map(|k| s[k].max(0.0)).collect(),
        v: evd.U().to_owned(),
    })
}

/// For point `x` (f64) and ridge `lambda`, `w = M x / (1 - x^T M x)` with
/// `M = (X^T X + lambda I)^{-1}`, so that the coefficients of `x` over the other points are
/// `c_i = <x_i, w>` (Sherman-Morrison removes `x x^T` from `X^T X`). None if `1 - x^T M x`
/// is not positive (the point is numerically not representable).
pub(crate) fn ridge_weight(e: &Eig, x: &[f64], sq: f64, lambda: f64) -> Option<Vec<f64>> {
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
pub(crate) fn ridge_rows<T: Real>(
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
/// the solution is `c_j = -P e_j / P_jj` without its diagonal entry; by Woodbury
/// `P = (I - A^T M A) / lambda`, `M = (A A^T + lambda I)^{-1}` (`D x D`, from one
/// eigendecomposition), so `c_j[i] = <x_i, M x_j> / (1 - <x_j, M x_j>)`, computed in blocks of
/// rows without forming anything `N x N`. Row `j` keeps its `n_nonzero` entries of largest
/// magnitude (ties: smallest index; `n_nonzero >= N - 1` keeps all).
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
    let e = gram_eig(&pts)?;
    let lambda = 1.0 / gamma;
    let rows = by_blocks(pts.n, par, progress, |r0, m| {
        let ws: Vec<Option<Vec<f64>>> = (r0..r0 + m)
            .map(|j| {
                if pts.is_zero(j) {
                    None
                } else {
                    ridge_weight(&e, &point_f64(&pts, j), pts.sq[j], lambda)
                }
            })
            .collect();
        ridge_rows(&pts, r0, &ws, n_nonzero)
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
