//! Self-expressive representations for subspace clustering: every point is written as a
//! combination of the other points, `x_j ~ sum_{i != j} c_j[i] x_i`.
//!
//! * [`ssc_omp`]: orthogonal matching pursuit (SSC-OMP, You, Robinson & Vidal 2016).
//! * [`ensc`]: elastic net with the ORGEN active-set solver (EnSC, You et al. 2016).
//! * [`lsr`]: least squares regression with exclusion of self (Lu et al. 2012).
//! * [`tsc`]: thresholding (TSC, Heckel & Boelcskei 2015).
//!
//! Shared conventions:
//! * `x` is `N x D`, one point per row, any strides. Each kernel makes one contiguous copy with
//!   every row scaled to unit l2 norm; coefficients refer to these normalized points. Rows of
//!   norm 0 get an empty representation row. NaN/infinity gives [`Error::NonFinite`].
//! * The result is an `N x N` CSR matrix ([`SparseRows`]): row `j` holds `c_j`, the diagonal is
//!   never stored, column indices ascend within a row, exact zeros are not stored.
//! * Nothing `N x N` is formed (except the Gram matrix `X X^T` of the closed forms of [`lsr`]
//!   and EnSC's `tau = 0` when `N < D`, smaller than the points themselves, in place of the
//!   `D x D` one). Points are processed in blocks of rows (default
//!   [`DEFAULT_BLOCK_ROWS`]). For a block, the products with all points are computed by GEMM
//!   tile by tile over the columns (the `block x tile` result stays in cache) and each tile is
//!   scanned right after its product. Blocks run in parallel; the blocking does not depend on
//!   the number of threads and every point's computation is sequential, so results are
//!   identical for any thread count. The environment variables `LOWDIM_CHUNK_ROWS` (rows per
//!   block) and `LOWDIM_TILE_COLS` (columns per tile) override the defaults; the tests use
//!   tiny values to exercise block and tile boundaries (results change at most by the
//!   rounding of the GEMM tiles).
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

mod ensc;
mod lsr;
mod omp;
mod tsc;

pub use ensc::ensc;
pub use lsr::lsr;
pub use omp::ssc_omp;
pub use tsc::tsc;

/// Rows per block when `LOWDIM_CHUNK_ROWS` is not set.
pub const DEFAULT_BLOCK_ROWS: usize = 256;

/// An `N x N` sparse matrix in CSR form (`indptr` has `N + 1` entries).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows<T> {
    pub n: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub data: Vec<T>,
    /// Iterations of an iterative solver (EnSC: the most active-set rounds any point
    /// needed); 0 for the direct kernels.
    pub n_iter: usize,
}

impl<T: Copy> SparseRows<T> {
    /// Assembles rows given as `(column, value)` lists (columns ascending).
    pub(crate) fn from_rows(rows: Vec<Vec<(usize, T)>>) -> Self {
        let n = rows.len();
        let nnz = rows.iter().map(Vec::len).sum();
        let mut indptr = Vec::with_capacity(n + 1);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        indptr.push(0i64);
        for r in rows {
            for (i, v) in r {
                indices.push(i as i64);
                data.push(v);
            }
            indptr.push(indices.len() as i64);
        }
        SparseRows {
            n,
            indptr,
            indices,
            data,
            n_iter: 0,
        }
    }

    /// Row `j` as `(indices, values)`.
    pub fn row(&self, j: usize) -> (&[i64], &[T]) {
        let (a, b) = (self.indptr[j] as usize, self.indptr[j + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }
}

/// The unit-norm copy of the input points.
pub(crate) struct Points<T> {
    /// `n x d`, row-major, contiguous.
    pub x: Vec<T>,
    pub n: usize,
    pub d: usize,
    /// Squared norms of the normalized rows in f64 (1 up to rounding, 0 for zero rows).
    pub sq: Vec<f64>,
}

impl<T: Real> Points<T> {
    pub fn row(&self, i: usize) -> &[T] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
    pub fn is_zero(&self, i: usize) -> bool {
        self.sq[i] == 0.0
    }
    /// `<x_i, v>` in f64.
    pub fn dot(&self, i: usize, v: &[f64]) -> f64 {
        dot_tf(self.row(i), v)
    }
}

#[inline]
pub(crate) fn dot_tf<T: Real>(a: &[T], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let n4 = a.len() / 4 * 4;
    for k in (0..n4).step_by(4) {
        for l in 0..4 {
            s[l] += a[k + l].to_f64() * b[k + l];
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for k in n4..a.len() {
        t += a[k].to_f64() * b[k];
    }
    t
}

#[inline]
pub(crate) fn dot_ff(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let n4 = a.len() / 4 * 4;
    for k in (0..n4).step_by(4) {
        for l in 0..4 {
            s[l] += a[k + l] * b[k + l];
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for k in n4..a.len() {
        t += a[k] * b[k];
    }
    t
}

/// `v` as `&[f32]` when `T` is `f32`.
pub(crate) fn as_f32<T: Real>(v: &[T]) -> Option<&[f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32, so the slice has the same layout.
        Some(unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len()) })
    } else {
        None
    }
}

/// Checks the shape, copies `x` with unit-norm rows (norms in f64, scaled against overflow).
pub(crate) fn normalize<T: Real>(x: MatRef<'_, T>, par: Par) -> Result<Points<T>> {
    let (n, d) = x.shape();
    if n < 2 {
        return Err(Error::InvalidArgument(format!(
            "self-expressive models need at least 2 points (rows), got {n}"
        )));
    }
    if d == 0 {
        return Err(Error::InvalidArgument(
            "the points need at least one feature (column)".into(),
        ));
    }
    let mut buf = vec![T::from_f64(0.0); n * d];
    let mut sq = vec![0.0f64; n];
    let work = |(i, (row, s)): (usize, (&mut [T], &mut f64))| -> Result<()> {
        let src = x.row(i);
        let mut m = 0.0f64;
        for k in 0..d {
            let v = src[k].to_f64();
            if !v.is_finite() {
                return Err(Error::NonFinite(format!(
                    "X holds NaN or infinity (row {i}, column {k}); remove or impute it first"
                )));
            }
            m = m.max(v.abs());
        }
        if m == 0.0 {
            return Ok(());
        }
        let mut acc = 0.0f64;
        for k in 0..d {
            let v = src[k].to_f64() / m;
            acc += v * v;
        }
        // (x / m) / ||x / m||: 1 / (m ||x / m||) overflows for a row of subnormal entries
        let norm = acc.sqrt();
        let mut acc2 = 0.0f64;
        for k in 0..d {
            let v = T::from_f64(src[k].to_f64() / m / norm);
            row[k] = v;
            acc2 += v.to_f64() * v.to_f64();
        }
        *s = acc2;
        Ok(())
    };
    let it = buf.chunks_mut(d).zip(sq.iter_mut()).enumerate();
    if crate::threads::is_parallel(par) && n * d > 1 << 16 {
        buf.par_chunks_mut(d)
            .zip(sq.par_iter_mut())
            .enumerate()
            .try_for_each(work)?;
    } else {
        for item in it {
            work(item)?;
        }
    }
    Ok(Points { x: buf, n, d, sq })
}

/// Rows per block: `LOWDIM_CHUNK_ROWS` if set to a positive integer, else the default.
pub(crate) fn block_rows() -> usize {
    std::env::var("LOWDIM_CHUNK_ROWS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&b| b > 0)
        .unwrap_or(DEFAULT_BLOCK_ROWS)
}

/// Columns per tile: the `block x tile` product of `T` stays within ~1 MiB (L2-resident).
/// `LOWDIM_TILE_COLS` overrides it (tests use tiny tiles to exercise tile boundaries).
fn tile_cols<T>(rows: usize) -> usize {
    if let Some(t) = std::env::var("LOWDIM_TILE_COLS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&t| t > 0)
    {
        return t;
    }
    let t = (1usize << 20) / (rows.max(1) * std::mem::size_of::<T>());
    (t.max(64) / 16) * 16
}

/// Reusable per-block scratch for [`scan`].
pub(crate) struct Scratch<T> {
    buf: Vec<T>,
}

impl<T: Real> Scratch<T> {
    pub fn new() -> Self {
        Scratch { buf: Vec::new() }
    }
}

/// Computes `S = lhs * X^T` (`m x n`) tile by tile and calls `visit(row, col0, values)` for
/// each row of each tile, columns ascending (`values` may be modified: it is scratch).
pub(crate) fn scan<T: Real>(
    lhs: MatRef<'_, T>,
    pts: &Points<T>,
    scratch: &mut Scratch<T>,
    visit: impl FnMut(usize, usize, &mut [T]),
) {
    scan_raw(lhs, &pts.x, pts.n, pts.d, scratch, visit)
}

/// [`scan`] against the `n x d` row-major points `x`.
pub(crate) fn scan_raw<S: Real>(
    lhs: MatRef<'_, S>,
    x: &[S],
    n: usize,
    d: usize,
    scratch: &mut Scratch<S>,
    mut visit: impl FnMut(usize, usize, &mut [S]),
) {
    let m = lhs.nrows();
    if m == 0 {
        return;
    }
    let tc = tile_cols::<S>(m).min(n);
    if scratch.buf.len() < m * tc {
        scratch.buf.resize(m * tc, S::from_f64(0.0));
    }
    let xv = MatRef::from_row_major_slice(x, n, d);
    let mut c0 = 0;
    while c0 < n {
        let w = tc.min(n - c0);
        // S^T (w x m, column-major) = X_tile * lhs^T: column r is row r of S, contiguous.
        let out = MatMut::from_column_major_slice_mut(&mut scratch.buf[..m * w], w, m);
        matmul(
            out,
            Accum::Replace,
            xv.subrows(c0, w),
            lhs.transpose(),
            S::from_f64(1.0),
            Par::Seq,
        );
        for r in 0..m {
            visit(r, c0, &mut scratch.buf[r * w..(r + 1) * w]);
        }
        c0 += w;
    }
}

/// Runs `f(first_row, n_rows)` for every block of rows in parallel; rows come back in order.
///
/// After each block, `progress` hears `(blocks done, blocks)`; the reports are serialized (a
/// lock), so `done` counts up one by one whatever the thread count. When the hook asks to stop,
/// the blocks not yet started are skipped and the call returns [`Error::Interrupted`].
pub(crate) fn by_blocks<T: Send>(
    n: usize,
    par: Par,
    progress: &dyn Progress,
    f: impl Fn(usize, usize) -> Vec<Vec<(usize, T)>> + Sync,
) -> Result<Vec<Vec<(usize, T)>>> {
    let b = block_rows();
    let nb = n.div_ceil(b);
    let done = Mutex::new(0usize);
    let stop = AtomicBool::new(false);
    let run = |k: usize| {
        if stop.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let rows = f(k * b, b.min(n - k * b));
        let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
        *d += 1;
        if !progress.update(*d, nb) {
            stop.store(true, Ordering::Relaxed);
        }
        rows
    };
    let parts: Vec<Vec<Vec<(usize, T)>>> = if crate::threads::is_parallel(par) && nb > 1 {
        (0..nb).into_par_iter().map(run).collect()
    } else {
        (0..nb).map(run).collect()
    };
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(parts.into_iter().flatten().collect())
}

/// `|v|` (the trait has no `abs`).
#[inline(always)]
pub(crate) fn abs<T: Real>(v: T) -> T {
    let zero = T::from_f64(0.0);
    if v < zero {
        zero - v
    } else {
        v
    }
}

#[inline(always)]
fn max_abs_generic<T: Real>(v: &[T]) -> T {
    const L: usize = 32;
    let zero = T::from_f64(0.0);
    let mut acc = [zero; L];
    let nl = v.len() / L * L;
    for ch in v[..nl].chunks_exact(L) {
        for l in 0..L {
            let a = abs(ch[l]);
            acc[l] = if a > acc[l] { a } else { acc[l] };
        }
    }
    let mut m = zero;
    for a in acc {
        m = if a > m { a } else { m };
    }
    for &a in &v[nl..] {
        let a = abs(a);
        m = if a > m { a } else { m };
    }
    m
}

#[inline(always)]
fn above_generic<T: Real>(v: &[T], thr: T, out: &mut Vec<u32>) {
    const L: usize = 32;
    let nl = v.len() / L * L;
    for (c, ch) in v[..nl].chunks_exact(L).enumerate() {
        let mut any = false;
        for &x in ch {
            any |= abs(x) > thr;
        }
        if any {
            for (l, &x) in ch.iter().enumerate() {
                if abs(x) > thr {
                    out.push((c * L + l) as u32);
                }
            }
        }
    }
    for (l, &x) in v[nl..].iter().enumerate() {
        if abs(x) > thr {
            out.push((nl + l) as u32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Real;
    use std::sync::atomic::{AtomicU8, Ordering};

    static LEVEL: AtomicU8 = AtomicU8::new(0);

    /// 1: baseline, 2: AVX2+FMA, 3: AVX-512F.
    #[inline]
    pub fn level() -> u8 {
        let l = LEVEL.load(Ordering::Relaxed);
        if l != 0 {
            return l;
        }
        let l = if std::arch::is_x86_feature_detected!("avx512f") {
            3
        } else if std::arch::is_x86_feature_detected!("avx2") {
            2
        } else {
            1
        };
        LEVEL.store(l, Ordering::Relaxed);
        l
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn max_abs_512<T: Real>(v: &[T]) -> T {
        super::max_abs_generic(v)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max_abs_256<T: Real>(v: &[T]) -> T {
        super::max_abs_generic(v)
    }
    #[target_feature(enable = "avx512f")]
    pub unsafe fn above_512<T: Real>(v: &[T], thr: T, out: &mut Vec<u32>) {
        super::above_generic(v, thr, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn above_256<T: Real>(v: &[T], thr: T, out: &mut Vec<u32>) {
        super::above_generic(v, thr, out)
    }
}

/// `max |v_i|` (0 for an empty slice), vectorized with run-time CPU dispatch.
#[inline]
pub(crate) fn max_abs<T: Real>(v: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the features were detected on this CPU.
        match simd::level() {
            3 => return unsafe { simd::max_abs_512(v) },
            2 => return unsafe { simd::max_abs_256(v) },
            _ => {}
        }
    }
    max_abs_generic(v)
}

/// Appends to `out` the positions `i` (ascending) with `|v_i| > thr`.
#[inline]
pub(crate) fn above<T: Real>(v: &[T], thr: T, out: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the features were detected on this CPU.
        match simd::level() {
            3 => return unsafe { simd::above_512(v, thr, out) },
            2 => return unsafe { simd::above_256(v, thr, out) },
            _ => {}
        }
    }
    above_generic(v, thr, out)
}

/// Max of `|v|` over a slice and the first position holding it (`None` if all are 0).
#[cfg(test)]
pub(crate) fn argmax_abs<T: Real>(v: &[T]) -> Option<(T, usize)> {
    let m = max_abs(v);
    if m == T::from_f64(0.0) {
        return None;
    }
    v.iter().position(|&a| abs(a) == m).map(|p| (m, p))
}

/// Feeds the entries of `vals` (columns `c0..`) with `|v| > top.threshold()` to `top`,
/// skipping the columns `skip` rejects.
#[inline]
pub(crate) fn push_above<T: Real>(
    vals: &[T],
    c0: usize,
    top: &mut TopK,
    pos: &mut Vec<u32>,
    skip: impl Fn(usize) -> bool,
) {
    pos.clear();
    // A threshold in T at or below the f64 one: no candidate is lost to rounding.
    let t = top.threshold();
    let tt = T::from_f64(t);
    let tt = if tt.to_f64() > t {
        T::from_f64(t - t.abs() * 1e-7 - f64::MIN_POSITIVE)
    } else {
        tt
    };
    above(vals, tt, pos);
    for &p in pos.iter() {
        let i = c0 + p as usize;
        let a = abs(vals[p as usize]).to_f64();
        if a > top.threshold() && !skip(i) {
            top.push(a, i);
        }
    }
}

/// The `k` largest keys (ties: smallest index) among those pushed with key `> floor`.
/// Indices must be pushed in ascending order for the tie rule to hold.
pub(crate) struct TopK {
    k: usize,
    thr: f64,
    buf: Vec<(f64, usize)>,
}

#[inline]
fn key_cmp(a: &(f64, usize), b: &(f64, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopK {
    pub fn new(k: usize, floor: f64) -> Self {
        TopK {
            k,
            thr: floor,
            buf: Vec::new(),
        }
    }
    /// The smallest key that can still enter (strictly greater is needed).
    #[inline]
    pub fn threshold(&self) -> f64 {
        self.thr
    }
    #[inline]
    pub fn push(&mut self, key: f64, i: usize) {
        if key > self.thr && self.k > 0 {
            self.buf.push((key, i));
            if self.buf.len() >= 2 * self.k.max(8) {
                self.shrink();
            }
        }
    }
    fn shrink(&mut self) {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, key_cmp);
            self.buf.truncate(self.k);
            self.thr = self.buf.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        }
    }
    /// The kept `(key, index)` pairs, best first.
    pub fn finish(mut self) -> Vec<(f64, usize)> {
        self.shrink();
        self.buf.sort_unstable_by(key_cmp);
        self.buf
    }
}

/// Keeps the `k` entries of largest `|value|` (ties: smallest index), drops zeros, sorts by index.
pub(crate) fn keep_top<T: Real>(mut row: Vec<(usize, f64)>, k: usize) -> Vec<(usize, T)> {
    row.retain(|p| p.1 != 0.0);
    if row.len() > k {
        row.select_nth_unstable_by(k - 1, |a, b| {
            b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
        });
        row.truncate(k);
    }
    row.sort_unstable_by_key(|p| p.0);
    row.into_iter().map(|(i, v)| (i, T::from_f64(v))).collect()
}

/// Rows `r0..r0 + m` of the points as a view.
pub(crate) fn block_view<T: Real>(pts: &Points<T>, r0: usize, m: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(&pts.x[r0 * pts.d..(r0 + m) * pts.d], m, pts.d)
}

/// Checks a count argument (`>= 1`).
pub(crate) fn check_count(v: usize, name: &str) -> Result<()> {
    if v == 0 {
        return Err(Error::InvalidArgument(format!(
            "{name} must be >= 1, got 0"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use faer::Mat;

    /// A deterministic union of `k` random `dim`-dimensional subspaces of `R^d`, `per` points
    /// each (interleaved); returns (points as rows, labels).
    pub fn union(k: usize, dim: usize, d: usize, per: usize, seed: u64) -> (Mat<f64>, Vec<usize>) {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let bases: Vec<Mat<f64>> = (0..k)
            .map(|_| {
                // Orthonormal basis (Gram-Schmidt of a random d x dim matrix).
                let mut b = Mat::from_fn(d, dim, |_, _| rnd());
                for c in 0..dim {
                    for p in 0..c {
                        let h: f64 = (0..d).map(|r| b[(r, p)] * b[(r, c)]).sum();
                        for r in 0..d {
                            b[(r, c)] -= h * b[(r, p)];
                        }
                    }
                    let nr: f64 = (0..d).map(|r| b[(r, c)] * b[(r, c)]).sum::<f64>().sqrt();
                    for r in 0..d {
                        b[(r, c)] /= nr;
                    }
                }
                b
            })
            .collect();
        let n = k * per;
        let mut x = Mat::zeros(n, d);
        let mut lab = vec![0; n];
        for p in 0..n {
            let c = p % k;
            lab[p] = c;
            let a: Vec<f64> = (0..dim).map(|_| rnd()).collect();
            for r in 0..d {
                x[(p, r)] = (0..dim).map(|t| bases[c][(r, t)] * a[t]).sum();
            }
        }
        (x, lab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_ties_and_order() {
        let mut t = TopK::new(3, 0.0);
        for (i, v) in [1.0, 3.0, 3.0, 0.5, 2.0, 3.0, 0.0].iter().enumerate() {
            t.push(*v, i);
        }
        let r: Vec<usize> = t.finish().iter().map(|p| p.1).collect();
        assert_eq!(r, vec![1, 2, 5]);
    }

    #[test]
    fn argmax_first() {
        let v = [0.0, -2.0, 1.0, 2.0];
        assert_eq!(argmax_abs(&v), Some((2.0, 1)));
        assert_eq!(argmax_abs(&[0.0f64; 40]), None);
        let mut w = vec![0.5f64; 40];
        w[33] = -0.7;
        assert_eq!(argmax_abs(&w), Some((0.7, 33)));
    }

    #[test]
    fn normalize_a_subnormal_row() {
        // 1 / (m ||x / m||) overflowed for a row of subnormal entries: inf / NaN rows
        let x = faer::Mat::<f64>::from_fn(2, 3, |i, j| {
            let v = [3.0, -4.0, 0.0][j];
            if i == 0 {
                v * 1e-310
            } else {
                v
            }
        });
        let pts = normalize(x.as_ref(), Par::Seq).unwrap();
        for i in 0..2 {
            let r = pts.row(i);
            assert!(
                (r[0] - 0.6).abs() < 1e-12 && (r[1] + 0.8).abs() < 1e-12,
                "{r:?}"
            );
        }
    }

    #[test]
    fn normalize_rejects() {
        let x =
            faer::Mat::<f64>::from_fn(3, 2, |i, j| if i == 1 && j == 0 { f64::NAN } else { 1.0 });
        assert!(matches!(
            normalize(x.as_ref(), Par::Seq),
            Err(Error::NonFinite(_))
        ));
        let y = faer::Mat::<f64>::zeros(1, 2);
        assert!(normalize(y.as_ref(), Par::Seq).is_err());
    }
}
