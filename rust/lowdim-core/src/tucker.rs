//! Tucker decomposition: truncated HOSVD, sequentially truncated HOSVD (ST-HOSVD) and HOOI,
//! on N-d tensors of any strides, without unfolding copies.
//!
//! Building blocks:
//! * [`gram`]: the mode-n Gram matrix `X_(n) X_(n)^T`, accumulated in f64 (so float32 input
//!   keeps the accuracy of float64 Gram matrices, about `1e-8 sigma_1` for singular values).
//! * [`ttm`]: the n-mode product `X x_n M` into a new C-ordered tensor.
//!
//! Both walk the columns of the mode-n unfolding in chunks ordered by the memory layout
//! (largest stride first). A chunk whose columns are evenly spaced in memory is handed to
//! faer's GEMM as a strided view; any other chunk (many small slabs, odd strides, float32
//! for the Gram) is packed into a small buffer first. So mode 0 of a C-ordered tensor is one
//! GEMM/SYRK per chunk on the tensor itself, middle modes a batch of GEMMs on contiguous
//! slabs, and no step ever copies the whole tensor. Chunks are fixed by the problem size,
//! and partial Gram matrices are summed in a fixed order, so results do not depend on the
//! number of threads.
//!
//! Per mode the leading subspace comes from one of three solvers ([`ModeSvd`]): Gram + eigh
//! (default), a chunked TSQR of `X_(n)^T` followed by an SVD of `R` (the LQ path, which does
//! not square the condition number: used automatically when the error tolerance is below
//! ~`sqrt(eps)`), or a randomized range finder with power iterations (R-STHOSVD, used
//! automatically for fixed ranks when the unfolding is wide and the rank small).
//!
//! ST-HOSVD error identity (Vannieuwenhoven, Vandebril & Meerbergen 2012): the squared error
//! equals the sum over the processed modes of the eigenvalues discarded at each step. The
//! tolerance mode spends the budget `tol^2 ||X||^2` with carry-over, which makes
//! `||X - X_hat||_F <= tol ||X||_F` hold by that identity.
use crate::error::{invalid, Error, Result};
use crate::progress::{report, Progress, SILENT};
use crate::rng::gaussian;
use crate::scalar::Real;
use faer::linalg::matmul::{matmul, triangular};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;
use std::marker::PhantomData;

// ---------------------------------------------------------------------------------------------
// Tensors

/// A read-only view of an N-d tensor: a pointer to element `(0, ..., 0)`, the shape, and the
/// strides in elements (any sign, zero allowed).
#[derive(Clone, Debug)]
pub struct TensorRef<'a, T> {
    ptr: *const T,
    shape: Vec<usize>,
    strides: Vec<isize>,
    _m: PhantomData<&'a T>,
}

// SAFETY: a TensorRef is a shared borrow of `T`s.
unsafe impl<T: Sync> Send for TensorRef<'_, T> {}
unsafe impl<T: Sync> Sync for TensorRef<'_, T> {}

impl<'a, T: Real> TensorRef<'a, T> {
    /// A view of foreign memory.
    ///
    /// # Safety
    /// For every index within `shape`, `ptr + sum(index[k] * strides[k])` must point to a
    /// valid, initialized `T` that stays alive and unmodified for `'a`.
    pub unsafe fn from_raw_parts(
        ptr: *const T,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Self> {
        if shape.len() != strides.len() {
            return invalid("shape and strides must have the same length");
        }
        Ok(Self {
            ptr,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            _m: PhantomData,
        })
    }

    /// A C-ordered view of `data`.
    pub fn from_slice(data: &'a [T], shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return invalid(format!(
                "shape {shape:?} does not match {} elements",
                data.len()
            ));
        }
        Ok(Self {
            ptr: data.as_ptr(),
            shape: shape.to_vec(),
            strides: c_strides(shape),
            _m: PhantomData,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at a multi-index (bounds-checked).
    pub fn get(&self, idx: &[usize]) -> T {
        assert_eq!(idx.len(), self.ndim());
        let mut off = 0isize;
        for ((&i, &n), &st) in idx.iter().zip(&self.shape).zip(&self.strides) {
            assert!(i < n);
            off += i as isize * st;
        }
        // SAFETY: the index is in bounds, so the constructor's contract covers it.
        unsafe { *self.ptr.offset(off) }
    }
}

/// C-order (row-major) strides of a shape, in elements.
pub fn c_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1] as isize;
    }
    s
}

/// An owned C-ordered tensor.
#[derive(Clone, Debug)]
pub struct Tensor<T> {
    pub data: Vec<T>,
    pub shape: Vec<usize>,
}

impl<T: Real> Tensor<T> {
    pub fn view(&self) -> TensorRef<'_, T> {
        TensorRef::from_slice(&self.data, &self.shape).expect("an owned tensor is consistent")
    }

    /// `||X||_F^2` in f64.
    pub fn frob_sq(&self) -> f64 {
        self.data.iter().map(|v| v.to_f64() * v.to_f64()).sum()
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole Send wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: only used to write disjoint parts of one buffer from several threads.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

// ---------------------------------------------------------------------------------------------
// Columns of a mode-n unfolding

/// The columns of `X_(n)`: the other axes in the order they are walked (largest input stride
/// first, so reads follow memory), with their strides in the input, in an optional output,
/// and in the logical column index (C order over the other axes, used for sketch rows).
struct Cols {
    dims: Vec<usize>,
    s_in: Vec<isize>,
    s_out: Vec<isize>,
    s_log: Vec<isize>,
    ncols: usize,
    /// Extent of the trailing run of axes that collapses to one stride (input and output).
    run: usize,
    has_out: bool,
}

impl Cols {
    fn new(shape: &[usize], s_in: &[isize], s_out: Option<&[isize]>, n: usize) -> Self {
        let others: Vec<usize> = (0..shape.len()).filter(|&k| k != n).collect();
        let mut s_log_all = vec![0isize; shape.len()];
        let mut acc = 1isize;
        for &k in others.iter().rev() {
            s_log_all[k] = acc;
            acc *= shape[k] as isize;
        }
        let mut axes: Vec<usize> = others.into_iter().filter(|&k| shape[k] != 1).collect();
        axes.sort_by_key(|&k| std::cmp::Reverse(s_in[k].unsigned_abs()));
        let dims: Vec<usize> = axes.iter().map(|&k| shape[k]).collect();
        let si: Vec<isize> = axes.iter().map(|&k| s_in[k]).collect();
        let so: Vec<isize> = s_out.map_or_else(Vec::new, |s| axes.iter().map(|&k| s[k]).collect());
        let sl: Vec<isize> = axes.iter().map(|&k| s_log_all[k]).collect();
        let ncols = dims.iter().product::<usize>();
        let mut run = 1usize;
        if let Some(&last) = dims.last() {
            run = last;
            for k in (0..dims.len() - 1).rev() {
                let ok_in = si[k] == si[k + 1] * dims[k + 1] as isize;
                let ok_out = so.is_empty() || so[k] == so[k + 1] * dims[k + 1] as isize;
                if !(ok_in && ok_out) {
                    break;
                }
                run *= dims[k];
            }
        }
        Self {
            dims,
            s_in: si,
            s_out: so,
            s_log: sl,
            ncols,
            run,
            has_out: s_out.is_some(),
        }
    }

    /// Column ranges `(start, len)`: within one collapsible run when runs are long (at least
    /// 128 columns, so each chunk is a strided view), else several whole runs (packed).
    /// `rows` sizes the chunks to about 2^19 elements.
    fn chunks(&self, rows: usize) -> Vec<(usize, usize)> {
        let target = ((1usize << 19) / rows.max(1)).max(64);
        let mut out = Vec::new();
        if self.ncols == 0 {
            return out;
        }
        let c = self.run;
        if c >= target.min(128) {
            let pieces = c.div_ceil(target);
            for slab in 0..self.ncols / c {
                for p in 0..pieces {
                    let a = p * c / pieces;
                    let b = (p + 1) * c / pieces;
                    out.push((slab * c + a, b - a));
                }
            }
        } else {
            let step = (target / c).max(1) * c;
            let mut j = 0;
            while j < self.ncols {
                let len = step.min(self.ncols - j);
                out.push((j, len));
                j += len;
            }
        }
        out
    }

    /// Input offsets, output offsets (if any) and logical indices of columns `j0..j0 + len`.
    fn offsets(
        &self,
        j0: usize,
        len: usize,
        oi: &mut Vec<isize>,
        oo: &mut Vec<isize>,
        ol: &mut Vec<isize>,
    ) {
        oi.clear();
        oo.clear();
        ol.clear();
        let nd = self.dims.len();
        let mut idx = vec![0usize; nd];
        let mut r = j0;
        for k in (0..nd).rev() {
            idx[k] = r % self.dims[k];
            r /= self.dims[k];
        }
        let has_out = self.has_out;
        let mut a: isize = (0..nd).map(|k| idx[k] as isize * self.s_in[k]).sum();
        let mut b: isize = if has_out {
            (0..nd).map(|k| idx[k] as isize * self.s_out[k]).sum()
        } else {
            0
        };
        let mut l: isize = (0..nd).map(|k| idx[k] as isize * self.s_log[k]).sum();
        for _ in 0..len {
            oi.push(a);
            if has_out {
                oo.push(b);
            }
            ol.push(l);
            // increment the multi-index (last axis fastest)
            let mut k = nd;
            while k > 0 {
                k -= 1;
                idx[k] += 1;
                a += self.s_in[k];
                if has_out {
                    b += self.s_out[k];
                }
                l += self.s_log[k];
                if idx[k] < self.dims[k] {
                    break;
                }
                a -= self.s_in[k] * self.dims[k] as isize;
                if has_out {
                    b -= self.s_out[k] * self.dims[k] as isize;
                }
                l -= self.s_log[k] * self.dims[k] as isize;
                idx[k] = 0;
            }
        }
    }
}

/// The common spacing of `off` when it is an arithmetic progression.
fn spacing(off: &[isize]) -> Option<isize> {
    if off.len() < 2 {
        return Some(1);
    }
    let d = off[1] - off[0];
    off.windows(2).all(|w| w[1] - w[0] == d).then_some(d)
}

/// Copies the `rows x off.len()` block at `base` (row stride `rs`, column offsets `off`)
/// into `buf` (row-major) converting with `conv`.
///
/// # Safety
/// Every `base + i * rs + off[j]` must be a valid element.
unsafe fn pack<T: Copy, U>(
    base: *const T,
    rows: usize,
    rs: isize,
    off: &[isize],
    buf: &mut Vec<U>,
    conv: impl Fn(T) -> U,
) {
    let len = off.len();
    buf.clear();
    buf.reserve(rows * len);
    for i in 0..rows {
        let p = base.offset(i as isize * rs);
        buf.extend(off.iter().map(|&o| conv(*p.offset(o))));
    }
}

/// Number of partial accumulators: fixed by the problem (not the thread count), capped so
/// that they take at most ~64 MiB.
fn n_groups(nchunks: usize, elems_per_acc: usize) -> usize {
    let cap = ((8usize << 20) / elems_per_acc.max(1)).max(1);
    nchunks.clamp(1, 16).min(cap)
}

/// Splits `0..n` into `g` contiguous, nearly equal ranges.
fn split(n: usize, g: usize) -> Vec<(usize, usize)> {
    (0..g).map(|i| (i * n / g, (i + 1) * n / g)).collect()
}

// ---------------------------------------------------------------------------------------------
// Kernels: Gram and n-mode product

fn check_mode<T: Real>(x: &TensorRef<'_, T>, n: usize) -> Result<()> {
    if n >= x.ndim() {
        return invalid(format!(
            "mode {n} is out of range for a {}-d tensor",
            x.ndim()
        ));
    }
    if x.shape.contains(&0) {
        return invalid(format!("the tensor is empty (shape {:?})", x.shape));
    }
    Ok(())
}

/// The mode-`n` Gram matrix `X_(n) X_(n)^T` in f64 (lower triangle filled; the upper one is
/// mirrored), accumulated over fixed chunks in a fixed order.
pub fn gram<T: Real>(x: &TensorRef<'_, T>, n: usize, par: Par) -> Result<Mat<f64>> {
    use triangular::BlockStructure::{Rectangular, TriangularLower};
    check_mode(x, n)?;
    let rows = x.shape[n];
    let rs = x.strides[n];
    let cols = Cols::new(&x.shape, &x.strides, None, n);
    let chunks = cols.chunks(rows);
    let groups = split(chunks.len(), n_groups(chunks.len(), rows * rows));
    let inner = if groups.len() == 1 { par } else { Par::Seq };
    let work = |&(c0, c1): &(usize, usize)| -> Mat<f64> {
        let mut g = Mat::<f64>::zeros(rows, rows);
        let (mut oi, mut oo, mut ol) = (Vec::new(), Vec::new(), Vec::new());
        let mut buf: Vec<f64> = Vec::new();
        for &(j0, len) in &chunks[c0..c1] {
            cols.offsets(j0, len, &mut oi, &mut oo, &mut ol);
            // SAFETY: offsets come from the view's own shape and strides.
            let a: MatRef<'_, f64> = unsafe {
                match spacing(&oi) {
                    Some(d) if T::IS_F64 => {
                        MatRef::from_raw_parts(x.ptr.offset(oi[0]) as *const f64, rows, len, rs, d)
                    }
                    _ => {
                        pack(x.ptr, rows, rs, &oi, &mut buf, |v: T| v.to_f64());
                        MatRef::from_raw_parts(buf.as_ptr(), rows, len, len as isize, 1)
                    }
                }
            };
            triangular::matmul(
                g.as_mut(),
                TriangularLower,
                Accum::Add,
                a,
                Rectangular,
                a.transpose(),
                Rectangular,
                1.0,
                inner,
            );
        }
        g
    };
    let parts: Vec<Mat<f64>> = if groups.len() > 1 && crate::threads::is_parallel(par) {
        groups.par_iter().map(work).collect()
    } else {
        groups.iter().map(work).collect()
    };
    let mut it = parts.into_iter();
    let mut g = it.next().unwrap_or_else(|| Mat::zeros(rows, rows));
    for p in it {
        g += p;
    }
    for j in 0..rows {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    Ok(g)
}

/// The n-mode product `Y = X x_n M` (`Y_(n) = M X_(n)`, `M`: J x I_n) as a new C-ordered
/// tensor whose mode `n` has size J.
pub fn ttm<T: Real>(
    x: &TensorRef<'_, T>,
    n: usize,
    m: MatRef<'_, T>,
    par: Par,
) -> Result<Tensor<T>> {
    let shape = ttm_shape(x, n, m)?;
    let mut data = vec![T::from_f64(0.0); shape.iter().product()];
    ttm_into(x, n, m, &mut data, par)?;
    Ok(Tensor { data, shape })
}

/// The shape of `X x_n M`, after checking the arguments.
pub fn ttm_shape<T: Real>(x: &TensorRef<'_, T>, n: usize, m: MatRef<'_, T>) -> Result<Vec<usize>> {
    check_mode(x, n)?;
    let rows = x.shape[n];
    if m.ncols() != rows {
        return invalid(format!(
            "the matrix has {} columns but mode {n} of the tensor has size {rows}",
            m.ncols()
        ));
    }
    let mut shape = x.shape.clone();
    shape[n] = m.nrows();
    Ok(shape)
}

/// [`ttm`] into a caller's C-ordered buffer (e.g. one allocated by NumPy, which asks the
/// kernel for huge pages: first-touch page faults otherwise dominate large reconstructions).
pub fn ttm_into<T: Real>(
    x: &TensorRef<'_, T>,
    n: usize,
    m: MatRef<'_, T>,
    data: &mut [T],
    par: Par,
) -> Result<()> {
    let shape = ttm_shape(x, n, m)?;
    let rows = x.shape[n];
    let jn = m.nrows();
    let so = c_strides(&shape);
    let total: usize = shape.iter().product();
    if data.len() != total {
        return invalid(format!(
            "the output has {} elements, {total} needed",
            data.len()
        ));
    }
    if total == 0 {
        return Ok(());
    }
    let cols = Cols::new(&x.shape, &x.strides, Some(&so), n);
    let chunks = cols.chunks(rows.max(jn));
    let (rs, os) = (x.strides[n], so[n]);
    let out = SendPtr(data.as_mut_ptr());
    let work = |&(j0, len): &(usize, usize), inner: Par| {
        let (mut oi, mut oo, mut ol) = (Vec::new(), Vec::new(), Vec::new());
        let mut buf: Vec<T> = Vec::new();
        cols.offsets(j0, len, &mut oi, &mut oo, &mut ol);
        // SAFETY: input offsets come from the view; output offsets address disjoint columns
        // of `data` (chunks do not overlap), which outlives this closure.
        unsafe {
            let a: MatRef<'_, T> = match spacing(&oi) {
                Some(d) => MatRef::from_raw_parts(x.ptr.offset(oi[0]), rows, len, rs, d),
                None => {
                    pack(x.ptr, rows, rs, &oi, &mut buf, |v| v);
                    MatRef::from_raw_parts(buf.as_ptr(), rows, len, len as isize, 1)
                }
            };
            match spacing(&oo) {
                Some(d) => {
                    let dst = MatMut::from_raw_parts_mut(out.get().offset(oo[0]), jn, len, os, d);
                    matmul(dst, Accum::Replace, m, a, T::from_f64(1.0), inner);
                }
                None => {
                    let mut tmp = Mat::<T>::zeros(jn, len);
                    matmul(tmp.as_mut(), Accum::Replace, m, a, T::from_f64(1.0), inner);
                    for (jj, &o) in oo.iter().enumerate() {
                        for i in 0..jn {
                            *out.get().offset(o + i as isize * os) = tmp[(i, jj)];
                        }
                    }
                }
            }
        }
    };
    if chunks.len() >= 4 && crate::threads::is_parallel(par) {
        chunks.par_iter().for_each(|c| work(c, Par::Seq));
    } else {
        chunks.iter().for_each(|c| work(c, par));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Leading subspace of one mode

/// How the leading subspace of one mode is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeSvd {
    /// Gram + eigh; LQ when the tolerance is below what the Gram can resolve; randomized for
    /// fixed ranks on wide unfoldings where it saves more than half the flops.
    Auto,
    Gram,
    /// Chunked TSQR of `X_(n)^T`, then an SVD of the small triangular factor.
    Lq,
    /// Randomized range finder with power iterations (fixed ranks only).
    Randomized,
}

/// The leading eigenpairs of `Y_(n) Y_(n)^T` (squared singular values), descending.
struct ModeEig {
    /// I_n x k, orthonormal columns, in f64.
    vecs: Mat<f64>,
    vals: Vec<f64>,
    /// `||Y||_F^2`.
    total: f64,
    /// Whether `vals` holds all I_n values (else the tail is `total - head`).
    complete: bool,
    solver: &'static str,
}

impl ModeEig {
    /// Squared Frobenius norm discarded when keeping `r` vectors.
    fn tail(&self, r: usize) -> f64 {
        if self.complete {
            self.vals[r.min(self.vals.len())..]
                .iter()
                .rev()
                .sum::<f64>()
                .max(0.0)
        } else {
            (self.total - self.vals[..r].iter().sum::<f64>()).max(0.0)
        }
    }
}

fn non_finite() -> Error {
    Error::NonFinite(
        "X contains NaN or infinity (or values so large that their squares overflow)".into(),
    )
}

fn gram_eig<T: Real>(y: &TensorRef<'_, T>, n: usize, par: Par) -> Result<ModeEig> {
    let g = gram(y, n, par)?;
    let i_n = g.nrows();
    let total: f64 = (0..i_n).map(|i| g[(i, i)]).sum();
    if !total.is_finite() {
        return Err(non_finite());
    }
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let lam = evd.S().column_vector();
    let u = evd.U();
    let vals = (0..i_n).map(|i| lam[i_n - 1 - i].max(0.0)).collect();
    let vecs = Mat::from_fn(i_n, i_n, |i, j| u[(i, i_n - 1 - j)]);
    Ok(ModeEig {
        vecs,
        vals,
        total,
        complete: true,
        solver: "gram",
    })
}

/// A tall unfolding (`I_n > J`, a long mode): the eigenpairs of `Y_(n) Y_(n)^T` from the
/// `J x J` side, `Y_(n)^T Y_(n) = V L V^T` (`svd = Gram`) or the thin SVD of `Y_(n)` (`Lq`),
/// with `U = Y_(n) V L^-1/2` orthonormalized: O(I_n J) time per pass and no `I_n x I_n`
/// matrix, where the `I_n x I_n` Gram matrix and its eigendecomposition took O(I_n^2) memory
/// and O(I_n^3) time (an 8000 x 20 matrix: 2 GB and 73 s). The Gram route reads the
/// unfolding twice by blocks of rows (no copy of it); the SVD route holds it in f64. `vals`
/// is padded with zeros to `I_n` (the unfolding's rank is at most `J`); `vecs` has `J`
/// columns, or `r` for a fixed rank `r` on the Gram route.
fn tall_eig<T: Real>(
    y: &TensorRef<'_, T>,
    n: usize,
    lq: bool,
    want: &Want,
    par: Par,
) -> Result<ModeEig> {
    check_mode(y, n)?;
    let rows = y.shape[n];
    let rs = y.strides[n];
    let cols = Cols::new(&y.shape, &y.strides, None, n);
    let j = y.len() / rows;
    let (mut oi, mut oo, mut ol) = (Vec::new(), Vec::new(), Vec::new());
    cols.offsets(0, j, &mut oi, &mut oo, &mut ol);
    // rows r0 .. r0 + h of the unfolding, in f64 (h x J)
    let block = |r0: usize, h: usize, out: &mut Mat<f64>| {
        for i in 0..h {
            // SAFETY: offsets come from the view.
            let base = unsafe { y.ptr.offset((r0 + i) as isize * rs) };
            for (jj, &o) in oi.iter().enumerate() {
                out[(i, jj)] = unsafe { *base.offset(o) }.to_f64();
            }
        }
    };
    let step = ((1usize << 19) / j.max(1)).clamp(1, rows);
    let (u, sq, total): (Mat<f64>, Vec<f64>, f64) = if lq {
        let mut a = Mat::<f64>::zeros(rows, j);
        block(0, rows, &mut a);
        let total = crate::linop::dense_frob_sq(a.as_ref(), par);
        if !total.is_finite() {
            return Err(non_finite());
        }
        let svd = a
            .thin_svd()
            .map_err(|e| Error::LinAlg(format!("SVD did not converge: {e:?}")))?;
        let s = svd.S().column_vector();
        (
            svd.U().to_owned(),
            (0..j).map(|i| s[i] * s[i]).collect(),
            total,
        )
    } else {
        let mut g = Mat::<f64>::zeros(j, j);
        let mut buf = Mat::<f64>::zeros(step, j);
        let mut r0 = 0;
        while r0 < rows {
            let h = step.min(rows - r0);
            block(r0, h, &mut buf);
            let b = buf.as_ref().subrows(0, h);
            matmul(g.as_mut(), Accum::Add, b.transpose(), b, 1.0, par);
            r0 += h;
        }
        let total: f64 = (0..j).map(|i| g[(i, i)]).sum();
        if !total.is_finite() {
            return Err(non_finite());
        }
        let evd = g
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
        let lam = evd.S().column_vector();
        let v = evd.U();
        let sq: Vec<f64> = (0..j).map(|i| lam[j - 1 - i].max(0.0)).collect();
        // U = Y V L^-1/2 (second pass), descending; then a QR: orthonormal also where L ~ 0.
        // A fixed rank needs its r columns only (all J: an I_n x J matrix, the tensor's size)
        let k = match want {
            Want::Rank(r) => (*r).min(j),
            Want::Tol(_) => j,
        };
        let vd = Mat::<f64>::from_fn(j, k, |r, c| {
            let l = sq[c];
            if l > 0.0 {
                v[(r, j - 1 - c)] / l.sqrt()
            } else {
                0.0
            }
        });
        let mut av = Mat::<f64>::zeros(rows, k);
        let mut r0 = 0;
        while r0 < rows {
            let h = step.min(rows - r0);
            block(r0, h, &mut buf);
            let b = buf.as_ref().subrows(0, h);
            matmul(
                av.as_mut().subrows_mut(r0, h),
                Accum::Replace,
                b,
                vd.as_ref(),
                1.0,
                par,
            );
            r0 += h;
        }
        for c in 0..k {
            if sq[c] == 0.0 {
                av[(c % rows, c)] = 1.0; // any direction: the QR makes it orthonormal
            }
        }
        (av.qr().compute_thin_Q(), sq, total)
    };
    let mut vals = sq;
    vals.resize(rows, 0.0);
    Ok(ModeEig {
        vecs: u,
        vals,
        total,
        complete: true,
        solver: if lq { "lq" } else { "gram" },
    })
}

/// TSQR over column chunks: `R` of `X_(n)^T = Q R`, then `R = U S V^T`, so the left singular
/// vectors of `X_(n)` are `V` and its singular values `S` (to relative accuracy eps, not
/// sqrt(eps) as with the Gram matrix).
fn lq_eig<T: Real>(y: &TensorRef<'_, T>, n: usize) -> Result<ModeEig> {
    check_mode(y, n)?;
    let rows = y.shape[n];
    let rs = y.strides[n];
    let cols = Cols::new(&y.shape, &y.strides, None, n);
    let chunks = cols.chunks(rows);
    let (mut oi, mut oo, mut ol) = (Vec::new(), Vec::new(), Vec::new());
    let mut r = Mat::<f64>::zeros(0, rows);
    for &(j0, len) in &chunks {
        cols.offsets(j0, len, &mut oi, &mut oo, &mut ol);
        let k = r.nrows();
        let mut st = Mat::<f64>::zeros(k + len, rows);
        for i in 0..rows {
            for p in 0..k {
                st[(p, i)] = r[(p, i)];
            }
            // SAFETY: offsets come from the view.
            let base = unsafe { y.ptr.offset(i as isize * rs) };
            for (jj, &o) in oi.iter().enumerate() {
                st[(k + jj, i)] = unsafe { *base.offset(o) }.to_f64();
            }
        }
        r = st.qr().thin_R().to_owned();
    }
    let total: f64 = (0..r.ncols())
        .map(|j| (0..r.nrows()).map(|i| r[(i, j)] * r[(i, j)]).sum::<f64>())
        .sum();
    if !total.is_finite() {
        return Err(non_finite());
    }
    let svd = r
        .svd()
        .map_err(|e| Error::LinAlg(format!("SVD did not converge: {e:?}")))?;
    let s = svd.S().column_vector();
    let vals = (0..rows)
        .map(|i| if i < s.nrows() { s[i] * s[i] } else { 0.0 })
        .collect();
    Ok(ModeEig {
        vecs: svd.V().to_owned(),
        vals,
        total,
        complete: true,
        solver: "lq",
    })
}

/// Parameters of the randomized range finder.
#[derive(Clone, Copy, Debug)]
pub struct RandParams {
    pub n_oversamples: usize,
    pub n_power_iter: usize,
    pub seed: u64,
}

impl Default for RandParams {
    fn default() -> Self {
        Self {
            n_oversamples: 10,
            n_power_iter: 1,
            seed: 0,
        }
    }
}

/// Randomized range finder on `Y_(n)` (HMT 4.4 with QR between passes), then the exact
/// eigenpairs of `B B^T` with `B = Q^T Y_(n)`. The rows of the Gaussian sketch follow the
/// logical column order, so the result does not depend on the memory layout.
fn rand_eig<T: Real>(
    y: &TensorRef<'_, T>,
    n: usize,
    r: usize,
    rp: &RandParams,
    par: Par,
) -> Result<ModeEig> {
    check_mode(y, n)?;
    let rows = y.shape[n];
    let rs = y.strides[n];
    let cols = Cols::new(&y.shape, &y.strides, None, n);
    let ncols = cols.ncols;
    let l = (r + rp.n_oversamples).min(rows).min(ncols);
    let chunks = cols.chunks(rows.max(l));
    let one = T::from_f64(1.0);
    let seed = rp
        .seed
        .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(n as u64 + 1));
    // A chunk's block of X_(n) and the rows of a J x l matrix at its logical columns.
    struct Scratch<T> {
        oi: Vec<isize>,
        oo: Vec<isize>,
        ol: Vec<isize>,
        buf: Vec<T>,
        rowsbuf: Vec<T>,
    }
    let scratch = || Scratch::<T> {
        oi: Vec::new(),
        oo: Vec::new(),
        ol: Vec::new(),
        buf: Vec::new(),
        rowsbuf: Vec::new(),
    };
    // Y = X_(n) W (W: J x l), partial sums over fixed groups of chunks; also ||X||^2.
    let times = |w: MatRef<'_, T>, want_norm: bool| -> (Mat<T>, f64) {
        let groups = split(chunks.len(), n_groups(chunks.len(), rows * l));
        let inner = if groups.len() == 1 { par } else { Par::Seq };
        let work = |&(c0, c1): &(usize, usize)| -> (Mat<T>, f64) {
            let mut acc = Mat::<T>::zeros(rows, l);
            let mut nrm = 0.0f64;
            let mut s = scratch();
            for &(j0, len) in &chunks[c0..c1] {
                cols.offsets(j0, len, &mut s.oi, &mut s.oo, &mut s.ol);
                // SAFETY: offsets come from the view.
                let a = unsafe {
                    match spacing(&s.oi) {
                        Some(d) => MatRef::from_raw_parts(y.ptr.offset(s.oi[0]), rows, len, rs, d),
                        None => {
                            pack(y.ptr, rows, rs, &s.oi, &mut s.buf, |v| v);
                            MatRef::from_raw_parts(s.buf.as_ptr(), rows, len, len as isize, 1)
                        }
                    }
                };
                if want_norm {
                    for j in 0..len {
                        for i in 0..rows {
                            let v = a[(i, j)].to_f64();
                            nrm += v * v;
                        }
                    }
                }
                let wblk = match spacing(&s.ol) {
                    // SAFETY: rows ol[0] + d * (0..len) are rows of w.
                    Some(d) => unsafe {
                        MatRef::from_raw_parts(
                            w.as_ptr().offset(s.ol[0] * w.row_stride()),
                            len,
                            l,
                            d * w.row_stride(),
                            w.col_stride(),
                        )
                    },
                    None => {
                        s.rowsbuf.clear();
                        for c in 0..l {
                            s.rowsbuf
                                .extend(s.ol.iter().map(|&row| w[(row as usize, c)]));
                        }
                        // SAFETY: rowsbuf holds len x l in column-major order.
                        unsafe {
                            MatRef::from_raw_parts(s.rowsbuf.as_ptr(), len, l, 1, len as isize)
                        }
                    }
                };
                matmul(acc.as_mut(), Accum::Add, a, wblk, one, inner);
            }
            (acc, nrm)
        };
        let parts: Vec<(Mat<T>, f64)> = if groups.len() > 1 && crate::threads::is_parallel(par) {
            groups.par_iter().map(work).collect()
        } else {
            groups.iter().map(work).collect()
        };
        let mut it = parts.into_iter();
        let (mut acc, mut nrm) = it.next().unwrap_or_else(|| (Mat::zeros(rows, l), 0.0));
        for (p, q) in it {
            acc += p;
            nrm += q;
        }
        (acc, nrm)
    };
    // Z = X_(n)^T Q (J x l, rows in logical order): disjoint rows per chunk.
    let times_t = |q: MatRef<'_, T>| -> Mat<T> {
        let mut z = Mat::<T>::zeros(ncols, l);
        let zs = (z.row_stride(), z.col_stride());
        let zp = SendPtr(z.as_ptr_mut());
        let work = |&(j0, len): &(usize, usize), inner: Par| {
            let mut s = scratch();
            cols.offsets(j0, len, &mut s.oi, &mut s.oo, &mut s.ol);
            // SAFETY: offsets come from the view; each chunk writes its own rows of z.
            unsafe {
                let a = match spacing(&s.oi) {
                    Some(d) => MatRef::from_raw_parts(y.ptr.offset(s.oi[0]), rows, len, rs, d),
                    None => {
                        pack(y.ptr, rows, rs, &s.oi, &mut s.buf, |v| v);
                        MatRef::from_raw_parts(s.buf.as_ptr(), rows, len, len as isize, 1)
                    }
                };
                match spacing(&s.ol) {
                    Some(d) => {
                        let dst = MatMut::from_raw_parts_mut(
                            zp.get().offset(s.ol[0] * zs.0),
                            len,
                            l,
                            d * zs.0,
                            zs.1,
                        );
                        matmul(dst, Accum::Replace, a.transpose(), q, one, inner);
                    }
                    None => {
                        let mut tmp = Mat::<T>::zeros(len, l);
                        matmul(tmp.as_mut(), Accum::Replace, a.transpose(), q, one, inner);
                        for (jj, &row) in s.ol.iter().enumerate() {
                            for c in 0..l {
                                *zp.get().offset(row * zs.0 + c as isize * zs.1) = tmp[(jj, c)];
                            }
                        }
                    }
                }
            }
        };
        if chunks.len() >= 4 && crate::threads::is_parallel(par) {
            chunks.par_iter().for_each(|c| work(c, Par::Seq));
        } else {
            chunks.iter().for_each(|c| work(c, par));
        }
        z
    };
    let finite =
        |m: &Mat<T>| (0..m.ncols()).all(|j| (0..m.nrows()).all(|i| m[(i, j)].to_f64().is_finite()));
    let omega = gaussian::<T>(ncols, l, seed, 0, 0, par);
    let (yk, total) = times(omega.as_ref(), true);
    drop(omega);
    if !total.is_finite() || !finite(&yk) {
        return Err(non_finite());
    }
    let mut q = yk.qr().compute_thin_Q();
    for _ in 0..rp.n_power_iter {
        let z = times_t(q.as_ref());
        let zq = z.qr().compute_thin_Q();
        drop(z);
        q = times(zq.as_ref(), false).0.qr().compute_thin_Q();
    }
    let z = times_t(q.as_ref());
    // B B^T = Z^T Z (l x l), in f64.
    let z64 = Mat::<f64>::from_fn(ncols, l, |i, j| z[(i, j)].to_f64());
    drop(z);
    let mut bb = Mat::<f64>::zeros(l, l);
    matmul(
        bb.as_mut(),
        Accum::Replace,
        z64.transpose(),
        z64.as_ref(),
        1.0,
        par,
    );
    drop(z64);
    let evd = bb
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    let lam = evd.S().column_vector();
    let w = evd.U();
    let q64 = Mat::<f64>::from_fn(rows, l, |i, j| q[(i, j)].to_f64());
    let wdesc = Mat::<f64>::from_fn(l, l, |i, j| w[(i, l - 1 - j)]);
    let mut vecs = Mat::<f64>::zeros(rows, l);
    matmul(
        vecs.as_mut(),
        Accum::Replace,
        q64.as_ref(),
        wdesc.as_ref(),
        1.0,
        par,
    );
    let vals = (0..l).map(|i| lam[l - 1 - i].max(0.0)).collect();
    Ok(ModeEig {
        vecs,
        vals,
        total,
        complete: false,
        solver: "randomized",
    })
}

/// The first `r` columns of `vecs` as `T`, each with its largest-magnitude entry positive.
fn factor<T: Real>(vecs: &Mat<f64>, r: usize) -> Mat<T> {
    let mut u = Mat::<T>::from_fn(vecs.nrows(), r, |i, j| T::from_f64(vecs[(i, j)]));
    for j in 0..r {
        let mut best = 0usize;
        let mut best_abs = -1.0;
        for i in 0..u.nrows() {
            let a = vecs[(i, j)].abs();
            if a > best_abs {
                best_abs = a;
                best = i;
            }
        }
        if vecs[(best, j)] < 0.0 {
            for i in 0..u.nrows() {
                u[(i, j)] = -u[(i, j)];
            }
        }
    }
    u
}

// ---------------------------------------------------------------------------------------------
// Mode order

/// Flops of processing `order` on a tensor of shape `dims`, each mode `m` going to size
/// `target[m]`: a Gram (`d^2 J`) and its eigh (`~10 d^3`), or the passes of the randomized
/// finder where `Auto` would pick it, and the product (`2 r d J`) per mode with
/// `with_gram`, the product and its memory traffic without.
pub fn order_cost(dims: &[usize], target: &[usize], order: &[usize], with_gram: bool) -> f64 {
    let mut d: Vec<f64> = dims.iter().map(|&v| v as f64).collect();
    let mut cost = 0.0;
    for &m in order {
        let size: f64 = d.iter().product();
        let j = size / d[m];
        let r = target[m] as f64;
        cost += 2.0 * r * d[m] * j;
        if !with_gram {
            // Chains of products are bound by memory as much as by flops: reading and writing
            // an element costs about 50 flops here, three times that when the mode's trailing
            // block is short (a middle mode packed and scattered in small pieces).
            let trailing: f64 = d[m + 1..].iter().product();
            let packed = m + 1 < d.len() && trailing < 128.0;
            cost += 50.0 * (size + size / d[m] * r) * if packed { 3.0 } else { 1.0 };
        }
        if with_gram {
            let rp = RandParams::default();
            cost += if prefer_randomized(d[m] as usize, j as usize, target[m], &rp) {
                let l = (target[m] + rp.n_oversamples) as f64;
                (2.0 * rp.n_power_iter as f64 + 2.0) * 2.0 * d[m] * j * l
            } else {
                d[m] * d[m] * j + 10.0 * d[m] * d[m] * d[m]
            };
        }
        d[m] = r;
    }
    cost
}

/// The order of `modes` with the fewest flops: every permutation for up to 6 modes, else
/// greedily the cheapest next step.
pub fn best_order(
    dims: &[usize],
    target: &[usize],
    modes: &[usize],
    with_gram: bool,
) -> Vec<usize> {
    fn permute(k: usize, a: &mut Vec<usize>, f: &mut dyn FnMut(&[usize])) {
        if k == a.len() {
            f(a);
            return;
        }
        for i in k..a.len() {
            a.swap(k, i);
            permute(k + 1, a, f);
            a.swap(k, i);
        }
    }
    if modes.len() <= 6 {
        let mut best = modes.to_vec();
        let mut best_cost = f64::INFINITY;
        let mut a = modes.to_vec();
        permute(0, &mut a, &mut |p| {
            let c = order_cost(dims, target, p, with_gram);
            if c < best_cost {
                best_cost = c;
                best = p.to_vec();
            }
        });
        best
    } else {
        let mut left = modes.to_vec();
        let mut done: Vec<usize> = Vec::new();
        let mut d = dims.to_vec();
        while !left.is_empty() {
            let (i, _) = left
                .iter()
                .enumerate()
                .map(|(i, &m)| (i, order_cost(&d, target, &[m], with_gram)))
                .fold((0, f64::INFINITY), |b, c| if c.1 < b.1 { c } else { b });
            let m = left.remove(i);
            d[m] = target[m];
            done.push(m);
        }
        done
    }
}

// ---------------------------------------------------------------------------------------------
// Decompositions

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Truncated HOSVD: every factor from the unfoldings of X.
    Hosvd,
    /// Sequentially truncated HOSVD.
    Sthosvd,
    /// ST-HOSVD, then higher-order orthogonal iteration.
    Hooi,
}

/// Target ranks (one per entry of `modes`) or a relative error tolerance.
#[derive(Clone, Debug)]
pub enum Ranks {
    Fixed(Vec<usize>),
    Tol(f64),
}

/// Parameters of [`tucker`].
#[derive(Clone, Debug)]
pub struct Params {
    pub method: Method,
    /// The modes to decompose (`None`: all); the others are left as they are.
    pub modes: Option<Vec<usize>>,
    /// Processing order of ST-HOSVD (`None`: fewest flops for fixed ranks, ascending size
    /// for a tolerance). A permutation of the decomposed modes.
    pub mode_order: Option<Vec<usize>>,
    pub svd: ModeSvd,
    pub n_iter_max: usize,
    pub hooi_tol: f64,
    pub rand: RandParams,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            method: Method::Sthosvd,
            modes: None,
            mode_order: None,
            svd: ModeSvd::Auto,
            n_iter_max: 50,
            hooi_tol: 1e-8,
            rand: RandParams::default(),
        }
    }
}

/// `X ~= core x_{modes[0]} factors[0] x ... ` (factors: I_m x r_m, orthonormal columns).
pub struct TuckerOut<T> {
    pub core: Tensor<T>,
    pub factors: Vec<Mat<T>>,
    pub modes: Vec<usize>,
    /// Relative error certified without reconstructing X: exact for ST-HOSVD (error
    /// identity), an upper bound for HOSVD, `sqrt(1 - ||G||^2 / ||X||^2)` for HOOI.
    pub rel_error: f64,
    /// `||X||_F`.
    pub norm: f64,
    /// HOOI sweeps done (0 for the other methods).
    pub n_iter: usize,
    /// The solver used per entry of `modes` (last use).
    pub solvers: Vec<&'static str>,
    /// The order in which ST-HOSVD processed the modes.
    pub order: Vec<usize>,
}

/// Largest `tol` for which the Gram path is trusted: eigenvalues from the Gram matrix carry
/// an absolute error of about `I_n eps ||X||^2`, which must stay well below `tol^2 ||X||^2`.
fn gram_resolves(tol: f64, i_n: usize) -> bool {
    tol * tol >= 1e3 * i_n as f64 * f64::EPSILON
}

/// The error of a forced Gram path with a `tol` it cannot resolve (shared with the Python
/// array-API path's message).
fn gram_unresolved(tol: f64, i_n: usize) -> String {
    format!(
        "svd='gram' cannot certify tol={tol:e} for a mode of size {i_n}: the Gram matrix \
         squares the singular values, so below tol = {:.1e} its discarded energy is rounding; \
         use svd='lq' or 'auto'",
        (1e3 * i_n as f64 * f64::EPSILON).sqrt()
    )
}

/// Whether the randomized finder saves more than half the flops of the Gram path:
/// `(2q + 2) 2 I J l` against `I^2 J`, for a wide unfolding.
fn prefer_randomized(i_n: usize, j: usize, r: usize, rp: &RandParams) -> bool {
    let l = (r + rp.n_oversamples) as f64;
    let passes = 2.0 * rp.n_power_iter as f64 + 2.0;
    j >= 4 * i_n && 2.0 * passes * 2.0 * l < i_n as f64
}

enum Want {
    Rank(usize),
    Tol(f64),
}

fn mode_eig<T: Real>(
    y: &TensorRef<'_, T>,
    n: usize,
    want: &Want,
    p: &Params,
    par: Par,
) -> Result<ModeEig> {
    let i_n = y.shape[n];
    let j = y.len() / i_n;
    let how = match (p.svd, want) {
        (ModeSvd::Auto, Want::Rank(r)) if prefer_randomized(i_n, j, *r, &p.rand) => {
            ModeSvd::Randomized
        }
        (ModeSvd::Auto, Want::Tol(t)) if !gram_resolves(*t, i_n) => ModeSvd::Lq,
        (ModeSvd::Auto, _) => ModeSvd::Gram,
        (ModeSvd::Randomized, Want::Tol(_)) => {
            return invalid("svd='randomized' needs fixed ranks, not tol")
        }
        // a forced Gram path below its resolution gave ranks above the unfolding's and a
        // certified error of 0 for a true one 35 times tol
        (ModeSvd::Gram, Want::Tol(t)) if !gram_resolves(*t, i_n) => {
            return invalid(gram_unresolved(*t, i_n))
        }
        (other, _) => other,
    };
    // A long mode (I_n > J) works on the J x J side, unless a fixed rank asks for more
    // vectors than the unfolding's rank (J) can give: the I_n x I_n path returns them all.
    let tall = i_n > j && !matches!(want, Want::Rank(r) if *r > j);
    match (how, want) {
        // A sketch has at most J columns: a rank above that (the unfolding's rank is at most J)
        // takes the Gram path, which returns every eigenvector.
        (ModeSvd::Randomized, Want::Rank(r)) if *r <= j => rand_eig(y, n, *r, &p.rand, par),
        (ModeSvd::Lq, _) if tall => tall_eig(y, n, true, want, par),
        (ModeSvd::Lq, _) => lq_eig(y, n),
        _ if tall => tall_eig(y, n, false, want, par),
        _ => gram_eig(y, n, par),
    }
}

/// Smallest `r >= 1` whose discarded energy is at most `allow`.
fn rank_for(e: &ModeEig, allow: f64) -> usize {
    let k = e.vals.len();
    if !e.complete {
        return (1..=k).find(|&r| e.tail(r) <= allow).unwrap_or(k);
    }
    // Walk down from the full rank, adding the smallest values first.
    let mut tail = 0.0;
    let mut r = k;
    while r > 1 && tail + e.vals[r - 1] <= allow {
        tail += e.vals[r - 1];
        r -= 1;
    }
    r
}

fn validate(shape: &[usize], ranks: &Ranks, p: &Params) -> Result<(Vec<usize>, Vec<usize>)> {
    let nd = shape.len();
    if nd < 2 {
        return invalid(format!("X must have at least 2 dimensions, got {nd}"));
    }
    if shape.contains(&0) {
        return invalid(format!("X is empty (shape {shape:?})"));
    }
    let modes = p.modes.clone().unwrap_or_else(|| (0..nd).collect());
    if modes.is_empty() {
        return invalid("modes must name at least one mode");
    }
    let mut seen = vec![false; nd];
    for &m in &modes {
        if m >= nd {
            return invalid(format!("mode {m} is out of range for a {nd}-d tensor"));
        }
        if seen[m] {
            return invalid(format!("mode {m} is repeated in modes"));
        }
        seen[m] = true;
    }
    let mut target = shape.to_vec();
    match ranks {
        Ranks::Fixed(r) => {
            if r.len() != modes.len() {
                return invalid(format!("{} ranks given for {} modes", r.len(), modes.len()));
            }
            for (&m, &rk) in modes.iter().zip(r) {
                if rk == 0 || rk > shape[m] {
                    return invalid(format!(
                        "rank {rk} for mode {m} is out of range: it must satisfy 1 <= rank <= {}",
                        shape[m]
                    ));
                }
                target[m] = rk;
            }
        }
        Ranks::Tol(t) => {
            if !(*t > 0.0 && *t < 1.0) {
                return invalid(format!(
                    "tol={t} is out of range: it must satisfy 0 < tol < 1"
                ));
            }
        }
    }
    if let Some(o) = &p.mode_order {
        let mut a = o.clone();
        let mut b = modes.clone();
        a.sort_unstable();
        b.sort_unstable();
        if a != b {
            return invalid(format!(
                "mode_order {o:?} must be a permutation of the modes {modes:?}"
            ));
        }
    }
    if p.hooi_tol.is_nan() || p.hooi_tol < 0.0 {
        return invalid("hooi_tol must be >= 0");
    }
    Ok((modes, target))
}

/// Tucker decomposition of `x` (see [`Params`], [`Method`], [`Ranks`]).
pub fn tucker<T: Real>(
    x: &TensorRef<'_, T>,
    ranks: &Ranks,
    p: &Params,
    par: Par,
) -> Result<TuckerOut<T>> {
    tucker_with_progress(x, ranks, p, par, &SILENT)
}

/// [`tucker`] reporting to `progress` after each mode (ST-HOSVD, HOSVD: one step per mode,
/// HOSVD one more for the core; HOOI: one step per mode and sweep, `total` counting
/// `n_iter_max` sweeps, `done == total` on convergence). Returns [`Error::Interrupted`] when
/// the hook asks to stop.
///
/// Scale-equivariant for every finite magnitude: the Gram matrices square the entries, so
/// data beyond float64's safe range (`2^+-400`) overflowed (an error) or lost their digits
/// (1e-200 gave an all-zero core certified exact). Such data rerun as a scaled copy (`c X`,
/// `c` a power of two) and the core is scaled back. The range is checked after the fact (a
/// non-finite or failed factorization, or `||X|| < 2^-300`), so in-range data pay nothing.
pub fn tucker_with_progress<T: Real>(
    x: &TensorRef<'_, T>,
    ranks: &Ranks,
    p: &Params,
    par: Par,
    progress: &dyn Progress,
) -> Result<TuckerOut<T>> {
    let first = tucker_run(x, ranks, p, par, progress);
    let suspect = match &first {
        Err(Error::NonFinite(_) | Error::LinAlg(_)) => true,
        Ok(out) => out.norm < 2f64.powi(-300),
        _ => false,
    };
    if !suspect {
        return first;
    }
    let mut amax = 0.0f64;
    walk(x, |v| amax = amax.max(v.to_f64().abs() + v.to_f64() * 0.0));
    let (lo, hi) = (<f64 as Real>::SAFE_LO, <f64 as Real>::SAFE_HI);
    if !amax.is_finite() || amax == 0.0 || (lo..=hi).contains(&amax) {
        return first; // a NaN or an infinity, zeros, or not a range problem
    }
    let c = crate::scalar::pow2_near_inverse::<T>(amax);
    let ct = T::from_f64(c);
    let mut data = Vec::with_capacity(x.len());
    walk(x, |v| data.push(v * ct));
    let scaled = Tensor {
        data,
        shape: x.shape.clone(),
    };
    let mut out = tucker_run(&scaled.view(), ranks, p, par, progress)?;
    let inv = T::from_f64(1.0 / c);
    for v in out.core.data.iter_mut() {
        *v *= inv;
    }
    out.norm /= c;
    if !out.norm.is_finite() || out.core.data.iter().any(|v| !v.to_f64().is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "X's norm is beyond {}'s range (its entries are finite but too large): the core \
             cannot hold it; scale X down first",
            crate::scalar::dtype_name::<T>()
        )));
    }
    Ok(out)
}

/// Calls `f` on every element of `x` in C order (an odometer over any strides).
fn walk<T: Real>(x: &TensorRef<'_, T>, mut f: impl FnMut(T)) {
    let nd = x.ndim();
    let mut idx = vec![0usize; nd];
    let mut off = 0isize;
    for _ in 0..x.len() {
        // SAFETY: idx stays within the shape, so the constructor's contract covers `off`.
        f(unsafe { *x.ptr.offset(off) });
        for k in (0..nd).rev() {
            idx[k] += 1;
            off += x.strides[k];
            if idx[k] < x.shape[k] {
                break;
            }
            off -= x.strides[k] * x.shape[k] as isize;
            idx[k] = 0;
        }
    }
}

fn tucker_run<T: Real>(
    x: &TensorRef<'_, T>,
    ranks: &Ranks,
    p: &Params,
    par: Par,
    progress: &dyn Progress,
) -> Result<TuckerOut<T>> {
    let (modes, target) = validate(&x.shape, ranks, p)?;
    let order = match (&p.mode_order, ranks) {
        (Some(o), _) => o.clone(),
        (None, Ranks::Fixed(_)) => best_order(&x.shape, &target, &modes, true),
        (None, Ranks::Tol(_)) => {
            let mut o = modes.clone();
            o.sort_by_key(|&m| x.shape[m]);
            o
        }
    };
    let nm = modes.len();
    let steps = Steps {
        progress,
        last: std::cell::Cell::new(None),
        total: match p.method {
            Method::Hosvd => nm + 1,
            Method::Sthosvd => nm,
            Method::Hooi => nm * (1 + p.n_iter_max),
        },
    };
    steps.at(0)?;
    let out = match p.method {
        Method::Hosvd => hosvd(x, ranks, &modes, &target, order, p, par, &steps)?,
        Method::Sthosvd | Method::Hooi => sthosvd(x, ranks, &modes, order, p, par, &steps)?,
    };
    let out = if p.method == Method::Hooi {
        hooi(x, out, p, par, &steps)?
    } else {
        out
    };
    steps.at(steps.total)?;
    Ok(out)
}

/// A progress hook with the run's step count (each count reported once).
struct Steps<'a> {
    progress: &'a dyn Progress,
    total: usize,
    last: std::cell::Cell<Option<usize>>,
}

impl Steps<'_> {
    fn at(&self, done: usize) -> Result<()> {
        let done = done.min(self.total);
        if self.last.replace(Some(done)) == Some(done) {
            return Ok(());
        }
        report(self.progress, done, self.total)
    }
}

/// Where a mode's factor goes in `modes`.
fn slot(modes: &[usize], m: usize) -> usize {
    modes
        .iter()
        .position(|&k| k == m)
        .expect("mode is in modes")
}

fn tol_budget(tol: f64, total: f64, ndim: usize, eps: f64) -> f64 {
    // A little slack so that rounding in the reconstruction cannot push it past tol.
    let t = (tol - 8.0 * ndim as f64 * eps).max(0.0);
    t * t * total
}

/// Rank choice and error bookkeeping shared by HOSVD and ST-HOSVD: fixed ranks, or the
/// tolerance budget `tol^2 ||X||^2` spent mode by mode, each mode taking an even share of what
/// is left (the unspent part carries over to the remaining modes).
struct RankPicker<'a> {
    ranks: &'a Ranks,
    steps: usize,
    ndim: usize,
    eps: f64,
    total: f64,
    budget: f64,
    spent: f64,
}

impl<'a> RankPicker<'a> {
    fn new(ranks: &'a Ranks, steps: usize, ndim: usize, eps: f64) -> Self {
        Self {
            ranks,
            steps,
            ndim,
            eps,
            total: f64::NAN,
            budget: 0.0,
            spent: 0.0,
        }
    }

    /// What the eigensolver of factor slot `s` must deliver.
    fn want(&self, s: usize) -> Want {
        match self.ranks {
            Ranks::Fixed(r) => Want::Rank(r[s]),
            Ranks::Tol(t) => Want::Tol(*t),
        }
    }

    /// The rank for slot `s` at `step`, given its eigendecomposition; records the discarded
    /// energy.
    fn pick(&mut self, step: usize, s: usize, e: &ModeEig) -> usize {
        if step == 0 {
            self.total = e.total;
            if let Ranks::Tol(t) = self.ranks {
                self.budget = tol_budget(*t, self.total, self.ndim, self.eps);
            }
        }
        let r = match self.ranks {
            Ranks::Fixed(r) => r[s],
            Ranks::Tol(_) => {
                let left = (self.steps - step) as f64;
                rank_for(e, ((self.budget - self.spent) / left).max(0.0))
            }
        };
        self.spent += e.tail(r);
        r
    }

    /// Relative error certified by the discarded energy (exact for ST-HOSVD, a bound for
    /// HOSVD).
    fn rel_error(&self) -> f64 {
        if self.total > 0.0 {
            (self.spent / self.total).sqrt().min(1.0)
        } else {
            0.0
        }
    }
}

fn sthosvd<T: Real>(
    x: &TensorRef<'_, T>,
    ranks: &Ranks,
    modes: &[usize],
    order: Vec<usize>,
    p: &Params,
    par: Par,
    steps: &Steps<'_>,
) -> Result<TuckerOut<T>> {
    let mut factors: Vec<Option<Mat<T>>> = (0..modes.len()).map(|_| None).collect();
    let mut solvers = vec![""; modes.len()];
    let mut cur: Option<Tensor<T>> = None;
    let mut pick = RankPicker::new(ranks, order.len(), x.ndim(), T::EPS);
    for (step, &m) in order.iter().enumerate() {
        let view = cur.as_ref().map_or_else(|| x.clone(), |t| t.view());
        let s = slot(modes, m);
        let e = mode_eig(&view, m, &pick.want(s), p, par)?;
        let r = pick.pick(step, s, &e);
        let u = factor::<T>(&e.vecs, r);
        let next = ttm(&view, m, u.transpose(), par)?;
        drop(view);
        cur = Some(next);
        factors[s] = Some(u);
        solvers[s] = e.solver;
        steps.at(step + 1)?;
    }
    let core = cur.expect("at least one mode");
    Ok(TuckerOut {
        core,
        factors: factors
            .into_iter()
            .map(|f| f.expect("every mode processed"))
            .collect(),
        modes: modes.to_vec(),
        rel_error: pick.rel_error(),
        norm: pick.total.sqrt(),
        n_iter: 0,
        solvers,
        order,
    })
}

#[allow(clippy::too_many_arguments)]
fn hosvd<T: Real>(
    x: &TensorRef<'_, T>,
    ranks: &Ranks,
    modes: &[usize],
    target: &[usize],
    order: Vec<usize>,
    p: &Params,
    par: Par,
    steps: &Steps<'_>,
) -> Result<TuckerOut<T>> {
    let mut factors: Vec<Option<Mat<T>>> = (0..modes.len()).map(|_| None).collect();
    let mut solvers = vec![""; modes.len()];
    let mut pick = RankPicker::new(ranks, order.len(), x.ndim(), T::EPS);
    let mut tgt = target.to_vec();
    for (step, &m) in order.iter().enumerate() {
        let s = slot(modes, m);
        let e = mode_eig(x, m, &pick.want(s), p, par)?;
        // Discarded energy of X_(m): the HOSVD error bound is the sum over the modes.
        let r = pick.pick(step, s, &e);
        tgt[m] = r;
        factors[s] = Some(factor::<T>(&e.vecs, r));
        solvers[s] = e.solver;
        steps.at(step + 1)?;
    }
    let factors: Vec<Mat<T>> = factors
        .into_iter()
        .map(|f| f.expect("every mode processed"))
        .collect();
    let core = project(x, modes, &factors, &tgt, None, par)?;
    Ok(TuckerOut {
        core,
        factors,
        modes: modes.to_vec(),
        rel_error: pick.rel_error(),
        norm: pick.total.sqrt(),
        n_iter: 0,
        solvers,
        order,
    })
}

/// `X x_m U_m^T` over `modes` (except `skip`), cheapest order first.
fn project<T: Real>(
    x: &TensorRef<'_, T>,
    modes: &[usize],
    factors: &[Mat<T>],
    target: &[usize],
    skip: Option<usize>,
    par: Par,
) -> Result<Tensor<T>> {
    let ms: Vec<usize> = modes.iter().copied().filter(|&m| Some(m) != skip).collect();
    let order = best_order(&x.shape, target, &ms, false);
    let mut cur: Option<Tensor<T>> = None;
    for &m in &order {
        let view = cur.as_ref().map_or_else(|| x.clone(), |t| t.view());
        let next = ttm(&view, m, factors[slot(modes, m)].transpose(), par)?;
        drop(view);
        cur = Some(next);
    }
    Ok(cur.unwrap_or_else(|| Tensor {
        data: copy_c(x),
        shape: x.shape.clone(),
    }))
}

fn copy_c<T: Real>(x: &TensorRef<'_, T>) -> Vec<T> {
    let nd = x.ndim();
    let mut out = Vec::with_capacity(x.len());
    let mut idx = vec![0usize; nd];
    for _ in 0..x.len() {
        out.push(x.get(&idx));
        for k in (0..nd).rev() {
            idx[k] += 1;
            if idx[k] < x.shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// HOOI from a ST-HOSVD start: each sweep replaces every factor by the leading subspace of
/// `X` projected on the other factors, until the relative error changes by less than
/// `hooi_tol` (absolute change) or `n_iter_max` sweeps. The best iterate is returned.
fn hooi<T: Real>(
    x: &TensorRef<'_, T>,
    init: TuckerOut<T>,
    p: &Params,
    par: Par,
    steps: &Steps<'_>,
) -> Result<TuckerOut<T>> {
    let mut best = init;
    let total = best.norm * best.norm;
    if total == 0.0 || p.n_iter_max == 0 {
        return Ok(best);
    }
    let modes = best.modes.clone();
    let mut target = x.shape.clone();
    for (s, &m) in modes.iter().enumerate() {
        target[m] = best.factors[s].ncols();
    }
    let mut factors: Vec<Mat<T>> = best.factors.clone();
    let mut solvers = best.solvers.clone();
    let mut prev = best.rel_error;
    let hp = Params {
        svd: ModeSvd::Gram,
        ..p.clone()
    };
    for it in 1..=p.n_iter_max {
        let mut core = None;
        for (s, &m) in modes.iter().enumerate() {
            let y = project(x, &modes, &factors, &target, Some(m), par)?;
            let e = mode_eig(&y.view(), m, &Want::Rank(target[m]), &hp, par)?;
            factors[s] = factor::<T>(&e.vecs, target[m]);
            solvers[s] = e.solver;
            if s + 1 == modes.len() {
                core = Some(ttm(&y.view(), m, factors[s].transpose(), par)?);
            }
            steps.at(modes.len() * it + s + 1)?;
        }
        let core = core.expect("at least one mode");
        let g2 = core.frob_sq();
        let err = ((total - g2).max(0.0) / total).sqrt();
        if !err.is_finite() {
            return Err(non_finite());
        }
        let improved = err < best.rel_error;
        if improved {
            best.core = core;
            best.factors = factors.clone();
            best.rel_error = err;
            best.solvers = solvers.clone();
        }
        best.n_iter = it;
        if (prev - err).abs() < p.hooi_tol || !improved {
            break;
        }
        prev = err;
    }
    Ok(best)
}

/// `core x_{modes[0]} factors[0] x_{modes[1]} factors[1] ...` (factors: I_m x r_m), in the
/// order with the fewest flops.
pub fn tucker_to_tensor<T: Real>(
    core: &TensorRef<'_, T>,
    factors: &[MatRef<'_, T>],
    modes: &[usize],
    par: Par,
) -> Result<Tensor<T>> {
    let shape = tucker_shape(core, factors, modes)?;
    let mut data = vec![T::from_f64(0.0); shape.iter().product()];
    tucker_to_tensor_into(core, factors, modes, &mut data, par)?;
    Ok(Tensor { data, shape })
}

/// The shape of the full tensor of a Tucker tensor, after checking the arguments.
pub fn tucker_shape<T: Real>(
    core: &TensorRef<'_, T>,
    factors: &[MatRef<'_, T>],
    modes: &[usize],
) -> Result<Vec<usize>> {
    let nd = core.ndim();
    if factors.len() != modes.len() {
        return invalid(format!(
            "{} factors given for {} modes",
            factors.len(),
            modes.len()
        ));
    }
    let mut seen = vec![false; nd];
    let mut target = core.shape.clone();
    for (f, &m) in factors.iter().zip(modes) {
        if m >= nd || seen[m] {
            return invalid(format!(
                "mode {m} is out of range or repeated for a {nd}-d core"
            ));
        }
        seen[m] = true;
        if f.ncols() != core.shape[m] {
            return invalid(format!(
                "factor for mode {m} has {} columns but the core has size {} there",
                f.ncols(),
                core.shape[m]
            ));
        }
        target[m] = f.nrows();
    }
    if core.shape.contains(&0) || target.contains(&0) {
        return invalid("the core and the factors must not be empty");
    }
    Ok(target)
}

/// [`tucker_to_tensor`] into a caller's C-ordered buffer (the last product writes it).
pub fn tucker_to_tensor_into<T: Real>(
    core: &TensorRef<'_, T>,
    factors: &[MatRef<'_, T>],
    modes: &[usize],
    out: &mut [T],
    par: Par,
) -> Result<()> {
    let target = tucker_shape(core, factors, modes)?;
    if out.len() != target.iter().product::<usize>() {
        return invalid(format!(
            "the output has {} elements, {:?} needed",
            out.len(),
            target
        ));
    }
    let order = best_order(&core.shape, &target, modes, false);
    let Some((&last, first)) = order.split_last() else {
        out.copy_from_slice(&copy_c(core));
        return Ok(());
    };
    let fac = |m: usize| factors[modes.iter().position(|&k| k == m).expect("in modes")];
    let mut cur: Option<Tensor<T>> = None;
    for &m in first {
        let view = cur.as_ref().map_or_else(|| core.clone(), |t| t.view());
        let next = ttm(&view, m, fac(m), par)?;
        drop(view);
        cur = Some(next);
    }
    let view = cur.as_ref().map_or_else(|| core.clone(), |t| t.view());
    ttm_into(&view, last, fac(last), out, par)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_tensor(shape: &[usize], seed: u64) -> Tensor<f64> {
        let n: usize = shape.iter().product();
        let g = gaussian::<f64>(n, 1, seed, 0, 0, Par::Seq);
        Tensor {
            data: (0..n).map(|i| g[(i, 0)]).collect(),
            shape: shape.to_vec(),
        }
    }

    /// Naive unfolding (C order over the other axes).
    fn unfold(x: &TensorRef<'_, f64>, n: usize) -> Mat<f64> {
        let shape = x.shape().to_vec();
        let i_n = shape[n];
        let j = x.len() / i_n;
        let mut m = Mat::<f64>::zeros(i_n, j);
        let nd = shape.len();
        let mut idx = vec![0usize; nd];
        for _ in 0..x.len() {
            let mut col = 0;
            for k in 0..nd {
                if k != n {
                    col = col * shape[k] + idx[k];
                }
            }
            m[(idx[n], col)] = x.get(&idx);
            for k in (0..nd).rev() {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        m
    }

    /// A view of `t` with axes permuted in memory (data re-laid out) and axis 1 reversed.
    fn odd_layout(t: &Tensor<f64>) -> (Vec<f64>, Vec<isize>) {
        // store in Fortran order, then reverse axis 1 through a negative stride
        let shape = &t.shape;
        let nd = shape.len();
        let mut fs = vec![1isize; nd];
        for k in 1..nd {
            fs[k] = fs[k - 1] * shape[k - 1] as isize;
        }
        let mut data = vec![0.0; t.data.len()];
        let v = t.view();
        let mut idx = vec![0usize; nd];
        for _ in 0..t.data.len() {
            let mut off = 0isize;
            for k in 0..nd {
                let i = if k == 1 {
                    shape[1] - 1 - idx[1]
                } else {
                    idx[k]
                };
                off += i as isize * fs[k];
            }
            data[off as usize] = v.get(&idx);
            for k in (0..nd).rev() {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        let mut st = fs.clone();
        st[1] = -fs[1];
        (data, st)
    }

    #[test]
    fn gram_and_ttm_match_unfoldings_for_any_layout() {
        let t = rand_tensor(&[7, 5, 300, 3], 1);
        let (data, st) = odd_layout(&t);
        let off = (t.shape[1] as isize - 1) * (-st[1]);
        let odd =
            unsafe { TensorRef::from_raw_parts(data.as_ptr().offset(off), &t.shape, &st).unwrap() };
        let m = gaussian::<f64>(4, 300, 9, 0, 0, Par::Seq);
        for v in [t.view(), odd.clone()] {
            for n in 0..4 {
                let a = unfold(&t.view(), n);
                let g = gram(&v, n, Par::rayon(2)).unwrap();
                assert!((&g - &a * a.transpose()).norm_max() < 1e-10);
            }
            let y = ttm(&v, 2, m.as_ref(), Par::rayon(2)).unwrap();
            let want = &m * unfold(&t.view(), 2);
            assert!((unfold(&y.view(), 2) - want).norm_max() < 1e-10);
        }
    }

    /// A tensor of multilinear rank `r` plus `noise` times Gaussian noise.
    fn low_rank(shape: &[usize], r: &[usize], noise: f64, seed: u64) -> Tensor<f64> {
        let core = rand_tensor(r, seed);
        let fs: Vec<Mat<f64>> = shape
            .iter()
            .zip(r)
            .enumerate()
            .map(|(k, (&i, &rk))| gaussian::<f64>(i, rk, seed + 1 + k as u64, 0, 0, Par::Seq))
            .collect();
        let refs: Vec<MatRef<'_, f64>> = fs.iter().map(|f| f.as_ref()).collect();
        let modes: Vec<usize> = (0..shape.len()).collect();
        let mut x = tucker_to_tensor(&core.view(), &refs, &modes, Par::Seq).unwrap();
        let e = rand_tensor(shape, seed + 100);
        for (a, b) in x.data.iter_mut().zip(&e.data) {
            *a += noise * b;
        }
        x
    }

    fn recon_err(x: &Tensor<f64>, out: &TuckerOut<f64>) -> f64 {
        let refs: Vec<MatRef<'_, f64>> = out.factors.iter().map(|f| f.as_ref()).collect();
        let xh = tucker_to_tensor(&out.core.view(), &refs, &out.modes, Par::Seq).unwrap();
        let d: f64 = x
            .data
            .iter()
            .zip(&xh.data)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        (d / x.frob_sq()).sqrt()
    }

    #[test]
    fn extreme_magnitudes_are_rescaled() {
        // squares of 1e-200 underflow (an all-zero core certified exact) and of 1e200
        // overflow (an error): the scaled rerun gives c times the core, the same error
        let x = low_rank(&[12, 10, 8], &[3, 3, 3], 0.05, 4);
        let ranks = Ranks::Fixed(vec![3, 3, 3]);
        for method in [Method::Hosvd, Method::Sthosvd, Method::Hooi] {
            let p = Params {
                method,
                ..Default::default()
            };
            let want = tucker(&x.view(), &ranks, &p, Par::Seq).unwrap();
            for c in [1e-200, 1e-160, 1e160, 1e300] {
                let xc = Tensor {
                    data: x.data.iter().map(|v| v * c).collect(),
                    shape: x.shape.clone(),
                };
                let got = tucker(&xc.view(), &ranks, &p, Par::Seq).unwrap();
                assert!(
                    (got.rel_error - want.rel_error).abs() < 1e-9,
                    "{method:?} {c}"
                );
                assert!(
                    (got.norm / c / want.norm - 1.0).abs() < 1e-12,
                    "{method:?} {c}"
                );
                for (g, w) in got.core.data.iter().zip(&want.core.data) {
                    assert!(
                        (g.abs() / c - w.abs()).abs() < 1e-8 * want.norm,
                        "{method:?} {c}"
                    );
                }
            }
        }
        // a NaN is still an error
        let mut bad = x.clone();
        bad.data[5] = f64::NAN;
        assert!(tucker(&bad.view(), &ranks, &Params::default(), Par::Seq).is_err());
    }

    #[test]
    fn sthosvd_error_identity_and_methods() {
        let x = low_rank(&[20, 15, 12], &[4, 3, 5], 0.05, 3);
        let ranks = Ranks::Fixed(vec![4, 3, 5]);
        let mut errs = Vec::new();
        for method in [Method::Hosvd, Method::Sthosvd, Method::Hooi] {
            let p = Params {
                method,
                ..Default::default()
            };
            let out = tucker(&x.view(), &ranks, &p, Par::rayon(2)).unwrap();
            let e = recon_err(&x, &out);
            if method != Method::Hosvd {
                assert!(
                    (e - out.rel_error).abs() < 1e-10 * e.max(1e-3),
                    "{method:?} {e} {}",
                    out.rel_error
                );
            } else {
                assert!(e <= out.rel_error * (1.0 + 1e-12));
            }
            errs.push(e);
        }
        assert!(errs[2] <= errs[1] * (1.0 + 1e-12));
    }

    #[test]
    fn randomized_rank_above_the_unfolding_columns_takes_the_gram_path() {
        // mode 0 of a 30 x 2 x 3 tensor has 6 columns: rank 10 cannot come from a sketch
        let x = low_rank(&[30, 2, 3], &[6, 2, 3], 0.0, 3);
        let p = Params {
            svd: ModeSvd::Randomized,
            ..Default::default()
        };
        let out = tucker(&x.view(), &Ranks::Fixed(vec![10, 2, 3]), &p, Par::Seq).unwrap();
        assert_eq!(out.core.shape, vec![10, 2, 3]);
        assert_eq!(out.solvers[0], "gram");
        assert!(recon_err(&x, &out) < 1e-12);
    }

    #[test]
    fn solvers_agree_and_tol_is_met() {
        let x = low_rank(&[30, 25, 40], &[3, 4, 5], 1e-3, 5);
        for svd in [ModeSvd::Gram, ModeSvd::Lq, ModeSvd::Randomized] {
            let p = Params {
                svd,
                ..Default::default()
            };
            let out = tucker(&x.view(), &Ranks::Fixed(vec![3, 4, 5]), &p, Par::rayon(2)).unwrap();
            let e = recon_err(&x, &out);
            assert!(e < 2e-3, "{svd:?} {e}");
            assert!(
                (e - out.rel_error).abs() < 1e-8,
                "{svd:?} {e} {}",
                out.rel_error
            );
        }
        for tol in [0.5, 1e-2, 1e-9] {
            let out = tucker(&x.view(), &Ranks::Tol(tol), &Params::default(), Par::Seq).unwrap();
            let e = recon_err(&x, &out);
            assert!(e <= tol, "{tol} {e}");
        }
        let out = tucker(&x.view(), &Ranks::Tol(1e-2), &Params::default(), Par::Seq).unwrap();
        assert_eq!(out.core.shape, vec![3, 4, 5]);
        let out = tucker(&x.view(), &Ranks::Tol(1e-9), &Params::default(), Par::Seq).unwrap();
        assert!(out.solvers.iter().all(|&s| s == "lq"));
    }

    #[test]
    fn exact_recovery_and_partial_modes() {
        let x = low_rank(&[10, 9, 8, 7], &[2, 3, 2, 3], 0.0, 7);
        let out = tucker(
            &x.view(),
            &Ranks::Fixed(vec![2, 3, 2, 3]),
            &Params::default(),
            Par::Seq,
        )
        .unwrap();
        assert!(recon_err(&x, &out) < 1e-12);
        let p = Params {
            modes: Some(vec![1, 3]),
            ..Default::default()
        };
        let out = tucker(&x.view(), &Ranks::Fixed(vec![3, 3]), &p, Par::Seq).unwrap();
        assert_eq!(out.core.shape, vec![10, 3, 8, 3]);
        assert!(recon_err(&x, &out) < 1e-12);
    }

    #[test]
    fn auto_order_contracts_the_largest_reduction_first() {
        let o = best_order(&[100, 100, 100], &[90, 5, 90], &[0, 1, 2], true);
        assert_eq!(o[0], 1);
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = rand_tensor(&[4, 5, 6], 1);
        let v = x.view();
        let d = Params::default();
        assert!(tucker(&v, &Ranks::Fixed(vec![0, 1, 1]), &d, Par::Seq).is_err());
        assert!(tucker(&v, &Ranks::Fixed(vec![5, 1, 1]), &d, Par::Seq).is_err());
        assert!(tucker(&v, &Ranks::Tol(1.0), &d, Par::Seq).is_err());
        let p = Params {
            modes: Some(vec![0, 0]),
            ..Default::default()
        };
        assert!(tucker(&v, &Ranks::Fixed(vec![1, 1]), &p, Par::Seq).is_err());
        let mut y = x.clone();
        y.data[7] = f64::NAN;
        let e = tucker(&y.view(), &Ranks::Fixed(vec![1, 1, 1]), &d, Par::Seq);
        assert!(matches!(e, Err(Error::NonFinite(_))));
    }

    #[test]
    fn progress_per_mode_and_interruption() {
        use std::sync::Mutex;
        let x = low_rank(&[12, 10, 8], &[3, 3, 2], 0.01, 7);
        let ranks = Ranks::Fixed(vec![3, 3, 2]);
        for (method, total) in [
            (Method::Sthosvd, 3),
            (Method::Hosvd, 4),
            (Method::Hooi, 3 * 51),
        ] {
            let p = Params {
                method,
                ..Default::default()
            };
            let seen = Mutex::new(Vec::new());
            let hook = |d: usize, t: usize| {
                seen.lock().unwrap().push((d, t));
                true
            };
            tucker_with_progress(&x.view(), &ranks, &p, Par::Seq, &hook).unwrap();
            let seen = seen.into_inner().unwrap();
            assert_eq!(seen[0], (0, total));
            assert_eq!(*seen.last().unwrap(), (total, total));
            assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
            let stop = |d: usize, _t: usize| d < 1;
            let r = tucker_with_progress(&x.view(), &ranks, &p, Par::Seq, &stop);
            assert!(matches!(r, Err(Error::Interrupted)));
        }
    }
}
