"""Array-API backend: rsvd, svd_error, Tucker and PCA/TruncatedSVD on non-NumPy arrays.

Imported only when an array-API array that is not a NumPy array (CuPy, ``array_api_strict``,
...) reaches a public function; ``lowdim`` itself never imports CuPy. Everything here is
written once against the namespace of the input (``array_api_compat.array_namespace``) and
computes on the input's device: results are arrays of the same namespace and device. The
tests run every line on the CPU with NumPy and ``array_api_strict``; on a GPU the same code
runs on CuPy arrays.

What leaves the device: nothing of the size of the data. Scalars (norms, the error estimate)
and, in Tucker's tolerance mode, the eigenvalues of one mode (``I_n`` numbers) to choose its
rank. The Gaussian test matrices are drawn on the host with the counter-based generator of
the Rust kernels (``_lowdim.gaussian``) and transferred, or on CuPy drawn on the device by a
CUDA port of that generator (one kernel), so the same ``seed`` gives the same sketch as the
NumPy path, and results agree with it up to rounding.

Algorithms (chosen for GPUs: GEMM-shaped work, few kernel launches, few host syncs):

* rSVD: HMT 4.4; between passes one shifted CholeskyQR per block (Gram in float64; the shift
  makes it unable to fail, so the power iteration has no host sync: finiteness is checked
  before and after the loop), CholeskyQR2 for the final basis (QR fallback when the Gram is
  not numerically positive definite; one sync), the same solver choice as the Rust path
  ("gram" + eigh for tall-skinny problems, exact SVD when the sketch spans every column),
  float32 kept for float32 input (small factorizations in float64). Three host syncs per call
  whatever n_iter is. Triangular solves by cuBLAS trsm on CuPy (``Y @ inv(R)`` elsewhere).
* rSVD with a tolerance (``tol``): the Rust path's blocked randQB with the error indicator,
  the same blocks and seeded test-matrix columns (the same rank to rounding); one shifted
  CholeskyQR per power-iteration block, CholeskyQR2 for each block added to the basis, three
  host syncs per block.
* Sparse input: cupyx.scipy.sparse CSR (CSC/COO converted on the device) for rSVD, svd_error,
  PCA and TruncatedSVD, through its products only (``A @ X``, ``A.T @ Y``), PCA centring
  implicit, never densified. scipy.sparse passed to the internal functions of this module
  takes the same code on the CPU (the tests); the public API keeps it on the Rust path.
* Tucker: per mode one transpose/reshape of the tensor, then either the mode-n Gram matrix
  by one GEMM and ``eigh`` in float64, or the Rust path's randomized range finder
  (R-STHOSVD: the same seeded test matrix per mode, one power iteration, 10 oversamples,
  shifted CholeskyQR / CholeskyQR2 between the GEMMs, an ``l x l`` eigh; two host syncs per
  mode), or the SVD of the unfolding (tolerances below what the Gram resolves); HOSVD,
  ST-HOSVD (fixed ranks with the Rust path's fewest-flops mode order, or a tolerance spent
  with the ST-HOSVD error identity), HOOI (Gram sweeps, as on the Rust path). svd="auto"
  with fixed ranks takes the randomized finder whenever ``4 (r + 10) <= I_n`` (see
  ``_gpu_prefers_randomized``: the ``I_n x I_n`` eigh is what is slow on a GPU).
* progress: the Rust path's steps (power iterations, randQB blocks, Tucker modes, HOOI
  sweeps); with a callback each report waits for its step's device work (one host sync per
  reported step, none without a callback).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from . import _lowdim

# ----------------------------------------------------------------------------- namespace


def is_xp_array(A) -> bool:
    """Whether A is an array-API array that is not NumPy's (nor dask's, nor scipy.sparse):
    such arrays take this module's path. Does not import anything."""
    if isinstance(A, np.ndarray) or isinstance(A, (list, tuple)):
        return False
    mod = type(A).__module__.split(".")[0]
    if mod in ("dask", "scipy", "numpy"):
        return False
    if mod in ("cupy", "cupyx"):
        return True
    return hasattr(A, "__array_namespace__")


def on_xp_path(what: str, arrays: dict) -> bool:
    """Whether the arrays of a call (name -> array) take the array-API path: all of them
    array-API arrays (True) or none (False: NumPy, lists, scipy.sparse). A mix is a
    TypeError naming both sides: running it would copy between host and device silently
    (the NumPy path's ``np.asarray``) or fail on an unrelated error."""
    kinds = {name: is_xp_array(a) for name, a in arrays.items()}
    if len(set(kinds.values())) < 2:
        return any(kinds.values())
    dev = [n for n, k in kinds.items() if k]
    host = [n for n, k in kinds.items() if not k]
    mod = type(arrays[dev[0]]).__module__.split(".")[0]
    raise TypeError(
        f"{what}: {', '.join(dev)} {'is a' if len(dev) == 1 else 'are'} {mod} "
        f"array{'s' if len(dev) > 1 else ''} but {', '.join(host)} "
        f"{'is' if len(host) == 1 else 'are'} not; pass arrays of one kind (no silent copy "
        "between host and device is made)"
    )


def namespace(*arrays):
    import array_api_compat

    return array_api_compat.array_namespace(*arrays)


def _device(A):
    import array_api_compat

    return array_api_compat.device(A)


def _is_cupy(xp) -> bool:
    return "cupy" in xp.__name__


def to_host(x) -> np.ndarray:
    """A small array as NumPy (eigenvalues, signs): explicit, never used on data-sized
    arrays."""
    if hasattr(x, "get"):  # cupy
        return np.asarray(x.get())
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - namespaces without __array__
        import array_api_compat

        return np.asarray(array_api_compat.to_device(x, "cpu"))


def _from_host(xp, a: np.ndarray, like):
    """A host array on the device of ``like``."""
    if "array_api_strict" in xp.__name__:
        # array_api_strict's asarray accepts buffers/sequences; go through the buffer.
        return xp.asarray(np.ascontiguousarray(a), device=_device(like))
    return xp.asarray(a, device=_device(like))


def float_dtype(xp, A, name: str = "A"):
    """The float dtype a computation on A runs in (float32 kept, other reals -> float64)."""
    dt = A.dtype
    if dt == xp.float32:
        return xp.float32
    if dt == xp.float64:
        return xp.float64
    if dt == xp.bool:
        raise TypeError(f"{name} has boolean dtype; convert it to float32 or float64 first")
    if xp.isdtype(dt, "complex floating"):
        raise TypeError(f"{name} has complex dtype {dt}; lowdim computes real decompositions only")
    if xp.isdtype(dt, ("integral", "real floating")):
        return xp.float64
    raise TypeError(f"{name} has dtype {dt}; a real numeric dtype is required")


def _as(xp, A, dtype):
    return A if A.dtype == dtype else xp.astype(A, dtype)


def check_xp_matrix(A, name: str = "A"):
    """(xp, A as float32/float64, dtype) for a 2-D non-empty array-API array."""
    xp = namespace(A)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {A.ndim}-D with shape {A.shape}")
    if 0 in A.shape:
        raise ValueError(
            f"{name} is empty (shape {tuple(A.shape)}); it needs at least one row and one column"
        )
    dt = float_dtype(xp, A, name)
    return xp, _as(xp, A, dt), dt


def _is_cupyx_sparse(A) -> bool:
    """Whether A is a cupyx.scipy.sparse matrix. Imports cupyx only when A's type comes from
    it (so it never imports CuPy for other input)."""
    if not type(A).__module__.startswith("cupyx"):
        return False
    from cupyx.scipy import sparse as csp

    return bool(csp.issparse(A))


def is_sparse(A) -> bool:
    """A sparse matrix this module computes with through its products only: cupyx.scipy.sparse
    on the GPU; scipy.sparse too when passed to the internal functions directly (the public
    API keeps scipy.sparse on the Rust path), so that the sparse code runs on the CPU."""
    if _is_cupyx_sparse(A):
        return True
    mod = type(A).__module__
    if not mod.startswith("scipy"):
        return False
    import scipy.sparse as sp

    return sp.issparse(A)


def check_xp_sparse(A, name: str = "A"):
    """(xp, A as canonical CSR float32/float64, dtype) for a 2-D non-empty sparse matrix; xp
    is the namespace of its data (NumPy for scipy.sparse, CuPy for cupyx). Format and dtype
    conversions stay on A's device and are O(nnz); nothing is densified."""
    xp = namespace(A.data)
    if len(A.shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(A.shape)}")
    if 0 in A.shape:
        raise ValueError(
            f"{name} is empty (shape {tuple(A.shape)}); it needs at least one row and one column"
        )
    if A.format != "csr":
        A = A.tocsr()
    dt = float_dtype(xp, A.data, name)
    if A.data.dtype != dt:
        A = A.astype(dt)
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()
    return xp, A, dt


def check_any_matrix(A, name: str = "A"):
    """(xp, A, dtype, sparse): check_xp_sparse or check_xp_matrix."""
    if is_sparse(A):
        return (*check_xp_sparse(A, name), True)
    return (*check_xp_matrix(A, name), False)


def _host_bool(x) -> bool:
    """A 0-d device boolean on the host: every device->host synchronization of the rSVD path
    goes through here (the tests count them)."""
    return bool(x)


def _not_finite(xp, a) -> bool:
    return not _host_bool(xp.all(xp.isfinite(a)))


def _host_wait(a) -> None:
    """Wait for the device work that produced ``a``: one of its entries to the host (the
    data dependency synchronizes the stream, in every namespace). Only for progress
    reports: once per reported step, and only when there is a callback."""
    if math.prod(a.shape):
        float(a[(0,) * a.ndim])


class _Steps:
    """``progress(done, total)`` at the steps where the Rust kernels report (power
    iterations, randQB blocks, Tucker modes, HOOI sweeps). Nothing without a callback. With
    one, a report first waits for the step's device work (``wait``: an array the step
    produced; one host sync per reported step, none where the step already ended in one),
    so ``done`` counts finished work, and an exception the callback raises stops the
    computation there and propagates as is. ``once``: each count reported at most once, and
    ``done`` capped at ``total`` (the Rust Tucker ``Steps``)."""

    def __init__(self, callback=None, total: int = 0, once: bool = False):
        if callback is not None and not callable(callback):
            raise TypeError(f"progress must be a callable progress(done, total), got {callback!r}")
        self.cb, self.total, self.once, self.last = callback, total, once, None

    def __call__(self, done: int, total: int | None = None, wait=None) -> None:
        if self.cb is None:
            return
        if total is not None:
            self.total = total
        if self.once:
            done = min(done, self.total)
            if done == self.last:
                return
        self.last = done
        if wait is not None:
            _host_wait(wait)
        self.cb(done, self.total)


def _gaussian(xp, rows, cols, seed, dtype, like, col0=0):
    """The seeded Gaussian test matrix of the Rust path (columns ``col0 ..``): on CuPy drawn
    on the device by a port of the same generator (``_cupy_gaussian``, equal up to the last
    bit of sin/cos/log), elsewhere drawn on the host and transferred."""
    if _DEVICE_GAUSSIAN and _is_cupy(xp):
        try:
            with like.device:
                return _cupy_gaussian(rows, cols, seed, dtype == xp.float32, col0=col0)
        except Exception as e:  # no NVRTC, or a toolkit that cannot compile the kernel
            import warnings

            warnings.warn(
                f"lowdim: drawing the Gaussian test matrix on the device failed ({e!r}); "
                "drawing it on the host instead",
                RuntimeWarning,
                stacklevel=3,
            )
    g = _lowdim.gaussian(rows, cols, seed, 0, col0, dtype == xp.float32)
    return _from_host(xp, g, like)


# Whether CuPy input draws the test matrix on the device (benchmarks compare both).
_DEVICE_GAUSSIAN = True


def _chacha_key(seed: int) -> list[int]:
    """The ChaCha8 key of rand_core's ``seed_from_u64(seed)`` (PCG32 output, eight words)."""
    mask = (1 << 64) - 1
    state = seed & mask
    words = []
    for _ in range(8):
        state = (state * 6364136223846793005 + 11634580027462260723) & mask
        xs = (((state >> 18) ^ state) >> 27) & 0xFFFFFFFF
        rot = state >> 59
        words.append(((xs >> rot) | (xs << ((32 - rot) & 31))) & 0xFFFFFFFF)
    return words


# rng.rs on the GPU: entry (i, j) is row i of ChaCha8 stream col0 + j keyed by the seed; the
# pair (2p, 2p + 1) is Box-Muller of the words 4p .. 4p + 3 (word 4p + k of block p / 4). One
# thread per pair; out is C-ordered nrows x ncols.
_GAUSSIAN_KERNEL = r"""
#define QR(a, b, c, d) \
    x[a] += x[b]; x[d] ^= x[a]; x[d] = (x[d] << 16) | (x[d] >> 16); \
    x[c] += x[d]; x[b] ^= x[c]; x[b] = (x[b] << 12) | (x[b] >> 20); \
    x[a] += x[b]; x[d] ^= x[a]; x[d] = (x[d] << 8) | (x[d] >> 24); \
    x[c] += x[d]; x[b] ^= x[c]; x[b] = (x[b] << 7) | (x[b] >> 25);
#define GAUSSIAN(NAME, T) \
extern "C" __global__ void NAME( \
    unsigned int k0, unsigned int k1, unsigned int k2, unsigned int k3, unsigned int k4, \
    unsigned int k5, unsigned int k6, unsigned int k7, unsigned long long col0, \
    long long row0, long long nrows, long long ncols, T* out) \
{ \
    long long per_col = (row0 + nrows + 1) / 2 - row0 / 2; \
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
    if (tid >= per_col * ncols) return; \
    long long j = tid / per_col; \
    unsigned long long p = (unsigned long long)(row0 / 2 + tid % per_col); \
    unsigned long long stream = col0 + (unsigned long long)j; \
    unsigned long long ctr = p / 4; \
    unsigned int st[16] = {0x61707865u, 0x3320646Eu, 0x79622D32u, 0x6B206574u, \
        k0, k1, k2, k3, k4, k5, k6, k7, \
        (unsigned int)(ctr & 0xFFFFFFFFull), (unsigned int)(ctr >> 32), \
        (unsigned int)(stream & 0xFFFFFFFFull), (unsigned int)(stream >> 32)}; \
    unsigned int x[16]; \
    for (int i = 0; i < 16; ++i) x[i] = st[i]; \
    for (int r = 0; r < 4; ++r) { \
        QR(0, 4, 8, 12) QR(1, 5, 9, 13) QR(2, 6, 10, 14) QR(3, 7, 11, 15) \
        QR(0, 5, 10, 15) QR(1, 6, 11, 12) QR(2, 7, 8, 13) QR(3, 4, 9, 14) \
    } \
    int o = (int)(p % 4) * 4; \
    unsigned long long w0 = x[o] + st[o], w1 = x[o + 1] + st[o + 1]; \
    unsigned long long w2 = x[o + 2] + st[o + 2], w3 = x[o + 3] + st[o + 3]; \
    unsigned long long x1 = (w0 & 0xFFFFFFFFull) | ((w1 & 0xFFFFFFFFull) << 32); \
    unsigned long long x2 = (w2 & 0xFFFFFFFFull) | ((w3 & 0xFFFFFFFFull) << 32); \
    double u1 = ((double)(x1 >> 11) + 1.0) * (1.0 / 9007199254740992.0); \
    double u2 = ((double)(x2 >> 11) + 1.0) * (1.0 / 9007199254740992.0); \
    double r = sqrt(-2.0 * log(u1)); \
    double sn, cs; \
    sincos(6.283185307179586 * u2, &sn, &cs); \
    long long i0 = 2 * (long long)p; \
    if (i0 >= row0 && i0 < row0 + nrows) out[(i0 - row0) * ncols + j] = (T)(r * cs); \
    if (i0 + 1 >= row0 && i0 + 1 < row0 + nrows) out[(i0 + 1 - row0) * ncols + j] = (T)(r * sn); \
}
GAUSSIAN(lowdim_gaussian_f32, float)
GAUSSIAN(lowdim_gaussian_f64, double)
"""

_gaussian_module = None


def _cupy_gaussian(rows, cols, seed, float32, row0=0, col0=0):
    """The ``rows x cols`` block at ``(row0, col0)`` of the seeded Gaussian matrix, drawn on
    the current CuPy device (one kernel launch; no host data)."""
    global _gaussian_module
    import cupy as cp

    if _gaussian_module is None:
        _gaussian_module = cp.RawModule(code=_GAUSSIAN_KERNEL)
    dt = cp.float32 if float32 else cp.float64
    out = cp.empty((rows, cols), dtype=dt)
    per_col = (row0 + rows + 1) // 2 - row0 // 2
    total = per_col * cols
    if total == 0:
        return out
    fn = _gaussian_module.get_function("lowdim_gaussian_f32" if float32 else "lowdim_gaussian_f64")
    key = [np.uint32(w) for w in _chacha_key(seed)]
    threads = 256
    args = (*key, np.uint64(col0), np.int64(row0), np.int64(rows), np.int64(cols), out)
    fn(((total + threads - 1) // threads,), (threads,), args)
    return out


# ----------------------------------------------------------------------------- small helpers


def flip_signs(xp, U, Vh, u_based: bool = True):
    """scikit-learn's svd_flip: the largest-magnitude entry of each column of U (u_based) or
    each row of Vh made positive. Standard ops only (max/min, no integer-array indexing):
    a column whose largest positive and negative entries tie in magnitude keeps its sign."""
    if U.shape[1] == 0:
        return U, Vh
    ref = U if u_based else Vh
    axis = 0 if u_based else 1
    pos = xp.max(ref, axis=axis) >= -xp.min(ref, axis=axis)
    signs = xp.where(pos, xp.asarray(1, dtype=U.dtype), xp.asarray(-1, dtype=U.dtype))
    return U * signs[None, :], Vh * signs[:, None]


def _col_signs(xp, V):
    """Columns of V with their largest-magnitude entry positive (Tucker factors)."""
    pos = xp.max(V, axis=0) >= -xp.min(V, axis=0)
    return V * xp.where(pos, xp.asarray(1, dtype=V.dtype), xp.asarray(-1, dtype=V.dtype))[None, :]


def _solve_upper_right(xp, Y, R, overwrite: bool = False):
    """``Y R^{-1}`` for a small upper-triangular ``R`` (same dtype as Y). CuPy: one cuBLAS
    triangular solve (cupyx.scipy.linalg.solve_triangular on ``R^T X^T = Y^T``, where
    ``Y^T`` of a C-ordered Y is already the Fortran-ordered right-hand side; no host sync;
    with ``overwrite`` a temporary Y is solved in place instead of copied). Other namespaces
    (the standard has no solve_triangular): ``Y @ inv(R)``."""
    if _is_cupy(xp):
        from cupyx.scipy.linalg import solve_triangular

        return solve_triangular(R, Y.T, trans="T", lower=False, overwrite_b=overwrite).T
    return Y @ xp.linalg.inv(R)


def _qr_q(xp, Y):
    """Householder QR's Q (the fallback of CholeskyQR2)."""
    return xp.linalg.qr(Y)[0]


def _chol_ok(xp, G, L):
    """Device-side check of a Cholesky factor (no sync): finite, positive diagonal and
    ``L L^T`` reproducing ``G`` (CuPy does not raise on a failed factorization and leaves
    part of the factor unfinished, which a finiteness test alone can miss)."""
    d = xp.linalg.diagonal(L)
    scale = xp.max(xp.linalg.diagonal(G))
    res = xp.max(xp.abs(L @ L.T - G))
    return xp.all(xp.isfinite(L)) & xp.all(d > 0) & (res <= 1e-10 * scale)


def cholqr2(xp, Y):
    """CholeskyQR2: ``Y = Q R`` with the Gram matrices and their Cholesky factors in float64
    (two GEMM-shaped passes). None when a Gram matrix is not numerically positive definite
    (cond(Y) beyond ~1e8), so that the caller falls back to Householder QR. One host sync
    (both passes checked together at the end)."""
    dt = Y.dtype
    Q = Y
    Rtot = None
    ok = None
    for _ in range(2):
        Q64 = _as(xp, Q, xp.float64)
        G = Q64.T @ Q64
        try:
            L = xp.linalg.cholesky(G)
        except Exception:  # numpy / array_api_strict raise LinAlgError
            return None
        good = _chol_ok(xp, G, L)
        ok = good if ok is None else ok & good
        R = L.T
        Q = _as(xp, _solve_upper_right(xp, Q64, R, overwrite=Q64 is not Y), dt)
        Rtot = R if Rtot is None else R @ Rtot
    if not _host_bool(ok):  # cupy returns NaNs or an unfinished factor instead of raising
        return None
    return Q, Rtot


def cholqr_shifted(xp, Y):
    """One shifted CholeskyQR pass (Fukaya et al. 2020), for the power iteration's
    intermediate blocks, which need a well-conditioned basis of the same span, not an exactly
    orthonormal one: ``G = Y^T Y + s I`` in float64 with ``s = 11 (m l + l (l + 1)) eps
    ||Y||_F^2`` is numerically positive definite for every finite Y, so the factorization
    cannot fail and needs no check (no host sync); ``Q = Y R^{-1}`` spans Y exactly and has
    singular values ``sigma_i / sqrt(sigma_i^2 + s)`` (1 down to ~1e-4 relative to
    ||Y||_F, like the Rust path's SVQB floor). Non-finite input gives a non-finite Q, which
    the caller's one check after the loop catches."""
    dt = Y.dtype
    m, ell = Y.shape
    Y64 = _as(xp, Y, xp.float64)
    G = Y64.T @ Y64
    eps = float(np.finfo(np.float64).eps)
    tiny = float(np.finfo(np.float64).tiny)
    s = (11.0 * (m * ell + ell * (ell + 1)) * eps) * xp.sum(xp.linalg.diagonal(G)) + tiny
    G = G + s * xp.eye(ell, dtype=xp.float64, device=_device(G))
    try:
        L = xp.linalg.cholesky(G)
    except Exception:  # numpy / array_api_strict on non-finite input: let NaN propagate
        return Y * xp.asarray(math.nan, dtype=dt, device=_device(Y))
    return _as(xp, _solve_upper_right(xp, Y64, L.T, overwrite=Y64 is not Y), dt)


def orthonormalize(xp, Y):
    """An orthonormal basis of the columns of Y: CholeskyQR2, Householder QR as fallback."""
    qr = cholqr2(xp, Y)
    return _qr_q(xp, Y) if qr is None else qr[0]


def _lu_normalize(xp, Y):
    """scikit-learn's LU normalizer (``P L`` of ``Y = P L U``), where the namespace has an LU:
    SciPy's for NumPy, cupyx.scipy's for CuPy. The standard has none: other namespaces use
    CholeskyQR2 (same span, better conditioned)."""
    name = xp.__name__
    if _is_cupy(xp):
        from cupyx.scipy.linalg import lu

        # check_finite=False: its check is a host sync per power iteration (cupyx also reads
        # getrf's info, two more); A is checked finite before the loop and Y after it
        return lu(Y, permute_l=True, check_finite=False)[0]
    if name.endswith("numpy"):
        from scipy.linalg import lu

        return xp.asarray(lu(Y, permute_l=True)[0])
    return orthonormalize(xp, Y)


def _normalize(xp, Y, how: str):
    if how == "none":
        return Y
    if how == "LU":
        return _lu_normalize(xp, Y)
    if how == "QR":
        return _qr_q(xp, Y)
    if how == "cholqr":  # the power iteration's intermediate blocks
        return cholqr_shifted(xp, Y)
    return orthonormalize(xp, Y)  # "cholqr2"


def _svd64(xp, M):
    """Thin SVD of a small matrix in float64."""
    return xp.linalg.svd(_as(xp, M, xp.float64), full_matrices=False)


# Where rSVD's final l x l SVD runs: "device" (the namespace's svd: cuSOLVER gesvd on CuPy),
# "gesvdj" (the default: on CuPy cuSOLVER's Jacobi SVD, 2x faster than gesvd at l = 110 on an
# H200 at equal accuracy; other namespaces use
# "device") or "host" (NumPy's LAPACK; l^2 numbers each way and one sync).
# benches/compare_gpu.py times the three.
_SMALL_SVD = "gesvdj"


def _small_svd64(xp, R):
    """Thin SVD ``R = U diag(S) Vh`` (S descending) of rSVD's small square factor, in
    float64, where _SMALL_SVD says."""
    R = _as(xp, R, xp.float64)
    if _SMALL_SVD == "gesvdj" and _is_cupy(xp):
        from cupyx import cusolver

        u, s, v = cusolver.gesvdj(R, full_matrices=False)
        order = xp.argsort(-s)  # documented descending; cheap insurance
        return xp.take(u, order, axis=1), xp.take(s, order), xp.take(v, order, axis=1).T
    if _SMALL_SVD == "host":
        u, s, vh = np.linalg.svd(to_host(R), full_matrices=False)
        return tuple(_from_host(xp, x, R) for x in (u, s, vh))
    return _svd64(xp, R)


def _gram64(xp, T, rows_per_block: int | None = None):
    """``T^T T`` accumulated in float64, by row blocks of about 32 MiB (float32 input is
    converted block by block, never as a whole)."""
    m, n = T.shape
    if T.dtype == xp.float64:
        return T.T @ T
    h = rows_per_block or max(1, (1 << 22) // max(n, 1))
    G = None
    for r in range(0, m, h):
        b = _as(xp, T[r : min(r + h, m), :], xp.float64)
        g = b.T @ b
        G = g if G is None else G + g
    return G


# ----------------------------------------------------------------------------- rSVD


class _Op:
    """The tall orientation ``T`` of A (``A^T`` when A is wide), through its products only:
    a dense array, or a sparse matrix (cupyx / scipy CSR: ``A @ X`` and ``A.T @ Y`` by the
    sparse kernels, never densified), optionally centred implicitly (``A - 1 c^T``: the mean
    is never subtracted from a sparse matrix) and scaled by ``scale`` (a power of two, exact:
    the Rust path's rescaling of extreme magnitudes)."""

    def __init__(self, xp, A, dt, sparse=False, center=None):
        self.xp, self.A, self.dt, self.sparse, self.c = xp, A, dt, sparse, center
        m, n = A.shape
        self.trans = m < n
        self.shape = (n, m) if self.trans else (m, n)
        self.scale = 1.0
        self.like = A.data if sparse else A  # an array on A's device

    def dense(self):
        """The dense ``T`` (unscaled), or None for sparse or implicitly centred input."""
        if self.sparse or self.c is not None:
            return None
        return self.A.T if self.trans else self.A

    def _a(self, X):  # (A - 1 c^T) X
        Y = self.A @ X
        if self.c is not None:
            Y = Y - (self.c @ X)[None, :]
        return Y

    def _at(self, Y):  # (A - 1 c^T)^T Y
        Z = self.A.T @ Y
        if self.c is not None:
            Z = Z - self.c[:, None] * self.xp.sum(Y, axis=0)[None, :]
        return Z

    def _scaled(self, Y):
        return Y if self.scale == 1.0 else Y * self.scale

    def apply(self, X):
        return self._scaled(self._at(X) if self.trans else self._a(X))

    def apply_t(self, Y):
        return self._scaled(self._a(Y) if self.trans else self._at(Y))

    def col_sums(self):
        """Column sums of A (unscaled, uncentred), in A's dtype: ``A^T 1``."""
        xp = self.xp
        ones = xp.ones((self.A.shape[0],), dtype=self.dt, device=_device(self.like))
        return self.A.T @ ones

    def frob_sq(self) -> float:
        """``||scale (A - 1 c^T)||_F^2`` in float64, the scale applied before squaring (safe
        for extreme magnitudes); dense float32 is converted by row blocks of ~32 MiB."""
        with np.errstate(over="ignore", under="ignore"):  # overflow: the caller rescales
            return self._frob_sq()

    def _frob_sq(self) -> float:
        xp, s = self.xp, self.scale
        if self.sparse:
            A = self.A
            d = _as(xp, A.data, xp.float64) * s
            if self.c is None:
                return float(xp.sum(d * d))
            # each stored entry centred before squaring, in float64, plus c_j^2 for each
            # implicit zero (m sum c^2 minus the stored entries' c^2): the expansion
            # ||A||^2 - 2 c^T A^T 1 + m ||c||^2 with A^T 1 in A's dtype lost every digit of
            # float32 data of 1000 + noise
            c = _as(xp, self.c, xp.float64) * s
            if getattr(A, "format", "csr") == "csr":
                cols = A.indices
            else:  # CSC: the column of each stored entry, from indptr
                pos = xp.arange(d.shape[0], dtype=A.indptr.dtype, device=_device(d))
                cols = xp.searchsorted(A.indptr[1:], pos, side="right")
            cs = xp.take(c, cols)
            d = d - cs
            # the three sums in one transfer (one host sync), added on the host as before
            sd, sc, scs = (
                float(x) for x in to_host(xp.stack([xp.sum(d * d), xp.sum(c * c), xp.sum(cs * cs)]))
            )
            total = sd + A.shape[0] * sc
            return max(total - scs, 0.0)
        A = self.A
        m, n = A.shape
        h = max(1, _FROB_BLOCK // max(n, 1))
        total = None
        for r in range(0, m, h):
            b = _as(xp, A[r : min(r + h, m), :], xp.float64) * s
            part = xp.sum(b * b)
            total = part if total is None else total + part
        return float(total)  # one host sync, whatever the number of blocks

    def max_abs(self) -> float:
        """``max |a_ij|`` (unscaled; NaN if A holds a NaN), plus ``max |c_j|`` if centred (an
        upper bound, as the Rust Centered operator's)."""
        xp = self.xp
        d = self.A.data if self.sparse else self.A
        # two reductions, no |A| temporary of A's size (NaN propagates through both)
        amax = max(float(xp.max(d)), -float(xp.min(d))) if math.prod(d.shape) else 0.0
        if self.c is not None:
            amax += float(xp.max(xp.abs(self.c)))
        return amax

    def in_range(self, lo: float, hi: float) -> bool:
        """Whether every magnitude of A (and the centre) is 0 or within ``[lo, hi]``, and
        finite: one host sync (:func:`_host_bool`), no temporary of A's size."""
        xp = self.xp
        d = self.A.data if self.sparse else self.A
        if not math.prod(d.shape):
            return True
        amax = xp.maximum(xp.max(d), -xp.min(d))
        if self.c is not None:
            amax = amax + xp.max(xp.abs(self.c))
        # NaN fails both comparisons
        return _host_bool((amax <= hi) & ((amax >= lo) | (amax == 0.0)))

    def residual_sq(self, Us, Vt) -> float:
        """``||T - Us Vt^T||_F^2`` (float64) for dense unscaled T, by row blocks of ~4 MiB
        (never the whole residual)."""
        xp = self.xp
        T = self.dense()
        m, n = T.shape
        h = max(1, _RESIDUAL_BLOCK_BYTES // (8 * max(n, 1)))
        total = None
        for r in range(0, m, h):
            blk = T[r : min(r + h, m), :] - Us[r : min(r + h, m), :] @ Vt.T
            part = xp.sum(_as(xp, blk, xp.float64) ** 2)
            total = part if total is None else total + part
        return float(total)  # one host sync, whatever the number of blocks


# Entries per row block of _Op.frob_sq (~32 MiB of float64) and bytes per row block of
# _Op.residual_sq (the residual is never formed whole); module constants for the tests.
_FROB_BLOCK = 1 << 22
_RESIDUAL_BLOCK_BYTES = 4 << 20


def _safe_range(xp, dt) -> tuple[float, float]:
    """Magnitudes of entries whose squares and products stay well inside the dtype's range
    (the Rust kernels' ``Real::SAFE_LO`` / ``SAFE_HI``)."""
    from ._validation import SAFE_F32, SAFE_F64

    return SAFE_F64 if dt == xp.float64 else SAFE_F32


def _prefer_gram(m, n, k, ell, q) -> bool:
    gram = m * n * n + 9.0 * n * n * n + 2.0 * m * n * k
    rand = (2.0 * q + 2.0) * 2.0 * m * n * ell
    return n <= 4096 and gram < rand


def _finish_small(xp, Q, Bt, k, dt):
    """From ``T ~= Q Bt^T``: ``Bt = Qb Rb``, ``Rb = Ur S Wr^T`` (float64) gives
    ``U_t = Q Wr_k``, S, ``V_t = Qb Ur_k``."""
    qr = cholqr2(xp, Bt)
    if qr is None:
        Qb, Rb = xp.linalg.qr(Bt)
    else:
        Qb, Rb = qr
    Ur, S, Wrh = _small_svd64(xp, Rb)
    Ut = Q @ _as(xp, Wrh[:k, :].T, dt)
    Vt = Qb @ _as(xp, Ur[:, :k], dt)
    return Ut, _as(xp, S[:k], dt), Vt


# What the default normalizer ("cholqr2") runs on the power iteration's intermediate blocks:
# one shifted CholeskyQR. "cholqr2" restores CholeskyQR2 per block (benchmarks compare them).
_INNER_NORMALIZER = "cholqr"


def _randomized(xp, op, k, ell, q, how, seed, dt, steps):
    n = op.shape[1]
    steps(0, q + 1)
    X = _gaussian(xp, n, ell, seed, dt, op.like)
    Y = op.apply(X)
    # A is finite and in range (rsvd checked it). No host sync inside the loop with the
    # default normalizer: one shifted CholeskyQR per block (the span is all the next pass
    # needs); the final CholeskyQR2's one sync checks that Y stayed finite (a NaN makes it
    # fail), and only its fallback tests Y itself.
    inner = _INNER_NORMALIZER if how == "cholqr2" else how
    for it in range(q):
        Y = _normalize(xp, Y, inner)
        Z = op.apply_t(Y)
        Z = _normalize(xp, Z, "QR" if how == "LU" else inner)
        Y = op.apply(Z)
        steps(it + 1, q + 1, wait=Y)
    qr = cholqr2(xp, Y)  # its one sync also vouches for Y being finite
    if qr is None:
        if _not_finite(xp, Y):
            raise ValueError("A contains NaN or infinity (or the power iteration overflowed)")
        Q = _qr_q(xp, Y)
    else:
        Q = qr[0]
    Bt = op.apply_t(Q)
    out = _finish_small(xp, Q, Bt, k, dt)
    steps(q + 1, q + 1, wait=out[0])
    return out


def _gram_svd(xp, T, k, force, dt, steps):
    n = T.shape[1]
    steps(0, 2)
    G = _gram64(xp, T)
    if _not_finite(xp, G):
        raise ValueError("A contains NaN or infinity")
    lam, V = xp.linalg.eigh(G)
    lam_h = to_host(lam)
    if not force and lam_h[n - k] < 1e-10 * max(lam_h[n - 1], 0.0):
        return None
    steps(1, 2)  # (the eigenvalues' transfer has waited for the device)
    Vk = _as(xp, xp.flip(V[:, n - k :], axis=1), dt)
    Y = T @ Vk
    qr = cholqr2(xp, Y)
    Q, R = xp.linalg.qr(Y) if qr is None else qr
    Ur, S, Wrh = _small_svd64(xp, R)
    out = Q @ _as(xp, Ur, dt), _as(xp, S[:k], dt), Vk @ _as(xp, Wrh.T, dt)
    steps(2, 2, wait=out[0])
    return out


def _exact(xp, T, k, dt, steps):
    steps(0, 1)
    if _not_finite(xp, T):
        raise ValueError("A contains NaN or infinity")
    U, S, Vh = _svd64(xp, T)
    out = _as(xp, U[:, :k], dt), _as(xp, S[:k], dt), _as(xp, Vh[:k, :].T, dt)
    steps(1, 1, wait=out[0])
    return out


def rsvd(
    A,
    k=None,
    *,
    tol=None,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    seed=None,
    solver="auto",
    block_size=16,
    center=None,
    progress=None,
):
    """lowdim.rsvd on an array-API array (see its docstring); results in A's namespace.
    ``progress``: a callable ``progress(done, total)`` or None, called at the Rust path's
    steps (after each power iteration, ``total`` = iterations + 1; Gram path 2 steps, exact
    SVD 1; tol mode after each block, ``done`` = rank so far, ``total`` = the largest rank),
    each time after the step's device work has finished (one host sync per report)."""
    from ._validation import check_int, check_rsvd_tol, check_seed, pow2_scale
    from .svd import SVDResult, _check_n_iter, _check_normalizer

    xp, A, dt, sparse = check_any_matrix(A)
    m, n = A.shape
    if (k is None) == (tol is None):
        raise ValueError("give exactly one of k (a fixed rank) and tol (an error tolerance)")
    if k is not None:
        k = check_int(k, "k", 1)
        if k > min(m, n):
            raise ValueError(
                f"k={k} is larger than min(m, n) = {min(m, n)} for a matrix of shape {A.shape}"
            )
    else:
        check_rsvd_tol(tol, dt == xp.float32)
    if solver not in ("auto", "randomized", "gram"):
        raise ValueError(f"solver must be 'auto', 'randomized' or 'gram', got {solver!r}")
    if solver == "gram" and sparse:
        raise ValueError("solver='gram' needs a dense matrix")
    n_oversamples = check_int(n_oversamples, "n_oversamples", 0)
    block_size = check_int(block_size, "block_size", 1)
    n_iter = _check_n_iter(n_iter)
    normalizer = _check_normalizer(power_iteration_normalizer)
    seed = check_seed(seed)
    steps = _Steps(progress)
    c = None
    if center is not None:
        c = _as(xp, center, dt)
        if not sparse:  # dense input is centred explicitly (as the Rust path's PCA does)
            A, c = A - c[None, :], None
    op = _Op(xp, A, dt, sparse, c)
    if tol is not None:
        return _rsvd_tol(xp, op, tol, 4 if n_iter is None else n_iter, block_size, seed, steps)
    # Entries whose squares (Gram matrices, CholeskyQR2) leave the dtype's safe range: A
    # scaled by a power of two (exact) and S scaled back, as the Rust path's with_rescale.
    # Without it S came out 15-50% wrong, silently, for entries of 1e-200 or 1e160. The
    # check is two reductions over A and one host sync, and it is the finiteness check of
    # A too; a scaled copy of a dense A is made only when out of range.
    if not op.in_range(*_safe_range(xp, dt)):
        amax = op.max_abs()
        if not math.isfinite(amax):
            raise ValueError("A contains NaN or infinity")
        op.scale = pow2_scale(amax, _safe_range(xp, dt))
    T = op.dense()
    if T is not None and op.scale != 1.0:
        T = T * op.scale
    mt, nt = op.shape
    q = n_iter if n_iter is not None else (7 if k < 0.1 * min(m, n) else 4)
    ell = min(k + n_oversamples, nt)
    out = None
    used = "randomized"
    if solver == "gram":
        out, used = _gram_svd(xp, T, k, True, dt, steps), "gram"
    elif solver == "auto" and T is not None:  # sparse: always the randomized passes
        if _prefer_gram(mt, nt, k, ell, q):
            out, used = _gram_svd(xp, T, k, False, dt, steps), "gram"
        if out is None and ell >= nt:
            out, used = _exact(xp, T, k, dt, steps), "exact"
    if out is None:
        used = "randomized"
        how = normalizer
        if how == "auto":
            how = "none" if q <= 2 else "cholqr2"
        out = _randomized(xp, op, k, ell, q, how, seed, dt, steps)
    Ut, S, Vt = out
    if op.scale != 1.0:
        S = S * (1.0 / op.scale)
    U, V = (Vt, Ut) if m < n else (Ut, Vt)
    U, Vh = flip_signs(xp, U, V.T)
    res = SVDResult(U, S, Vh)
    res.rel_error = None
    res.solver = used
    return res


# How the tol mode normalizes the power iteration's blocks: "cholqr" (one shifted CholeskyQR,
# no host sync) or "cholqr2" (CholeskyQR2 with its check, one sync each, like the Rust QR).
_TOL_INNER = "cholqr"


def _rsvd_tol(xp, op: _Op, tol, q, block_size, seed, steps=None):
    """Adaptive rank: the Rust ``rsvd_tol`` (blocked randQB with the error indicator
    ``||T||_F^2 - ||B||_F^2``, Yu, Gu & Li 2018, with power iterations), line for line as
    the dask port ``_dask._rsvd_tol``: the first block of ``block_size`` columns, later blocks
    doubling up to 512, block i's test matrix the columns ``r ..`` of the seeded Gaussian (so
    the same seed gives the same rank and factors as the Rust path up to rounding), the same
    slack in the target, the same rank choice from the SVD of ``B``, the same rescaling of
    extreme magnitudes and the same residual measurement near the rounding floor. The basis
    ``Q`` and ``B^T`` stay on the device; per block three host syncs whatever ``n_iter`` is
    (finiteness of the sketch, the CholeskyQR2 of the new block, the indicator: the loop
    length depends on the data), plus two at the end (the rank choice)."""
    from ._validation import pow2_near_inverse
    from .svd import SVDResult

    steps = _Steps() if steps is None else steps
    dt = op.dt
    f64 = dt == xp.float64
    eps = float(np.finfo(np.float64 if f64 else np.float32).eps)
    lo, hi = _safe_range(xp, dt)
    mt, nt = op.shape

    def unsafe(f2):
        return f2 == 0.0 or not math.isfinite(f2) or not lo <= math.sqrt(f2) <= hi

    def finish(Ut, S, Vt, rel_error):
        U, V = (Vt, Ut) if op.trans else (Ut, Vt)
        U, Vh = flip_signs(xp, U, V.T)
        res = SVDResult(U, S, Vh)
        res.rel_error = rel_error
        res.solver = "randqb"
        return res

    frob2 = op.frob_sq()
    if math.isnan(frob2):
        raise ValueError("A contains NaN or infinity")
    if unsafe(frob2):
        # the Rust with_rescale: a power-of-two scaling of A (exact), S scaled back
        amax = op.max_abs()
        if not math.isfinite(amax):
            raise ValueError("A contains NaN or infinity")
        if amax == 0.0:
            dev = _device(op.like)
            z = (xp.zeros((mt, 0), dtype=dt, device=dev), xp.zeros((nt, 0), dtype=dt, device=dev))
            return finish(z[0], xp.zeros((0,), dtype=dt, device=dev), z[1], 0.0)
        op.scale = pow2_near_inverse(amax, 1023 if f64 else 127)
        frob2 = op.frob_sq()
        if unsafe(frob2):
            raise np.linalg.LinAlgError("cannot rescale A into a safe range")
    # A small slack keeps rounding in the indicator from stopping a hair early.
    target = frob2 * max(tol * tol - 32.0 * eps, 0.0)
    steps(0, nt)
    Q = Bt = None
    r = 0
    e = frob2
    b = block_size

    def deflated(Y, X):  # Y - Q (B X) for Y = T X
        return Y if Q is None else Y - Q @ (Bt.T @ X)

    def deflated_t(W, Y):  # W - B^T (Q^T Y) for W = T^T Y
        return W if Q is None else W - Bt @ (Q.T @ Y)

    while r < nt:
        bsz = min(b, nt - r)
        omega = _gaussian(xp, nt, bsz, seed, dt, op.like, col0=r)
        Y = op.apply(omega)
        if _not_finite(xp, Y):
            raise ValueError("A contains NaN or infinity")
        # The deflated products hold for any block (not only orthonormal ones), so the power
        # iteration's blocks only need a well-conditioned basis of their span: one shifted
        # CholeskyQR each (no host sync, _TOL_INNER); the block added to the basis gets
        # CholeskyQR2 (Householder QR as fallback), as orthonormal as the Rust path's QR.
        Qi = _normalize(xp, deflated(Y, omega), _TOL_INNER)
        for _ in range(q):
            Wi = _normalize(xp, deflated_t(op.apply_t(Qi), Qi), _TOL_INNER)
            Qi = _normalize(xp, deflated(op.apply(Wi), Wi), _TOL_INNER)
        if Q is not None:
            # re-orthogonalize against the basis so far, twice is enough (Kahan)
            for _ in range(2):
                Qi = Qi - Q @ (Q.T @ Qi)
        Qi = orthonormalize(xp, Qi)
        Bti = deflated_t(op.apply_t(Qi), Qi)
        nb = sum_sq64(xp, Bti)
        if not math.isfinite(nb):
            raise ValueError(
                "A contains NaN or infinity (or values so large that products with A overflow)"
            )
        e -= nb
        Q = Qi if Q is None else xp.concat([Q, Qi], axis=1)
        Bt = Bti if Bt is None else xp.concat([Bt, Bti], axis=1)
        r += bsz
        if e <= target:
            break
        if r < nt:
            steps(r, nt)  # (the indicator's transfer has waited for the device)
        b = min(2 * b, 512)
    # Rank from the SVD of B (that of the triangle of B^T = Qb Rb): the error of rank k is
    # (||T||^2 - ||B||^2) + sum_{i>k} s_i^2.
    qr = cholqr2(xp, Bt)
    Qb, Rb = xp.linalg.qr(Bt) if qr is None else qr
    Ur, S, Wrh = _small_svd64(xp, Rb)
    s = to_host(S).astype(np.float64)
    if not math.isfinite(float(s.sum())):
        raise ValueError("A contains NaN or infinity")
    k, err2 = tol_rank(s, frob2, target)
    # T ~= Q B = Q Wr S Ur^T Qb^T
    Ut = Q @ _as(xp, Wrh[:k, :].T, dt)
    Vt = Qb @ _as(xp, Ur[:, :k], dt)
    Sk = _as(xp, S[:k], dt)
    if err2 < 1e3 * eps * frob2 and op.scale == 1.0 and op.dense() is not None:
        # near the rounding floor the indicator says little: measure the residual (one pass)
        err2 = op.residual_sq(Ut * Sk[None, :], Vt)
    if op.scale != 1.0:
        Sk = _as(xp, _as(xp, S[:k], xp.float64) / op.scale, dt)
    steps(nt, nt, wait=Ut)
    return finish(Ut, Sk, Vt, math.sqrt(err2 / frob2))


def tol_rank(s, frob2: float, target: float) -> tuple[int, float]:
    """The tol-mode rank from the singular values ``s`` (float64, descending) of ``B`` in
    ``T ~= Q B``: the smallest k >= 1 whose error ``(||T||^2 - ||B||^2) + sum_{i>k} s_i^2``
    is within ``target`` (squared), and that error. Shared by the array-API and Dask routes
    (the Rust kernel applies the same rule)."""
    s2 = s * s
    err2 = max(frob2 - float(s2.sum()), 0.0)
    k = len(s)
    while k > 1 and err2 + s2[k - 1] <= target:
        err2 += s2[k - 1]
        k -= 1
    return k, err2


def svd_error(A, U, S, Vh, *, n_iter=20, seed=None) -> float:
    """lowdim.svd_error on array-API arrays: the power method on the residual operator from
    the same seeded Gaussian start as the Rust path."""
    from ._validation import check_int, check_seed

    xp, A, dt, sparse = check_any_matrix(A)
    m, n = A.shape
    if U.ndim != 2 or S.ndim != 1 or Vh.ndim != 2:
        raise ValueError("U and Vh must be 2-D and S 1-D")
    k = S.shape[0]
    if tuple(U.shape) != (m, k) or tuple(Vh.shape) != (k, n):
        raise ValueError(
            f"shapes do not match: A is {tuple(A.shape)}, U is {tuple(U.shape)}, S is "
            f"{tuple(S.shape)}, Vh is {tuple(Vh.shape)}; expected U ({m}, {k}) and Vh ({k}, {n})"
        )
    n_iter = check_int(n_iter, "n_iter", 1)
    seed = check_seed(seed)
    U, S, Vh = (_as(xp, x, dt) for x in (U, S, Vh))
    for x, name in ((U, "U"), (S, "S"), (Vh, "Vh")):
        if _not_finite(xp, x):
            raise ValueError(f"{name} contains NaN or infinity")
    x = _gaussian(xp, n, 1, seed, dt, A.data if sparse else A)
    est = 0.0
    for _ in range(n_iter):
        nx = _vector_norm(xp, x)
        if not math.isfinite(nx):
            raise ValueError("A contains NaN or infinity")
        if nx == 0.0:
            break
        x = x / nx  # (1 / nx is infinite for a subnormal norm)
        y = A @ x - U @ (S[:, None] * (Vh @ x))
        ny = _vector_norm(xp, y)
        if not math.isfinite(ny):
            raise ValueError("A contains NaN or infinity")
        est = max(est, ny)
        if ny == 0.0:
            break
        y = y / ny  # A^T (A x) would square the magnitudes
        x = A.T @ y - Vh.T @ (S[:, None] * (U.T @ y))
    return est


def _vector_norm(xp, v) -> float:
    """``||v||`` of a small block in float64 without overflow or underflow (the largest
    magnitude times the norm of ``v / max``; the Rust path's ``norm_of``): data of 1e300
    overflowed the squares, 1e-300 underflowed them to an estimate of 0. NaN for NaN."""
    v = _as(xp, v, xp.float64)
    # on the device, then one transfer of two numbers (one host sync, not three)
    amax = xp.maximum(xp.max(v), -xp.min(v))
    usable = (amax > 0.0) & xp.isfinite(amax)
    # v / amax, not v * (1 / amax): 1 / amax is infinite for a subnormal amax
    nrm = xp.linalg.vector_norm(v / xp.where(usable, amax, xp.ones_like(amax)))
    amax, nrm = (float(x) for x in to_host(xp.stack([amax, nrm])))
    if amax == 0.0 or not math.isfinite(amax):
        return amax
    return amax * nrm


# ----------------------------------------------------------------------------- Tucker


def mode_product(X, M, mode: int, transpose: bool = False):
    """``X x_mode M`` (``M.T`` if transpose): one tensordot (a transpose and a GEMM)."""
    xp = namespace(X, M)
    Mm = M.T if transpose else M
    Y = xp.tensordot(Mm, X, axes=([1], [mode]))
    return xp.moveaxis(Y, 0, mode) if mode != 0 else Y


def _unfold(xp, X, mode):
    """The mode-n unfolding ``I_n x prod(others)`` (one transpose copy at most)."""
    Xm = xp.moveaxis(X, mode, 0) if mode != 0 else X
    return xp.reshape(Xm, (X.shape[mode], -1))


_NON_FINITE_X = "X contains NaN or infinity (or values so large that their squares overflow)"


class _Eig:
    """The leading eigenpairs of ``Y_(n) Y_(n)^T`` (the Rust ``ModeEig``): ``vecs`` (I_n x k,
    float64, on the device, descending), ``vals`` (host float64, descending), ``total``
    (``||Y||_F^2``), ``complete`` (whether ``vals`` holds all I_n values; else the discarded
    energy is ``total`` minus the kept values) and the solver's name."""

    __slots__ = ("complete", "solver", "total", "vals", "vecs")

    def __init__(self, vecs, vals, total, complete, solver):
        self.vecs, self.vals, self.total = vecs, vals, total
        self.complete, self.solver = complete, solver

    def tail(self, r: int) -> float:
        """Squared Frobenius norm discarded when keeping ``r`` vectors."""
        if self.complete:
            return max(float(np.sum(self.vals[r:][::-1])), 0.0)
        return max(self.total - float(np.sum(self.vals[:r])), 0.0)


def _mode_eig(xp, Y, mode, svd, r=None, seed=0):
    """Leading eigenpairs of ``Y_(n) Y_(n)^T`` by the solver ``svd`` ("gram", "lq" or
    "randomized", the latter for a fixed rank ``r``)."""
    if svd == "randomized":
        i_n = Y.shape[mode]
        if r <= math.prod(Y.shape) // i_n:
            return _rand_eig(xp, Y, mode, r, seed)
        # The unfolding has fewer columns than r: a sketch cannot deliver r directions (the
        # Rust path fails there); the Gram path is exact and small in that case.
    Yn = _unfold(xp, Y, mode)
    if svd == "lq":
        U, s, _ = _svd64(xp, Yn)
        s_h = to_host(s).astype(np.float64)
        vals = s_h**2
        total = float(np.sum(vals))
        full = np.zeros(Yn.shape[0])
        full[: vals.size] = vals
        return _Eig(U, full, total, True, "lq")
    # float64 products (a float64 copy of a float32 unfolding): a float32 Gram matrix lost
    # the discarded eigenvalues of float32 data below sqrt(eps) relative, so the certified
    # error of a good float32 fit was twice the true one (or below it)
    Y64 = _as(xp, Yn, xp.float64)
    i_n, j = Y64.shape
    tall = i_n > j and (r is None or r <= j)
    # a long mode (I_n > J) works on the J x J side, as the Rust path: the I_n x I_n Gram
    # matrix and its eigh took O(I_n^2) memory and O(I_n^3) time
    G = Y64.T @ Y64 if tall else Y64 @ Y64.T
    total = float(xp.sum(xp.linalg.diagonal(G)))
    if not math.isfinite(total):  # before eigh, which fails on NaN ("did not converge")
        raise ValueError(_NON_FINITE_X)
    lam, V = xp.linalg.eigh(G)
    lam_h = np.maximum(to_host(lam)[::-1].astype(np.float64), 0.0)
    V = xp.flip(V, axis=1)
    if not tall:
        return _Eig(V, lam_h, total, True, "gram")
    # U = Y V L^-1/2, then a QR (orthonormal also where L is ~0: a coordinate direction);
    # a fixed rank needs its r columns only (all J: an I_n x J matrix, the tensor's size)
    k = j if r is None else min(r, j)
    V = V[:, :k]
    lam_d = xp.asarray(lam_h[:k], dtype=xp.float64, device=_device(Y64))
    pos = lam_d > 0
    inv = xp.where(pos, 1.0 / xp.sqrt(xp.where(pos, lam_d, 1.0)), 0.0)
    U = Y64 @ (V * inv[None, :])
    fill = xp.astype(xp.logical_not(pos), xp.float64)
    U = U + fill[None, :] * xp.eye(i_n, k, dtype=xp.float64, device=_device(U))
    Q, _ = xp.linalg.qr(U)
    full = np.zeros(i_n)
    full[:j] = lam_h
    return _Eig(Q, full, total, True, "gram")


# The Rust RandParams::default() of lowdim.tucker's randomized range finder, and the step of
# its per-mode seed (mode n draws its test matrix with seed + step * (n + 1), wrapping).
_RAND_OVERSAMPLES = 10
_RAND_POWER_ITER = 1
_MODE_SEED_STEP = 0x9E3779B97F4A7C15
_U64 = (1 << 64) - 1


def _sum_sq64_dev(xp, Y):
    """``||Y||_F^2`` in float64 as a 0-d device array (no host sync). CuPy: one fused
    reduction kernel (``_cupy_sum_sq64``); elsewhere by slices of 2^22 entries (float32
    converted slice by slice, never the whole tensor)."""
    if _is_cupy(xp) and _FUSED_SUM_SQ:
        try:
            return _cupy_sum_sq64(Y)
        except Exception as e:  # no NVRTC, or a toolkit that cannot compile the kernel
            _disable_fused_sum_sq(e)
    flat = xp.reshape(Y, (-1,))
    n = flat.shape[0]
    h = _SUM_SQ_SLICE
    total = None
    for a in range(0, n, h):
        b = _as(xp, flat[a : min(a + h, n)], xp.float64)
        part = xp.sum(b * b)
        total = part if total is None else total + part
    return total


# Whether CuPy computes sums of squares by one fused kernel (off after a failure to compile),
# and the slices of the other namespaces.
_FUSED_SUM_SQ = True
_SUM_SQ_SLICE = 1 << 22
_sum_sq_kernel = None


def _cupy_sum_sq64(a):
    """``sum(a**2)`` accumulated in float64, one CuPy reduction kernel over any strides (no
    temporary: the standard has no fused, upcasting sum of squares)."""
    global _sum_sq_kernel
    import cupy as cp

    if _sum_sq_kernel is None:
        _sum_sq_kernel = cp.ReductionKernel(
            "T x", "float64 y", "(double)x * (double)x", "a + b", "y = a", "0", "lowdim_sum_sq64"
        )
    return _sum_sq_kernel(a)


def _disable_fused_sum_sq(e):
    global _FUSED_SUM_SQ
    import warnings

    _FUSED_SUM_SQ = False
    warnings.warn(
        f"lowdim: the fused sum-of-squares kernel failed ({e!r}); using array slices instead",
        RuntimeWarning,
        stacklevel=3,
    )


def _rand_eig(xp, Y, mode, r, seed):
    """The Rust ``rand_eig`` (R-STHOSVD's per-mode solver) on the mode-n unfolding: one
    transpose copy at most, then GEMMs. ``Z = Y_(n) Omega`` with the Rust path's seeded
    Gaussian (``seed + step (n + 1)``; its rows follow the logical column order, C order over
    the other axes, which is the unfolding's), ``l = min(r + 10, I_n, J)`` columns, one power
    iteration with one shifted CholeskyQR per intermediate block (the next product needs only
    the span: no host sync), CholeskyQR2 for the final basis Q (Householder QR as fallback),
    then the eigenpairs of ``B B^T = (Y_(n)^T Q)^T (Y_(n)^T Q)`` in float64 (l x l). The Rust
    path orthonormalizes by Householder QR throughout: the same spans, so the same factors up
    to rounding. Host syncs: the CholeskyQR2 check, and one transfer of ``||Y||^2`` with the l
    eigenvalues."""
    Yn = _unfold(xp, Y, mode)
    i_n, j = Yn.shape
    dt = Yn.dtype
    ell = min(r + _RAND_OVERSAMPLES, i_n, j)
    s = (seed + _MODE_SEED_STEP * (mode + 1)) & _U64
    Z = Yn @ _gaussian(xp, j, ell, s, dt, Yn)
    total = _sum_sq64_dev(xp, Yn)
    for _ in range(_RAND_POWER_ITER):
        W = Yn.T @ cholqr_shifted(xp, Z)
        Z = Yn @ cholqr_shifted(xp, W)
    qr = cholqr2(xp, Z)  # its one sync also vouches for Z being finite
    if qr is None:
        if _not_finite(xp, Z):
            raise ValueError(_NON_FINITE_X)
        Q = _qr_q(xp, Z)
    else:
        Q = qr[0]
    lam, V = xp.linalg.eigh(_gram64(xp, Yn.T @ Q))
    host = to_host(xp.concat([xp.reshape(_as(xp, total, xp.float64), (1,)), lam])).astype(
        np.float64
    )
    if not np.all(np.isfinite(host)):
        raise ValueError(_NON_FINITE_X)
    vecs = _as(xp, Q, xp.float64) @ xp.flip(V, axis=1)
    return _Eig(vecs, np.maximum(host[1:][::-1], 0.0), float(host[0]), False, "randomized")


def _gpu_prefers_randomized(i_n: int, j: int, r: int) -> bool:
    """svd="auto" with a fixed rank on the array-API path (GPUs): the randomized range finder
    when its 2q + 2 = 4 passes cost no more flops than the Gram product (``4 l <= I_n``, with
    ``l = min(r + 10, J)``; the Rust CPU rule asks for 4x fewer flops and a wide unfolding),
    else Gram + eigh. On a GPU the Gram path's ``I_n x I_n`` eigh (cuSOLVER syevd, float64) is
    the slow part: its tridiagonal reduction is latency-bound, milliseconds at I_n = 400 and
    tens of milliseconds beyond 1000, whatever the size of the tensor, while the randomized
    finder replaces it with an ``l x l`` eigh and four skinny GEMMs that stream the unfolding
    (memory-bound, a fraction of a millisecond per pass over 256 MB on an H100), and it needs
    no ``I_n x I_n`` matrix. Small modes (``I_n < 4 l``) keep Gram: its GEMM and eigh are
    then cheap and exact. Not yet timed on a GPU: benches/compare_gpu.py's Tucker section
    times both solvers explicitly (``svd="gram"`` / ``"randomized"``)."""
    ell = min(r + _RAND_OVERSAMPLES, j)
    return r <= ell and 4 * ell <= i_n


def _mode_svd(svd, tol, i_n, j=None, r=None):
    """The per-mode solver. "auto": with a tolerance, Gram, or the SVD of the unfolding when
    tol is below what the Gram resolves (the Rust rule ``gram_resolves``); with a fixed rank,
    randomized or Gram by ``_gpu_prefers_randomized`` (the GPU rule)."""
    unresolved = tol is not None and tol * tol < 1e3 * i_n * float(np.finfo(np.float64).eps)
    if svd == "gram" and unresolved:
        raise ValueError(
            f"svd='gram' cannot certify tol={tol:e} for a mode of size {i_n}: the Gram matrix "
            "squares the singular values, so below tol = "
            f"{math.sqrt(1e3 * i_n * float(np.finfo(np.float64).eps)):.1e} its discarded "
            "energy is rounding; use svd='lq' or 'auto'"
        )
    if svd != "auto":
        return svd
    if tol is not None:
        return "lq" if unresolved else "gram"
    if r is not None and _gpu_prefers_randomized(i_n, j, r):
        return "randomized"
    return "gram"


def _rank_for(e: _Eig, allow):
    vals = e.vals
    if not e.complete:
        return next((r for r in range(1, vals.size + 1) if e.tail(r) <= allow), vals.size)
    r = vals.size
    tail = 0.0
    while r > 1 and tail + vals[r - 1] <= allow:
        tail += vals[r - 1]
        r -= 1
    return r


class _RankPicker:
    """The Rust RankPicker: fixed ranks, or the budget tol^2 ||X||^2 spent mode by mode."""

    def __init__(self, ranks, tol, steps, ndim, eps):
        self.ranks, self.tol, self.steps, self.ndim, self.eps = ranks, tol, steps, ndim, eps
        self.total = math.nan
        self.budget = 0.0
        self.spent = 0.0

    def pick(self, step, s, e: _Eig):
        if step == 0:
            self.total = e.total
            if self.tol is not None:
                t = max(self.tol - 8.0 * self.ndim * self.eps, 0.0)
                self.budget = t * t * e.total
        if self.tol is None:
            r = self.ranks[s]
        else:
            left = float(self.steps - step)
            r = _rank_for(e, max((self.budget - self.spent) / left, 0.0))
        self.spent += e.tail(r)
        return r

    def rel_error(self):
        return min(math.sqrt(self.spent / self.total), 1.0) if self.total > 0 else 0.0


def _factor(xp, V, r, dt):
    return _as(xp, _col_signs(xp, V[:, :r]), dt)


def _project(xp, X, modes, factors, target, skip=None):
    from .tucker import _best_order

    ms = [m for m in modes if m != skip]
    out = X
    for m in _best_order(list(X.shape), target, ms, False):
        out = mode_product(out, factors[modes.index(m)], m, transpose=True)
    return out


def _solve_mode(xp, Y, m, svd, tol, rank, seed):
    i_n = Y.shape[m]
    how = _mode_svd(svd, tol, i_n, math.prod(Y.shape) // i_n, rank)
    return _mode_eig(xp, Y, m, how, rank, seed)


def tucker(X, ranks, tol, method, modes, order, svd, n_iter_max, hooi_tol, seed=0, progress=None):
    """The Tucker algorithms on an array-API tensor (arguments validated by lowdim.tucker).
    Returns (core, factors, err, norm, n_iter, solvers, order). ``progress``: a callable
    ``progress(done, total)`` or None, called at the Rust path's steps (after each mode; HOSVD
    one more step for the core; HOOI after each mode of each sweep, ``total`` counting
    ``n_iter_max`` sweeps), after the step's device work has finished."""
    xp = namespace(X)
    dt = X.dtype
    eps = float(np.finfo(np.float32 if dt == xp.float32 else np.float64).eps)
    nm = len(modes)
    total_steps = {"hosvd": nm + 1, "sthosvd": nm, "hooi": nm * (1 + n_iter_max)}[method]
    steps = _Steps(progress, total_steps, once=True)
    steps(0)
    picker = _RankPicker(ranks, tol, len(order), X.ndim, eps)
    factors = [None] * nm
    solvers = [""] * nm

    def rank_of(s):
        return None if ranks is None else ranks[s]

    if method == "hosvd":
        target = list(X.shape)
        for step, m in enumerate(order):
            s = modes.index(m)
            e = _solve_mode(xp, X, m, svd, tol, rank_of(s), seed)
            r = picker.pick(step, s, e)
            target[m] = r
            factors[s] = _factor(xp, e.vecs, r, dt)
            solvers[s] = e.solver
            steps(step + 1, wait=factors[s])
        core = _project(xp, X, modes, factors, target)
    else:
        cur = X
        for step, m in enumerate(order):
            s = modes.index(m)
            e = _solve_mode(xp, cur, m, svd, tol, rank_of(s), seed)
            r = picker.pick(step, s, e)
            factors[s] = _factor(xp, e.vecs, r, dt)
            solvers[s] = e.solver
            cur = mode_product(cur, factors[s], m, transpose=True)
            steps(step + 1, wait=cur)
        core = cur
    err = picker.rel_error()
    norm = math.sqrt(picker.total) if picker.total > 0 else 0.0
    n_iter = 0
    if method == "hooi":
        core, factors, err, n_iter, solvers = _hooi(
            xp, X, core, factors, modes, err, norm, solvers, n_iter_max, hooi_tol, steps
        )
    steps(steps.total, wait=core)
    return core, factors, err, norm, n_iter, solvers, order


def _hooi(xp, X, core, factors, modes, err, norm, solvers, n_iter_max, hooi_tol, steps):
    total = norm * norm
    n_iter = 0
    if total == 0.0 or n_iter_max == 0:
        return core, factors, err, n_iter, solvers
    dt = X.dtype
    target = list(X.shape)
    for s, m in enumerate(modes):
        target[m] = factors[s].shape[1]
    best = (core, list(factors), err, list(solvers))
    fs, sols = list(factors), list(solvers)
    prev = err
    for it in range(1, n_iter_max + 1):
        new_core = None
        for s, m in enumerate(modes):
            Y = _project(xp, X, modes, fs, target, skip=m)
            ev = _mode_eig(xp, Y, m, "gram", target[m])  # the Rust HOOI sweeps: Gram + eigh
            fs[s] = _factor(xp, ev.vecs, target[m], dt)
            sols[s] = ev.solver
            if s + 1 == len(modes):
                new_core = mode_product(Y, fs[s], m, transpose=True)
            steps(len(modes) * it + s + 1, wait=fs[s] if new_core is None else new_core)
        g2 = float(xp.sum(_as(xp, new_core, xp.float64) ** 2))
        e = math.sqrt(max(total - g2, 0.0) / total)
        if not math.isfinite(e):
            raise ValueError("X contains NaN or infinity")
        improved = e < best[2]
        if improved:
            best = (new_core, list(fs), e, list(sols))
        n_iter = it
        if abs(prev - e) < hooi_tol or not improved:
            break
        prev = e
    return best[0], best[1], best[2], n_iter, best[3]


def tucker_to_tensor(core, factors, modes):
    """``core x_{modes[0]} factors[0] ...`` in the fewest-flops order."""
    from .tucker import _best_order

    target = list(core.shape)
    for m, f in zip(modes, factors, strict=True):
        target[m] = f.shape[0]
    out = core
    for m in _best_order(list(core.shape), target, list(modes), False):
        out = mode_product(out, factors[list(modes).index(m)], m)
    return out


# ----------------------------------------------------------------------------- helpers for
# the estimators


def column_mean(xp, X):
    return xp.mean(X, axis=0)


def sum_sq64(xp, X) -> float:
    return float(xp.sum(_as(xp, X, xp.float64) ** 2))


def loaded(name: str) -> bool:
    return name in sys.modules


def check_xp_tensor(X, name: str = "X", min_ndim: int = 2):
    """An N-d float32/float64 array-API tensor (converted only when the dtype must change)."""
    if is_sparse(X):
        raise NotImplementedError(
            f"{name} is a sparse matrix: the tensor functions (tucker, mode_product, "
            "tucker_to_tensor) take dense arrays; densify it explicitly (X.toarray()) if it fits"
        )
    xp = namespace(X)
    if X.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got {X.ndim}-D with shape "
            f"{tuple(X.shape)}"
        )
    if math.prod(X.shape) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)})")
    return _as(xp, X, float_dtype(xp, X, name))
