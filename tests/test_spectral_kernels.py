"""Raw bindings of the clustering kernels: kmeans, spectral_embedding/clustering, k_subspaces."""

from __future__ import annotations

import lowdim
import numpy as np
import pytest
from lowdim import _lowdim as L

# ---------------------------------------------------------------------------- kmeans


def _blobs(n, d, k, seed):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n, d, centers=k, cluster_std=1.0, random_state=seed)
    return X, y


@pytest.mark.parametrize("n_init", [1, 5])
def test_kmeans_matches_sklearn_inertia(n_init):
    from sklearn.cluster import KMeans

    X, _ = _blobs(2000, 5, 6, 0)
    labels, centers, inertia = L.kmeans(X, 6, n_init, 300, 1e-4, 0)
    km = KMeans(6, n_init=n_init, random_state=0).fit(X)
    assert inertia == pytest.approx(km.inertia_, rel=1e-6)
    assert labels.dtype == np.int64 and labels.shape == (2000,)
    assert centers.shape == (6, 5) and centers.dtype == np.float64
    # Inertia agrees with the returned labels and centers.
    rec = ((X - centers[labels]) ** 2).sum()
    assert inertia == pytest.approx(rec, rel=1e-10)
    # Each label is the closest center.
    d2 = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))


def test_kmeans_float32_strided():
    X, _ = _blobs(600, 4, 3, 1)
    X32 = np.asfortranarray(X.astype(np.float32))[::-1, ::2]
    labels, centers, inertia = L.kmeans(X32, 3, 3, 100, 1e-4, 0)
    assert centers.dtype == np.float32 and centers.shape == (3, 2)
    ref, _, ref_inertia = L.kmeans(np.ascontiguousarray(X32, dtype=np.float64), 3, 3, 100, 1e-4, 0)
    np.testing.assert_array_equal(labels, ref)
    assert inertia == pytest.approx(ref_inertia, rel=1e-6)


def test_kmeans_deterministic_across_threads(restore_threads):
    X, _ = _blobs(3000, 3, 8, 2)
    lowdim.set_num_threads(1)
    a = L.kmeans(X, 8, 4, 300, 1e-4, 5)
    lowdim.set_num_threads(2)
    b = L.kmeans(X, 8, 4, 300, 1e-4, 5)
    c = L.kmeans(X, 8, 4, 300, 1e-4, 5)
    for r in (b, c):
        np.testing.assert_array_equal(a[0], r[0])
        np.testing.assert_array_equal(a[1], r[1])
        assert a[2] == r[2]
    # A different seed may land elsewhere but still gives a valid clustering.
    d = L.kmeans(X, 8, 1, 300, 1e-4, 6)
    assert d[0].shape == (3000,) and set(np.unique(d[0])) <= set(range(8))


def test_kmeans_bad_input():
    X, _ = _blobs(50, 2, 2, 0)
    with pytest.raises(ValueError, match="n_clusters"):
        L.kmeans(X, 51, 1, 10, 1e-4, 0)
    with pytest.raises(ValueError, match="n_clusters"):
        L.kmeans(X, 0, 1, 10, 1e-4, 0)
    with pytest.raises(ValueError, match="n_init"):
        L.kmeans(X, 2, 0, 10, 1e-4, 0)
    with pytest.raises(ValueError, match="tol"):
        L.kmeans(X, 2, 1, 10, -1.0, 0)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        L.kmeans(Xn, 2, 1, 10, 1e-4, 0)


# ---------------------------------------------------------------------- spectral


def _tup(W, index_dtype=None):
    W = W.tocsr()
    idx, ptr = W.indices, W.indptr
    if index_dtype is not None:
        idx, ptr = idx.astype(index_dtype), ptr.astype(index_dtype)
    return (W.data, idx, ptr, W.shape[0], W.shape[1])


def _knn_affinity(n, d, k, seed):
    from sklearn.neighbors import kneighbors_graph

    X = np.random.default_rng(seed).standard_normal((n, d))
    A = kneighbors_graph(X, k, mode="distance", include_self=False)
    A.data = np.exp(-(A.data**2) / np.median(A.data) ** 2)
    return ((A + A.T) / 2).tocsr()


def _normalized(W):
    import scipy.sparse as sp

    deg = np.asarray(W.sum(1)).ravel()
    dinv = np.zeros_like(deg)
    dinv[deg > 0] = 1 / np.sqrt(deg[deg > 0])
    D = sp.diags(dinv)
    return (D @ W @ D).tocsr(), deg


def _eigsh_top(W, k):
    from scipy.sparse.linalg import eigsh

    S, _ = _normalized(W)
    vals, vecs = eigsh(S, k + 1, which="LA")
    return vals[::-1], vecs[:, ::-1]


def _min_cos(A, B):
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    return np.linalg.svd(qa.T @ qb, compute_uv=False).min()


def _clustered_affinity(n_per, c, deg, n_noise, seed):
    """c groups of n_per nodes, deg random in-group links per node, n_noise weak cross links."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = n_per * c
    rows = np.repeat(np.arange(n), deg)
    cols = (rows // n_per) * n_per + rng.integers(0, n_per, rows.size)
    w = rng.uniform(0.5, 1.5, rows.size)
    nr, nc = rng.integers(0, n, n_noise), rng.integers(0, n, n_noise)
    A = sp.csr_matrix(
        (np.r_[w, np.full(n_noise, 0.1)], (np.r_[rows, nr], np.r_[cols, nc])), shape=(n, n)
    )
    A.setdiag(0)
    A.eliminate_zeros()
    return ((A + A.T) / 2).tocsr(), np.arange(n) // n_per


def test_embedding_matches_eigsh_connected_knn():
    from scipy.sparse.csgraph import connected_components

    W = _knn_affinity(800, 5, 10, 0)
    assert connected_components(W)[0] == 1
    k = 6
    vals, V = L.spectral_embedding(_tup(W), k, 0)
    ref, RV = _eigsh_top(W, k)
    assert vals.dtype == np.float64 and V.shape == (800, k)
    np.testing.assert_allclose(vals, ref[:k], atol=1e-8)
    assert vals[0] == pytest.approx(1.0, abs=1e-10)
    S, _ = _normalized(W)
    assert np.linalg.norm(S @ V - V * vals, axis=0).max() < 1e-6
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-10)
    # Eigenspaces agree wherever the gap to the next eigenvalue is decent.
    for m in range(1, k + 1):
        if ref[m - 1] - ref[m] > 1e-3:
            assert _min_cos(V[:, :m], RV[:, :m]) > 1 - 1e-8, m


def test_embedding_three_components():
    import scipy.sparse as sp

    blocks = [_knn_affinity(250, 4, 8, s) for s in range(3)]
    W = sp.block_diag(blocks).tocsr()
    vals, V = L.spectral_embedding(_tup(W, np.int64), 5, 3)
    ref, _ = _eigsh_top(W, 5)
    np.testing.assert_allclose(vals[:3], 1.0, atol=1e-10)
    np.testing.assert_allclose(vals, ref[:5], atol=1e-8)
    # The eigenspace of 1 is spanned by D^{1/2} times the component indicators.
    _, deg = _normalized(W)
    ind = np.zeros((750, 3))
    for c in range(3):
        ind[250 * c : 250 * (c + 1), c] = 1
    assert _min_cos(V[:, :3], np.sqrt(deg)[:, None] * ind) > 1 - 1e-10


def test_embedding_float32_and_seed_stability(restore_threads):
    W = _knn_affinity(600, 4, 8, 1)
    W32 = W.astype(np.float32)
    vals32, V32 = L.spectral_embedding(_tup(W32), 4, 0)
    assert V32.dtype == np.float32
    vals, V = L.spectral_embedding(_tup(W), 4, 0)
    np.testing.assert_allclose(vals32, vals, atol=1e-5)
    lowdim.set_num_threads(1)
    a = L.spectral_embedding(_tup(W), 4, 7)
    lowdim.set_num_threads(2)
    b = L.spectral_embedding(_tup(W), 4, 7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_spectral_clustering_recovers_blocks(restore_threads):
    from sklearn.metrics import adjusted_rand_score

    W, y = _clustered_affinity(200, 5, 8, 300, 0)
    labels, vals, k = L.spectral_clustering(_tup(W), 5, 10, 5, 0)
    assert k == 5 and labels.dtype == np.int64 and vals.shape == (5,)
    assert adjusted_rand_score(y, labels) == 1.0
    # Canonical labels: numbered in order of first appearance.
    _, first = np.unique(labels, return_index=True)
    np.testing.assert_array_equal(labels[np.sort(first)], np.arange(5))
    # Estimated k (eigengap over the top max_clusters + 1 eigenvalues).
    labels0, vals0, k0 = L.spectral_clustering(_tup(W), 0, 10, 5, 0)
    assert k0 == 5 and vals0.shape == (11,)
    assert adjusted_rand_score(y, labels0) == 1.0
    ref, _ = _eigsh_top(W, 10)
    np.testing.assert_allclose(vals0[:5], ref[:5], atol=1e-8)  # the chosen k: tight
    np.testing.assert_allclose(vals0, ref[:11], atol=1e-2)  # the rest: residual <= 1e-2
    lowdim.set_num_threads(1)
    one = L.spectral_clustering(_tup(W), 0, 10, 5, 0)
    np.testing.assert_array_equal(one[0], labels0)
    np.testing.assert_array_equal(one[1], vals0)


def test_spectral_bad_input():
    import scipy.sparse as sp

    W = _knn_affinity(100, 3, 5, 0)
    with pytest.raises(ValueError, match="n_components"):
        L.spectral_embedding(_tup(W), 101, 0)
    with pytest.raises(ValueError, match="n_clusters"):
        L.spectral_clustering(_tup(W), 101, 10, 1, 0)
    with pytest.raises(ValueError, match="max_clusters"):
        L.spectral_clustering(_tup(W), 0, 0, 1, 0)
    neg = W.copy()
    neg.data[0] = -1.0
    neg = ((neg + neg.T) / 2).tocsr()
    with pytest.raises(ValueError, match="nonnegative"):
        L.spectral_embedding(_tup(neg), 2, 0)
    nan = W.copy()
    nan.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        L.spectral_clustering(_tup(nan), 2, 10, 1, 0)
    rect = sp.random(5, 6, density=0.5, random_state=0, format="csr")
    with pytest.raises(ValueError, match="square"):
        L.spectral_embedding(_tup(rect), 2, 0)
    asym = sp.csr_matrix(np.triu(np.ones((4, 4)), 1))
    with pytest.raises(ValueError, match="symmetric"):
        L.spectral_embedding(_tup(asym), 2, 0)
    with pytest.raises(TypeError):
        L.spectral_embedding(W.toarray(), 2, 0)


# ------------------------------------------------------------------ k-subspaces


def _accuracy(y, labels):
    from scipy.optimize import linear_sum_assignment

    k = max(y.max(), labels.max()) + 1
    table = np.zeros((k, k))
    np.add.at(table, (y, labels), 1)
    r, c = linear_sum_assignment(-table)
    return table[r, c].sum() / y.size


def _ksub_objective(X, labels, bases):
    U = bases[labels]  # (N, D, dim)
    proj = np.einsum("nd,ndk->nk", X, U)
    return ((X - np.einsum("ndk,nk->nd", U, proj)) ** 2).sum()


def test_k_subspaces_recovers_noiseless_union(restore_threads):
    from lowdim.datasets import union_of_subspaces

    X, y = union_of_subspaces(4, 3, 20, 60, seed=0)
    labels, bases, obj, n_iter = L.k_subspaces(X, 4, 3, 10, 100, 0)
    assert 1 <= n_iter <= 100
    assert labels.dtype == np.int64 and bases.shape == (4, 20, 3)
    assert _accuracy(y, labels) == 1.0
    assert obj < 1e-20
    assert obj == pytest.approx(_ksub_objective(X, labels, bases), abs=1e-20)
    for U in bases:
        np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-12)
    lowdim.set_num_threads(1)
    one = L.k_subspaces(X, 4, 3, 10, 100, 0)
    np.testing.assert_array_equal(one[0], labels)
    np.testing.assert_array_equal(one[1], bases)


def test_k_subspaces_noisy_objective_matches_numpy():
    from lowdim.datasets import union_of_subspaces

    X, y = union_of_subspaces(3, 2, 10, 80, noise=0.05, seed=1)
    labels, bases, obj, _ = L.k_subspaces(X, 3, 2, 5, 100, 3)
    assert obj == pytest.approx(_ksub_objective(X, labels, bases), rel=1e-10)
    assert _accuracy(y, labels) > 0.95
    # Each point sits with the subspace capturing most of its energy.
    energy = np.einsum("nd,kdj->nkj", X, bases) ** 2
    np.testing.assert_array_equal(labels, energy.sum(-1).argmax(1))
    # float32 and strided input.
    X32 = np.asfortranarray(X.astype(np.float32))[::-1]
    l32, b32, o32, _ = L.k_subspaces(X32, 3, 2, 5, 100, 3)
    assert b32.dtype == np.float32
    assert o32 == pytest.approx(obj, rel=1e-3)


def test_k_subspaces_bad_input():
    X = np.random.default_rng(0).standard_normal((30, 5))
    with pytest.raises(ValueError, match="n_clusters"):
        L.k_subspaces(X, 31, 2, 1, 10, 0)
    with pytest.raises(ValueError, match="dim"):
        L.k_subspaces(X, 2, 6, 1, 10, 0)
    with pytest.raises(ValueError, match="dim"):
        L.k_subspaces(X, 2, 0, 1, 10, 0)
    with pytest.raises(ValueError, match="n_init"):
        L.k_subspaces(X, 2, 2, 0, 10, 0)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        L.k_subspaces(X, 2, 2, 1, 10, 0)
