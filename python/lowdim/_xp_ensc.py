"""Array-API backend of EnSC (elastic-net subspace clustering): ORGEN batched over points.

Imported only when a non-NumPy array-API array (CuPy, ``array_api_strict``, ...) reaches
``lowdim.cluster.EnSC``. Written once against the input's namespace; the tests run every
line on the CPU with NumPy and ``array_api_strict``, on a GPU the same code runs on CuPy.
The objective, the gamma/tau contract, the normalization and the output are those of the
Rust kernel (``rust/lowdim-core/src/selfexpr/ensc.rs``):

    min_c tau ||c||_1 + (1 - tau)/2 ||c||_2^2 + alpha_j/2 ||x_j - sum_{i != j} c_i x_i||^2,

``alpha_j = gamma tau / mu_j`` with ``mu_j = max_{i != j} |<x_i, x_j>|`` (unit-norm points;
``mu_j = 0``: empty row), ``tau = 0`` the ridge in closed form with ``alpha_j = gamma / mu_j``
(from the eigendecomposition of ``X^T X``, or of ``X X^T`` when ``N < D``: nothing ``D x D``
for wide data).

How the work is batched (a block of points at a time, the block size from the scratch budget
of ``_xp_cluster._block_rows``, as SSC-OMP):

* Round 0: the block's coherences with all points are one GEMM (``block x N``, the input's
  float dtype); ``mu_j`` and the initial active sets (the ``support_size`` most coherent
  points, ties: smallest index) come from it.
* Every ORGEN round: the active sets of the block's unfinished points are stacked, padded to
  the largest (``-1`` pads, inert coordinates), their points gathered into a
  ``(b, S, D)`` float64 stack; the Gram matrices ``(b, S, S)`` and the right-hand sides are
  one batched GEMM. The elastic net on every active set is solved exactly by feature-sign
  search run in lock-step over the points: per step, one batched mat-vec for the gradient,
  the entering coordinate by an argmax, the sign-fixed systems of all points by one batched
  Cholesky check + batched solve on the active coordinates only (compacted to the largest
  active count of the batch), and the line search over every breakpoint at once (one
  batched GEMM; the objective clamped to its lower bound
  ``tau |v|_1 + (1 - tau)/2 |v|^2 - alpha/2 |x|^2``, so that a huge step out of a system
  singular to rounding never passes for a descent). Finished rows leave the lock-step. When
  the system of an entering coordinate is singular (``tau = 1`` with more active points
  than their span: noiseless data, or ``D`` small) a step along its null direction replaces
  it (the objective is linear there; the first nonzero to reach 0 leaves), so the result is
  the optimum where the Rust kernel's coordinate descent can stop short of it. Points whose
  search still fails (rounding) go to batched coordinate descent with the sign-fixed
  polish, as in the Rust kernel.
  The oracle points ``delta_j = alpha_j (x_j - X_T c_T)`` are correlated with all points by
  one GEMM; violators (``|<x_i, delta_j>| > tau`` plus the Rust kernel's rounding slack) enter
  by the same rule (nonzeros, then the most violating points, then former zero members, at
  most ``support_size`` in all, which grows by 10% when more than 80% is nonzero).
* ``n_iter`` is the Rust kernel's: the most rounds any point needed.
* Exact copies of a point (equal unit-norm rows) are solved once, as in the Rust kernel
  (:func:`_first_copies`); the copies take the first one's row with the two indices swapped.

Host syncs: a few scalars per feature-sign step (the largest active count, whether any point
is still running) and per round (which points are still running, the width of the new active
sets); nothing of the size of the data leaves the device. The row selections ("the k largest
above a floor, ties by smallest index") need a per-row k-th largest value: a partial sort
(``numpy.partition``) on NumPy, a row sort elsewhere, only for the rows that have more
candidates than room.
"""

from __future__ import annotations

import math

import numpy as np

from ._xp import _as, namespace
from ._xp_cluster import (
    _arange,
    _block_rows,
    _dev,
    _put_rows,
    _to_csr_pieces,
    _zero_entries,
    dual_ridge_block,
    dual_ridge_eig,
    normalize_rows,
)

# Sweeps of coordinate descent per subproblem, at most, and sweeps over the nonzeros between
# two attempts of the sign-fixed polish (the Rust kernel's constants).
MAX_SWEEPS = 20_000
POLISH_EVERY = 8
# Scratch budget of the stacked subproblems ((b, S, D) points, (b, S, S) Gram matrices and
# their companions): the rows of a block are solved in chunks that stay within it.
_SUB_BYTES = 1 << 30
# Feature-sign drops its finished rows from the lock-step when at most half still run and
# at least this many rows are in it.
_COMPACT_ROWS = 64
# Tests: skip feature-sign search (exercise the coordinate-descent fallback).
_FORCE_CD = False


# ----------------------------------------------------------------------------- helpers


def _is_numpy(xp) -> bool:
    return "numpy" in xp.__name__


def _i64(xp, a):
    return xp.astype(a, xp.int64)


def _f64(xp, a):
    return _as(xp, a, xp.float64)


def _full(xp, shape, value, dtype, like):
    return xp.full(shape, value, dtype=dtype, device=_dev(like))


def _kth_largest(xp, A, k):
    """Per row r of A (b, m), the ``k[r]``-th largest value (``1 <= k[r] <= m``)."""
    m = A.shape[1]
    kmax = min(int(xp.max(k)), m)
    if _is_numpy(xp):  # a partial sort: O(m) per row
        P = np.partition(A, m - kmax, axis=1)[:, m - kmax :]
        S = -np.sort(-P, axis=1)
    else:
        S = xp.sort(A, axis=1, descending=True)
    return xp.take_along_axis(S, (k - 1)[:, None], axis=1)[:, 0]


def _count(xp, mask):
    """True entries per row (int64)."""
    return _i64(xp, xp.count_nonzero(mask, axis=1))


def _select_top(xp, key, k, floor):
    """Mask (b, m) of the ``k[r]`` largest entries of row r of ``key`` among those
    ``> floor[r]`` (ties: smallest column), as the Rust kernel's TopK. ``k >= 1``."""
    b = key.shape[0]
    cand = key > floor[:, None]
    over = _count(xp, cand) > k
    n_over = int(xp.count_nonzero(over))
    if n_over == 0:  # the usual case for the violators: no sort at all
        return cand
    every = n_over == b
    rows = None if every else xp.nonzero(over)[0]
    sub = key if every else xp.take(key, rows, axis=0)
    kk = k if every else xp.take(k, rows)
    kth = _kth_largest(xp, sub, kk)  # > floor: the row has more than kk candidates
    gt = sub > kth[:, None]
    eq = sub == kth[:, None]
    need = kk - _count(xp, gt)
    if bool(xp.any(_count(xp, eq) > need)):  # ties at the k-th value: smallest columns
        eq = eq & (xp.cumulative_sum(_i64(xp, eq), axis=1) <= need[:, None])
    sel = gt | eq
    return sel if every else _put_rows(xp, cand, rows, sel)


def _mask_to_padded(xp, mask):
    """The columns of the True entries of every row of ``mask`` (b, m), ascending, as a
    (b, w) int64 array padded with -1 (w the largest count)."""
    b, m = mask.shape
    cnt = _count(xp, mask)
    w = int(xp.max(cnt)) if b else 0
    if w == 0:
        return _full(xp, (b, 0), -1, xp.int64, mask)
    flat = xp.nonzero(xp.reshape(mask, (-1,)))[0]  # ascending: row-major order
    start = xp.cumulative_sum(cnt) - cnt
    t = _arange(xp, w, mask)
    ok = t[None, :] < cnt[:, None]
    pos = xp.where(ok, start[:, None] + t[None, :], xp.zeros_like(cnt)[:, None])
    got = xp.reshape(xp.take(flat, xp.reshape(pos, (-1,))), (b, w))
    col = got - (_arange(xp, b, mask) * m)[:, None]
    return xp.where(ok, col, xp.full_like(col, -1))


def _take_cols(xp, A, idx):
    """``A[r, idx[r, t]]`` for a (b, m) A and a (b, w) idx of valid columns."""
    return xp.take_along_axis(A, idx, axis=1)


def _gather_square(xp, G, idx, pv, alpha, tau):
    """``H = alpha G + (1 - tau) I`` restricted to the compacted coordinates, per matrix of
    the stack G (b, S, S): ``alpha[r] G[r][idx[r]][:, idx[r]] + (1 - tau) I`` (one gather of
    the b x A x A entries), identity where ``pv`` is False."""
    b, a = idx.shape
    S = G.shape[1]
    base = (_arange(xp, b, G) * (S * S))[:, None, None]
    flat = base + idx[:, :, None] * S + idx[:, None, :]
    GA = xp.reshape(xp.take(xp.reshape(G, (-1,)), xp.reshape(flat, (-1,))), (b, a, a))
    eye = xp.eye(a, dtype=G.dtype, device=_dev(G))[None, :, :]
    HA = alpha[:, None, None] * GA + (1.0 - tau) * eye
    both = pv[:, :, None] & pv[:, None, :]
    return xp.where(both, HA, xp.broadcast_to(eye, (b, a, a)))


def _compact(xp, mask):
    """Positions of the True entries of every row (ascending) as (idx (b, A), valid (b, A)),
    A the largest count (one host sync); pads point at column 0."""
    b, S = mask.shape
    if b == 0:
        return None
    A = int(xp.max(_count(xp, mask)))
    if A == 0:
        return None
    pos = _arange(xp, S, mask)[None, :]
    key = xp.sort(xp.where(mask, pos, pos + S), axis=1)[:, :A]
    pv = key < S
    return xp.where(pv, key, xp.zeros_like(key)), pv


def _expand(xp, vals, mask):
    """Inverse of :func:`_compact`: the compacted (b, A) ``vals`` back in the (b, S) layout
    of ``mask`` (zeros elsewhere)."""
    A = vals.shape[1]
    rank = xp.cumulative_sum(_i64(xp, mask), axis=1) - 1
    rank = xp.clip(rank, 0, A - 1)
    got = xp.take_along_axis(vals, rank, axis=1)
    return xp.where(mask, got, xp.zeros_like(got))


def _chol_rows(xp, H):
    """The Cholesky factors of the stack matrix by matrix, identity where a factorization
    fails, and which succeeded (the slow path, after a batched factorization raised: NumPy
    and array_api_strict raise for the whole stack)."""
    eye = xp.eye(H.shape[1], dtype=H.dtype, device=_dev(H))
    Ls, oks = [], []
    for r in range(H.shape[0]):
        try:
            Ls.append(xp.linalg.cholesky(H[r, ...]))
            oks.append(True)
        except Exception:  # LinAlgError
            Ls.append(eye)
            oks.append(False)
    return xp.stack(Ls, axis=0), xp.asarray(np.asarray(oks, dtype=bool), device=_dev(H))


def _tri_solves(xp, L, r):
    """``L^{-T} L^{-1} r`` for the stack of factors (the standard has no triangular solve:
    two batched solves, which cannot meet a singular matrix since diag(L) > 0; a pivot that
    underflows to zero all the same fails that matrix alone)."""
    Lt = xp.permute_dims(L, (0, 2, 1))
    try:
        y = xp.linalg.solve(Lt, xp.linalg.solve(L, r[:, :, None]))[:, :, 0]
        return y, xp.ones((L.shape[0],), dtype=xp.bool, device=_dev(L))
    except Exception:  # LinAlgError (numpy / array_api_strict)
        ys, oks = [], []
        for i in range(L.shape[0]):
            try:
                z = xp.linalg.solve(L[i, ...], r[i, :, None])
                ys.append(xp.linalg.solve(Lt[i, ...], z)[:, 0])
                oks.append(True)
            except Exception:
                ys.append(xp.zeros_like(r[i, :]))
                oks.append(False)
        return xp.stack(ys, axis=0), xp.asarray(np.asarray(oks, dtype=bool), device=_dev(L))


def _spd_solve(xp, H, r):
    """Solves the stack ``H y = r`` (b, A, A) x (b, A) through Cholesky factors, for the
    matrices that are numerically positive definite (their factorization succeeds: the Rust
    kernel's test); returns ``(y, ok)``, y = 0 where not ok. CuPy does not raise on a failed
    factorization: the factor is checked on the device (finite, positive diagonal,
    ``L L^T = H`` to rounding)."""
    b, a, _ = H.shape
    eye = xp.broadcast_to(xp.eye(a, dtype=H.dtype, device=_dev(H))[None, :, :], H.shape)
    try:
        L = xp.linalg.cholesky(H)
        diag = xp.linalg.diagonal(L)
        diagH = xp.linalg.diagonal(H)
        res = xp.max(xp.abs(L @ xp.permute_dims(L, (0, 2, 1)) - H), axis=(1, 2))
        ok = (
            xp.all(xp.isfinite(L), axis=(1, 2))
            & xp.all(diag > 0, axis=1)
            & (res <= 1e-10 * xp.max(xp.abs(diagH), axis=1))
        )
        L = xp.where(ok[:, None, None], L, eye)
    except Exception:  # numpy / array_api_strict: some matrix of the stack is not PD
        L, ok = _chol_rows(xp, H)
    y, ok2 = _tri_solves(xp, L, r)
    ok = ok & ok2
    return xp.where(ok[:, None], y, xp.zeros_like(y)), ok


def _soft(xp, z, t):
    zero = xp.zeros_like(z)
    return xp.where(z > t, z - t, xp.where(z < -t, z + t, zero))


# ----------------------------------------------------------------------------- subproblem


def _feature_sign(xp, G, bv, valid, c, alpha, tau, xsq):
    """Feature-sign search (Lee et al. 2006) on every row's active set, in lock-step:
    ``min 1/2 c^T H c - alpha b^T c + tau ||c||_1``, ``H = alpha G + (1 - tau) I``, warm
    start ``c``. Returns ``(c, exact)``; rows not exact keep a ``c`` no worse than before
    (the caller's coordinate descent takes over), as in the Rust kernel."""
    B, S = c.shape
    dt = c.dtype
    pos = _arange(xp, S, c)[None, :]
    cap = 4 * _count(xp, valid) + 64
    kkt = 1e-11 * (alpha * xp.max(xp.abs(bv), axis=1) + tau)
    running = xp.ones((B,), dtype=xp.bool, device=_dev(c))
    exact = xp.zeros((B,), dtype=xp.bool, device=_dev(c))
    inf = xp.asarray(math.inf, dtype=dt, device=_dev(c))
    one = xp.ones((), dtype=dt, device=_dev(c))
    it = 0
    ids = None  # the rows still in the working arrays (None: all)
    c_out = exact_out = None
    while True:
        n_run = int(xp.count_nonzero(running))
        if n_run == 0:
            break
        if n_run <= B // 2 and B >= _COMPACT_ROWS:  # drop the finished rows from the lock-step
            keep = xp.nonzero(running)[0]
            if ids is None:
                c_out, exact_out = c, exact
            else:
                c_out = _put_rows(xp, c_out, ids, c)
                exact_out = _put_rows(xp, exact_out, ids, exact)
            ids = keep if ids is None else xp.take(ids, keep)
            G, bv, valid, c, alpha, xsq, kkt, cap, running, exact = (
                xp.take(v, keep, axis=0)
                for v in (G, bv, valid, c, alpha, xsq, kkt, cap, running, exact)
            )
            B = n_run
        a = alpha[:, None]
        act = c != 0
        sgn = xp.sign(c)
        grad = a * ((G @ c[:, :, None])[:, :, 0] - bv)
        res = xp.abs(grad + (1.0 - tau) * c + tau * sgn)
        nz_ok = xp.all(xp.logical_not(act) | (res <= kkt[:, None]), axis=1)
        viol = xp.where(act | xp.logical_not(valid), -one, xp.abs(grad))
        k = xp.argmax(viol, axis=1)  # first of the largest violations
        enter = nz_ok & (xp.take_along_axis(viol, k[:, None], axis=1)[:, 0] > tau + kkt)
        done = running & nz_ok & xp.logical_not(enter)
        exact = exact | done
        running = running & xp.logical_not(done)
        onek = (pos == k[:, None]) & enter[:, None]
        th = xp.where(onek, -xp.sign(grad), sgn)
        act2 = (act | onek) & running[:, None]
        cp = _compact(xp, act2)
        if cp is None:
            break
        idx, pv = cp
        HA = _gather_square(xp, G, idx, pv, alpha, tau)
        zero = xp.zeros((), dtype=dt, device=_dev(c))
        rhs = xp.where(pv, _take_cols(xp, a * bv - tau * th, idx), zero)
        y, pd = _spd_solve(xp, HA, rhs)
        cur = xp.where(pv, _take_cols(xp, c, idx), zero)
        bA = xp.where(pv, _take_cols(xp, bv, idx), zero)
        dA = y - cur
        # line search: t = 1 and every sign change of the segment cur -> y
        bp_ok = pv & (cur != 0) & (xp.sign(y) != xp.sign(cur))
        bp = cur / xp.where(bp_ok, cur - y, xp.ones_like(cur))
        bp_ok = bp_ok & (bp > 0) & (bp < 1)
        cand = xp.concat(
            [xp.ones((B, 1), dtype=dt, device=_dev(c)), xp.where(bp_ok, bp, one)], axis=1
        )
        cval = xp.concat([xp.ones((B, 1), dtype=xp.bool, device=_dev(c)), bp_ok], axis=1)
        V = xp.concat(
            [cur[:, None, :], cur[:, None, :] + cand[:, :, None] * dA[:, None, :]], axis=1
        )
        HV = V @ HA
        f = xp.sum(0.5 * V * HV - (a * bA)[:, None, :] * V + tau * xp.abs(V), axis=2)
        # f = tau |v|_1 + (1 - tau)/2 |v|^2 + alpha/2 |x - X v|^2 - alpha/2 |x|^2 is at least
        # the first two terms minus the last: clamping to that bound keeps a huge v from a
        # nearly singular system (rounding-level curvature) from passing for a descent
        lb = (
            xp.sum(tau * xp.abs(V) + 0.5 * (1.0 - tau) * V * V, axis=2)
            - (0.5 * alpha * xsq)[:, None]
        )
        f = xp.maximum(f, lb)
        f0, f = f[:, 0], xp.where(cval, f[:, 1:], inf)
        best = xp.argmin(f, axis=1)
        t = xp.take_along_axis(cand, best[:, None], axis=1)
        new = cur + t * dA
        new = xp.where(bp_ok & (bp == t), zero, new)
        ok = pd & (xp.min(f, axis=1) < f0)
        upd = running & ok
        c = xp.where(upd[:, None], _expand(xp, new, act2), c)
        # A singular sign-fixed system as a coordinate enters (tau = 1 with more active
        # points than their span): a step along the null direction instead (see _null_step).
        sing = running & enter & xp.logical_not(ok)
        if bool(xp.any(sing)):
            rows = xp.nonzero(sing)[0]
            kA = _take_cols(xp, onek, idx) & pv
            thA = _take_cols(xp, th, idx)
            sub = [xp.take(v, rows, axis=0) for v in (HA, cur, bA, pv, kA)]
            step, nok = _null_step(
                xp, *sub, xp.take(alpha, rows), tau, xp.take(thA, rows, axis=0), xp.take(xsq, rows)
            )
            full = xp.zeros_like(cur)
            full = _put_rows(xp, full, rows, step)
            nok_full = _put_rows(xp, xp.zeros_like(sing), rows, nok)
            c = xp.where(nok_full[:, None], _expand(xp, full, act2), c)
            upd = upd | nok_full
        it += 1
        running = upd & (cap > it)
    if ids is None:
        return c, exact
    return _put_rows(xp, c_out, ids, c), _put_rows(xp, exact_out, ids, exact)


def _null_step(xp, HA, cur, bA, pv, kA, alpha, tau, thA, xsq):
    """The degenerate step of feature-sign search: the sign-fixed matrix ``HA`` of the active
    coordinates (the nonzeros, optimal, plus the entering one, flagged by ``kA``) is
    singular, so along its null vector ``z`` the objective is linear, decreasing when the
    entering coordinate moves along its sign ``thA``; go until the first nonzero coordinate
    reaches 0 (it leaves, the next system is smaller). Returns ``(new, ok)`` (compacted
    layout); ok where the step exists and decreases the objective."""
    _, Z = xp.linalg.eigh(HA)
    z = xp.where(pv, Z[:, :, 0], xp.zeros_like(cur))
    zk = xp.sum(xp.where(kA, z, xp.zeros_like(z)), axis=1)
    thk = xp.sum(xp.where(kA, thA, xp.zeros_like(thA)), axis=1)
    z = z * xp.where(zk * thk > 0, xp.ones_like(zk), -xp.ones_like(zk))[:, None]
    hit = pv & (cur != 0) & (cur * z < 0)
    s = xp.where(hit, -cur / xp.where(hit, z, xp.ones_like(z)), xp.full_like(z, math.inf))
    j = xp.argmin(s, axis=1)
    sstar = xp.min(s, axis=1)
    ok = xp.isfinite(sstar) & (zk != 0)
    sstar = xp.where(ok, sstar, xp.zeros_like(sstar))
    new = cur + sstar[:, None] * z
    new = xp.where(_arange(xp, cur.shape[1], cur)[None, :] == j[:, None], xp.zeros_like(new), new)

    def obj(v):
        hv = (HA @ v[:, :, None])[:, :, 0]
        f = xp.sum(0.5 * v * hv - alpha[:, None] * bA * v + tau * xp.abs(v), axis=1)
        lb = xp.sum(tau * xp.abs(v) + 0.5 * (1.0 - tau) * v * v, axis=1) - 0.5 * alpha * xsq
        return xp.maximum(f, lb)  # as in the line search of _feature_sign

    return new, ok & (obj(new) < obj(cur))


def _cd_sweep(xp, G, bv, diag, valid, c, gc, alpha, tau, tol, rows, only_nonzero):
    """One coordinate-descent sweep over the coordinates of the ``rows`` (the others are left
    as they are); returns ``(c, gc, converged)`` with the Rust kernel's stopping rule."""
    S = c.shape[1]
    zero = xp.zeros_like(alpha)
    maxd, maxc = zero, zero
    pos = _arange(xp, S, c)[None, :]
    for k in range(S):
        ck = c[:, k]
        m = rows & valid[:, k]
        if only_nonzero:
            m = m & (ck != 0)
        g = bv[:, k] - gc[:, k] + diag[:, k] * ck
        den = alpha * diag[:, k] + 1.0 - tau
        new = _soft(xp, alpha * g, tau) / xp.where(m, den, xp.ones_like(den))
        new = xp.where(m, new, ck)
        dl = new - ck
        gc = gc + dl[:, None] * G[:, :, k]
        c = xp.where(pos == k, new[:, None], c)
        maxd = xp.where(m, xp.maximum(maxd, xp.abs(dl)), maxd)
        maxc = xp.where(m, xp.maximum(maxc, xp.abs(new)), maxc)
    return c, gc, maxd <= tol * maxc


def _polish(xp, G, bv, valid, c, alpha, tau, rows):
    """The sign-fixed solve on each row's support, kept where it keeps the signs and meets
    the optimality conditions on the whole active set; returns ``(c, ok)``."""
    B, S = c.shape
    sup = (c != 0) & rows[:, None]
    cp = _compact(xp, sup)
    if cp is None:
        return c, xp.zeros((B,), dtype=xp.bool, device=_dev(c))
    idx, pv = cp
    a = alpha[:, None]
    zero = xp.zeros((), dtype=c.dtype, device=_dev(c))
    rhs = xp.where(pv, _take_cols(xp, a * bv - tau * xp.sign(c), idx), zero)
    yA, pd = _spd_solve(xp, _gather_square(xp, G, idx, pv, alpha, tau), rhs)
    y = _expand(xp, yA, sup)
    signs = xp.all(xp.logical_not(sup) | ((xp.sign(y) == xp.sign(c)) & (y != 0)), axis=1)
    g = bv - (G @ y[:, :, None])[:, :, 0]
    slack = tau * 1e-9 + 1e-12
    zm = valid & (c == 0)
    zok = xp.all(xp.logical_not(zm) | (xp.abs(a * g) <= tau + slack), axis=1)
    ok = rows & xp.any(sup, axis=1) & pd & signs & zok
    return xp.where(ok[:, None], y, c), ok


def _coordinate_descent(xp, G, bv, diag, valid, c, alpha, tau, tol):
    """The Rust kernel's fallback, in lock-step over the rows: full sweeps alternating with
    up to ``POLISH_EVERY`` sweeps over the nonzeros and a polish attempt, until a sweep
    converges, the polish is exact, or ``MAX_SWEEPS``; then a last polish attempt."""
    B = c.shape[0]
    gc = (G @ c[:, :, None])[:, :, 0]
    sweeps = xp.zeros((B,), dtype=xp.int64, device=_dev(c))
    run = xp.ones((B,), dtype=xp.bool, device=_dev(c))
    exact = xp.zeros((B,), dtype=xp.bool, device=_dev(c))
    while True:
        run = run & (sweeps < MAX_SWEEPS)
        if not bool(xp.any(run)):
            break
        sweeps = sweeps + _i64(xp, run)
        c, gc, conv = _cd_sweep(xp, G, bv, diag, valid, c, gc, alpha, tau, tol, run, False)
        inner = run & xp.logical_not(conv)
        go = inner
        for _ in range(POLISH_EVERY):
            if not bool(xp.any(go)):
                break
            sweeps = sweeps + _i64(xp, go)
            c, gc, cv = _cd_sweep(xp, G, bv, diag, valid, c, gc, alpha, tau, tol, go, True)
            go = go & xp.logical_not(cv)
        c, ok = _polish(xp, G, bv, valid, c, alpha, tau, inner)
        exact = exact | ok
        run = inner & xp.logical_not(ok)
        gc = (G @ c[:, :, None])[:, :, 0]
    c, _ = _polish(xp, G, bv, valid, c, alpha, tau, xp.logical_not(exact))
    return c


def _solve_rows(xp, X64, sq, T, c, xj, alpha, tau, tol):
    """The elastic net of every row on its active set ``T`` (padded with -1), warm start
    ``c``: returns the new ``c`` and the oracle points ``alpha (x_j - X_T c)`` (float64)."""
    B, S = T.shape
    d = X64.shape[1]
    valid = T >= 0
    Tc = xp.where(valid, T, xp.zeros_like(T))
    P = xp.reshape(xp.take(X64, xp.reshape(Tc, (-1,)), axis=0), (B, S, d))
    P = xp.where(valid[:, :, None], P, xp.zeros_like(P))
    G = P @ xp.permute_dims(P, (0, 2, 1))
    bv = (P @ xj[:, :, None])[:, :, 0]
    c = xp.where(valid, c, xp.zeros_like(c))
    if _FORCE_CD:
        exact = xp.zeros((B,), dtype=xp.bool, device=_dev(c))
    else:
        c, exact = _feature_sign(xp, G, bv, valid, c, alpha, tau, xp.sum(xj * xj, axis=1))
    if not bool(xp.all(exact)):
        rows = xp.nonzero(xp.logical_not(exact))[0]
        diag = xp.where(valid, xp.take(sq, Tc), xp.zeros_like(c))
        sub = [xp.take(a, rows, axis=0) for a in (G, bv, diag, valid, c)]
        cr = _coordinate_descent(xp, *sub, xp.take(alpha, rows), tau, tol)
        c = _put_rows(xp, c, rows, cr)
    r = xj - (c[:, None, :] @ P)[:, 0, :]
    return c, alpha[:, None] * r


def _solve_chunked(xp, X64, sq, T, c, xj, alpha, tau, tol):
    """:func:`_solve_rows` in chunks of rows within the ``_SUB_BYTES`` budget."""
    B, S = T.shape
    d = X64.shape[1]
    per_row = 8 * (S * d + 6 * S * S + 4 * S)
    step = max(1, _SUB_BYTES // max(per_row, 1))
    if step >= B:
        return _solve_rows(xp, X64, sq, T, c, xj, alpha, tau, tol)
    cs, ds = [], []
    for r0 in range(0, B, step):
        sl = slice(r0, min(B, r0 + step))
        cc, dd = _solve_rows(xp, X64, sq, T[sl, :], c[sl, :], xj[sl, :], alpha[sl], tau, tol)
        cs.append(cc)
        ds.append(dd)
    return xp.concat(cs, axis=0), xp.concat(ds, axis=0)


# ----------------------------------------------------------------------------- ORGEN


def _coherence(xp, Xn, XT, r0, b):
    """The block's absolute coherences with all points (self set to 0) and mu (float64)."""
    C = xp.abs(Xn[r0 : r0 + b, :] @ XT)
    C = _zero_entries(xp, C, (_arange(xp, b, Xn) + r0)[:, None], fill=0, all_valid=True)
    return C, _f64(xp, xp.max(C, axis=1))


def _first_copies(xp, Xn, X64, zmask):
    """For every point, the first point whose unit-norm row equals its own (itself when none;
    zero rows are their own), as int64 in X's namespace; None when there are no copies.

    As the Rust kernel (``first_copies`` in ``ensc.rs``): identical points pose the same elastic
    net up to swapping their two indices, so only the first of a group is solved. The rows are
    hashed by one product with a fixed random vector and sorted stably by the hash; only
    neighbours with equal hashes are compared entry by entry (a hash that rounds differently
    for two copies only leaves them unmerged). One host sync (the number of candidates)."""
    n, d = Xn.shape
    dev = _dev(Xn)
    r = xp.asarray(np.random.default_rng(0x5EED).standard_normal(d), device=dev)
    h = X64 @ r
    order = xp.argsort(h, stable=True)
    hs = xp.take(h, order)
    cand = xp.nonzero(hs[1:] == hs[:-1])[0]
    if int(cand.shape[0]) == 0:
        return None
    a, b = xp.take(order, cand), xp.take(order, cand + 1)
    same = xp.all(xp.take(Xn, a, axis=0) == xp.take(Xn, b, axis=0), axis=1)
    same = same & xp.logical_not(xp.take(zmask, a))
    # link[p]: sorted position p continues the run of p - 1 (same row); a run's first
    # position holds its smallest index (stable sort, equal hashes)
    link = xp.zeros((n,), dtype=xp.bool, device=dev)
    link = _put_rows(xp, link, cand + 1, same)
    if not bool(xp.any(link)):
        return None
    start = xp.logical_not(link)
    run = xp.cumulative_sum(xp.astype(start, xp.int64)) - 1
    starts = xp.nonzero(start)[0]
    first_sorted = xp.take(order, xp.take(starts, run))
    return xp.astype(xp.take(first_sorted, xp.argsort(order)), xp.int64)


def _copied_rows(xp, sel, val, first):
    """The rows of the copies (``first[j] != j``, left empty by the solver): their first
    point's row with the indices ``j`` and ``first[j]`` swapped."""
    n = sel.shape[0]
    ar = _arange(xp, n, sel)
    copy = (first != ar)[:, None]
    src = xp.take(sel, first, axis=0)
    mapped = xp.where(src == ar[:, None], first[:, None], src)
    return xp.where(copy, mapped, sel), xp.where(copy, xp.take(val, first, axis=0), val)


def _orgen_block(xp, Xn, X64, sq, XT, r0, b, cfg, first=None):
    """ORGEN for the points r0 .. r0+b: ((b, w) columns with -1 pads, (b, w) float64
    coefficients, rounds). Copies of an earlier point (``first``, see
    :func:`_first_copies`) are not solved: their rows come back empty."""
    n, d = Xn.shape
    gamma, tau, n_nonzero, ss0, max_iter, tol, eps = cfg
    dev = _dev(Xn)
    C, mu = _coherence(xp, Xn, XT, r0, b)
    k0 = _full(xp, (b,), ss0, xp.int64, Xn)
    zero_f = xp.zeros((b,), dtype=xp.float64, device=dev)
    T = _mask_to_padded(xp, _select_top(xp, C, k0, zero_f))
    del C
    c = xp.zeros(T.shape, dtype=xp.float64, device=dev)
    pos_mu = mu > 0
    alpha = xp.where(pos_mu, gamma * tau / xp.where(pos_mu, mu, xp.ones_like(mu)), zero_f)
    ss = k0
    done = xp.logical_not(pos_mu)
    if first is not None:
        done = done | (first[r0 : r0 + b] != _arange(xp, b, Xn) + r0)
    xj = X64[r0 : r0 + b, :]
    selfcol = _arange(xp, b, Xn) + r0
    slack_rel = 2.0 * math.sqrt(d) * eps
    rounds = 0
    for rnd in range(max_iter):
        run = xp.nonzero(xp.logical_not(done))[0]
        na = int(run.shape[0])
        rounds = rnd + 1
        if na == 0:
            break
        Tr = xp.take(T, run, axis=0)
        cr, delta = _solve_chunked(
            xp,
            X64,
            sq,
            Tr,
            xp.take(c, run, axis=0),
            xp.take(xj, run, axis=0),
            xp.take(alpha, run),
            tau,
            tol,
        )
        c = _put_rows(xp, c, run, cr)
        if rnd + 1 == max_iter:
            break
        # support growth, room for violators, the oracle test
        nact = _count(xp, cr != 0)
        ssr = xp.take(ss, run)
        grow = _f64(xp, nact) > 0.8 * _f64(xp, ssr)
        grown = _i64(xp, xp.floor(_f64(xp, xp.maximum(nact, ssr)) * 1.1 + 0.5))
        ssr = xp.where(grow, xp.minimum(grown, xp.full_like(grown, n - 1)), ssr)
        ss = _put_rows(xp, ss, run, ssr)
        room = xp.maximum(ssr - nact, xp.ones_like(ssr))
        dn = xp.sqrt(xp.sum(delta * delta, axis=1))
        floor = tau * (1.0 + 1e-10) + slack_rel * dn
        key = xp.abs(_as(xp, delta, Xn.dtype) @ XT)
        # the active set's -1 pads point at the row's own column (zeroed all the same), so
        # every column is valid: one scatter, no boolean mask (two host syncs on CuPy)
        own = xp.take(selfcol, run)[:, None]
        key = _zero_entries(
            xp, key, xp.concat([own, xp.where(Tr >= 0, Tr, own)], axis=1), all_valid=True
        )
        added = _mask_to_padded(xp, _select_top(xp, key, room, floor))
        del key
        has = xp.any(added >= 0, axis=1)
        done = _put_rows(xp, done, run, xp.logical_not(has))
        # next active set: nonzeros, the violators, then former zero members while room
        valid = Tr >= 0
        nz = valid & (cr != 0)
        zm = valid & (cr == 0)
        cnt = _count(xp, nz) + _count(xp, added >= 0)
        room2 = xp.maximum(ssr - cnt, xp.zeros_like(cnt))
        keepz = zm & (xp.cumulative_sum(_i64(xp, zm), axis=1) <= room2[:, None])
        keep = nz | keepz
        big = xp.asarray(n, dtype=xp.int64, device=dev)
        cat = xp.concat([xp.where(keep, Tr, big), xp.where(added >= 0, added, big)], axis=1)
        val = xp.concat(
            [
                xp.where(keep, cr, xp.zeros_like(cr)),
                xp.zeros(added.shape, dtype=xp.float64, device=dev),
            ],
            axis=1,
        )
        order = xp.argsort(cat, axis=1, stable=True)
        cat = xp.take_along_axis(cat, order, axis=1)
        val = xp.take_along_axis(val, order, axis=1)
        cat = xp.where(
            has[:, None], cat, xp.concat([xp.where(valid, Tr, big), xp.full_like(added, n)], axis=1)
        )
        val = xp.where(
            has[:, None],
            val,
            xp.concat([cr, xp.zeros(added.shape, dtype=xp.float64, device=dev)], axis=1),
        )
        # widths: the old rows (not running) and the new ones, padded to the widest
        w_new = int(xp.max(_count(xp, cat < big)))
        w = max(w_new, int(T.shape[1]))
        cat, val = cat[:, :w_new], val[:, :w_new]
        T, c = _pad_cols(xp, T, w, -1), _pad_cols(xp, c, w, 0)
        cat = _pad_cols(xp, xp.where(cat < big, cat, xp.full_like(cat, -1)), w, -1)
        T = _put_rows(xp, T, run, cat)
        c = _put_rows(xp, c, run, _pad_cols(xp, val, w, 0))
    # each row keeps its n_nonzero largest |c| (ties: smallest index), zeros dropped
    key = xp.where(T >= 0, xp.abs(c), xp.zeros_like(c))
    keep = _select_top(xp, key, _full(xp, (b,), n_nonzero, xp.int64, Xn), zero_f)
    sel = xp.where(keep, T, xp.full_like(T, -1))
    return sel, xp.where(keep, c, xp.zeros_like(c)), rounds


def _pad_cols(xp, A, w, fill):
    if A.shape[1] >= w:
        return A[:, :w]
    pad = xp.full((A.shape[0], w - A.shape[1]), fill, dtype=A.dtype, device=_dev(A))
    return xp.concat([A, pad], axis=1)


# ----------------------------------------------------------------------------- tau = 0


def _ridge_block(xp, Xn, X64, sq, XT, lam, V, r0, b, gamma, k, zero=None):
    """Closed-form ridge rows of the points r0 .. r0+b, each keeping its ``k`` largest
    ``|c|``: Sherman-Morrison on the eigendecomposition of ``X^T X`` (``V`` is ``D x D``),
    or, when ``zero`` (the zero-point mask) is given, ``c_i = -Z_ij / Z_jj`` from that of
    ``X X^T`` (``V`` is ``N x N``, wide data, :func:`lowdim._xp_cluster.dual_ridge_block`)."""
    _, mu = _coherence(xp, Xn, XT, r0, b)
    pos = mu > 0
    lamb = xp.where(pos, mu / gamma, xp.ones_like(mu))
    if zero is not None:
        C, ok = dual_ridge_block(xp, lam, V, zero, r0, b, lamb, pos)
        key = _zero_entries(
            xp, xp.abs(C), (_arange(xp, b, Xn) + r0)[:, None], fill=0, all_valid=True
        )
        zero_f = xp.zeros((b,), dtype=xp.float64, device=_dev(Xn))
        sel = _select_top(xp, key, _full(xp, (b,), k, xp.int64, Xn), zero_f)
        sel = _mask_to_padded(xp, sel)
        valid = sel >= 0
        val = xp.take_along_axis(C, xp.where(valid, sel, xp.zeros_like(sel)), axis=1)
        return sel, xp.where(valid, val, xp.zeros_like(val))
    x = X64[r0 : r0 + b, :]
    y = x @ V
    u = y / (lam[None, :] + lamb[:, None])
    den = sq[r0 : r0 + b] - xp.sum(y * u, axis=1)
    ok = pos & (den > 0)
    w = (u / xp.where(ok, den, xp.ones_like(den))[:, None]) @ xp.permute_dims(V, (1, 0))
    w = xp.where(ok[:, None], w, xp.zeros_like(w))
    key = xp.abs(_as(xp, w, Xn.dtype) @ XT)
    key = _zero_entries(xp, key, (_arange(xp, b, Xn) + r0)[:, None], fill=0, all_valid=True)
    zero_f = xp.zeros((b,), dtype=xp.float64, device=_dev(Xn))
    sel = _mask_to_padded(xp, _select_top(xp, key, _full(xp, (b,), k, xp.int64, Xn), zero_f))
    del key
    # the kept values recomputed in float64 (the GEMM ran in the input's dtype)
    valid = sel >= 0
    sc = xp.where(valid, sel, xp.zeros_like(sel))
    d = X64.shape[1]
    vals = []
    step = max(1, _SUB_BYTES // max(8 * d * max(sel.shape[1], 1), 1))
    for s0 in range(0, b if sel.shape[1] else 0, step):
        s1 = min(b, s0 + step)
        P = xp.reshape(xp.take(X64, xp.reshape(sc[s0:s1, :], (-1,)), axis=0), (s1 - s0, -1, d))
        vals.append((P @ w[s0:s1, :, None])[:, :, 0])
    val = (
        xp.concat(vals, axis=0) if vals else xp.zeros(sel.shape, dtype=xp.float64, device=_dev(Xn))
    )
    val = xp.where(valid, val, xp.zeros_like(val))
    return sel, val


# ----------------------------------------------------------------------------- entry point


def ensc(X, gamma, tau, n_nonzero, support_size, max_iter, tol, block=None, progress=None):
    """EnSC representation of every row of X over the other rows, in X's namespace.

    Parameters as ``lowdim._lowdim.ensc`` (validated by the caller): ``gamma > 0``,
    ``tau`` in [0, 1], ``n_nonzero, support_size, max_iter >= 1``, ``tol > 0``; ``block``
    rows per block (default from the scratch budget), ``progress(done, total)`` after each
    block. Returns ``(indptr, indices, data, n_iter)``: the CSR pieces of the ``N x N``
    coefficient matrix in X's namespace (int64, int64, X's dtype; indices ascending in each
    row, exact zeros dropped) and the most ORGEN rounds any point needed (0 for ``tau = 0``,
    as the Rust kernel)."""
    xp = namespace(X)
    n, d = X.shape
    dt = X.dtype
    Xn, zmask = normalize_rows(xp, X)
    X64 = _f64(xp, Xn)
    sq = xp.sum(X64 * X64, axis=1)
    XT = xp.permute_dims(Xn, (1, 0))
    eps = float(np.finfo(np.float32 if dt == xp.float32 else np.float64).eps)
    block = _block_rows(n, block)
    n_blocks = max(1, math.ceil(n / block))
    sels, vals = [], []
    n_iter = 0
    if tau == 0.0:
        # the smaller Gram matrix, as the Rust kernel: X X^T (N x N) for wide data
        zero = zmask if n < d else None
        if n < d:
            lam, V = dual_ridge_eig(xp, X64)
        else:
            lam, V = xp.linalg.eigh(X64.T @ X64)
            lam = xp.maximum(lam, xp.zeros_like(lam))
        k = min(n_nonzero, n - 1)
    else:
        cfg = (gamma, tau, n_nonzero, min(support_size, n - 1), max_iter, tol, eps)
        first = _first_copies(xp, Xn, X64, zmask)
    for bi, r0 in enumerate(range(0, n, block)):
        b = min(block, n - r0)
        if tau == 0.0:
            sel, val = _ridge_block(xp, Xn, X64, sq, XT, lam, V, r0, b, gamma, k, zero)
        else:
            sel, val, rounds = _orgen_block(xp, Xn, X64, sq, XT, r0, b, cfg, first)
            n_iter = max(n_iter, rounds)
        sels.append(sel)
        vals.append(val)
        if progress is not None:
            progress(bi + 1, n_blocks)
    w = max(int(s.shape[1]) for s in sels)
    sel = xp.concat([_pad_cols(xp, s, w, -1) for s in sels], axis=0)
    val = xp.concat([_pad_cols(xp, v, w, 0) for v in vals], axis=0)
    if tau != 0.0 and first is not None:
        sel, val = _copied_rows(xp, sel, val, first)
    return (*_to_csr_pieces(xp, sel, val, n, dt), n_iter)
