"""Array-API backend of the clustering estimators: SSC-OMP, TSC, LSR, K-subspaces, the
spectral step (and ``spectral_clustering`` on a given affinity), k-means.

Imported only when a non-NumPy array-API array (CuPy, ``array_api_strict``, ...) reaches
``lowdim.cluster``. Written once against the input's namespace; the tests run every line on
the CPU with NumPy and ``array_api_strict``, on a GPU the same code runs on CuPy.

* SSC-OMP (:func:`ssc_omp`): the pursuits of a block of points (``block`` rows at a time)
  advance together. Per step: the correlations of the block's residuals with all points are
  one GEMM (``R @ X^T``, in the input's float dtype), the point itself and the atoms already
  chosen are masked, the argmax per row (ties: smallest index) picks the next atom, and every
  row's orthonormal basis of its support is extended by batched classical Gram-Schmidt done
  twice (batched ``matmul`` on ``(b, s, D)`` stacks, in float64), exactly the incremental QR
  of the Rust kernel: same stopping rules (``||r|| <= tol``, best correlation 0, atom
  numerically in the span, ``n_nonzero`` atoms), coefficients ``R^{-1} z`` by a batched
  triangular solve. The representation is built as CSR pieces (indptr, indices, data) in the
  namespace of the input.
* Sparse matrices: on CuPy, ``cupyx.scipy.sparse`` CSR on the device (nothing of the size of
  the data leaves the GPU); for the other namespaces (which have no sparse format) a
  ``scipy.sparse`` CSR on the host: the only per-namespace pieces are :func:`_csr` and
  :func:`_top_eigvecs` (``cupyx.scipy.sparse.linalg.eigsh`` or scipy's ``eigsh``).
* LSR (:func:`lsr`): the Rust kernel's closed form (Woodbury with ``diag(C) = 0``) by GEMMs,
  block of points by block of points, the ``n_nonzero`` largest entries of each row kept
  (k argmax passes or a sort per row, :func:`_top_k_rows`); nothing ``N x N`` when
  ``N >= D``, and nothing ``D x D`` when ``N < D`` (then the ``N x N`` Gram matrix is
  eigendecomposed instead, as in the Rust kernel).
* K-subspaces (:func:`k_subspaces`): k-subspaces++ seeding, assignment and residuals by two
  GEMMs, per-cluster refit from the smaller Gram matrix (the ``D x D`` scatter by one GEMM
  on its members and a batched ``eigh``, or the ``m x m`` Gram matrix of a cluster of
  ``m < D`` points), restarts.
* ``spectral_clustering`` on a given affinity (:func:`check_affinity`, then
  :func:`spectral`): a cupyx sparse matrix or a dense array of the namespace.
* Spectral step: the top eigenvectors of ``D^{-1/2} W D^{-1/2}``, rows normalized, then
  greedy k-means++ and Lloyd iterations with ``n_init`` restarts (:func:`kmeans`), written
  against the array API (distances by a GEMM, centers by a one-hot GEMM).

The k-means restarts use their own random draws (host ``numpy`` Generator seeded from
``random_state``), not the Rust path's draws: labels agree with it up to a permutation where
both reach the same k-means optimum (well-separated clusters), and can differ where the
embedding has several (TSC on 4 x 3-dim subspaces of R^30, noise 0.05, 60 points each: 95% of
the labels agree); both number clusters in order of first appearance. K-subspaces also
draws its seeds from a host ``numpy`` Generator (not the Rust kernel's ChaCha8 streams): on
well-separated data the partition and the objective agree with the Rust path, the cluster
numbering may not (neither path renumbers K-subspaces clusters).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import pow2_near_inverse
from ._xp import _as, _from_host, _is_cupy, namespace, to_host

# ----------------------------------------------------------------------------- helpers


def _arange(xp, n, like, dtype=None):
    return xp.arange(n, dtype=dtype or xp.int64, device=_dev(like))


def _dev(a):
    import array_api_compat

    return array_api_compat.device(a)


def _zero_entries(xp, C, cols, fill=0, all_valid=False):
    """``C[r, cols[r, t]] = fill`` for every row r and t (``cols`` may hold -1: ignored;
    ``all_valid``: it holds none, so no mask is needed, hence no host sync on CuPy).

    Index assignment where the namespace has it (NumPy, CuPy: one scatter); elsewhere (the
    standard has no integer-array ``__setitem__``) one masked ``where`` per column of
    ``cols``."""
    b = C.shape[0]
    if cols.shape[1] == 0:
        return C
    name = xp.__name__
    if "cupy" in name or "numpy" in name:
        rows = xp.broadcast_to(_arange(xp, b, C)[:, None], cols.shape)
        if all_valid:
            C[rows, cols] = fill
            return C
        ok = cols >= 0
        C[rows[ok], cols[ok]] = fill
        return C
    ar = _arange(xp, C.shape[1], C)[None, :]
    for t in range(cols.shape[1]):
        C = xp.where(ar == cols[:, t : t + 1], xp.asarray(fill, dtype=C.dtype, device=_dev(C)), C)
    return C


def _take_rows(xp, X, idx):
    return xp.take(X, idx, axis=0)


# ----------------------------------------------------------------------------- SSC-OMP


def normalize_rows(xp, X):
    """Rows scaled to unit l2 norm in X's dtype (zero rows stay zero), and the zero-row mask."""
    m = xp.max(xp.abs(X), axis=1, keepdims=True)
    safe = xp.where(m == 0, xp.ones_like(m), m)
    Y = X / safe
    nrm = xp.sqrt(xp.sum(_as(xp, Y, xp.float64) ** 2, axis=1, keepdims=True))
    nrm = xp.where(nrm == 0, xp.ones_like(nrm), nrm)
    Y = _as(xp, _as(xp, Y, xp.float64) / nrm, X.dtype)
    return Y, m[:, 0] == 0


# Scratch budget of the block x N correlation arrays (about three live at once, 8 bytes each):
# blocks of up to 4096 points, fewer when N is large, so memory stays bounded whatever N is.
_SCRATCH_BYTES = 8 << 30


def _block_rows(n: int, block, row_bytes=None) -> int:
    """Rows per block: ``block`` if given, else up to 4096 rows (at least 64) of ``row_bytes``
    scratch each within :data:`_SCRATCH_BYTES` (default ``24 n``: three block x N arrays of
    8 bytes)."""
    if block is not None:
        return int(block)
    row_bytes = 24 * max(n, 1) if row_bytes is None else max(int(row_bytes), 1)
    return min(4096, max(64, _SCRATCH_BYTES // row_bytes))


def ssc_omp(X, n_nonzero: int, tol: float, block=None, progress=None):
    """SSC-OMP of every row of X over the other rows, in X's namespace.

    Returns ``(indptr, indices, data)`` arrays of X's namespace (int64, int64, X's dtype):
    the CSR pieces of the ``N x N`` coefficient matrix, row j writing point j by the others,
    indices ascending in each row, exact zeros dropped (as the Rust kernel)."""
    xp = namespace(X)
    n, d = X.shape
    dt = X.dtype
    Xn, zero = normalize_rows(xp, X)
    X64 = _as(xp, Xn, xp.float64)
    XT = xp.permute_dims(Xn, (1, 0))
    kmax = min(n_nonzero, n - 1, d)
    block = _block_rows(n, block)
    idx_parts, val_parts = [], []
    n_blocks = max(1, math.ceil(n / block))
    for bi, r0 in enumerate(range(0, n, block)):
        sel, coef = _omp_block(xp, Xn, X64, XT, zero, r0, min(block, n - r0), kmax, tol)
        idx_parts.append(sel)
        val_parts.append(coef)
        if progress is not None:
            progress(bi + 1, n_blocks)
    sel = xp.concat(idx_parts, axis=0)  # (n, kmax), -1 padded
    coef = xp.concat(val_parts, axis=0)  # float64
    return _to_csr_pieces(xp, sel, coef, n, dt)


def _abs_argmax(xp, C):
    """Per row of C: the first column of largest ``|C|`` and that magnitude, from one argmax
    and one argmin of C (two read passes, no ``|C|`` temporary of C's size). The smallest
    column wins ties, also between a positive and a negative entry, as in the Rust kernel."""
    imax = xp.argmax(C, axis=1)
    imin = xp.argmin(C, axis=1)
    vmax = xp.take_along_axis(C, imax[:, None], axis=1)[:, 0]
    vmin = -xp.take_along_axis(C, imin[:, None], axis=1)[:, 0]
    pick = xp.where(vmax > vmin, imax, xp.where(vmin > vmax, imin, xp.minimum(imax, imin)))
    return pick, xp.maximum(vmax, vmin)


def _omp_block(xp, Xn, X64, XT, zero, r0, b, kmax, tol):
    """Pursuits of rows r0 .. r0+b: (selected atoms (b, kmax) with -1 padding, float64
    coefficients (b, kmax))."""
    n, d = Xn.shape
    dev = _dev(Xn)
    f64 = xp.float64
    x = X64[r0 : r0 + b, :]  # (b, d)
    res = xp.asarray(x, copy=True)
    Q = xp.zeros((b, kmax, d), dtype=f64, device=dev)
    R = xp.zeros((b, kmax, kmax), dtype=f64, device=dev)
    z = xp.zeros((b, kmax), dtype=f64, device=dev)
    sel = xp.full((b, kmax), -1, dtype=xp.int64, device=dev)
    nsel = xp.zeros((b,), dtype=xp.int64, device=dev)
    done = xp.asarray(zero[r0 : r0 + b], copy=True)
    selfcol = _arange(xp, b, Xn) + r0
    zero64 = xp.zeros((), dtype=f64, device=dev)
    for step in range(kmax):
        act = xp.nonzero(xp.logical_not(done))[0]
        na = int(act.shape[0])  # one host sync per step
        if na == 0:
            break
        res_a = _take_rows(xp, res, act)
        C = _as(xp, res_a, Xn.dtype) @ XT  # (na, n): one GEMM
        self_a = xp.take(selfcol, act)[:, None]
        masked = xp.concat([self_a, _take_rows(xp, sel, act)], axis=1)[:, : step + 1]
        # (an active row has filled every earlier slot; -1 would be its own column anyway)
        masked = xp.where(masked >= 0, masked, self_a)
        C = _zero_entries(xp, C, masked, all_valid=True)
        pick, best = _abs_argmax(xp, C)
        # Batched Gram-Schmidt (twice) of the picked atoms against each row's basis.
        v = _take_rows(xp, X64, pick)  # (na, d)
        QA = _take_rows(xp, Q, act)
        Qa = QA[:, :step, :]  # (na, s, d)
        nrm0 = xp.sqrt(xp.sum(v * v, axis=1))
        h = xp.zeros((na, step), dtype=f64, device=dev)
        for _ in range(2):
            if step:
                c = (Qa @ v[:, :, None])[:, :, 0]
                h = h + c
                v = v - (xp.permute_dims(Qa, (0, 2, 1)) @ c[:, :, None])[:, :, 0]
        nrm = xp.sqrt(xp.sum(v * v, axis=1))
        tiny = 1e-12 * xp.maximum(nrm0, xp.asarray(np.finfo(np.float64).tiny, device=dev))
        ok = (best > 0) & xp.logical_not(xp.isnan(nrm)) & (nrm > tiny)
        safe = xp.where(ok, nrm, xp.ones_like(nrm))
        v = v / safe[:, None]
        xa = _take_rows(xp, x, act)
        zs = xp.where(ok, xp.sum(v * xa, axis=1), zero64)
        new_res = res_a - zs[:, None] * v
        # Scatter the updated state back into the block's arrays (rows `act`, slot `step`).
        oka = ok[:, None]
        col_q = xp.where(oka, v, zero64)
        col_r = xp.concat(
            [h, nrm[:, None], xp.zeros((na, kmax - step - 1), dtype=f64, device=dev)], axis=1
        )
        col_r = xp.where(oka, col_r, zero64)
        onehot = _arange(xp, kmax, Xn) == step  # (kmax,)
        Q = _put_rows(xp, Q, act, xp.where(onehot[None, :, None], col_q[:, None, :], QA))
        R = _put_rows(
            xp, R, act, xp.where(onehot[None, None, :], col_r[:, :, None], _take_rows(xp, R, act))
        )
        z = _put_rows(xp, z, act, xp.where(onehot[None, :], zs[:, None], _take_rows(xp, z, act)))
        sel_new = xp.where(oka, pick[:, None], xp.full_like(pick[:, None], -1))
        sel = _put_rows(xp, sel, act, xp.where(onehot[None, :], sel_new, _take_rows(xp, sel, act)))
        res = _put_rows(xp, res, act, xp.where(oka, new_res, res_a))
        cnt = xp.take(nsel, act) + xp.astype(ok, xp.int64)
        nsel = _put_rows(xp, nsel, act, cnt)
        rn = xp.sqrt(xp.sum(new_res * new_res, axis=1))
        stop = xp.logical_not(ok) | (cnt >= kmax) | (rn <= tol)
        done = _put_rows(xp, done, act, stop)
    # Coefficients R^{-1} z (unused slots: identity diagonal, z = 0 -> coefficient 0).
    eye = xp.eye(kmax, dtype=f64, device=dev)
    used = (sel >= 0)[:, None, :]  # column j of R used
    Rf = xp.where(used, R, eye[None, :, :])
    Rf = xp.where(eye[None, :, :] != 0, Rf, xp.where(used, R, zero64))
    # R is upper triangular: solve by a small back substitution (kmax steps, all rows at once).
    c = _back_substitute(xp, Rf, z)
    return sel, c


def _put_rows(xp, A, idx, vals):
    """A with rows ``idx`` replaced by ``vals`` (functional for namespaces without integer
    ``__setitem__``; an index assignment on NumPy/CuPy)."""
    name = xp.__name__
    if "cupy" in name or "numpy" in name:
        A[idx] = vals
        return A
    n = A.shape[0]
    # inverse map: position of each row in idx, or -1
    pos = xp.full((n,), -1, dtype=xp.int64, device=_dev(A))
    hit = _arange(xp, n, A)[:, None] == idx[None, :]  # (n, na): small blocks only
    anyhit = xp.any(hit, axis=1)
    pos = xp.where(anyhit, xp.argmax(xp.astype(hit, xp.int8), axis=1), pos)
    src = xp.take(vals, xp.where(anyhit, pos, xp.zeros_like(pos)), axis=0)
    shape = (n,) + (1,) * (A.ndim - 1)
    return xp.where(xp.reshape(anyhit, shape), src, A)


def _back_substitute(xp, R, z):
    """Solve ``R c = z`` for a stack of upper triangular ``R`` (b, k, k), ``z`` (b, k)."""
    k = z.shape[1]
    cols = []
    for i in range(k - 1, -1, -1):
        acc = z[:, i]
        for t, ct in zip(range(i + 1, k), reversed(cols), strict=True):
            acc = acc - R[:, i, t] * ct
        cols.append(acc / R[:, i, i])
    return xp.stack(list(reversed(cols)), axis=1)


def _to_csr_pieces(xp, sel, coef, n, dt):
    """Rows of (atom, coefficient) pairs -> CSR pieces, indices ascending, zeros dropped."""
    big = xp.asarray(n, dtype=xp.int64, device=_dev(sel))
    keep = (sel >= 0) & (coef != 0)
    key = xp.where(keep, sel, big)
    order = xp.argsort(key, axis=1, stable=True)
    key = xp.take_along_axis(key, order, axis=1)
    coef = xp.take_along_axis(coef, order, axis=1)
    keep = key < big
    counts = xp.sum(xp.astype(keep, xp.int64), axis=1)
    indptr = xp.concat(
        [xp.zeros((1,), dtype=xp.int64, device=_dev(sel)), xp.cumulative_sum(counts)]
    )
    flat = xp.reshape(keep, (-1,))
    indices = xp.reshape(key, (-1,))[flat]
    data = _as(xp, xp.reshape(coef, (-1,))[flat], dt)
    return indptr, indices, data


# ----------------------------------------------------------------------------- TSC


def tsc(X, n_neighbors: int, block=None, progress=None):
    """Thresholding (TSC) in X's namespace: row j keeps the ``q = n_neighbors`` points
    ``i != j`` of largest ``|<x_i, x_j>|`` (unit-norm points; ties: smallest index), each with
    the value ``exp(-2 acos(min(1, |<x_i, x_j>|)))``; a zero point gets an empty row (as the
    Rust kernel). The correlations of a block of points are one GEMM, then ``q`` argmax
    passes. Returns the CSR pieces ``(indptr, indices, data)`` in X's namespace."""
    xp = namespace(X)
    n, _ = X.shape
    Xn, zero = normalize_rows(xp, X)
    XT = xp.permute_dims(Xn, (1, 0))
    q = min(n_neighbors, n - 1)
    block = _block_rows(n, block)
    sels, vals = [], []
    n_blocks = max(1, math.ceil(n / block))
    for bi, r0 in enumerate(range(0, n, block)):
        b = min(block, n - r0)
        C = xp.abs(Xn[r0 : r0 + b, :] @ XT)
        C = _zero_entries(xp, C, (_arange(xp, b, Xn) + r0)[:, None], fill=-1, all_valid=True)
        picks, tops = [], []
        for _ in range(q):
            pick = xp.argmax(C, axis=1)
            tops.append(xp.take_along_axis(C, pick[:, None], axis=1)[:, 0])
            picks.append(pick)
            C = _zero_entries(xp, C, pick[:, None], fill=-1, all_valid=True)
        sel = xp.stack(picks, axis=1)
        top = _as(xp, xp.stack(tops, axis=1), xp.float64)
        one = xp.ones((), dtype=xp.float64, device=_dev(top))
        v = xp.exp(-2.0 * xp.acos(xp.minimum(top, one)))
        zb = zero[r0 : r0 + b][:, None]
        sels.append(xp.where(zb, xp.full_like(sel, -1), sel))
        vals.append(v)
        if progress is not None:
            progress(bi + 1, n_blocks)
    return _to_csr_pieces(xp, xp.concat(sels, axis=0), xp.concat(vals, axis=0), n, X.dtype)


# ----------------------------------------------------------------------------- top-k

# Up to this many entries per row, top-k selection is k argmax passes over the block (each
# one read of it, memory-bound); above it, one stable sort of every row.
_TOPK_PASSES = 64


def _top_k_rows(xp, C, k):
    """The ``k`` largest entries of every row of ``C`` (b, n): ``(indices (b, k) int64,
    values (b, k))``, best first, ties: smallest index (``C`` may be overwritten). An index
    may repeat once a row has no finite entries left (its value is then ``-inf``)."""
    b = C.shape[0]
    if k == 0:
        return (
            xp.zeros((b, 0), dtype=xp.int64, device=_dev(C)),
            xp.zeros((b, 0), dtype=C.dtype, device=_dev(C)),
        )
    if k <= _TOPK_PASSES:
        picks, tops = [], []
        for t in range(k):
            pick = xp.argmax(C, axis=1)  # first occurrence: smallest index on ties
            tops.append(xp.take_along_axis(C, pick[:, None], axis=1)[:, 0])
            picks.append(xp.astype(pick, xp.int64))
            if t + 1 < k:
                C = _zero_entries(xp, C, pick[:, None], fill=-math.inf, all_valid=True)
        return xp.stack(picks, axis=1), xp.stack(tops, axis=1)
    order = xp.argsort(-C, axis=1, stable=True)[:, :k]
    return xp.astype(order, xp.int64), xp.take_along_axis(C, order, axis=1)


# ----------------------------------------------------------------------------- LSR


def lsr(X, gamma: float, n_nonzero: int, block=None, progress=None):
    """LSR (least squares regression with ``diag(C) = 0``) of the rows of X, in X's namespace.

    The closed form of the Rust kernel (``rust/lowdim-core/src/selfexpr/lsr.rs``), from the
    smaller of the two Gram matrices of the unit-norm points ``x_i`` (rows), as there:

    * ``N >= D``: with ``lambda = 1 / gamma`` and ``M = (X^T X + lambda I)^{-1}`` (``D x D``,
      from one float64 ``eigh`` of ``X^T X``, eigenvalues clipped at 0),
      ``c_j[i] = <x_i, w_j>`` for ``i != j`` with ``w_j = M x_j / (1 - <x_j, M x_j>)``
      (Woodbury with the exclusion of self); a point with ``1 - <x_j, M x_j> <= 0`` (or a
      zero point) gets an empty row. Per block of points: the ``w_j`` by two ``b x D x D``
      GEMMs (float64), the products with all points by one ``b x N`` GEMM in X's dtype, the
      ``min(n_nonzero, N - 1)`` entries of largest ``|c|`` per row (ties: smallest index,
      zeros never kept), then the kept values recomputed in float64 (a batched dot of the
      gathered points with ``w_j``), as the Rust kernel does.
    * ``N < D`` (wide data): :func:`_lsr_dual`, ``c_j[i] = -Z_ij / Z_jj`` with
      ``Z = (X X^T + lambda I)^{-1}`` from one float64 ``eigh`` of the ``N x N`` Gram matrix:
      nothing ``D x D``; ``O(N^2)`` memory.

    The ``b x N`` scratch of a block is bounded as in :func:`ssc_omp`. Returns the CSR pieces
    ``(indptr, indices, data)`` in X's namespace (data in X's dtype)."""
    xp = namespace(X)
    n, d = X.shape
    dt = X.dtype
    dev = _dev(X)
    f64 = xp.float64
    Xn, zero = normalize_rows(xp, X)
    X64 = _as(xp, Xn, f64)
    k = min(int(n_nonzero), n - 1)
    if n < d:
        return _lsr_dual(xp, X64, zero, float(gamma), k, dt, block, progress)
    sq = xp.sum(X64 * X64, axis=1)
    lam, V = xp.linalg.eigh(xp.permute_dims(X64, (1, 0)) @ X64)
    lam = xp.maximum(lam, xp.zeros((), dtype=f64, device=dev))
    shift = lam + 1.0 / float(gamma)
    VT = xp.permute_dims(V, (1, 0))
    XT = xp.permute_dims(Xn, (1, 0))
    row_bytes = n * (24 if k <= _TOPK_PASSES else 48) + 8 * k * d
    block = _block_rows(n, block, row_bytes)
    sels, vals = [], []
    n_blocks = max(1, math.ceil(n / block))
    for bi, r0 in enumerate(range(0, n, block)):
        b = min(block, n - r0)
        Y = X64[r0 : r0 + b, :] @ V  # (b, D): coordinates in the eigenbasis
        U = Y / shift[None, :]
        den = sq[r0 : r0 + b] - xp.sum(Y * U, axis=1)
        ok = xp.logical_not(zero[r0 : r0 + b]) & (den > 0)  # False for NaN too
        W = (U @ VT) / xp.where(ok, den, xp.ones_like(den))[:, None]
        W = xp.where(ok[:, None], W, xp.zeros((), dtype=f64, device=dev))
        C = xp.abs(_as(xp, W, dt) @ XT)  # (b, N): one GEMM in X's dtype
        C = _zero_entries(xp, C, (_arange(xp, b, X) + r0)[:, None], fill=-1, all_valid=True)
        sel, top = _top_k_rows(xp, C, k)
        keep = (top > 0) & ok[:, None]
        sel = xp.where(keep, sel, xp.full_like(sel, -1))
        # the kept values again in float64, as the Rust kernel: c_j[i] = <x_i, w_j>
        rows = xp.take(X64, xp.reshape(xp.where(keep, sel, xp.zeros_like(sel)), (-1,)), axis=0)
        v = (xp.reshape(rows, (b, k, d)) @ W[:, :, None])[:, :, 0]
        sels.append(sel)
        vals.append(xp.where(keep, v, xp.zeros((), dtype=f64, device=dev)))
        if progress is not None:
            progress(bi + 1, n_blocks)
    return _to_csr_pieces(xp, xp.concat(sels, axis=0), xp.concat(vals, axis=0), n, dt)


def dual_ridge_eig(xp, X64):
    """The eigendecomposition ``(eigenvalues clipped at 0, eigenvectors)`` of the ``N x N``
    Gram matrix ``X X^T`` (float64), for the ridge solves of wide data (``N < D``)."""
    lam, U = xp.linalg.eigh(X64 @ xp.permute_dims(X64, (1, 0)))
    return xp.maximum(lam, xp.zeros((), dtype=lam.dtype, device=_dev(lam))), U


def dual_ridge_block(xp, lam, U, zero, r0, b, ridge, ok):
    """The ridge-with-exclusion coefficients ``(b, N)`` (float64) of the points r0 .. r0+b
    from the eigendecomposition ``X X^T = U diag(lam) U^T``, point ``r0 + r`` with ridge
    ``ridge[r]``: ``c_i = -Z_ij / Z_jj`` with ``Z = (X X^T + ridge I)^{-1}``, column ``j``
    of it by one GEMM, ``U (U_j / (lam + ridge))``. Returns ``(C, ok)``: the diagonal, the
    columns of zero points (``zero``) and the rows not ``ok`` (or with ``Z_jj`` not positive)
    are 0, and ``ok`` updated."""
    dev = _dev(U)
    A = U[r0 : r0 + b, :] / (lam[None, :] + ridge[:, None])
    Z = A @ xp.permute_dims(U, (1, 0))  # (b, N): row r is Z e_{r0 + r}
    self_col = (_arange(xp, b, U) + r0)[:, None]
    zjj = xp.take_along_axis(Z, self_col, axis=1)[:, 0]
    ok = ok & (zjj > 0)  # False for NaN too
    C = -Z / xp.where(ok, zjj, xp.ones_like(zjj))[:, None]
    drop = zero[None, :] | xp.logical_not(ok)[:, None]
    C = xp.where(drop, xp.zeros((), dtype=C.dtype, device=dev), C)
    return _zero_entries(xp, C, self_col, fill=0, all_valid=True), ok


def _lsr_dual(xp, X64, zero, gamma, k, dt, block, progress):
    """:func:`lsr` for ``N < D``: ``c_j[i] = -Z_ij / Z_jj``, ``Z = (X X^T + I / gamma)^{-1}``
    (the classical LSR closed form, equal to the Woodbury one), per block of points the
    column of ``Z`` by one GEMM on the eigenvectors, then the ``k`` largest ``|c|`` per row
    (ties: smallest index, zeros never kept), values already in float64."""
    n = X64.shape[0]
    dev = _dev(X64)
    f64 = xp.float64
    lam, U = dual_ridge_eig(xp, X64)
    block = _block_rows(n, block, n * (32 if k <= _TOPK_PASSES else 56))
    sels, vals = [], []
    n_blocks = max(1, math.ceil(n / block))
    for bi, r0 in enumerate(range(0, n, block)):
        b = min(block, n - r0)
        ok = xp.logical_not(zero[r0 : r0 + b])
        ridge = xp.full((b,), 1.0 / gamma, dtype=f64, device=dev)
        C, ok = dual_ridge_block(xp, lam, U, zero, r0, b, ridge, ok)
        key = _zero_entries(
            xp, xp.abs(C), (_arange(xp, b, C) + r0)[:, None], fill=-1, all_valid=True
        )
        sel, top = _top_k_rows(xp, key, k)
        keep = (top > 0) & ok[:, None]
        sel = xp.where(keep, sel, xp.full_like(sel, -1))
        v = xp.take_along_axis(C, xp.where(keep, sel, xp.zeros_like(sel)), axis=1)
        sels.append(sel)
        vals.append(xp.where(keep, v, xp.zeros((), dtype=f64, device=dev)))
        if progress is not None:
            progress(bi + 1, n_blocks)
    return _to_csr_pieces(xp, xp.concat(sels, axis=0), xp.concat(vals, axis=0), n, dt)


# ----------------------------------------------------------------------------- K-subspaces

_STREAM_KSS = 0x6B73_7300_0000_0000  # as the Rust kernel's stream tag (different generator)


def _norm(xp, v):
    return xp.sqrt(xp.sum(v * v))


def _orthonormal_columns(xp, cols):
    """Orthonormal basis ``(D, c)`` of the rows of ``cols`` (c, D) (float64), Gram-Schmidt
    twice; a row that is numerically dependent on the previous ones (``||v'|| <= 1e-10 ||v||``,
    or ``v = 0``) is replaced by the next coordinate axis that is not, as in the Rust kernel.
    One host sync in the usual case (all rows independent), one per candidate otherwise."""
    c, d = cols.shape
    dev = _dev(cols)
    one = xp.ones((), dtype=cols.dtype, device=dev)

    def reduce(qs, v):
        n0 = _norm(xp, v)
        if qs:
            Q = xp.stack(qs, axis=0)  # (j, D)
            for _ in range(2):
                v = v - (xp.matmul(Q, v)[None, :] @ Q)[0, :]
        n1 = _norm(xp, v)
        ok = (n0 > 0) & (n1 > 1e-10 * n0)
        return v / xp.where(ok, n1, one), ok

    qs, oks = [], []
    for j in range(c):
        q, ok = reduce(qs, cols[j, :])
        qs.append(q)
        oks.append(ok)
    if bool(xp.all(xp.stack(oks))):  # one sync
        return xp.permute_dims(xp.stack(qs, axis=0), (1, 0))
    qs, axis = [], 0
    ar = _arange(xp, d, cols)
    for j in range(c):
        cand = cols[j, :]
        while True:
            q, ok = reduce(qs, cand)
            if bool(ok):
                qs.append(q)
                break
            cand = xp.astype(ar == min(axis, d - 1), cols.dtype)
            axis += 1
    return xp.permute_dims(xp.stack(qs, axis=0), (1, 0))


def _fit_points(xp, X64, pts, dim):
    """The orthonormalized basis of the points ``pts`` (padded with zero columns to ``dim``)."""
    cols = xp.take(X64, pts, axis=0)
    if cols.shape[0] < dim:
        pad = xp.zeros((dim - cols.shape[0], X64.shape[1]), dtype=X64.dtype, device=_dev(X64))
        cols = xp.concat([cols, pad], axis=0)
    return _orthonormal_columns(xp, cols)


def _residuals(xp, X64, U):
    """``||x_i - U U^T x_i||^2`` of every row, computed directly (no cancellation)."""
    R = X64 - (X64 @ U) @ xp.permute_dims(U, (1, 0))
    return xp.sum(R * R, axis=1)


def _kss_assign(xp, X64, Ucat, k, dim):
    """Labels (argmax_k ||U_k^T x||, ties: lowest k), residuals to the chosen subspace
    (direct: ``x - U_l (U_l^T x)``, the other clusters' coordinates zeroed, one GEMM) and
    their sum (a device scalar)."""
    n = X64.shape[0]
    P = X64 @ Ucat  # (n, k dim): one GEMM
    P3 = xp.reshape(P, (n, k, dim))
    lab = xp.argmax(xp.sum(P3 * P3, axis=2), axis=1)
    oh = lab[:, None] == _arange(xp, k, X64)[None, :]
    Pm = xp.where(oh[:, :, None], P3, xp.zeros((), dtype=P.dtype, device=_dev(P)))
    R = X64 - xp.reshape(Pm, (n, k * dim)) @ xp.permute_dims(Ucat, (1, 0))
    res = xp.sum(R * R, axis=1)
    return xp.astype(lab, xp.int64), res, xp.sum(res)


def _sample_weighted(xp, w, u):
    """Index drawn with probability proportional to ``w`` for the uniform draw ``u`` (a 0-d
    device array, no sync): ``searchsorted(cumsum(w), u sum(w), 'right')``; uniform if the
    sum is 0 or not finite (as the Rust kernel)."""
    n = w.shape[0]
    cs = xp.cumulative_sum(w)
    tot = cs[-1]
    iw = xp.searchsorted(cs, xp.reshape(tot * u, (1,)), side="right")[0]
    iu = xp.asarray(min(int(u * n), n - 1), dtype=iw.dtype, device=_dev(w))
    idx = xp.where((tot > 0) & xp.isfinite(tot), iw, iu)
    return xp.minimum(idx, xp.asarray(n - 1, dtype=idx.dtype, device=_dev(w)))


def _kss_init(xp, X64, sqn, k, dim, rng):
    """k-subspaces++: the first seed point uniform, each later one drawn with probability
    proportional to its residual to the subspaces so far; each subspace fitted to its seed
    point and the ``dim - 1`` points of largest ``|cos|`` with it (ties: smallest index)."""
    n = X64.shape[0]
    dev = _dev(X64)
    f64 = X64.dtype
    nrm = xp.sqrt(sqn)
    ar = _arange(xp, n, X64)
    resid = sqn
    bases = []
    for c in range(k):
        u = float(rng.random())
        if c == 0:
            s = xp.asarray(min(int(u * n), n - 1), dtype=xp.int64, device=dev)
        else:
            s = xp.astype(_sample_weighted(xp, resid, u), xp.int64)
        s1 = xp.reshape(s, (1,))
        take = min(dim - 1, n - 1)
        if take > 0:
            xs = xp.take(X64, s1, axis=0)  # (1, D)
            ns = xp.take(nrm, s1)
            dots = (X64 @ xp.permute_dims(xs, (1, 0)))[:, 0]
            valid = (nrm > 0) & (ns > 0)
            den = xp.where(valid, ns * nrm, xp.ones_like(nrm))
            cos = xp.where(valid, xp.abs(dots / den), xp.asarray(-1.0, dtype=f64, device=dev))
            cos = xp.where(ar == s, xp.asarray(-2.0, dtype=f64, device=dev), cos)  # not itself
            others, _ = _top_k_rows(xp, cos[None, :], take)
            pts = xp.concat([s1, others[0, :]])
        else:
            pts = s1
        U = _fit_points(xp, X64, pts, dim)
        resid = xp.minimum(resid, _residuals(xp, X64, U))
        bases.append(U)
    return bases


def _fit_cluster_dual(xp, Xc, dim):
    """The top-``dim`` right singular subspace of the cluster's points ``Xc`` (m, D), m < D,
    as the Rust kernel: the top eigenvectors ``v_j`` of the ``m x m`` Gram matrix, mapped to
    ``Xc^T v_j`` and orthonormalized (:func:`_orthonormal_columns`); directions with
    eigenvalue ``<= m eps lambda_max`` (beyond the numerical rank, e.g. ``m < dim``) are
    zeroed, i.e. filled with coordinate axes."""
    m, d = Xc.shape
    lam, V = xp.linalg.eigh(Xc @ xp.permute_dims(Xc, (1, 0)))  # ascending
    take = min(dim, m)
    top = xp.flip(lam)[:take]
    floor = xp.maximum(lam[-1], xp.zeros((), dtype=lam.dtype, device=_dev(lam)))
    floor = floor * (m * float(np.finfo(np.float64).eps))
    W = xp.permute_dims(Xc, (1, 0)) @ xp.flip(V, axis=1)[:, :take]  # (D, take)
    zero = xp.zeros((), dtype=W.dtype, device=_dev(W))
    cols = xp.where((top > floor)[:, None], xp.permute_dims(W, (1, 0)), zero)
    if take < dim:
        pad = xp.zeros((dim - take, d), dtype=Xc.dtype, device=_dev(Xc))
        cols = xp.concat([cols, pad], axis=0)
    return _orthonormal_columns(xp, cols)


# float64 elements of the per-cluster D x D scatters eigendecomposed in one batched eigh
_EIGH_BATCH_ELEMS = 1 << 27


def _kss_run(xp, X64, sqn, k, dim, max_iter, rng):
    """One restart: (labels, bases (list of D x dim), objective (float), n_iter)."""
    n, d = X64.shape
    bases = _kss_init(xp, X64, sqn, k, dim, rng)
    lab, res, obj = _kss_assign(xp, X64, xp.concat(bases, axis=1), k, dim)
    ar = _arange(xp, k, X64)
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        counts = to_host(xp.sum(xp.astype(lab[:, None] == ar[None, :], xp.int64), axis=0))
        order = xp.argsort(lab, stable=True)  # members of each cluster, contiguous
        Xs = xp.take(X64, order, axis=0)
        worst, wpos = None, 0
        grams, which = [], []
        off = 0
        for c in range(k):
            cnt = int(counts[c])
            if cnt == 0:
                # an empty cluster: refitted to the worst-fitted points (largest residuals,
                # ties: smallest index), `dim` at a time across the empty clusters
                if worst is None:
                    worst = xp.argsort(-res, stable=True)
                pts = worst[min(wpos, n) : min(wpos + dim, n)]
                wpos += dim
                bases[c] = _fit_points(xp, X64, pts, dim)
            elif cnt < d:
                bases[c] = _fit_cluster_dual(xp, Xs[off : off + cnt, :], dim)
            else:
                Xc = Xs[off : off + cnt, :]
                grams.append(xp.permute_dims(Xc, (1, 0)) @ Xc)  # the cluster's D x D scatter
                which.append(c)
            off += cnt
        per = max(1, _EIGH_BATCH_ELEMS // max(d * d, 1))
        for g0 in range(0, len(grams), per):
            _, V = xp.linalg.eigh(xp.stack(grams[g0 : g0 + per], axis=0))  # ascending
            top = xp.flip(V, axis=2)[:, :, :dim]  # the top-dim eigenvectors
            for t, c in enumerate(which[g0 : g0 + per]):
                bases[c] = top[t, :, :]
        lab2, res2, obj2 = _kss_assign(xp, X64, xp.concat(bases, axis=1), k, dim)
        same = bool(xp.all(lab2 == lab))  # one sync per iteration
        lab, res, obj = lab2, res2, obj2
        if same:
            break
    return lab, bases, float(obj), n_iter


def k_subspaces(X, n_clusters: int, dim: int, n_init: int, max_iter: int, seed: int):
    """K-subspaces of the rows of X in X's namespace, the algorithm of the Rust kernel
    (``rust/lowdim-core/src/subspaces.rs``) with the same objective
    ``sum_i ||x_i - U_{l_i} U_{l_i}^T x_i||^2`` (float64 throughout).

    k-subspaces++ seeding; per iteration the refit and the assignment (one
    ``N x D x K dim`` GEMM, residuals computed directly by a second GEMM); it stops when the
    labels no longer change or after ``max_iter`` refits. The refit of a cluster of ``m``
    points takes the smaller of its Gram matrices, as the Rust kernel: ``m >= D``, its
    ``D x D`` scatter by one GEMM on its contiguous members and the top-``dim``
    eigenvectors by a batched ``eigh``; ``m < D``, the ``m x m`` Gram matrix, its top
    eigenvectors mapped back through ``X_k^T`` and orthonormalized
    (:func:`_fit_cluster_dual`), so the cost is ``O(min(m, D)^2 max(m, D))`` and nothing
    ``D x D`` is formed for small clusters; an empty cluster is refitted to the
    worst-fitted points. The best of ``n_init`` restarts (lowest objective, ties: the
    first) is kept. Host syncs: one per seed subspace and per cluster refitted from its
    ``m x m`` Gram matrix (the orthonormalization's dependence test), the ``K`` cluster
    sizes and one bool per iteration, the objective per restart.

    Randomness: restart ``r`` draws from a host NumPy ``Generator`` seeded with
    ``(seed, tag, r)``, not the Rust kernel's ChaCha8 stream, so seeds and hence results may
    differ from the Rust path; on data whose subspaces are well separated both find the same
    partition (labels equal up to a permutation) and the same objective to rounding.

    Returns ``(labels int64, bases (K, D, dim) in X's dtype, objective float, n_iter int)``."""
    xp = namespace(X)
    X64 = _as(xp, X, xp.float64)
    sqn = xp.sum(X64 * X64, axis=1)
    best = None
    for r in range(n_init):
        rng = np.random.default_rng([int(seed), _STREAM_KSS, r])
        res = _kss_run(xp, X64, sqn, n_clusters, dim, max_iter, rng)
        if best is None or res[2] < best[2]:
            best = res
    labels, bases, obj, n_iter = best
    return labels, _as(xp, xp.stack(bases, axis=0), X.dtype), obj, n_iter


def k_subspaces_predict(X, bases):
    """Labels of the rows of X: ``argmax_k ||U_k^T x||^2`` (ties: lowest k), in X's dtype,
    by one GEMM with the concatenated bases ``(K, D, dim)``."""
    xp = namespace(X, bases)
    k, d, dim = bases.shape
    n = X.shape[0]
    Ucat = xp.reshape(xp.permute_dims(_as(xp, bases, X.dtype), (1, 0, 2)), (d, k * dim))
    P = X @ Ucat
    S = xp.sum(xp.reshape(P * P, (n, k, dim)), axis=2)
    return xp.astype(xp.argmax(S, axis=1), xp.int64)


# ----------------------------------------------------------------------------- sparse pieces


def _sparse(xp):
    """(sparse module, its linalg) of the namespace: cupyx.scipy.sparse on CuPy (device),
    scipy.sparse on the host for every other namespace (the array API has no sparse format)."""
    if _is_cupy(xp):
        import cupyx.scipy.sparse as sps
        import cupyx.scipy.sparse.linalg as spla

        return sps, spla
    import scipy.sparse as sps
    import scipy.sparse.linalg as spla

    return sps, spla


def _dense_module(xp):
    """The dense module the sparse module works with: CuPy on CuPy, NumPy otherwise."""
    if _is_cupy(xp):
        import cupy

        return cupy
    return np


def _dense_of(xp, a):
    """A namespace array in the array type its sparse module works with (CuPy: itself;
    otherwise NumPy on the host)."""
    return a if _is_cupy(xp) else to_host(a)


def csr(xp, indptr, indices, data, n):
    """The ``n x n`` CSR matrix of the pieces: cupyx on CuPy, scipy (host) otherwise."""
    sps, _ = _sparse(xp)
    if _is_cupy(xp) and max(n, int(data.shape[0])) < 2**31:
        # cupyx.scipy.sparse stores int32 indices only
        indices, indptr = xp.astype(indices, xp.int32), xp.astype(indptr, xp.int32)
    return sps.csr_matrix(
        (_dense_of(xp, data), _dense_of(xp, indices), _dense_of(xp, indptr)), shape=(n, n)
    )


def affinity(xp, indptr, indices, data, n):
    """``(|C^| + |C^|^T) / 2`` with the rows of ``C`` scaled to unit l2 norm (as
    ``lowdim.cluster._representation``), in the namespace's sparse format."""
    a = xp.abs(data)
    rows = _row_ids(xp, indptr, int(data.shape[0]))
    sq = _segment_sum(xp, _as(xp, a, xp.float64) ** 2, indptr)
    nrm = xp.sqrt(sq)
    nrm = xp.where(nrm == 0, xp.ones_like(nrm), nrm)
    an = _as(xp, _as(xp, a, xp.float64) / xp.take(nrm, rows), data.dtype)
    Cn = csr(xp, indptr, indices, an, n)
    W = (Cn + Cn.T) * 0.5
    return W.tocsr()


def _row_ids(xp, indptr, nnz):
    """The row of every stored entry (searchsorted on indptr)."""
    pos = _arange(xp, nnz, indptr)
    return xp.searchsorted(indptr[1:], pos, side="right")


def _segment_sum(xp, vals, indptr):
    """Sums of ``vals`` over the CSR row segments."""
    cs = xp.concat([xp.zeros((1,), dtype=vals.dtype, device=_dev(vals)), xp.cumulative_sum(vals)])
    return xp.take(cs, indptr[1:]) - xp.take(cs, indptr[:-1])


# ----------------------------------------------------------------------------- spectral


def _top_eigvecs(xp, S, k, seed):
    """The top-k (largest algebraic) eigenpairs of the symmetric sparse S, descending, in
    the sparse module's dense array type. Dense eigh for small problems, else Lanczos
    (``eigsh``: cupyx on CuPy, ARPACK on the host)."""
    sps, spla = _sparse(xp)
    n = S.shape[0]
    dense = _dense_module(xp)
    if n <= 1000 or k >= n - 1:
        w, v = dense.linalg.eigh(S.toarray().astype(dense.float64))
        return w[::-1][:k].copy(), v[:, ::-1][:, :k].copy()
    S = S.astype(np.float64)
    want = k
    # guard vectors: Lanczos finds repeated eigenvalues (1, once per connected component)
    # reliably only when more pairs than the multiplicity are asked for
    k = min(n - 2, k + max(5, math.ceil(k / 4)))
    ncv = min(n - 1, max(2 * k + 1, k + 32))
    if _is_cupy(xp):
        # cupyx draws its own start vector on the device (a seeded host draw here cost n
        # numbers drawn on the host and copied to the device, then unused)
        w, v = spla.eigsh(S, k=k, which="LA", ncv=ncv, tol=1e-10)
    else:
        v0 = np.random.default_rng(seed).standard_normal(n)  # ARPACK, on the host
        w, v = spla.eigsh(S, k=k, which="LA", ncv=ncv, v0=v0, tol=1e-10)
    order = dense.argsort(-w)[:want]
    return w[order], v[:, order]


def eigengap_k(vals, max_k):
    best, gap = 1, -np.inf
    for k in range(1, min(max_k, len(vals) - 1) + 1):
        g = vals[k - 1] - vals[k]
        if g > gap:
            gap, best = g, k
    return best


def spectral(xp, W, n_clusters, max_clusters, n_init, seed, like):
    """Normalized spectral clustering of the sparse affinity W (format of :func:`_sparse`).

    Returns ``(labels, eigenvalues, k)``: labels int64 in the namespace of ``like``,
    eigenvalues a float64 array in that namespace (descending), k the number of clusters."""
    sps, _ = _sparse(xp)
    n = W.shape[0]
    ncomp = n_clusters if n_clusters is not None else min(max_clusters + 1, n)
    from .cluster import warn_if_edgeless

    warn_if_edgeless(W)
    W = W.astype(np.float64)
    dense = _dense_module(xp)
    if W.data.shape[0]:
        # S does not change when W is scaled: a power of two near 1 / max W (exact) keeps the
        # degrees of weights near 1e308 finite (as the Rust kernel)
        wmax = float(W.data.max())
        if 0.0 < wmax < math.inf:
            W = W * pow2_near_inverse(wmax)
    deg = W @ dense.ones((n,), dtype=dense.float64)
    deg = dense.asarray(deg).reshape(-1)
    dinv = dense.where(deg > 0, 1.0 / dense.sqrt(dense.where(deg > 0, deg, 1.0)), 0.0)
    D = sps.diags(dinv)
    S = (D @ W @ D).tocsr()
    vals, V = _top_eigvecs(xp, S, ncomp, seed)
    vals_h = to_host(vals)
    k = n_clusters if n_clusters is not None else eigengap_k(vals_h, max_clusters)
    V = V[:, :k]
    # signs: the entry of largest magnitude of each vector positive (as the Rust solver)
    V = V if _is_cupy(xp) else np.ascontiguousarray(V)
    E = V if _is_cupy(xp) else _from_host(xp, V, like)
    imax = xp.argmax(xp.abs(E), axis=0)
    sg = xp.sign(xp.take_along_axis(E, imax[None, :], axis=0))
    E = E * xp.where(sg == 0, xp.ones_like(sg), sg)
    nr = xp.sqrt(xp.sum(E * E, axis=1, keepdims=True))
    E = E / xp.where(nr > 0, nr, xp.ones_like(nr))
    labels = kmeans(xp, E, k, n_init, 300, 1e-4, seed)
    return labels, _from_host(xp, np.asarray(vals_h, dtype=np.float64), like), k


def check_affinity(A):
    """``(xp, W, like)`` for an array-API dense or a cupyx (or scipy) sparse affinity, with
    the checks and errors of ``lowdim.cluster``'s NumPy path: 2-D, square, not empty, real
    (integers and booleans -> float64), finite, nonnegative, symmetric to ``1e-6`` of its
    largest entry. ``W`` is a canonical CSR matrix in the sparse format of the namespace
    (cupyx on CuPy, on the device; scipy on the host otherwise), float32 or float64; ``xp``
    the namespace the labels are returned in, ``like`` an array of it on the input's device.
    A few scalar syncs (the checks); a dense input is converted to CSR on its device."""
    from ._xp import is_sparse

    if is_sparse(A):
        W, like = A, A.data
        xp = namespace(like)
        shape = tuple(A.shape)
    else:
        xp = namespace(A)
        shape = tuple(A.shape)
        if A.ndim != 2:
            raise ValueError(f"affinity must be a 2-D square matrix, got shape {shape}")
        W, like = None, A
    if shape[0] != shape[1]:
        raise ValueError(f"affinity must be square, got shape {shape}")
    if shape[0] < 1:
        raise ValueError("affinity is empty")
    dt = like.dtype
    if not xp.isdtype(dt, ("real floating", "integral", "bool")):
        raise TypeError(f"affinity must be real, got dtype {dt}")
    if W is None:
        if not xp.isdtype(dt, "real floating"):
            A = xp.astype(A, xp.float64)
        sps, _ = _sparse(xp)
        W = sps.csr_matrix(_dense_of(xp, A))  # on A's device
    else:
        if not xp.isdtype(dt, "real floating"):
            W = W.astype(np.float64)
        if W.format != "csr":
            W = W.tocsr()
        if not W.has_canonical_format:
            W = W.copy()
            W.sum_duplicates()
    if hasattr(W, "sort_indices"):
        W.sort_indices()
    dxp = namespace(W.data)
    dv = W.data
    if not bool(dxp.all(dxp.isfinite(dv))):
        raise ValueError("affinity contains NaN or infinity")
    if W.nnz and bool(dxp.any(dv < 0)):
        raise ValueError("affinity has negative entries; use |W| (e.g. abs(W)) as weights")
    diff = (W - W.T.tocsr()).tocsr()
    scale = float(dxp.max(dv)) if W.nnz else 0.0
    if diff.nnz and float(dxp.max(dxp.abs(diff.data))) > 1e-6 * scale:
        raise ValueError("affinity is not symmetric; symmetrize it, e.g. (W + W.T) / 2")
    return xp, W, like


# ----------------------------------------------------------------------------- k-means


def _sqdist(xp, Y, ysq, C):
    """Squared distances (n, k) of the rows of Y to the rows of C, by one GEMM."""
    csq = xp.sum(C * C, axis=1)
    d = ysq[:, None] + csq[None, :] - 2.0 * (Y @ xp.permute_dims(C, (1, 0)))
    return xp.maximum(d, xp.zeros((), dtype=d.dtype, device=_dev(d)))


def _kmeanspp(xp, Y, ysq, k, rng):
    """Greedy k-means++ (2 + log k local trials per center), on the device."""
    n = Y.shape[0]
    dev = _dev(Y)
    n_local = 2 + int(math.log(k))
    first = int(rng.integers(n))
    centers = [Y[first : first + 1, :]]
    d2 = _sqdist(xp, Y, ysq, centers[0])[:, 0]
    for _ in range(1, k):
        cs = xp.cumulative_sum(d2)
        pot = cs[-1]
        u = xp.asarray(rng.random(n_local), dtype=Y.dtype, device=dev) * pot
        cand = xp.searchsorted(cs, u, side="right")
        cand = xp.minimum(cand, xp.asarray(n - 1, dtype=cand.dtype, device=dev))
        C = xp.take(Y, cand, axis=0)
        dc = xp.minimum(d2[:, None], _sqdist(xp, Y, ysq, C))  # (n, n_local)
        best = xp.argmin(xp.sum(dc, axis=0))
        centers.append(xp.take(C, xp.reshape(best, (1,)), axis=0))
        d2 = xp.take(dc, xp.reshape(best, (1,)), axis=1)[:, 0]
    return xp.concat(centers, axis=0)


def _lloyd(xp, Y, ysq, C, max_iter, tol):
    k = C.shape[0]
    ar = _arange(xp, k, Y)
    labels = None
    for _ in range(max_iter):
        D = _sqdist(xp, Y, ysq, C)
        new = xp.argmin(D, axis=1)
        oh = _as(xp, new[:, None] == ar[None, :], Y.dtype)
        cnt = xp.sum(oh, axis=0)
        sums = xp.permute_dims(oh, (1, 0)) @ Y
        Cn = xp.where(cnt[:, None] > 0, sums / xp.maximum(cnt, xp.ones_like(cnt))[:, None], C)
        shift = xp.sum((Cn - C) ** 2)
        if labels is None:
            shift, same = float(shift), False
        else:  # the shift and the unchanged-labels test in one transfer: one host sync
            same = xp.astype(xp.all(new == labels), shift.dtype)
            shift, same = (float(v) for v in to_host(xp.stack([shift, same])))
            same = same == 1.0
        C, labels = Cn, new
        if same or shift <= tol:
            break
    D = _sqdist(xp, Y, ysq, C)
    labels = xp.argmin(D, axis=1)
    inertia = float(xp.sum(xp.min(D, axis=1)))
    return labels, inertia


def relabel(xp, labels, k):
    """Labels renumbered in order of first appearance."""
    n = labels.shape[0]
    pos = _arange(xp, n, labels)
    oh = labels[:, None] == _arange(xp, k, labels)[None, :]
    first = xp.min(
        xp.where(oh, pos[:, None], xp.asarray(n, dtype=xp.int64, device=_dev(labels))), axis=0
    )
    order = xp.argsort(first, stable=True)
    rank = xp.argsort(order, stable=True)
    return xp.astype(xp.take(rank, labels), xp.int64)


def kmeans(xp, Y, k, n_init, max_iter, tol, seed):
    """k-means++ / Lloyd with ``n_init`` restarts; labels (int64, first-appearance order)."""
    rng = np.random.default_rng(seed)
    Y = _as(xp, Y, xp.float64)
    ysq = xp.sum(Y * Y, axis=1)
    var = float(xp.mean(xp.var(Y, axis=0)))
    tol = tol * var
    best = (None, np.inf)
    for _ in range(n_init):
        C = _kmeanspp(xp, Y, ysq, k, rng)
        labels, inertia = _lloyd(xp, Y, ysq, C, max_iter, tol)
        if inertia < best[1]:
            best = (labels, inertia)
    return relabel(xp, best[0], k)
