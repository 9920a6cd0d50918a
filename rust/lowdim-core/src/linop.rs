//! Linear operators consumed by the SVD kernels.
//!
//! The randomized SVD only needs products with `A` and `A^T`; expressing `A` as a [`LinOp`]
//! lets one algorithm serve dense arrays of any strides, CSR matrices, transposes (work on the
//! tall side) and implicit centring (`A - 1 mu^T` without ever forming it).
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::reborrow::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

/// A real `nrows x ncols` linear operator.
pub trait LinOp<T: Real>: Sync {
    fn nrows(&self) -> usize;
    fn ncols(&self) -> usize;
    /// `out = A x` (`out`: nrows x b, `x`: ncols x b).
    fn apply(&self, out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par);
    /// `out = A^T y` (`out`: ncols x b, `y`: nrows x b).
    fn apply_t(&self, out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par);
    /// `||A||_F^2`, accumulated in f64 in a fixed order.
    fn frob_sq(&self, par: Par) -> f64;
    /// `||A - 1 mu^T||_F^2` (columns centred by `mu`; with `rows`, `||A - mu 1^T||_F^2`), each
    /// entry centred before squaring, in f64: no cancellation, unlike the expansion
    /// `||A||^2 - 2 mu^T A^T 1 + m ||mu||^2`, which lost every digit of float32 data with a
    /// large mean. None when the operator has no direct form.
    fn centred_frob_sq(&self, _mu: &[T], _rows: bool, _par: Par) -> Option<f64> {
        None
    }
    /// `||c A||_F^2` with the scaling applied before squaring (safe for extreme magnitudes).
    fn frob_sq_scaled(&self, c: f64, par: Par) -> f64 {
        self.frob_sq(par) * c * c
    }
    /// `max |a_ij|` (NaN if any entry is NaN), or an upper bound within a factor of 2 (used
    /// only to pick a power-of-two scale).
    fn max_abs(&self, par: Par) -> f64;
    /// The dense matrix behind the operator, when there is one (enables the Gram path).
    fn as_dense(&self) -> Option<MatRef<'_, T>> {
        None
    }
    /// `(B, c)` with the operator equal to `c B`, `B` a dense matrix: the Gram path of a
    /// rescaled dense operator (see [`Scaled`]).
    fn as_scaled_dense(&self) -> Option<(MatRef<'_, T>, f64)> {
        self.as_dense().map(|a| (a, 1.0))
    }
}

/// Largest magnitude of a dense matrix (NaN when it holds a NaN or an infinity), over fixed
/// lines.
pub fn dense_max_abs<T: Real>(a: MatRef<'_, T>, par: Par) -> f64 {
    let parts = per_column(a, par, |line| {
        // eight lanes (SIMD); `x * 0` is NaN exactly for NaN and infinite x
        let (mut mx, mut chk) = ([0.0f64; 8], [0.0f64; 8]);
        let mut it = line.chunks_exact(8);
        for c in &mut it {
            for ((m, k), &v) in mx.iter_mut().zip(chk.iter_mut()).zip(c) {
                let x = v.to_f64().abs();
                *m = m.max(x);
                *k += x * 0.0;
            }
        }
        for &v in it.remainder() {
            let x = v.to_f64().abs();
            mx[0] = mx[0].max(x);
            chk[0] += x * 0.0;
        }
        if chk.iter().any(|k| k.is_nan()) {
            f64::NAN
        } else {
            mx.iter().fold(0.0f64, |a, &b| a.max(b))
        }
    });
    parts.iter().fold(0.0f64, |acc, &v| {
        if v.is_nan() || acc.is_nan() {
            f64::NAN
        } else {
            acc.max(v)
        }
    })
}

/// `c A` for a scalar `c` (a power of two, so the scaling is exact).
pub struct Scaled<'a, T: Real> {
    pub inner: &'a dyn LinOp<T>,
    pub c: f64,
}

fn scale_in_place<T: Real>(mut out: MatMut<'_, T>, c: f64) {
    let c = T::from_f64(c);
    for j in 0..out.ncols() {
        for i in 0..out.nrows() {
            out[(i, j)] *= c;
        }
    }
}

impl<T: Real> Scaled<'_, T> {
    /// `c = 2^e` as `c_in * c_out = 2^(e/2) * 2^(e - e/2)`: the operand is scaled by `c_in`
    /// before the product and the result by `c_out` after it. Scaling only the result let
    /// the product itself underflow: for subnormal data (f64 entries of 1e-320, f32 of 1e-42)
    /// each term `a_ij x_j` kept a few bits, and the singular values came out at 0.07 to 0.8
    /// of the true ones, silently (the split power iterations, sparse input, f32 input).
    /// Half the exponent on each side keeps the operand, the terms and the result in range
    /// for any finite data: `|a_ij| c_in` is about `sqrt(|a_ij| / max|a|)`.
    fn split(&self) -> (f64, f64) {
        let e = self.c.log2().round() as i32;
        let e_in = e / 2;
        (2f64.powi(e_in), 2f64.powi(e - e_in))
    }

    fn scaled_operand(x: MatRef<'_, T>, c: f64) -> Mat<T> {
        let mut xs = x.to_owned();
        scale_in_place(xs.as_mut(), c);
        xs
    }
}

impl<T: Real> LinOp<T> for Scaled<'_, T> {
    fn nrows(&self) -> usize {
        self.inner.nrows()
    }
    fn ncols(&self) -> usize {
        self.inner.ncols()
    }
    fn apply(&self, mut out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        let (c_in, c_out) = self.split();
        let xs = Self::scaled_operand(x, c_in);
        self.inner.apply(out.rb_mut(), xs.as_ref(), par);
        scale_in_place(out, c_out);
    }
    fn apply_t(&self, mut out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        let (c_in, c_out) = self.split();
        let ys = Self::scaled_operand(y, c_in);
        self.inner.apply_t(out.rb_mut(), ys.as_ref(), par);
        scale_in_place(out, c_out);
    }
    fn frob_sq(&self, par: Par) -> f64 {
        // Scaled before squaring: the inner sum may underflow or overflow.
        self.inner.frob_sq_scaled(self.c, par)
    }
    fn max_abs(&self, par: Par) -> f64 {
        self.inner.max_abs(par) * self.c
    }
    fn as_scaled_dense(&self) -> Option<(MatRef<'_, T>, f64)> {
        self.inner.as_scaled_dense().map(|(a, c)| (a, c * self.c))
    }
}

/// A dense matrix of any strides.
pub struct DenseOp<'a, T: Real> {
    pub a: MatRef<'a, T>,
}

/// `f` applied to every line of `a` (columns, or rows when those are the unit-stride
/// direction) as a contiguous slice (a strided line is copied into a small buffer first); one
/// result per line, in a fixed order, so reductions over them do not depend on the thread
/// count.
fn per_column<T: Real>(a: MatRef<'_, T>, par: Par, f: impl Fn(&[T]) -> f64 + Sync) -> Vec<f64> {
    let a = if a.row_stride().unsigned_abs() == 1 || a.ncols() == 1 {
        a
    } else {
        a.transpose()
    };
    let len = a.nrows();
    let col = |j: usize| {
        if a.row_stride() == 1 || len <= 1 {
            // SAFETY: line j of the view holds `len` values at unit stride from its start.
            f(unsafe { std::slice::from_raw_parts(a.ptr_at(0, j), len) })
        } else {
            let buf: Vec<T> = (0..len).map(|i| a[(i, j)]).collect();
            f(&buf)
        }
    };
    if crate::threads::is_parallel(par) {
        (0..a.ncols()).into_par_iter().map(col).collect()
    } else {
        (0..a.ncols()).map(col).collect()
    }
}

/// Sum of squares of a dense matrix in f64, over fixed column blocks (deterministic).
pub fn dense_frob_sq<T: Real>(a: MatRef<'_, T>, par: Par) -> f64 {
    dense_frob_sq_scaled(a, 1.0, par)
}

/// `||c A||_F^2` with each entry scaled before squaring (no copy of `A`).
pub fn dense_frob_sq_scaled<T: Real>(a: MatRef<'_, T>, c: f64, par: Par) -> f64 {
    per_column(a, par, |line| {
        let mut acc = [0.0f64; 8]; // eight lanes (SIMD), added in a fixed order
        let mut it = line.chunks_exact(8);
        for ch in &mut it {
            for (s, &v) in acc.iter_mut().zip(ch) {
                let x = v.to_f64() * c;
                *s += x * x;
            }
        }
        for &v in it.remainder() {
            let x = v.to_f64() * c;
            acc[0] += x * x;
        }
        acc.iter().sum()
    })
    .iter()
    .sum()
}

impl<T: Real> LinOp<T> for DenseOp<'_, T> {
    fn nrows(&self) -> usize {
        self.a.nrows()
    }
    fn ncols(&self) -> usize {
        self.a.ncols()
    }
    fn apply(&self, out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        matmul(out, Accum::Replace, self.a, x, T::from_f64(1.0), par);
    }
    fn apply_t(&self, out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        matmul(
            out,
            Accum::Replace,
            self.a.transpose(),
            y,
            T::from_f64(1.0),
            par,
        );
    }
    fn frob_sq(&self, par: Par) -> f64 {
        dense_frob_sq(self.a, par)
    }
    fn frob_sq_scaled(&self, c: f64, par: Par) -> f64 {
        dense_frob_sq_scaled(self.a, c, par)
    }
    fn centred_frob_sq(&self, mu: &[T], rows: bool, par: Par) -> Option<f64> {
        let a = if rows { self.a.transpose() } else { self.a };
        Some(dense_centred_frob_sq(a, mu, par))
    }
    fn max_abs(&self, par: Par) -> f64 {
        dense_max_abs(self.a, par)
    }
    fn as_dense(&self) -> Option<MatRef<'_, T>> {
        Some(self.a)
    }
}

/// `||A - 1 mu^T||_F^2` of a dense matrix in f64, each entry centred before squaring, over
/// its contiguous lines (columns or rows) in a fixed order (deterministic).
pub fn dense_centred_frob_sq<T: Real>(a: MatRef<'_, T>, mu: &[T], par: Par) -> f64 {
    let (m, n) = a.shape();
    let by_cols = a.row_stride().unsigned_abs() == 1;
    let line = |t: usize| -> f64 {
        if by_cols {
            let c = mu[t].to_f64();
            (0..m).map(|i| (a[(i, t)].to_f64() - c).powi(2)).sum()
        } else {
            (0..n)
                .map(|j| (a[(t, j)].to_f64() - mu[j].to_f64()).powi(2))
                .sum()
        }
    };
    let count = if by_cols { n } else { m };
    let parts: Vec<f64> = if crate::threads::is_parallel(par) {
        (0..count).into_par_iter().map(line).collect()
    } else {
        (0..count).map(line).collect()
    };
    parts.iter().sum()
}

/// `A^T` for an operator `A`.
pub struct Transposed<'a, T: Real>(pub &'a dyn LinOp<T>);

impl<T: Real> LinOp<T> for Transposed<'_, T> {
    fn nrows(&self) -> usize {
        self.0.ncols()
    }
    fn ncols(&self) -> usize {
        self.0.nrows()
    }
    fn apply(&self, out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        self.0.apply_t(out, x, par)
    }
    fn apply_t(&self, out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        self.0.apply(out, y, par)
    }
    fn frob_sq(&self, par: Par) -> f64 {
        self.0.frob_sq(par)
    }
    fn frob_sq_scaled(&self, c: f64, par: Par) -> f64 {
        self.0.frob_sq_scaled(c, par)
    }
    fn centred_frob_sq(&self, mu: &[T], rows: bool, par: Par) -> Option<f64> {
        self.0.centred_frob_sq(mu, !rows, par)
    }
    fn max_abs(&self, par: Par) -> f64 {
        self.0.max_abs(par)
    }
    fn as_dense(&self) -> Option<MatRef<'_, T>> {
        self.0.as_dense().map(|a| a.transpose())
    }
}

/// `A - 1 mu^T` (rows centred by `mu`), applied without forming it.
pub struct Centered<'a, T: Real> {
    pub inner: &'a dyn LinOp<T>,
    pub mu: &'a [T],
}

impl<T: Real> LinOp<T> for Centered<'_, T> {
    fn nrows(&self) -> usize {
        self.inner.nrows()
    }
    fn ncols(&self) -> usize {
        self.inner.ncols()
    }
    fn apply(&self, mut out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        self.inner.apply(out.rb_mut(), x, par);
        // out -= 1 (mu^T x)
        for j in 0..x.ncols() {
            let mut s = 0.0f64;
            for (i, m) in self.mu.iter().enumerate() {
                s += m.to_f64() * x[(i, j)].to_f64();
            }
            let s = T::from_f64(s);
            for i in 0..out.nrows() {
                out[(i, j)] -= s;
            }
        }
    }
    fn apply_t(&self, mut out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        self.inner.apply_t(out.rb_mut(), y, par);
        // out -= mu (1^T y)
        for j in 0..y.ncols() {
            let mut s = 0.0f64;
            for i in 0..y.nrows() {
                s += y[(i, j)].to_f64();
            }
            for (i, m) in self.mu.iter().enumerate() {
                out[(i, j)] -= T::from_f64(m.to_f64() * s);
            }
        }
    }
    fn frob_sq(&self, par: Par) -> f64 {
        if let Some(f) = self.inner.centred_frob_sq(self.mu, false, par) {
            return f;
        }
        // ||A - 1 mu^T||^2 = ||A||^2 - 2 mu^T A^T 1 + m ||mu||^2, with A^T 1 from one product.
        let m = self.inner.nrows();
        let ones = Mat::<T>::from_fn(m, 1, |_, _| T::from_f64(1.0));
        let mut colsum = Mat::<T>::zeros(self.inner.ncols(), 1);
        self.inner.apply_t(colsum.as_mut(), ones.as_ref(), par);
        let mut cross = 0.0f64;
        let mut musq = 0.0f64;
        for (i, mu) in self.mu.iter().enumerate() {
            cross += mu.to_f64() * colsum[(i, 0)].to_f64();
            musq += mu.to_f64() * mu.to_f64();
        }
        (self.inner.frob_sq(par) - 2.0 * cross + m as f64 * musq).max(0.0)
    }
    fn max_abs(&self, par: Par) -> f64 {
        let mu = self.mu.iter().fold(0.0f64, |a, v| a.max(v.to_f64().abs()));
        self.inner.max_abs(par) + mu
    }
}

/// `A - U diag(s) V^T`, applied without forming it (for a-posteriori error estimates).
pub struct Residual<'a, T: Real> {
    pub inner: &'a dyn LinOp<T>,
    pub u: MatRef<'a, T>,
    pub s: &'a [T],
    pub v: MatRef<'a, T>,
}

impl<T: Real> Residual<'_, T> {
    fn low_rank(
        &self,
        mut out: MatMut<'_, T>,
        left: MatRef<'_, T>,
        right: MatRef<'_, T>,
        x: MatRef<'_, T>,
        par: Par,
    ) {
        // out -= left diag(s) (right^T x)
        let mut t = Mat::<T>::zeros(right.ncols(), x.ncols());
        matmul(
            t.as_mut(),
            Accum::Replace,
            right.transpose(),
            x,
            T::from_f64(1.0),
            par,
        );
        for i in 0..t.nrows() {
            for j in 0..t.ncols() {
                t[(i, j)] *= self.s[i];
            }
        }
        matmul(
            out.rb_mut(),
            Accum::Add,
            left,
            t.as_ref(),
            T::from_f64(-1.0),
            par,
        );
    }
}

impl<T: Real> LinOp<T> for Residual<'_, T> {
    fn nrows(&self) -> usize {
        self.inner.nrows()
    }
    fn ncols(&self) -> usize {
        self.inner.ncols()
    }
    fn apply(&self, mut out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        self.inner.apply(out.rb_mut(), x, par);
        self.low_rank(out, self.u, self.v, x, par);
    }
    fn apply_t(&self, mut out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        self.inner.apply_t(out.rb_mut(), y, par);
        self.low_rank(out, self.v, self.u, y, par);
    }
    fn frob_sq(&self, _par: Par) -> f64 {
        f64::NAN
    }
    fn max_abs(&self, _par: Par) -> f64 {
        f64::NAN
    }
}
