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
