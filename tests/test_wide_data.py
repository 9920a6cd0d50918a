"""Wide data (fewer points than features): K-subspaces, LSR and EnSC with ``tau = 0`` take the
``n x n`` side of their Gram matrices there (never ``D x D``). These tests check the results
against references computed in NumPy, and against the ``D x D`` route on the same data padded
differently, through the Rust kernels and the array-API implementations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lowdim import _lowdim
from lowdim import _xp_cluster as xc
from lowdim import _xp_ensc as xe
from lowdim.cluster import LSR, EnSC, KSubspaces
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy
from strategies import normalized

D = 3000


def _dense(indptr, indices, data, n):
    return sp.csr_matrix(
        (np.asarray(data, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
        shape=(n, n),
    ).toarray()


@pytest.fixture
def wide_union():
    X, y = union_of_subspaces(3, 2, D, 14, noise=0.01, seed=3)
    return X, y  # 42 x 3000


@pytest.fixture
def wide_random():
    X = np.random.default_rng(0).standard_normal((40, D))
    X[7] = 0.0  # a zero point
    X[12] = X[3]  # a duplicate
    return X


def _strict_or_numpy():
    out = [(lambda a: a, np.asarray)]
    try:
        import array_api_strict as xs

        out.append((xs.asarray, np.asarray))
    except ImportError:  # pragma: no cover - a test dependency
        pass
    return out


# ----------------------------------------------------------------------------- K-subspaces


def _svd_projector(P):
    _, _, vt = np.linalg.svd(P, full_matrices=False)
    return vt.T, vt


def _check_kss_fit(X, labels, bases, objective, dim):
    """Each basis is orthonormal and spans the top-``dim`` right singular vectors of its
    cluster (the refit of the last iteration, the labels having converged); the objective is
    the sum of the squared residuals; every point sits in its best subspace."""
    k = bases.shape[0]
    eye = np.broadcast_to(np.eye(dim), (k, dim, dim))
    np.testing.assert_allclose(np.einsum("kde,kdf->kef", bases, bases), eye, atol=1e-12)
    for c in range(k):
        pts = X[labels == c]
        assert pts.shape[0] >= dim
        _, vt = _svd_projector(pts)
        want = vt[:dim].T @ vt[:dim]
        np.testing.assert_allclose(bases[c] @ bases[c].T, want, atol=1e-9)
    P = np.einsum("nd,nde->ne", X, bases[labels])
    r = X - np.einsum("nde,ne->nd", bases[labels], P)
    np.testing.assert_allclose(np.sum(r * r), objective, rtol=1e-10)
    scores = np.einsum("nd,kde->nke", X, bases)
    np.testing.assert_array_equal(np.argmax(np.sum(scores**2, axis=2), axis=1), labels)


def test_ksubspaces_wide_union_matches_numpy_svd(wide_union):
    X, y = wide_union
    model = KSubspaces(3, 2, n_init=3, max_iter=100, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) == 1.0
    assert model.n_iter_ < 100
    assert model.bases_.shape == (3, D, 2)
    _check_kss_fit(X, model.labels_, model.bases_, model.objective_, 2)


def test_ksubspaces_wide_random_matches_numpy_svd():
    X = np.random.default_rng(1).standard_normal((45, D))
    model = KSubspaces(3, 2, n_init=2, max_iter=300, random_state=0).fit(X)
    assert model.n_iter_ < 300
    _check_kss_fit(X, model.labels_, model.bases_, model.objective_, 2)


def test_ksubspaces_wide_equals_tall_route():
    """The same points in R^20 (every cluster has more points than features: the D x D
    scatter) and embedded in R^3000 by a fixed orthonormal map (fewer: the Gram route): the
    same partition, objective and subspaces."""
    rng = np.random.default_rng(2)
    Y, _ = union_of_subspaces(3, 2, 20, 30, noise=0.05, seed=4)
    Q, _ = np.linalg.qr(rng.standard_normal((D, 20)))
    X = Y @ Q.T  # 90 x 3000, isometric to Y
    tall = _lowdim.k_subspaces(Y, 3, 2, 2, 100, 0)
    wide = _lowdim.k_subspaces(X, 3, 2, 2, 100, 0)
    np.testing.assert_array_equal(tall[0], wide[0])
    np.testing.assert_allclose(wide[2], tall[2], rtol=1e-9)
    for bt, bw in zip(tall[1], wide[1], strict=True):
        np.testing.assert_allclose(bw @ bw.T, Q @ (bt @ bt.T) @ Q.T, atol=1e-9)


def test_ksubspaces_clusters_smaller_than_dim():
    """Clusters with fewer points than ``subspace_dim``: every point lies in its subspace,
    the bases stay orthonormal (completed by coordinate axes)."""
    X = np.random.default_rng(3).standard_normal((10, 500))
    model = KSubspaces(3, 5, n_init=1, random_state=0).fit(X)
    assert model.objective_ < 1e-20
    eye = np.broadcast_to(np.eye(5), (3, 5, 5))
    np.testing.assert_allclose(np.einsum("kde,kdf->kef", *(model.bases_,) * 2), eye, atol=1e-12)


@pytest.mark.parametrize("to, back", _strict_or_numpy())
def test_xp_ksubspaces_wide_matches_rust(wide_union, to, back):
    X, _ = wide_union
    labels, bases, obj, _ = xc.k_subspaces(to(X), 3, 2, 3, 100, 0)
    rl, rb, robj, _ = _lowdim.k_subspaces(X, 3, 2, 3, 100, 0)
    lab, B = back(labels), back(bases)
    perm = np.full(3, -1)
    for u, v in zip(lab, rl, strict=True):
        assert perm[v] in (-1, u)
        perm[v] = u
    np.testing.assert_allclose(obj, robj, rtol=1e-9)
    P = np.einsum("kde,kfe->kdf", B, B)
    np.testing.assert_allclose(P[perm], np.einsum("kde,kfe->kdf", rb, rb), atol=1e-9)
    _check_kss_fit(X, lab, B, obj, 2)


# ----------------------------------------------------------------------------- LSR


def _lsr_reference(X, gamma):
    """Row j: ``-P e_j / P_jj`` without its diagonal, ``P = (Xn Xn^T + I / gamma)^{-1}``."""
    Xn = normalized(X)
    n = Xn.shape[0]
    P = np.linalg.inv(Xn @ Xn.T + np.eye(n) / gamma)
    want = (-P / np.diag(P)[None, :]).T
    np.fill_diagonal(want, 0.0)
    want[np.all(Xn == 0, axis=1), :] = 0.0  # a zero point: an empty row, a zero column
    want[:, np.all(Xn == 0, axis=1)] = 0.0
    return want


def _ridge_rows(X, lams):
    """The ridge with exclusion of self per point, solved directly (``lams[j]``: ridge)."""
    Xn = normalized(X)
    n = Xn.shape[0]
    out = np.zeros((n, n))
    for j in range(n):
        if not np.any(Xn[j]):
            continue
        others = np.delete(np.arange(n), j)
        A = Xn[others].T
        out[j, others] = np.linalg.solve(A.T @ A + lams[j] * np.eye(n - 1), A.T @ Xn[j])
    return out


def _top(want, k):
    cut = np.zeros_like(want)
    for j in range(want.shape[0]):
        keep = np.argsort(-np.abs(want[j]), kind="stable")[:k]
        cut[j, keep] = want[j, keep]
    return cut


@pytest.mark.parametrize("gamma", [10.0, 1e3])
def test_lsr_wide_matches_dense_closed_form(wide_random, wide_union, gamma):
    for X in (wide_random, wide_union[0]):
        n = X.shape[0]
        want = _lsr_reference(X, gamma)
        # the textbook formula and the ridge solve with self excluded agree
        np.testing.assert_allclose(want, _ridge_rows(X, [1.0 / gamma] * n), atol=1e-9)
        scale = np.abs(want).max()
        C = _dense(*_lowdim.lsr(X, gamma, n, None), n)
        np.testing.assert_allclose(C, want, atol=1e-10 * scale)
        C5 = _dense(*_lowdim.lsr(X, gamma, 5, None), n)
        np.testing.assert_allclose(C5, _top(want, 5), atol=1e-10 * scale)
        C32 = _dense(*_lowdim.lsr(X.astype(np.float32), gamma, n, None), n)
        np.testing.assert_allclose(C32, want, atol=1e-5 * scale)
        for to, _ in _strict_or_numpy():
            ip, ix, dv = xc.lsr(to(X), gamma, 5, block=16)
            Cx = _dense(*(np.asarray(a) for a in (ip, ix, dv)), n)
            np.testing.assert_allclose(Cx, _top(want, 5), atol=1e-10 * scale)


def test_lsr_wide_equals_tall_route():
    """Zero columns change neither the problem nor the solution: 60 points in R^30 (the D x D
    route) and the same points padded to R^3000 (the n x n route) agree to rounding."""
    Y = np.random.default_rng(5).standard_normal((60, 30))
    X = np.hstack([Y, np.zeros((60, D - 30))])
    for gamma in (10.0, 1e4):
        a = _dense(*_lowdim.lsr(Y, gamma, 59, None), 60)
        b = _dense(*_lowdim.lsr(X, gamma, 59, None), 60)
        np.testing.assert_allclose(b, a, atol=1e-10 * np.abs(a).max())
        c = _dense(*(np.asarray(t) for t in xc.lsr(X, gamma, 10)), 60)
        np.testing.assert_allclose(c, _top(a, 10), atol=1e-10 * np.abs(a).max())


def test_lsr_estimator_on_wide_union(wide_union):
    X, y = wide_union
    model = LSR(3, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) == 1.0
    n = X.shape[0]
    want = _top(_lsr_reference(X, 10.0), min(50, n - 1))
    np.testing.assert_allclose(
        model.representation_matrix_.toarray(), want, atol=1e-10 * np.abs(want).max()
    )


# ----------------------------------------------------------------------------- EnSC, tau = 0


def _ensc_ridge_reference(X, gamma):
    Xn = normalized(X)
    G = np.abs(Xn @ Xn.T)
    np.fill_diagonal(G, 0.0)
    mu = G.max(axis=1)
    want = _ridge_rows(X, np.where(mu > 0, mu / gamma, 1.0))
    want[mu == 0, :] = 0.0
    return want


@pytest.mark.parametrize("gamma", [5.0, 50.0])
def test_ensc_tau0_wide_is_ridge(wide_random, wide_union, gamma):
    for X in (wide_random, wide_union[0]):
        n = X.shape[0]
        want = _ensc_ridge_reference(X, gamma)
        scale = np.abs(want).max()
        C = _dense(*_lowdim.ensc(X, gamma, 0.0, n, 100, 40, 1e-6, None)[:3], n)
        np.testing.assert_allclose(C, want, atol=1e-10 * scale)
        C4 = _dense(*_lowdim.ensc(X, gamma, 0.0, 4, 100, 40, 1e-6, None)[:3], n)
        np.testing.assert_allclose(C4, _top(want, 4), atol=1e-10 * scale)
        for to, _ in _strict_or_numpy():
            ip, ix, dv, n_iter = xe.ensc(to(X), gamma, 0.0, 4, 100, 40, 1e-6, block=16)
            assert n_iter == 0
            Cx = _dense(*(np.asarray(a) for a in (ip, ix, dv)), n)
            np.testing.assert_allclose(Cx, _top(want, 4), atol=1e-10 * scale)


def test_ensc_tau0_estimator_on_wide_union(wide_union):
    X, y = wide_union
    model = EnSC(3, tau=0.0, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) == 1.0
