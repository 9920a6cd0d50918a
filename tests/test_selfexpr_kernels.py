"""Raw self-expressive kernels (lowdim._lowdim.ssc_omp / ensc / lsr / tsc) against references.

Each kernel returns the CSR triple (indptr, indices, data) of the N x N representation
matrix of the unit-norm points (row j represents point j by the others).
"""

from __future__ import annotations

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp
from lowdim import _lowdim
from lowdim.datasets import union_of_subspaces
from strategies import normalized


def dense(res, n):
    indptr, indices, data = res[:3]  # ensc also returns its number of rounds
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    assert indptr.shape == (n + 1,)
    for j in range(n):
        row = indices[indptr[j] : indptr[j + 1]]
        assert np.all(np.diff(row) > 0), "column indices must ascend"
        assert j not in row, "the diagonal must be excluded"
    return sp.csr_matrix((data, indices, indptr), shape=(n, n)).toarray()


@pytest.fixture
def data():
    X, y = union_of_subspaces(4, 3, 10, 15, noise=0.05, seed=1)
    return X * np.random.default_rng(0).uniform(0.5, 2.0, (X.shape[0], 1)), y


# ---------------------------------------------------------------------------------------------
# SSC-OMP


def test_omp_matches_sklearn(data):
    from sklearn.linear_model import orthogonal_mp

    X, _ = data
    n = X.shape[0]
    k = 5
    C = dense(_lowdim.ssc_omp(X, k, 0.0), n)
    Xn = normalized(X)
    for j in range(0, n, 7):
        others = np.delete(np.arange(n), j)
        coef = orthogonal_mp(Xn[others].T, Xn[j], n_nonzero_coefs=k)
        want = np.zeros(n)
        want[others] = coef
        np.testing.assert_allclose(C[j], want, atol=1e-10)
        assert np.count_nonzero(C[j]) == k


def test_omp_float32_close_to_float64(data):
    X, _ = data
    n = X.shape[0]
    C64 = dense(_lowdim.ssc_omp(X, 4, 1e-6), n)
    res = _lowdim.ssc_omp(X.astype(np.float32), 4, 1e-6)
    assert res[2].dtype == np.float32
    C32 = dense(res, n)
    same = (C64 != 0) == (C32 != 0)
    # Supports agree except where a near-tie flips the choice under float32 rounding.
    assert same.all(axis=1).mean() > 0.9
    rows = same.all(axis=1)
    np.testing.assert_allclose(C32[rows], C64[rows], atol=1e-3)


def test_omp_strided_input(data):
    X, _ = data
    n = X.shape[0]
    Xf = np.asfortranarray(X)
    Xs = np.zeros((n, 2 * X.shape[1]))[:, ::2]
    Xs[:] = X
    ref = dense(_lowdim.ssc_omp(X, 3, 1e-6), n)
    np.testing.assert_array_equal(dense(_lowdim.ssc_omp(Xf, 3, 1e-6), n), ref)
    np.testing.assert_array_equal(dense(_lowdim.ssc_omp(Xs[::-1], 3, 1e-6), n)[::-1, ::-1], ref)


def test_omp_stops_at_tol():
    X, _ = union_of_subspaces(3, 2, 8, 10, seed=0)
    C = dense(_lowdim.ssc_omp(X, 6, 1e-8), X.shape[0])
    # Noiseless 2-D subspaces: two atoms represent each point exactly.
    assert (np.count_nonzero(C, axis=1) == 2).all()


# ---------------------------------------------------------------------------------------------
# EnSC


def ensc_alpha(Xn, j, gamma, tau):
    mu = np.max(np.abs(np.delete(Xn @ Xn[j], j)))
    return gamma * tau / mu if tau > 0 else gamma / mu


@pytest.mark.parametrize("tau", [0.5, 0.9, 1.0])
@pytest.mark.parametrize("support_size", [100, 8])
def test_ensc_matches_sklearn(data, tau, support_size):
    from sklearn.linear_model import ElasticNet

    X, _ = data
    n, d = X.shape
    gamma = 20.0
    C = dense(_lowdim.ensc(X, gamma, tau, n, support_size, 100, 1e-10), n)
    Xn = normalized(X)
    for j in range(0, n, 6):
        others = np.delete(np.arange(n), j)
        alpha = ensc_alpha(Xn, j, gamma, tau)
        model = ElasticNet(
            alpha=1.0 / (alpha * d),
            l1_ratio=tau,
            fit_intercept=False,
            tol=1e-12,
            max_iter=100_000,
        )
        model.fit(Xn[others].T, Xn[j])
        want = np.zeros(n)
        want[others] = model.coef_
        np.testing.assert_allclose(C[j], want, atol=1e-6)
        assert np.count_nonzero(C[j]) > 0


def test_ensc_tau0_is_ridge(data):
    X, _ = data
    n = X.shape[0]
    gamma = 10.0
    C = dense(_lowdim.ensc(X, gamma, 0.0, n, 100, 40, 1e-6), n)
    Xn = normalized(X)
    for j in range(n):
        others = np.delete(np.arange(n), j)
        A = Xn[others].T
        lam = 1.0 / ensc_alpha(Xn, j, gamma, 0.0)
        coef = np.linalg.solve(A.T @ A + lam * np.eye(n - 1), A.T @ Xn[j])
        want = np.zeros(n)
        want[others] = coef
        np.testing.assert_allclose(C[j], want, atol=1e-9)


def test_ensc_n_nonzero_keeps_largest(data):
    X, _ = data
    n = X.shape[0]
    full = dense(_lowdim.ensc(X, 50.0, 0.5, n, 100, 40, 1e-10), n)
    cut = dense(_lowdim.ensc(X, 50.0, 0.5, 3, 100, 40, 1e-10), n)
    for j in range(n):
        nz = np.count_nonzero(full[j])
        assert np.count_nonzero(cut[j]) == min(3, nz)
        keep = np.argsort(-np.abs(full[j]), kind="stable")[: min(3, nz)]
        np.testing.assert_allclose(cut[j, keep], full[j, keep], atol=1e-9)


# ---------------------------------------------------------------------------------------------
# LSR and TSC


def test_lsr_matches_dense_closed_form(data):
    X, _ = data
    n = X.shape[0]
    gamma = 5.0
    C = dense(_lowdim.lsr(X, gamma, n), n)
    Xn = normalized(X)
    P = np.linalg.inv(Xn @ Xn.T + np.eye(n) / gamma)
    want = -P / np.diag(P)[None, :]
    want = want.T  # row j holds -P e_j / P_jj
    np.fill_diagonal(want, 0.0)
    np.testing.assert_allclose(C, want, atol=1e-9)
    # n_nonzero keeps the largest magnitudes.
    C3 = dense(_lowdim.lsr(X, gamma, 3), n)
    for j in range(n):
        keep = np.argsort(-np.abs(want[j]), kind="stable")[:3]
        np.testing.assert_allclose(C3[j, keep], want[j, keep], atol=1e-9)
        assert np.count_nonzero(C3[j]) == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tsc_matches_brute_force(data, dtype):
    X, _ = data
    n = X.shape[0]
    q = 4
    C = dense(_lowdim.tsc(X.astype(dtype), q), n)
    Xn = normalized(X)
    G = np.abs(Xn @ Xn.T)
    np.fill_diagonal(G, -1.0)
    for j in range(n):
        order = np.lexsort((np.arange(n), -G[j]))[:q]
        want = np.zeros(n)
        want[order] = np.exp(-2 * np.arccos(np.minimum(1.0, G[j, order])))
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(C[j], want, atol=tol)


# ---------------------------------------------------------------------------------------------
# Properties shared by all kernels


KERNELS = {
    "omp": lambda X: _lowdim.ssc_omp(X, 5, 1e-6),
    "ensc": lambda X: _lowdim.ensc(X, 50.0, 0.9, 50, 20, 40, 1e-8),
    "ensc_lasso": lambda X: _lowdim.ensc(X, 50.0, 1.0, 50, 20, 40, 1e-8),
    "lsr": lambda X: _lowdim.lsr(X, 50.0, 20),
    "tsc": lambda X: _lowdim.tsc(X, 5),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_subspace_preserving(name):
    X, y = union_of_subspaces(5, 3, 30, 40, seed=0)
    n = X.shape[0]
    C = dense(KERNELS[name](X), n)
    assert (np.count_nonzero(C, axis=1) >= 1).all()
    off = y[:, None] != y[None, :]
    if name in ("omp", "ensc", "ensc_lasso"):
        assert np.abs(C[off]).max() < 1e-10
    else:
        # LSR: tiny leaked values may exist; TSC: exact by angles on independent subspaces.
        assert np.abs(C[off]).sum() < 1e-6 * np.abs(C).sum()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_deterministic_threads_and_chunks(name, restore_threads, monkeypatch):
    X, _ = union_of_subspaces(4, 4, 20, 37, noise=0.05, seed=2)
    lowdim.set_num_threads(1)
    ref = KERNELS[name](X)
    lowdim.set_num_threads(2)
    two = KERNELS[name](X)
    # Blocks of 10 rows: 148 points is not a multiple of the block size.
    monkeypatch.setenv("LOWDIM_CHUNK_ROWS", "10")
    small = KERNELS[name](X)
    for a, b, c in zip(ref, two, small, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_zero_rows_get_empty_rows():
    X, _ = union_of_subspaces(2, 2, 6, 10, seed=3)
    X[4] = 0.0
    for name, f in KERNELS.items():
        indptr, indices = f(X)[:2]
        assert indptr[5] == indptr[4], name
        assert 4 not in indices or name == "tsc", name


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_bad_input(name):
    X, _ = union_of_subspaces(2, 2, 6, 10, seed=3)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KERNELS[name](bad)
    with pytest.raises(ValueError):
        KERNELS[name](X[:1])


def test_bad_parameters():
    X, _ = union_of_subspaces(2, 2, 6, 10, seed=3)
    with pytest.raises(ValueError, match="n_nonzero"):
        _lowdim.ssc_omp(X, 0, 1e-6)
    with pytest.raises(ValueError, match="n_nonzero"):
        _lowdim.ensc(X, 50.0, 0.9, 0, 100, 40, 1e-6)
    with pytest.raises(ValueError, match="n_nonzero"):
        _lowdim.lsr(X, 50.0, 0)
    with pytest.raises(ValueError, match="n_neighbors"):
        _lowdim.tsc(X, 0)
    with pytest.raises(ValueError, match="tau"):
        _lowdim.ensc(X, 50.0, 1.5, 10, 100, 40, 1e-6)
    with pytest.raises(ValueError, match="gamma"):
        _lowdim.ensc(X, -1.0, 0.5, 10, 100, 40, 1e-6)
    with pytest.raises(ValueError, match="gamma"):
        _lowdim.lsr(X, float("inf"), 10)
    with pytest.raises(ValueError, match="tol"):
        _lowdim.ssc_omp(X, 3, float("nan"))


@pytest.mark.parametrize("name", ["ensc", "ensc_lasso", "lsr"])
def test_float32_close_to_float64(name):
    X, _ = union_of_subspaces(4, 3, 20, 30, noise=0.02, seed=4)
    n = X.shape[0]
    res = KERNELS[name](X.astype(np.float32))
    assert res[2].dtype == np.float32
    C32 = dense(res, n)
    C64 = dense(KERNELS[name](X), n)
    scale = np.abs(C64).max()
    assert np.abs(C32 - C64).max() < 1e-3 * scale


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_duplicates_and_few_features(name):
    # Repeated points and D smaller than the number of nonzeros asked for: no failure,
    # finite output.
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 3))
    X[10:20] = X[:10]
    indptr, indices, data = KERNELS[name](X)[:3]
    assert np.isfinite(data).all()
    assert (np.diff(indptr) >= 1).all()
    assert indices.min() >= 0 and indices.max() < 30


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_tile_and_block_boundaries(name, monkeypatch):
    # Tiles of 16 columns and blocks of 9 rows (neither divides N = 148): the same results
    # as one block and one tile, up to the rounding of the GEMM tiles.
    X, _ = union_of_subspaces(4, 4, 20, 37, noise=0.05, seed=2)
    n = X.shape[0]
    ref = dense(KERNELS[name](X), n)
    monkeypatch.setenv("LOWDIM_TILE_COLS", "16")
    monkeypatch.setenv("LOWDIM_CHUNK_ROWS", "9")
    tiled = dense(KERNELS[name](X), n)
    np.testing.assert_allclose(tiled, ref, atol=1e-12)


def test_omp_matches_sklearn_across_tiles(monkeypatch):
    from sklearn.linear_model import orthogonal_mp

    monkeypatch.setenv("LOWDIM_TILE_COLS", "32")
    X, _ = union_of_subspaces(3, 5, 12, 40, noise=0.1, seed=6)
    n = X.shape[0]
    C = dense(_lowdim.ssc_omp(X, 6, 0.0), n)
    Xn = normalized(X)
    for j in range(0, n, 11):
        others = np.delete(np.arange(n), j)
        want = np.zeros(n)
        want[others] = orthogonal_mp(Xn[others].T, Xn[j], n_nonzero_coefs=6)
        np.testing.assert_allclose(C[j], want, atol=1e-10)
