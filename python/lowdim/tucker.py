"""Tucker decomposition (truncated HOSVD, ST-HOSVD, HOOI), n-mode products and Tucker
reconstruction, with the heavy work in Rust on strided views of the tensor (no unfoldings)."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from . import _lowdim
from ._progress import resolve as _resolve_progress
from ._validation import (
    SAFE_F32,
    SAFE_F64,
    _native,
    check_bool,
    check_int,
    check_seed,
    check_tol,
    pow2_scale,
    result_dtype,
)
from .svd import _is_dask


def warn_tol_floor(tol: float, nd: int, single: bool) -> None:
    """Warn when a Tucker ``tol`` is at or below the slack of ``8 nd eps`` that the kernels
    keep for the rounding of the reconstruction: no rank meets it, so every mode keeps its
    full rank (shared by the in-memory and Dask paths)."""
    floor = 8.0 * nd * float(np.finfo(np.float32 if single else np.float64).eps)
    if tol <= floor:
        warnings.warn(
            f"tol={tol:g} is at or below the rounding of a {nd}-way "
            f"{'float32' if single else 'float64'} reconstruction (about {floor:.1e}): the "
            "ranks are the full ones" + ("; pass float64 data for a smaller tol" if single else ""),
            RuntimeWarning,
            stacklevel=3,
        )


def xp_ns(X):
    """The array namespace of an array-API array."""
    return X.__array_namespace__()


def _xp_path(what: str, arrays: dict) -> bool:
    """``_xp.on_xp_path`` (imports nothing unless an array-API array is passed)."""
    if not any(_is_xp(a) for a in arrays.values()):
        return False
    from ._xp import on_xp_path

    return on_xp_path(what, arrays)


def _same_side(what: str, core, factors, out=None) -> bool:
    """Whether a core and its factors take the array-API path (a mix is a TypeError)."""
    arrays = {"core": core, **{f"factors[{i}]": f for i, f in enumerate(factors)}}
    if out is not None:
        arrays["out"] = out
    return _xp_path(what, arrays)


def _is_xp(X) -> bool:
    """A non-NumPy array-API array (CuPy, array_api_strict, ...): computed by ``_xp``."""
    from ._xp import is_xp_array

    return is_xp_array(X)


__all__ = ["TuckerTensor", "mode_product", "tucker", "tucker_to_tensor"]

_METHODS = ("hosvd", "sthosvd", "hooi")
_SVDS = ("auto", "gram", "lq", "randomized")


def _reject_sparse(X, name: str) -> None:
    """A clear TypeError for a scipy.sparse matrix, which ``np.asarray`` would wrap as a 0-d
    object array (an error about its dimensions or its dtype)."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a scipy.sparse {type(X).__name__}; tensor operations need a dense "
            f"array: pass {name}.toarray()"
        )


def _check_tensor(X, name: str = "X", min_ndim: int = 2) -> np.ndarray:
    """An N-d float array for the Rust kernels (no copy unless the dtype must change)."""
    if not isinstance(X, np.ndarray):
        if hasattr(X, "__cuda_array_interface__") or type(X).__module__.split(".")[0] in (
            "cupy",
            "dask",
            "torch",
        ):
            raise TypeError(
                f"{name} is a {type(X).__module__}.{type(X).__name__}; this build of lowdim "
                "accepts NumPy arrays"
            )
        _reject_sparse(X, name)
        X = np.asarray(X)
    if X.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got {X.ndim}-D with shape {X.shape}"
        )
    if X.size == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    return _native(X, result_dtype(X.dtype, name))


def _check_mode(mode, ndim: int, name: str = "mode") -> int:
    if isinstance(mode, bool) or not isinstance(mode, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {mode!r}")
    mode = int(mode)
    if not -ndim <= mode < ndim:
        raise ValueError(f"{name}={mode} is out of range for a {ndim}-d tensor")
    return mode % ndim


def _check_modes(modes, ndim: int, name: str = "modes") -> list[int]:
    if isinstance(modes, (str, bytes)) or not isinstance(modes, Sequence):
        modes = list(np.atleast_1d(np.asarray(modes))) if np.ndim(modes) <= 1 else None
        if modes is None:
            raise TypeError(f"{name} must be a sequence of ints")
    out = [_check_mode(m, ndim, f"{name} entry") for m in modes]
    if not out:
        raise ValueError(f"{name} must name at least one mode")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={list(modes)} has a repeated mode")
    return out


def _named(core, factors) -> list:
    """The ``(name, array)`` pairs of a core and its factors, for the dtype checks."""
    return [("core", core)] + [(f"factors[{i}]", f) for i, f in enumerate(factors)]


def _common_dtype(named) -> np.dtype:
    """The dtype a computation on the ``(name, array)`` pairs runs in (float32 if all are
    float32, else float64), or a TypeError naming the argument. Callers reject sparse
    matrices first (:func:`_reject_sparse`: ``np.asarray`` makes them 0-d object arrays)."""
    dts = [result_dtype(a.dtype, name) for name, a in named]
    return np.dtype(np.float32) if all(d == np.float32 for d in dts) else np.dtype(np.float64)


def _prefer_randomized(i_n: int, j: float, r: int) -> bool:
    """The Rust rule (RandParams: 10 oversamples, 1 power iteration)."""
    ell = r + 10
    passes = 2.0 * 1 + 2.0
    return j >= 4 * i_n and 2.0 * passes * 2.0 * ell < i_n


def _order_cost(dims, target, order, with_gram: bool) -> float:
    """Port of the Rust ``order_cost`` (the flop model that picks ST-HOSVD's mode order)."""
    d = [float(v) for v in dims]
    cost = 0.0
    for m in order:
        size = math.prod(d)
        j = size / d[m]
        r = float(target[m])
        cost += 2.0 * r * d[m] * j
        if not with_gram:
            trailing = math.prod(d[m + 1 :])
            packed = m + 1 < len(d) and trailing < 128.0
            cost += 50.0 * (size + size / d[m] * r) * (3.0 if packed else 1.0)
        else:
            if _prefer_randomized(int(d[m]), int(j), int(target[m])):
                ell = float(target[m] + 10)
                cost += (2.0 * 1 + 2.0) * 2.0 * d[m] * j * ell
            else:
                cost += d[m] * d[m] * j + 10.0 * d[m] ** 3
        d[m] = r
    return cost


def _best_order(dims, target, modes, with_gram: bool) -> list[int]:
    """Port of the Rust ``best_order``: every permutation (in the Rust enumeration order, the
    first with the least cost wins) for up to 6 modes, else greedy."""
    modes = list(modes)
    if len(modes) <= 6:
        best, best_cost = list(modes), math.inf
        a = list(modes)

        def permute(k):
            nonlocal best, best_cost
            if k == len(a):
                c = _order_cost(dims, target, a, with_gram)
                if c < best_cost:
                    best_cost, best = c, list(a)
                return
            for i in range(k, len(a)):
                a[k], a[i] = a[i], a[k]
                permute(k + 1)
                a[k], a[i] = a[i], a[k]

        permute(0)
        return best
    left, done, d = list(modes), [], list(dims)
    while left:
        costs = [_order_cost(d, target, [m], with_gram) for m in left]
        i = min(range(len(left)), key=lambda t: (costs[t], t))
        m = left.pop(i)
        d[m] = target[m]
        done.append(m)
    return done


class TuckerTensor:
    """A Tucker tensor ``core x_{modes[0]} factors[0] x_{modes[1]} factors[1] ...``.

    Parameters
    ----------
    core : ndarray
        The core tensor. Its size in each mode of ``modes`` is the number of columns of the
        matching factor; in the other modes (partial Tucker) it keeps the size of the tensor.
    factors : sequence of 2-D ndarrays
        ``factors[i]`` has shape ``(I_m, r_m)`` for ``m = modes[i]``.
    modes : sequence of int, optional
        The modes the factors act on (default: all, in order).

    Attributes
    ----------
    core : ndarray
    factors : list of ndarray
    modes : tuple of int
    certified_error : float or None
        For a result of :func:`tucker`, the relative Frobenius error
        ``||X - X_hat||_F / ||X||_F`` known from the decomposition itself, without
        reconstructing X: exact for ``"sthosvd"`` (square root of the sum of the discarded
        eigenvalues, the ST-HOSVD error identity), an upper bound for ``"hosvd"`` (sum over
        the modes of the energy discarded from each unfolding), and
        ``sqrt(1 - ||core||^2 / ||X||^2)`` for ``"hooi"`` (exact for orthonormal factors,
        accurate to about sqrt(machine epsilon)). None for a user-built TuckerTensor.
        "Exact" holds in exact arithmetic; in floating point the value carries an absolute
        error of about sqrt(eps): with the Gram solver (discarded eigenvalues of rounding
        size give about 3e-8 for a float64 tensor that the ranks represent exactly, whose
        true error is 1e-15) and with ``svd="randomized"`` (whose error comes from the norm
        identity, in the data's precision: up to about 4e-4 in float32). The LQ solver
        resolves it to about eps. For errors below those levels use :meth:`rel_error`.
    method, n_iter, solvers, mode_order
        How :func:`tucker` computed it: the method, HOOI sweeps done, the per-mode solver
        (``"gram"``, ``"lq"`` or ``"randomized"``) and the order ST-HOSVD used.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> core = np.ones((2, 2, 2))
    >>> factors = [np.eye(4)[:, :2]] * 3
    >>> T = lowdim.TuckerTensor(core, factors)
    >>> T.shape, T.ranks, T.compression_ratio
    ((4, 4, 4), (2, 2, 2), 2.0)
    >>> T.to_tensor().sum()
    np.float64(8.0)
    """

    def __init__(self, core, factors, modes=None):
        factors = list(factors)
        # tucker_to_tensor's TypeError for a bool, complex or object core or factor here, not
        # at the first to_tensor() (the arrays are kept as given)
        if not _same_side("TuckerTensor", core, factors):
            # (array-API arrays, e.g. CuPy, stay on their device)
            for name, a in [("core", core)] + [(f"factors[{i}]", f) for i, f in enumerate(factors)]:
                _reject_sparse(a, name)
            core = np.asarray(core)
            factors = [np.asarray(f) for f in factors]
            _common_dtype(_named(core, factors))
        else:
            factors = list(factors)
            from . import _xp

            _xp_common(_xp.namespace(core, *factors), _named(core, factors))
        if modes is None:
            if len(factors) != core.ndim:
                raise ValueError(
                    f"{len(factors)} factors given for a {core.ndim}-d core; pass modes= for a "
                    "partial Tucker tensor"
                )
            modes = range(core.ndim)
        modes = tuple(_check_modes(modes, core.ndim))
        if len(modes) != len(factors):
            raise ValueError(f"{len(factors)} factors given for {len(modes)} modes")
        for m, f in zip(modes, factors, strict=True):
            if f.ndim != 2 or f.shape[1] != core.shape[m]:
                raise ValueError(
                    f"the factor for mode {m} has shape {f.shape}; expected (I, {core.shape[m]})"
                )
        self.core = core
        self.factors = factors
        self.modes = modes
        self.certified_error: float | None = None
        self.method: str | None = None
        self.n_iter = 0
        self.solvers: tuple[str, ...] = ()
        self.mode_order: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the full tensor."""
        s = list(self.core.shape)
        for m, f in zip(self.modes, self.factors, strict=True):
            s[m] = f.shape[0]
        return tuple(s)

    @property
    def ranks(self) -> tuple[int, ...]:
        """The multilinear rank (the shape of the core)."""
        return tuple(self.core.shape)

    @property
    def compression_ratio(self) -> float:
        """Entries of the full tensor per stored entry (core plus factors)."""
        stored = self.core.size + sum(f.size for f in self.factors)
        return math.prod(self.shape) / stored

    def to_tensor(self) -> np.ndarray:
        """The full tensor (see :func:`tucker_to_tensor`)."""
        return tucker_to_tensor(self.core, self.factors, modes=self.modes)

    def rel_error(self, X) -> float:
        """``||X - X_hat||_F / ||X||_F``, computed by reconstructing ``X_hat`` (both norms at
        the power-of-two scale of :func:`tucker`: squares of entries beyond ~1e154 overflowed
        to a NaN ratio). X of zero norm: ``||X_hat||_F``."""
        if _xp_path("TuckerTensor.rel_error", {"X": X, "core": self.core}):
            from . import _xp

            xp = _xp.namespace(X)
            _xp.float_dtype(xp, X, "X")  # tucker's TypeError for a bool or complex X
            if tuple(X.shape) != self.shape:
                raise ValueError(f"X has shape {tuple(X.shape)}, the Tucker tensor {self.shape}")
            c = _tucker_scale(X)
            D = X - self.to_tensor()
            nx = math.sqrt(_xp.sum_sq64(xp, X * c if c != 1.0 else X))
            d = math.sqrt(_xp.sum_sq64(xp, D * c if c != 1.0 else D))
        else:
            _reject_sparse(X, "X")
            X = np.asarray(X)
            result_dtype(X.dtype, "X")  # tucker's TypeError for a bool, complex or object X
            if X.shape != self.shape:
                raise ValueError(f"X has shape {X.shape}, the Tucker tensor {self.shape}")
            c = _tucker_scale(X)
            D = X - self.to_tensor()
            if c != 1.0:
                X, D = X * c, D * c
            nx = float(np.linalg.norm(X.ravel().astype(np.float64, copy=False)))
            d = float(np.linalg.norm(D.ravel().astype(np.float64, copy=False)))
        return d / nx if nx > 0 else d  # X = 0 (then c = 1): ||X_hat||_F

    def __iter__(self):
        """Unpacks as ``core, factors`` (TensorLy's convention)."""
        return iter((self.core, self.factors))

    def __repr__(self) -> str:
        err = (
            "" if self.certified_error is None else f", certified_error={self.certified_error:.3g}"
        )
        return f"TuckerTensor(shape={self.shape}, ranks={self.ranks}, modes={self.modes}{err})"


def tucker(
    X,
    rank=None,
    *,
    tol=None,
    method="sthosvd",
    modes=None,
    mode_order="auto",
    n_iter_max=50,
    hooi_tol=1e-8,
    svd="auto",
    seed=None,
    progress=False,
) -> TuckerTensor:
    """Tucker decomposition ``X ~= core x_1 U_1 x_2 U_2 ... x_N U_N`` with orthonormal factors.

    Parameters
    ----------
    X : ndarray, N >= 2 dimensions
        Any strides and memory order (never copied unless its dtype must change). float32
        input is computed and returned in float32 (Gram matrices accumulate in float64);
        other real dtypes in float64.
    rank : int or sequence of int, optional
        The multilinear rank: one int for every decomposed mode, or one per entry of
        ``modes``; ``1 <= rank <= size of the mode``. Give exactly one of ``rank`` and ``tol``.
    tol : float, optional
        Relative Frobenius error target in (0, 1): ranks are chosen so that
        ``||X - X_hat||_F <= tol * ||X||_F``. ST-HOSVD spends the budget ``tol^2 ||X||^2``
        mode by mode, each mode taking an even share of what is left (the unspent part
        carries over), which the ST-HOSVD error identity turns into a guarantee. HOSVD uses
        the same rule on its error bound; HOOI refines the ST-HOSVD result at its ranks.
        Below ~1e-5 (where Gram matrices cannot resolve the discarded energy) the modes are
        computed by the LQ path automatically. In float32 the reconstruction itself carries
        rounding of about 1e-7 relative; a tol at or below the kernels' slack for it,
        ``8 ndim eps`` (2.9e-6 for a float32 3-way tensor), keeps the full ranks, with a
        RuntimeWarning.
    method : {"sthosvd", "hosvd", "hooi"}, default "sthosvd"
        ``"hosvd"``: every factor from the unfolding of X (truncated HOSVD).
        ``"sthosvd"``: sequentially truncated, each mode from the already compressed tensor
        (faster, and its error is known exactly). ``"hooi"``: ST-HOSVD, then higher-order
        orthogonal iteration until the relative error changes by less than ``hooi_tol``.
    modes : sequence of int, optional
        Decompose only these modes (partial Tucker); the others keep their size in the core
        and get no factor. Default: all modes.
    mode_order : "auto" or sequence of int, default "auto"
        Order in which ST-HOSVD processes the modes. "auto": with fixed ranks the order with
        the fewest flops (every order is tried for up to 6 modes), with ``tol`` ascending
        size. Any permutation of ``modes`` is accepted.
    n_iter_max : int, default 50
        Maximum HOOI sweeps (0 returns the ST-HOSVD start).
    hooi_tol : float, default 1e-8
        HOOI stops when the relative error changes by less than this between sweeps.
    svd : {"auto", "gram", "lq", "randomized"}, default "auto"
        How each mode's leading subspace is computed. "gram": eigh of the mode-n Gram matrix
        (one SYRK over strided views; a ``tol`` below what it resolves, about
        ``sqrt(1e3 I_n eps)``, is a ValueError). "lq": TSQR of the unfolding's transpose and
        an SVD of the small factor (does not square the condition number). "randomized": Gaussian
        range finder with one power iteration and 10 oversamples (fixed ranks only).
        "auto": Gram; LQ when ``tol`` is below what the Gram matrix resolves; randomized
        for fixed ranks when the unfolding is wide and ``I_n > 16 (r_n + 10)``. On CuPy (and
        other array-API) input "auto" takes the randomized finder for fixed ranks whenever
        ``I_n >= 4 (r_n + 10)``: there the ``I_n x I_n`` eigh is the slow part. With
        ``method="hooi"`` it applies to the ST-HOSVD start; the sweeps use the Gram matrix
        of the projected tensor (``solvers`` then reports "gram" for a mode a sweep updated).
    seed : None, int, numpy Generator or RandomState
        Seed of the randomized range finder: results are bitwise reproducible at a given
        thread count, and equal up to rounding at any other.
    progress : bool or callable, default False
        True: a progress bar on stderr when it is a terminal. A callable is called as
        ``progress(done, total)`` after each mode (HOSVD: one more step for the core; HOOI:
        ``total`` counts ``n_iter_max`` sweeps, and ``done == total`` when it converges). An
        exception it raises stops the computation and propagates. Ctrl-C stops the
        computation at its next step with ``KeyboardInterrupt`` whatever ``progress`` is.

    Returns
    -------
    TuckerTensor
        With ``certified_error``, ``method``, ``n_iter``, ``solvers`` and ``mode_order``.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> rng = np.random.default_rng(0)
    >>> X = lowdim.tucker_to_tensor(rng.standard_normal((3, 4, 2)),
    ...                             [rng.standard_normal((n, r)) for n, r in
    ...                              [(20, 3), (30, 4), (10, 2)]])
    >>> T = lowdim.tucker(X, [3, 4, 2])
    >>> T.ranks, T.rel_error(X) < 1e-12
    ((3, 4, 2), True)
    >>> X += 1e-3 * rng.standard_normal(X.shape)
    >>> T = lowdim.tucker(X, tol=0.01)
    >>> T.ranks, T.rel_error(X) <= 0.01, bool(np.isclose(T.certified_error, T.rel_error(X)))
    ((3, 4, 2), True, True)
    >>> W = rng.standard_normal((64, 32, 3, 3))          # a conv kernel: out, in, kh, kw
    >>> lowdim.tucker(W, [8, 4], modes=[0, 1]).core.shape
    (8, 4, 3, 3)
    >>> steps = []
    >>> _ = lowdim.tucker(X, [3, 4, 2], progress=lambda done, total: steps.append((done, total)))
    >>> steps
    [(0, 3), (1, 3), (2, 3), (3, 3)]
    """
    if isinstance(rank, np.ndarray) and rank.ndim == 0:
        rank = rank[()]  # a 0-d array is the scalar it holds (NumPy: "iteration over a 0-d array")
    if _is_dask(X):
        from . import _dask

        callback, bar = _resolve_progress(progress, "tucker")
        try:
            return _dask.tucker(
                X,
                rank,
                tol=tol,
                method=method,
                modes=modes,
                mode_order=mode_order,
                svd=svd,
                seed=seed,
                progress=callback,
            )
        finally:
            if bar is not None:
                bar.close()
    xp_in = _is_xp(X)
    if xp_in:
        from . import _xp

        X = _xp.check_xp_tensor(X, "X", 2)
    else:
        X = _check_tensor(X)
    nd = X.ndim
    modes = list(range(nd)) if modes is None else _check_modes(modes, nd)
    if (rank is None) == (tol is None):
        raise ValueError("give exactly one of rank (fixed ranks) and tol (an error tolerance)")
    ranks = None
    if rank is not None:
        if isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
            ranks = [check_int(rank, "rank", 1)] * len(modes)
        else:
            if isinstance(rank, (str, bytes)) or not isinstance(rank, (Sequence, np.ndarray)):
                raise TypeError(f"rank must be an int or a sequence of ints, got {rank!r}")
            ranks = [check_int(r, "rank entry", 1) for r in rank]
            if len(ranks) != len(modes):
                raise ValueError(
                    f"rank has {len(ranks)} entries but {len(modes)} modes are decomposed"
                )
        for m, r in zip(modes, ranks, strict=True):
            if r > X.shape[m]:
                raise ValueError(
                    f"rank {r} for mode {m} is larger than its size {X.shape[m]} "
                    f"(X has shape {X.shape})"
                )
    else:
        tol = check_tol(tol)
        warn_tol_floor(tol, nd, X.dtype == (xp_ns(X).float32 if xp_in else np.float32))
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if svd not in _SVDS:
        raise ValueError(f"svd must be one of {_SVDS}, got {svd!r}")
    if svd == "randomized" and tol is not None:
        raise ValueError("svd='randomized' needs fixed ranks (rank=...), not tol")
    if isinstance(mode_order, str):
        if mode_order != "auto":
            raise ValueError(
                f"mode_order must be 'auto' or a sequence of modes, got {mode_order!r}"
            )
        order = None
    else:
        order = _check_modes(mode_order, nd, "mode_order")
        if sorted(order) != sorted(modes):
            raise ValueError(f"mode_order={list(mode_order)} must be a permutation of {modes}")
    n_iter_max = check_int(n_iter_max, "n_iter_max", 0)
    if isinstance(hooi_tol, bool) or not isinstance(hooi_tol, numbers.Real):
        raise TypeError(f"hooi_tol must be a float >= 0, got {hooi_tol!r}")
    if not hooi_tol >= 0:
        raise ValueError(f"hooi_tol must be a float >= 0, got {hooi_tol!r}")
    seed = check_seed(seed)
    # Gram matrices square the entries: entries of 1e-200 gave an all-zero core certified
    # exact, 1e-160 a failed eigensolver, 1e160 an error. Out of float64's safe range X runs
    # scaled by a power of two (exact; a copy only then) and the core is scaled back: the
    # Rust kernel does it in memory, this function on the array-API path.
    callback, bar = _resolve_progress(progress, "tucker")
    args = (ranks, tol, method, modes, order, svd, n_iter_max, float(hooi_tol), seed)
    if xp_in:
        # two reductions up front: cheap on a device, and the array-API path has no norm
        # to check afterwards
        c = _tucker_scale(X, check=True)
        try:
            T = _tucker_xp(X * c if c != 1.0 else X, *args, callback)
        finally:
            if bar is not None:
                bar.close()
        if c != 1.0:
            T.core = T.core * (1.0 / c)
        return T

    # In memory the Rust kernel rescales out-of-range data itself (after the fact: in-range
    # data pay no extra pass).
    try:
        core, factors, used_modes, err, _norm, n_iter, solvers, done_order = _lowdim.tucker(
            X, *args, progress=callback
        )
    finally:
        if bar is not None:
            bar.close()
    T = TuckerTensor(core, factors, used_modes)
    T.certified_error = float(err)
    T.method = method
    T.n_iter = int(n_iter)
    T.solvers = tuple(solvers)
    T.mode_order = tuple(done_order)
    return T


def _tucker_scale(X, check: bool = False) -> float:
    """The power of two the tucker kernels run ``X`` at (1 unless its largest magnitude is
    outside its dtype's safe range: float32's for float32, whose mode products run in
    float32; two reductions, no temporary); any array namespace. With ``check``, NaN or
    infinity is the ValueError of the Rust path (the eigensolvers said "did not
    converge")."""
    xp = X.__array_namespace__() if hasattr(X, "__array_namespace__") else np
    amax = max(float(xp.max(X)), -float(xp.min(X)))
    if check and not math.isfinite(amax):
        raise ValueError(
            "X contains NaN or infinity (or values so large that their squares overflow)"
        )
    return pow2_scale(amax, SAFE_F32 if X.dtype == xp.float32 else SAFE_F64)


def _tucker_xp(X, ranks, tol, method, modes, order, svd, n_iter_max, hooi_tol, seed, progress):
    """tucker() on an array-API tensor (validated): the same mode order, rank rules, seeded
    randomized range finder and progress steps as the Rust path; per mode Gram + eigh, the SVD
    of the unfolding ("lq") or the randomized finder, "auto" choosing for a GPU
    (``_xp._mode_svd``)."""
    from . import _xp

    shape = tuple(X.shape)
    if order is None:
        if ranks is not None:
            target = list(shape)
            for m, r in zip(modes, ranks, strict=True):
                target[m] = r
            order = _best_order(list(shape), target, modes, True)
        else:
            order = sorted(modes, key=lambda m: shape[m])
    core, factors, err, _norm, n_iter, solvers, done = _xp.tucker(
        X, ranks, tol, method, modes, list(order), svd, n_iter_max, float(hooi_tol), seed, progress
    )
    T = TuckerTensor(core, factors, modes)
    T.certified_error = float(err)
    T.method = method
    T.n_iter = int(n_iter)
    T.solvers = tuple(solvers)
    T.mode_order = tuple(done)
    return T


def _check_out(out, shape, dtype, inputs=()):
    """``out`` checked against the result's shape and dtype and against the ``(name, array)``
    pairs the kernel reads (as passed to it, after any dtype conversion): the products are
    not computed in place, and the Rust bindings refuse an output that overlaps an input
    ("TypeError: The given array is already borrowed")."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype}; expected {tuple(shape)} {dtype}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable and out.dtype.isnative):
        raise ValueError("out must be a writeable, C-contiguous, native-byte-order array")
    # may_share_memory compares memory bounds (cheap, and as conservative as the bindings'
    # own check); the result is not defined when out overlaps what is being read
    shared = [name for name, a in inputs if np.may_share_memory(out, a)]
    if shared:
        raise ValueError(
            f"out must not share memory with the inputs ({', '.join(shared)}): the product is "
            "not computed in place; pass a separate array"
        )
    return out


def tucker_to_tensor(core, factors, *, modes=None, out=None) -> np.ndarray:
    """The full tensor ``core x_{modes[0]} factors[0] x_{modes[1]} factors[1] ...``.

    The products run in Rust in the order with the fewest flops, on the core and factors as
    they are in memory (any strides), with the GIL released; cheap enough to rebuild a Tucker
    adapter weight (FLoRA-style) on every forward pass.

    Parameters
    ----------
    core : ndarray
    factors : sequence of 2-D ndarrays
        ``factors[i]`` has shape ``(I_m, core.shape[m])`` for ``m = modes[i]``.
    modes : sequence of int, optional
        Default: all modes of the core, in order.
    out : ndarray, optional
        A C-contiguous array of the result's shape and dtype to write into (no allocation:
        useful when the same weight is rebuilt on every forward pass).

    Returns
    -------
    ndarray
        C-ordered, float32 when the core and all factors are float32, else float64.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> core = np.arange(8.0).reshape(2, 2, 2)
    >>> A, B, C = np.ones((3, 2)), np.eye(2), np.eye(2)
    >>> lowdim.tucker_to_tensor(core, [A, B, C]).shape
    (3, 2, 2)
    >>> bool(np.allclose(lowdim.tucker_to_tensor(core, [A, B, C]),
    ...                  np.einsum("abc,ia,jb,kc->ijk", core, A, B, C)))
    True
    """
    if isinstance(core, TuckerTensor):
        raise TypeError("pass core and factors, or call TuckerTensor.to_tensor()")
    factors = list(factors)
    if _same_side("tucker_to_tensor", core, factors, out=out):
        return _tucker_to_tensor_xp(core, factors, modes, out)
    _reject_sparse(core, "core")
    factors = list(factors)
    for i, f in enumerate(factors):
        _reject_sparse(f, f"factors[{i}]")
    core = np.asarray(core)
    factors = [np.asarray(f) for f in factors]
    dtype = _common_dtype([("core", core)] + [(f"factors[{i}]", f) for i, f in enumerate(factors)])
    core = _check_tensor(core.astype(dtype, copy=False), "core", 1)
    nd = core.ndim
    modes = list(range(nd)) if modes is None else _check_modes(modes, nd)
    if len(factors) != len(modes):
        raise ValueError(f"{len(factors)} factors given for {len(modes)} modes")
    fs = []
    for m, f in zip(modes, factors, strict=True):
        if f.ndim != 2 or f.shape[1] != core.shape[m] or f.shape[0] == 0:
            raise ValueError(
                f"the factor for mode {m} has shape {f.shape}; expected (I, {core.shape[m]}) "
                "with I >= 1"
            )
        fs.append(_native(f, dtype))
    shape = list(core.shape)
    for m, f in zip(modes, fs, strict=True):
        shape[m] = f.shape[0]
    inputs = [("core", core)] + [(f"factors[{i}]", f) for i, f in enumerate(fs)]
    return _lowdim.tucker_to_tensor(core, fs, modes, _check_out(out, shape, dtype, inputs))


def _xp_common(xp, named):
    """:func:`_common_dtype` for the ``(name, array)`` pairs of an array-API call."""
    from . import _xp

    dts = [_xp.float_dtype(xp, a, name) for name, a in named]
    return xp.float32 if all(d == xp.float32 for d in dts) else xp.float64


def _xp_out(xp, out, res):
    if out is None:
        return res
    if tuple(out.shape) != tuple(res.shape) or out.dtype != res.dtype:
        raise ValueError(
            f"out has shape {tuple(out.shape)} and dtype {out.dtype}; expected "
            f"{tuple(res.shape)} {res.dtype}"
        )
    out[...] = res
    return out


def _tucker_to_tensor_xp(core, factors, modes, out):
    from . import _xp

    factors = list(factors)
    xp = _xp.namespace(core, *factors)
    dt = _xp_common(xp, [("core", core)] + [(f"factors[{i}]", f) for i, f in enumerate(factors)])
    core = _xp.check_xp_tensor(xp.astype(core, dt) if core.dtype != dt else core, "core", 1)
    nd = core.ndim
    modes = list(range(nd)) if modes is None else _check_modes(modes, nd)
    if len(factors) != len(modes):
        raise ValueError(f"{len(factors)} factors given for {len(modes)} modes")
    fs = []
    for m, f in zip(modes, factors, strict=True):
        if f.ndim != 2 or f.shape[1] != core.shape[m] or f.shape[0] == 0:
            raise ValueError(
                f"the factor for mode {m} has shape {tuple(f.shape)}; expected "
                f"(I, {core.shape[m]}) with I >= 1"
            )
        fs.append(f if f.dtype == dt else xp.astype(f, dt))
    return _xp_out(xp, out, _xp.tucker_to_tensor(core, fs, modes))


def _mode_product_xp(X, M, mode, transpose, out):
    from . import _xp

    xp = _xp.namespace(X, M)
    dt = _xp_common(xp, [("X", X), ("M", M)])
    X = _xp.check_xp_tensor(X if X.dtype == dt else xp.astype(X, dt), "X", 1)
    M = M if M.dtype == dt else xp.astype(M, dt)
    mode = _check_mode(mode, X.ndim)
    if M.ndim != 2:
        raise ValueError(f"M must be a 2-D array, got shape {tuple(M.shape)}")
    inner = M.shape[0] if transpose else M.shape[1]
    if inner != X.shape[mode] or 0 in M.shape:
        want = f"({X.shape[mode]}, J)" if transpose else f"(J, {X.shape[mode]})"
        raise ValueError(
            f"M has shape {tuple(M.shape)}; for mode {mode} of X (shape {tuple(X.shape)}) it "
            f"must be {want}"
        )
    return _xp_out(xp, out, _xp.mode_product(X, M, mode, transpose))


def mode_product(X, M, mode, transpose=False, *, out=None) -> np.ndarray:
    """The n-mode product ``X x_mode M``: ``Y_(mode) = M @ X_(mode)`` (``M.T`` if ``transpose``).

    Computed in Rust on the strided view of X (no unfolding copy); the result is C-ordered
    with mode ``mode`` of size ``M.shape[0]`` (``M.shape[1]`` if ``transpose``).

    Parameters
    ----------
    X : ndarray
    M : 2-D ndarray
        Shape ``(J, X.shape[mode])``, or ``(X.shape[mode], J)`` with ``transpose=True``
        (projection on orthonormal columns: ``mode_product(X, U, n, transpose=True)``).
    mode : int
    transpose : bool, default False
    out : ndarray, optional
        A C-contiguous array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray
        float32 when X and M are float32, else float64.

    Examples
    --------
    >>> import numpy as np, lowdim
    >>> X = np.arange(24.0).reshape(2, 3, 4)
    >>> M = np.ones((5, 3))
    >>> Y = lowdim.mode_product(X, M, 1)
    >>> Y.shape, bool(np.allclose(Y, np.einsum("ijk,aj->iak", X, M)))
    ((2, 5, 4), True)
    >>> lowdim.mode_product(X, M.T, 1, transpose=True).shape
    (2, 5, 4)
    """
    transpose = check_bool(transpose, "transpose")
    if _xp_path("mode_product", {"X": X, "M": M, **({} if out is None else {"out": out})}):
        return _mode_product_xp(X, M, mode, transpose, out)
    _reject_sparse(X, "X")
    _reject_sparse(M, "M")
    X = np.asarray(X)
    M = np.asarray(M)
    dtype = _common_dtype([("X", X), ("M", M)])
    X = _check_tensor(X.astype(dtype, copy=False), "X", 1)
    mode = _check_mode(mode, X.ndim)
    if M.ndim != 2:
        raise ValueError(f"M must be a 2-D array, got shape {M.shape}")
    inner = M.shape[0] if transpose else M.shape[1]
    if inner != X.shape[mode] or M.size == 0:
        want = f"({X.shape[mode]}, J)" if transpose else f"(J, {X.shape[mode]})"
        raise ValueError(
            f"M has shape {M.shape}; for mode {mode} of X (shape {X.shape}) it must be {want}"
        )
    shape = list(X.shape)
    shape[mode] = M.shape[1] if transpose else M.shape[0]
    M = _native(M, dtype)
    out = _check_out(out, shape, dtype, [("X", X), ("M", M)])
    return _lowdim.mode_product(X, M, mode, transpose, out)
