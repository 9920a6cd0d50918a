//! K-subspaces: clustering points by the linear subspace (through the origin) they lie near.
//!
//! Objective (lower is better): `sum_i min_k ||x_i - U_k U_k^T x_i||^2` over orthonormal bases
//! `U_k` (`D x dim`), equivalently `sum_i max_k ||U_k^T x_i||^2` is maximized. Alternation:
//! * assign each point to `argmax_k ||U_k^T x_i||` (ties: lowest `k`), with one product
//!   `X [U_1 .. U_K]` per block of points (in parallel); the residual of the chosen subspace is
//!   computed directly as `||x_i - U_k (U_k^T x_i)||^2` (no cancellation);
//! * refit `U_k` as the top-`dim` right singular vectors of the cluster's points `X_k`
//!   (`n_k x D`), from the smaller of its two Gram matrices (f64, faer's self-adjoint eigh):
//!   - `n_k >= D`: the top eigenvectors of the `D x D` scatter `X_k^T X_k` (summed over fixed
//!     blocks of rows);
//!   - `n_k < D` (wide data, small clusters): the top eigenvectors `v_j` of the `n_k x n_k`
//!     Gram matrix `X_k X_k^T` (summed over fixed slabs of features), mapped back as
//!     `X_k^T v_j` (fixed blocks of features) and orthonormalized by Gram-Schmidt; directions
//!     beyond the numerical rank (eigenvalue `<= n_k eps lambda_max`, e.g. when `n_k < dim`)
//!     are filled with coordinate axes, as the seeding does.
//!
//!   Either way a refit costs `O(min(n_k, D)^2 max(n_k, D))` time and `O(min(n_k, D)^2 +
//!   n_k D)` memory; never `O(D^3)` / `O(D^2)` when the cluster has fewer points than features.
//!   A cluster left empty is refitted to the `dim` worst-fitted points (largest residuals).
//!
//! It stops when the labels no longer change or after `max_iter` refits; the labels, bases and
//! objective returned always belong together.
//!
//! Initialization ("k-subspaces++"): the first seed point is uniform; each later one is drawn
//! with probability proportional to its residual to the subspaces chosen so far (as k-means++
//! does with squared distances). Each subspace is fitted to its seed point and the `dim - 1`
//! points most coherent with it (largest `|cos|`), orthonormalized. On a noiseless union of
//! subspaces this usually finds the subspaces right away.
//!
//! Restarts: restart `r` draws from its own ChaCha8 stream keyed by `(seed, r)`; the lowest
//! objective wins (ties: lowest `r`). All reductions run over fixed blocks of points in order,
//! so results do not depend on the number of threads.
use crate::error::{invalid, Result};
use crate::kmeans::{par_blocks, rows_f64, sample_weighted, stream, uniform, BLOCK};
use crate::progress::{report, Progress, SILENT};
use crate::scalar::Real;
use crate::spectral::{gram, mul_small, row_gram};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};
use rand_chacha::ChaCha8Rng;

const STREAM_KSS: u64 = 0x6b73_7300_0000_0000;

/// Orthonormal basis (`D x c`) of the given columns by modified Gram-Schmidt, twice; a column
/// that is (numerically) dependent on the previous ones is replaced by the first coordinate
/// axis that is not.
fn orthonormal_columns(cols: &[Vec<f64>], d: usize) -> Mat<f64> {
    let c = cols.len();
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(c);
    let mut axis = 0;
    for v in cols {
        let mut cand = v.clone();
        loop {
            let n0 = cand.iter().map(|a| a * a).sum::<f64>().sqrt();
            for _ in 0..2 {
                for u in &q {
                    let dot: f64 = u.iter().zip(&cand).map(|(a, b)| a * b).sum();
                    cand.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
                }
            }
            let n1 = cand.iter().map(|a| a * a).sum::<f64>().sqrt();
            if n0 > 0.0 && n1 > 1e-10 * n0 {
                cand.iter_mut().for_each(|a| *a /= n1);
                q.push(cand);
                break;
            }
            // Dependent: try the next coordinate axis (there are d >= c of them).
            cand = vec![0.0; d];
            cand[axis.min(d - 1)] = 1.0;
            axis += 1;
        }
    }
    Mat::from_fn(d, c, |i, j| q[j][i])
}

struct Data<'a> {
    x: &'a [f64],
    n: usize,
    d: usize,
}

impl Data<'_> {
    #[inline(always)]
    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
    fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(self.x, self.n, self.d)
    }
}

/// Residual of `x` to the subspace of the orthonormal `u` (`D x dim`).
fn residual(x: &[f64], u: MatRef<'_, f64>) -> f64 {
    let (d, dim) = u.shape();
    let mut p = vec![0.0; dim];
    for (t, pt) in p.iter_mut().enumerate() {
        let col = u.col(t);
        *pt = (0..d).map(|i| col[i] * x[i]).sum();
    }
    let mut r = 0.0;
    for (i, &xi) in x.iter().enumerate() {
        let mut v = xi;
        for (t, pt) in p.iter().enumerate() {
            v -= u[(i, t)] * pt;
        }
        r += v * v;
    }
    r
}

/// Labels, residuals and objective for the bases `u` (concatenated, `D x K dim`).
fn assign(
    data: &Data<'_>,
    ucat: &Mat<f64>,
    k: usize,
    dim: usize,
    par: Par,
) -> (Vec<usize>, Vec<f64>, f64) {
    let xv = data.view();
    let parts = par_blocks(data.n, BLOCK, par, |_, r| {
        let m = r.len();
        let mut p = Mat::<f64>::zeros(m, k * dim);
        matmul(
            p.as_mut(),
            Accum::Replace,
            xv.subrows(r.start, m),
            ucat.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut lab = Vec::with_capacity(m);
        let mut res = Vec::with_capacity(m);
        let mut obj = 0.0;
        for (ii, i) in r.enumerate() {
            let mut best = f64::NEG_INFINITY;
            let mut arg = 0;
            for c in 0..k {
                let s: f64 = (0..dim).map(|t| p[(ii, c * dim + t)].powi(2)).sum();
                if s > best {
                    best = s;
                    arg = c;
                }
            }
            let x = data.row(i);
            let mut rr = 0.0;
            for (e, &xe) in x.iter().enumerate() {
                let mut v = xe;
                for t in 0..dim {
                    v -= ucat[(e, arg * dim + t)] * p[(ii, arg * dim + t)];
                }
                rr += v * v;
            }
            lab.push(arg);
            res.push(rr);
            obj += rr;
        }
        (lab, res, obj)
    });
    let mut labels = Vec::with_capacity(data.n);
    let mut resid = Vec::with_capacity(data.n);
    let mut obj = 0.0;
    for (l, r, o) in parts {
        labels.extend(l);
        resid.extend(r);
        obj += o;
    }
    (labels, resid, obj)
}

/// Orthonormal basis (`D x dim`) of the top-`dim` right singular vectors of the rows `idx`
/// (`X_k`, `m x D`), from the smaller of its two Gram matrices (see the module docs).
fn fit_cluster(data: &Data<'_>, idx: &[usize], dim: usize, par: Par) -> Result<Mat<f64>> {
    let d = data.d;
    let m = idx.len();
    if m < d {
        return fit_cluster_dual(data, idx, dim, par);
    }
    let mut xk = Mat::<f64>::zeros(m, d);
    for (r, &i) in idx.iter().enumerate() {
        for (j, &v) in data.row(i).iter().enumerate() {
            xk[(r, j)] = v;
        }
    }
    let g = gram(xk.as_ref(), xk.as_ref(), par);
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| crate::Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let u = evd.U();
    Ok(Mat::from_fn(d, dim, |i, j| u[(i, d - 1 - j)]))
}

/// [`fit_cluster`] for `m < D`: the top eigenvectors `v_j` of the `m x m` Gram matrix
/// `X_k X_k^T`, mapped to `X_k^T v_j` and orthonormalized. Directions with eigenvalue
/// `<= m eps lambda_max` (beyond the numerical rank) are left to [`orthonormal_columns`],
/// which fills them with coordinate axes.
fn fit_cluster_dual(data: &Data<'_>, idx: &[usize], dim: usize, par: Par) -> Result<Mat<f64>> {
    let d = data.d;
    let m = idx.len();
    let mut xk = vec![0.0f64; m * d];
    for (r, &i) in idx.iter().enumerate() {
        xk[r * d..(r + 1) * d].copy_from_slice(data.row(i));
    }
    let g = row_gram(&xk, m, d, par);
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| crate::Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let (s, v) = (evd.S().column_vector(), evd.U());
    // ascending: the top `take` are the last columns, largest first
    let take = dim.min(m);
    let floor = s[m - 1].max(0.0) * m as f64 * f64::EPSILON;
    let vt = Mat::from_fn(m, take, |i, j| v[(i, m - 1 - j)]);
    // X_k^T (D x m) is X_k's row-major buffer read column-major
    let w = mul_small(MatRef::from_column_major_slice(&xk, d, m), vt.as_ref(), par);
    let cols: Vec<Vec<f64>> = (0..dim)
        .map(|j| {
            if j < take && s[m - 1 - j] > floor {
                (0..d).map(|i| w[(i, j)]).collect()
            } else {
                vec![0.0; d]
            }
        })
        .collect();
    Ok(orthonormal_columns(&cols, d))
}

/// Basis fitted to the given points (orthonormalized).
fn fit_points(data: &Data<'_>, pts: &[usize], dim: usize) -> Mat<f64> {
    let mut cols: Vec<Vec<f64>> = pts.iter().map(|&i| data.row(i).to_vec()).collect();
    cols.resize(dim, vec![0.0; data.d]);
    orthonormal_columns(&cols, data.d)
}

fn concat(bases: &[Mat<f64>], d: usize, dim: usize) -> Mat<f64> {
    Mat::from_fn(d, bases.len() * dim, |i, j| bases[j / dim][(i, j % dim)])
}

/// k-subspaces++ initialization (see the module docs).
fn init(
    data: &Data<'_>,
    norms: &[f64],
    k: usize,
    dim: usize,
    rng: &mut ChaCha8Rng,
    par: Par,
) -> Vec<Mat<f64>> {
    let n = data.n;
    let mut resid = norms.iter().map(|v| v * v).collect::<Vec<_>>();
    let mut bases = Vec::with_capacity(k);
    for c in 0..k {
        let s = if c == 0 {
            ((uniform(rng) * n as f64) as usize).min(n - 1)
        } else {
            sample_weighted(&resid, rng)
        };
        let xs = data.row(s);
        let ns = norms[s];
        let cos: Vec<f64> = par_blocks(n, BLOCK, par, |_, r| {
            r.map(|j| {
                if j == s || norms[j] == 0.0 || ns == 0.0 {
                    -1.0
                } else {
                    let dot: f64 = xs.iter().zip(data.row(j)).map(|(a, b)| a * b).sum();
                    (dot / (ns * norms[j])).abs()
                }
            })
            .collect::<Vec<_>>()
        })
        .concat();
        let mut order: Vec<usize> = (0..n).filter(|&j| j != s).collect();
        let take = (dim - 1).min(order.len());
        let cmp = |a: &usize, b: &usize| cos[*b].total_cmp(&cos[*a]).then(a.cmp(b));
        if take > 0 && take < order.len() {
            order.select_nth_unstable_by(take - 1, cmp);
        }
        order.truncate(take);
        order.sort_by(cmp);
        let mut pts = vec![s];
        pts.extend(order);
        let u = fit_points(data, &pts, dim);
        let upd: Vec<f64> = par_blocks(n, BLOCK, par, |_, r| {
            r.map(|i| residual(data.row(i), u.as_ref()).min(resid[i]))
                .collect::<Vec<_>>()
        })
        .concat();
        resid = upd;
        bases.push(u);
    }
    bases
}

/// One restart: returns (labels, bases, objective).
#[allow(clippy::too_many_arguments)]
fn run(
    data: &Data<'_>,
    norms: &[f64],
    k: usize,
    dim: usize,
    max_iter: usize,
    rng: &mut ChaCha8Rng,
    par: Par,
    stop: &dyn Progress,
) -> Result<KssRun<f64>> {
    let d = data.d;
    let mut bases = init(data, norms, k, dim, rng, par);
    let (mut labels, mut resid, mut obj) = assign(data, &concat(&bases, d, dim), k, dim, par);
    let mut n_iter = 0;
    for _ in 0..max_iter {
        report(stop, 0, 1)?;
        n_iter += 1;
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in labels.iter().enumerate() {
            members[l].push(i);
        }
        let mut worst: Option<std::vec::IntoIter<usize>> = None;
        for c in 0..k {
            if members[c].is_empty() {
                let it = worst.get_or_insert_with(|| {
                    let mut o: Vec<usize> = (0..data.n).collect();
                    o.sort_by(|&a, &b| resid[b].total_cmp(&resid[a]).then(a.cmp(&b)));
                    o.into_iter()
                });
                let pts: Vec<usize> = it.by_ref().take(dim).collect();
                bases[c] = fit_points(data, &pts, dim);
            } else {
                bases[c] = fit_cluster(data, &members[c], dim, par)?;
            }
        }
        let (l2, r2, o2) = assign(data, &concat(&bases, d, dim), k, dim, par);
        let same = l2 == labels;
        (labels, resid, obj) = (l2, r2, o2);
        if same {
            break;
        }
    }
    Ok(KssRun {
        labels,
        bases,
        objective: obj,
        n_iter,
    })
}

/// The result of K-subspaces: labels, orthonormal bases (D x dim each), the objective
/// (sum of squared residuals) and the number of refit/assign iterations of the best restart.
pub struct KssRun<T> {
    pub labels: Vec<usize>,
    pub bases: Vec<Mat<T>>,
    pub objective: f64,
    pub n_iter: usize,
}

/// K-subspaces clustering of the rows of `x` (`N x D`, any strides, f32 or f64) into
/// `n_clusters` linear subspaces of dimension `dim`. Returns `(labels, bases (each D x dim,
/// orthonormal), objective)` with objective `sum_i ||x_i - U_{l_i} U_{l_i}^T x_i||^2`.
pub fn k_subspaces<T: Real>(
    x: MatRef<'_, T>,
    n_clusters: usize,
    dim: usize,
    n_init: usize,
    max_iter: usize,
    seed: u64,
    par: Par,
) -> Result<KssRun<T>> {
    k_subspaces_with_progress(x, n_clusters, dim, n_init, max_iter, seed, par, &SILENT)
}

/// [`k_subspaces`] that polls `stop` before every refit/assign iteration (reported as 0 of 1
/// steps) and returns [`Error::Interrupted`](crate::Error::Interrupted) when it asks to stop
/// (Ctrl-C from the Python bindings).
#[allow(clippy::too_many_arguments)]
pub fn k_subspaces_with_progress<T: Real>(
    x: MatRef<'_, T>,
    n_clusters: usize,
    dim: usize,
    n_init: usize,
    max_iter: usize,
    seed: u64,
    par: Par,
    stop: &dyn Progress,
) -> Result<KssRun<T>> {
    let (n, d) = x.shape();
    if n == 0 || d == 0 {
        return invalid(format!(
            "k_subspaces needs at least one point and one feature, got X of shape ({n}, {d})"
        ));
    }
    if n_clusters == 0 || n_clusters > n {
        return invalid(format!(
            "n_clusters must be in [1, n_samples={n}], got {n_clusters}"
        ));
    }
    if dim == 0 || dim > d {
        return invalid(format!("dim must be in [1, n_features={d}], got {dim}"));
    }
    if n_init == 0 {
        return invalid("n_init must be >= 1");
    }
    if max_iter == 0 {
        return invalid("max_iter must be >= 1");
    }
    let xr = rows_f64(x, "X")?;
    let data = Data { x: &xr, n, d };
    let norms: Vec<f64> = (0..n)
        .map(|i| data.row(i).iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    let mut best: Option<KssRun<f64>> = None;
    for r in 0..n_init {
        let mut rng = stream(seed, STREAM_KSS, r);
        let res = run(
            &data, &norms, n_clusters, dim, max_iter, &mut rng, par, stop,
        )?;
        if best.as_ref().is_none_or(|b| res.objective < b.objective) {
            best = Some(res);
        }
    }
    let best = best.expect("n_init >= 1");
    let bases = best
        .bases
        .iter()
        .map(|u| Mat::from_fn(d, dim, |i, j| T::from_f64(u[(i, j)])))
        .collect();
    Ok(KssRun {
        labels: best.labels,
        bases,
        objective: best.objective,
        n_iter: best.n_iter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k` random `dim`-dimensional subspaces of R^d, `m` points each (interleaved).
    fn union(k: usize, dim: usize, d: usize, m: usize) -> (Mat<f64>, Vec<usize>) {
        let g = crate::rng::gaussian::<f64>(d, k * dim, 11, 0, 0, Par::Seq);
        let bases: Vec<Mat<f64>> = (0..k)
            .map(|c| g.subcols(c * dim, dim).to_owned().qr().compute_thin_Q())
            .collect();
        let coef = crate::rng::gaussian::<f64>(k * m, dim, 12, 0, 0, Par::Seq);
        let x = Mat::from_fn(k * m, d, |i, e| {
            let c = i % k;
            (0..dim).map(|t| bases[c][(e, t)] * coef[(i, t)]).sum()
        });
        (x, (0..k * m).map(|i| i % k).collect())
    }

    #[test]
    fn the_hook_stops_the_iterations() {
        let (x, _) = union(4, 3, 20, 50);
        let never = |_: usize, _: usize| true;
        let a = k_subspaces_with_progress(x.as_ref(), 4, 3, 3, 50, 0, Par::Seq, &never).unwrap();
        let b = k_subspaces(x.as_ref(), 4, 3, 3, 50, 0, Par::Seq).unwrap();
        assert_eq!(a.labels, b.labels);
        let stop = |_: usize, _: usize| false;
        let r = k_subspaces_with_progress(x.as_ref(), 4, 3, 3, 50, 0, Par::Seq, &stop);
        assert!(matches!(r, Err(crate::Error::Interrupted)));
    }

    #[test]
    fn recovers_noiseless_union() {
        let (x, y) = union(4, 3, 20, 50);
        let r = k_subspaces(x.as_ref(), 4, 3, 3, 50, 0, Par::rayon(2)).unwrap();
        let (l, bases, obj) = (r.labels, r.bases, r.objective);
        assert!(r.n_iter >= 1 && r.n_iter <= 50);
        assert!(obj < 1e-20 * 200.0 + 1e-12, "objective {obj}");
        // Same partition up to renaming.
        let mut map = [usize::MAX; 4];
        for (a, b) in l.iter().zip(&y) {
            if map[*b] == usize::MAX {
                map[*b] = *a;
            }
            assert_eq!(map[*b], *a);
        }
        for u in &bases {
            let g = u.transpose() * u;
            assert!((&g - Mat::<f64>::identity(3, 3)).norm_max() < 1e-12);
        }
        let r1 = k_subspaces(x.as_ref(), 4, 3, 3, 50, 0, Par::Seq).unwrap();
        assert_eq!(l, r1.labels);
        assert_eq!(obj, r1.objective);
    }

    /// `U U^T` of the top-`dim` right singular vectors of `x` (faer's dense SVD).
    fn svd_projector(x: MatRef<'_, f64>, dim: usize) -> Mat<f64> {
        let svd = x.svd().unwrap();
        let v = svd.V().subcols(0, dim);
        v * v.transpose()
    }

    /// Gaussian points with a dominant `dim`-dimensional part (distinct singular values).
    fn cluster(m: usize, d: usize, dim: usize, seed: u64) -> Mat<f64> {
        let g = crate::rng::gaussian::<f64>(m, d, seed, 0, 0, Par::Seq);
        Mat::from_fn(m, d, |i, e| {
            g[(i, e)] * if e < dim { 10.0 - e as f64 } else { 0.1 }
        })
    }

    /// The refit from the `m x m` Gram matrix (wide clusters) and from the `D x D` scatter
    /// (tall ones) both give the top-`dim` right singular subspace, orthonormal; where both
    /// routes are feasible they agree.
    #[test]
    fn refit_is_the_top_singular_subspace() {
        for &(m, d, dim) in &[
            (12usize, 300usize, 3usize),
            (40, 7, 2),
            (6, 6, 4),
            (9, 10, 9),
        ] {
            let x = cluster(m, d, dim, 21);
            let rows: Vec<f64> = (0..m * d).map(|t| x[(t / d, t % d)]).collect();
            let data = Data { x: &rows, n: m, d };
            let idx: Vec<usize> = (0..m).collect();
            let want = svd_projector(x.as_ref(), dim);
            let mut fits = vec![fit_cluster(&data, &idx, dim, Par::rayon(2)).unwrap()];
            if m < d {
                fits.push(fit_cluster_dual(&data, &idx, dim, Par::Seq).unwrap());
            }
            let tol = if dim < m.min(d) { 1e-10 } else { 1e-8 };
            for u in &fits {
                let g = u.transpose() * u;
                assert!((&g - Mat::<f64>::identity(dim, dim)).norm_max() < 1e-12);
                let err = (u * u.transpose() - &want).norm_max();
                assert!(err < tol, "({m}, {d}, {dim}): {err}");
            }
        }
        // subsets of the rows, and a cluster with fewer points than `dim`: the points' span
        // plus coordinate axes
        let x = cluster(30, 50, 3, 5);
        let rows: Vec<f64> = (0..30 * 50).map(|t| x[(t / 50, t % 50)]).collect();
        let data = Data {
            x: &rows,
            n: 30,
            d: 50,
        };
        let idx = [3usize, 17, 8, 25, 11, 0, 29];
        let sub = Mat::from_fn(idx.len(), 50, |i, e| x[(idx[i], e)]);
        let u = fit_cluster(&data, &idx, 3, Par::Seq).unwrap();
        assert!((&u * u.transpose() - svd_projector(sub.as_ref(), 3)).norm_max() < 1e-10);
        let u = fit_cluster(&data, &[4, 9], 4, Par::Seq).unwrap();
        assert!((u.transpose() * &u - Mat::<f64>::identity(4, 4)).norm_max() < 1e-12);
        for i in [4usize, 9] {
            assert!(residual(data.row(i), u.as_ref()) < 1e-20 * data.row(i).len() as f64);
        }
        let zeros = vec![0.0; 3 * 50];
        let data = Data {
            x: &zeros,
            n: 3,
            d: 50,
        };
        let u = fit_cluster(&data, &[0, 1, 2], 2, Par::Seq).unwrap();
        assert!((u.transpose() * &u - Mat::<f64>::identity(2, 2)).norm_max() < 1e-15);
    }

    /// A union of subspaces with far more features than points (every refit takes the Gram
    /// route): recovered exactly, the same for any thread count.
    #[test]
    fn recovers_wide_union() {
        let (x, y) = union(3, 2, 400, 8);
        let r = k_subspaces(x.as_ref(), 3, 2, 3, 50, 0, Par::rayon(2)).unwrap();
        assert!(r.objective < 1e-20, "objective {}", r.objective);
        let mut map = [usize::MAX; 3];
        for (a, b) in r.labels.iter().zip(&y) {
            if map[*b] == usize::MAX {
                map[*b] = *a;
            }
            assert_eq!(map[*b], *a);
        }
        let r1 = k_subspaces(x.as_ref(), 3, 2, 3, 50, 0, Par::Seq).unwrap();
        assert_eq!(r.labels, r1.labels);
        assert_eq!(r.objective, r1.objective);
        for (a, b) in r.bases.iter().zip(&r1.bases) {
            assert_eq!(a, b);
        }
    }

    #[test]
    fn errors_and_edge_cases() {
        let (x, _) = union(2, 2, 5, 6);
        assert!(k_subspaces(x.as_ref(), 0, 2, 1, 5, 0, Par::Seq).is_err());
        assert!(k_subspaces(x.as_ref(), 13, 2, 1, 5, 0, Par::Seq).is_err());
        assert!(k_subspaces(x.as_ref(), 2, 6, 1, 5, 0, Par::Seq).is_err());
        // More clusters than distinct subspaces, dim = D: all residuals vanish.
        let r = k_subspaces(x.as_ref(), 5, 5, 2, 5, 0, Par::Seq).unwrap();
        assert!(r.objective < 1e-20);
        let z = Mat::<f64>::zeros(4, 3);
        let r = k_subspaces(z.as_ref(), 2, 2, 1, 5, 0, Par::Seq).unwrap();
        assert_eq!(r.labels.len(), 4);
        assert_eq!(r.bases.len(), 2);
        assert_eq!(r.objective, 0.0);
    }
}
