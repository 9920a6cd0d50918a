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

xs = pytest.importorskip("array_api_strict")


def _cupy_or_skip():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as e:  # no driver, no runtime
        pytest.skip(f"no CUDA device ({type(e).__name__})")
    return cp


def _np_backend():
    return (lambda a: a, np.asarray, "numpy")


def _strict_backend():
    return (xs.asarray, np.asarray, "array_api_strict")


def _cupy_backend():
    cp = _cupy_or_skip()
    return (cp.asarray, cp.asnumpy, "cupy")


BACKENDS = [
    pytest.param(_np_backend, id="numpy"),
    pytest.param(_strict_backend, id="strict"),
    pytest.param(_cupy_backend, id="cupy", marks=pytest.mark.gpu),
]
PUBLIC = BACKENDS[1:]  # numpy input to the estimators takes the Rust path


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param()


@pytest.fixture(params=PUBLIC)
def public(request):
    return request.param()


def _module_of(x):
    return type(x).__module__.split(".")[0]


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
