"""EnSC on the array-API path (lowdim._xp_ensc) against the Rust kernel.

Three backends, as in test_xp_cluster.py: NumPy arrays passed to ``_xp_ensc.ensc`` directly
(the code path of a GPU), ``array_api_strict`` arrays (directly and through the public
estimator), and, marked ``gpu``, CuPy arrays (skipped without CuPy or a CUDA device).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lowdim import _lowdim
from lowdim import _xp_ensc as xe
from lowdim.cluster import EnSC
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy
from xp_backends import BACKENDS, PUBLIC
from xp_backends import module_of as _module_of
from xp_backends import np_backend as _np_backend


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param()


@pytest.fixture(params=PUBLIC)
def public(request):
    return request.param()


def _host_csr(C):
    return C.get() if hasattr(C, "get") else C


def _rust(X, gamma, tau, n_nonzero, support, max_iter, tol=1e-6):
    indptr, indices, data, n_iter = _lowdim.ensc(
        X, gamma, tau, n_nonzero, support, max_iter, tol, None
    )
    n = X.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(n, n)), int(n_iter)


def _xp(backend, X, gamma, tau, n_nonzero, support, max_iter, tol=1e-6, block=None):
    to, back, mod = backend
    ip, ix, dv, n_iter = xe.ensc(to(X), gamma, tau, n_nonzero, support, max_iter, tol, block=block)
    assert {_module_of(a) for a in (ip, ix, dv)} == {mod}
    n = X.shape[0]
    return sp.csr_matrix((back(dv), back(ix), back(ip)), shape=(n, n)), int(n_iter)


def _assert_same(C, ref, atol=1e-6):
    np.testing.assert_array_equal(C.indptr, ref.indptr)
    np.testing.assert_array_equal(C.indices, ref.indices)
    np.testing.assert_allclose(C.data, ref.data, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def noisy():
    X, _ = union_of_subspaces(3, 4, 20, 40, noise=0.01, seed=1)
    return X


@pytest.mark.parametrize("tau", [0.5, 0.9, 1.0, 0.0])
@pytest.mark.parametrize("gamma", [10.0, 100.0])
def test_ensc_equals_rust(backend, noisy, tau, gamma):
    # several blocks (ragged last one), active sets that grow over the rounds
    ref, it_ref = _rust(noisy, gamma, tau, 50, 30, 40)
    C, it = _xp(backend, noisy, gamma, tau, 50, 30, 40, block=37)
    _assert_same(C, ref)
    assert it == it_ref
    if tau > 0:
        assert 2 <= it < 40  # converged after an oracle check


@pytest.mark.parametrize(
    "n_nonzero, support, max_iter, tau",
    [
        (3, 5, 40, 0.9),  # truncation to n_nonzero
        (50, 5, 1, 0.9),  # round caps
        (50, 5, 2, 0.9),
        (8, 200, 40, 0.9),  # support_size >= N - 1
        (50, 2, 40, 0.5),  # many rounds, the support grows
    ],
)
def test_ensc_round_rules_equal_rust(backend, noisy, n_nonzero, support, max_iter, tau):
    ref, it_ref = _rust(noisy, 50.0, tau, n_nonzero, support, max_iter)
    C, it = _xp(backend, noisy, 50.0, tau, n_nonzero, support, max_iter)
    _assert_same(C, ref)
    assert it == it_ref
    assert np.diff(C.indptr).max() <= n_nonzero


@pytest.mark.parametrize("tau", [0.9, 1.0, 0.0])
def test_ensc_zero_rows_and_duplicates(backend, tau):
    X, _ = union_of_subspaces(2, 3, 10, 15, noise=0.01, seed=2)
    X[4] = 0.0  # a zero point: empty row
    X[7] = 2.0 * X[3]  # a duplicate direction
    ref, it_ref = _rust(X, 50.0, tau, 50, 8, 40)
    C, it = _xp(backend, X, 50.0, tau, 50, 8, 40, block=8)
    _assert_same(C, ref)
    assert it == it_ref
    assert C.indptr[5] == C.indptr[4]


@pytest.mark.parametrize("tau", [0.9, 0.5])
def test_ensc_copies_are_solved_once(backend, noisy, tau):
    # groups of identical points, across blocks: both paths solve the first of each group and
    # give the copies its row with the two indices swapped, which is their optimum too
    src = np.r_[np.arange(len(noisy)), [3] * 9, 50, 50, 119]
    X = noisy[src]
    n = len(X)
    ref, it_ref = _rust(X, 50.0, tau, n, n, 40)
    C, it = _xp(backend, X, 50.0, tau, n, n, 40, block=37)
    _assert_same(C, ref, atol=1e-9)
    assert it == it_ref
    assert _kkt(X, C, 50.0, tau) < 1e-9
    for j in range(len(noisy), n):
        f = src[j]
        row = C[f].toarray()[0]
        row[[j, f]] = row[[f, j]]
        np.testing.assert_array_equal(C[j].toarray()[0], row)
    on_copies = C[3].toarray()[0][src == 3][1:]  # the coefficients of point 3's 9 copies
    assert on_copies.min() > 0 and np.ptp(on_copies) <= 1e-10 * on_copies.max()


def test_first_copies(backend):
    to, back, _ = backend
    X = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [0.0, 0.0], [2.0, 4.0]])
    X = np.vstack([X, X[::-1]])
    xp_X = to(X)
    xp = xe.namespace(xp_X)
    Xn, zmask = xe.normalize_rows(xp, xp_X)
    first = back(xe._first_copies(xp, Xn, xe._f64(xp, Xn), zmask))
    # 2 * [1, 2] normalizes to the same row here; zero rows stay their own
    np.testing.assert_array_equal(first, [0, 1, 0, 3, 4, 0, 0, 7, 3, 0, 10, 0])
    assert xe._first_copies(xp, Xn[:4, :], xe._f64(xp, Xn[:4, :]), zmask[:4]) is not None
    assert xe._first_copies(xp, Xn[1:2, :], xe._f64(xp, Xn[1:2, :]), zmask[1:2]) is None


def test_ensc_float32_close_to_rust(backend, noisy):
    X = noisy.astype(np.float32)
    for tau in (0.9, 0.0):
        ref, _ = _rust(X, 50.0, tau, 50, 30, 40)
        C, _ = _xp(backend, X, 50.0, tau, 50, 30, 40)
        assert C.dtype == np.float32
        # f32 correlations and normalization round differently: nearly the same supports
        rows = [
            np.array_equal(
                C.indices[C.indptr[j] : C.indptr[j + 1]],
                ref.indices[ref.indptr[j] : ref.indptr[j + 1]],
            )
            for j in range(X.shape[0])
        ]
        assert np.mean(rows) >= 0.95
        assert abs(C - ref).max() < 1e-3


def _kkt(X, C, gamma, tau):
    """Largest violation of the optimality conditions of every row's elastic net."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    worst = 0.0
    for j in range(X.shape[0]):
        cor = np.abs(Xn @ Xn[j])
        cor[j] = 0
        alpha = gamma * tau / cor.max()
        c = C[j].toarray()[0]
        g = alpha * (Xn @ (Xn[j] - c @ Xn))
        g[j] = 0.0
        nz = c != 0
        worst = max(worst, np.abs(g[nz] - tau * np.sign(c[nz]) - (1 - tau) * c[nz]).max())
        worst = max(worst, np.abs(g[~nz]).max() - tau)
    return worst


@pytest.mark.parametrize(
    "data, gamma, tau, support",
    [
        ((3, 4, 20, 40, 0.0, 1), 50.0, 0.9, 30),
        ((3, 4, 20, 40, 0.0, 1), 50.0, 1.0, 30),  # noiseless lasso
        ((4, 5, 6, 33, 0.001, 5), 200.0, 1.0, 7),  # 132 points in R^6: any 7 are dependent
    ],
)
def test_ensc_degenerate_is_optimal(backend, data, gamma, tau, support):
    # singular active Gram matrices (more active points than their span, tau = 1), handled
    # by the degenerate feature-sign step: the result is the optimum (the Rust kernel's
    # coordinate-descent fallback can stop short of it there, so no comparison with it)
    *args, noise, seed = data
    X, _ = union_of_subspaces(*args, noise=noise, seed=seed)
    C, it = _xp(backend, X, gamma, tau, 500, support, 40)
    assert it < 40
    assert _kkt(X, C, gamma, tau) < 1e-8


def test_ensc_coordinate_descent_fallback(monkeypatch, noisy):
    # the fallback of a failed feature-sign search reaches the same optimum
    ref, it_ref = _rust(noisy, 50.0, 0.5, 50, 30, 40)
    monkeypatch.setattr(xe, "_FORCE_CD", True)
    C, it = _xp(_np_backend(), noisy, 50.0, 0.5, 50, 30, 40)
    _assert_same(C, ref)
    assert it == it_ref


def test_ensc_subproblem_chunks(monkeypatch, backend, noisy):
    # a tiny scratch budget: the stacked subproblems are solved a few rows at a time
    ref, it_ref = _rust(noisy, 50.0, 0.9, 50, 30, 40)
    monkeypatch.setattr(xe, "_SUB_BYTES", 200_000)
    monkeypatch.setattr(xe, "_COMPACT_ROWS", 1)  # and finished rows leave the lock-step
    C, it = _xp(backend, noisy, 50.0, 0.9, 50, 30, 40)
    _assert_same(C, ref)
    assert it == it_ref


def test_select_top_ties_and_floor(backend):
    to, back, _ = backend
    key = np.array([[1.0, 3.0, 3.0, 0.5, 2.0, 3.0, 0.0], [0.0, 0.2, 0.0, 0.9, 0.0, 0.1, 0.3]])
    xp = xe.namespace(to(key))
    k = to(np.array([3, 5]))
    floor = to(np.array([0.0, 0.15]))
    m = back(xe._select_top(xp, to(key), k, floor))
    assert m.tolist() == [
        [False, True, True, False, False, True, False],  # ties: smallest index
        [False, True, False, True, False, False, True],  # fewer than k above the floor
    ]
    assert back(xe._mask_to_padded(xp, to(m))).tolist() == [[1, 2, 5], [1, 3, 6]]


# ----------------------------------------------------------------------------- estimator


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ensc_estimator_in_namespace(public, dtype):
    to, back, mod = public
    X, y = union_of_subspaces(3, 3, 20, 40, noise=0.01, seed=0)
    X = X.astype(dtype)
    kw = dict(n_clusters=3, support_size=20, random_state=0)
    model = EnSC(**kw).fit(to(X))
    ref = EnSC(**kw).fit(X)
    assert _module_of(model.labels_) == mod and _module_of(model.eigenvalues_) == mod
    assert clustering_accuracy(y, back(model.labels_)) == 1.0
    assert clustering_accuracy(ref.labels_, back(model.labels_)) == 1.0
    assert model.n_clusters_ == 3 and model.n_features_in_ == 20
    assert model.n_iter_ == ref.n_iter_
    C = _host_csr(model.representation_matrix_)
    assert C.dtype == dtype and C.shape == (120, 120)
    if mod == "cupy":
        import cupyx.scipy.sparse as cps

        assert cps.isspmatrix_csr(model.representation_matrix_)
        assert cps.isspmatrix_csr(model.affinity_matrix_)
    else:
        assert sp.issparse(model.representation_matrix_)
    if dtype == np.float64:
        _assert_same(C, ref.representation_matrix_)
        W = _host_csr(model.affinity_matrix_)
        assert abs(W - ref.affinity_matrix_).max() < 1e-6
        np.testing.assert_allclose(back(model.eigenvalues_)[:3], ref.eigenvalues_[:3], atol=1e-6)


def test_ensc_estimator_tau_zero_and_progress(public):
    to, back, _ = public
    X, y = union_of_subspaces(2, 2, 8, 20, noise=0.0, seed=0)
    seen = []
    model = EnSC(2, tau=0.0, random_state=0, progress=lambda d, t: seen.append((d, t)))
    model.fit(to(X))
    ref = EnSC(2, tau=0.0, random_state=0).fit(X)
    assert seen == [(1, 1)]
    assert model.n_iter_ == ref.n_iter_ == 1
    _assert_same(_host_csr(model.representation_matrix_), ref.representation_matrix_)
    assert clustering_accuracy(y, back(model.labels_)) == 1.0


@pytest.mark.parametrize(
    "kw",
    [
        dict(gamma=-1.0),
        dict(gamma=0),
        dict(gamma="a"),
        dict(tau=1.5),
        dict(tau=-0.1),
        dict(n_nonzero=0),
        dict(support_size=0),
        dict(max_iter=0),
        dict(tol=0.0),
        dict(n_init=0),
        dict(n_clusters=100),
    ],
)
def test_ensc_estimator_bad_parameters_raise_as_numpy(public, kw):
    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 10, noise=0.0, seed=0)
    with pytest.raises(Exception) as want:
        EnSC(2, **kw).fit(X)
    with pytest.raises(type(want.value)) as got:
        EnSC(2, **kw).fit(to(X))
    assert str(got.value) == str(want.value)


def test_ensc_estimator_bad_input(public):
    to, _, _ = public
    X, _ = union_of_subspaces(2, 2, 5, 5, noise=0.0, seed=0)
    for bad, match in ((X[:1], "at least 2"), (np.ones(5), "2-D|2D")):
        with pytest.raises(ValueError):
            EnSC(2).fit(bad)
        with pytest.raises(ValueError, match=match):
            EnSC(2).fit(to(bad))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        EnSC(2).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        EnSC(2).fit(to(X))
