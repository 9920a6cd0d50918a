//! Randomized SVD (Halko, Martinsson & Tropp 2011), its adaptive-rank variant (randQB_EI, Yu,
//! Gu & Li 2018), the Gram + eigh path for tall-skinny dense matrices, and an a-posteriori
//! estimate of the spectral-norm error.
//!
//! All entry points work on a [`LinOp`], so dense arrays of any strides, CSR matrices and
//! implicitly centred matrices share one implementation. Wide operators are transposed
//! (the algorithms run on the tall side) and the factors swapped back at the end.
use crate::error::{invalid, Error, Result};
use crate::linop::{LinOp, Residual, Transposed};
use crate::progress::{report, Progress, SILENT};
use crate::rng::gaussian;
use crate::scalar::Real;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::{matmul, triangular};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatRef, Par, Side};

/// How the blocks are re-normalized between power iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalizer {
    /// `None` when `n_iter <= 2`, else `Lu` (scikit-learn's rule).
    Auto,
    None,
    /// Partial-pivoting LU: cheapest, keeps the span well conditioned.
    Lu,
    /// Householder QR: slower, orthonormal.
    Qr,
    /// Gram + eigh of the block in f64 (SVQB, Stathopoulos & Wu 2002): two GEMM-shaped
    /// passes over the block, far faster than LU or QR on tall blocks; resolves directions down
    /// to sqrt(eps_f64) ~ 1.5e-8 of the block's largest singular value.
    Svqb,
}

/// Which algorithm computes a fixed-rank SVD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    /// Gram + eigh when it is cheaper and accurate enough (dense input only), else randomized.
    Auto,
    Randomized,
    /// Gram + eigh (dense input only).
    Gram,
}

/// Parameters of [`rsvd`].
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub n_oversamples: usize,
    /// `None`: scikit-learn's rule (7 if `k < 0.1 min(m, n)` else 4).
    pub n_iter: Option<usize>,
    pub normalizer: Normalizer,
    pub seed: u64,
    pub solver: Solver,
    /// Run the power iterations of a dense float64 matrix in float32 ([`gram_apply_f32`]):
    /// about 1.8x faster passes; the sketch, the final projection and the SVD stay in
    /// float64. Directions below about `sqrt(eps_f32) sigma_1 = 3.5e-4 sigma_1` are not
    /// resolved by the iterations (they are by the float64 sketch alone), so use it when the
    /// rank-k tail is well above that. Ignored for float32, sparse or rescaled input, and
    /// with an explicit normalizer.
    pub power_f32: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            n_oversamples: 10,
            n_iter: None,
            normalizer: Normalizer::Auto,
            seed: 0,
            solver: Solver::Auto,
            power_f32: false,
        }
    }
}

/// `A ~= U diag(s) V^T` with `U`: m x k, `V`: n x k (so `Vh = V^T`).
pub struct SvdOut<T> {
    pub u: Mat<T>,
    pub s: Vec<T>,
    pub v: Mat<T>,
    /// Relative Frobenius error `||A - U S V^T||_F / ||A||_F` certified by the adaptive
    /// algorithm (only in tolerance mode).
    pub rel_error: Option<f64>,
    /// The algorithm that produced the result ("randomized", "gram", "exact", "randqb").
    pub solver: &'static str,
}

/// scikit-learn's `n_iter="auto"` rule.
pub fn auto_n_iter(k: usize, m: usize, n: usize) -> usize {
    if (k as f64) < 0.1 * (m.min(n) as f64) {
        7
    } else {
        4
    }
}

fn one<T: Real>() -> T {
    T::from_f64(1.0)
}

fn non_finite() -> Error {
    Error::NonFinite(
        "A contains NaN or infinity (or values so large that products with A overflow); \
         remove or rescale them first"
            .into(),
    )
}

fn all_finite<T: Real>(a: MatRef<'_, T>) -> bool {
    (0..a.ncols()).all(|j| (0..a.nrows()).all(|i| a[(i, j)].to_f64().is_finite()))
}

fn is_zero<T: Real>(a: MatRef<'_, T>) -> bool {
    (0..a.ncols()).all(|j| (0..a.nrows()).all(|i| a[(i, j)].to_f64() == 0.0))
}

fn frob_sq_of<T: Real>(a: MatRef<'_, T>) -> f64 {
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let v = a[(i, j)].to_f64();
            s += v * v;
        }
    }
    s
}

/// `||a||_F` of a small block without overflow or underflow (`max |a_ij|` times the norm of
/// `a / max`): squares of entries beyond about 1e154 overflow, below 1e-154 lose their digits.
/// NaN when `a` holds a NaN or an infinity.
fn norm_of<T: Real>(a: MatRef<'_, T>) -> f64 {
    let amax = block_max_abs(a);
    if !amax.is_finite() || amax == 0.0 {
        return amax;
    }
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let v = a[(i, j)].to_f64() / amax;
            s += v * v;
        }
    }
    amax * s.sqrt()
}

fn apply<T: Real>(op: &dyn LinOp<T>, x: MatRef<'_, T>, par: Par) -> Mat<T> {
    let mut y = Mat::zeros(op.nrows(), x.ncols());
    op.apply(y.as_mut(), x, par);
    y
}

fn apply_t<T: Real>(op: &dyn LinOp<T>, y: MatRef<'_, T>, par: Par) -> Mat<T> {
    let mut z = Mat::zeros(op.ncols(), y.ncols());
    op.apply_t(z.as_mut(), y, par);
    z
}

/// `work(0) + work(1) + ... + work(nt - 1)`, the terms computed in parallel and added in
/// thread order (so the sum is fixed for a given thread count).
fn sum_over_threads<U: Real>(nt: usize, work: impl Fn(usize) -> Mat<U> + Sync + Send) -> Mat<U> {
    let parts: Vec<Mat<U>> = if nt > 1 {
        use rayon::prelude::*;
        (0..nt).into_par_iter().map(work).collect()
    } else {
        vec![work(0)]
    };
    let mut it = parts.into_iter();
    let mut z = it.next().expect("at least one part");
    for p in it {
        z += p;
    }
    z
}

/// Threads for a row split of `m` rows.
fn row_threads(par: Par, m: usize) -> usize {
    match par {
        Par::Seq => 1,
        Par::Rayon(t) => t.get(),
    }
    .min(m.max(1))
}

/// `A x` by L2-sized row blocks of `A` (each block is read once and multiplied while in
/// cache; threads own fixed row ranges): the single product of the Dask passes, about 1.3x
/// faer's plain GEMM for a tall `A` and a thin `x`.
pub fn rows_apply<T: Real>(a: MatRef<'_, T>, x: MatRef<'_, T>, par: Par) -> Mat<T> {
    let (m, n) = a.shape();
    let l = x.ncols();
    let nt = row_threads(par, m);
    let h = fused_rows::<T>(n);
    let mut y = Mat::<T>::zeros(m, l);
    let work = |r0: usize, mut yt: faer::MatMut<'_, T>| {
        let mut r = 0;
        while r < yt.nrows() {
            let hb = h.min(yt.nrows() - r);
            let yb = yt.rb_mut().subrows_mut(r, hb);
            matmul(
                yb,
                Accum::Replace,
                a.subrows(r0 + r, hb),
                x,
                one(),
                Par::Seq,
            );
            r += hb;
        }
    };
    if nt > 1 {
        use rayon::prelude::*;
        let mut pieces = Vec::with_capacity(nt);
        let mut rest = y.as_mut();
        for t in 0..nt {
            let len = m * (t + 1) / nt - m * t / nt;
            let (top, bottom) = rest.split_at_row_mut(len);
            pieces.push((m * t / nt, top));
            rest = bottom;
        }
        pieces.into_par_iter().for_each(|(r0, yt)| work(r0, yt));
    } else {
        work(0, y.as_mut());
    }
    y
}

/// `A^T y` by L2-sized row blocks of `A`, per-thread accumulators summed in thread order
/// (deterministic for a thread count).
pub fn rows_apply_t<T: Real>(a: MatRef<'_, T>, y: MatRef<'_, T>, par: Par) -> Mat<T> {
    let (m, n) = a.shape();
    let l = y.ncols();
    let nt = row_threads(par, m);
    let h = fused_rows::<T>(n);
    let work = |t: usize| -> Mat<T> {
        let (r0, r1) = (m * t / nt, m * (t + 1) / nt);
        let mut z = Mat::<T>::zeros(n, l);
        let mut r = r0;
        while r < r1 {
            let hb = h.min(r1 - r);
            let ab = a.subrows(r, hb);
            matmul(
                z.as_mut(),
                Accum::Add,
                ab.transpose(),
                y.subrows(r, hb),
                one(),
                Par::Seq,
            );
            r += hb;
        }
        z
    };
    sum_over_threads(nt, work)
}

fn mul<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>, par: Par) -> Mat<T> {
    let mut c = Mat::zeros(a.nrows(), b.ncols());
    matmul(c.as_mut(), Accum::Replace, a, b, one(), par);
    c
}

/// `y -= a b`
fn sub_mul<T: Real>(y: &mut Mat<T>, a: MatRef<'_, T>, b: MatRef<'_, T>, par: Par) {
    if a.ncols() > 0 {
        matmul(y.as_mut(), Accum::Add, a, b, T::from_f64(-1.0), par);
    }
}

/// Orthonormal basis of the columns of `y` (thin Householder QR), consuming `y` so that at
/// most two blocks of its size are alive.
fn orthonormalize<T: Real>(y: Mat<T>) -> Mat<T> {
    let qr = y.qr();
    drop(y);
    qr.compute_thin_Q()
}

/// Orthonormal basis of the columns of `z` (the thin Q of a Householder QR), computed in
/// float64 whatever `T`: the per-pass QR of the Dask route. In Rust rather than NumPy, so
/// that a pass does not wake OpenBLAS's helper threads (which then spin on the cores of the
/// next pass's kernels); in float64 because a float32 QR of the graded iterate cost the
/// float32 power iterations 8e-5 of relative error (see [`gram_apply_f32`]).
pub fn thin_q<T: Real>(z: MatRef<'_, T>) -> Mat<T> {
    let (m, n) = z.shape();
    if !all_finite(z) {
        // faer's QR can return finite columns for a NaN input: keep the NaN visible to the
        // caller's finiteness check instead
        return Mat::<T>::from_fn(m, n.min(m), |_, _| T::from_f64(f64::NAN));
    }
    let q = orthonormalize(Mat::<f64>::from_fn(m, n, |i, j| z[(i, j)].to_f64()));
    Mat::<T>::from_fn(q.nrows(), q.ncols(), |i, j| T::from_f64(q[(i, j)]))
}

/// Overwrites `y` with `P^T L` from a partial-pivoting LU of `y` (scikit-learn's
/// `lu(permute_l=True)`), using one extra block for the factorization. Returns false (and
/// leaves `y` untouched) when a zero pivot made the factor non-finite (rank-deficient block).
fn lu_normalize<T: Real>(y: &mut Mat<T>, lu: &mut Mat<T>, par: Par) -> bool {
    use faer::linalg::lu::partial_pivoting::factor::{lu_in_place, lu_in_place_scratch};
    let (m, l) = y.shape();
    lu.copy_from(&*y);
    let mut perm = vec![0usize; m];
    let mut perm_inv = vec![0usize; m];
    let mut mem = MemBuffer::new(lu_in_place_scratch::<usize, T>(
        m,
        l,
        par,
        Default::default(),
    ));
    lu_in_place(
        lu.as_mut(),
        &mut perm,
        &mut perm_inv,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    );
    drop(mem);
    if !all_finite(lu.as_ref()) {
        return false;
    }
    // Row i of the unit lower trapezoid L belongs at row perm[i]; scatter column by column.
    let zero = T::from_f64(0.0);
    for j in 0..l {
        let src = lu.col(j);
        let mut dst = y.col_mut(j);
        for i in 0..j {
            dst[perm[i]] = zero;
        }
        dst[perm[j]] = one();
        for i in j + 1..m {
            dst[perm[i]] = src[i];
        }
    }
    true
}

/// `Y V diag(lambda)^(-1/2)` from the eigendecomposition of the f64 Gram matrix `Y^T Y`:
/// orthonormal columns up to `eps * kappa(Y)^2`, the same span. Directions whose eigenvalue
/// is below `eps_f64 * lambda_max` (rank deficiency) are kept at the scale of the largest.
/// The result goes to `out` (same shape as `y`); false if the Gram matrix is degenerate.
/// float32 blocks are normalized in f64 (converted, then rounded back): the product `Y W`
/// would otherwise lose directions once kappa(Y) nears 1/eps_f32.
fn svqb_normalize<T: Real>(y: MatRef<'_, T>, out: &mut Mat<T>, par: Par) -> bool {
    let (m, l) = y.shape();
    let y64;
    let yv: MatRef<'_, f64> = if T::IS_F64 {
        // SAFETY: T is f64 (IS_F64), so the view has the same layout.
        unsafe {
            MatRef::from_raw_parts(
                y.as_ptr() as *const f64,
                m,
                l,
                y.row_stride(),
                y.col_stride(),
            )
        }
    } else {
        y64 = Mat::<f64>::from_fn(m, l, |i, j| y[(i, j)].to_f64());
        y64.as_ref()
    };
    let g = gram_f64(yv, 1.0, par);
    let Ok(evd) = g.self_adjoint_eigen(Side::Lower) else {
        return false;
    };
    let lam = evd.S().column_vector();
    let lmax = lam[l - 1].max(0.0);
    if !(lmax > 0.0 && lmax.is_finite()) {
        return false;
    }
    let floor = lmax * f64::EPSILON;
    let v = evd.U();
    let w = Mat::<f64>::from_fn(l, l, |i, j| v[(i, j)] / lam[j].max(floor).sqrt());
    if T::IS_F64 {
        // SAFETY: as above, `out` holds f64.
        let o = unsafe {
            faer::MatMut::<f64>::from_raw_parts_mut(
                out.as_ptr_mut() as *mut f64,
                m,
                l,
                out.row_stride(),
                out.col_stride(),
            )
        };
        matmul(o, Accum::Replace, yv, w.as_ref(), 1.0, par);
    } else {
        let r = mul(yv, w.as_ref(), par);
        for j in 0..l {
            for i in 0..m {
                out[(i, j)] = T::from_f64(r[(i, j)]);
            }
        }
    }
    true
}

/// Re-normalizes the block `y` in place (its storage may be swapped with `spare`, a block of
/// the same shape allocated on first use and reused across iterations).
fn normalize<T: Real>(y: &mut Mat<T>, spare: &mut Option<Mat<T>>, how: Normalizer, par: Par) {
    let qr = |y: &mut Mat<T>| {
        let t = std::mem::replace(y, Mat::new());
        *y = orthonormalize(t);
    };
    if y.nrows() < y.ncols() {
        if how != Normalizer::None && how != Normalizer::Auto {
            qr(y);
        }
        return;
    }
    let buf = spare.get_or_insert_with(|| Mat::zeros(y.nrows(), y.ncols()));
    match how {
        Normalizer::None | Normalizer::Auto => {}
        Normalizer::Qr => qr(y),
        Normalizer::Svqb => {
            if svqb_normalize(y.as_ref(), buf, par) {
                std::mem::swap(y, buf);
            } else {
                qr(y);
            }
        }
        Normalizer::Lu => {
            if !lu_normalize(y, buf, par) {
                qr(y);
            }
        }
    }
}

/// Thin SVD `a = U diag(s) V^T` computed in f64 (float32 input is converted: the small and
/// exact SVDs are cheap next to the passes over A, and f64 keeps them at float32's rounding
/// level or better).
struct ThinSvd<T> {
    u: Mat<T>,
    s: Vec<f64>,
    v: Mat<T>,
}

fn thin_svd_f64<T: Real>(a: MatRef<'_, T>) -> Result<ThinSvd<T>> {
    let conv =
        |m: MatRef<'_, f64>| Mat::<T>::from_fn(m.nrows(), m.ncols(), |i, j| T::from_f64(m[(i, j)]));
    let a64;
    let a64v = if T::IS_F64 {
        // SAFETY: T is f64 (IS_F64), so the view has the same layout.
        unsafe {
            MatRef::<f64>::from_raw_parts(
                a.as_ptr() as *const f64,
                a.nrows(),
                a.ncols(),
                a.row_stride(),
                a.col_stride(),
            )
        }
    } else {
        a64 = Mat::<f64>::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)].to_f64());
        a64.as_ref()
    };
    let svd = a64v
        .thin_svd()
        .map_err(|e| Error::LinAlg(format!("SVD did not converge: {e:?}")))?;
    let s = svd.S().column_vector();
    Ok(ThinSvd {
        u: conv(svd.U()),
        s: (0..s.nrows()).map(|i| s[i]).collect(),
        v: conv(svd.V()),
    })
}

/// The largest magnitude of a block, NaN if it holds a NaN.
fn block_max_abs<T: Real>(a: MatRef<'_, T>) -> f64 {
    crate::linop::dense_max_abs(a, Par::Seq)
}

/// Whether a magnitude (of entries, or squared when `squared`) is outside the safe range.
fn out_of_range<T: Real>(mag: f64, squared: bool) -> bool {
    let (lo, hi) = if squared {
        (T::SAFE_LO * T::SAFE_LO, T::SAFE_HI * T::SAFE_HI)
    } else {
        (T::SAFE_LO, T::SAFE_HI)
    };
    mag.is_finite() && (mag < lo || mag > hi)
}

/// Runs `f`; if it asks for rescaling (magnitudes that would underflow or overflow), scales
/// the operator by a power of two near `1 / max|a_ij|`, reruns, and scales `s` back. A zero
/// operator gives `zero()`. A non-finite intermediate from a finite operator is an overflow
/// of its products (entries of 1e160 square to infinity in `A^T A X`): rescaled the same way,
/// at the cost of one pass over `A` to tell it from a NaN or infinity in `A`.
fn with_rescale<T: Real>(
    op: &dyn LinOp<T>,
    par: Par,
    f: impl Fn(&dyn LinOp<T>) -> Result<SvdOut<T>>,
    zero: impl FnOnce() -> SvdOut<T>,
) -> Result<SvdOut<T>> {
    match f(op) {
        Err(e @ (Error::Rescale | Error::NonFinite(_))) => {
            let amax = op.max_abs(par);
            if !amax.is_finite() {
                return Err(non_finite());
            }
            if matches!(e, Error::NonFinite(_)) && amax > 0.0 && !out_of_range::<T>(amax, false) {
                // entries in the safe range cannot overflow the products: keep the error
                return Err(e);
            }
            if amax == 0.0 {
                return Ok(zero());
            }
            let c = crate::scalar::pow2_near_inverse::<T>(amax);
            let scaled = crate::linop::Scaled { inner: op, c };
            let mut out = match f(&scaled) {
                Err(Error::Rescale) => {
                    return Err(Error::LinAlg("cannot rescale A into a safe range".into()))
                }
                other => other?,
            };
            for s in out.s.iter_mut() {
                *s = T::from_f64(s.to_f64() / c);
            }
            if out.s.first().is_some_and(|s| !s.to_f64().is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "the largest singular value of A is beyond {}'s range (A's entries are \
                     finite but too large); scale A down first",
                    crate::scalar::dtype_name::<T>()
                )));
            }
            Ok(out)
        }
        other => other,
    }
}

/// scikit-learn's u-based `svd_flip`: the largest-magnitude entry of each column of U is
/// positive (first one on ties).
pub fn flip_signs<T: Real>(u: &mut Mat<T>, v: &mut Mat<T>) {
    for j in 0..u.ncols() {
        let mut best = 0usize;
        let mut best_abs = -1.0f64;
        for i in 0..u.nrows() {
            let a = u[(i, j)].to_f64().abs();
            if a > best_abs {
                best_abs = a;
                best = i;
            }
        }
        if u.nrows() > 0 && u[(best, j)].to_f64() < 0.0 {
            for i in 0..u.nrows() {
                u[(i, j)] = -u[(i, j)];
            }
            for i in 0..v.nrows() {
                v[(i, j)] = -v[(i, j)];
            }
        }
    }
}

fn zero_svd<T: Real>(m: usize, n: usize, k: usize, solver: &'static str) -> SvdOut<T> {
    let eye =
        |r: usize| Mat::<T>::from_fn(r, k, |i, j| if i == j { one() } else { T::from_f64(0.0) });
    SvdOut {
        u: eye(m),
        s: vec![T::from_f64(0.0); k],
        v: eye(n),
        rel_error: None,
        solver,
    }
}

fn check_rank(k: usize, m: usize, n: usize) -> Result<()> {
    if m == 0 || n == 0 {
        return invalid(format!(
            "A is empty (shape {m} x {n}); it needs at least one row and one column"
        ));
    }
    if k == 0 || k > m.min(n) {
        return invalid(format!(
            "k={k} is out of range: it must satisfy 1 <= k <= min(m, n) = {}",
            m.min(n)
        ));
    }
    Ok(())
}

/// Runs `f` on the tall orientation of `op` and maps the factors back, then fixes signs.
fn on_tall<T: Real>(
    op: &dyn LinOp<T>,
    f: impl FnOnce(&dyn LinOp<T>) -> Result<SvdOut<T>>,
) -> Result<SvdOut<T>> {
    let mut out = if op.nrows() < op.ncols() {
        let t = Transposed(op);
        let mut out = f(&t)?;
        std::mem::swap(&mut out.u, &mut out.v);
        out
    } else {
        f(op)?
    };
    if !all_finite(out.u.as_ref())
        || !all_finite(out.v.as_ref())
        || out.s.iter().any(|s| !s.to_f64().is_finite())
    {
        return Err(Error::LinAlg("the SVD produced non-finite values".into()));
    }
    flip_signs(&mut out.u, &mut out.v);
    Ok(out)
}

/// Rank-`k` truncated SVD of `op` (see [`Params`]).
pub fn rsvd<T: Real>(op: &dyn LinOp<T>, k: usize, params: &Params, par: Par) -> Result<SvdOut<T>> {
    rsvd_with_progress(op, k, params, par, &SILENT)
}

/// [`rsvd`] reporting to `progress` after each power iteration (`total` = iterations + 1; the
/// Gram path reports 2 steps, the exact path 1). Returns [`Error::Interrupted`] when the hook
/// asks to stop.
pub fn rsvd_with_progress<T: Real>(
    op: &dyn LinOp<T>,
    k: usize,
    params: &Params,
    par: Par,
    progress: &dyn Progress,
) -> Result<SvdOut<T>> {
    let (m, n) = (op.nrows(), op.ncols());
    check_rank(k, m, n)?;
    on_tall(op, |op| {
        with_rescale(
            op,
            par,
            |op| rsvd_tall(op, k, params, par, progress),
            || zero_svd(op.nrows(), op.ncols(), k, "randomized"),
        )
    })
}

fn rsvd_tall<T: Real>(
    op: &dyn LinOp<T>,
    k: usize,
    params: &Params,
    par: Par,
    progress: &dyn Progress,
) -> Result<SvdOut<T>> {
    let (m, n) = (op.nrows(), op.ncols());
    let q = params.n_iter.unwrap_or_else(|| auto_n_iter(k, m, n));
    let l = (k + params.n_oversamples).min(n);
    // A dense operator that with_rescale scaled (A^T A of its entries would leave float64's
    // range) keeps the Gram path: its Gram matrix is formed from scaled row blocks.
    if let Some((a, c)) = op.as_scaled_dense() {
        match params.solver {
            Solver::Gram => {
                return Ok(
                    gram_svd(a, c, k, true, par, progress)?.expect("forced Gram path returns")
                )
            }
            Solver::Auto => {
                if prefer_gram(m, n, k, l, q) {
                    if let Some(out) = gram_svd(a, c, k, false, par, progress)? {
                        return Ok(out);
                    }
                }
                if l >= n && c == 1.0 {
                    report(progress, 0, 1)?;
                    let out = exact_svd(a, k)?;
                    report(progress, 1, 1)?;
                    return Ok(out);
                }
            }
            Solver::Randomized => {}
        }
    }
    // Sparse operators always take the randomized path.
    randomized(op, k, l, q, params, par, progress)
}

/// The cost rule of the Gram path: `A^T A` (m n^2 flops as a SYRK), its eigh (~9 n^3), one
/// refinement product `A V_k` (2 m n k), against the `2q + 2` passes of `2 m n l` flops of the
/// randomized method. The Gram matrix (n^2 doubles) is capped at 4096^2.
pub fn prefer_gram(m: usize, n: usize, k: usize, l: usize, q: usize) -> bool {
    let (m, n, k, l, q) = (m as f64, n as f64, k as f64, l as f64, q as f64);
    let gram = m * n * n + 9.0 * n * n * n + 2.0 * m * n * k;
    let rand = (2.0 * q + 2.0) * 2.0 * m * n * l;
    n <= 4096.0 && gram < rand
}

/// Exact thin SVD of a dense matrix (used when the sketch would span all columns anyway).
fn exact_svd<T: Real>(a: MatRef<'_, T>, k: usize) -> Result<SvdOut<T>> {
    let amax = block_max_abs(a);
    if !amax.is_finite() {
        return Err(non_finite());
    }
    if amax == 0.0 || out_of_range::<T>(amax, false) {
        return Err(Error::Rescale);
    }
    let svd = thin_svd_f64(a)?;
    Ok(SvdOut {
        u: svd.u.subcols(0, k).to_owned(),
        s: svd.s[..k].iter().map(|&x| T::from_f64(x)).collect(),
        v: svd.v.subcols(0, k).to_owned(),
        rel_error: None,
        solver: "exact",
    })
}

/// `(c A)^T (c A)` in f64 (lower triangle), `c` a power of two applied before squaring (1 for
/// most callers; a rescaled operator's scale for the Gram path). f32 input, or `c != 1`, goes
/// over row blocks converted to f64.
fn gram_f64<T: Real>(a: MatRef<'_, T>, c: f64, par: Par) -> Mat<f64> {
    let (m, n) = a.shape();
    let nt = match par {
        Par::Seq => 1,
        Par::Rayon(t) => t.get(),
    };
    // Tall inputs: each thread sums the Gram matrix of its own contiguous rows (faer's
    // parallel SYRK splits the small output, which leaves threads idle when n << m); partial
    // sums are added in thread order, so results are fixed for a given thread count.
    if nt > 1 && m >= 64 * n * nt {
        return sum_over_threads(nt, |t| {
            gram_f64_seq(
                a.subrows(m * t / nt, m * (t + 1) / nt - m * t / nt),
                c,
                Par::Seq,
            )
        });
    }
    gram_f64_seq(a, c, par)
}

fn gram_f64_seq<T: Real>(a: MatRef<'_, T>, c: f64, par: Par) -> Mat<f64> {
    use triangular::BlockStructure::{Rectangular, TriangularLower};
    let (m, n) = a.shape();
    let mut g = Mat::<f64>::zeros(n, n);
    if T::IS_F64 && c == 1.0 {
        // SAFETY: T is f64 (checked by IS_F64), so the view has the same layout.
        let a64 = unsafe {
            MatRef::<f64>::from_raw_parts(
                a.as_ptr() as *const f64,
                m,
                n,
                a.row_stride(),
                a.col_stride(),
            )
        };
        triangular::matmul(
            g.as_mut(),
            TriangularLower,
            Accum::Replace,
            a64.transpose(),
            Rectangular,
            a64,
            Rectangular,
            1.0,
            par,
        );
    } else {
        let rows = ((8usize << 20) / (8 * n.max(1))).max(64);
        let mut r0 = 0;
        while r0 < m {
            let h = rows.min(m - r0);
            let blk = Mat::<f64>::from_fn(h, n, |i, j| a[(r0 + i, j)].to_f64() * c);
            triangular::matmul(
                g.as_mut(),
                TriangularLower,
                Accum::Add,
                blk.transpose(),
                Rectangular,
                blk.as_ref(),
                Rectangular,
                1.0,
                par,
            );
            r0 += h;
        }
    }
    g
}

/// CholeskyQR2 (Fukaya et al. 2014) of a tall block: `y = Q R` from two Cholesky
/// factorizations of f64 Gram matrices. `None` when a Cholesky factorization fails
/// (conditioning beyond ~1e7).
fn cholqr2<T: Real>(y: &Mat<T>, par: Par) -> Option<(Mat<T>, Mat<T>)> {
    use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
    let k = y.ncols();
    let mut q = y.clone();
    let mut r = Mat::<f64>::identity(k, k);
    for _ in 0..2 {
        let g = gram_f64(q.as_ref(), 1.0, par);
        let llt = g.llt(Side::Lower).ok()?;
        let l = llt.L();
        let lt = Mat::<T>::from_fn(k, k, |i, j| T::from_f64(l[(i, j)]));
        // Q <- Q L^{-T}, i.e. Q^T <- L^{-1} Q^T
        solve_lower_triangular_in_place(lt.as_ref(), q.as_mut().transpose_mut(), par);
        r = l.transpose() * &r;
    }
    if !all_finite(q.as_ref()) {
        return None;
    }
    let r = Mat::<T>::from_fn(k, k, |i, j| T::from_f64(r[(i, j)]));
    Some((q, r))
}

/// Gram + eigh for a tall dense matrix, refined by one product: `A V_k = Q R`, `R = Ur S Wr^T`
/// gives `U = Q Ur` (orthonormal to rounding) and `V = V_k Wr`. Returns `None` (unless
/// `force`) when `lambda_k < 1e-10 lambda_1`: below that the f64 Gram matrix cannot resolve the
/// k-th direction reliably, and the caller falls back to the randomized method.
fn gram_svd<T: Real>(
    a: MatRef<'_, T>,
    c: f64,
    k: usize,
    force: bool,
    par: Par,
    progress: &dyn Progress,
) -> Result<Option<SvdOut<T>>> {
    let (m, n) = a.shape();
    debug_assert!(m >= n);
    report(progress, 0, 2)?;
    let g = gram_f64(a, c, par);
    if (0..n).any(|i| !g[(i, i)].is_finite()) {
        return Err(non_finite());
    }
    let dmax = (0..n).fold(0.0f64, |a, i| a.max(g[(i, i)]));
    // the f64 Gram matrix holds float32 data of 1e-40 fine, but U = A V / s in T does not
    // (S came out 0): T's range decides too
    if dmax == 0.0 || out_of_range::<f64>(dmax, true) || out_of_range::<T>(dmax.sqrt(), false) {
        return Err(Error::Rescale);
    }
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinAlg(format!("eigendecomposition did not converge: {e:?}")))?;
    drop(g);
    let lam = evd.S().column_vector();
    let lmax = lam[n - 1].max(0.0);
    if !force && lam[n - k] < 1e-10 * lmax {
        return Ok(None);
    }
    report(progress, 1, 2)?;
    let evec = evd.U();
    let vk = Mat::<T>::from_fn(n, k, |i, j| T::from_f64(evec[(i, n - 1 - j)]));
    let mut y = mul(a, vk.as_ref(), par);
    if c != 1.0 {
        // (c A) V_k: the product of the unscaled A stays in range (no squares), the power
        // of two is exact
        let ct = T::from_f64(c);
        for j in 0..k {
            for v in y.col_as_slice_mut(j) {
                *v *= ct;
            }
        }
    }
    // kappa(A V_k) <= sqrt(lambda_1 / lambda_k) <= 1e5 here, well inside CholeskyQR2's range
    // in float64 (GEMM-shaped, ~8x faster than faer's Householder QR on a 200000 x 20 block).
    let (qm, r) = match if T::IS_F64 { cholqr2(&y, par) } else { None } {
        Some(qr) => qr,
        None => {
            let qr = y.qr();
            drop(y);
            (qr.compute_thin_Q(), qr.thin_R().to_owned())
        }
    };
    let small = thin_svd_f64(r.as_ref())?;
    report(progress, 2, 2)?;
    Ok(Some(SvdOut {
        u: mul(qm.as_ref(), small.u.as_ref(), par),
        s: small.s[..k].iter().map(|&x| T::from_f64(x)).collect(),
        v: mul(vk.as_ref(), small.v.as_ref(), par),
        rel_error: None,
        solver: "gram",
    }))
}

/// HMT Algorithm 4.4 with normalized power iterations, then `B^T = A^T Q` and a thin SVD.
#[allow(clippy::too_many_arguments)]
fn randomized<T: Real>(
    op: &dyn LinOp<T>,
    k: usize,
    l: usize,
    q: usize,
    params: &Params,
    par: Par,
    progress: &dyn Progress,
) -> Result<SvdOut<T>> {
    let (normalizer, seed) = (params.normalizer, params.seed);
    let (m, n) = (op.nrows(), op.ncols());
    report(progress, 0, q + 1)?;
    let how = match normalizer {
        Normalizer::Auto if q <= 2 => Normalizer::None,
        // scikit-learn uses LU. Here faer's LU and QR of a tall block run at ~11 GFLOP/s (110
        // ms for 100000 x 110, as long as a sparse pass). SVQB is two GEMM-shaped products
        // with an f64 Gram matrix (and f64 arithmetic for float32 blocks): 25-60% faster, and
        // it resolves directions down to sqrt(eps_f64) sigma_1 = 1.5e-8 sigma_1, below
        // float32's own rounding. LU in float32 lost accuracy (1.08x sklearn's error on the
        // 8000 x 4000 benchmark).
        Normalizer::Auto => Normalizer::Svqb,
        other => other,
    };
    let omega = gaussian::<T>(n, l, seed, 0, 0, par);
    if let (true, Some(a)) = (fused_allowed::<T>(how, q), op.as_dense()) {
        // Fused passes: Z = A^T (A X) reads each row block of A once for both products.
        let mut x = omega;
        if let (true, Some(a64)) = (params.power_f32, as_f64(a)) {
            // Mixed precision: (s A)^T ((s A) X) in float32 with s = 2^-e, |s A| <= 1.
            let amax = crate::linop::dense_max_abs(a64, par);
            if !amax.is_finite() {
                return Err(non_finite());
            }
            if amax == 0.0 {
                return Ok(zero_svd(m, n, k, "randomized"));
            }
            if out_of_range::<T>(amax, false) {
                // the float64 passes after the iterations need the rescaled operator
                return Err(Error::Rescale);
            }
            let scale = pow2_scale(amax);
            let mut x32 = Mat::<f32>::from_fn(n, l, |i, j| x[(i, j)].to_f64() as f32);
            for it in 0..q {
                x32 = thin_q(gram_apply_f32(a64, x32.as_ref(), scale, par).as_ref());
                report(progress, it + 1, q + 1)?;
            }
            x = Mat::<T>::from_fn(n, l, |i, j| T::from_f64(x32[(i, j)] as f64));
        } else {
            for it in 0..q {
                let z = gram_apply(a, x.as_ref(), par);
                if it == 0 {
                    let zmax = block_max_abs(z.as_ref());
                    if !zmax.is_finite() {
                        return Err(non_finite());
                    }
                    if zmax == 0.0 || out_of_range::<T>(zmax, true) {
                        return Err(Error::Rescale);
                    }
                }
                x = orthonormalize(z);
                report(progress, it + 1, q + 1)?;
            }
        }
        let y = apply(op, x.as_ref(), par);
        drop(x);
        if !all_finite(y.as_ref()) {
            return Err(non_finite());
        }
        if is_zero(y.as_ref()) {
            return Ok(zero_svd(m, n, k, "randomized"));
        }
        let qm = orthonormalize(y);
        let bt = apply_t(op, qm.as_ref(), par);
        let out = small_svd(qm, bt, k, par, None, "randomized")?;
        report(progress, q + 1, q + 1)?;
        return Ok(out);
    }
    let mut y = apply(op, omega.as_ref(), par);
    drop(omega);
    // Every column of Omega is nonzero almost surely, so a NaN or infinity anywhere in A
    // shows up in Y: this is the finiteness check, at no extra pass over A. Magnitudes near
    // underflow or overflow (or an all-zero Y) send the caller to rescale.
    let ymax = block_max_abs(y.as_ref());
    if !ymax.is_finite() {
        return Err(non_finite());
    }
    if ymax == 0.0 || out_of_range::<T>(ymax, false) {
        return Err(Error::Rescale);
    }
    // Four blocks, allocated once: Y and Z and a spare of each for the normalizations.
    let (mut yspare, mut zspare) = (None, None);
    let mut z = Mat::<T>::zeros(n, l);
    for it in 0..q {
        normalize(&mut y, &mut yspare, how, par);
        op.apply_t(z.as_mut(), y.as_ref(), par);
        // LU keeps the span but not the conditioning: after LU-normalized passes the columns
        // of A Z are nearly parallel and the final QR loses the trailing directions to
        // rounding (measurably in float32). Orthonormalizing the last Z costs one small QR
        // and makes the final block as well conditioned as with QR throughout.
        let last = if how == Normalizer::Lu && it + 1 == q {
            Normalizer::Qr
        } else {
            how
        };
        normalize(&mut z, &mut zspare, last, par);
        op.apply(y.as_mut(), z.as_ref(), par);
        report(progress, it + 1, q + 1)?;
    }
    drop((yspare, zspare, z));
    // float32: the final QR in f64. SVQB leaves its columns in ascending order of their
    // eigenvalues, so the last block holds columns of 1e-12..1e-8 nearly parallel to u_1
    // before the dominant one, and faer's f32 Householder QR of that graded block missed u_1
    // by 1e-4 of ||A|| on rank-1 matrices (f64, or LAPACK's sgeqrf, gives 1e-7).
    let qm = if T::IS_F64 {
        orthonormalize(y)
    } else {
        thin_q(y.as_ref())
    };
    let bt = apply_t(op, qm.as_ref(), par);
    let out = small_svd(qm, bt, k, par, None, "randomized")?;
    report(progress, q + 1, q + 1)?;
    Ok(out)
}

/// Whether the power iterations run fused (`A^T (A X)` per row block, normalized by QR
/// after each full step): only with the automatic normalizer (an explicit "LU"/"QR" gets
/// exactly the split scheme it names). Skipping the half-step normalization squares the
/// conditioning of each step: directions below `sqrt(eps) sigma_1` are lost, which is 1.5e-8
/// in float64 (the same floor as the SVQB normalizer) but 3.5e-4 in float32, so float32 keeps
/// the split passes.
fn fused_allowed<T: Real>(how: Normalizer, q: usize) -> bool {
    T::IS_F64 && q > 0 && how == Normalizer::Svqb
}

/// Rows of `A` per block of the fused pass (about 1 MiB of `A`, resident in L2).
fn fused_rows<T: Real>(n: usize) -> usize {
    ((1usize << 20) / (std::mem::size_of::<T>() * n.max(1))).clamp(16, 1024)
}

/// `A^T (A x)` reading each row block of `A` once: thread `t` owns a fixed contiguous range of
/// rows and its own accumulator, summed in thread order (deterministic for a thread count).
pub fn gram_apply<T: Real>(a: MatRef<'_, T>, x: MatRef<'_, T>, par: Par) -> Mat<T> {
    let (m, n) = a.shape();
    let l = x.ncols();
    let nt = row_threads(par, m);
    let h = fused_rows::<T>(n);
    let work = |t: usize| -> Mat<T> {
        let r0 = m * t / nt;
        let r1 = m * (t + 1) / nt;
        let mut z = Mat::<T>::zeros(n, l);
        let mut y = Mat::<T>::zeros(h, l);
        let mut r = r0;
        while r < r1 {
            let hb = h.min(r1 - r);
            let ab = a.subrows(r, hb);
            let mut yb = y.as_mut().subrows_mut(0, hb);
            matmul(yb.rb_mut(), Accum::Replace, ab, x, one(), Par::Seq);
            matmul(
                z.as_mut(),
                Accum::Add,
                ab.transpose(),
                yb.rb(),
                one(),
                Par::Seq,
            );
            r += hb;
        }
        z
    };
    sum_over_threads(nt, work)
}

/// The view as float64 when `T` is float64.
fn as_f64<'a, T: Real>(a: MatRef<'a, T>) -> Option<MatRef<'a, f64>> {
    if !T::IS_F64 {
        return None;
    }
    // SAFETY: T is f64 (checked by IS_F64), so the view describes f64 values, same layout.
    Some(unsafe {
        MatRef::<f64>::from_raw_parts(
            a.as_ptr() as *const f64,
            a.nrows(),
            a.ncols(),
            a.row_stride(),
            a.col_stride(),
        )
    })
}

/// A power of two `s` with `s x` in `[1/2, 1]` (x > 0, finite; clamped to the normal range,
/// so `s x` can be smaller than 1/2 for subnormal x, never larger than 2).
fn pow2_scale(x: f64) -> f64 {
    let e = (x.log2().ceil() as i32).clamp(-1022, 1023);
    2f64.powi(-e)
}

/// Whether a view is better read row by row (its column stride is the smaller one).
fn row_major<T>(a: MatRef<'_, T>) -> bool {
    a.col_stride().unsigned_abs() < a.row_stride().unsigned_abs()
}

/// Copies `scale * a` into a float32 scratch laid out like `a` (`buf` is n x h when
/// `rows` is true, so that its transpose is a row-major copy; h x n otherwise): both the reads
/// and the writes are contiguous. Returns the h x n float32 view.
fn to_f32_scaled<'b>(
    a: MatRef<'_, f64>,
    scale: f64,
    rows: bool,
    buf: &'b mut Mat<f32>,
) -> MatRef<'b, f32> {
    let (h, n) = a.shape();
    // one contiguous run of `len` source values (stride `inc`) into a contiguous destination
    let copy = |src: *const f64, inc: isize, dst: &mut [f32]| {
        if inc == 1 {
            // SAFETY: the run lies inside the view (`dst.len()` elements from `src`).
            let s = unsafe { std::slice::from_raw_parts(src, dst.len()) };
            for (d, &v) in dst.iter_mut().zip(s) {
                *d = (v * scale) as f32;
            }
        } else {
            for (t, d) in dst.iter_mut().enumerate() {
                // SAFETY: element t of the run lies inside the view.
                *d = (unsafe { *src.offset(t as isize * inc) } * scale) as f32;
            }
        }
    };
    if rows {
        // row i of `a` -> column i of buf (n x h, column-major)
        for i in 0..h {
            copy(
                a.ptr_at(i, 0),
                a.col_stride(),
                &mut buf.col_as_slice_mut(i)[..n],
            );
        }
        buf.as_ref().submatrix(0, 0, n, h).transpose()
    } else {
        for j in 0..n {
            copy(
                a.ptr_at(0, j),
                a.row_stride(),
                &mut buf.col_as_slice_mut(j)[..h],
            );
        }
        buf.as_ref().submatrix(0, 0, h, n)
    }
}

/// Mixed-precision fused pass: `(s A)^T ((s A) x)` in float32 for a float64 `A`, reading each
/// row block of `A` once and rounding it (times the power of two `scale = s`) to float32 in
/// cache, so both products run at float32 speed without a float32 copy of `A`. For the power
/// iterations of a float64 randomized SVD whose final projection stays in float64: the span
/// it returns resolves directions down to about `sqrt(eps_f32) sigma_1 ~ 3.5e-4 sigma_1`.
/// Choose `scale` so that `|s A| <= 1` (e.g. `2^-e` with `2^(e-1) <= max|A| < 2^e`): then
/// nothing overflows and only entries below `2^-126` of the largest one are flushed.
/// Rows are split over threads as in [`gram_apply`] (deterministic for a thread count).
pub fn gram_apply_f32(a: MatRef<'_, f64>, x: MatRef<'_, f32>, scale: f64, par: Par) -> Mat<f32> {
    let (m, n) = a.shape();
    let l = x.ncols();
    let nt = row_threads(par, m);
    // 2 MiB of A per block (1 MiB once rounded): measured best between 32 and 256 rows
    let h = fused_rows::<f32>(n);
    let rows = row_major(a);
    let work = |t: usize| -> Mat<f64> {
        let r0 = m * t / nt;
        let r1 = m * (t + 1) / nt;
        // The row blocks' products are added in float32 for F32_GROUP blocks at a time, then
        // into a float64 accumulator: a float32 sum over all of a thread's ~300 blocks
        // (20000 rows) had 6x the rounding error of a 5000-row chunk and cost the in-memory
        // results 8e-5 of relative error; the flush is one n x l add per group.
        let mut z = Mat::<f64>::zeros(n, l);
        let mut zg = Mat::<f32>::zeros(n, l);
        let mut y = Mat::<f32>::zeros(h, l);
        let mut buf = if rows {
            Mat::<f32>::zeros(n, h)
        } else {
            Mat::<f32>::zeros(h, n)
        };
        let (mut r, mut blocks) = (r0, 0usize);
        while r < r1 {
            let hb = h.min(r1 - r);
            let ab = to_f32_scaled(a.subrows(r, hb), scale, rows, &mut buf);
            let mut yb = y.as_mut().subrows_mut(0, hb);
            matmul(yb.rb_mut(), Accum::Replace, ab, x, 1.0f32, Par::Seq);
            let accum = if blocks % F32_GROUP == 0 {
                Accum::Replace
            } else {
                Accum::Add
            };
            matmul(
                zg.as_mut(),
                accum,
                ab.transpose(),
                yb.rb(),
                1.0f32,
                Par::Seq,
            );
            r += hb;
            blocks += 1;
            if blocks % F32_GROUP == 0 || r >= r1 {
                for j in 0..l {
                    let g = zg.col_as_slice(j);
                    for (zi, &gi) in z.col_as_slice_mut(j).iter_mut().zip(g) {
                        *zi += gi as f64;
                    }
                }
            }
        }
        z
    };
    let z = sum_over_threads(nt, work);
    z.as_ref().map(|&v| v as f32)
}

/// Row blocks whose float32 products [`gram_apply_f32`] adds before a float64 flush.
const F32_GROUP: usize = 8;

/// Given `A ~= Q B` with `B^T` (n x l), the rank-k SVD `U = Q Ub`, `V`, `S`.
fn small_svd<T: Real>(
    qm: Mat<T>,
    bt: Mat<T>,
    k: usize,
    par: Par,
    rel_error: Option<f64>,
    solver: &'static str,
) -> Result<SvdOut<T>> {
    if !all_finite(bt.as_ref()) {
        return Err(non_finite());
    }
    // B^T = W S Ub^T  =>  A ~= Q Ub S W^T
    let svd = thin_svd_f64(bt.as_ref())?;
    drop(bt);
    Ok(SvdOut {
        u: mul(qm.as_ref(), svd.v.subcols(0, k), par),
        s: svd.s[..k].iter().map(|&x| T::from_f64(x)).collect(),
        v: svd.u.subcols(0, k).to_owned(),
        rel_error,
        solver,
    })
}

/// Parameters of [`rsvd_tol`].
#[derive(Clone, Copy, Debug)]
pub struct TolParams {
    /// Power iterations per block (`None`: 4).
    pub n_iter: Option<usize>,
    /// First block size; later blocks double, up to 512.
    pub block_size: usize,
    pub seed: u64,
    /// Largest rank to try (`None`: min(m, n)).
    pub max_rank: Option<usize>,
}

impl Default for TolParams {
    fn default() -> Self {
        Self {
            n_iter: None,
            block_size: 16,
            seed: 0,
            max_rank: None,
        }
    }
}

/// Adaptive rank: the smallest rank `k` whose relative Frobenius error
/// `||A - U S V^T||_F / ||A||_F` is at most `tol`, by blocked randQB with the error indicator
/// `||A||_F^2 - ||B||_F^2` (Yu, Gu & Li 2018, Algorithm 2 with power iterations), then
/// truncation of the SVD of `B` to the smallest rank whose error (indicator plus the discarded
/// singular values of `B`) meets `tol`. The indicator is exact in exact arithmetic; in floating
/// point it is reliable for `tol` well above `sqrt(eps)` (about 1e-8 in float64, 3e-4 in
/// float32). Below that the rank can come out larger than needed, never the error above `tol`
/// beyond rounding.
pub fn rsvd_tol<T: Real>(
    op: &dyn LinOp<T>,
    tol: f64,
    params: &TolParams,
    par: Par,
) -> Result<SvdOut<T>> {
    rsvd_tol_with_progress(op, tol, params, par, &SILENT)
}

/// [`rsvd_tol`] reporting to `progress` after each block: `done` is the rank of the basis so
/// far, `total` the largest rank tried (`done == total` once the tolerance is met). Returns
/// [`Error::Interrupted`] when the hook asks to stop.
pub fn rsvd_tol_with_progress<T: Real>(
    op: &dyn LinOp<T>,
    tol: f64,
    params: &TolParams,
    par: Par,
    progress: &dyn Progress,
) -> Result<SvdOut<T>> {
    let (m, n) = (op.nrows(), op.ncols());
    if m == 0 || n == 0 {
        return invalid(format!(
            "A is empty (shape {m} x {n}); it needs at least one row and one column"
        ));
    }
    if !(tol > 0.0 && tol < 1.0) {
        return invalid(format!(
            "tol={tol} is out of range: it must satisfy 0 < tol < 1"
        ));
    }
    if params.block_size == 0 {
        return invalid("block_size must be >= 1");
    }
    on_tall(op, |op| {
        let zero = || {
            let mut z = zero_svd(op.nrows(), op.ncols(), 0, "randqb");
            z.rel_error = Some(0.0);
            z
        };
        with_rescale(op, par, |op| randqb(op, tol, params, par, progress), zero)
    })
}

fn hcat<T: Real>(a: &Mat<T>, b: &Mat<T>) -> Mat<T> {
    let ca = a.ncols();
    Mat::from_fn(a.nrows(), ca + b.ncols(), |i, j| {
        if j < ca {
            a[(i, j)]
        } else {
            b[(i, j - ca)]
        }
    })
}

fn randqb<T: Real>(
    op: &dyn LinOp<T>,
    tol: f64,
    params: &TolParams,
    par: Par,
    progress: &dyn Progress,
) -> Result<SvdOut<T>> {
    let (m, n) = (op.nrows(), op.ncols());
    let frob2 = op.frob_sq(par);
    if frob2.is_nan() {
        return Err(non_finite());
    }
    let max_rank = params.max_rank.unwrap_or(n).clamp(1, n);
    if frob2 == 0.0 || !frob2.is_finite() || out_of_range::<T>(frob2.sqrt(), false) {
        return Err(Error::Rescale);
    }
    let q = params.n_iter.unwrap_or(4);
    // A small slack keeps rounding in the indicator from stopping a hair early.
    let target = frob2 * (tol * tol - 32.0 * T::EPS).max(0.0);
    let mut qall = Mat::<T>::zeros(m, 0);
    let mut btall = Mat::<T>::zeros(n, 0);
    let mut e = frob2;
    let mut b = params.block_size;
    report(progress, 0, max_rank)?;
    while qall.ncols() < max_rank {
        let r = qall.ncols();
        let bsz = b.min(max_rank - r);
        let omega = gaussian::<T>(n, bsz, params.seed, 0, r, par);
        // Y = A Omega - Q (B Omega)
        let mut y = apply(op, omega.as_ref(), par);
        if !all_finite(y.as_ref()) {
            return Err(non_finite());
        }
        let t = mul(btall.transpose(), omega.as_ref(), par);
        sub_mul(&mut y, qall.as_ref(), t.as_ref(), par);
        let mut qi = orthonormalize(y);
        for _ in 0..q {
            // W = A^T Qi - B^T (Q^T Qi)
            let mut w = apply_t(op, qi.as_ref(), par);
            let t = mul(qall.transpose(), qi.as_ref(), par);
            sub_mul(&mut w, btall.as_ref(), t.as_ref(), par);
            let wi = orthonormalize(w);
            // Y = A Wi - Q (B Wi)
            let mut y = apply(op, wi.as_ref(), par);
            let t = mul(btall.transpose(), wi.as_ref(), par);
            sub_mul(&mut y, qall.as_ref(), t.as_ref(), par);
            qi = orthonormalize(y);
        }
        // Re-orthogonalize against the basis so far, twice is enough (Kahan).
        for _ in 0..2 {
            let t = mul(qall.transpose(), qi.as_ref(), par);
            sub_mul(&mut qi, qall.as_ref(), t.as_ref(), par);
        }
        let qi = orthonormalize(qi);
        // B_i^T = A^T Qi - B^T (Q^T Qi)
        let mut bti = apply_t(op, qi.as_ref(), par);
        let t = mul(qall.transpose(), qi.as_ref(), par);
        sub_mul(&mut bti, btall.as_ref(), t.as_ref(), par);
        e -= frob_sq_of(bti.as_ref());
        qall = hcat(&qall, &qi);
        btall = hcat(&btall, &bti);
        if e <= target {
            break;
        }
        if qall.ncols() < max_rank {
            report(progress, qall.ncols(), max_rank)?;
        }
        b = (2 * b).min(512);
    }
    // Choose the rank from the SVD of B: error^2(k) = (||A||^2 - ||B||^2) + sum_{i>k} s_i^2.
    let s: Vec<f64> = thin_svd_f64(btall.as_ref())?.s;
    let captured: f64 = s.iter().map(|x| x * x).sum();
    let base = (frob2 - captured).max(0.0);
    let mut tail: f64 = 0.0;
    let mut k = s.len();
    // Walk down from the full rank while dropping one more value still meets the target.
    while k > 1 && base + tail + s[k - 1] * s[k - 1] <= target {
        tail += s[k - 1] * s[k - 1];
        k -= 1;
    }
    let mut out = small_svd(qall, btall, k, par, None, "randqb")?;
    let mut err2 = base + tail;
    // Near the rounding floor the indicator (a difference of squares) says little; for dense
    // input measure the residual directly (one more pass, only in that case).
    if err2 < 1e3 * T::EPS * frob2 {
        if let Some(a) = op.as_dense() {
            err2 = residual_frob_sq(a, &out, par);
        }
    }
    out.rel_error = Some((err2 / frob2).sqrt());
    report(progress, max_rank, max_rank)?;
    Ok(out)
}

/// `||A - U diag(s) V^T||_F^2` for dense `A`, over row blocks (never the whole residual).
fn residual_frob_sq<T: Real>(a: MatRef<'_, T>, out: &SvdOut<T>, par: Par) -> f64 {
    let (m, n) = a.shape();
    let us = Mat::<T>::from_fn(m, out.s.len(), |i, j| out.u[(i, j)] * out.s[j]);
    let rows = ((4usize << 20) / (std::mem::size_of::<T>() * n.max(1))).max(1);
    let mut total = 0.0f64;
    let mut r0 = 0;
    while r0 < m {
        let h = rows.min(m - r0);
        let mut blk = a.subrows(r0, h).to_owned();
        if !out.s.is_empty() {
            matmul(
                blk.as_mut(),
                Accum::Add,
                us.as_ref().subrows(r0, h),
                out.v.transpose(),
                T::from_f64(-1.0),
                par,
            );
        }
        total += frob_sq_of(blk.as_ref());
        r0 += h;
    }
    total
}

/// An estimate of `||A - U diag(s) V^T||_2` by the power method on the residual operator
/// (never formed): `n_iter` products with the residual and its transpose from a seeded
/// Gaussian start. It is a lower bound that converges to the norm (fbpca's `diffsnorm`).
pub fn svd_error<T: Real>(
    op: &dyn LinOp<T>,
    u: MatRef<'_, T>,
    s: &[T],
    v: MatRef<'_, T>,
    n_iter: usize,
    seed: u64,
    par: Par,
) -> Result<f64> {
    let (m, n) = (op.nrows(), op.ncols());
    let k = s.len();
    if u.nrows() != m || v.nrows() != n || u.ncols() != k || v.ncols() != k {
        return invalid(format!(
            "shapes do not match: A is {m} x {n}, U is {} x {}, S has {k} values, Vh is {} x {}",
            u.nrows(),
            u.ncols(),
            v.ncols(),
            v.nrows()
        ));
    }
    if n_iter == 0 {
        return invalid("n_iter must be >= 1");
    }
    let r = Residual { inner: op, u, s, v };
    let mut x = gaussian::<T>(n, 1, seed, 0, 0, par);
    let mut est = 0.0f64;
    for _ in 0..n_iter {
        // scaled norms: data of 1e300 overflowed the squares ("NaN or infinity"), data of
        // 1e-300 underflowed them to an error estimate of 0
        let nx = norm_of(x.as_ref());
        if !nx.is_finite() {
            return Err(non_finite());
        }
        if nx == 0.0 {
            break;
        }
        // divided, not multiplied by 1 / nx: that is infinite for a subnormal norm
        for i in 0..n {
            x[(i, 0)] = T::from_f64(x[(i, 0)].to_f64() / nx);
        }
        let y = apply(&r, x.as_ref(), par);
        let ny = norm_of(y.as_ref());
        if !ny.is_finite() {
            return Err(non_finite());
        }
        est = est.max(ny);
        if ny == 0.0 {
            break;
        }
        // A^T (A x) would square the magnitudes: normalize y first
        let mut y = y;
        for i in 0..m {
            y[(i, 0)] = T::from_f64(y[(i, 0)].to_f64() / ny);
        }
        x = apply_t(&r, y.as_ref(), par);
    }
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linop::DenseOp;

    /// A = U diag(s) V^T with known singular values.
    fn test_matrix(m: usize, n: usize, s: &[f64], seed: u64) -> Mat<f64> {
        let k = s.len();
        let gu = gaussian::<f64>(m, k, seed, 0, 0, Par::Seq);
        let gv = gaussian::<f64>(n, k, seed + 1, 0, 0, Par::Seq);
        let u = gu.qr().compute_thin_Q();
        let v = gv.qr().compute_thin_Q();
        let us = Mat::<f64>::from_fn(m, k, |i, j| u[(i, j)] * s[j]);
        &us * v.transpose()
    }

    fn orth_err(q: MatRef<'_, f64>) -> f64 {
        let g = q.transpose() * q;
        (&g - Mat::<f64>::identity(q.ncols(), q.ncols())).norm_max()
    }

    #[test]
    fn recovers_exact_low_rank() {
        let s = [10.0, 5.0, 2.0, 1.0, 0.5];
        for (m, n) in [(120, 60), (60, 120)] {
            let a = test_matrix(m, n, &s, 3);
            for solver in [Solver::Randomized, Solver::Gram, Solver::Auto] {
                let p = Params {
                    solver,
                    ..Default::default()
                };
                let out = rsvd(&DenseOp { a: a.as_ref() }, 5, &p, Par::Seq).unwrap();
                for (got, want) in out.s.iter().zip(&s[..5]) {
                    assert!((got - want).abs() < 1e-10, "{solver:?} {:?}", out.s);
                }
                assert!(orth_err(out.u.as_ref()) < 1e-12);
                assert!(orth_err(out.v.as_ref()) < 1e-12);
                let us = Mat::<f64>::from_fn(m, 5, |i, j| out.u[(i, j)] * out.s[j]);
                let rec = &us * out.v.transpose();
                assert!((&rec - &a).norm_l2() < 1e-10);
            }
        }
    }

    #[test]
    fn fused_gram_apply_matches_two_products() {
        let a = test_matrix(301, 57, &[3.0, 2.0, 1.0, 0.5], 4);
        let x = gaussian::<f64>(57, 7, 2, 0, 0, Par::Seq);
        let expect = a.transpose() * (&a * &x);
        for par in [Par::Seq, Par::rayon(2), Par::rayon(3)] {
            let z = gram_apply(a.as_ref(), x.as_ref(), par);
            assert!((&z - &expect).norm_max() < 1e-12 * expect.norm_max());
        }
        // strided (transposed) views too
        let at = a.transpose().to_owned();
        let z = gram_apply(at.transpose(), x.as_ref(), Par::rayon(2));
        assert!((&z - &expect).norm_max() < 1e-12 * expect.norm_max());
    }

    #[test]
    fn mixed_gram_apply_matches_float64_to_float32_rounding() {
        let a = test_matrix(301, 57, &[3.0, 2.0, 1.0, 0.5], 4);
        let x = gaussian::<f64>(57, 7, 2, 0, 0, Par::Seq);
        let x32 = Mat::<f32>::from_fn(57, 7, |i, j| x[(i, j)] as f32);
        let scale = 0.25; // a power of two: (s A)^T (s A) X = s^2 A^T A X exactly
        let expect = (a.transpose() * (&a * &x)) * (scale * scale);
        let check = |z: &Mat<f32>| {
            let err = (0..57)
                .flat_map(|i| (0..7).map(move |j| (i, j)))
                .map(|(i, j)| (z[(i, j)] as f64 - expect[(i, j)]).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5 * expect.norm_max(), "{err}");
        };
        for par in [Par::Seq, Par::rayon(2), Par::rayon(3)] {
            check(&gram_apply_f32(a.as_ref(), x32.as_ref(), scale, par));
        }
        // column-major and row-major views give the same answer
        let at = a.transpose().to_owned();
        check(&gram_apply_f32(
            at.transpose(),
            x32.as_ref(),
            scale,
            Par::rayon(2),
        ));
    }

    #[test]
    fn float32_power_iterations_keep_the_float64_result() {
        // Well separated spectrum above sqrt(eps_f32): the mixed-precision result agrees with
        // the float64 one to float64-level accuracy in S (the final projection is float64),
        // and handles magnitudes far outside float32's range by its power-of-two scale.
        let s = [10.0, 7.0, 5.0, 3.0, 2.0, 1e-2, 5e-3, 1e-3];
        for mag in [1.0, 1e-100, 1e100, 1e-200, 1e150] {
            let a = test_matrix(400, 90, &s, 7) * mag;
            let base = Params {
                solver: Solver::Randomized,
                n_iter: Some(4),
                ..Default::default()
            };
            let mixed = Params {
                power_f32: true,
                ..base
            };
            let r64 = rsvd(&DenseOp { a: a.as_ref() }, 5, &base, Par::Seq).unwrap();
            let r32 = rsvd(&DenseOp { a: a.as_ref() }, 5, &mixed, Par::rayon(2)).unwrap();
            for i in 0..5 {
                assert!(
                    (r32.s[i] / mag - s[i]).abs() < 1e-9 * s[0],
                    "{mag} {:?}",
                    r32.s
                );
                assert!((r32.s[i] - r64.s[i]).abs() < 1e-9 * r64.s[0]);
            }
            assert!(orth_err(r32.u.as_ref()) < 1e-12);
            assert!(orth_err(r32.v.as_ref()) < 1e-12);
        }
    }

    #[test]
    fn row_blocked_products_match_gemm() {
        let a = test_matrix(301, 57, &[3.0, 2.0, 1.0, 0.5], 4);
        let x = gaussian::<f64>(57, 7, 2, 0, 0, Par::Seq);
        let y = gaussian::<f64>(301, 7, 3, 0, 0, Par::Seq);
        let (ax, aty) = (&a * &x, a.transpose() * &y);
        let at = a.transpose().to_owned();
        for par in [Par::Seq, Par::rayon(2), Par::rayon(3)] {
            for view in [a.as_ref(), at.transpose()] {
                assert!((&rows_apply(view, x.as_ref(), par) - &ax).norm_max() < 1e-12);
                assert!((&rows_apply_t(view, y.as_ref(), par) - &aty).norm_max() < 1e-12);
            }
        }
    }

    #[test]
    fn max_abs_and_frob_sq_match_a_scan() {
        use crate::linop::{dense_frob_sq, dense_max_abs};
        let a = test_matrix(203, 37, &[3.0, 2.0, 1.0], 5);
        let vals: Vec<f64> = (0..203)
            .flat_map(|i| (0..37).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)])
            .collect();
        let mx = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let fro: f64 = vals.iter().map(|v| v * v).sum();
        let at = a.transpose().to_owned();
        let every_other = a.as_ref().subrows(0, 202); // a view with a leading dimension gap
        for par in [Par::Seq, Par::rayon(3)] {
            for view in [a.as_ref(), at.transpose()] {
                assert_eq!(dense_max_abs(view, par), mx);
                assert!((dense_frob_sq(view, par) - fro).abs() < 1e-12 * fro);
            }
            let sub: f64 = (0..202)
                .flat_map(|i| (0..37).map(move |j| (i, j)))
                .map(|(i, j)| a[(i, j)].abs())
                .fold(0.0, f64::max);
            assert_eq!(dense_max_abs(every_other, par), sub);
            // neither stride is 1: every other row and column
            // SAFETY: rows 0, 2, .., 200 and columns 0, 2, .., 34 lie inside `a`.
            let strided = unsafe {
                MatRef::<f64>::from_raw_parts(a.as_ptr(), 101, 18, 2, 2 * a.col_stride())
            };
            let want = (0..101)
                .flat_map(|i| (0..18).map(move |j| (2 * i, 2 * j)))
                .map(|(i, j)| a[(i, j)].abs())
                .fold(0.0, f64::max);
            assert_eq!(dense_max_abs(strided, par), want);
        }
        for bad in [f64::NAN, f64::INFINITY] {
            let mut b = a.clone();
            b[(7, 3)] = bad;
            assert!(dense_max_abs(b.as_ref(), Par::Seq).is_nan());
            assert!(dense_max_abs(b.transpose(), Par::rayon(2)).is_nan());
        }
    }

    #[test]
    fn tol_mode_finds_the_rank() {
        let s = [10.0, 5.0, 2.0, 1.0, 1e-3, 1e-4];
        let a = test_matrix(200, 80, &s, 9);
        let fro: f64 = s.iter().map(|x| x * x).sum::<f64>().sqrt();
        let out = rsvd_tol(
            &DenseOp { a: a.as_ref() },
            1e-2,
            &TolParams::default(),
            Par::Seq,
        )
        .unwrap();
        assert_eq!(out.s.len(), 4);
        let rel = out.rel_error.unwrap();
        let exact = ((1e-6f64 + 1e-8).sqrt()) / fro;
        assert!((rel - exact).abs() < 1e-6 * fro, "{rel} vs {exact}");
    }

    #[test]
    fn error_estimate_matches_spectral_norm() {
        let s = [10.0, 5.0, 2.0, 1.0, 0.5, 0.25];
        let a = test_matrix(100, 70, &s, 5);
        let op = DenseOp { a: a.as_ref() };
        let out = rsvd(&op, 3, &Params::default(), Par::Seq).unwrap();
        let est = svd_error(&op, out.u.as_ref(), &out.s, out.v.as_ref(), 30, 1, Par::Seq).unwrap();
        assert!((est - 1.0).abs() < 1e-6, "{est}");
        // magnitudes whose squares overflow or underflow: the estimate scales with them
        for c in [1e300, 1e-300] {
            let ac = Mat::<f64>::from_fn(100, 70, |i, j| a[(i, j)] * c);
            let sc: Vec<f64> = out.s.iter().map(|v| v * c).collect();
            let opc = DenseOp { a: ac.as_ref() };
            let e = svd_error(&opc, out.u.as_ref(), &sc, out.v.as_ref(), 30, 1, Par::Seq).unwrap();
            assert!((e / c - est).abs() < 1e-9 * est, "{c}: {e}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let a = test_matrix(10, 8, &[1.0, 2.0], 1);
        let op = DenseOp { a: a.as_ref() };
        assert!(rsvd(&op, 0, &Params::default(), Par::Seq).is_err());
        assert!(rsvd(&op, 9, &Params::default(), Par::Seq).is_err());
        let mut b = a.clone();
        b[(3, 4)] = f64::NAN;
        let p = Params {
            solver: Solver::Randomized,
            ..Default::default()
        };
        let e = rsvd(&DenseOp { a: b.as_ref() }, 2, &p, Par::Seq);
        assert!(matches!(e, Err(Error::NonFinite(_))));
        let e = rsvd(&DenseOp { a: b.as_ref() }, 2, &Params::default(), Par::Seq);
        assert!(matches!(e, Err(Error::NonFinite(_))));
    }

    #[test]
    fn zero_matrix_gives_zero_values() {
        let a = Mat::<f64>::zeros(30, 20);
        let p = Params {
            solver: Solver::Randomized,
            ..Default::default()
        };
        let out = rsvd(&DenseOp { a: a.as_ref() }, 3, &p, Par::Seq).unwrap();
        assert!(out.s.iter().all(|&s| s == 0.0));
        assert!(orth_err(out.u.as_ref()) < 1e-15);
    }

    #[test]
    fn overflowing_products_are_rescaled_with_the_same_solver() {
        // entries of 1e200 square to infinity (A^T A, A^T A X): the non-finite intermediate
        // from a finite A is rescaled like an underflow, and the Gram solver stays the Gram
        // solver (it fell back to the randomized method on rescaled operators)
        let a = test_matrix(80, 30, &[10.0, 5.0, 2.0, 1.0, 0.5], 3);
        for (c, solver) in [
            (1e200, Solver::Gram),
            (1e-300, Solver::Gram),
            (1e200, Solver::Randomized),
            (1e300, Solver::Auto),
        ] {
            let p = Params {
                solver,
                ..Default::default()
            };
            let big = Mat::<f64>::from_fn(80, 30, |i, j| a[(i, j)] * c);
            let want = rsvd(&DenseOp { a: a.as_ref() }, 4, &p, Par::Seq).unwrap();
            let got = rsvd(&DenseOp { a: big.as_ref() }, 4, &p, Par::Seq).unwrap();
            assert_eq!(got.solver, want.solver);
            for (g, w) in got.s.iter().zip(&want.s) {
                assert!(
                    (g / c - w).abs() < 1e-10 * want.s[0],
                    "{c} {solver:?}: {g} {w}"
                );
            }
        }
        // a NaN is still a NaN
        let mut bad = Mat::<f64>::from_fn(80, 30, |i, j| a[(i, j)] * 1e200);
        bad[(5, 6)] = f64::NAN;
        let p = Params::default();
        assert!(matches!(
            rsvd(&DenseOp { a: bad.as_ref() }, 4, &p, Par::Seq),
            Err(Error::NonFinite(_))
        ));
    }

    #[test]
    fn subnormal_data_and_overflowing_singular_values() {
        // 1e-310 needs a scale of 2^1030, beyond f64: it was infinity ("A contains NaN or
        // infinity"); now the clamped 2^1023 scale gives the results of the same digits in
        // the normal range
        let a = test_matrix(80, 40, &[10.0, 5.0, 2.0, 1.0, 0.5], 3);
        let c = 2f64.powi(-1030);
        let tiny = Mat::<f64>::from_fn(80, 40, |i, j| a[(i, j)] * c);
        let back = Mat::<f64>::from_fn(80, 40, |i, j| tiny[(i, j)] * 2f64.powi(1000));
        let p = Params {
            solver: Solver::Randomized,
            ..Default::default()
        };
        let got = rsvd(&DenseOp { a: tiny.as_ref() }, 3, &p, Par::Seq).unwrap();
        let want = rsvd(&DenseOp { a: back.as_ref() }, 3, &p, Par::Seq).unwrap();
        for (g, w) in got.s.iter().zip(&want.s) {
            assert!((g * 2f64.powi(1000) - w).abs() < 1e-9 * w, "{g} vs {w}");
        }
        // sigma_1 = 10 * 1.79e307 / 10 * 2 is beyond f64: a clear error, not inf or "NaN"
        let big = Mat::<f64>::from_fn(80, 40, |i, j| a[(i, j)] * 3.0e307);
        match rsvd(&DenseOp { a: big.as_ref() }, 3, &p, Par::Seq) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("range"), "{msg}"),
            Err(e) => panic!("{e}"),
            Ok(out) => panic!("{:?}", out.s),
        }
    }

    #[test]
    fn progress_counts_up_and_a_false_hook_interrupts() {
        use std::sync::Mutex;
        let a = test_matrix(300, 200, &[10.0, 5.0, 2.0, 1.0, 0.5], 5);
        let op = DenseOp { a: a.as_ref() };
        for tol_mode in [false, true] {
            let seen = Mutex::new(Vec::new());
            let hook = |d: usize, t: usize| {
                seen.lock().unwrap().push((d, t));
                true
            };
            let p = Params {
                solver: Solver::Randomized,
                n_iter: Some(3),
                ..Default::default()
            };
            if tol_mode {
                rsvd_tol_with_progress(&op, 1e-6, &TolParams::default(), Par::Seq, &hook).unwrap();
            } else {
                rsvd_with_progress(&op, 5, &p, Par::Seq, &hook).unwrap();
            }
            let seen = seen.into_inner().unwrap();
            assert!(seen.len() >= 2, "{seen:?}");
            assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
            let last = *seen.last().unwrap();
            assert_eq!(last.0, last.1);
            if !tol_mode {
                assert_eq!(seen, vec![(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]);
            }
            // stop at the second report
            let calls = Mutex::new(0);
            let stop = |_d: usize, _t: usize| {
                let mut c = calls.lock().unwrap();
                *c += 1;
                *c < 2
            };
            let r = if tol_mode {
                rsvd_tol_with_progress(&op, 1e-6, &TolParams::default(), Par::Seq, &stop)
            } else {
                rsvd_with_progress(&op, 5, &p, Par::Seq, &stop)
            };
            assert!(matches!(r, Err(Error::Interrupted)));
            assert_eq!(*calls.lock().unwrap(), 2);
        }
    }
}
