"""Array-API backend of the clustering estimators: SSC-OMP, the spectral step, k-means.

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
* Spectral step: the top eigenvectors of ``D^{-1/2} W D^{-1/2}``, rows normalized, then
  greedy k-means++ and Lloyd iterations with ``n_init`` restarts (:func:`kmeans`), written
  against the array API (distances by a GEMM, centers by a one-hot GEMM).

The k-means restarts use their own random draws (host ``numpy`` Generator seeded from
``random_state``), so labels agree with the Rust path up to a permutation, not draw for draw;
both number clusters in order of first appearance.
"""

from __future__ import annotations

import math

import numpy as np

from ._xp import _as, _from_host, _is_cupy, namespace, to_host

# ----------------------------------------------------------------------------- helpers


def _arange(xp, n, like, dtype=None):
    return xp.arange(n, dtype=dtype or xp.int64, device=_dev(like))


def _dev(a):
    import array_api_compat

    return array_api_compat.device(a)


def _zero_entries(xp, C, cols):
    """``C[r, cols[r, t]] = 0`` for every row r and t (``cols`` may hold -1: ignored).

    Index assignment where the namespace has it (NumPy, CuPy: one scatter); elsewhere (the
    standard has no integer-array ``__setitem__``) one masked ``where`` per column of
    ``cols``."""
    b = C.shape[0]
    if cols.shape[1] == 0:
        return C
    name = xp.__name__
    if "cupy" in name or "numpy" in name:
        rows = xp.broadcast_to(_arange(xp, b, C)[:, None], cols.shape)
        ok = cols >= 0
        C[rows[ok], cols[ok]] = 0
        return C
    ar = _arange(xp, C.shape[1], C)[None, :]
    for t in range(cols.shape[1]):
        C = xp.where(ar == cols[:, t : t + 1], xp.zeros((), dtype=C.dtype, device=_dev(C)), C)
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


def ssc_omp(X, n_nonzero: int, tol: float, block: int = 4096, progress=None):
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
        C = xp.abs(_as(xp, res_a, Xn.dtype) @ XT)  # (na, n): one GEMM
        masked = xp.concat([xp.take(selfcol, act)[:, None], _take_rows(xp, sel, act)], axis=1)
        C = _zero_entries(xp, C, masked[:, : step + 1])
        best = xp.max(C, axis=1)
        pick = xp.argmax(C, axis=1)  # first occurrence: smallest index on ties
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
        sel = _put_rows(
            xp, sel, act, xp.where(onehot[None, :], sel_new, _take_rows(xp, sel, act))
        )
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
        for t, ct in zip(range(i + 1, k), reversed(cols)):
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
