"""Randomized SVD: fixed rank or adaptive rank from an error tolerance, and an a-posteriori
estimate of the spectral-norm error."""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from . import _lowdim
from ._progress import resolve as _resolve_progress
from ._validation import (
    Operand,
    c_aligned,
    check_bool,
    check_int,
    check_matrix,
    check_rsvd_tol,
    check_seed,
)
from ._xp import is_xp_array

__all__ = ["SVDResult", "rsvd", "svd_error"]


class _SVDFields(NamedTuple):
    U: np.ndarray
    S: np.ndarray
    Vh: np.ndarray


class SVDResult(_SVDFields):
    """``A ~= U @ np.diag(S) @ Vh``, with numpy's field names (unpacks as ``U, S, Vh``).

    Attributes
    ----------
    U : ndarray (m, k)
        Left singular vectors, orthonormal columns.
    S : ndarray (k,)
        Singular values, descending.
    Vh : ndarray (k, n)
        Right singular vectors, orthonormal rows.
    rel_error : float or None
        In ``tol`` mode, the relative Frobenius error ``||A - U S Vh||_F / ||A||_F``
        certified by the adaptive algorithm; None in ``k`` mode and for a result built by
        hand (``SVDResult(U, S, Vh)``).
    solver : str or None
        The algorithm used: ``"randomized"``, ``"gram"``, ``"exact"`` or ``"randqb"``; None
        for a result built by hand.

    ``rel_error`` and ``solver`` are attributes, not fields (the result unpacks as three
    arrays): keywords of the constructor, kept by ``_replace``, ``copy`` and ``pickle``.
    """

    # class-level defaults: a result that never had them set still has both attributes
    rel_error: float | None = None
    solver: str | None = None

    def __new__(cls, U, S, Vh, rel_error=None, solver=None):
        self = super().__new__(cls, U, S, Vh)
        if rel_error is not None:
            self.rel_error = rel_error
        if solver is not None:
            self.solver = solver
        return self

    def _replace(self, /, **kwargs):
        """A copy with the given fields replaced; ``rel_error`` and ``solver`` are kept (or
        replaced when given as keywords)."""
        attrs = {"rel_error": self.rel_error, "solver": self.solver}
        for name in attrs:
            if name in kwargs:
                attrs[name] = kwargs.pop(name)
        return type(self)(*super()._replace(**kwargs), **attrs)


def _is_dask(A) -> bool:
    """Whether A is a dask array, without importing dask (a dask array implies it is loaded)."""
    mod = sys.modules.get("dask.array")
    return mod is not None and isinstance(A, mod.Array)


def _flip_signs(U: np.ndarray, Vh: np.ndarray, u_based: bool = True) -> None:
    """scikit-learn's svd_flip, in place: the largest-magnitude entry of each column of U
    (u_based) or of each row of Vh is made positive."""
    if U.shape[1] == 0:
        return
    if u_based:
        rows = np.argmax(np.abs(U), axis=0)
        signs = np.sign(U[rows, np.arange(U.shape[1])])
    else:
        cols = np.argmax(np.abs(Vh), axis=1)
        signs = np.sign(Vh[np.arange(Vh.shape[0]), cols])
    signs[signs == 0] = 1
    U *= signs
    Vh *= signs[:, None]


def _check_n_iter(n_iter) -> int | None:
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"n_iter must be 'auto' or an int >= 0, got {n_iter!r}")
        return None
    return check_int(n_iter, "n_iter", 0)


def _check_normalizer(name) -> str:
    if name not in ("auto", "none", "LU", "QR"):
        raise ValueError(
            f"power_iteration_normalizer must be one of 'auto', 'none', 'LU', 'QR', got {name!r}"
        )
    return name


def _check_power_dtype(power_iteration_dtype) -> bool:
    """Whether the power iterations run in float32 (``power_iteration_dtype``)."""
    if power_iteration_dtype is None:
        return False
    try:
        dt = np.dtype(power_iteration_dtype)
    except TypeError:
        dt = np.dtype(object)  # rejected below (np.dtype(x) == None holds for float64)
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise ValueError(
            "power_iteration_dtype must be None, 'float32' or 'float64', "
            f"got {power_iteration_dtype!r}"
        )
    return dt == np.float32


def _renamed(e: Exception, names) -> Exception:
    """An error of rsvd's validation or kernels that names rsvd's own operand or parameter
    (``"A contains NaN or infinity ..."``, ``"n_iter=-1 is out of range ..."``, ``"seed must
    be ..."``), naming the caller's instead: ``names`` maps rsvd's names to the caller's (a
    str: the caller's name for ``A``), e.g. the estimators' ``{"A": "X", "n_iter":
    "iterated_power", "seed": "random_state", "solver": "svd_solver"}``. The messages start
    with the name they are about (followed by a space or ``=``); other errors are returned
    unchanged, and a renamed one keeps its type (ValueError, TypeError, LinAlgError)."""
    if isinstance(names, str):
        names = {"A": names}
    msg = str(e)
    for old, new in names.items():
        if old != new and msg.startswith(old) and msg[len(old) : len(old) + 1] in (" ", "="):
            msg = new + msg[len(old) :]
            if old == "A":
                msg = msg.replace(" with A ", f" with {new} ")
            break
    else:
        return e
    try:
        return type(e)(msg)
    except Exception:  # pragma: no cover - an exception type with another signature
        return ValueError(msg)


def _run_rsvd(op: Operand, k, tol, *, name="A", **kwargs) -> SVDResult:
    """Validated arguments -> Rust kernel -> SVDResult (shared by rsvd, PCA, TruncatedSVD).
    ``name``: the caller's name for the matrix, or a dict from rsvd's names to the caller's
    (see :func:`_renamed`), used in every message of the validation and the kernel."""
    try:
        return _rsvd_numpy(op, k, tol, **kwargs)
    except (ValueError, TypeError) as e:
        renamed = _renamed(e, name)
        if renamed is e:
            raise
        raise renamed from None


def _rsvd_numpy(
    op: Operand,
    k,
    tol,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    seed=None,
    solver="auto",
    block_size=16,
    center=None,
    progress=False,
    power_iteration_dtype=None,
) -> SVDResult:
    """:func:`_run_rsvd` without the renaming of its errors."""
    m, n = op.shape
    if (k is None) == (tol is None):
        raise ValueError("give exactly one of k (a fixed rank) and tol (an error tolerance)")
    if k is not None:
        k = check_int(k, "k", 1)
        if k > min(m, n):
            raise ValueError(
                f"k={k} is larger than min(m, n) = {min(m, n)} for a matrix of shape {op.shape}"
            )
    else:
        tol = check_rsvd_tol(tol, op.dtype == np.float32, stacklevel=5)
    if solver not in ("auto", "randomized", "gram"):
        raise ValueError(f"solver must be 'auto', 'randomized' or 'gram', got {solver!r}")
    if solver == "gram" and op.sparse:
        raise ValueError("solver='gram' needs a dense matrix")
    n_oversamples = check_int(n_oversamples, "n_oversamples", 0)
    block_size = check_int(block_size, "block_size", 1)
    n_iter = _check_n_iter(n_iter)
    normalizer = _check_normalizer(power_iteration_normalizer)
    power_f32 = _check_power_dtype(power_iteration_dtype)
    seed = check_seed(seed)
    if center is not None:
        center = np.ascontiguousarray(center, dtype=op.dtype)
    callback, bar = _resolve_progress(progress, "rsvd")
    try:
        U, S, Vh, rel_error, used = _lowdim.rsvd(
            op.payload,
            k,
            tol,
            n_oversamples,
            n_iter,
            normalizer,
            seed,
            solver,
            block_size,
            center,
            callback,
            power_f32,
        )
    finally:
        if bar is not None:
            bar.close()
    if op.transposed:
        # payload held A^T = U' S Vh'  =>  A = Vh'^T S U'^T. The kernel's Vh' is C-ordered
        # and its U' Fortran-ordered, so the transposes are already a Fortran-ordered U and a
        # C-ordered Vh: views of the fresh arrays, no copy
        U, Vh = Vh.T, U.T
        _flip_signs(U, Vh)
    return SVDResult(U, S, Vh, rel_error=rel_error, solver=used)


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
    progress=False,
    compute=False,
    power_iteration_dtype=None,
) -> SVDResult:
    """Randomized truncated SVD, ``A ~= U @ diag(S) @ Vh``.

    Parameters
    ----------
    A : ndarray (m, n) or scipy.sparse matrix/array
        Dense input of any strides and memory order (never copied unless its dtype must
        change), or a sparse CSR/CSC/COO matrix (never densified). float32 input is computed
        and returned in float32; other real dtypes in float64.
    k : int, optional
        Target rank, ``1 <= k <= min(m, n)``. Give exactly one of ``k`` and ``tol``.
    tol : float, optional
        Relative Frobenius error target in (0, 1): the result has the smallest rank found
        with ``||A - U S Vh||_F <= tol * ||A||_F`` (adaptive blocked randQB with the error
        indicator of Yu, Gu & Li 2018). The achieved error is ``result.rel_error``. The
        indicator is reliable for tol well above sqrt(machine epsilon) (1.5e-8 in float64,
        3.5e-4 in float32); below that the rank may come out larger than needed, and below
        sqrt(32 eps) (8.4e-8 / 2.0e-3) it grows to min(m, n), with a RuntimeWarning.
    n_oversamples : int, default 10
        Extra sketch columns beyond ``k`` (ignored in tol mode).
    n_iter : int or "auto", default "auto"
        Power iterations; "auto" is scikit-learn's rule (7 if ``k < 0.1 min(m, n)`` else 4;
        4 in tol mode).
    power_iteration_normalizer : {"auto", "none", "LU", "QR"}, default "auto"
        Re-normalization between passes: "auto" is "none" for ``n_iter <= 2``, else the
        fastest accurate scheme: fused ``A^T (A X)`` passes re-orthonormalized by QR for dense
        float64 input, SVQB (a float64 Gram + eigh) otherwise; both resolve directions down
        to ``sqrt(eps_f64) sigma_1 ~ 1.5e-8 sigma_1``. "LU" and "QR" run the split passes
        with that factorization.
    seed : None, int, numpy Generator or RandomState
        The Gaussian test matrix is a function of the seed only (counter-based generator):
        the same seed gives bitwise identical results at a given number of threads, and
        results equal up to rounding at any other (the products sum per-thread row blocks).
    solver : {"auto", "randomized", "gram"}, default "auto"
        "auto" uses Gram + eigh for dense, tall-skinny problems when it is cheaper than the
        randomized passes (``n^2 + 2nk + 9n^3/m < 4(q+1)(k+p) n``, with n the small side and
        n <= 4096) and accurate enough (the Gram is accumulated in float64 and the k-th
        eigenvalue must exceed 1e-10 times the largest; otherwise it falls back), and an exact
        SVD when the sketch would cover every column anyway.
    block_size : int, default 16
        First block size of the adaptive (tol) mode; later blocks double up to 512.
    progress : bool or callable, default False
        True: a progress bar on stderr when it is a terminal. A callable is called as
        ``progress(done, total)`` between steps: after each power iteration (``total`` =
        iterations + 1) or, in tol mode, after each block (``done`` = rank so far, ``total``
        = the largest rank tried; ``done == total`` at the end). An exception it raises stops
        the computation and propagates. Ctrl-C stops the computation at its next step with
        ``KeyboardInterrupt`` whatever ``progress`` is. Not used for dask input (use dask's
        own diagnostics, e.g. ``distributed.progress``).
    compute : bool, default False
        Dask input only: return NumPy arrays instead of lazy dask arrays. A
        ``dask.array.Array`` (chunked by rows, columns or both; dense or scipy.sparse chunks)
        runs as blockwise tasks on the active scheduler (e.g. a ``distributed.Client``), with
        the same test matrix as here, so the same ``seed`` gives the same result up to
        rounding as the in-memory call with the same ``solver``. On dask input "auto" takes
        the in-memory Gram rule for fixed ``k`` when the chunks hold whole rows of the tall
        side (the Gram matrix is then computed at call time, one pass, to check its k-th
        eigenvalue; the rest stays lazy), and otherwise the randomized solver; the in-memory
        "auto" may also pick the exact solver, whose result differs from the randomized one
        by the randomized approximation. See "Running on a cluster" in the README.
    power_iteration_dtype : None or "float32", default None
        Dense float64 input, fixed ``k``, randomized solver with the "auto" normalizer (in
        memory or dask): "float32" runs the power iterations in float32 (each block of A is
        scaled by a power of two and rounded to float32 in cache, no float32 copy of A),
        about 1.8x faster per pass; the sketch, the final projection ``Q^T A`` and the small
        SVD stay in float64, so U, S, Vh are float64 and exactly orthonormal. The iterations
        then resolve directions only down to about ``sqrt(eps_f32) sigma_1 ~ 3.5e-4
        sigma_1``: use it when the error you expect (``sigma_{k+1} / sigma_1``) is well above
        that, as for PCA of noisy data. None (the input's precision) and "float64" run them in
        float64; other inputs (float32, sparse, tol mode, the Gram or exact solver) ignore it.
        Not available on the array-API (GPU) path.

    Returns
    -------
    SVDResult
        ``(U, S, Vh)`` (U Fortran-ordered, Vh C-ordered, both fresh arrays) with S
        descending and deterministic signs (the largest-magnitude entry
        of each column of U is positive, scikit-learn's ``svd_flip``), plus ``rel_error`` and
        ``solver`` attributes.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 100))
    >>> U, S, Vh = lowdim.rsvd(A, 5, seed=0)
    >>> bool(np.allclose(U @ np.diag(S) @ Vh, A))
    True
    >>> res = lowdim.rsvd(A, tol=1e-6, seed=0)
    >>> res.S.shape, res.rel_error < 1e-6
    ((5,), True)
    >>> steps = []
    >>> _ = lowdim.rsvd(A, 3, n_iter=2, solver="randomized", progress=lambda d, t: steps.append(d))
    >>> steps
    [0, 1, 2, 3]
    """
    compute = check_bool(compute, "compute")
    if _is_dask(A) or is_xp_array(A):
        # the same algorithm on other arrays: blockwise dask tasks, or the array-API (GPU) path
        if is_xp_array(A) and _check_power_dtype(power_iteration_dtype):
            raise NotImplementedError(
                "power_iteration_dtype='float32' is not implemented on the array-API (GPU) "
                "path; pass a float32 array to compute in float32"
            )
        kw = dict(
            tol=tol,
            n_oversamples=n_oversamples,
            n_iter=n_iter,
            power_iteration_normalizer=power_iteration_normalizer,
            seed=seed,
            solver=solver,
            block_size=block_size,
        )
        if _is_dask(A):
            from . import _dask

            return _dask.rsvd(
                A, k, compute=compute, power_iteration_dtype=power_iteration_dtype, **kw
            )
        from . import _xp

        callback, bar = _resolve_progress(progress, "rsvd")
        try:
            return _xp.rsvd(A, k, progress=callback, **kw)
        finally:
            if bar is not None:
                bar.close()
    op = check_matrix(A)
    return _run_rsvd(
        op,
        k,
        tol,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        power_iteration_normalizer=power_iteration_normalizer,
        seed=seed,
        solver=solver,
        block_size=block_size,
        progress=progress,
        power_iteration_dtype=power_iteration_dtype,
    )


def svd_error(A, U, S, Vh, *, n_iter=20, seed=None) -> float:
    """Estimate ``||A - U @ diag(S) @ Vh||_2`` without forming the residual.

    Power iteration on the residual operator from a seeded Gaussian start (fbpca's
    ``diffsnorm``): each iteration is one product with ``A`` and one with ``A.T`` plus
    low-rank corrections. The estimate is a lower bound that converges to the norm; 20
    iterations usually give two or more correct digits.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> A = np.diag([5.0, 3.0, 1.0, 0.5])
    >>> U, S, Vh = lowdim.rsvd(A, 2, seed=0)
    >>> round(lowdim.svd_error(A, U, S, Vh, seed=0), 6)
    1.0
    """
    if any(is_xp_array(a) for a in (A, U, S, Vh)):
        from . import _xp

        _xp.on_xp_path("svd_error", {"A": A, "U": U, "S": S, "Vh": Vh})
        return _xp.svd_error(A, U, S, Vh, n_iter=n_iter, seed=seed)
    op = check_matrix(A)
    m, n = op.shape
    U = np.asarray(U)
    S = np.asarray(S)
    Vh = np.asarray(Vh)
    if U.ndim != 2 or S.ndim != 1 or Vh.ndim != 2:
        raise ValueError("U and Vh must be 2-D and S 1-D")
    k = S.shape[0]
    if U.shape != (m, k) or Vh.shape != (k, n):
        raise ValueError(
            f"shapes do not match: A is {op.shape}, U is {U.shape}, S is {S.shape}, "
            f"Vh is {Vh.shape}; expected U ({m}, {k}) and Vh ({k}, {n})"
        )
    n_iter = check_int(n_iter, "n_iter", 1)
    seed = check_seed(seed)
    # aligned too: the bindings refuse a misaligned S as "not contiguous"
    U, S, Vh = (c_aligned(x, op.dtype) for x in (U, S, Vh))
    for x, name in ((U, "U"), (S, "S"), (Vh, "Vh")):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinity")
    if op.transposed:
        U, Vh = np.ascontiguousarray(Vh.T), np.ascontiguousarray(U.T)
    return float(_lowdim.svd_error(op.payload, U, S, Vh, n_iter, seed))
