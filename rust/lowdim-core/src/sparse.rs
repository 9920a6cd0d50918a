//! Compressed sparse row (CSR) matrices: borrowed views, validation, transpose, and the
//! CSR x dense-block kernels of the randomized SVD (parallel over rows, generic over f32/f64
//! and over 32/64-bit indices).
use crate::error::{invalid, Error, Result};
use crate::linop::LinOp;
use crate::scalar::Real;
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

/// An index type of a CSR matrix (scipy uses int32 or int64).
pub trait SpIndex: Copy + Send + Sync + 'static {
    fn to_usize(self) -> Option<usize>;
    fn from_usize(x: usize) -> Self;
}

impl SpIndex for i32 {
    #[inline(always)]
    fn to_usize(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
    #[inline(always)]
    fn from_usize(x: usize) -> Self {
        x as i32
    }
}

impl SpIndex for i64 {
    #[inline(always)]
    fn to_usize(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
    #[inline(always)]
    fn from_usize(x: usize) -> Self {
        x as i64
    }
}

/// A borrowed CSR matrix. Build it with [`CsrRef::new`], which validates the structure.
/// Column indices need not be sorted, but no entry may be stored twice: the norms of
/// [`CsrOp`] square each stored value (scipy's lazily unsummed duplicates must be summed
/// first, as the Python layer does).
#[derive(Clone, Copy)]
pub struct CsrRef<'a, T, I> {
    nrows: usize,
    ncols: usize,
    indptr: &'a [I],
    indices: &'a [I],
    data: &'a [T],
}

/// An owned CSR matrix (used for the transpose).
pub struct Csr<T, I> {
    pub nrows: usize,
    pub ncols: usize,
    pub indptr: Vec<I>,
    pub indices: Vec<I>,
    pub data: Vec<T>,
}

impl<T, I> Csr<T, I> {
    pub fn as_ref(&self) -> CsrRef<'_, T, I> {
        CsrRef {
            nrows: self.nrows,
            ncols: self.ncols,
            indptr: &self.indptr,
            indices: &self.indices,
            data: &self.data,
        }
    }
}

impl<'a, T: Real, I: SpIndex> CsrRef<'a, T, I> {
    /// Checks the CSR invariants (so later kernels cannot index out of bounds) and that every
    /// stored value is finite. O(nnz).
    pub fn new(
        nrows: usize,
        ncols: usize,
        indptr: &'a [I],
        indices: &'a [I],
        data: &'a [T],
    ) -> Result<Self> {
        if indptr.len() != nrows + 1 {
            return invalid(format!(
                "CSR indptr has length {} but the matrix has {} rows (expected {})",
                indptr.len(),
                nrows,
                nrows + 1
            ));
        }
        if indices.len() != data.len() {
            return invalid("CSR indices and data have different lengths");
        }
        let mut prev = 0usize;
        for (r, p) in indptr.iter().enumerate() {
            let p = p.to_usize().ok_or_else(|| {
                Error::InvalidArgument("CSR indptr holds a negative offset".into())
            })?;
            if (r == 0 && p != 0) || p < prev || p > data.len() {
                return invalid("CSR indptr is not a nondecreasing sequence from 0 to nnz");
            }
            prev = p;
        }
        if prev != data.len() {
            return invalid("CSR indptr does not end at nnz");
        }
        if indices
            .iter()
            .any(|&j| j.to_usize().is_none_or(|j| j >= ncols))
        {
            return invalid(format!("CSR column index out of range [0, {ncols})"));
        }
        if data.iter().any(|v| !v.to_f64().is_finite()) {
            return Err(Error::NonFinite(
                "the sparse matrix holds NaN or infinity; remove or impute them first".into(),
            ));
        }
        Ok(Self {
            nrows,
            ncols,
            indptr,
            indices,
            data,
        })
    }

    pub fn nrows(&self) -> usize {
        self.nrows
    }
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    #[inline(always)]
    fn row(&self, i: usize) -> (&'a [I], &'a [T]) {
        // Validated in `new`: offsets are in range and nondecreasing.
        let a = self.indptr[i].to_usize().unwrap_or(0);
        let b = self.indptr[i + 1].to_usize().unwrap_or(0);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// The transpose as an owned CSR matrix (a counting sort, O(nnz + ncols)).
    pub fn transpose(&self) -> Csr<T, I> {
        let (m, n) = (self.nrows, self.ncols);
        let mut counts = vec![0usize; n + 1];
        for &j in self.indices {
            counts[j.to_usize().unwrap_or(0) + 1] += 1;
        }
        for j in 0..n {
            counts[j + 1] += counts[j];
        }
        let nnz = self.nnz();
        let mut indices = vec![I::from_usize(0); nnz];
        let mut data = vec![T::from_f64(0.0); nnz];
        let mut next = counts.clone();
        for i in 0..m {
            let (cols, vals) = self.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                let j = j.to_usize().unwrap_or(0);
                let dst = next[j];
                next[j] += 1;
                indices[dst] = I::from_usize(i);
                data[dst] = v;
            }
        }
        Csr {
            nrows: n,
            ncols: m,
            indptr: counts.into_iter().map(I::from_usize).collect(),
            indices,
            data,
        }
    }
}

/// Rows per parallel task in the CSR kernels.
const ROW_CHUNK: usize = 256;
/// Largest size in bytes of one column panel of the dense operand (kept in the last-level
/// cache while every nonzero gathers its row of the panel).
const PANEL_BYTES: usize = 8 << 20;

/// One row panel of `out = A x`: rows `r0..` of `A` against a row-major panel `xr` (n x W),
/// written to the row-major `chunk` (rows x W). Fixed `W` lets the compiler keep the
/// accumulators in vector registers; two nonzeros are accumulated in independent registers
/// to halve the dependency chain. Runs under pulp's run-time dispatch (AVX2+FMA or AVX-512).
struct PanelKernel<'a, T, I, const W: usize> {
    a: CsrRef<'a, T, I>,
    xr: &'a [T],
    r0: usize,
    chunk: &'a mut [T],
}

impl<T: Real, I: SpIndex, const W: usize> pulp::WithSimd for PanelKernel<'_, T, I, W> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let zero = T::from_f64(0.0);
        let xrow = |j: I| -> &[T; W] {
            let j = j.to_usize().unwrap_or(0);
            self.xr[j * W..j * W + W]
                .try_into()
                .expect("panel row has W entries")
        };
        for (r, out) in self.chunk.chunks_exact_mut(W).enumerate() {
            let (cols, vals) = self.a.row(self.r0 + r);
            let mut acc0 = [zero; W];
            let mut acc1 = [zero; W];
            let mut pairs_c = cols.chunks_exact(2);
            let mut pairs_v = vals.chunks_exact(2);
            for (c, v) in (&mut pairs_c).zip(&mut pairs_v) {
                let (x0, x1) = (xrow(c[0]), xrow(c[1]));
                for w in 0..W {
                    acc0[w] = v[0].mul_add_(x0[w], acc0[w]);
                    acc1[w] = v[1].mul_add_(x1[w], acc1[w]);
                }
            }
            if let (Some(&c), Some(&v)) = (pairs_c.remainder().first(), pairs_v.remainder().first())
            {
                let x0 = xrow(c);
                for w in 0..W {
                    acc0[w] = v.mul_add_(x0[w], acc0[w]);
                }
            }
            for w in 0..W {
                out[w] = acc0[w] + acc1[w];
            }
        }
    }
}

/// `out = A x` for CSR `A` (m x n), dense `x` (n x b), dense `out` (m x b), any strides.
///
/// The dense operand is processed in column panels of a fixed width W (8 to 64, as wide as
/// fits [`PANEL_BYTES`]), each copied once into a zero-padded row-major buffer; every output
/// row is owned by one task, so the result does not depend on the thread count.
pub fn csr_matmul<T: Real, I: SpIndex>(
    a: CsrRef<'_, T, I>,
    x: MatRef<'_, T>,
    out: MatMut<'_, T>,
    par: Par,
) {
    let (n, b) = (a.ncols(), x.ncols());
    let fits = |w: usize| n.max(1) * w * std::mem::size_of::<T>() <= PANEL_BYTES;
    let want = b.next_power_of_two();
    if want >= 64 && fits(64) {
        csr_matmul_w::<T, I, 64>(a, x, out, par)
    } else if want >= 32 && fits(32) {
        csr_matmul_w::<T, I, 32>(a, x, out, par)
    } else if want >= 16 && fits(16) {
        csr_matmul_w::<T, I, 16>(a, x, out, par)
    } else {
        csr_matmul_w::<T, I, 8>(a, x, out, par)
    }
}

fn csr_matmul_w<T: Real, I: SpIndex, const W: usize>(
    a: CsrRef<'_, T, I>,
    x: MatRef<'_, T>,
    mut out: MatMut<'_, T>,
    par: Par,
) {
    let (m, n, b) = (a.nrows(), a.ncols(), x.ncols());
    assert!(x.nrows() == n && out.nrows() == m && out.ncols() == b);
    if b == 0 || m == 0 {
        return;
    }
    let zero = T::from_f64(0.0);
    let mut xr = vec![zero; n * W];
    let parallel = crate::threads::is_parallel(par);
    let mut c0 = 0;
    while c0 < b {
        let wc = W.min(b - c0);
        // Pack the panel (row-major, zero-padded to W columns).
        let pack = |(bi, rows): (usize, &mut [T])| {
            for (r, row) in rows.chunks_exact_mut(W).enumerate() {
                let j = bi * ROW_CHUNK + r;
                for (c, v) in row.iter_mut().enumerate() {
                    *v = if c < wc { x[(j, c0 + c)] } else { zero };
                }
            }
        };
        if parallel {
            xr.par_chunks_mut(ROW_CHUNK * W).enumerate().for_each(pack);
        } else {
            xr.chunks_mut(ROW_CHUNK * W).enumerate().for_each(pack);
        }
        // Multiply one chunk of rows and write it straight into `out`.
        let xr_ref: &[T] = &xr;
        let task = |(ci, mut orows): (usize, MatMut<'_, T>)| {
            let rows = orows.nrows();
            let mut chunk = vec![zero; rows * W];
            pulp::Arch::new().dispatch(PanelKernel::<T, I, W> {
                a,
                xr: xr_ref,
                r0: ci * ROW_CHUNK,
                chunk: &mut chunk,
            });
            for c in 0..wc {
                let mut col = orows.rb_mut().col_mut(c);
                for r in 0..rows {
                    col[r] = chunk[r * W + c];
                }
            }
        };
        let mut panel = out.rb_mut().subcols_mut(c0, wc);
        if parallel {
            panel
                .par_row_chunks_mut(ROW_CHUNK)
                .enumerate()
                .for_each(task);
        } else {
            let mut r0 = 0;
            while r0 < m {
                let h = ROW_CHUNK.min(m - r0);
                task((r0 / ROW_CHUNK, panel.rb_mut().subrows_mut(r0, h)));
                r0 += h;
            }
        }
        c0 += wc;
    }
}

/// A CSR matrix as a linear operator; `A^T` products use a CSR copy of the transpose, built
/// once (the sparse matrix is never densified).
pub struct CsrOp<'a, T, I> {
    pub a: CsrRef<'a, T, I>,
    pub at: Csr<T, I>,
}

impl<'a, T: Real, I: SpIndex> CsrOp<'a, T, I> {
    pub fn new(a: CsrRef<'a, T, I>) -> Self {
        let at = a.transpose();
        Self { a, at }
    }
}

impl<T: Real, I: SpIndex> LinOp<T> for CsrOp<'_, T, I> {
    fn nrows(&self) -> usize {
        self.a.nrows()
    }
    fn ncols(&self) -> usize {
        self.a.ncols()
    }
    fn apply(&self, out: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
        csr_matmul(self.a, x, out, par)
    }
    fn apply_t(&self, out: MatMut<'_, T>, y: MatRef<'_, T>, par: Par) {
        csr_matmul(self.at.as_ref(), y, out, par)
    }
    fn frob_sq(&self, _par: Par) -> f64 {
        self.a.data.iter().map(|v| v.to_f64() * v.to_f64()).sum()
    }
    fn frob_sq_scaled(&self, c: f64, _par: Par) -> f64 {
        self.a
            .data
            .iter()
            .map(|v| (v.to_f64() * c) * (v.to_f64() * c))
            .sum()
    }
    fn centred_frob_sq(&self, mu: &[T], rows: bool, _par: Par) -> Option<f64> {
        // stored entries centred before squaring, plus mu^2 for each implicit zero (the
        // entries are canonical: the bindings' caller sums duplicates)
        let (m, n) = (self.a.nrows(), self.a.ncols());
        let mut total = 0.0f64;
        for i in 0..m {
            let (cols, vals) = self.a.row(i);
            if rows {
                let c = mu[i].to_f64();
                total += vals.iter().map(|v| (v.to_f64() - c).powi(2)).sum::<f64>();
                total += (n - vals.len()) as f64 * c * c;
            } else {
                for (j, v) in cols.iter().zip(vals) {
                    let c = mu[j.to_usize().unwrap_or(0)].to_f64();
                    total += (v.to_f64() - c).powi(2);
                }
            }
        }
        if !rows {
            let at = self.at.as_ref();
            for (j, c) in mu.iter().enumerate() {
                let stored = at.row(j).1.len();
                total += (m - stored) as f64 * c.to_f64() * c.to_f64();
            }
        }
        Some(total)
    }
    fn max_abs(&self, _par: Par) -> f64 {
        self.a
            .data
            .iter()
            .fold(0.0f64, |a, v| a.max(v.to_f64().abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    fn example() -> (Vec<i64>, Vec<i64>, Vec<f64>) {
        // [[1, 0, 2], [0, 0, 0], [0, 3, 4], [5, 0, 0]]
        (
            vec![0, 2, 2, 4, 5],
            vec![0, 2, 1, 2, 0],
            vec![1., 2., 3., 4., 5.],
        )
    }

    #[test]
    fn centred_norms_match_the_dense_ones() {
        use crate::linop::{Centered, DenseOp, Transposed};
        let (p, i, d) = example();
        let a = CsrRef::new(4, 3, &p, &i, &d).unwrap();
        let dense = Mat::<f64>::from_fn(4, 3, |r, c| {
            [[1., 0., 2.], [0., 0., 0.], [0., 3., 4.], [5., 0., 0.]][r][c]
        });
        let want = |mu: &[f64], rows: bool| -> f64 {
            let mut t = 0.0;
            for r in 0..4 {
                for c in 0..3 {
                    let m = if rows { mu[r] } else { mu[c] };
                    t += (dense[(r, c)] - m).powi(2);
                }
            }
            t
        };
        let op = CsrOp::new(a);
        let dop = DenseOp { a: dense.as_ref() };
        let (mc, mr) = ([1000.5, -2.0, 7.25], [3.0, -1.5, 1e3, 0.0]);
        for (o, name) in [(&op as &dyn LinOp<f64>, "csr"), (&dop, "dense")] {
            let got = o.centred_frob_sq(&mc, false, Par::Seq).unwrap();
            assert!((got - want(&mc, false)).abs() < 1e-9, "{name} cols");
            let got = o.centred_frob_sq(&mr, true, Par::Seq).unwrap();
            assert!((got - want(&mr, true)).abs() < 1e-9, "{name} rows");
            let t = Transposed(o);
            let got = t.centred_frob_sq(&mr, false, Par::Seq).unwrap();
            assert!((got - want(&mr, true)).abs() < 1e-9, "{name} transposed");
        }
        // float32 data with a large mean: the expansion ||A||^2 - 2 mu^T A^T 1 + m ||mu||^2
        // took A^T 1 in float32 and lost every digit of the centred norm
        let m = 4000;
        let vals: Vec<f32> = (0..m)
            .map(|r| 1000.0 + ((r * 7919) % 13) as f32 * 0.1)
            .collect();
        let ptr: Vec<i64> = (0..=m as i64).collect();
        let idx = vec![0i64; m];
        let a32 = CsrRef::new(m, 1, &ptr, &idx, &vals).unwrap();
        let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let exact: f64 = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
        let op32 = CsrOp::new(a32);
        let mu = [mean as f32];
        let c = Centered {
            inner: &op32,
            mu: &mu,
        };
        let got = c.frob_sq(Par::Seq);
        assert!((got - exact).abs() < 1e-3 * exact, "{got} vs {exact}");
    }

    #[test]
    fn matmul_and_transpose_match_dense() {
        let (p, i, d) = example();
        let a = CsrRef::new(4, 3, &p, &i, &d).unwrap();
        let dense = Mat::<f64>::from_fn(4, 3, |r, c| {
            [[1., 0., 2.], [0., 0., 0.], [0., 3., 4.], [5., 0., 0.]][r][c]
        });
        let x = Mat::<f64>::from_fn(3, 70, |r, c| (r * 7 + c) as f64 * 0.1);
        let mut y = Mat::<f64>::zeros(4, 70);
        csr_matmul(a, x.as_ref(), y.as_mut(), Par::rayon(2));
        let expect = &dense * &x;
        assert!((&y - &expect).norm_max() < 1e-12);
        let at = a.transpose();
        let z = Mat::<f64>::from_fn(4, 5, |r, c| (r + 2 * c) as f64);
        let mut w = Mat::<f64>::zeros(3, 5);
        csr_matmul(at.as_ref(), z.as_ref(), w.as_mut(), Par::Seq);
        assert!((&w - dense.transpose() * &z).norm_max() < 1e-12);
    }

    #[test]
    fn validation_rejects_bad_structure() {
        let (p, i, d) = example();
        assert!(CsrRef::new(3, 3, &p, &i, &d).is_err());
        let bad_idx = vec![0i64, 2, 7, 1, 0];
        assert!(CsrRef::new(4, 3, &p, &bad_idx, &d).is_err());
        let bad_ptr = vec![0i64, 3, 2, 4, 5];
        assert!(CsrRef::new(4, 3, &bad_ptr, &i, &d).is_err());
        let nan = vec![1., f64::NAN, 3., 4., 5.];
        assert!(matches!(
            CsrRef::new(4, 3, &p, &i, &nan),
            Err(Error::NonFinite(_))
        ));
    }
}
