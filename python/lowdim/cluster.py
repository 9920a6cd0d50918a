"""Subspace clustering: self-expressive affinities, spectral clustering, K-subspaces.

Points lying near a union of low-dimensional linear subspaces are clustered by subspace.
The self-expressive methods write every point as a sparse (SSC-OMP, EnSC) or least-squares
(LSR) combination of the other points; when the combination uses only points of the same
subspace ("subspace-preserving"), the affinity ``W = |C| + |C|^T`` has no edges between
subspaces and spectral clustering recovers them. TSC links each point to the points with
the largest absolute cosine similarity. K-subspaces fits the subspaces directly.

Every kernel runs in Rust, in parallel over chunks of points, and memory is
``O(n_samples * (n_features + n_nonzero))``: no ``n_samples x n_samples`` dense matrix is
formed, except by LSR and EnSC with ``tau = 0`` on wide data (``n_samples < n_features``),
whose closed forms then eigendecompose the ``n_samples x n_samples`` Gram matrix (smaller
than the data) instead of the ``n_features x n_features`` one.
Points are scaled to unit norm before the self-expressive kernels (the subspaces are
scale-invariant). Results depend on ``random_state`` only, and are bitwise identical at a
given thread count. Across thread counts SSCOMP, EnSC (``tau > 0``), TSC and the spectral
step stay bitwise identical; an eigendecomposition larger than a few hundred (LSR and EnSC
``tau = 0`` with ``min(n_samples, n_features)`` above it, the bases of a KSubspaces cluster of
more than a few hundred points and features) rounds differently with the thread count: the
affinity and ``bases_`` change in the last bits, the labels only at a near-tie.

When to use: data that really lie near linear subspaces (motion trajectories, face images
under varying lighting, deep features). For clusters that are blobs, use k-means; for
curved manifolds (circles), these methods are the wrong model.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _lowdim
from ._progress import resolve as _resolve_progress
from ._validation import (
    SAFE_F32,
    SAFE_F64,
    _native,
    c_aligned,
    canonical_csr,
    check_bool,
    check_estimator_kind,
    check_int,
    check_seed,
    pow2_scale,
)
from ._xp import is_xp_array

__all__ = [
    "EnSC",
    "KSubspaces",
    "LSR",
    "SSCOMP",
    "TSC",
    "spectral_clustering",
]

_DEFAULT_MAX_CLUSTERS = 50


def _check_n_clusters(n_clusters, n_samples: int):
    if n_clusters is None:
        return None
    n_clusters = check_int(n_clusters, "n_clusters", 1)
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of points ({n_samples})"
        )
    return n_clusters


def _check_positive(value, name: str, *, low=0.0, high=None, low_open=True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = np.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and value <= high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high else "")
        raise ValueError(f"{name}={value} is out of range: it must be {bound}")
    return value


def _csr_payload(W: sp.csr_matrix):
    idx = np.int32 if W.indices.dtype == np.int32 and W.indptr.dtype == np.int32 else np.int64
    return (
        c_aligned(W.data, W.dtype),
        c_aligned(W.indices, idx),
        c_aligned(W.indptr, idx),
        W.shape[0],
        W.shape[1],
    )


def _reject_xp(X, what: str) -> None:
    """A guard of the NumPy (Rust) path: array-API input (CuPy, ...) is dispatched to its own
    path before validation, so it never reaches here; if it did, fail rather than copy it to
    the host behind the caller's back."""
    if is_xp_array(X):
        mod = type(X).__module__.split(".")[0]
        raise TypeError(
            f"{what}: {mod} arrays take the array-API path, not the NumPy one (no silent "
            "copy to the host is made); convert explicitly, e.g. numpy.asarray(X), to run on "
            "the CPU kernels"
        )


def _check_affinity(affinity) -> sp.csr_matrix:
    _reject_xp(affinity, "spectral_clustering")
    if sp.issparse(affinity):
        W = canonical_csr(affinity)
    else:
        a = np.asarray(affinity)
        if a.ndim != 2:
            raise ValueError(f"affinity must be a 2-D square matrix, got shape {a.shape}")
        W = sp.csr_matrix(a)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"affinity must be square, got shape {W.shape}")
    if W.shape[0] < 1:
        raise ValueError("affinity is empty")
    if W.dtype.kind not in "fiub":
        raise TypeError(f"affinity must be real, got dtype {W.dtype}")
    if W.dtype not in (np.float32, np.float64):
        W = W.astype(np.float64)
    if not np.all(np.isfinite(W.data)):
        raise ValueError("affinity contains NaN or infinity")
    if np.any(W.data < 0):
        raise ValueError("affinity has negative entries; use |W| (e.g. abs(W)) as weights")
    diff = abs(W - W.T)
    scale = np.max(W.data) if W.nnz else 0.0
    if diff.nnz and diff.max() > 1e-6 * scale:
        raise ValueError("affinity is not symmetric; symmetrize it, e.g. (W + W.T) / 2")
    return W


def spectral_clustering(
    affinity,
    n_clusters=None,
    *,
    n_init: int = 20,
    max_clusters: int | None = None,
    random_state=None,
    return_eigenvalues: bool = False,
):
    """Normalized spectral clustering of a sparse affinity graph, in Rust.

    The top eigenvectors of ``D^{-1/2} W D^{-1/2}`` (``D`` the degrees; isolated nodes get
    weight 0) are computed by a sparse block eigensolver, their rows normalized to unit length
    and clustered by k-means++ with ``n_init`` restarts (Ng, Jordan & Weiss). Nothing of size
    ``n x n`` is formed beyond the given sparse ``affinity``.

    Parameters
    ----------
    affinity : sparse matrix or array of shape (n, n)
        Symmetric, nonnegative, finite weights.
    n_clusters : int or None
        Number of clusters. None estimates it from the largest eigengap
        ``lambda_k - lambda_{k+1}`` among the top ``max_clusters + 1`` eigenvalues of
        ``D^{-1/2} W D^{-1/2}`` (the number of connected components when the graph has them).
    n_init : int, default 20
        k-means restarts on the spectral embedding.
    max_clusters : int or None
        Largest number of clusters considered when ``n_clusters`` is None (default
        ``min(50, n - 1)``).
    random_state : None, int or numpy Generator
    return_eigenvalues : bool, default False
        Also return the computed top eigenvalues (descending).

    Returns
    -------
    labels : ndarray of shape (n,), int64
        Cluster labels in ``0 .. n_clusters - 1``, numbered in order of first appearance.
    eigenvalues : ndarray of float64, only if ``return_eigenvalues``

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from lowdim.cluster import spectral_clustering
    >>> block = np.ones((3, 3)) - np.eye(3)
    >>> W = sp.block_diag([block, block]).tocsr()        # two triangles
    >>> spectral_clustering(W, 2, random_state=0).tolist()
    [0, 0, 0, 1, 1, 1]
    >>> labels, ev = spectral_clustering(W, None, random_state=0, return_eigenvalues=True)
    >>> int(labels.max() + 1), np.round(ev[:3], 6).tolist()
    (2, [1.0, 1.0, -0.5])

    A ``cupyx.scipy.sparse`` matrix or a dense CuPy array (or another array-API array) is
    clustered in its own namespace, on its device (``lowdim._xp_cluster.spectral``: cupyx
    ``eigsh`` and k-means on the GPU for CuPy; scipy's ``eigsh`` on the host for other
    namespaces, which have no sparse format); the labels and eigenvalues are then arrays of
    that namespace. The eigengap estimate is the same; the k-means draws are not the Rust
    path's, so labels agree with it up to a permutation.
    """
    return_eigenvalues = check_bool(return_eigenvalues, "return_eigenvalues")
    if is_xp_array(affinity):
        return _spectral_clustering_xp(
            affinity, n_clusters, n_init, max_clusters, random_state, return_eigenvalues
        )
    W = _check_affinity(affinity)
    n_clusters, n_init, max_clusters, seed = _spectral_args(
        W.shape[0], n_clusters, n_init, max_clusters, random_state
    )
    labels, evals, _ = _rust_spectral(W, n_clusters, max_clusters, n_init, seed)
    if return_eigenvalues:
        return labels, np.asarray(evals, dtype=np.float64)
    return labels


def warn_if_edgeless(W) -> None:
    """Warn when the affinity graph has no edge between distinct points: every partition is
    then as good as any other, and the labels say nothing about the data."""
    n = W.shape[0]
    if n > 1 and W.nnz == int((W.diagonal() != 0).sum()):
        warnings.warn(
            "the affinity graph has no edges between distinct points: the labels are "
            "arbitrary (for EnSC, raise gamma; for SSCOMP/TSC, check the data)",
            RuntimeWarning,
            stacklevel=3,
        )


def _rust_spectral(W, n_clusters, max_clusters, n_init, seed):
    """``(labels int64, eigenvalues float64, k)`` of the Rust spectral kernel on a checked
    CSR affinity."""
    warn_if_edgeless(W)
    labels, evals, k = _lowdim.spectral_clustering(
        _csr_payload(W), n_clusters or 0, max_clusters, n_init, seed
    )
    return np.asarray(labels, dtype=np.int64), np.asarray(evals, dtype=np.float64), int(k)


def _spectral_args(n, n_clusters, n_init, max_clusters, random_state):
    """Validated ``(n_clusters or None, n_init, max_clusters, seed)`` of spectral_clustering
    for an n x n affinity."""
    n_clusters = _check_n_clusters(n_clusters, n)
    n_init = check_int(n_init, "n_init", 1)
    if max_clusters is None:
        max_clusters = max(1, min(_DEFAULT_MAX_CLUSTERS, n - 1))
    else:
        max_clusters = check_int(max_clusters, "max_clusters", 1, max(1, n - 1))
    return n_clusters, n_init, max_clusters, check_seed(random_state)


def _spectral_clustering_xp(affinity, n_clusters, n_init, max_clusters, random_state, ret_ev):
    """:func:`spectral_clustering` on an array-API / cupyx sparse affinity (same checks)."""
    from . import _xp_cluster as xc

    xp, W, like = xc.check_affinity(affinity)
    n_clusters, n_init, max_clusters, seed = _spectral_args(
        W.shape[0], n_clusters, n_init, max_clusters, random_state
    )
    labels, evals, _ = xc.spectral(xp, W, n_clusters, max_clusters, n_init, seed, like)
    return (labels, evals) if ret_ev else labels


def _xp_prepare(est, X):
    """Validation of an array-API input of a clustering estimator (the input's namespace)."""
    from . import _xp

    check_estimator_kind(X)
    xp, X, _ = _xp.check_xp_matrix(X, "X")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"{type(est).__name__} needs at least 2 points (rows), got {n}")
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError("X contains NaN or infinity; remove or impute it first")
    n_clusters = _check_n_clusters(est.n_clusters, n)
    n_init = check_int(est.n_init, "n_init", 1)
    return xp, X, n_clusters, n_init, check_seed(est.random_state)


def _xp_run(est, kernel, *args):
    """An ``_xp_cluster`` kernel with the estimator's ``progress``."""
    callback, bar = _resolve_progress(getattr(est, "progress", False), type(est).__name__)
    try:
        return kernel(*args, progress=callback)
    finally:
        if bar is not None:
            bar.close()


def _xp_finish(est, xp, X, W, n_clusters, n_init, seed):
    """Spectral step of the array-API path; sets the fitted attributes, returns ``est``."""
    from . import _xp_cluster as xc

    est.affinity_matrix_ = W
    max_clusters = max(1, min(_DEFAULT_MAX_CLUSTERS, X.shape[0] - 1))
    labels, evals, k = xc.spectral(xp, W, n_clusters, max_clusters, n_init, seed, X)
    est.labels_ = labels
    est.eigenvalues_ = evals
    est.n_clusters_ = int(k)
    est.n_features_in_ = int(X.shape[1])
    return est


class _SubspaceClustering(ClusterMixin, BaseEstimator):
    """Shared fit logic: validate, build the affinity, run spectral clustering."""

    def _with_progress(self, kernel, *args):
        """Run a Rust kernel with this estimator's ``progress`` (bar, callback or nothing)."""
        callback, bar = _resolve_progress(getattr(self, "progress", False), type(self).__name__)
        try:
            return kernel(*args, callback)
        finally:
            if bar is not None:
                bar.close()

    def _validate(self, X):
        _reject_xp(X, type(self).__name__)
        check_estimator_kind(X)
        X = validate_data(
            self,
            X,
            accept_sparse=False,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            order=None,
        )
        # scikit-learn keeps unaligned views (a packed record's field): see _native
        X = _native(X, X.dtype)
        n_clusters = _check_n_clusters(self.n_clusters, X.shape[0])
        n_init = check_int(self.n_init, "n_init", 1)
        return X, n_clusters, n_init

    def _spectral(self, W, n_clusters, n_init, seed):
        max_clusters = max(1, min(_DEFAULT_MAX_CLUSTERS, W.shape[0] - 1))
        self.labels_, self.eigenvalues_, self.n_clusters_ = _rust_spectral(
            W, n_clusters, max_clusters, n_init, seed
        )


def _representation(C: sp.csr_matrix) -> sp.csr_matrix:
    """The affinity ``(|C^| + |C^|^T) / 2`` with the rows of ``C^ = C`` scaled to unit l2 norm."""
    Cn = normalize(abs(C), norm="l2", axis=1)
    W = (Cn + Cn.T) * 0.5
    return sp.csr_matrix(W)


class _SelfExpressive(_SubspaceClustering):
    """A self-expressive method: representation -> affinity -> spectral clustering."""

    def _kernel(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y=None):
        """Compute the representation matrix, the affinity and the cluster labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The points, one per row (float32 is kept as float32). A CuPy array (or another
            array-API array) is clustered in its own namespace, on its device (see
            ``lowdim._xp_cluster`` and ``lowdim._xp_ensc``: the same objective and result as
            the Rust kernels, batched over blocks of points). Then ``labels_`` and
            ``eigenvalues_`` are arrays of that namespace; ``representation_matrix_`` and
            ``affinity_matrix_`` are ``cupyx.scipy.sparse`` CSR matrices on the GPU for CuPy
            input, and ``scipy.sparse`` CSR matrices on the host for other namespaces (which
            have no sparse format; they hold ``O(n_samples * n_nonzero)`` entries).
        y : ignored

        Returns
        -------
        self
        """
        if is_xp_array(X):
            return self._fit_xp(X)
        X, n_clusters, n_init = self._validate(X)
        seed = check_seed(self.random_state)
        indptr, indices, data = self._kernel(X)
        n = X.shape[0]
        C = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        self.representation_matrix_ = C
        self.affinity_matrix_ = _representation(C)
        self._spectral(self.affinity_matrix_, n_clusters, n_init, seed)
        return self

    def _xp_kernel(self, X):  # pragma: no cover - abstract
        """The array-API kernel: ``(indptr, indices, data)`` of the representation."""
        raise NotImplementedError

    def _fit_xp(self, X):
        from . import _xp_cluster as xc

        xp, X, n_clusters, n_init, seed = _xp_prepare(self, X)
        n = X.shape[0]
        pieces = self._xp_kernel(X)
        self.representation_matrix_ = xc.csr(xp, *pieces, n)
        return _xp_finish(self, xp, X, xc.affinity(xp, *pieces, n), n_clusters, n_init, seed)


class SSCOMP(_SelfExpressive):
    """Sparse subspace clustering by orthogonal matching pursuit (SSC-OMP).

    Every point (scaled to unit norm) is written as a sparse combination of at most
    ``n_nonzero`` other points, chosen greedily by orthogonal matching pursuit until the
    residual norm drops below ``tol`` (You, Robinson & Vidal, CVPR 2016). The affinity
    ``(|C| + |C|^T) / 2`` (rows of ``C`` l2-normalized) is then clustered spectrally.

    Parameters
    ----------
    n_clusters : int or None, default 8
        Number of clusters; None estimates it from the eigengap of the affinity.
    n_nonzero : int, default 10
        Maximum number of points in each representation; about the subspace dimension or a
        little more. Must be smaller than the number of points.
    tol : float in [0, 1), default 1e-6
        OMP stops when the residual norm of a unit-norm point is ``<= tol``.
    n_init : int, default 20
        k-means restarts in the spectral step.
    random_state : None, int or numpy Generator
        Seed of the spectral step's k-means (OMP itself is deterministic).
    progress : bool or callable, default False
        True: a progress bar on stderr (when it is a terminal) over the blocks of points of
        the representation kernel; a callable is called as ``progress(done, total)``. Ctrl-C
        stops the kernel at its next block with ``KeyboardInterrupt`` either way.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    representation_matrix_ : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
        Row ``j`` holds the coefficients writing point ``j`` by the others.
    affinity_matrix_ : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
    eigenvalues_ : ndarray
        Top eigenvalues of the normalized affinity (used for the eigengap).
    n_clusters_ : int
        The number of clusters used (estimated when ``n_clusters`` is None).
    n_features_in_ : int

    Examples
    --------
    >>> from lowdim.cluster import SSCOMP
    >>> from lowdim.datasets import union_of_subspaces
    >>> from lowdim.metrics import clustering_accuracy
    >>> X, y = union_of_subspaces(3, 3, 20, 50, noise=0.01, seed=0)
    >>> model = SSCOMP(n_clusters=3, n_nonzero=5, random_state=0).fit(X)
    >>> clustering_accuracy(y, model.labels_)
    1.0
    """

    def __init__(
        self, n_clusters=8, *, n_nonzero=10, tol=1e-6, n_init=20, random_state=None, progress=False
    ):
        self.n_clusters = n_clusters
        self.n_nonzero = n_nonzero
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.progress = progress

    def _params(self, n_samples: int):
        n_nonzero = check_int(self.n_nonzero, "n_nonzero", 1)
        if n_nonzero >= n_samples:
            raise ValueError(
                f"n_nonzero={n_nonzero} needs more points than that: X has {n_samples} "
                f"points (at most n_samples - 1 = {n_samples - 1} others can be used)"
            )
        tol = _check_positive(self.tol, "tol", low=0.0, low_open=False)
        if tol >= 1.0:
            raise ValueError(
                f"tol={tol} must be < 1: OMP runs on the points scaled to unit norm, whose "
                "residual starts at 1, so it would stop before selecting any point (every "
                "representation empty)"
            )
        return n_nonzero, tol

    def _kernel(self, X):
        n_nonzero, tol = self._params(X.shape[0])
        return self._with_progress(_lowdim.ssc_omp, X, n_nonzero, tol)

    def _xp_kernel(self, X):
        from . import _xp_cluster as xc

        return _xp_run(self, xc.ssc_omp, X, *self._params(X.shape[0]))


class EnSC(_SelfExpressive):
    """Elastic-net subspace clustering (EnSC) with the oracle-guided active-set solver.

    Every point ``x_j`` (scaled to unit norm) is written by the other points through

        min_c  tau ||c||_1 + (1 - tau)/2 ||c||_2^2 + alpha_j/2 ||x_j - sum_i c_i x_i||^2

    solved exactly by ORGEN (You, Li, Robinson & Vidal, CVPR 2016): an elastic net on a small
    active set of points, grown by an "oracle point" test until no point violates optimality.
    Points that are exact copies of each other (the same row after scaling to unit norm) pose
    the same problem: it is solved once, and each copy gets that row with its own index and
    the first copy's swapped. Near-copies are solved one by one, and the elastic net spreads
    each one's weight over all the others, so a large group of them makes every one of their
    active sets that large: the time grows about as the fourth power of the group's size
    (300 points within 1e-3 of each other among 1500: about 20 s on 2 cores).

    **The gamma contract.** With ``mu_j = max_{i != j} |<x_i, x_j>|``, the smallest ``alpha``
    for which ``c = 0`` is not optimal is ``alpha_0 = tau / mu_j``; lowdim uses
    ``alpha_j = gamma * alpha_0``, so ``gamma > 1`` is needed for nonzero coefficients and
    larger ``gamma`` means a tighter fit (denser ``c``); 5 to 500 is the useful range. For
    ``tau = 0`` (ridge, every ``alpha > 0`` gives a nonzero ``c``) ``alpha_j = gamma / mu_j``,
    solved in closed form from the eigendecomposition of the smaller Gram matrix, as
    :class:`LSR` (``n_features x n_features``, or ``n_samples x n_samples`` on wide data).

    Parameters
    ----------
    n_clusters : int or None, default 8
    gamma : float, default 50.0
        See the gamma contract above.
    tau : float in [0, 1], default 0.9
        Balance of l1 and l2: ``tau = 1`` is SSC (lasso), ``tau = 0`` least squares (ridge).
    n_nonzero : int, default 50
        Entries kept per representation (those of largest magnitude).
    support_size : int, default 100
        Initial active-set size of ORGEN.
    max_iter : int, default 40
        Active-set rounds.
    tol : float, default 1e-6
        Stopping tolerance (largest coefficient change relative to the largest coefficient)
        of the coordinate-descent fallback of the inner elastic-net solver. The subproblems
        are solved exactly by feature-sign search; the fallback runs only for a point where
        that search fails on rounding, so ``tol`` usually has no effect on the result.
    n_init : int, default 20
    random_state : None, int or numpy Generator
    progress : bool or callable, default False
        As in :class:`SSCOMP`.

    Attributes
    ----------
    labels_, representation_matrix_, affinity_matrix_, eigenvalues_, n_clusters_,
    n_features_in_ : as in :class:`SSCOMP`.
    n_iter_ : int
        The most active-set rounds any point needed (at most ``max_iter``).

    Examples
    --------
    >>> from lowdim.cluster import EnSC
    >>> from lowdim.datasets import union_of_subspaces
    >>> from lowdim.metrics import clustering_accuracy
    >>> X, y = union_of_subspaces(3, 2, 10, 40, seed=0)
    >>> model = EnSC(n_clusters=3, random_state=0).fit(X)
    >>> clustering_accuracy(y, model.labels_)
    1.0
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=50.0,
        tau=0.9,
        n_nonzero=50,
        support_size=100,
        max_iter=40,
        tol=1e-6,
        n_init=20,
        random_state=None,
        progress=False,
    ):
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.tau = tau
        self.n_nonzero = n_nonzero
        self.support_size = support_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.progress = progress

    def _params(self):
        gamma = _check_positive(self.gamma, "gamma")
        tau = _check_positive(self.tau, "tau", low=0.0, high=1.0, low_open=False)
        if tau > 0 and gamma <= 1:
            raise ValueError(
                f"gamma={gamma} with tau={tau} makes every coefficient 0 (gamma > 1 is needed "
                "for nonzero coefficients; 5 to 500 is the useful range)"
            )
        n_nonzero = check_int(self.n_nonzero, "n_nonzero", 1)
        support = check_int(self.support_size, "support_size", 1)
        max_iter = check_int(self.max_iter, "max_iter", 1)
        tol = _check_positive(self.tol, "tol")
        return gamma, tau, n_nonzero, support, max_iter, tol

    def _kernel(self, X):
        indptr, indices, data, n_iter = self._with_progress(_lowdim.ensc, X, *self._params())
        self._set_n_iter(n_iter)
        return indptr, indices, data

    def _xp_kernel(self, X):
        from . import _xp_ensc

        *pieces, n_iter = _xp_run(self, _xp_ensc.ensc, X, *self._params())
        self._set_n_iter(n_iter)
        return pieces

    def _set_n_iter(self, n_iter):
        """``n_iter_`` from the kernel's most rounds (0 for tau = 0, solved in closed form:
        one step); a ConvergenceWarning when some point used every round (its last round's
        support was not checked for violations)."""
        n_iter = int(n_iter)
        self.n_iter_ = max(n_iter, 1)
        if n_iter >= self.max_iter:
            warnings.warn(
                f"EnSC used all max_iter={self.max_iter} active-set rounds for some points: "
                "their coefficients may not be optimal; increase max_iter",
                ConvergenceWarning,
                stacklevel=4,
            )


class LSR(_SelfExpressive):
    """Least-squares regression subspace clustering (LSR, Lu et al. 2012).

    The representation solves ``min ||X^T - X^T C||_F^2 + (1/gamma) ||C||_F^2`` with
    ``diag(C) = 0`` (points as rows of ``X``, scaled to unit norm), in closed form from the
    eigendecomposition of the smaller Gram matrix, chunk by chunk (``n`` points, ``d``
    features): with ``n >= d`` the ``d x d`` system (Woodbury; ``O(n d^2 + d^3)`` time,
    ``O(d^2)`` memory besides the data, no ``n x n`` matrix); with fewer points than
    features (wide data) the ``n x n`` Gram matrix (``C_ij = -Z_ij / Z_jj``,
    ``Z = (X X^T + I / gamma)^{-1}``; ``O(n^2 d + n^3)`` time, ``O(n^2)`` memory besides the
    data). Both give the same solution up to rounding. The solution is dense; each row keeps
    its ``n_nonzero`` largest entries.

    Parameters
    ----------
    n_clusters : int or None, default 8
    gamma : float, default 10.0
        Inverse ridge weight: larger fits the data more tightly.
    n_nonzero : int, default 50
        Entries kept per row.
    n_init : int, default 20
    random_state : None, int or numpy Generator
    progress : bool or callable, default False
        As in :class:`SSCOMP`.

    Attributes
    ----------
    labels_, representation_matrix_, affinity_matrix_, eigenvalues_, n_clusters_,
    n_features_in_ : as in :class:`SSCOMP`.

    Examples
    --------
    >>> from lowdim.cluster import LSR
    >>> from lowdim.datasets import union_of_subspaces
    >>> from lowdim.metrics import clustering_accuracy
    >>> X, y = union_of_subspaces(3, 2, 10, 40, seed=0)
    >>> clustering_accuracy(y, LSR(n_clusters=3, random_state=0).fit_predict(X))
    1.0
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=10.0,
        n_nonzero=50,
        n_init=20,
        random_state=None,
        progress=False,
    ):
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.n_nonzero = n_nonzero
        self.n_init = n_init
        self.random_state = random_state
        self.progress = progress

    def _params(self):
        gamma = _check_positive(self.gamma, "gamma")
        n_nonzero = check_int(self.n_nonzero, "n_nonzero", 1)
        return gamma, n_nonzero

    def _kernel(self, X):
        return self._with_progress(_lowdim.lsr, X, *self._params())

    def _xp_kernel(self, X):
        from . import _xp_cluster as xc

        return _xp_run(self, xc.lsr, X, *self._params())


class TSC(_SubspaceClustering):
    """Thresholding-based subspace clustering (TSC, Heckel & Boelcskei 2015).

    Each point is linked to the ``n_neighbors`` points of largest absolute cosine similarity
    ``|c|``, with weight ``exp(-2 arccos |c|)``; the symmetrized graph is clustered spectrally.

    Parameters
    ----------
    n_clusters : int or None, default 8
    n_neighbors : int or None, default None
        Neighbors per point; None uses ``max(3, n_samples // (20 * n_clusters))`` (the
        paper's advice of about 5% of a cluster), with ``n_clusters`` taken as 10 when None.
        Either is capped at ``n_samples - 1``.
    n_init : int, default 20
    random_state : None, int or numpy Generator
    progress : bool or callable, default False
        As in :class:`SSCOMP`.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    affinity_matrix_ : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
    eigenvalues_, n_clusters_, n_features_in_ : as in :class:`SSCOMP`.

    Examples
    --------
    >>> from lowdim.cluster import TSC
    >>> from lowdim.datasets import union_of_subspaces
    >>> from lowdim.metrics import clustering_accuracy
    >>> X, y = union_of_subspaces(3, 2, 10, 40, seed=0)
    >>> clustering_accuracy(y, TSC(n_clusters=3, n_neighbors=5, random_state=0).fit_predict(X))
    1.0
    """

    def __init__(
        self, n_clusters=8, *, n_neighbors=None, n_init=20, random_state=None, progress=False
    ):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.n_init = n_init
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, y=None):
        """Build the thresholded cosine graph and cluster it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A CuPy array (or another array-API array) is clustered in its own namespace, on
            its device, as in :meth:`SSCOMP.fit` (``affinity_matrix_`` a cupyx CSR on CuPy, a
            scipy CSR on the host otherwise; ``labels_``, ``eigenvalues_`` in the namespace).
        y : ignored

        Returns
        -------
        self
        """
        if is_xp_array(X):
            return self._fit_xp(X)
        X, n_clusters, n_init = self._validate(X)
        n = X.shape[0]
        q = self._q(n, n_clusters)
        seed = check_seed(self.random_state)
        indptr, indices, data = self._with_progress(_lowdim.tsc, X, q)
        A = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        self.affinity_matrix_ = sp.csr_matrix(A + A.T)
        self._spectral(self.affinity_matrix_, n_clusters, n_init, seed)
        return self

    def _fit_xp(self, X):
        from . import _xp_cluster as xc

        xp, X, n_clusters, n_init, seed = _xp_prepare(self, X)
        n = X.shape[0]
        pieces = _xp_run(self, xc.tsc, X, self._q(n, n_clusters))
        A = xc.csr(xp, *pieces, n)
        return _xp_finish(self, xp, X, (A + A.T).tocsr(), n_clusters, n_init, seed)

    def _q(self, n, n_clusters):
        if self.n_neighbors is None:
            q = max(3, n // (20 * (n_clusters or 10)))
        else:
            q = check_int(self.n_neighbors, "n_neighbors", 1)
        return min(q, n - 1)


class KSubspaces(ClusterMixin, BaseEstimator):
    """K-subspaces: alternating assignment to the closest subspace and per-cluster PCA.

    Minimizes ``sum_i min_k ||x_i - U_k U_k^T x_i||^2`` over ``n_clusters`` linear subspaces
    of dimension ``subspace_dim`` (orthonormal bases ``U_k``), the maximum-likelihood
    objective of a mixture of low-rank Gaussians; the best of ``n_init`` random restarts is
    kept. Unlike the spectral methods it needs the subspace dimension and is sensitive to
    initialization. Per iteration, the assignment costs
    ``O(n_samples * n_features * n_clusters * subspace_dim)`` and the refit of a cluster of
    ``m`` points (its top ``subspace_dim`` right singular vectors, from the smaller of its
    Gram matrices: the ``n_features x n_features`` scatter when ``m >= n_features``, else the
    ``m x m`` Gram matrix) costs ``O(min(m, n_features)^2 * max(m, n_features))`` time and
    ``O(min(m, n_features)^2 + m * n_features)`` memory, so at most
    ``O(n_samples * n_features * min(n_samples, n_features))`` for all clusters. It is not a
    graph method, so it has no ``affinity_matrix_``.

    Parameters
    ----------
    n_clusters : int, default 8
    subspace_dim : int, default 1
    n_init : int, default 10
    max_iter : int, default 100
    random_state : None, int or numpy Generator

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    bases_ : ndarray of shape (n_clusters, n_features, subspace_dim)
        Orthonormal bases of the fitted subspaces.
    objective_ : float
        Sum of squared residuals of the points to their subspaces.
    n_iter_ : int
        Iterations (refit + reassign) of the best restart.
    n_features_in_ : int

    Examples
    --------
    >>> from lowdim.cluster import KSubspaces
    >>> from lowdim.datasets import union_of_subspaces
    >>> from lowdim.metrics import clustering_accuracy
    >>> X, y = union_of_subspaces(3, 2, 10, 40, seed=0)
    >>> model = KSubspaces(3, 2, random_state=0).fit(X)
    >>> clustering_accuracy(y, model.labels_), model.bases_.shape
    (1.0, (3, 10, 2))
    """

    def __init__(self, n_clusters=8, subspace_dim=1, *, n_init=10, max_iter=100, random_state=None):
        self.n_clusters = n_clusters
        self.subspace_dim = subspace_dim
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the subspaces.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A CuPy array (or another array-API array) is clustered in its own namespace, on
            its device (``lowdim._xp_cluster.k_subspaces``: the same algorithm and objective,
            GEMM-shaped); ``labels_`` and ``bases_`` (in X's dtype) are then arrays of that
            namespace. Its seeds come from a NumPy generator, not the Rust kernel's stream:
            on well-separated data the partition and ``objective_`` agree with the NumPy
            path, the cluster numbering may differ.
        y : ignored

        Returns
        -------
        self
        """
        if is_xp_array(X):
            return self._fit_xp(X)
        check_estimator_kind(X)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        X = _native(X, X.dtype)  # unaligned views reached the kernel as they were
        k, dim, n_init, max_iter, seed = self._params(*X.shape)
        X, c = _safe_scaled(np, X)
        labels, bases, objective, n_iter = _lowdim.k_subspaces(X, k, dim, n_init, max_iter, seed)
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.bases_ = np.asarray(bases)
        self.objective_ = float(objective) / c / c  # inf or 0 where it is out of range
        self.n_iter_ = int(n_iter)
        return self

    def _params(self, n, d):
        k = check_int(self.n_clusters, "n_clusters", 1)
        if k > n:
            raise ValueError(f"n_clusters={k} is larger than the number of points ({n})")
        dim = check_int(self.subspace_dim, "subspace_dim", 1)
        if dim > d:
            raise ValueError(f"subspace_dim={dim} is larger than n_features={d}")
        n_init = check_int(self.n_init, "n_init", 1)
        max_iter = check_int(self.max_iter, "max_iter", 1)
        return k, dim, n_init, max_iter, check_seed(self.random_state)

    def _fit_xp(self, X):
        """The array-API path (``lowdim._xp_cluster.k_subspaces``): ``labels_`` and
        ``bases_`` in X's namespace, on its device."""
        from . import _xp_cluster as xc

        xp, X = _xp_points(X, type(self).__name__)
        n, d = X.shape
        k, dim, n_init, max_iter, seed = self._params(n, d)
        X, c = _safe_scaled(xp, X)
        labels, bases, objective, n_iter = xc.k_subspaces(X, k, dim, n_init, max_iter, seed)
        self.labels_ = labels
        self.bases_ = bases
        self.objective_ = float(objective) / c / c  # inf or 0 where it is out of range
        self.n_iter_ = int(n_iter)
        self.n_features_in_ = int(d)
        return self

    def predict(self, X):
        """Assign points to the closest fitted subspace.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            An array of the namespace the model was fitted on (NumPy for the Rust path;
            CuPy, ... for the array-API path).

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64
            In the namespace of X.
        """
        check_is_fitted(self, "bases_")
        if is_xp_array(X) or is_xp_array(self.bases_):
            return self._predict_xp(X)
        check_estimator_kind(X)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        X, _ = _safe_scaled(np, X)
        proj = np.einsum("nd,kde->nke", X, self.bases_.astype(X.dtype, copy=False))
        return np.argmax(np.einsum("nke,nke->nk", proj, proj), axis=1).astype(np.int64)

    def _predict_xp(self, X):
        from . import _xp_cluster as xc

        if not (is_xp_array(X) and is_xp_array(self.bases_)):
            where = type(self.bases_).__module__.split(".")[0]
            raise TypeError(
                f"this KSubspaces was fitted on {where} arrays: predict takes arrays of the "
                f"same kind, got {type(X).__module__.split('.')[0]} (no silent copy is made)"
            )
        xp, X = _xp_points(X, "KSubspaces.predict", min_samples=1)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but KSubspaces is expecting "
                f"{self.n_features_in_} features as input."
            )
        return xc.k_subspaces_predict(_safe_scaled(xp, X)[0], self.bases_)


def _safe_scaled(xp, X):
    """``(c X, c)`` with ``c`` a power of two that brings the largest magnitude of X to about 1
    when squares of its entries would underflow or overflow in its dtype, else ``(X, 1.0)``.

    K-subspaces' labels and bases do not depend on the scale of X, but its residuals are sums
    of squares: entries of 1e-200 gave every point a zero residual to every subspace (one
    cluster), entries of 1e200 a failed eigendecomposition. Scaling by a power of two is
    exact, so data in the safe range are untouched and out-of-range data get the labels of
    their in-range version. Two reductions; a scaled copy only when out of range."""
    safe = SAFE_F32 if X.dtype == xp.float32 else SAFE_F64
    c = pow2_scale(max(float(xp.max(X)), -float(xp.min(X))), safe)
    return (X, c) if c == 1.0 else (X * c, c)


def _xp_points(X, what: str, min_samples: int = 2):
    """(xp, X as float32/float64) for an array-API input of KSubspaces: 2-D, non-empty, at
    least ``min_samples`` rows, finite (the NumPy path's checks, in X's namespace)."""
    from . import _xp

    check_estimator_kind(X)
    xp, X, _ = _xp.check_xp_matrix(X, "X")
    if X.shape[0] < min_samples:
        raise ValueError(f"{what} needs at least {min_samples} points (rows), got {X.shape[0]}")
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError("X contains NaN or infinity; remove or impute it first")
    return xp, X
