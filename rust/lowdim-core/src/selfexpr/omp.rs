//! SSC-OMP: orthogonal matching pursuit of every point over the other points.
use super::{above, as_f32, by_blocks, check_count, dot_ff, max_abs, normalize, scan_raw};
use super::{Points, Scratch, SparseRows};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::Real;
use faer::{MatRef, Par};

/// The state of one point's pursuit (all in f64).
struct Pursuit {
    j: usize,
    /// The point itself.
    x: Vec<f64>,
    /// Orthonormal basis of the selected atoms' span, `s` vectors of length `d`.
    q: Vec<f64>,
    /// Upper triangular `R` with `X_S = Q R`, column-major `kmax x kmax`.
    r: Vec<f64>,
    /// `Q^T x`.
    z: Vec<f64>,
    /// Selected atoms in order.
    sel: Vec<usize>,
    /// Residual `x - Q Q^T x`.
    res: Vec<f64>,
    done: bool,
}

impl Pursuit {
    fn new<T: Real>(pts: &Points<T>, j: usize, kmax: usize) -> Self {
        let x: Vec<f64> = pts.row(j).iter().map(|v| v.to_f64()).collect();
        Pursuit {
            j,
            res: x.clone(),
            x,
            q: Vec::with_capacity(kmax * pts.d),
            r: vec![0.0; kmax * kmax],
            z: Vec::with_capacity(kmax),
            sel: Vec::with_capacity(kmax),
            done: pts.is_zero(j),
        }
    }

    /// Adds atom `a`; returns false (nothing added) if it is numerically in the span.
    fn add<T: Real>(&mut self, pts: &Points<T>, a: usize, kmax: usize) -> bool {
        let d = pts.d;
        let s = self.sel.len();
        let mut v: Vec<f64> = pts.row(a).iter().map(|t| t.to_f64()).collect();
        let nrm0 = dot_ff(&v, &v).sqrt();
        let mut h = vec![0.0f64; s];
        // Classical Gram-Schmidt, twice ("twice is enough").
        for _ in 0..2 {
            for (ht, qt) in h.iter_mut().zip(self.q.chunks_exact(d)) {
                let c = dot_ff(qt, &v);
                *ht += c;
                for (vk, qk) in v.iter_mut().zip(qt) {
                    *vk -= c * qk;
                }
            }
        }
        let nrm = dot_ff(&v, &v).sqrt();
        if nrm.is_nan() || nrm <= 1e-12 * nrm0.max(f64::MIN_POSITIVE) {
            return false;
        }
        for vk in v.iter_mut() {
            *vk /= nrm;
        }
        for (t, ht) in h.iter().enumerate() {
            self.r[s * kmax + t] = *ht;
        }
        self.r[s * kmax + s] = nrm;
        let zs = dot_ff(&v, &self.x);
        for (rk, vk) in self.res.iter_mut().zip(&v) {
            *rk -= zs * vk;
        }
        self.q.extend_from_slice(&v);
        self.z.push(zs);
        self.sel.push(a);
        true
    }

    /// The least-squares coefficients `R^{-1} z` as `(atom, coefficient)`, sorted by atom.
    fn coefficients<T: Real>(&self, kmax: usize) -> Vec<(usize, T)> {
        let s = self.sel.len();
        let mut c = self.z.clone();
        for i in (0..s).rev() {
            let mut acc = c[i];
            for (t, ct) in c.iter().enumerate().take(s).skip(i + 1) {
                acc -= self.r[t * kmax + i] * ct;
            }
            c[i] = acc / self.r[i * kmax + i];
        }
        let mut out: Vec<(usize, T)> = self
            .sel
            .iter()
            .zip(&c)
            .filter(|p| *p.1 != 0.0)
            .map(|(&a, &v)| (a, T::from_f64(v)))
            .collect();
        out.sort_unstable_by_key(|p| p.0);
        out
    }
}

/// SSC-OMP: for every point `x_j`, orthogonal matching pursuit over the dictionary
/// `{x_i, i != j}` of unit-norm points.
///
/// Starting from `r = x_j`, up to `n_nonzero` times: select `i* = argmax |<x_i, r>|` over the
/// points not yet selected, `i != j` (ties: smallest index), refit the coefficients by least
/// squares on the support (an incrementally updated QR in f64) and update `r`. The pursuit
/// stops early when `||r|| <= tol` (absolute, the point has norm 1), when the best correlation
/// is 0, or when the selected point is numerically in the span of the support. The
/// correlations of a block of points are one GEMM per step (residuals times `X^T`, by column
/// tiles) with the argmax scan fused after each tile. The GEMM runs in f32 for both input
/// types; the winner is confirmed in f64 among all points whose f32 correlation is within
/// the rounding bound of the best, so the selection is the f64 argmax (a point whose
/// correlations all round to 0 in f32, i.e. are below ~`3e-6 ||r||`, stops).
///
/// Returns the `N x N` CSR matrix of coefficients (row `j` represents point `j`).
pub fn ssc_omp<T: Real>(
    x: MatRef<'_, T>,
    n_nonzero: usize,
    tol: f64,
    par: Par,
    progress: &dyn Progress,
) -> Result<SparseRows<T>> {
    check_count(n_nonzero, "n_nonzero")?;
    if !(tol.is_finite() && tol >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "tol must be a finite number >= 0, got {tol}"
        )));
    }
    let pts = normalize(x, par)?;
    let kmax = n_nonzero.min(pts.n - 1).min(pts.d);
    let owned: Vec<f32>;
    let x32: &[f32] = match as_f32(&pts.x) {
        Some(v) => v,
        None => {
            owned = pts.x.iter().map(|v| v.to_f64() as f32).collect();
            &owned
        }
    };
    let rows = by_blocks(pts.n, par, progress, |r0, m| {
        omp_block(&pts, x32, r0, m, kmax, tol)
    })?;
    Ok(SparseRows::from_rows(rows))
}

/// Correlations are screened in f32 (a GEMM of the f32 points with the f32-rounded
/// residuals, twice the speed of f64); every point whose f32 correlation is within twice the
/// rounding bound of the best is then rechecked with an f64 dot product, so the selected atom
/// is the f64 argmax. Rounding bound: `|fl32(<x_i, r>) - <x_i, r>| <= (D + 4) u ||r||` with
/// `u = 2^-24` (both factors rounded to f32, then a length-`D` f32 dot product).
fn omp_block<T: Real>(
    pts: &Points<T>,
    x32: &[f32],
    r0: usize,
    m: usize,
    kmax: usize,
    tol: f64,
) -> Vec<Vec<(usize, T)>> {
    let d = pts.d;
    let gam = (d as f64 + 4.0) * (2.0f64).powi(-24) * 1.25;
    let mut ps: Vec<Pursuit> = (r0..r0 + m).map(|j| Pursuit::new(pts, j, kmax)).collect();
    let mut scratch = Scratch::<f32>::new();
    let mut lhs: Vec<f32> = Vec::with_capacity(m * d);
    let mut active: Vec<usize> = Vec::with_capacity(m);
    let mut best: Vec<f32> = Vec::with_capacity(m);
    let mut margin: Vec<f64> = Vec::with_capacity(m);
    let mut cands: Vec<Vec<(u32, f32)>> = vec![Vec::new(); m];
    let mut pos: Vec<u32> = Vec::new();
    for step in 0..kmax {
        active.clear();
        active.extend((0..m).filter(|&p| !ps[p].done));
        if active.is_empty() {
            break;
        }
        lhs.clear();
        // At step 0 the residuals are the points themselves: use the stored rows directly.
        let view = if step == 0 && active.len() == m {
            MatRef::from_row_major_slice(&x32[r0 * d..(r0 + m) * d], m, d)
        } else {
            for &p in &active {
                lhs.extend(ps[p].res.iter().map(|&v| v as f32));
            }
            MatRef::from_row_major_slice(&lhs, active.len(), d)
        };
        best.clear();
        best.resize(active.len(), 0.0);
        margin.clear();
        margin.extend(
            active
                .iter()
                .map(|&p| 2.0 * gam * dot_ff(&ps[p].res, &ps[p].res).sqrt()),
        );
        for c in cands.iter_mut() {
            c.clear();
        }
        scan_raw(view, x32, pts.n, d, &mut scratch, |r, c0, vals| {
            let p = &ps[active[r]];
            let w = vals.len();
            if p.j >= c0 && p.j < c0 + w {
                vals[p.j - c0] = 0.0;
            }
            for &a in &p.sel {
                if a >= c0 && a < c0 + w {
                    vals[a - c0] = 0.0;
                }
            }
            let mx = max_abs(vals);
            let mg = margin[r];
            if mx == 0.0 || (mx as f64) < best[r] as f64 - mg {
                return;
            }
            let b = best[r].max(mx);
            best[r] = b;
            // Rounded down to f32: no candidate is lost.
            let thr = ((b as f64 - mg) * (1.0 - 1e-6)) as f32;
            pos.clear();
            above(vals, thr, &mut pos);
            let cs = &mut cands[r];
            cs.extend(
                pos.iter()
                    .map(|&q| ((c0 + q as usize) as u32, vals[q as usize].abs())),
            );
            if cs.len() > 64 {
                cs.retain(|e| e.1 as f64 >= b as f64 - mg);
            }
        });
        for (r, &p) in active.iter().enumerate() {
            let pu = &mut ps[p];
            let (b, mg) = (best[r] as f64, margin[r]);
            // The f64 argmax among the candidates (ascending index: strict > keeps the first).
            let mut pick = (0.0f64, usize::MAX);
            for &(i, v) in &cands[r] {
                if (v as f64) < b - mg {
                    continue;
                }
                let c = pts.dot(i as usize, &pu.res).abs();
                if c > pick.0 {
                    pick = (c, i as usize);
                }
            }
            if pick.1 == usize::MAX || !pu.add(pts, pick.1, kmax) {
                pu.done = true;
                continue;
            }
            if pu.sel.len() >= kmax || dot_ff(&pu.res, &pu.res).sqrt() <= tol {
                pu.done = true;
            }
        }
    }
    ps.iter().map(|p| p.coefficients(kmax)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::union;
    use super::*;
    use crate::progress::SILENT;

    #[test]
    fn subspace_preserving_and_exact() {
        let (x, lab) = union(4, 3, 12, 25, 7);
        let out = ssc_omp(x.as_ref(), 5, 1e-9, Par::Seq, &SILENT).unwrap();
        for j in 0..x.nrows() {
            let (idx, val) = out.row(j);
            assert!(!idx.is_empty() && idx.len() <= 3);
            for (&i, &v) in idx.iter().zip(val) {
                assert_ne!(i as usize, j);
                assert!(lab[i as usize] == lab[j] || v.abs() < 1e-10);
            }
        }
        let par = ssc_omp(x.as_ref(), 5, 1e-9, Par::rayon(2), &SILENT).unwrap();
        assert_eq!(out, par);
    }

    #[test]
    fn f32_runs() {
        let (x, _) = union(3, 2, 8, 10, 1);
        let xf = faer::Mat::<f32>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] as f32);
        let out = ssc_omp(xf.as_ref(), 4, 1e-5, Par::Seq, &SILENT).unwrap();
        assert_eq!(out.indptr.len(), 31);
        assert!(ssc_omp(xf.as_ref(), 0, 1e-5, Par::Seq, &SILENT).is_err());
    }

    #[test]
    fn progress_counts_blocks_in_order_and_can_stop() {
        use std::sync::Mutex;
        let (x, _) = union(3, 2, 6, 300, 5);
        let seen = Mutex::new(Vec::new());
        let hook = |d: usize, t: usize| {
            seen.lock().unwrap().push((d, t));
            true
        };
        ssc_omp(x.as_ref(), 3, 1e-9, Par::rayon(2), &hook).unwrap();
        let seen = seen.into_inner().unwrap();
        let nb = seen[0].1;
        assert!(nb >= 2, "{seen:?}");
        assert_eq!(seen, (1..=nb).map(|d| (d, nb)).collect::<Vec<_>>());
        let stop = |d: usize, _t: usize| d < 2;
        let err = ssc_omp(x.as_ref(), 3, 1e-9, Par::Seq, &stop).unwrap_err();
        assert!(matches!(err, crate::Error::Interrupted));
    }
}
