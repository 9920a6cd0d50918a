"""Metrics of subspace clustering.

Normalized mutual information and the adjusted Rand index are in scikit-learn
(:func:`sklearn.metrics.normalized_mutual_info_score`,
:func:`sklearn.metrics.adjusted_rand_score`); lowdim does not re-export them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from ._validation import canonical_csr
from ._xp import is_xp_array

__all__ = ["clustering_accuracy", "connectivity", "subspace_preserving_error"]


def _host_only(x, name: str) -> None:
    """The metrics run on the host (NumPy, SciPy's matching and eigensolvers) and have no
    device implementation: an array-API array (CuPy, ``array_api_strict``, ...) or a cupyx
    sparse matrix, e.g. the ``labels_`` or ``representation_matrix_`` of an estimator fitted
    on the GPU, is a NotImplementedError naming the explicit conversion instead of a silent
    copy to the host (``np.asarray`` copied array_api_strict arrays, and CuPy refused with
    its own TypeError)."""
    if is_xp_array(x):
        mod = type(x).__module__.split(".")[0]
        raise NotImplementedError(
            f"lowdim.metrics compute on the host and have no {mod} implementation: {name} is "
            f"a {mod} {type(x).__name__}; copy it to the host explicitly (CuPy: x.get() or "
            "cupy.asnumpy(x), for cupyx sparse matrices too; other namespaces: their "
            "to_device / numpy conversion)"
        )


def _labels(y, name: str) -> np.ndarray:
    _host_only(y, name)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "iub" and y.dtype.kind not in "OUS":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y
        raise ValueError(f"{name} must hold integer or string labels, got dtype {y.dtype}")
    if y.dtype.kind == "O":
        try:
            np.unique(y)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in y.tolist()})
            raise TypeError(
                f"{name} mixes label types ({', '.join(kinds)}); use integers or strings throughout"
            ) from None
    return y


def _codes(y) -> tuple[np.ndarray, int]:
    uniq, codes = np.unique(y, return_inverse=True)
    return codes.reshape(-1), len(uniq)


def clustering_accuracy(labels_true, labels_pred) -> float:
    """Fraction of points whose cluster maps to their class under the best one-to-one matching.

    The matching between predicted clusters and true classes maximizes the number of agreeing
    points (Hungarian algorithm on the contingency table,
    :func:`scipy.optimize.linear_sum_assignment`).
    With different numbers of clusters and classes, the surplus clusters match nothing and
    their points count as errors. Invariant to renaming the labels of either argument;
    symmetric in its arguments.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_samples,)
        Integer or string labels.

    Returns
    -------
    float in (0, 1]

    Examples
    --------
    >>> from lowdim.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 3, 7])
    0.8333333333333334
    """
    t = _labels(labels_true, "labels_true")
    p = _labels(labels_pred, "labels_pred")
    if t.shape != p.shape:
        raise ValueError(f"labels_true has {t.shape[0]} entries but labels_pred {p.shape[0]}")
    if t.shape[0] == 0:
        raise ValueError("the label arrays are empty")
    ti, nt = _codes(t)
    pi, npred = _codes(p)
    table = sp.coo_matrix((np.ones(ti.shape[0]), (ti, pi)), shape=(nt, npred)).tocsr()
    return _best_matching(table) / t.shape[0]


# Contingency tables up to this many cells (32 MB of float64) are matched densely
# (Hungarian); larger ones (many clusters) sparsely, never forming the K_true x K_pred table.
_DENSE_MATCHING_CELLS = 1 << 22


def _best_matching(table: sp.csr_matrix) -> float:
    """The largest total count of a one-to-one matching of the rows and columns of a
    contingency table (canonical CSR of counts). Dense tables: scipy's
    ``linear_sum_assignment``; large ones: ``min_weight_full_bipartite_matching`` on the
    stored counts (at most one per point) plus a dummy column per row of weight ``w`` below
    1 / n_rows, so that a full matching exists; as the counts are integers, the dummies
    (``w`` in all below 1) never displace a count. Memory O(nnz + K), not O(K^2): 8000
    singleton clusters took 975 MB."""
    nt, npred = table.shape
    if nt * npred <= _DENSE_MATCHING_CELLS:
        dense = table.toarray()
        rows, cols = linear_sum_assignment(dense, maximize=True)
        return float(dense[rows, cols].sum())
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    if nt > npred:
        table = table.T.tocsr()
        nt, npred = npred, nt
    w = 0.5 / nt
    dummy = sp.csr_matrix(
        (np.full(nt, w), (np.arange(nt), npred + np.arange(nt))), (nt, nt + npred)
    )
    graph = (sp.hstack([table, sp.csr_matrix((nt, nt))]) + dummy).tocsr()
    rows, cols = min_weight_full_bipartite_matching(graph, maximize=True)
    real = cols < npred
    return float(np.asarray(table[rows[real], cols[real]]).sum())


def _square_sparse(C, name: str) -> sp.csr_matrix:
    _host_only(C, name)
    C = canonical_csr(C) if sp.issparse(C) else sp.csr_matrix(C)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be a square (n_samples x n_samples) matrix, got {C.shape}")
    if C.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be real, got dtype {C.dtype}")
    if not np.all(np.isfinite(C.data)):
        raise ValueError(f"{name} contains NaN or infinity")
    return C


def _representation_and_labels(representation, labels_true):
    C = _square_sparse(representation, "representation")
    y = _labels(labels_true, "labels_true")
    if y.shape[0] != C.shape[0]:
        raise ValueError(
            f"representation is {C.shape[0]} x {C.shape[1]} but labels_true has "
            f"{y.shape[0]} entries"
        )
    return C, y


def subspace_preserving_error(representation, labels_true) -> float:
    """Mean fraction of each point's representation mass that lies on other classes.

    For row ``j`` of the representation matrix ``C`` (point ``j`` written as a combination of
    the others) the error is ``sum_{i: y_i != y_j} |C_ji| / sum_i |C_ji|``; the result is the
    mean over the rows with at least one nonzero entry (an all-zero row violates nothing and
    is left out; :func:`connectivity` is the metric that sees it). 0 means every point is
    written with points of its own class only ("subspace-preserving"), the condition under
    which spectral clustering of ``|C| + |C|^T`` can be exact.

    Parameters
    ----------
    representation : array-like or sparse matrix of shape (n_samples, n_samples)
    labels_true : array-like of shape (n_samples,)

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from lowdim.metrics import subspace_preserving_error
    >>> C = np.array([[0, 1, 0], [2, 0, 2], [0, 0, 0]])
    >>> subspace_preserving_error(C, [0, 0, 1])   # row 1: half its mass on class 1
    0.25
    """
    C, y = _representation_and_labels(representation, labels_true)
    codes, _ = _codes(y)
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    mass = np.abs(C.data).astype(np.float64)
    total = np.bincount(rows, weights=mass, minlength=C.shape[0])
    wrong = np.bincount(
        rows, weights=mass * (codes[rows] != codes[C.indices]), minlength=C.shape[0]
    )
    used = total > 0
    if not np.any(used):
        return 0.0
    return float(np.mean(wrong[used] / total[used]))


def _algebraic_connectivity(W: sp.csr_matrix) -> float:
    """Second smallest eigenvalue of the normalized Laplacian of the graph ``W``."""
    n = W.shape[0]
    deg = np.asarray(W.sum(axis=1)).ravel()
    if np.any(deg <= 0):
        return 0.0  # an isolated node: the class graph is disconnected
    d = 1.0 / np.sqrt(deg)
    S = sp.diags(d) @ W @ sp.diags(d)
    if n <= 1500:
        mu = np.linalg.eigvalsh(S.toarray())
        return float(max(0.0, 1.0 - mu[-2]))
    from scipy.sparse.linalg import eigsh

    v0 = np.sqrt(deg)  # the known top eigenvector; start next to it for a stable run
    mu = eigsh(S, k=2, which="LA", v0=v0 + 1e-3, tol=1e-10, return_eigenvectors=False)
    return float(max(0.0, 1.0 - np.sort(mu)[0]))


def connectivity(representation, labels_true) -> float:
    """How well each class is connected in the affinity graph: the minimum over classes of the
    algebraic connectivity (second smallest eigenvalue of the normalized Laplacian) of the
    class's subgraph of ``W = |C| + |C|^T``.

    0 means some class falls apart into several components (spectral clustering may then split
    it); larger is better (at most ``n / (n - 1)`` for a class of ``n`` points, reached by a
    complete graph with equal weights). Classes with a single point are skipped.

    Parameters
    ----------
    representation : array-like or sparse matrix of shape (n_samples, n_samples)
        A representation matrix or an affinity; it is symmetrized as ``|C| + |C|^T``.
    labels_true : array-like of shape (n_samples,)

    Returns
    -------
    float >= 0

    Examples
    --------
    >>> import numpy as np
    >>> from lowdim.metrics import connectivity
    >>> C = np.ones((3, 3)) - np.eye(3)       # a triangle: complete graph on 3 nodes
    >>> round(connectivity(C, [0, 0, 0]), 12)
    1.5
    >>> connectivity(np.eye(3), [0, 0, 0])    # no edges between distinct points
    0.0
    """
    C, y = _representation_and_labels(representation, labels_true)
    A = abs(C).astype(np.float64)
    W = (A + A.T).tocsr()
    W.setdiag(0)
    W.eliminate_zeros()
    codes, k = _codes(y)
    best = None
    for c in range(k):
        idx = np.flatnonzero(codes == c)
        if idx.shape[0] < 2:
            continue
        lam = _algebraic_connectivity(W[idx][:, idx].tocsr())
        best = lam if best is None else min(best, lam)
    if best is None:
        what = "there are no points" if y.shape[0] == 0 else "every class has a single point"
        raise ValueError(f"{what}: connectivity is undefined")
    return best
