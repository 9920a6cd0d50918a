"""Dask backend: rsvd, PCA / TruncatedSVD and ST-HOSVD on ``dask.array.Array`` input.

Imported only when a dask array reaches a public function (``lowdim`` itself never imports
dask). The algorithms are the in-memory ones, expressed as Dask graphs:

* the operator is always used in its tall orientation ``T`` (``A`` or ``A^T``, the latter
  without a transposed copy: blocks are transposed inside the tasks);
* the Gaussian test matrix is drawn chunk by chunk with the same counter-based generator as
  the Rust kernels (``_lowdim.gaussian``), so the same ``seed`` gives the same sketch;
* when every row block of ``T`` holds whole rows, a power iteration is one pass over the data
  whose per-block work is the Rust fused kernel ``T_i^T (T_i X)`` (``_lowdim.gram_apply``),
  and the ``n x l`` partial sums are added by a tree reduction; otherwise each half step is a
  blockwise product with a tree reduction over the contracted chunks;
* tall blocks are orthonormalized by TSQR (``dask.array.linalg.tsqr``), small ones locally;
* the small factors (SVD of an ``l x l`` triangle) are computed in one task;
* ``tol=`` runs the in-memory blocked randQB_EI block by block (same blocks, test-matrix
  columns, indicator and rank choice), each pass blockwise, the basis ``Q`` and ``B^T``
  persisted on the cluster and one scalar (the block's ``||B_i||_F^2``) computed per block.

Results are Dask arrays (lazy) unless ``compute=True``.
"""

from __future__ import annotations

import contextlib
import math
import sys

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from . import _lowdim
from ._validation import (
    SAFE_F32,
    SAFE_F64,
    check_int,
    check_rsvd_tol,
    check_seed,
    check_tol,
    env_num_threads,
    pow2_near_inverse,
    pow2_scale,
    result_dtype,
)

_SPLIT_EVERY = 8


def _blas_one_thread():
    """Context for a compute on a local scheduler (threads or synchronous): NumPy's BLAS on
    one thread meanwhile.

    The graph's NumPy steps (TSQR of the tall blocks, the small SVD, the centring products)
    would otherwise wake OpenBLAS's helper threads, which then spin for tens of milliseconds
    after every call, on the cores lowdim's Rust kernels run on: on 2 cores that made the
    passes 1.6x slower (16000 x 2000 in 2000-row chunks, synchronous: 0.58 s, 0.37 s with
    BLAS on one thread; the NumPy steps are small and lose nothing). The QR between passes
    is Rust's (``_qr_q``), which also covers lazy results computed by the caller. A
    distributed cluster's workers already run BLAS on one thread (the nanny sets
    OPENBLAS_NUM_THREADS=1): no change there."""
    global _blas_controller
    sched = dask.base.get_scheduler()
    if sched is not None and not (getattr(sched, "__module__", None) or "").startswith("dask."):
        return contextlib.nullcontext()
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings it
            return contextlib.nullcontext()
        # built once (it scans the loaded libraries: 2-6 ms), then 10 us per use
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


_blas_controller = None


def _compute(*args):
    with _blas_one_thread():
        return dask.compute(*args)


def _persist(*args):
    with _blas_one_thread():
        return dask.persist(*args)


# ----------------------------------------------------------------------------- per-block work


_threads_set = False


def _worker_threads() -> None:
    """Inside a distributed worker, run lowdim's kernels on one thread per task, as the nanny
    does for BLAS (OMP/OPENBLAS/MKL_NUM_THREADS=1): the worker already runs one task per
    thread, and lowdim's pool would otherwise use every core in every task.
    LOWDIM_NUM_THREADS, when set to a valid value, wins. Only a worker with a nanny, which
    runs in a process of its own: lowdim's thread count is process-wide, and an in-process
    worker (``Client(processes=False)``) would set it to 1 for the client's own calls too, for
    the rest of the session."""
    global _threads_set
    if _threads_set or "distributed" not in sys.modules:
        return
    if env_num_threads() is not None:
        _threads_set = True
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return  # not in a worker (e.g. the client building the graph)
    _threads_set = True
    if getattr(worker, "nanny", None) is not None:
        _lowdim.set_num_threads(1)


def _block(b, trans: bool, dtype):
    """A chunk as a dense ndarray or a CSR/CSC matrix of ``dtype``, transposed if asked."""
    if isinstance(b, np.ndarray):
        pass
    elif sp.issparse(b):
        if b.format not in ("csr", "csc"):
            b = b.tocsr()
    elif hasattr(b, "tocsr"):  # pydata sparse and friends
        b = b.tocsr()
    else:
        b = np.asarray(b)
    if b.dtype != dtype:
        b = b.astype(dtype)
    return b.T if trans else b


def _dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def _mul(b, x, trans=False):
    """``b @ x`` (``b^T @ x`` if trans) for a dense or sparse block and a dense x: faer's GEMM
    (Rust, lowdim's threads) for dense blocks, about 1.7x NumPy's on one thread here."""
    if sp.issparse(b):
        return _dense((b.T if trans else b) @ x)
    x = np.asarray(x)
    if x.dtype != b.dtype:
        x = x.astype(b.dtype)
    return _lowdim.block_matmul(b, x, trans)


def _colsum(b, r):
    """``b^T r`` (r None: the column sums of b), as a 1-D array."""
    if r is None:
        return np.asarray(b.sum(axis=0)).ravel()
    return _dense(b.T @ r).ravel()


def _shared(x):
    """``x`` (a small operand that every row block reads, e.g. the ``n x l`` iterate) behind a
    non-Blockwise layer of aliases, so that it is computed once per chunk of its own.

    Dask fuses a Blockwise producer that has one dependent layer into that layer's tasks, and
    when the dependent broadcasts it (index ``"jk"`` against A's ``"ij"``) every row block's task
    recomputes it: the QR of the previous iterate (or the Gaussian test matrix) ran once per
    row block, 9 ms of each 49 ms fused-pass task on the benchmark. Only Blockwise layers
    fuse, so a materialized alias layer stops it."""
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    name = "shared-" + dask.base.tokenize(x)
    dsk = {(name, *key[1:]): key for key in flatten(x.__dask_keys__())}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, x.chunks, meta=x._meta)


def _pow2_scale(amax):
    """A power of two ``s`` with ``s * amax`` in [1/2, 1] (1 for 0 or non-finite amax: the
    kernels report those), as a 0-d float64 array."""
    a = float(amax)
    if not (math.isfinite(a) and a > 0.0):
        return np.float64(1.0)
    return np.float64(math.ldexp(1.0, -max(min(math.frexp(a)[1], 1023), -1021)))


def _single(x):
    """The block of a contracted index that has one chunk: blockwise passes it as a
    one-element list (``concatenate=True`` would copy it, 24 ms per 160 MB chunk)."""
    while isinstance(x, list):
        if len(x) != 1:
            raise AssertionError("expected a single chunk along the contracted index")
        x = x[0]
    return x


def _aligned(x):
    """A C-contiguous copy of a small operand at a 64-byte boundary (None stays None).

    Operands that arrive from another worker are views into the received frames, at whatever
    alignment the frame had: NumPy's BLAS products (``c @ x`` of the centring terms) round
    differently at different alignments, so the same seed gave results differing by 4e-15
    from run to run. A fixed alignment makes them reproducible."""
    if x is None:
        return None
    x = np.asarray(x)
    buf = np.empty(x.size * x.itemsize + 64, np.uint8)
    off = -buf.ctypes.data % 64
    out = buf[off : off + x.size * x.itemsize].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


def _centred_block(b, r, c, dt):
    """``(b - r c^T, None, None)`` for a dense block (r None: ones), else ``(b, r, c)``.

    Dense blocks are centred explicitly, as the in-memory PCA centres X: the expansion
    ``B^T B X - s w^T - ...`` of the centred products cancels the mean's energy, which is
    ``(mean / spread)^2`` times the centred one. With column means of 1e5 against a spread
    of 1e-2 the PCA's Gram route lost every digit (singular values 56% off, silently; the
    randomized route 6e-4), and float32 data of mean 3 were 15% off. One copy of the block
    per task; sparse blocks keep the expansion (the mean is never subtracted from them)."""
    if c is None or sp.issparse(b):
        return b, r, c
    c = np.asarray(c, dtype=dt)
    if r is None:
        return b - c[None, :], None, None
    return b - np.asarray(r, dtype=dt)[:, None] * c[None, :], None, None


def _apply_block(b, x, r=None, c=None, *, trans, dt):
    """``T_ij X_j - r_i (c_j^T X_j)``: one block of ``T X`` (x: the matching rows of X)."""
    _worker_threads()
    b, x, r, c = _single(b), _aligned(_single(x)), _aligned(r), _aligned(_single(c))
    b, r, c = _centred_block(_block(b, trans, dt), r, c, dt)
    y = _mul(b, x)
    if c is not None:
        w = c @ x
        y = y - (np.ones(b.shape[0], dt) if r is None else r)[:, None] * w[None, :]
    return np.asarray(y, dtype=dt)


def _apply_block_part(b, x, r=None, c=None, *, trans, dt):
    return _apply_block(b, x, r, c, trans=trans, dt=dt)[None]


def _apply_t_part(b, y, r=None, c=None, *, trans, dt):
    """``T_ij^T Y_i - c_j (r_i^T Y_i)``, with a leading axis of length 1 (summed over i)."""
    _worker_threads()
    y, r, c = _aligned(y), _aligned(r), _aligned(c)
    b, r, c = _centred_block(_block(b, trans, dt), r, c, dt)
    z = _mul(b, y, trans=True)
    if c is not None:
        ry = y.sum(axis=0) if r is None else r @ y
        z = z - c[:, None] * ry[None, :]
    return np.asarray(z, dtype=dt)[None]


def _gram_apply_part(b, x, s, r=None, c=None, *, trans, dt):
    """``T_i^T (T_i X)`` times a power of two, for a row block holding whole rows (the Rust
    fused kernel for dense blocks, which reads the block once), centred implicitly when
    (r, c) are given; ``s`` is the power of two near ``1 / max|T|``. In-range blocks give
    ``T_i^T T_i (s X)`` (about ``max|T| |X|``); out-of-range ones (``max|T|`` below 2^-400
    or above 2^400) are scaled first, ``(s T_i)^T (s T_i) X``: ``T_i^T T_i (s X)`` would
    leave the normal range (subnormal digits near 1e-308 went wrong silently). The caller
    orthonormalizes the result, so the factor does not matter."""
    _worker_threads()
    x, r, c = _aligned(x), _aligned(r), _aligned(c)
    b = _block(b, trans, dt)
    s = np.dtype(dt).type(s)
    if SAFE_F64[0] <= s <= SAFE_F64[1]:
        x = x * s
    else:
        b = b * s  # a copy of the block, for out-of-range data only
        c = None if c is None else c * s
    b, r, c = _centred_block(b, r, c, dt)
    if sp.issparse(b):
        z = _dense(b.T @ _dense(b @ x))
    else:
        z = _lowdim.gram_apply(b, np.ascontiguousarray(x, dtype=dt))
    if c is not None:
        # (B - r c^T)^T (B - r c^T) X = B^T B X - s w^T - c (s^T X) + (r^T r) c w^T,
        # s = B^T r, w = c^T X.
        s = _colsum(b, r)
        rr = float(b.shape[0]) if r is None else float(r @ r)
        w = c @ x
        z = z - np.outer(s, w) - np.outer(c, s @ x) + rr * np.outer(c, w)
    return np.asarray(z, dtype=dt)[None]


def _gram_apply_f32_part(b, x, s, *, trans, dt):
    """``s^2 T_i^T (T_i X)`` in float32 for a float64 row block holding whole rows (the mixed-
    precision Rust kernel: the block is scaled by the power of two ``s`` and rounded to float32
    in cache); x is float32. Not for centred operators (see rsvd)."""
    _worker_threads()
    b = _block(b, trans, np.float64)
    s = float(s)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sp.issparse(b):
        z = (s * s) * _dense(b.T @ _dense(b @ x.astype(np.float64)))
    else:
        z = _lowdim.gram_apply_f32(b, x, s)
    return np.asarray(z, dtype=np.float32)[None]


_GRAM_RANGE = (
    "solver='gram' on a dask array cannot take A: its entries are so large or so small "
    "that A^T A leaves float64's range; use solver='auto' or 'randomized' (they rescale A)"
)


def _gram_part(b, r=None, c=None, *, trans, dt):
    """``T_i^T T_i`` in float64 (Rust mode-Gram kernel for dense blocks). A block whose
    magnitudes are outside float64's safe range is an error: its squares overflow, or lose
    their digits (the eigenvectors came out wrong, silently); one read of the block,
    against the Gram's ``n`` flops per entry."""
    _worker_threads()
    b, r, c = _centred_block(_block(b, trans, dt), r, c, dt)
    amax = float(_maxabs_part(b, dt=dt)[0, 0])
    if not math.isfinite(amax):
        raise ValueError("A contains NaN or infinity")
    if amax > SAFE_F64[1] or 0.0 < amax < SAFE_F64[0]:
        raise ValueError(_GRAM_RANGE)
    if sp.issparse(b):
        g = _dense((b.T @ b).astype(np.float64))
    else:
        g = _lowdim.mode_gram(b, 1)
    if c is not None:
        s = _colsum(b, r).astype(np.float64)
        rr = float(b.shape[0]) if r is None else float(r @ r)
        c64 = c.astype(np.float64)
        g = g - np.outer(s, c64) - np.outer(c64, s) + rr * np.outer(c64, c64)
    return g[None]


def _gaussian_block(ell, seed, dtype, col0=0, block_info=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return _lowdim.gaussian(r1 - r0, c1 - c0, seed, r0, col0 + c0, dtype == np.float32)


def _qr_q(z):
    """Thin Q of the single-chunk iterate, by lowdim's Rust QR (float64 inside): a NumPy QR
    here wakes OpenBLAS's helper threads, which then spin on the cores of the next pass's
    kernels on a local scheduler (even for lazy results the caller computes)."""
    return _lowdim.qr_q(np.asarray(z))


def _absmax_stats(u):
    """Per column: the largest magnitude in this block and the signed entry holding it."""
    rows = np.argmax(np.abs(u), axis=0)
    val = u[rows, np.arange(u.shape[1])]
    return np.stack([np.abs(val), val])


def _pick_signs(stats):
    nb = stats.shape[0] // 2
    st = stats.reshape(nb, 2, -1)
    best = np.argmax(st[:, 0, :], axis=0)  # first block on ties = first row overall
    s = np.sign(st[best, 1, np.arange(st.shape[2])])
    s[s == 0] = 1
    return s


# ----------------------------------------------------------------------------- the operator


class _Op:
    """The tall operator ``T - r c^T`` over a dask array A (``T = A`` or ``A^T``)."""

    def __init__(self, A, dtype, center=None):
        m, n = A.shape
        self.A = A
        self.dtype = np.dtype(dtype)
        self.trans = m < n
        self.ti = "ji" if self.trans else "ij"  # index of A's blocks in T's block grid
        ch = A.chunks
        self.row_chunks, self.col_chunks = (ch[1], ch[0]) if self.trans else (ch[0], ch[1])
        self.shape = (max(m, n), min(m, n))
        self.r = self.c = None
        self.center = center
        self.plain_dense = not sp.issparse(getattr(A, "_meta", None))
        if center is not None:
            # A - 1 mu^T; transposed: T = A^T - mu 1^T.
            mu = center.rechunk((ch[1],)).astype(dtype)
            if self.trans:
                self.r = mu
                self.c = da.ones(self.shape[1], chunks=(self.col_chunks,), dtype=dtype)
            else:
                self.c = mu
        self.whole_rows = len(self.col_chunks) == 1

    @property
    def centred(self) -> bool:
        return self.c is not None

    def _centre_args(self, ri="i", ci="j"):
        if not self.centred:
            return []
        if self.r is None:
            return [None, None, self.c, ci]
        return [self.r, ri, self.c, ci]

    def _kw(self):
        return {"trans": self.trans, "dt": self.dtype}

    def apply(self, X):
        """``T X`` for X (n x l) chunked like T's columns: chunked like T's rows."""
        X = _shared(X.rechunk((self.col_chunks, -1)))
        args = [self.A, self.ti, X, "jk", *self._centre_args()]
        if self.whole_rows:
            return da.blockwise(
                _apply_block,
                "ik",
                *args,
                dtype=self.dtype,
                concatenate=False,
                meta=np.empty((0, 0), self.dtype),
                **self._kw(),
            )
        parts = da.blockwise(
            _apply_block_part,
            "jik",
            *args,
            adjust_chunks={"j": 1},
            dtype=self.dtype,
            meta=np.empty((0, 0, 0), self.dtype),
            **self._kw(),
        )
        return parts.sum(axis=0, split_every=_SPLIT_EVERY, dtype=self.dtype)

    def _summed(self, func, args, dtype):
        """``sum_i func(T_i, ...)`` for per-row-block parts of shape (n_j x l) (blockwise output
        ``ijk`` with the row index collapsed), added by a tree reduction."""
        parts = da.blockwise(
            func,
            "ijk",
            *args,
            adjust_chunks={"i": 1},
            dtype=dtype,
            meta=np.empty((0, 0, 0), dtype),
            **self._kw(),
        )
        return parts.sum(axis=0, split_every=_SPLIT_EVERY, dtype=dtype)

    def apply_t(self, Y):
        """``T^T Y`` for Y (m x l) chunked like T's rows: a tree reduction over row blocks."""
        Y = Y.rechunk((self.row_chunks, -1))
        args = [self.A, self.ti, Y, "ik", *self._centre_args()]
        return self._summed(_apply_t_part, args, self.dtype)

    def gram_apply(self, X, scale):
        """``T^T (T X)`` times a power of two in one pass (whole-row blocks only); ``scale``
        is the lazy power of two near ``1 / max|T|`` (see ``_gram_apply_part``)."""
        X = _shared(X.rechunk((self.col_chunks, -1)))
        args = [self.A, self.ti, X, "jk", scale, "", *self._centre_args()]
        return self._summed(_gram_apply_part, args, self.dtype)

    def gram_apply_f32(self, X, scale):
        """``s^2 T^T (T X)`` in float32 for a float64 uncentred operator, X float32 and ``s``
        the lazy power of two ``scale`` (whole-row blocks only)."""
        X = _shared(X.rechunk((self.col_chunks, -1)))
        args = [self.A, self.ti, X, "jk", scale, ""]
        return self._summed(_gram_apply_f32_part, args, np.dtype(np.float32))

    def gram(self):
        """``T^T T`` in float64 (whole-row blocks only), one chunk."""
        args = [self.A, self.ti, *self._centre_args()]
        n = self.shape[1]
        parts = da.blockwise(
            _gram_part,
            "ijk",
            *args,
            new_axes={"k": n},
            adjust_chunks={"i": 1},
            dtype=np.float64,
            meta=np.empty((0, 0, 0), np.float64),
            **self._kw(),
        )
        # the block index 'j' of T's single column chunk doubles as the Gram's row index
        return parts.sum(axis=0, split_every=_SPLIT_EVERY, dtype=np.float64)

    def gaussian(self, ell, seed, single_chunk: bool, col0: int = 0):
        """Columns ``col0 .. col0 + ell`` of the n x inf Gaussian test matrix of ``seed``."""
        chunks = ((self.shape[1],) if single_chunk else self.col_chunks, (ell,))
        return da.map_blocks(
            _gaussian_block,
            ell,
            seed,
            self.dtype,
            col0,
            chunks=chunks,
            dtype=self.dtype,
            meta=np.empty((0, 0), self.dtype),  # no trial calls to infer it
        )

    def frob_sq(self):
        """``||T - r c^T||_F^2`` in float64 (lazy scalar), block by block."""
        args = [self.A, "ij"] if self.center is None else [self.A, "ij", self.center, "j"]
        return da.blockwise(
            _sq_part,
            "ij",
            *args,
            adjust_chunks={"i": 1, "j": 1},
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
            dt=self.dtype,
        ).sum(split_every=_SPLIT_EVERY)

    def max_abs(self):
        """An upper bound of the largest magnitude (within a factor of 2), lazy."""
        mx = da.blockwise(
            _maxabs_part,
            "ij",
            self.A,
            "ij",
            adjust_chunks={"i": 1, "j": 1},
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
            dt=self.dtype,
        ).max()
        if self.center is not None:
            mx = mx + abs(self.center).max().astype(np.float64)
        return mx

    def scaled(self, c: float) -> _Op:
        """The operator times the power of two ``c`` (exact), scaled inside the blocks."""
        cc = self.dtype.type(c)
        return _Op(self.A * cc, self.dtype, None if self.center is None else self.center * cc)

    def residual_sq(self, Us, V):
        """``||T - r c^T - Us V^T||_F^2`` (dense blocks), lazy float64 scalar."""
        Us = _shared(Us.rechunk((self.row_chunks, -1)))
        V = _shared(V.rechunk((self.col_chunks, -1)))
        args = [self.A, self.ti, Us, "ik", V, "jk", *self._centre_args()]
        return da.blockwise(
            _residual_sq_part,
            "ij",
            *args,
            adjust_chunks={"i": 1, "j": 1},
            concatenate=True,
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
            **self._kw(),
        ).sum(split_every=_SPLIT_EVERY)


def _orth(Z):
    """Orthonormal basis of the columns of a dask array Z (one column chunk)."""
    if Z.numblocks[0] == 1:
        return Z.map_blocks(_qr_q, dtype=Z.dtype, meta=np.empty((0, 0), Z.dtype))
    return da.linalg.tsqr(Z)[0]


def _small_svd_packed(R, k):
    """SVD of a small square R in float64, packed as one array ``[Ur_k | S | Wr_k]`` (l x 2k+1,
    S padded with zeros) so that one task computes it and the three factors are slices of it
    (a dask.delayed wrapper around a dask array would be optimized as a separate graph and
    recompute everything upstream). A NaN or infinity in A reaches R: a clear ValueError
    rather than LAPACK's "SVD did not converge"."""
    _finite_or_raise(0.0 if np.isfinite(R).all() else math.nan)
    u, s, vt = np.linalg.svd(R.astype(np.float64))
    ell = R.shape[0]
    out = np.zeros((ell, 2 * k + 1))
    out[:, :k] = u[:, :k]
    out[:k, k] = s[:k]
    out[:, k + 1 :] = vt[:k].T
    return out


def _small_svd(R, k, dtype):
    """``R = Ur S Wr^T`` truncated to k, for a dask array R in one chunk: (Ur_k, S_k, Wr_k)."""
    ell = R.shape[0]
    P = R.rechunk((-1, -1)).map_blocks(
        _small_svd_packed, k, chunks=((ell,), (2 * k + 1,)), meta=np.empty((0, 0), np.float64)
    )
    return (
        P[:, :k].astype(dtype),
        P[:k, k].astype(dtype),
        P[:, k + 1 :].astype(dtype),
    )


def _svd_of_product(Q, Bt, k, dtype):
    """Given ``T ~= Q Bt^T`` (Q m x l orthonormal, Bt n x l): the rank-k factors
    ``U_t = Q Wr_k``, S, ``V_t = Qb Ur_k`` from ``Bt = Qb Rb``, ``Rb = Ur S Wr^T``."""
    Qb, Rb = da.linalg.tsqr(Bt.rechunk((Bt.chunks[0], -1)))
    Ur, S, Wr = _small_svd(Rb, k, dtype)
    return Q @ Wr, S, Qb @ Ur


def _flip(U, V):
    """scikit-learn's u-based svd_flip on dask factors, distributed (per-block maxima)."""
    k = U.shape[1]
    stats = U.map_blocks(
        _absmax_stats, chunks=((2,) * U.numblocks[0], (k,)), meta=np.empty((0, 0), U.dtype)
    )
    signs = stats.rechunk((-1, -1)).map_blocks(
        _pick_signs, drop_axis=0, chunks=((k,),), meta=np.empty((0,), U.dtype)
    )
    return U * signs[None, :], V * signs[None, :]


def _finish(op: _Op, Ut, S, Vt, solver, compute):
    from .svd import SVDResult

    U, V = (Vt, Ut) if op.trans else (Ut, Vt)
    U, V = _flip(U, V)
    Vh = V.T
    if compute:
        U, S, Vh = _compute(U, S, Vh)
        U, Vh = np.asfortranarray(U), np.ascontiguousarray(Vh)
    res = SVDResult(U, S, Vh)
    res.rel_error = None
    res.solver = solver
    return res


# ----------------------------------------------------------------------------- rsvd


def check_dask_matrix(A, name="A", unknown_rows=False):
    """``(A, dtype)``: A 2-D, non-empty, converted to float32/float64. ``unknown_rows``: row
    chunk sizes may be unknown (``X[X[:, 0] > 0]``), for the row-by-row projections."""
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {A.ndim}-D with shape {A.shape}")
    if any(math.isnan(s) for s in A.shape[int(unknown_rows) :]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes()")
    if 0 in A.shape:
        raise ValueError(
            f"{name} is empty (shape {tuple(A.shape)}); it needs at least one row and one column"
        )
    dtype = result_dtype(A.dtype, name)
    if A.dtype != dtype:
        A = A.astype(dtype)
    return A, dtype


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
    compute=False,
    center=None,
    power_iteration_dtype=None,
):
    """lowdim.rsvd for a dask array (see its docstring)."""
    from .svd import _check_n_iter, _check_normalizer, _check_power_dtype

    A, dtype = check_dask_matrix(A)
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
        tol = check_rsvd_tol(tol, dtype == np.float32)
    if solver not in ("auto", "randomized", "gram"):
        raise ValueError(f"solver must be 'auto', 'randomized' or 'gram', got {solver!r}")
    n_oversamples = check_int(n_oversamples, "n_oversamples", 0)
    block_size = check_int(block_size, "block_size", 1)
    n_iter = _check_n_iter(n_iter)
    normalizer = _check_normalizer(power_iteration_normalizer)
    power_f32 = _check_power_dtype(power_iteration_dtype)
    seed = check_seed(seed)
    if center is not None and not isinstance(center, da.Array):
        center = da.from_array(np.asarray(center, dtype=dtype), chunks=-1)
    op = _Op(A, dtype, center)
    sparse = sp.issparse(getattr(A, "_meta", None))
    if tol is not None:
        q = 4 if n_iter is None else n_iter
        return _rsvd_tol(op, tol, q, block_size, seed, compute)
    if solver == "gram":
        if sparse:
            raise ValueError("solver='gram' needs a dense matrix")
        return _gram_svd(op, k, compute)
    mt, nt = op.shape
    q = n_iter if n_iter is not None else (7 if k < 0.1 * min(m, n) else 4)
    ell = min(k + n_oversamples, nt)
    if solver == "auto" and not sparse and op.whole_rows and _prefer_gram(mt, nt, k, ell, q):
        res = _gram_svd_checked(op, k, compute)
        if res is not None:
            return res
    if ell >= nt:
        q = 0  # the sketch spans every column: power iterations cannot improve it
    fused = op.whole_rows and dtype == np.float64 and normalizer == "auto"
    X = op.gaussian(ell, seed, single_chunk=fused)
    if q > 0:
        # The power iterations apply the operator scaled by a power of two s (|s T| <= 1,
        # exact): without it, the products of T^T T underflow or overflow for entries beyond
        # about 1e+-150 (silently, in the fused pass). One extra read of A, lazily.
        scale = op.max_abs().map_blocks(_pow2_scale, meta=np.empty((), np.float64))
    if op.centred:
        # (T - r c^T)^T (T - r c^T) X from uncentred float32 products cancels the mean's
        # energy in float32: the float32 iterations would lose the subspace. Float64 only.
        power_f32 = False
    if fused and power_f32 and q > 0:
        X = X.astype(np.float32)
        for _ in range(q):
            X = _orth(op.gram_apply_f32(X, scale))
        X = X.astype(np.float64)
    if q > 0:
        # s T applied as ((T (h_in X)) h_out, h_in h_out = s, half the exponent each): h_in X
        # alone overflowed float32 for subnormal float32 data (s = 2^142; a false "NaN or
        # infinity" error), and products of unscaled subnormal entries round to the
        # subnormal grid
        h_in, h_out = _halves(scale)

        def scaled(apply, Z):
            # the factors are 0-d float64: the iterates stay in the operator's dtype
            return (apply((Z * h_in).astype(Z.dtype)) * h_out).astype(op.dtype)

    for _ in range(q if not (fused and power_f32) else 0):
        if fused:
            X = _orth(op.gram_apply(X, scale))
        else:
            Y = scaled(op.apply, X)
            if normalizer != "none":
                Y = _orth(Y)
            X = scaled(op.apply_t, Y)
            if normalizer != "none":
                X = _orth(X)
    if q > 0:
        Q = _orth(scaled(op.apply, X))
        Bt = scaled(op.apply_t, Q)  # s T^T Q: S comes out times s
        Ut, S, Vt = _svd_of_product(Q, Bt, k, dtype)
        S = da.map_blocks(_unscaled, S, scale, dtype=S.dtype, meta=np.empty((0,), S.dtype))
    else:
        Q = _orth(op.apply(X))
        Bt = op.apply_t(Q)
        Ut, S, Vt = _svd_of_product(Q, Bt, k, dtype)
    return _finish(op, Ut, S, Vt, "randomized", compute)


def _half_in(s):
    """``2^(e // 2)`` for the power of two ``s = 2^e`` (0-d float64)."""
    return np.float64(math.ldexp(1.0, (math.frexp(float(s))[1] - 1) // 2))


def _half_out(s):
    """``s / 2^(e // 2)`` (0-d float64): with :func:`_half_in`, a split of ``s``."""
    e = math.frexp(float(s))[1] - 1
    return np.float64(math.ldexp(1.0, e - e // 2))


def _halves(scale):
    """Lazy ``(h_in, h_out)``, powers of two with ``h_in * h_out = scale`` (a power of two),
    each about its square root."""
    meta = np.empty((), np.float64)
    return scale.map_blocks(_half_in, meta=meta), scale.map_blocks(_half_out, meta=meta)


def _unscaled(S, s):
    """``S / s`` for singular values computed from ``s T`` (``s`` a power of two); a clear
    error when ``S``'s dtype cannot hold them, as in memory."""
    s = float(s)
    with np.errstate(over="ignore", under="ignore"):
        out = (S.astype(np.float64) / s).astype(S.dtype)
    if not np.isfinite(out).all():
        raise ValueError(
            f"the largest singular value of A is beyond {np.dtype(S.dtype).name}'s range (A's "
            "entries are finite but too large); scale A down first"
        )
    return out


def _prefer_gram(m, n, k, ell, q) -> bool:
    """The in-memory cost rule (``prefer_gram`` in rust/lowdim-core/src/svd.rs): ``T^T T``
    (``m n^2`` flops), its eigh (``~9 n^3``) and the product ``T V_k`` (``2 m n k``) against
    the randomized solver's ``2q + 2`` products of ``2 m n l`` flops; ``n <= 4096``. On dask
    the Gram route is also two passes over the data against ``q + 2``."""
    m, n = float(m), float(n)
    gram = m * n * n + 9.0 * n**3 + 2.0 * m * n * k
    return n <= 4096 and gram < (2.0 * q + 2.0) * 2.0 * m * n * ell


def _gram_svd_checked(op: _Op, k, compute):
    """``"auto"``'s Gram route for tall-skinny data (the in-memory rule,
    ``_lowdim.prefer_gram``): ``T^T T`` is computed now (one pass, as ``tol=``'s passes are)
    and eigendecomposed locally; when ``lambda_k < 1e-10 lambda_1`` (the float64 Gram matrix
    cannot resolve the k-th direction, as in memory) or the data are out of the Gram
    matrix's range, None (the caller runs the randomized solver, which rescales), else the
    lazy rest of :func:`_gram_svd` (one pass for ``T V_k`` and its TSQR)."""
    try:
        (G,) = _compute(op.gram())
    except ValueError as e:
        if str(e) == _GRAM_RANGE:
            return None
        raise
    G = np.asarray(G)
    if not np.isfinite(G).all():
        _finite_or_raise(math.nan)
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    if not (lam[0] > 0 and lam[k - 1] >= 1e-10 * lam[0]):
        return None
    Vk = da.from_array(np.ascontiguousarray(V[:, :k]).astype(op.dtype), chunks=-1)
    return _gram_tail(op, Vk, k, compute)


def _eig_top(G, k):
    lam, V = np.linalg.eigh(G)
    return V[:, ::-1][:, :k].copy()


def _gram_svd(op: _Op, k, compute):
    """Gram + eigh (the in-memory "gram" solver): one pass for ``T^T T``, one for ``T V_k``."""
    if not op.whole_rows:
        raise ValueError(
            "solver='gram' on a dask array needs chunks that hold whole rows of the tall side "
            "(rechunk so that the smaller dimension is one chunk), or use solver='randomized'"
        )
    nt = op.shape[1]
    G = op.gram()
    Vk = G.map_blocks(_eig_top, k, chunks=((nt,), (k,)), meta=np.empty((0, 0), np.float64)).astype(
        op.dtype
    )
    return _gram_tail(op, Vk, k, compute)


def _gram_tail(op: _Op, Vk, k, compute):
    """The Gram solver after ``V_k``: ``T V_k = Q R`` (TSQR), ``R = Ur S Wr^T``, so that U is
    orthonormal to rounding and S the singular values of ``T V_k``."""
    Y = op.apply(Vk)
    Q, R = da.linalg.tsqr(Y.rechunk((Y.chunks[0], -1)))
    Ur, S, Wr = _small_svd(R, k, op.dtype)
    return _finish(op, Q @ Ur, S, Vk @ Wr, "gram", compute)


def _sq_part(b, mu=None, *, dt):
    """``sum (b - mu)^2`` (``mu`` None: ``sum b^2``) in float64, as a 1 x 1 block."""
    if mu is not None:
        return _centred_sq_part(b, mu, dt=dt)
    _worker_threads()
    b = _block(b, False, dt)
    d = b.data if sp.issparse(b) else b
    d = d.ravel()
    with np.errstate(over="ignore"):  # an overflow: the caller rescales
        return np.full((1, 1), float(np.dot(d.astype(np.float64, copy=False), d)))


def _maxabs_part(b, *, dt):
    b = _block(b, False, dt)
    if not (b.data if sp.issparse(b) else b).size:
        return np.zeros((1, 1))
    if sp.issparse(b):
        return np.full((1, 1), float(np.max(np.abs(b.data))))
    # one streaming pass in Rust (no |b| temporary); NaN or infinity gives NaN
    return np.full((1, 1), _lowdim.max_abs(b))


def _residual_sq_part(b, us, v, r=None, c=None, *, trans, dt):
    """``||T_ij - r_i c_j^T - Us_i V_j^T||_F^2`` for one dense block (in float64)."""
    _worker_threads()
    us, v, r, c = _aligned(us), _aligned(v), _aligned(r), _aligned(c)
    b = _dense(_block(b, trans, dt))
    d = b - us @ v.T
    if c is not None:
        d -= (np.ones(b.shape[0], dt) if r is None else r)[:, None] * c[None, :]
    return np.full((1, 1), float(np.einsum("ij,ij->", d, d, dtype=np.float64)))


_NON_FINITE_X = (
    "X contains NaN or infinity (or values so large that their sums overflow); remove, "
    "impute or rescale them first"
)


def _finite_or_raise(x: float) -> None:
    if not math.isfinite(x):
        raise ValueError(
            "A contains NaN or infinity (or values so large that products with A overflow); "
            "remove or rescale them first"
        )


def _deflated_apply(op: _Op, Q, Bt, X):
    """``(T - Q B) X`` (Q None: ``T X``)."""
    Y = op.apply(X)
    return Y if Q is None else Y - Q @ (Bt.T @ X)


def _deflated_apply_t(op: _Op, Q, Bt, Y):
    """``(T - Q B)^T Y`` (Q None: ``T^T Y``)."""
    W = op.apply_t(Y)
    return W if Q is None else W - Bt @ (Q.T @ Y)


def _tol_result(op: _Op, Ut, S, Vt, rel_error, compute):
    res = _finish(op, Ut, S, Vt, "randqb", compute)
    res.rel_error = rel_error
    return res


def _rsvd_tol(op: _Op, tol, q, block_size, seed, compute):
    """Adaptive rank (the in-memory ``rsvd_tol``): blocked randQB with the error indicator
    ``||T||_F^2 - ||B||_F^2`` (Yu, Gu & Li 2018, with power iterations), the first block of
    ``block_size`` columns, later blocks doubling up to 512. Every pass over ``T`` is a
    blockwise Dask computation; the basis ``Q`` (m x r) and ``B^T`` (n x r) stay on the
    cluster (persisted after each block); the indicator, the SVD of the r x r triangle of
    ``B^T`` and the rank choice are local. One small ``compute`` per block (the loop length
    depends on the data), so the result's ``U``/``Vh`` are cheap slices of persisted data."""
    dt = op.dtype
    eps = float(np.finfo(dt).eps)
    lo, hi = SAFE_F64 if dt == np.float64 else SAFE_F32
    mt, nt = op.shape

    def rank0():
        U = da.zeros((mt, 0), dtype=dt, chunks=(op.row_chunks, 0))
        V = da.zeros((nt, 0), dtype=dt, chunks=(op.col_chunks, 0))
        return _tol_result(op, U, da.zeros((0,), dtype=dt), V, 0.0, compute)

    def unsafe(f2):
        return f2 == 0.0 or not math.isfinite(f2) or not lo <= math.sqrt(f2) <= hi

    frob2 = float(_compute(op.frob_sq())[0])
    if math.isnan(frob2):
        _finite_or_raise(frob2)
    scale = 1.0
    if unsafe(frob2):
        # the in-memory with_rescale: a power-of-two scaling of A (exact), S scaled back
        amax = float(_compute(op.max_abs())[0])
        _finite_or_raise(amax)
        if amax == 0.0:
            return rank0()
        scale = pow2_near_inverse(amax, 1023 if dt == np.float64 else 127)
        op = op.scaled(scale)
        frob2 = float(_compute(op.frob_sq())[0])
        if frob2 == 0.0:  # exactly zero (e.g. centred constant columns)
            return rank0()
        if unsafe(frob2):
            raise np.linalg.LinAlgError("cannot rescale A into a safe range")
    # A small slack keeps rounding in the indicator from stopping a hair early.
    target = frob2 * max(tol * tol - 32.0 * eps, 0.0)
    Q = Bt = None
    r = 0
    e = frob2
    b = block_size
    while r < nt:
        bsz = min(b, nt - r)
        omega = op.gaussian(bsz, seed, single_chunk=False, col0=r)

        Qi = _orth(_deflated_apply(op, Q, Bt, omega))
        for _ in range(q):
            Wi = _orth(_deflated_apply_t(op, Q, Bt, Qi))
            Qi = _orth(_deflated_apply(op, Q, Bt, Wi))
        if Q is not None:
            # re-orthogonalize against the basis so far, twice is enough (Kahan)
            for _ in range(2):
                Qi = Qi - Q @ (Q.T @ Qi)
            Qi = _orth(Qi)
        Bti = _deflated_apply_t(op, Q, Bt, Qi)
        nb = (Bti.astype(np.float64) ** 2).sum()
        if Q is None:
            Qn, Btn = Qi, Bti
        else:
            Qn = da.concatenate([Q, Qi], axis=1).rechunk({1: -1})
            Btn = da.concatenate([Bt, Bti], axis=1).rechunk({1: -1})
        Q, Bt, nb = _persist(Qn, Btn, nb)
        nb = float(_compute(nb)[0])
        _finite_or_raise(nb)
        e -= nb
        r += bsz
        if e <= target:
            break
        b = min(2 * b, 512)
    # Rank from the SVD of B (that of the triangle of B^T = Qb Rb): the error of rank k is
    # (||T||^2 - ||B||^2) + sum_{i>k} s_i^2.
    Qb, Rb = da.linalg.tsqr(Bt)
    Qb, Rb = _persist(Qb, Rb)
    ur, s, wrt = np.linalg.svd(np.asarray(_compute(Rb)[0], dtype=np.float64))
    _finite_or_raise(float(s.sum()))
    from ._xp import tol_rank

    k, err2 = tol_rank(s, frob2, target)
    # T ~= Q B = Q Wr S Ur^T Qb^T
    Ut = Q @ da.from_array(np.ascontiguousarray(wrt[:k].T).astype(dt), chunks=-1)
    Vt = Qb @ da.from_array(np.ascontiguousarray(ur[:, :k]).astype(dt), chunks=-1)
    if err2 < 1e3 * eps * frob2 and op.plain_dense:
        # near the rounding floor the indicator says little: measure the residual (one pass)
        err2 = float(_compute(op.residual_sq(Ut * s[:k].astype(dt), Vt))[0])
    with np.errstate(over="ignore"):
        s_out = (s[:k] / scale).astype(dt)
    if k and not np.isfinite(s_out[0]):
        raise ValueError(
            f"the largest singular value of A is beyond {np.dtype(dt).name}'s range (A's "
            "entries are finite but too large); scale A down first"
        )
    S = da.from_array(s_out, chunks=-1)
    return _tol_result(op, Ut, S, Vt, math.sqrt(err2 / frob2), compute)


# ----------------------------------------------------------------------------- PCA / TruncatedSVD


def _colsum_part(b, *, dt):
    b = _block(b, False, dt)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN: reported by the caller
        return np.asarray(b.sum(axis=0), dtype=np.float64).reshape(1, -1)


def _centred_sq_part(b, mu, *, dt, c=1.0):
    """``sum (c (b - mu))^2`` over the block (dense: exactly, block by block; sparse: by the
    expansion, the mean is never subtracted from a sparse block); ``c`` a power of two
    applied before squaring (1 unless the data's squares leave float64's range)."""
    b = _block(b, False, dt)
    if sp.issparse(b):
        if c != 1.0:
            b, mu = b * c, mu * c
        s = np.asarray(b.sum(axis=0), dtype=np.float64).ravel()
        sq = float(b.multiply(b).sum(dtype=np.float64))
        sq += -2.0 * float(mu @ s) + b.shape[0] * float(mu @ mu)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN: reported by the caller
            d = b - mu.astype(b.dtype)
            if c != 1.0:
                d *= c
            sq = float(np.einsum("ij,ij->", d, d, dtype=np.float64))
    return np.full((1, 1), sq)


def column_moments(X, dtype, with_mean=True, c=1.0):
    """Column means (float64, lazy) and the total centred sum of squares of ``c X`` (lazy
    scalar): two blockwise passes with tree reductions, no centred copy of X."""
    sums = da.blockwise(
        _colsum_part,
        "ij",
        X,
        "ij",
        adjust_chunks={"i": 1},
        dtype=np.float64,
        meta=np.empty((0, 0), np.float64),
        dt=dtype,
    ).sum(axis=0, split_every=_SPLIT_EVERY)
    mean = sums / X.shape[0]
    mu = mean if with_mean else da.zeros_like(mean)
    sq = da.blockwise(
        _centred_sq_part,
        "ij",
        X,
        "ij",
        mu,
        "j",
        adjust_chunks={"i": 1, "j": 1},
        dtype=np.float64,
        meta=np.empty((0, 0), np.float64),
        dt=dtype,
        c=c,
    ).sum(split_every=_SPLIT_EVERY)
    return mean, sq


def _flip_v(U, S, Vh):
    """v-based svd_flip (scikit-learn >= 1.5 for PCA/TruncatedSVD): Vh numpy, U dask."""
    cols = np.argmax(np.abs(Vh), axis=1)
    signs = np.sign(Vh[np.arange(Vh.shape[0]), cols])
    signs[signs == 0] = 1
    return U * signs.astype(U.dtype)[None, :], Vh * signs[:, None]


def _fitted_svd(X, k, tol, est, center=None):
    """rsvd on a dask array for the estimator ``est``: U stays distributed (persisted), S and
    Vh come back as NumPy; errors name the estimator's parameters (``svd._renamed``)."""
    from .svd import _renamed

    try:
        res = rsvd(X, k, tol=tol, center=center, compute=False, **est._rsvd_params())
        U, S, Vh = _persist(res.U, res.S, res.Vh)
        S, Vh = _compute(S, Vh)
    except (ValueError, TypeError) as e:
        if "NaN or infinity" in str(e):
            raise ValueError(_NON_FINITE_X) from None
        raise _renamed(e, est._rsvd_names()) from None
    U, Vh = _flip_v(U, S, Vh)
    return U, S, np.ascontiguousarray(Vh)


def pca_fit(est, X):
    """PCA._fit for a dask array: returns (U, S) with U a (persisted) dask array."""
    import numbers

    X, dtype = check_dask_matrix(X, "X")
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {n_samples}")
    kmax = min(n_samples, n_features)
    nc = est.n_components
    k = tol = None
    if nc is None:
        k = kmax
    elif isinstance(nc, numbers.Integral) and not isinstance(nc, bool):
        if not 1 <= nc <= kmax:
            raise ValueError(
                f"n_components={nc} must be between 1 and min(n_samples, n_features)={kmax}"
            )
        k = int(nc)
    elif isinstance(nc, numbers.Real) and not isinstance(nc, bool) and 0 < nc < 1:
        tol = float(np.sqrt(1.0 - nc))
    else:
        raise ValueError(f"n_components must be None, an int >= 1 or a float in (0, 1), got {nc!r}")
    if est.svd_solver not in ("auto", "randomized", "gram"):
        raise ValueError(
            "svd_solver must be 'auto', 'randomized' or 'gram' for dask arrays "
            f"('full' needs the whole matrix in memory), got {est.svd_solver!r}"
        )
    from .decomposition import _variance_scale

    mean, _ = column_moments(X, dtype)
    (mean,) = _compute(mean)
    if not np.isfinite(mean).all():
        raise ValueError(_NON_FINITE_X)
    mean = mean.astype(dtype)
    U, S, Vh = _fitted_svd(X, k, tol, est, center=mean)
    if S.shape[0] == 0:
        # tol mode on centred data that are exactly 0: the in-memory rank-1 answer
        from .decomposition import _zero_svd

        _, S, Vh = _zero_svd(n_samples, n_features, dtype)
        U = da.zeros((n_samples, 1), dtype=dtype, chunks=(X.chunks[0], 1))
    ncomp = S.shape[0]
    # variances of c X (c = 1 unless squares of X leave float64's range; the in-memory
    # rule), scaled back: the centred sum of squares is the pass after the SVD
    c = _variance_scale(float(S[0]))
    _, sq = column_moments(X, dtype, c=c)
    (sq,) = _compute(sq)
    if not np.isfinite(sq):
        raise ValueError(_NON_FINITE_X)
    total_var = max(float(sq), 0.0) / (n_samples - 1)
    ev = ((S.astype(np.float64) * c) ** 2) / (n_samples - 1)
    est.mean_ = mean
    est.components_ = Vh
    est.singular_values_ = S
    with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
        est.explained_variance_ = (ev / c / c).astype(dtype)
    ratio = ev / total_var if total_var > 0 else np.zeros_like(ev)
    est.explained_variance_ratio_ = ratio.astype(dtype)
    est.n_components_ = ncomp
    est.n_samples_ = n_samples
    est.n_features_in_ = n_features
    if ncomp < kmax:
        est.noise_variance_ = float(max(total_var - ev.sum(), 0.0) / (kmax - ncomp)) / c / c
    else:
        est.noise_variance_ = 0.0
    return U, S


def pca_transform(est, X):
    """Lazy projection of a dask array (mean subtracted implicitly)."""
    X, _ = check_dask_matrix(X, "X", unknown_rows=True)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but PCA is expecting {est.n_features_in_} features"
        )
    C = est.components_.T
    Xt = _project(X, C) - (est.mean_ @ C)
    if est.whiten:
        from .decomposition import _whitening

        Xt = Xt / _whitening(np, est.singular_values_, est.n_samples_)[0]
    return Xt


def _project_block(b, c, *, dt):
    b = _block(b, False, dt)
    return _mul(b, c.astype(dt, copy=False))


def _project(X, C):
    """``X @ C`` for a dask array X chunked by rows (dense or sparse chunks), C numpy, in
    the dtype NumPy's ``X @ C`` has (as the in-memory transform): float32 data projected on
    a model fitted on float64 data were projected on components rounded to float32 (6e-7
    relative error, and a float32 result for TruncatedSVD where memory gives float64)."""
    dt = np.result_type(X.dtype, C.dtype)
    Cd = da.from_array(C, chunks=(X.chunks[1], -1))
    k = C.shape[1]
    parts = da.blockwise(
        _apply_block_part_plain,
        "jik",
        X,
        "ij",
        Cd,
        "jk",
        adjust_chunks={"j": 1},
        dtype=dt,
        meta=np.empty((0, 0, 0), dt),
        dt=dt,
    )
    out = parts.sum(axis=0, split_every=_SPLIT_EVERY, dtype=dt)
    return out.rechunk((X.chunks[0], (k,)))


def _apply_block_part_plain(b, c, *, dt):
    return np.asarray(_project_block(b, c, dt=dt))[None]


def inverse_transform(est, X, scale=None):
    """Lazy ``(X * scale) @ components_ (+ mean_)`` for a dask array of projections (the
    in-memory inverse_transform passed it through ``check_array``, which computed it and
    returned NumPy). ``scale``: the whitening scale (numpy) or None."""
    k, n_features = est.components_.shape
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of projections of shape (n_samples, {k}), got "
            f"{X.ndim}-D with shape {X.shape}"
        )
    if X.shape[1] != k:
        raise ValueError(
            f"X has {X.shape[1]} columns, but {type(est).__name__} has {k} components: "
            f"inverse_transform takes projections of shape (n_samples, {k})"
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)  # as check_array(dtype=[float64, float32])
    X = X.rechunk({1: -1})
    if scale is not None:
        X = X * scale
    out = X @ da.from_array(est.components_, chunks=-1)
    mean = getattr(est, "mean_", None)
    if mean is not None:
        out = out + mean
    return out


def tsvd_fit_transform(est, X):
    """TruncatedSVD.fit_transform for a dask array: returns ``U * S`` as a dask array."""
    import numbers

    X, dtype = check_dask_matrix(X, "X")
    if est.algorithm not in ("randomized", "auto", "gram"):
        raise ValueError(f"algorithm must be 'randomized', 'auto' or 'gram', got {est.algorithm!r}")
    nc = est.n_components
    if isinstance(nc, bool) or not isinstance(nc, numbers.Integral):
        raise ValueError(f"n_components must be an int, got {nc!r}")
    if not 1 <= nc <= min(X.shape):
        raise ValueError(
            f"n_components={nc} must be between 1 and min(n_samples, n_features)={min(X.shape)}"
        )
    U, S, Vh = _fitted_svd(X, int(nc), None, est)
    from .decomposition import _variance_scale

    Xt = U * S
    # variances of c X (c = 1 unless squares of X leave float64's range), scaled back
    c = _variance_scale(float(S[0]))
    _, sq = column_moments(X, dtype, c=c)
    ev, sq = _compute(da.var(Xt * c if c != 1.0 else Xt, axis=0, dtype=np.float64), sq)
    full_var = float(sq) / X.shape[0]
    est.components_ = Vh
    est.singular_values_ = S
    est.n_components_ = int(nc)
    est.n_features_in_ = X.shape[1]
    with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
        est.explained_variance_ = (ev / c / c).astype(dtype)
    ratio = ev / full_var if full_var > 0 else np.zeros_like(ev)
    est.explained_variance_ratio_ = ratio.astype(dtype)
    return Xt


def tsvd_transform(est, X):
    X, _ = check_dask_matrix(X, "X", unknown_rows=True)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but TruncatedSVD is expecting "
            f"{est.n_features_in_} features"
        )
    return _project(X, est.components_.T)


# ----------------------------------------------------------------------------- Tucker (ST-HOSVD)


def _mode_gram_block(b, mode):
    _worker_threads()
    return _lowdim.mode_gram(np.asarray(b), mode)


def _sum_list(parts):
    acc = parts[0].copy()
    with np.errstate(over="ignore", invalid="ignore"):  # overflowed Grams: tucker rescales
        for p in parts[1:]:
            acc += p
    return acc


def _tree_sum(parts):
    """Sum of delayed values by a tree of ``_SPLIT_EVERY``-ary additions."""
    while len(parts) > 1:
        parts = [
            dask.delayed(_sum_list, pure=True)(parts[i : i + _SPLIT_EVERY])
            for i in range(0, len(parts), _SPLIT_EVERY)
        ]
    return parts[0]


def _mode_gram(Y, mode):
    """The mode Gram ``Y_(mode) Y_(mode)^T`` in float64 (numpy). Mode in one chunk: the Rust
    Gram kernel per chunk and a tree reduction; mode split over chunks: chunk-pair products
    (dask tensordot, NumPy GEMM per pair) with dask's tree reduction."""
    nd = Y.ndim
    if Y.numblocks[mode] == 1:
        parts = [dask.delayed(_mode_gram_block, pure=True)(b, mode) for b in Y.to_delayed().ravel()]
        return _compute(_tree_sum(parts))[0]
    others = [i for i in range(nd) if i != mode]
    Y64 = Y.astype(np.float64)
    return _compute(da.tensordot(Y64, Y64, axes=(others, others)))[0]


def _mode_product(Y, U, mode):
    """``Y x_mode U^T`` (U: I_mode x r, numpy): the Rust n-mode product per chunk, summed over
    the chunks of the mode."""
    r = U.shape[1]
    Ut = np.ascontiguousarray(U.T)
    nd = Y.ndim
    idx = "".join(chr(ord("a") + i) for i in range(nd))
    out_idx = idx[:mode] + "z" + idx[mode + 1 :]
    Ud = da.from_array(Ut, chunks=((r,), Y.chunks[mode]))

    def prod(blocks, ublocks):
        _worker_threads()
        if not isinstance(blocks, list):
            blocks, ublocks = [blocks], [ublocks]
        acc = None
        for b, u in zip(blocks, ublocks, strict=True):
            p = _lowdim.mode_product(np.asarray(b), np.ascontiguousarray(u), mode, False)
            acc = p if acc is None else acc + p
        return acc

    return da.blockwise(
        prod,
        out_idx,
        Y,
        idx,
        Ud,
        "z" + idx[mode],
        new_axes={"z": r},
        concatenate=False,
        dtype=Y.dtype,
        meta=np.empty((0,) * nd, Y.dtype),
    )


def _factor(V, r):
    """The first r columns of V (eigenvectors, descending), each with its largest-magnitude
    entry positive (as the core)."""
    V = V[:, :r].copy()
    rows = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[rows, np.arange(r)])
    signs[signs == 0] = 1
    return V * signs


def _order_cost(dims, target, order):
    d = [float(v) for v in dims]
    cost = 0.0
    for m in order:
        size = math.prod(d)
        j = size / d[m]
        cost += 2.0 * target[m] * d[m] * j + d[m] * d[m] * j + 10.0 * d[m] ** 3
        d[m] = float(target[m])
    return cost


def tucker(X, rank, *, tol, method, modes, mode_order, svd, seed, progress=None):
    """lowdim.tucker for a dask array: ST-HOSVD with Gram matrices (see its docstring).
    ``progress``: a callable ``progress(done, total)`` or None, called at the in-memory
    path's steps (before the first mode, after each mode's factor, and for HOSVD after the
    core); an exception it raises stops the computation."""
    import itertools
    import numbers
    from collections.abc import Sequence

    from .tucker import TuckerTensor, _check_modes

    if X.ndim < 2:
        raise ValueError(f"X must have at least 2 dimensions, got shape {X.shape}")
    if any(math.isnan(s) for s in X.shape):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes()")
    if 0 in X.shape:
        raise ValueError(f"X is empty (shape {X.shape})")
    dtype = result_dtype(X.dtype, "X")
    if X.dtype != dtype:
        X = X.astype(dtype)
    nd = X.ndim
    modes = list(range(nd)) if modes is None else _check_modes(modes, nd)
    if method not in ("sthosvd", "hosvd"):
        raise ValueError(
            f"method={method!r} is not available for dask arrays; use 'sthosvd' or 'hosvd'"
        )
    if svd not in ("auto", "gram"):
        raise ValueError(f"svd={svd!r} is not available for dask arrays; use 'auto' or 'gram'")
    if (rank is None) == (tol is None):
        raise ValueError("give exactly one of rank (fixed ranks) and tol (an error tolerance)")
    if tol is not None:
        from .tucker import warn_tol_floor

        tol = check_tol(tol)
        warn_tol_floor(tol, nd, dtype == np.float32)
        # the in-memory rule gram_resolves: below it the discarded energy is rounding (ranks
        # above the unfolding's and a certified error of 0, or a true error above tol);
        # in memory svd='auto' takes the SVD of the unfolding there, which dask lacks
        i_max = max(X.shape[m] for m in modes)
        res = math.sqrt(1e3 * i_max * float(np.finfo(np.float64).eps))
        if tol < res:
            raise ValueError(
                f"tol={tol:e} is below what the Gram matrices of the dask path resolve for a "
                f"mode of size {i_max} (about {res:.1e}); use a larger tol, or the in-memory "
                "tucker, whose svd='auto' switches to the SVD of the unfolding"
            )
        ranks = None
    if tol is not None:
        pass
    elif isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
        ranks = [check_int(rank, "rank", 1)] * len(modes)
    else:
        if isinstance(rank, (str, bytes)) or not isinstance(rank, (Sequence, np.ndarray)):
            raise TypeError(f"rank must be an int or a sequence of ints, got {rank!r}")
        ranks = [check_int(r, "rank entry", 1) for r in rank]
        if len(ranks) != len(modes):
            raise ValueError(f"rank has {len(ranks)} entries but {len(modes)} modes are decomposed")
    for m, r in zip(modes, ranks or [], strict=False):
        if r > X.shape[m]:
            raise ValueError(
                f"rank {r} for mode {m} is larger than its size {X.shape[m]} "
                f"(X has shape {X.shape})"
            )
    target = list(X.shape)
    for m, r in zip(modes, ranks or [], strict=False):
        target[m] = r
    if isinstance(mode_order, str):
        if mode_order != "auto":
            raise ValueError(
                f"mode_order must be 'auto' or a sequence of modes, got {mode_order!r}"
            )
        if tol is not None:
            # as in memory: ascending mode size (the ranks are not known in advance)
            order = sorted(modes, key=lambda m: X.shape[m])
        elif len(modes) <= 6:
            order = list(
                min(
                    itertools.permutations(modes),
                    key=lambda p: _order_cost(X.shape, target, p),
                )
            )
        else:
            order = list(modes)
    else:
        order = _check_modes(mode_order, nd, "mode_order")
        if sorted(order) != sorted(modes):
            raise ValueError(f"mode_order={list(mode_order)} must be a permutation of {modes}")
    from ._xp import _Eig, _RankPicker

    # The in-memory rank rule: fixed ranks, or the budget tol^2 ||X||^2 spent mode by mode
    # (what a mode does not spend carries over to the next ones).
    eps = float(np.finfo(dtype).eps)
    steps = order  # HOSVD too: with tol the budget is spent in this order
    picker = _RankPicker(ranks, tol, len(steps), nd, eps)
    factors = {}
    total = None
    discarded = 0.0
    n_steps = len(steps) + (1 if method == "hosvd" else 0)  # the in-memory path's steps
    if progress is not None:
        progress(0, n_steps)
    (Y,) = _persist(X)
    # Out of float64's safe range the Gram matrices under- or overflow (as in memory): the
    # first one tells (non-finite, or a trace ||X||^2 below 2^-600), and only then a pass
    # for the largest magnitude; X then runs scaled by a power of two, the core scaled back.
    c = 1.0
    G0 = _mode_gram(Y, steps[0])
    if not np.isfinite(G0).all() or float(np.trace(G0)) < 2.0**-600:
        c = pow2_scale(max(float(v) for v in _compute(Y.max(), -Y.min())))
        if c != 1.0:
            (Y,) = _persist(Y * c)
            G0 = _mode_gram(Y, steps[0])
    X = Y
    for step, m in enumerate(steps):
        G = G0 if step == 0 else _mode_gram(Y if method == "sthosvd" else X, m)
        if not np.isfinite(G).all():
            # the in-memory message (NumPy's eigh would say "Eigenvalues did not converge")
            raise ValueError(
                "X contains NaN or infinity (or values so large that their squares overflow)"
            )
        if total is None:
            total = float(np.trace(G))
        lam, V = np.linalg.eigh(G)
        e = _Eig(V[:, ::-1], np.clip(lam[::-1], 0.0, None), float(np.trace(G)), True, "gram")
        r = picker.pick(step, modes.index(m), e)
        target[m] = r
        U = _factor(e.vecs, r).astype(dtype)
        discarded += e.tail(r)
        factors[m] = U
        if method == "sthosvd":
            (Y,) = _persist(_mode_product(Y, U, m))
        if progress is not None:
            progress(step + 1, n_steps)
    if method == "hosvd":
        for m in modes:
            Y = _mode_product(Y, factors[m], m)
    core = np.asarray(_compute(Y)[0])
    if progress is not None and method == "hosvd":
        progress(n_steps, n_steps)
    if c != 1.0:
        with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
            core = core * (1.0 / c)
    T = TuckerTensor(core, [factors[m] for m in modes], modes)
    # The discarded eigenvalues of every mode, as the in-memory path reports: equal to the
    # error for ST-HOSVD, a bound for HOSVD. (The identity ||X||^2 - ||core||^2 cancels when
    # nothing is discarded: rounding noise of sqrt(eps) ~ 1e-8, a flaky mismatch with the
    # in-memory 0 at full ranks.)
    T.certified_error = min(math.sqrt(discarded / total), 1.0) if total > 0 else 0.0
    T.method = method
    T.n_iter = 0
    T.solvers = tuple("gram" for _ in modes)
    T.mode_order = tuple(order)
    return T
