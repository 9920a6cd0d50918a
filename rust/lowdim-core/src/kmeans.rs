//! k-means: Lloyd iterations from greedy k-means++ seeds, with restarts.
//!
//! * Seeding: greedy k-means++ as in scikit-learn (`2 + floor(ln k)` candidates per step, sampled
//!   proportionally to the squared distance to the closest chosen center; the candidate that
//!   lowers the potential most is kept).
//! * Lloyd: assign each point to its closest center (ties: lowest index), move each center to
//!   the mean of its points. A cluster left empty is moved onto the point farthest from its own
//!   center (that point leaves its old cluster), as scikit-learn does. Stops when the labels no
//!   longer change, when the total squared center shift is `<= tol * mean(per-feature variance)`
//!   (scikit-learn's `tol`), or after `max_iter` iterations; labels are then recomputed from the
//!   final centers so that labels, centers and inertia agree.
//! * Restarts: restart `r` draws from its own ChaCha8 stream keyed by `(seed, r)`; the lowest
//!   inertia wins (ties: lowest `r`).
//!
//! All work is in f64 on a row-major copy of the data (O(N D), made once). Points are
//! processed in fixed blocks of [`BLOCK`] rows, in parallel, and per-block partial sums are
//! added in block order, so results do not depend on the number of threads.
use crate::error::{invalid, Error, Result};
use crate::progress::{report, Progress, SILENT};
use crate::scalar::Real;
use faer::{Mat, MatRef, Par};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

/// Rows per block in the parallel reductions (fixed: results must not depend on threads).
pub(crate) const BLOCK: usize = 512;

/// Tags that separate the random streams of the kernels sharing a seed.
pub(crate) const STREAM_KMEANS: u64 = 0x6b6d_6561_6e73_0000;

/// `f(block index, row range)` for each block of `BLOCK` rows of `0..n`, in parallel when
/// `par` allows it; results come back in block order.
pub(crate) fn par_blocks<R: Send>(
    n: usize,
    block: usize,
    par: Par,
    f: impl Fn(usize, std::ops::Range<usize>) -> R + Sync + Send,
) -> Vec<R> {
    let nb = n.div_ceil(block);
    let g = |b: usize| f(b, b * block..((b + 1) * block).min(n));
    if crate::threads::is_parallel(par) && nb > 1 {
        (0..nb).into_par_iter().map(g).collect()
    } else {
        (0..nb).map(g).collect()
    }
}

/// The random stream of restart `r` of a kernel (`tag` tells kernels apart).
pub(crate) fn stream(seed: u64, tag: u64, r: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(tag.wrapping_add(r as u64));
    rng
}

/// A uniform draw in `[0, 1)` (53 random bits).
#[inline]
pub(crate) fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Index drawn with probability proportional to `w` (nonnegative); uniform if all are 0.
pub(crate) fn sample_weighted(w: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let n = w.len();
    let mut cum = Vec::with_capacity(n);
    let mut s = 0.0;
    for &v in w {
        s += v;
        cum.push(s);
    }
    let u = uniform(rng);
    if !(s > 0.0 && s.is_finite()) {
        return ((u * n as f64) as usize).min(n - 1);
    }
    let r = u * s;
    cum.partition_point(|&c| c <= r).min(n - 1)
}

/// A row-major f64 copy of `x`, checking that every value is finite.
pub(crate) fn rows_f64<T: Real>(x: MatRef<'_, T>, what: &str) -> Result<Vec<f64>> {
    let (n, d) = x.shape();
    let mut out = vec![0.0; n * d];
    for (i, row) in out.chunks_exact_mut(d.max(1)).enumerate().take(n) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = x[(i, j)].to_f64();
        }
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "{what} holds NaN or infinity; remove or impute them first"
        )));
    }
    Ok(out)
}

#[inline(always)]
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    let mut s0 = 0.0;
    let mut s1 = 0.0;
    let mut ca = a.chunks_exact(2);
    let mut cb = b.chunks_exact(2);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (z0, z1) = (x[0] - y[0], x[1] - y[1]);
        s0 += z0 * z0;
        s1 += z1 * z1;
    }
    if let (Some(x), Some(y)) = (ca.remainder().first(), cb.remainder().first()) {
        s0 += (x - y) * (x - y);
    }
    s0 + s1
}

/// Closest center of `p` (ties: lowest index) and the squared distance.
#[inline]
fn nearest(p: &[f64], centers: &[f64], d: usize) -> (usize, f64) {
    let mut best = f64::INFINITY;
    let mut arg = 0;
    for (j, c) in centers.chunks_exact(d).enumerate() {
        let s = dist2(p, c);
        if s < best {
            best = s;
            arg = j;
        }
    }
    (arg, best)
}

/// The data of one k-means problem (row-major f64, `n x d`).
pub(crate) struct Points<'a> {
    pub x: &'a [f64],
    pub n: usize,
    pub d: usize,
}

impl Points<'_> {
    #[inline(always)]
    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

/// Greedy k-means++ seeding; returns the `k x d` row-major centers.
fn kmeanspp(p: &Points<'_>, k: usize, rng: &mut ChaCha8Rng, par: Par) -> Vec<f64> {
    let (n, d) = (p.n, p.d);
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centers = Vec::with_capacity(k * d);
    let first = ((uniform(rng) * n as f64) as usize).min(n - 1);
    centers.extend_from_slice(p.row(first));
    let mut closest: Vec<f64> = par_blocks(n, BLOCK, par, |_, r| {
        r.map(|i| dist2(p.row(i), p.row(first))).collect::<Vec<_>>()
    })
    .concat();
    for _ in 1..k {
        let mut cum = Vec::with_capacity(n);
        let mut s = 0.0;
        for &v in &closest {
            s += v;
            cum.push(s);
        }
        let cands: Vec<usize> = (0..trials)
            .map(|_| {
                let r = uniform(rng) * s;
                cum.partition_point(|&c| c < r).min(n - 1)
            })
            .collect();
        // Potential of each candidate, summed per block then in block order.
        let parts = par_blocks(n, BLOCK, par, |_, r| {
            let mut pot = vec![0.0; trials];
            for i in r {
                let xi = p.row(i);
                for (t, &c) in cands.iter().enumerate() {
                    pot[t] += dist2(xi, p.row(c)).min(closest[i]);
                }
            }
            pot
        });
        let mut pot = vec![0.0; trials];
        for part in &parts {
            for (a, b) in pot.iter_mut().zip(part) {
                *a += b;
            }
        }
        let mut best = 0;
        for t in 1..trials {
            if pot[t] < pot[best] {
                best = t;
            }
        }
        let c = cands[best];
        centers.extend_from_slice(p.row(c));
        let cr = p.row(c);
        let upd = par_blocks(n, BLOCK, par, |_, r| {
            r.map(|i| dist2(p.row(i), cr).min(closest[i]))
                .collect::<Vec<_>>()
        });
        closest = upd.concat();
    }
    centers
}

/// One assignment pass: labels, squared distances, and (optionally) per-cluster sums and
/// counts, all reduced in block order.
struct Assign {
    labels: Vec<usize>,
    dist: Vec<f64>,
    sums: Vec<f64>,
    counts: Vec<usize>,
    inertia: f64,
}

fn assign(p: &Points<'_>, centers: &[f64], k: usize, sums: bool, par: Par) -> Assign {
    let (n, d) = (p.n, p.d);
    let parts = par_blocks(n, BLOCK, par, |_, r| {
        let m = r.len();
        let mut lab = Vec::with_capacity(m);
        let mut dist = Vec::with_capacity(m);
        let mut s = if sums { vec![0.0; k * d] } else { Vec::new() };
        let mut cnt = vec![0usize; k];
        let mut inertia = 0.0;
        for i in r {
            let xi = p.row(i);
            let (j, dd) = nearest(xi, centers, d);
            lab.push(j);
            dist.push(dd);
            inertia += dd;
            cnt[j] += 1;
            if sums {
                for (a, b) in s[j * d..(j + 1) * d].iter_mut().zip(xi) {
                    *a += b;
                }
            }
        }
        (lab, dist, s, cnt, inertia)
    });
    let mut out = Assign {
        labels: Vec::with_capacity(n),
        dist: Vec::with_capacity(n),
        sums: vec![0.0; if sums { k * d } else { 0 }],
        counts: vec![0; k],
        inertia: 0.0,
    };
    for (lab, dist, s, cnt, inertia) in parts {
        out.labels.extend(lab);
        out.dist.extend(dist);
        for (a, b) in out.sums.iter_mut().zip(&s) {
            *a += b;
        }
        for (a, b) in out.counts.iter_mut().zip(&cnt) {
            *a += b;
        }
        out.inertia += inertia;
    }
    out
}

/// One restart: seeding then Lloyd. Returns (labels, centers, inertia).
fn lloyd(
    p: &Points<'_>,
    k: usize,
    max_iter: usize,
    tol: f64,
    rng: &mut ChaCha8Rng,
    par: Par,
    stop: &dyn Progress,
) -> Result<(Vec<usize>, Vec<f64>, f64)> {
    let d = p.d;
    let mut centers = kmeanspp(p, k, rng, par);
    let mut prev: Option<Vec<usize>> = None;
    for _ in 0..max_iter {
        report(stop, 0, 1)?;
        let mut a = assign(p, &centers, k, true, par);
        // Empty clusters take the points farthest from their centers.
        let empties: Vec<usize> = (0..k).filter(|&j| a.counts[j] == 0).collect();
        if !empties.is_empty() {
            let mut order: Vec<usize> = (0..p.n).collect();
            order.sort_by(|&i, &j| a.dist[j].total_cmp(&a.dist[i]).then(i.cmp(&j)));
            for (e, &i) in empties.iter().zip(&order) {
                let old = a.labels[i];
                if a.counts[old] > 1 {
                    a.counts[old] -= 1;
                    for t in 0..d {
                        a.sums[old * d + t] -= p.x[i * d + t];
                    }
                    a.counts[*e] = 1;
                    a.sums[*e * d..(*e + 1) * d].copy_from_slice(p.row(i));
                    a.labels[i] = *e;
                }
            }
        }
        let mut shift = 0.0;
        for j in 0..k {
            if a.counts[j] == 0 {
                continue;
            }
            let inv = 1.0 / a.counts[j] as f64;
            for t in 0..d {
                let c = a.sums[j * d + t] * inv;
                let z = c - centers[j * d + t];
                shift += z * z;
                centers[j * d + t] = c;
            }
        }
        if prev.as_ref().is_some_and(|q| *q == a.labels) {
            break;
        }
        prev = Some(a.labels);
        if shift <= tol {
            break;
        }
    }
    let a = assign(p, &centers, k, false, par);
    Ok((a.labels, centers, a.inertia))
}

/// k-means on row-major f64 data; the shared engine of [`kmeans`] and spectral clustering.
/// `tol` is absolute here (already scaled by the mean variance). `stop` is polled before every
/// Lloyd iteration (reported as 0 of 1 steps): [`Error::Interrupted`] when it asks to stop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn kmeans_rows(
    p: &Points<'_>,
    k: usize,
    n_init: usize,
    max_iter: usize,
    tol_abs: f64,
    seed: u64,
    par: Par,
    stop: &dyn Progress,
) -> Result<(Vec<usize>, Vec<f64>, f64)> {
    let mut best: Option<(Vec<usize>, Vec<f64>, f64)> = None;
    for r in 0..n_init {
        let mut rng = stream(seed, STREAM_KMEANS, r);
        let res = lloyd(p, k, max_iter, tol_abs, &mut rng, par, stop)?;
        if best.as_ref().is_none_or(|b| res.2 < b.2) {
            best = Some(res);
        }
    }
    Ok(best.expect("n_init >= 1"))
}

/// `tol * mean(per-feature variance)` (scikit-learn's scaled tolerance).
pub(crate) fn scaled_tol(p: &Points<'_>, tol: f64) -> f64 {
    let (n, d) = (p.n, p.d);
    if n == 0 || d == 0 || tol == 0.0 {
        return 0.0;
    }
    let mut mean = vec![0.0; d];
    for i in 0..n {
        for (m, v) in mean.iter_mut().zip(p.row(i)) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = 0.0;
    for i in 0..n {
        for (m, v) in mean.iter().zip(p.row(i)) {
            var += (v - m) * (v - m);
        }
    }
    tol * var / (n as f64 * d as f64)
}

/// k-means of the rows of `x` (`N x D`, any strides, f32 or f64).
///
/// Returns `(labels, centers (k x D), inertia)` where inertia is the sum of squared distances
/// of the points to their centers. `tol` is relative to the mean per-feature variance, as in
/// scikit-learn (default there: 1e-4). Restarts are independent of each other and of the
/// number of threads.
pub fn kmeans<T: Real>(
    x: MatRef<'_, T>,
    k: usize,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
    par: Par,
) -> Result<(Vec<usize>, Mat<T>, f64)> {
    let (n, d) = x.shape();
    if n == 0 || d == 0 {
        return invalid(format!(
            "kmeans needs at least one point and one feature, got X of shape ({n}, {d})"
        ));
    }
    if k == 0 || k > n {
        return invalid(format!("n_clusters must be in [1, n_samples={n}], got {k}"));
    }
    if n_init == 0 {
        return invalid("n_init must be >= 1");
    }
    if max_iter == 0 {
        return invalid("max_iter must be >= 1");
    }
    if !(tol.is_finite() && tol >= 0.0) {
        return invalid(format!("tol must be a finite number >= 0, got {tol}"));
    }
    let xr = rows_f64(x, "X")?;
    let p = Points { x: &xr, n, d };
    let tol_abs = scaled_tol(&p, tol);
    let (labels, c, inertia) = kmeans_rows(&p, k, n_init, max_iter, tol_abs, seed, par, &SILENT)?;
    let centers = Mat::from_fn(k, d, |i, j| T::from_f64(c[i * d + j]));
    Ok((labels, centers, inertia))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n_per: usize, seed: u64) -> Mat<f64> {
        let g = crate::rng::gaussian::<f64>(3 * n_per, 2, seed, 0, 0, Par::Seq);
        let mu = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        Mat::from_fn(3 * n_per, 2, |i, j| mu[i % 3][j] + 0.5 * g[(i, j)])
    }

    #[test]
    fn recovers_blobs_and_is_thread_independent() {
        let x = blobs(100, 1);
        let (l1, c1, i1) = kmeans(x.as_ref(), 3, 4, 100, 1e-4, 7, Par::Seq).unwrap();
        let (l2, c2, i2) = kmeans(x.as_ref(), 3, 4, 100, 1e-4, 7, Par::rayon(3)).unwrap();
        assert_eq!(l1, l2);
        assert_eq!(i1, i2);
        assert!((&c1 - &c2).norm_max() == 0.0);
        for i in 0..300 {
            assert_eq!(l1[i], l1[i % 3]);
        }
        // Inertia of the true partition is about 300 * 2 * 0.25.
        assert!(i1 < 200.0, "inertia {i1}");
    }

    #[test]
    fn strided_f32_and_errors() {
        let x = blobs(50, 2);
        let xf = Mat::<f32>::from_fn(150, 2, |i, j| x[(i, j)] as f32);
        let (l, c, _) = kmeans(
            xf.as_ref().transpose().transpose(),
            3,
            2,
            50,
            0.0,
            1,
            Par::Seq,
        )
        .unwrap();
        assert_eq!(l.len(), 150);
        assert_eq!(c.shape(), (3, 2));
        assert!(kmeans(x.as_ref(), 0, 1, 10, 1e-4, 0, Par::Seq).is_err());
        assert!(kmeans(x.as_ref(), 151, 1, 10, 1e-4, 0, Par::Seq).is_err());
        let mut bad = x.clone();
        bad[(3, 1)] = f64::NAN;
        assert!(matches!(
            kmeans(bad.as_ref(), 2, 1, 10, 1e-4, 0, Par::Seq),
            Err(Error::NonFinite(_))
        ));
    }

    #[test]
    fn k_equals_n_and_duplicates() {
        let x = Mat::<f64>::from_fn(5, 1, |i, _| (i / 2) as f64);
        let (l, _, inertia) = kmeans(x.as_ref(), 5, 2, 20, 1e-4, 3, Par::Seq).unwrap();
        assert_eq!(l.len(), 5);
        assert!(inertia.abs() < 1e-12);
    }
}
