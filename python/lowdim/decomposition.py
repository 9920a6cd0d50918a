"""scikit-learn compatible PCA and TruncatedSVD on lowdim's randomized SVD.

The estimators hold no numerics of their own: they validate, centre (explicitly for dense
input, implicitly for sparse input: the mean is never subtracted from a sparse matrix) and
call :func:`lowdim.rsvd`.
"""

from __future__ import annotations

import math
import numbers
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import _lowdim
from ._validation import Operand, check_bool, check_estimator_kind, check_matrix, pow2_scale
from ._xp import is_xp_array
from .svd import _flip_signs, _is_dask, _renamed, _run_rsvd

__all__ = ["PCA", "TruncatedSVD"]

_SPARSE_FORMATS = ("csr", "csc", "coo")


def _column_variance_sum(X, mean, ddof: int, c: float = 1.0) -> float:
    """sum_j var(c X[:, j]) without a full-size temporary (dense: column blocks); ``c`` (a
    power of two, see :func:`_variance_scale`) is applied before squaring. Sparse: each
    stored entry is centred before squaring, in float64, and every implicit zero adds
    ``(c mean_j)^2``: the expansion ``sum x^2 - n ||mean||^2`` cancelled (float32 data of
    1000 + noise got ratios 2.4% low, float64 data of 1e7 + noise a noise variance 10% low)
    and its float32 sum of squares overflowed at 1e30 (ratios of 0)."""
    n = X.shape[0]
    if sp.issparse(X):
        from ._validation import _summed

        X = _summed(X if X.format in ("csr", "csc") else X.tocsr())
        ncols = X.shape[1]
        if X.format == "csr":
            cols = X.indices
        else:
            cols = np.repeat(np.arange(ncols), np.diff(X.indptr))
        mu = np.asarray(mean, dtype=np.float64) * c
        d = X.data.astype(np.float64) * c - mu[cols]
        implicit = n - np.bincount(cols, minlength=ncols)
        total = float(np.dot(d, d)) + float(np.dot(implicit, mu * mu))
    else:
        total = 0.0
        step = max(1, (1 << 22) // max(n, 1))
        for j in range(0, X.shape[1], step):
            blk = X[:, j : j + step] - mean[j : j + step]
            if c != 1.0:
                blk = blk * c
            total += float(np.einsum("ij,ij->", blk, blk, dtype=np.float64))
    return max(total, 0.0) / max(n - ddof, 1)


_NON_FINITE_CENTRED = (
    "X contains NaN or infinity (or values so large that products with X overflow); "
    "remove or rescale them first"
)


def _variance_scale(s0: float) -> float:
    """1, or a power of two bringing ``s0`` (the largest singular value) to about 1 when it
    is outside ``2^+-300``: squares of such data overflow (entries of 1e300) or lose their
    digits in subnormals (1e-300), and explained-variance ratios came out NaN or 0
    (scikit-learn's are NaN). Ratios are computed at this scale; the variances themselves
    are scaled back (inf or 0 where float64 cannot hold them). The exact power of two leaves
    in-range data bit-identical."""
    return pow2_scale(s0, (2.0**-300, 2.0**300))


def _whitening(xp, S, n_samples: int):
    """``(scale, factor)`` of a whitened PCA with singular values ``S`` (an array of
    namespace ``xp``, on its device; NumPy: ``xp = np``): ``transform`` divides the centred
    projections by ``scale`` and ``inverse_transform`` multiplies by it, ``fit_transform``
    multiplies U by ``factor``, so that fit_transform(X) == transform(X).

    ``scale`` is scikit-learn's ``sqrt(explained_variance_)`` clipped from below at the
    dtype's eps, computed as ``S / sqrt(n - 1)`` at the power-of-two scale of
    :func:`_variance_scale` (the variances themselves are 0 or inf for data beyond
    ``2^+-300``: transform gave all-0 or +-inf there while fit_transform was finite); the
    clip applies at that scale. ``factor`` is ``sqrt(n - 1)`` where the scale is not
    clipped (scikit-learn's ``U * sqrt(n - 1)``), else ``S / scale``: 0 for a component
    without variance, whose U column is an arbitrary unit vector."""
    c = _variance_scale(float(S[0]))
    eps = float(np.finfo(np.float32 if S.dtype == xp.float32 else np.float64).eps)
    root = math.sqrt(n_samples - 1)
    s = xp.astype(S, xp.float64) * c
    std = s / root
    clipped = std < eps
    scale = xp.clip(std, min=eps) * (1.0 / c)
    factor = xp.where(clipped, s / eps, xp.full_like(s, root))
    return xp.astype(scale, S.dtype), xp.astype(factor, S.dtype)


def _fraction_rank(s: np.ndarray, tol: float) -> int:
    """The number of components kept by ``PCA(n_components=1 - tol**2)`` from all singular
    values ``s`` (host, descending): the fewest whose share of ``sum(s**2)`` reaches the
    fraction, and 1 for data without variance (scikit-learn's answer: its ratios are NaN
    there; every component kept before, or one past the last on array_api_strict)."""
    s2 = (s.astype(np.float64) * _variance_scale(float(s[0]))) ** 2
    total = float(np.sum(s2))
    if not total > 0.0:
        return 1
    k = int(np.searchsorted(np.cumsum(s2) / total, 1.0 - tol**2, side="left")) + 1
    return min(k, s.shape[0])  # a cumulative ratio a rounding short of 1


def _constant_columns(X):
    """The column values of a canonical CSR matrix (scipy or cupyx) whose columns are all
    constant, else None: exact at any magnitude, O(nnz), nothing densified. A float
    ``n_components`` needs it on sparse input: the tol mode of rsvd sees the implicitly
    centred matrix through ``||X||^2 - n ||mean||^2``, which is a rounding residue (or 0,
    and then a failed rescale) for such data, and scipy's mean of a column of ones is
    1 - 2^-53."""
    data, indices = X.data, X.indices
    mod = np if isinstance(data, np.ndarray) else sys.modules[type(data).__module__.split(".")[0]]
    m, n = X.shape
    ref = mod.zeros(n, dtype=data.dtype)
    ref[indices] = data  # one stored value of each column (0 for an empty one)
    if bool(mod.any(data != ref[indices])):
        return None
    # a column with implicit zeros is constant only if its stored values are 0 too
    nnz = mod.bincount(indices, minlength=n)
    if bool(mod.any((nnz < m) & (ref != 0))):
        return None
    return ref


def _zero_svd(m: int, n: int, dtype, xp=None, like=None):
    """The rank-1 SVD ``(U, S, Vh)`` of centred data that are exactly 0 (rsvd's tol mode
    returns rank 0 for them): any unit vector is a principal axis; the first coordinate
    axis, as LAPACK's SVD of a zero matrix (so scikit-learn's full solver) gives. NumPy
    arrays, or arrays of namespace ``xp`` on the device of ``like``."""
    if xp is None:
        Vh = np.zeros((1, n), dtype)
        Vh[0, 0] = 1.0
        return np.zeros((m, 1), dtype, order="F"), np.zeros(1, dtype), Vh
    from . import _xp

    dev = _xp._device(like)
    return (
        xp.zeros((m, 1), dtype=dtype, device=dev),
        xp.zeros((1,), dtype=dtype, device=dev),
        xp.eye(1, n, dtype=dtype, device=dev),
    )


def _pca_target(nc, kmax):
    """(k, tol) from PCA's n_components."""
    if nc is None:
        return kmax, None
    if isinstance(nc, numbers.Integral) and not isinstance(nc, bool):
        if not 1 <= nc <= kmax:
            raise ValueError(
                f"n_components={nc} must be between 1 and min(n_samples, n_features)={kmax}"
            )
        return int(nc), None
    if isinstance(nc, numbers.Real) and not isinstance(nc, bool) and 0 < nc < 1:
        return None, float(np.sqrt(1.0 - nc))
    raise ValueError(f"n_components must be None, an int >= 1 or a float in (0, 1), got {nc!r}")


# ----------------------------------------------------------------------------- array-API input
# Non-NumPy array-API arrays (CuPy, array_api_strict): computed by lowdim._xp in the input's
# namespace; fitted attributes are arrays of that namespace (scikit-learn's array-API
# convention), scalars stay Python numbers.


def _xp_validate(est, X, reset: bool):
    """(xp, X, dtype): a dense array-API array, or a sparse matrix (cupyx.scipy.sparse; or
    scipy.sparse passed to these internal functions directly, to run the sparse code on the
    CPU) as canonical CSR."""
    from . import _xp

    check_estimator_kind(X)
    xp, X, dt, sparse = _xp.check_any_matrix(X, "X")
    if reset:
        if X.shape[0] < 2:
            raise ValueError(f"at least 2 samples are required, got {X.shape[0]}")
        est.n_features_in_ = int(X.shape[1])
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
    else:
        if X.shape[1] != est.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
                f"{est.n_features_in_} features as input"
            )
        # fit checks in its kernels; transform is a product that would pass NaN on silently
        # (the NumPy path's validate_data raises)
        if _xp._not_finite(xp, X.data if sparse else X):
            raise ValueError("Input X contains NaN or infinity")
    return xp, X, dt


def _pca_fit_xp(est, X):
    from . import _xp

    xp, X, dt = _xp_validate(est, X, True)
    n_samples, n_features = X.shape
    kmax = min(n_samples, n_features)
    k, tol = _pca_target(est.n_components, kmax)
    if est.svd_solver not in ("auto", "randomized", "gram", "full"):
        raise ValueError(
            f"svd_solver must be 'auto', 'randomized', 'gram' or 'full', got {est.svd_solver!r}"
        )
    sparse = _xp.is_sparse(X)
    zero_var = None  # the column values of sparse data without variance (tol mode)
    if sparse:
        # implicit centring: the mean is never subtracted from the sparse matrix
        if est.svd_solver in ("full", "gram"):
            raise ValueError(f"svd_solver={est.svd_solver!r} needs dense input")
        op = _xp._Op(xp, X, dt, True)
        if tol is not None:
            zero_var = _constant_columns(X)
        mean = op.col_sums() / n_samples if zero_var is None else zero_var
        Xc, center = X, mean
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # NumPy-backed namespaces
            mean = xp.mean(X, axis=0)
            Xc, center = X - mean, None
        if est.svd_solver == "full" and not bool(xp.all(xp.isfinite(Xc))):
            # NaN or infinity in X, or a centring that overflowed: LAPACK's SVD loops forever
            # on an infinity (the other solvers' range check reports them, renamed to X)
            raise ValueError(_NON_FINITE_CENTRED)
    if est.svd_solver == "full":
        U, S, Vh = xp.linalg.svd(Xc, full_matrices=False)
        if tol is not None:
            k = _fraction_rank(_xp.to_host(S), tol)
        U, S, Vh = U[:, :k], S[:k], Vh[:k, :]
    elif zero_var is not None:
        U, S, Vh = _zero_svd(n_samples, n_features, dt, xp, X.data)
    else:
        try:
            U, S, Vh = _xp.rsvd(Xc, k, tol=tol, center=center, **est._rsvd_params())
        except (ValueError, TypeError) as e:
            raise _renamed(e, est._rsvd_names()) from None
        if S.shape[0] == 0:  # tol mode on centred data that are exactly 0
            U, S, Vh = _zero_svd(n_samples, n_features, dt, xp, Xc)
    U, Vh = _xp.flip_signs(xp, U, Vh, u_based=False)
    ncomp = int(S.shape[0])
    # variances of c X (c = 1 unless squares of X leave float64's range), scaled back
    c = _variance_scale(float(S[0]))
    if zero_var is not None:
        total_var = 0.0
    elif sparse:
        op = _xp._Op(xp, X * c if c != 1.0 else X, dt, True)
        op.c = mean * c if c != 1.0 else mean
        total_var = op.frob_sq() / (n_samples - 1)
    else:
        total_var = _xp.sum_sq64(xp, Xc * c if c != 1.0 else Xc) / (n_samples - 1)
    ev = (xp.astype(S, xp.float64) * c) ** 2 / (n_samples - 1)
    est.mean_ = mean
    est.components_ = Vh
    est.singular_values_ = S
    with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
        est.explained_variance_ = xp.astype(ev / c / c if c != 1.0 else ev, dt)
    ratio = ev / total_var if total_var > 0 else xp.zeros_like(ev)
    est.explained_variance_ratio_ = xp.astype(ratio, dt)
    est.n_components_ = ncomp
    est.n_samples_ = int(n_samples)
    if ncomp < kmax:
        noise = max(total_var - float(xp.sum(ev)), 0.0) / (kmax - ncomp)
        est.noise_variance_ = float(noise) / c / c
    else:
        est.noise_variance_ = 0.0
    return U, S


def _tsvd_fit_transform_xp(est, X):
    from . import _xp

    xp, X, dt = _xp_validate(est, X, True)
    if est.algorithm not in ("randomized", "auto", "gram"):
        raise ValueError(f"algorithm must be 'randomized', 'auto' or 'gram', got {est.algorithm!r}")
    nc = est.n_components
    if isinstance(nc, bool) or not isinstance(nc, numbers.Integral):
        raise ValueError(f"n_components must be an int, got {nc!r}")
    if not 1 <= nc <= min(X.shape):
        raise ValueError(
            f"n_components={nc} must be between 1 and min(n_samples, n_features)={min(X.shape)}"
        )
    try:
        U, S, Vh = _xp.rsvd(X, int(nc), **est._rsvd_params())
    except (ValueError, TypeError) as e:
        raise _renamed(e, est._rsvd_names()) from None
    U, Vh = _xp.flip_signs(xp, U, Vh, u_based=False)
    Xt = U * S
    est.components_ = Vh
    est.singular_values_ = S
    est.n_components_ = int(nc)
    # variances of c X (c = 1 unless squares of X leave float64's range), scaled back
    c = _variance_scale(float(S[0]))
    Xs = X * c if c != 1.0 else X
    ev = xp.var(xp.astype(Xt, xp.float64) * c, axis=0)
    if _xp.is_sparse(X):
        op = _xp._Op(xp, Xs, dt, True)
        op.c = op.col_sums() / X.shape[0]
        full_var = op.frob_sq() / X.shape[0]
    else:
        full_var = _xp.sum_sq64(xp, Xs - xp.mean(Xs, axis=0)) / X.shape[0]
    with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
        est.explained_variance_ = xp.astype(ev / c / c if c != 1.0 else ev, dt)
    ratio = ev / full_var if full_var > 0 else xp.zeros_like(ev)
    est.explained_variance_ratio_ = xp.astype(ratio, dt)
    return Xt


class _BaseSVDEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    # the scikit-learn names of rsvd's n_iter and solver in this estimator
    _n_iter_name = "n_iter"
    _solver_name = "algorithm"

    def _rsvd_params(self) -> dict:
        """The rsvd keywords of this estimator (the NumPy, array-API and Dask routes alike)."""
        return {
            "n_oversamples": self.n_oversamples,
            "n_iter": getattr(self, self._n_iter_name),
            "power_iteration_normalizer": self.power_iteration_normalizer,
            "seed": self.random_state,
            "solver": getattr(self, self._solver_name),
        }

    def _rsvd_names(self) -> dict:
        """rsvd's names of the matrix and of :meth:`_rsvd_params`' keywords -> this
        estimator's, for the messages of rsvd's validation and kernels (``svd._renamed``):
        ``PCA(iterated_power=-1)`` says ``iterated_power=-1 is out of range``, not n_iter."""
        return {
            "A": "X",
            "n_iter": self._n_iter_name,
            "seed": "random_state",
            "solver": self._solver_name,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _same_kind(self, X, what: str) -> None:
        """A model fitted on array-API arrays (CuPy, ...) takes arrays of that kind, one fitted
        on NumPy takes NumPy (or dask): the other mix copied the fitted attributes or X
        between host and device silently, or failed with an unrelated TypeError."""
        fitted = type(self.components_).__module__.split(".")[0]
        given = type(X).__module__.split(".")[0]
        if is_xp_array(self.components_) != is_xp_array(X):
            raise TypeError(
                f"this {type(self).__name__} was fitted on {fitted} arrays: {what} takes "
                f"arrays of the same kind, got {given} (no silent copy between host and "
                "device is made; convert one side explicitly)"
            )

    def _check_projections(self, X):
        """The input of inverse_transform: 2-D with one column per component (scikit-learn
        raises on 1-D input; a wrong width gave NumPy's matmul message). NumPy path: through
        ``check_array`` (float32/float64, finite); array-API arrays keep their namespace."""
        self._same_kind(X, "inverse_transform")
        if is_xp_array(X):
            ndim, shape = X.ndim, tuple(X.shape)
        else:
            X = check_array(X, dtype=[np.float64, np.float32], allow_nd=True)
            ndim, shape = X.ndim, X.shape
        k = self.components_.shape[0]
        if ndim != 2:
            raise ValueError(
                f"X must be a 2-D array of projections of shape (n_samples, {k}), got {ndim}-D "
                f"with shape {shape}"
            )
        if shape[1] != k:
            raise ValueError(
                f"X has {shape[1]} columns, but {type(self).__name__} has {k} components: "
                f"inverse_transform takes projections of shape (n_samples, {k})"
            )
        if is_xp_array(X):
            from . import _xp

            if _xp._not_finite(_xp.namespace(X), X):
                raise ValueError("Input X contains NaN or infinity")
        return X

    def _validate(self, X, reset: bool):
        check_estimator_kind(X)
        return validate_data(
            self,
            X,
            accept_sparse=_SPARSE_FORMATS,
            dtype=[np.float64, np.float32],
            reset=reset,
            ensure_min_samples=2 if reset else 1,
        )


class PCA(_BaseSVDEstimator):
    """Principal component analysis by lowdim's randomized SVD (scikit-learn API).

    Parameters
    ----------
    n_components : int, float in (0, 1), or None
        Number of components; a float keeps the fewest components explaining at least that
        fraction of the variance (lowdim's adaptive-rank mode with
        ``tol = sqrt(1 - n_components)``); None keeps ``min(n_samples, n_features)``.
    copy : bool, default True
        If False, dense float input is centred in place (saves one copy of X).
    whiten : bool, default False
        Scale the projections to unit variance: divided by ``sqrt(explained_variance_)``,
        clipped from below at the dtype's eps as in scikit-learn (a component without
        variance does not give NaN or infinity). For data beyond ``2^+-300``, whose
        variances are 0 or inf in float64, the scale comes from the singular values.
    svd_solver : {"auto", "randomized", "gram", "full"}, default "auto"
        "auto" lets lowdim pick (Gram + eigh for tall-skinny dense data, exact SVD when all
        components are wanted, randomized otherwise); "full" is LAPACK's exact SVD (dense
        input only).
    tol : float, default 0.0
        Unused; kept for scikit-learn compatibility.
    iterated_power : int or "auto", default "auto"
        Power iterations of the randomized solver.
    n_oversamples : int, default 10
    power_iteration_normalizer : {"auto", "none", "LU", "QR"}, default "auto"
    random_state : None, int or RandomState
        Seeds the counter-based generator: bitwise reproducible at a given thread count,
        equal up to rounding at any other.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    explained_variance_ : ndarray (n_components,)
    explained_variance_ratio_ : ndarray (n_components,)
    singular_values_ : ndarray (n_components,)
    mean_ : ndarray (n_features,)
    n_components_ : int
    noise_variance_ : float
    n_samples_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from lowdim import PCA
    >>> X = np.random.default_rng(0).standard_normal((100, 10))
    >>> pca = PCA(n_components=3, random_state=0).fit(X)
    >>> pca.transform(X).shape
    (100, 3)
    >>> bool(np.all(np.diff(pca.explained_variance_) <= 0))
    True
    """

    _n_iter_name = "iterated_power"
    _solver_name = "svd_solver"

    def __init__(
        self,
        n_components=None,
        *,
        copy=True,
        whiten=False,
        svd_solver="auto",
        tol=0.0,
        iterated_power="auto",
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
    ):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state

    def _check_flags(self) -> None:
        # (a truthy string such as whiten="no" would silently count as True)
        check_bool(self.copy, "copy")
        check_bool(self.whiten, "whiten")

    def fit(self, X, y=None):
        """Fit the model on X (dense or sparse); returns self."""
        self._check_flags()
        if _is_dask(X):
            from . import _dask

            _dask.pca_fit(self, X)
            return self
        if is_xp_array(X):
            _pca_fit_xp(self, X)
            return self
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit on X and return its projection: ``U * S``, or whitened ``U * sqrt(n - 1)``
        (``U * S / eps`` for a component whose scale is clipped), equal to ``transform(X)``."""
        self._check_flags()
        if _is_dask(X):
            from . import _dask

            U, S = _dask.pca_fit(self, X)
        elif is_xp_array(X):
            U, S = _pca_fit_xp(self, X)
            if self.whiten:
                from . import _xp

                return U * _whitening(_xp.namespace(S), S, self.n_samples_)[1]
            return U * S
        else:
            U, S = self._fit(X)
        if self.whiten:
            return U * _whitening(np, np.asarray(S), self.n_samples_)[1]
        return U * S

    def _fit(self, X):
        X = self._validate(X, reset=True)
        n_samples, n_features = X.shape
        kmax = min(n_samples, n_features)
        k, tol = _pca_target(self.n_components, kmax)
        if self.svd_solver not in ("auto", "randomized", "gram", "full"):
            raise ValueError(
                "svd_solver must be 'auto', 'randomized', 'gram' or 'full', "
                f"got {self.svd_solver!r}"
            )
        # (in float64: scipy's float32 mean of sparse data of 1000 + noise was 6e-3 off)
        mean = np.asarray(X.mean(axis=0, dtype=np.float64), dtype=X.dtype).ravel()
        zero_var = None  # the column values of sparse data without variance (tol mode)
        if sp.issparse(X):
            if self.svd_solver in ("full", "gram"):
                raise ValueError(f"svd_solver={self.svd_solver!r} needs dense input")
            Xr = X.tocsr() if X.format != "csr" else X
            if tol is not None:
                if not Xr.has_canonical_format:
                    Xr = Xr.copy()
                    Xr.sum_duplicates()
                zero_var = _constant_columns(Xr)
                if zero_var is not None:
                    mean = zero_var
            op = check_matrix(Xr, allow_csc=False)
            center = mean
            var_src, var_mean = X, mean
        else:
            if self.copy or not X.flags.writeable:
                Xc = X - mean
            else:
                X -= mean
                Xc = X
            op = Operand(Xc, Xc.shape, Xc.dtype, False)
            center = None
            var_src, var_mean = Xc, np.zeros_like(mean)
        self.mean_ = mean
        if self.svd_solver == "full":
            if not math.isfinite(_lowdim.max_abs(op.payload)):
                # centring overflowed (|x - mean| beyond float64's range): LAPACK's SVD loops
                # forever on an infinity (NumPy's linalg.svd of such a matrix never returns)
                raise ValueError(_NON_FINITE_CENTRED)
            U, S, Vh = np.linalg.svd(op.payload, full_matrices=False)
            if tol is not None:
                k = _fraction_rank(S, tol)
            U, S, Vh = U[:, :k], S[:k], Vh[:k]
        elif zero_var is not None:
            U, S, Vh = _zero_svd(n_samples, n_features, X.dtype)
        else:
            res = _run_rsvd(
                op, k, tol, center=center, name=self._rsvd_names(), **self._rsvd_params()
            )
            U, S, Vh = res
            if S.shape[0] == 0:  # tol mode on centred data that are exactly 0
                U, S, Vh = _zero_svd(n_samples, n_features, X.dtype)
        # scikit-learn >= 1.5 fixes the signs of PCA by the components (v-based svd_flip).
        _flip_signs(U, Vh, u_based=False)
        ncomp = S.shape[0]
        # variances of c X (c = 1 unless squares of X leave float64's range), scaled back
        c = _variance_scale(float(S[0]))
        if zero_var is None:
            total_var = _column_variance_sum(var_src, var_mean, ddof=1, c=c)
        else:
            total_var = 0.0  # (sum x^2 - n mean^2 can leave a rounding residue)
        ev = ((S.astype(np.float64) * c) ** 2) / (n_samples - 1)
        self.components_ = Vh
        self.singular_values_ = S
        with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
            self.explained_variance_ = (ev / c / c).astype(X.dtype)
        ratio = ev / total_var if total_var > 0 else np.zeros_like(ev)
        self.explained_variance_ratio_ = ratio.astype(X.dtype)
        self.n_components_ = ncomp
        self.n_samples_ = n_samples
        if ncomp < kmax:
            noise = max(total_var - ev.sum(), 0.0) / (kmax - ncomp)
            self.noise_variance_ = float(noise) / c / c
        else:
            self.noise_variance_ = 0.0
        return U, S

    def transform(self, X):
        """Project X on the components (dense or sparse X; the mean is subtracted
        implicitly)."""
        check_is_fitted(self)
        if _is_dask(X):
            from . import _dask

            return _dask.pca_transform(self, X)
        self._same_kind(X, "transform")
        if is_xp_array(X):
            xp, X, _ = _xp_validate(self, X, False)
            Xt = X @ self.components_.T - self.mean_ @ self.components_.T
            if self.whiten:
                Xt = Xt / _whitening(xp, self.singular_values_, self.n_samples_)[0]
            return Xt
        X = self._validate(X, reset=False)
        Xt = X @ self.components_.T
        Xt = np.asarray(Xt) - (self.mean_ @ self.components_.T)
        if self.whiten:
            Xt /= _whitening(np, self.singular_values_, self.n_samples_)[0]
        return Xt

    def inverse_transform(self, X):
        """Map projections back to the input space (lazily for a dask array)."""
        check_is_fitted(self)
        if _is_dask(X):
            from . import _dask

            scale = None
            if self.whiten:
                scale = _whitening(np, self.singular_values_, self.n_samples_)[0]
            return _dask.inverse_transform(self, X, scale)
        X = self._check_projections(X)
        if is_xp_array(X):
            from . import _xp

            xp = _xp.namespace(X)
            if self.whiten:
                X = X * _whitening(xp, self.singular_values_, self.n_samples_)[0]
            return X @ self.components_ + self.mean_
        if self.whiten:
            X = X * _whitening(np, self.singular_values_, self.n_samples_)[0]
        return X @ self.components_ + self.mean_


class TruncatedSVD(_BaseSVDEstimator):
    """Truncated SVD (latent semantic analysis) by lowdim's randomized SVD (scikit-learn API).

    Unlike PCA it does not centre the data, so sparse input stays sparse and cheap.

    Parameters
    ----------
    n_components : int, default 2
    algorithm : {"randomized", "auto", "gram"}, default "randomized"
        "randomized" always runs the randomized passes; "auto" lets lowdim use Gram + eigh or
        an exact SVD where they are cheaper (dense input).
    n_iter : int, default 5
    n_oversamples : int, default 10
    power_iteration_normalizer : {"auto", "none", "LU", "QR"}, default "auto"
    random_state : None, int or RandomState
    tol : float, default 0.0
        Unused; kept for scikit-learn compatibility.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    explained_variance_ : ndarray (n_components,)
        Variance of the training projections.
    explained_variance_ratio_ : ndarray (n_components,)
    singular_values_ : ndarray (n_components,)
    n_components_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from lowdim import TruncatedSVD
    >>> X = sp.random(200, 50, density=0.1, random_state=0, format="csr")
    >>> TruncatedSVD(n_components=5, random_state=0).fit_transform(X).shape
    (200, 5)
    """

    def __init__(
        self,
        n_components=2,
        *,
        algorithm="randomized",
        n_iter=5,
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
        tol=0.0,
    ):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol

    def fit(self, X, y=None):
        """Fit the model on X; returns self."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit on X and return ``U * S``."""
        if _is_dask(X):
            from . import _dask

            return _dask.tsvd_fit_transform(self, X)
        if is_xp_array(X):
            return _tsvd_fit_transform_xp(self, X)
        X = self._validate(X, reset=True)
        if self.algorithm not in ("randomized", "auto", "gram"):
            raise ValueError(
                f"algorithm must be 'randomized', 'auto' or 'gram', got {self.algorithm!r}"
            )
        nc = self.n_components
        if isinstance(nc, bool) or not isinstance(nc, numbers.Integral):
            raise ValueError(f"n_components must be an int, got {nc!r}")
        if not 1 <= nc <= min(X.shape):
            raise ValueError(
                f"n_components={nc} must be between 1 and min(n_samples, n_features)={min(X.shape)}"
            )
        op = check_matrix(X)
        U, S, Vh = _run_rsvd(op, int(nc), None, name=self._rsvd_names(), **self._rsvd_params())
        # scikit-learn >= 1.5 fixes the signs of TruncatedSVD by the components.
        _flip_signs(U, Vh, u_based=False)
        Xt = U * S
        self.components_ = Vh
        self.singular_values_ = S
        self.n_components_ = int(nc)
        c = _variance_scale(float(S[0]))
        ev = np.var(Xt * c if c != 1.0 else Xt, axis=0, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0, dtype=np.float64), dtype=np.float64).ravel()
        full_var = _column_variance_sum(X, mean, ddof=0, c=c)
        with np.errstate(over="ignore", under="ignore"):  # inf / 0 beyond float64's range
            self.explained_variance_ = (ev / c / c).astype(X.dtype)
        ratio = ev / full_var if full_var > 0 else np.zeros_like(ev)
        self.explained_variance_ratio_ = ratio.astype(X.dtype)
        return Xt

    def transform(self, X):
        """Project X on the components."""
        check_is_fitted(self)
        if _is_dask(X):
            from . import _dask

            return _dask.tsvd_transform(self, X)
        self._same_kind(X, "transform")
        if is_xp_array(X):
            _, X, _ = _xp_validate(self, X, False)
            return X @ self.components_.T
        X = self._validate(X, reset=False)
        return np.asarray(X @ self.components_.T)

    def inverse_transform(self, X):
        """Map projections back to the input space (lazily for a dask array)."""
        check_is_fitted(self)
        if _is_dask(X):
            from . import _dask

            return _dask.inverse_transform(self, X)
        return self._check_projections(X) @ self.components_
