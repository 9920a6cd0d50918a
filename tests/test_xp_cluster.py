"""The array-API path of the clustering estimators (lowdim._xp_cluster) against the Rust path.

Three backends: NumPy arrays passed to the ``_xp_cluster`` functions directly (the code path
of a GPU), ``array_api_strict`` arrays through the public estimators (dispatch), and, marked
``gpu``, CuPy arrays through the public estimators (skipped without CuPy or a CUDA device).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lowdim import _lowdim
from lowdim import _xp_cluster as xc
from lowdim.cluster import SSCOMP
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy
from xp_backends import BACKENDS, PUBLIC
from xp_backends import cupy_or_skip as _cupy_or_skip
from xp_backends import module_of as _module_of


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param()


@pytest.fixture(params=PUBLIC)
def public(request):
    return request.param()


def _rust_csr(X, n_nonzero, tol):
    indptr, indices, data = _lowdim.ssc_omp(X, n_nonzero, tol, None)
    return sp.csr_matrix((data, indices, indptr), shape=(X.shape[0],) * 2)


def _host_csr(C):
    return C.get() if hasattr(C, "get") else C


@pytest.mark.parametrize(
    "args, n_nonzero, tol, block",
    [
        ((4, 5, 20, 60), 8, 1e-6, 4096),  # one block
        ((4, 5, 20, 60), 8, 1e-6, 37),  # several blocks, a ragged last one
        ((3, 3, 10, 30), 5, 1e-9, 16),  # noiseless-ish: early stops by tol / span
        ((3, 6, 8, 25), 12, 1e-6, 20),  # n_nonzero > D: capped at D
    ],
)
def test_ssc_omp_equals_rust(backend, args, n_nonzero, tol, block):
    to, back, mod = backend
    X, _ = union_of_subspaces(*args, noise=0.01, seed=1)
    ref = _rust_csr(X, n_nonzero, tol)
    ip, ix, dv = xc.ssc_omp(to(X), n_nonzero, tol, block=block)
    assert {_module_of(a) for a in (ip, ix, dv)} == {mod}
    C = sp.csr_matrix((back(dv), back(ix), back(ip)), shape=ref.shape)
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=0, atol=1e-8)


def test_ssc_omp_zero_rows_and_duplicates(backend):
    to, back, _ = backend
    X, _ = union_of_subspaces(2, 3, 10, 15, noise=0.0, seed=2)
    X[4] = 0.0  # a zero point: empty row
    X[7] = 2.0 * X[3]  # a duplicate direction
    ref = _rust_csr(X, 4, 1e-9)
    ip, ix, dv = xc.ssc_omp(to(X), 4, 1e-9, block=8)
    C = sp.csr_matrix((back(dv), back(ix), back(ip)), shape=ref.shape)
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=0, atol=1e-8)
    assert C.indptr[5] == C.indptr[4]


def test_ssc_omp_float32_close_to_rust(backend):
    to, back, _ = backend
    X, _ = union_of_subspaces(3, 4, 20, 40, noise=0.01, seed=3)
    X = X.astype(np.float32)
    ref = _rust_csr(X, 6, 1e-5)
    ip, ix, dv = xc.ssc_omp(to(X), 6, 1e-5)
    assert back(dv).dtype == np.float32
    C = sp.csr_matrix((back(dv), back(ix), back(ip)), shape=ref.shape)
    # f32 correlations may break near-ties differently from the Rust f64 confirmation:
    # nearly all supports agree
    same = np.mean(
        [
            np.array_equal(
                C.indices[C.indptr[j] : C.indptr[j + 1]],
                ref.indices[ref.indptr[j] : ref.indptr[j + 1]],
            )
            for j in range(X.shape[0])
        ]
    )
    assert same >= 0.95


def test_kmeans_and_relabel(backend):
    to, back, _ = backend
    rng = np.random.default_rng(0)
    centers = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    y = np.repeat([2, 0, 1], 30)
    Y = centers[y] + 0.1 * rng.standard_normal((90, 2))
    labels = xc.kmeans(xc.namespace(to(Y)), to(Y), 3, 5, 100, 1e-4, 0)
    lab = back(labels)
    assert clustering_accuracy(y, lab) == 1.0
    assert lab[0] == 0 and lab[30] == 1 and lab[60] == 2  # order of first appearance


@pytest.mark.parametrize("n_clusters", [4, None])
@pytest.mark.parametrize("per", [30, 400])  # dense eigh / Lanczos
def test_spectral_step_exact_on_independent_subspaces(backend, n_clusters, per):
    to, back, mod = backend
    X, y = union_of_subspaces(4, 5, 30, per, noise=0.0, seed=0)
    Xd = to(X)
    xp = xc.namespace(Xd)
    pieces = xc.ssc_omp(Xd, 8, 1e-6)
    W = xc.affinity(xp, *pieces, X.shape[0])
    labels, evals, k = xc.spectral(xp, W, n_clusters, 50, 5, 0, Xd)
    assert k == 4
    assert _module_of(labels) == mod and _module_of(evals) == mod
    assert clustering_accuracy(y, back(labels)) == 1.0
    np.testing.assert_allclose(back(evals)[:4], 1.0, atol=1e-8)


def test_affinity_equals_cluster_representation(backend):
    from lowdim.cluster import _representation

    to, _, _ = backend
    X, _ = union_of_subspaces(3, 3, 12, 30, noise=0.01, seed=4)
    ref = _representation(_rust_csr(X, 5, 1e-6))
    Xd = to(X)
    W = _host_csr(xc.affinity(xc.namespace(Xd), *xc.ssc_omp(Xd, 5, 1e-6), X.shape[0]))
    assert abs(W - ref).max() < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sscomp_estimator_in_namespace(public, dtype):
    to, back, mod = public
    X, y = union_of_subspaces(3, 3, 20, 50, noise=0.01, seed=0)
    X = X.astype(dtype)
    model = SSCOMP(n_clusters=3, n_nonzero=5, random_state=0).fit(to(X))
    ref = SSCOMP(n_clusters=3, n_nonzero=5, random_state=0).fit(X)
    assert _module_of(model.labels_) == mod and _module_of(model.eigenvalues_) == mod
    assert clustering_accuracy(y, back(model.labels_)) == 1.0
    assert model.n_clusters_ == 3 and model.n_features_in_ == 20
    C = _host_csr(model.representation_matrix_)
    assert C.dtype == dtype and C.shape == (150, 150)
    if mod == "cupy":
        import cupyx.scipy.sparse as cps

        assert cps.isspmatrix_csr(model.representation_matrix_)
        assert cps.isspmatrix_csr(model.affinity_matrix_)
    else:
        assert sp.issparse(model.representation_matrix_)
    if dtype == np.float64:
        np.testing.assert_array_equal(C.indices, ref.representation_matrix_.indices)
        np.testing.assert_allclose(C.data, ref.representation_matrix_.data, atol=1e-8)
        np.testing.assert_allclose(back(model.eigenvalues_)[:3], ref.eigenvalues_[:3], atol=1e-6)
    np.testing.assert_array_equal(back(model.labels_), ref.labels_)


def test_sscomp_estimator_noiseless_independent(public):
    to, back, _ = public
    X, y = union_of_subspaces(5, 4, 40, 60, noise=0.0, seed=5)
    model = SSCOMP(n_clusters=None, n_nonzero=6, random_state=0).fit(to(X))
    assert model.n_clusters_ == 5
    assert clustering_accuracy(y, back(model.labels_)) == 1.0


def test_sscomp_estimator_validation(public):
    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 5, noise=0.0, seed=0)
    with pytest.raises(ValueError, match="n_nonzero"):
        SSCOMP(2, n_nonzero=10).fit(to(X))
    with pytest.raises(ValueError, match="tol=.* must be < 1"):
        SSCOMP(2, n_nonzero=2, tol=1.5).fit(to(X))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SSCOMP(2, n_nonzero=2).fit(to(X))
    with pytest.raises(ValueError, match="2-D"):
        SSCOMP(2).fit(to(np.ones(5)))


def test_sscomp_progress_callback(public):
    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 10, noise=0.0, seed=0)
    seen = []
    SSCOMP(2, n_nonzero=2, progress=lambda d, t: seen.append((d, t))).fit(to(X))
    assert seen == [(1, 1)]


# ----------------------------------------------------------------------------- TSC


@pytest.mark.parametrize("q, block", [(7, 4096), (7, 50), (3, 17)])
def test_tsc_equals_rust(backend, q, block):
    to, back, mod = backend
    X, _ = union_of_subspaces(4, 5, 20, 60, noise=0.01, seed=0)
    X[5] = 0.0  # a zero point: empty row
    indptr, indices, data = _lowdim.tsc(X, q, None)
    ip, ix, dv = xc.tsc(to(X), q, block=block)
    assert _module_of(dv) == mod
    np.testing.assert_array_equal(back(ip), indptr)
    np.testing.assert_array_equal(back(ix), indices)
    np.testing.assert_allclose(back(dv), data, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tsc_estimator_in_namespace(public, dtype):
    from lowdim.cluster import TSC

    to, back, mod = public
    X, y = union_of_subspaces(3, 3, 20, 50, noise=0.0, seed=0)
    X = X.astype(dtype)
    model = TSC(n_clusters=3, n_neighbors=5, random_state=0).fit(to(X))
    ref = TSC(n_clusters=3, n_neighbors=5, random_state=0).fit(X)
    assert _module_of(model.labels_) == mod
    assert clustering_accuracy(y, back(model.labels_)) == 1.0
    np.testing.assert_array_equal(back(model.labels_), ref.labels_)
    W = _host_csr(model.affinity_matrix_)
    assert abs(W - ref.affinity_matrix_).max() < (1e-12 if dtype == np.float64 else 1e-5)


def test_block_size_keeps_the_correlation_scratch_bounded():
    # blocks x N x 24 bytes stays within the budget for large N, and never below 64 rows
    for n in (10, 100_000, 1_000_000, 10**8):
        b = xc._block_rows(n, None)
        assert 64 <= b <= 4096
        assert b == 64 or b * n * 24 <= xc._SCRATCH_BYTES
    assert xc._block_rows(100_000, 8) == 8
    # LSR: the per-row scratch (b x N selection arrays and the b x k x D gather) is bounded too
    n, k, d = 200_000, 1000, 500
    rb = n * 48 + 8 * k * d
    b = xc._block_rows(n, None, rb)
    assert 64 <= b < 4096 and b * rb <= xc._SCRATCH_BYTES


def _same_error(fit_numpy, fit_xp, match=None):
    """The NumPy (Rust) path and the array-API path raise the same exception type."""
    with pytest.raises(Exception) as ref:
        fit_numpy()
    with pytest.raises(type(ref.value), match=match):
        fit_xp()


# ----------------------------------------------------------------------------- LSR


def _rust_lsr(X, gamma, n_nonzero):
    indptr, indices, data = _lowdim.lsr(X, gamma, n_nonzero, None)
    return sp.csr_matrix((data, indices, indptr), shape=(X.shape[0],) * 2)


def _lsr_data():
    X, _ = union_of_subspaces(4, 5, 20, 40, noise=0.01, seed=1)
    X[5] = 0.0  # a zero point: empty row, and no entries in its column
    X[9] = -3.0 * X[2]  # a duplicate direction
    return X


@pytest.mark.parametrize(
    "gamma, n_nonzero, block",
    [
        (10.0, 8, 4096),  # argmax passes, one block
        (10.0, 8, 37),  # several blocks, a ragged last one
        (0.5, 70, 50),  # k > _TOPK_PASSES: stable sort of each row
        (100.0, 1000, 64),  # n_nonzero >= N - 1: every entry kept
    ],
)
def test_lsr_equals_rust(backend, gamma, n_nonzero, block):
    to, back, mod = backend
    X = _lsr_data()
    ref = _rust_lsr(X, gamma, n_nonzero)
    ip, ix, dv = xc.lsr(to(X), gamma, n_nonzero, block=block)
    assert {_module_of(a) for a in (ip, ix, dv)} == {mod}
    C = sp.csr_matrix((back(dv), back(ix), back(ip)), shape=ref.shape)
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=0, atol=1e-8)
    assert C.indptr[6] == C.indptr[5] and 5 not in C.indices


def test_lsr_selection_paths_agree(monkeypatch):
    # argmax passes and the sorted selection pick the same entries (ties: smallest index)
    X = _lsr_data()
    X[11] = X[3]  # exact ties in the correlations
    a = xc.lsr(X, 10.0, 20)
    monkeypatch.setattr(xc, "_TOPK_PASSES", 0)
    b = xc.lsr(X, 10.0, 20)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_lsr_float32_close_to_rust(backend):
    to, back, _ = backend
    X = _lsr_data().astype(np.float32)
    ref = _rust_lsr(X, 10.0, 8)
    ip, ix, dv = xc.lsr(to(X), 10.0, 8)
    assert back(dv).dtype == np.float32
    C = sp.csr_matrix((back(dv), back(ix), back(ip)), shape=ref.shape)
    assert abs(C - ref).max() < 1e-4 * abs(ref).max()
    same = np.mean([np.array_equal(C[j].indices, ref[j].indices) for j in range(X.shape[0])])
    assert same >= 0.95


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lsr_estimator_in_namespace(public, dtype):
    from lowdim.cluster import LSR

    to, back, mod = public
    X, y = union_of_subspaces(3, 3, 20, 50, noise=0.01, seed=0)
    X = X.astype(dtype)
    model = LSR(n_clusters=3, n_nonzero=20, random_state=0).fit(to(X))
    ref = LSR(n_clusters=3, n_nonzero=20, random_state=0).fit(X)
    assert _module_of(model.labels_) == mod and _module_of(model.eigenvalues_) == mod
    assert clustering_accuracy(y, back(model.labels_)) == 1.0
    np.testing.assert_array_equal(back(model.labels_), ref.labels_)
    assert model.n_clusters_ == 3 and model.n_features_in_ == 20
    C = _host_csr(model.representation_matrix_)
    W = _host_csr(model.affinity_matrix_)
    assert C.dtype == dtype and C.shape == (150, 150)
    if mod == "cupy":
        import cupyx.scipy.sparse as cps

        assert cps.isspmatrix_csr(model.representation_matrix_)
        assert cps.isspmatrix_csr(model.affinity_matrix_)
    else:
        assert sp.issparse(model.representation_matrix_) and sp.issparse(model.affinity_matrix_)
    tol = 1e-6 if dtype == np.float64 else 1e-4
    assert abs(C - ref.representation_matrix_).max() < tol
    assert abs(W - ref.affinity_matrix_).max() < tol
    np.testing.assert_allclose(back(model.eigenvalues_)[:3], ref.eigenvalues_[:3], atol=tol)


def test_lsr_estimator_eigengap(public):
    from lowdim.cluster import LSR

    to, back, _ = public
    X, y = union_of_subspaces(4, 3, 30, 40, noise=0.0, seed=5)
    model = LSR(n_clusters=None, random_state=0).fit(to(X))
    ref = LSR(n_clusters=None, random_state=0).fit(X)
    assert model.n_clusters_ == ref.n_clusters_ == 4
    assert clustering_accuracy(y, back(model.labels_)) == 1.0


def test_lsr_estimator_validation(public):
    from lowdim.cluster import LSR

    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 5, noise=0.0, seed=0)
    _same_error(lambda: LSR(11).fit(X), lambda: LSR(11).fit(to(X)), "n_clusters=11")
    _same_error(lambda: LSR(2, gamma=0).fit(X), lambda: LSR(2, gamma=0).fit(to(X)), "gamma")
    _same_error(
        lambda: LSR(2, n_nonzero=0).fit(X), lambda: LSR(2, n_nonzero=0).fit(to(X)), "n_nonzero"
    )
    _same_error(lambda: LSR(2).fit(np.ones(5)), lambda: LSR(2).fit(to(np.ones(5))), "2-D")
    X[0, 0] = np.nan
    _same_error(lambda: LSR(2).fit(X), lambda: LSR(2).fit(to(X)), "NaN")


def test_lsr_progress_callback(public):
    from lowdim.cluster import LSR

    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 10, noise=0.0, seed=0)
    seen = []
    LSR(2, n_nonzero=3, progress=lambda d, t: seen.append((d, t))).fit(to(X))
    assert seen == [(1, 1)]


# ----------------------------------------------------------------------------- K-subspaces


def _projectors(B):
    return np.einsum("kde,kfe->kdf", B, B)


def _match(a, b, k):
    """perm with a == perm[b] (labels equal up to a renaming), or an AssertionError."""
    perm = np.full(k, -1)
    for u, v in zip(a, b, strict=True):
        assert perm[v] in (-1, u)
        perm[v] = u
    return perm


@pytest.mark.parametrize("k, dim, n_init", [(4, 3, 3), (3, 2, 1)])
def test_k_subspaces_matches_rust(backend, k, dim, n_init):
    to, back, mod = backend
    X, _ = union_of_subspaces(k, dim, 15, 40, noise=0.01, seed=k)
    labels, bases, obj, n_iter = xc.k_subspaces(to(X), k, dim, n_init, 50, 0)
    assert _module_of(labels) == mod and _module_of(bases) == mod
    rl, rb, robj, _ = _lowdim.k_subspaces(X, k, dim, n_init, 50, 0)
    lab, B = back(labels), back(bases)
    assert B.shape == (k, 15, dim) and B.dtype == np.float64 and lab.dtype == np.int64
    perm = _match(lab, rl, k)  # the same partition
    np.testing.assert_allclose(obj, robj, rtol=1e-6)
    np.testing.assert_allclose(_projectors(B)[perm], _projectors(rb), atol=1e-6)
    eye = np.broadcast_to(np.eye(dim), (k, dim, dim))
    np.testing.assert_allclose(np.einsum("kde,kdf->kef", B, B), eye, atol=1e-12)
    assert 1 <= n_iter <= 50
    # the objective is the sum of the squared residuals to the chosen subspaces
    P = np.einsum("nd,nde->ne", X, B[lab])
    r = X - np.einsum("nde,ne->nd", B[lab], P)
    np.testing.assert_allclose(np.sum(r * r), obj, rtol=1e-10)


def test_k_subspaces_degenerate_cases(backend):
    to, back, _ = backend
    # identical points: the later clusters are empty and refitted to the worst-fitted points
    X = np.tile(np.array([[1.0, 2.0, -1.0, 0.5]]), (10, 1))
    labels, bases, obj, n_iter = xc.k_subspaces(to(X), 3, 1, 2, 10, 0)
    rl, _, robj, rit = _lowdim.k_subspaces(X, 3, 1, 2, 10, 0)
    np.testing.assert_array_equal(back(labels), rl)
    assert obj < 1e-25 and robj < 1e-25 and n_iter == rit == 1
    # zero points: every basis is made of coordinate axes
    Z = np.zeros((4, 3))
    labels, bases, obj, _ = xc.k_subspaces(to(Z), 2, 2, 1, 5, 0)
    assert back(labels).shape == (4,) and obj == 0.0
    eye = np.broadcast_to(np.eye(2), (2, 2, 2))
    np.testing.assert_allclose(np.einsum("kde,kdf->kef", *(back(bases),) * 2), eye)
    # more clusters than subspaces and dim = D: every residual vanishes
    X, _ = union_of_subspaces(2, 2, 5, 6, noise=0.0, seed=0)
    _, _, obj, _ = xc.k_subspaces(to(X), 5, 5, 2, 5, 0)
    assert obj < 1e-20


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_k_subspaces_estimator_in_namespace(public, dtype):
    from lowdim.cluster import KSubspaces

    to, back, mod = public
    X, y = union_of_subspaces(3, 2, 10, 40, noise=0.01, seed=0)
    X = X.astype(dtype)
    model = KSubspaces(3, 2, random_state=0).fit(to(X))
    ref = KSubspaces(3, 2, random_state=0).fit(X)
    assert _module_of(model.labels_) == mod and _module_of(model.bases_) == mod
    lab, B = back(model.labels_), back(model.bases_)
    assert B.dtype == dtype and B.shape == (3, 10, 2) and lab.dtype == np.int64
    assert clustering_accuracy(y, lab) == 1.0
    perm = _match(lab, ref.labels_, 3)
    np.testing.assert_allclose(model.objective_, ref.objective_, rtol=1e-6)
    tol = 1e-6 if dtype == np.float64 else 1e-4
    P, Pr = _projectors(B.astype(np.float64)), _projectors(ref.bases_.astype(np.float64))
    np.testing.assert_allclose(P[perm], Pr, atol=tol)
    assert model.n_features_in_ == 10 and model.n_iter_ >= 1
    pred = model.predict(to(X))
    assert _module_of(pred) == mod
    np.testing.assert_array_equal(back(pred), lab)


def test_k_subspaces_estimator_scale_invariant(public):
    # the namespace path scales out-of-range data by a power of two, as the NumPy path
    from lowdim.cluster import KSubspaces

    to, back, _ = public
    X, _ = union_of_subspaces(3, 2, 10, 40, noise=0.01, seed=0)
    ref = KSubspaces(3, 2, random_state=0).fit(to(X))
    for c in (1e-200, 1e200):
        model = KSubspaces(3, 2, random_state=0).fit(to(X * c))
        np.testing.assert_array_equal(back(model.labels_), back(ref.labels_))
        assert model.objective_ == pytest.approx(ref.objective_ * c * c, rel=1e-6)
        np.testing.assert_array_equal(back(model.predict(to(X * c))), back(ref.labels_))


def test_k_subspaces_estimator_validation(public):
    from lowdim.cluster import KSubspaces

    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 5, noise=0.0, seed=0)
    cases = [
        (KSubspaces(11, 2), X, "n_clusters=11"),
        (KSubspaces(2, 6), X, "subspace_dim=6"),
        (KSubspaces(2, 2, n_init=0), X, "n_init"),
        (KSubspaces(2, 2), np.ones(5), "2-D|2D"),
        (KSubspaces(1, 1), X[:1], "1"),
    ]
    for est, A, match in cases:
        _same_error(lambda e=est, a=A: e.fit(a), lambda e=est, a=A: e.fit(to(a)), match)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    _same_error(lambda: KSubspaces(2, 2).fit(Xn), lambda: KSubspaces(2, 2).fit(to(Xn)), "NaN")
    model = KSubspaces(2, 2, random_state=0).fit(to(X))
    ref = KSubspaces(2, 2, random_state=0).fit(X)
    _same_error(lambda: ref.predict(X[:, :3]), lambda: model.predict(to(X[:, :3])), "features")
    with pytest.raises(TypeError, match="same kind"):
        model.predict(X)  # fitted on another namespace: no silent conversion


# ----------------------------------------------------------------------------- spectral_clustering


def _affinity_pair():
    from lowdim.cluster import LSR

    X, y = union_of_subspaces(4, 3, 20, 40, noise=0.01, seed=2)
    return LSR(4, n_nonzero=15, random_state=0).fit(X).affinity_matrix_, y


def test_spectral_clustering_weights_near_the_float64_limit_in_namespace(public):
    # as the Rust kernel: the degrees of weights of 1e308 summed to infinity (S = 0)
    from lowdim.cluster import spectral_clustering

    to, back, mod = public
    W, y = _affinity_pair()
    kw = dict(n_init=5, random_state=0, return_eigenvalues=True)
    ref, rev = spectral_clustering(to(W.toarray()), 4, **kw)
    labels, ev = spectral_clustering(to(W.toarray() * 1e308), 4, **kw)
    np.testing.assert_array_equal(back(labels), back(ref))
    np.testing.assert_allclose(back(ev), back(rev), rtol=1e-10)


@pytest.mark.parametrize("n_clusters", [4, None])
def test_spectral_clustering_dense_in_namespace(public, n_clusters):
    from lowdim.cluster import spectral_clustering

    to, back, mod = public
    W, y = _affinity_pair()
    kw = dict(n_init=5, random_state=0, return_eigenvalues=True)
    ref, rev = spectral_clustering(W, n_clusters, **kw)
    labels, ev = spectral_clustering(to(W.toarray()), n_clusters, **kw)
    assert _module_of(labels) == mod and _module_of(ev) == mod
    assert back(labels).dtype == np.int64 and back(ev).dtype == np.float64
    np.testing.assert_array_equal(back(labels), ref)
    assert clustering_accuracy(y, back(labels)) == 1.0
    np.testing.assert_allclose(back(ev), rev, atol=1e-6)
    assert _module_of(spectral_clustering(to(W.toarray()), 4, n_init=1, random_state=0)) == mod


def test_spectral_clustering_sparse_code_path():
    # scipy.sparse through the array-API code (what cupyx.scipy.sparse takes on a GPU); the
    # public function keeps scipy.sparse on the Rust path
    from lowdim.cluster import _spectral_clustering_xp, spectral_clustering

    W, _ = _affinity_pair()
    ref, rev = spectral_clustering(W, None, n_init=5, random_state=0, return_eigenvalues=True)
    for A in (W, W.tocoo(), W.astype(np.float32), (W > 0).astype(np.int64)):
        labels, ev = _spectral_clustering_xp(A, None, 5, None, 0, True)
        assert isinstance(labels, np.ndarray) and labels.dtype == np.int64
        np.testing.assert_array_equal(labels, ref)
        if A.dtype == np.float64:
            np.testing.assert_allclose(ev, rev, atol=1e-6)
    # duplicates summed, unsorted indices: canonicalized on a copy
    dup = sp.csr_matrix((np.ones(4), [1, 1, 0, 0], [0, 2, 4]), shape=(2, 2))
    labels = _spectral_clustering_xp(dup, 1, 5, None, 0, False)
    assert labels.tolist() == [0, 0] and dup.nnz == 4


def test_spectral_clustering_validation(public):
    from lowdim.cluster import spectral_clustering as sc

    to, _, _ = public
    W = np.ones((4, 4)) - np.eye(4)
    bad = [
        (np.ones(4), "2-D"),
        (np.ones((3, 4)), "square"),
        (np.zeros((0, 0)), "empty"),
        (np.where(W > 0, np.nan, 0.0), "NaN"),
        (-W, "negative"),
        (np.triu(W), "symmetric"),
        (W.astype(np.complex128), "real"),
    ]
    for A, match in bad:
        _same_error(lambda a=A: sc(a, 2), lambda a=A: sc(to(a), 2), match)
    _same_error(lambda: sc(W, 5), lambda: sc(to(W), 5), "n_clusters=5")
    _same_error(lambda: sc(W, 2, n_init=0), lambda: sc(to(W), 2, n_init=0), "n_init")
    for A in (W.astype(bool), W.astype(np.int32), W.astype(np.float32)):
        assert sorted(np.asarray(sc(to(A), 1, random_state=0)).tolist()) == [0, 0, 0, 0]


@pytest.mark.gpu
def test_spectral_clustering_cupyx_sparse():
    cp = _cupy_or_skip()
    import cupyx.scipy.sparse as cps
    from lowdim.cluster import spectral_clustering

    W, y = _affinity_pair()
    ref, rev = spectral_clustering(W, None, random_state=0, return_eigenvalues=True)
    for A in (cps.csr_matrix(W), cps.coo_matrix(W.tocoo())):
        labels, ev = spectral_clustering(A, None, random_state=0, return_eigenvalues=True)
        assert isinstance(labels, cp.ndarray) and isinstance(ev, cp.ndarray)
        np.testing.assert_array_equal(cp.asnumpy(labels), ref)
        np.testing.assert_allclose(cp.asnumpy(ev), rev, atol=1e-6)


def test_abs_argmax_matches_first_occurrence_of_abs_max(backend):
    # the OMP pick: the smallest column of largest |C|, ties between +v and -v included
    to, back, _ = backend
    rng = np.random.default_rng(3)
    C = rng.integers(-4, 5, size=(200, 9)).astype(np.float64)  # many ties
    C[0] = 0.0
    C[1] = [-3, 0, 3, 1, -3, 0, 0, 0, 0]
    C[2] = [1, -2, 0, 2, 0, 0, 0, 0, -2]
    Cx = to(C)
    pick, best = xc._abs_argmax(xc.namespace(Cx), Cx)
    want = np.argmax(np.abs(C), axis=1)
    np.testing.assert_array_equal(back(pick), want)
    np.testing.assert_array_equal(back(best), np.abs(C)[np.arange(200), want])
