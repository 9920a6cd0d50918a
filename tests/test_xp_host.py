"""What leaves the device on the array-API path: run on ``array_api_strict`` arrays (standing in
for CuPy) under the host-transfer trap of ``xp_host_trap``, which records every conversion to
the host, every 0-d read (a host sync on a GPU) and every data-dependent shape. CuPy-only
branches are checked with stand-ins for the cupyx functions they call."""

from __future__ import annotations

import sys
import types
import warnings

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp
from lowdim import _xp, _xp_ensc
from lowdim import _xp_cluster as xc
from lowdim.cluster import KSubspaces
from lowdim.datasets import union_of_subspaces
from lowdim.decomposition import PCA, TruncatedSVD
from lowdim.metrics import clustering_accuracy, connectivity, subspace_preserving_error
from xp_host_trap import HostTrap, xs

# ----------------------------------------------------------------------------- data-sized


def _low_rank(m, n, r=20, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, r)))[0]
    V = np.linalg.qr(rng.standard_normal((n, r)))[0]
    return (U * 0.8 ** np.arange(r)) @ V.T + 1e-6 * rng.standard_normal((m, n))


_A = _low_rank(800, 120)  # 96000 entries; small results are at most 120 numbers
_T = np.random.default_rng(1).standard_normal((30, 40, 50))
_SMALL = 150


def _pca(**kw):
    p = PCA(**kw)
    Z = p.fit_transform(xs.asarray(_A))
    p.transform(xs.asarray(_A))
    p.inverse_transform(Z)


def _tsvd(**kw):
    p = TruncatedSVD(10, random_state=0, **kw)
    Z = p.fit_transform(xs.asarray(_A))
    p.transform(xs.asarray(_A))
    p.inverse_transform(Z)


def _svd_error():
    U, S, Vh = lowdim.rsvd(xs.asarray(_A), 5, seed=0, solver="randomized")
    lowdim.svd_error(xs.asarray(_A), U, S, Vh, n_iter=5)


def _tucker_roundtrip(**kw):
    T = lowdim.tucker(xs.asarray(_T), **kw)
    T.rel_error(xs.asarray(_T))
    lowdim.mode_product(xs.asarray(_T), xs.asarray(np.ones((7, 40))), 1)


def _kss():
    X, _ = union_of_subspaces(3, 3, 40, 300, noise=0.01, seed=2)
    model = KSubspaces(3, 3, n_init=2, random_state=0).fit(xs.asarray(X))
    model.predict(xs.asarray(X))


def _tol_residual():
    # a tol below the indicator's resolution (its RuntimeWarning is the point here): the
    # rank grows until the rounding-floor residual is computed on the device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return lowdim.rsvd(xs.asarray(_low_rank(800, 120, r=4)), tol=1e-9)


DENSE_PATHS = {
    "rsvd gram": lambda: lowdim.rsvd(xs.asarray(_A), 10, seed=0),
    "rsvd randomized": lambda: lowdim.rsvd(xs.asarray(_A), 10, seed=0, solver="randomized"),
    "rsvd randomized LU": lambda: lowdim.rsvd(
        xs.asarray(_A), 10, seed=0, solver="randomized", power_iteration_normalizer="LU"
    ),
    "rsvd exact": lambda: lowdim.rsvd(xs.asarray(_A[:, :30]), 25, seed=0),
    "rsvd tol": lambda: lowdim.rsvd(xs.asarray(_A), tol=1e-3, seed=0),
    "rsvd tol residual": lambda: _tol_residual(),
    "rsvd scaled": lambda: lowdim.rsvd(xs.asarray(_A * 1e-200), 10, seed=0),
    "svd_error": _svd_error,
    "PCA auto": lambda: _pca(n_components=10, random_state=0),
    "PCA fraction": lambda: _pca(n_components=0.9, random_state=0),
    "PCA full fraction": lambda: _pca(n_components=0.9, svd_solver="full"),
    "PCA whiten": lambda: _pca(n_components=5, whiten=True, random_state=0),
    "TruncatedSVD": _tsvd,
    "TruncatedSVD gram": lambda: _tsvd(algorithm="gram"),
    "tucker hosvd": lambda: _tucker_roundtrip(rank=4, method="hosvd"),
    "tucker sthosvd randomized": lambda: _tucker_roundtrip(rank=4, svd="randomized"),
    "tucker sthosvd tol lq": lambda: _tucker_roundtrip(tol=0.9, svd="lq"),
    "tucker hooi": lambda: _tucker_roundtrip(rank=4, method="hooi", n_iter_max=2),
    "KSubspaces": _kss,
}


@pytest.mark.parametrize("name", list(DENSE_PATHS))
def test_nothing_data_sized_leaves_the_device(name):
    """The dense array-API paths move small things only to the host (scalars, eigenvalues of
    one mode or of the small side, k x k factors): a transfer of more than 150 entries of
    this 800 x 120 matrix (or 30 x 40 x 50 tensor) would be of the size of the data. (The
    seeded test matrix goes the other way, host to device, outside CuPy only.)"""
    with HostTrap() as trap:
        DENSE_PATHS[name]()
    big = [e for e in trap.of("d2h") if e.size > _SMALL]
    assert not big, [(e.shape, e.where) for e in big]


def test_metrics_refuse_device_arrays():
    """The metrics run on the host: an array-API array is a clear NotImplementedError, not a
    silent copy (array_api_strict) or CuPy's implicit-conversion TypeError."""
    y = np.array([0, 0, 1, 1])
    C = np.ones((4, 4)) - np.eye(4)
    with HostTrap() as trap:
        with pytest.raises(NotImplementedError, match="array_api_strict"):
            clustering_accuracy(y, xs.asarray(y))
        with pytest.raises(NotImplementedError, match="labels_true"):
            clustering_accuracy(xs.asarray(y), y)
        with pytest.raises(NotImplementedError, match="representation"):
            subspace_preserving_error(xs.asarray(C), y)
        with pytest.raises(NotImplementedError, match="labels_true"):
            connectivity(C, xs.asarray(y))
    assert not trap.of("d2h")
    assert clustering_accuracy(y, y) == 1.0  # host input as before


# ----------------------------------------------------------------------------- CuPy branches


def test_cupy_eigsh_gets_no_host_start_vector(monkeypatch):
    """The spectral step's Lanczos branch on CuPy: cupyx draws its own start vector, so no
    n-vector is drawn on the host and copied to the device (it was, and then not used)."""
    calls = {}

    def eigsh(S, **kw):
        calls.update(kw)
        return __import__("scipy.sparse.linalg").sparse.linalg.eigsh(S, v0=np.ones(n), **kw)

    class Dense:  # the dense module of the CuPy branch, recording host -> device copies
        copies = []

        def __getattr__(self, name):
            return getattr(np, name)

        def asarray(self, a, *args, **kw):
            Dense.copies.append(np.shape(a))
            return np.asarray(a, *args, **kw)

    monkeypatch.setattr(xc, "_is_cupy", lambda xp: True)
    monkeypatch.setattr(xc, "_sparse", lambda xp: (sp, types.SimpleNamespace(eigsh=eigsh)))
    monkeypatch.setattr(xc, "_dense_module", lambda xp: Dense())
    n = 1200
    ring = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], format="csr")
    w, v = xc._top_eigvecs(np, (ring * 0.5).tocsr(), 3, 0)
    assert "v0" not in calls and calls["which"] == "LA"
    assert Dense.copies == []
    assert v.shape == (n, 3) and w[0] == pytest.approx(1.0, abs=1e-4)  # a path graph


def test_ensc_zeroes_columns_without_a_mask(monkeypatch):
    """EnSC's column zeroing (self columns, the active sets' columns) takes the scatter with
    valid columns only: the masked variant costs two host syncs per call on CuPy (boolean
    indexing)."""
    seen = []
    real = _xp_ensc._zero_entries

    def spy(xp, C, cols, fill=0, all_valid=False):
        seen.append((all_valid, int(np.min(np.asarray(cols))) if cols.shape[1] else 0))
        return real(xp, C, cols, fill, all_valid)

    monkeypatch.setattr(_xp_ensc, "_zero_entries", spy)
    X, _ = union_of_subspaces(3, 3, 12, 30, noise=0.01, seed=3)
    ref = _xp_ensc.ensc(X, 50.0, 0.5, 8, 10, 5, 1e-6, block=40)
    Xw, _ = union_of_subspaces(2, 3, 60, 10, noise=0.01, seed=3)
    for tau in (0.0, 0.5):
        for data in (X, Xw):
            _xp_ensc.ensc(data, 50.0, tau, 8, 10, 5, 1e-6, block=40)
    assert len(seen) > 6
    assert all(valid and low >= 0 for valid, low in seen), seen

    # same answer as the masked variant
    def masked(xp, C, cols, fill=0, all_valid=False):
        return real(xp, C, cols, fill, False)

    monkeypatch.setattr(_xp_ensc, "_zero_entries", masked)
    again = _xp_ensc.ensc(X, 50.0, 0.5, 8, 10, 5, 1e-6, block=40)
    for a, b in zip(ref, again, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cupy_lu_normalizer_skips_the_finiteness_sync(monkeypatch):
    """power_iteration_normalizer="LU" on CuPy: cupyx's lu with check_finite=False (its check
    is one more host sync per power iteration; rsvd checks A before and Y after the loop)."""
    import scipy.linalg

    calls = []

    def lu(Y, permute_l=False, overwrite_a=False, check_finite=True):
        calls.append(check_finite)
        return scipy.linalg.lu(Y, permute_l=permute_l)

    mods = {
        "cupyx": types.ModuleType("cupyx"),
        "cupyx.scipy": types.ModuleType("cupyx.scipy"),
        "cupyx.scipy.linalg": types.ModuleType("cupyx.scipy.linalg"),
    }
    mods["cupyx.scipy.linalg"].lu = lu
    mods["cupyx"].scipy = mods["cupyx.scipy"]
    mods["cupyx.scipy"].linalg = mods["cupyx.scipy.linalg"]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(_xp, "_is_cupy", lambda xp: True)
    Y = np.random.default_rng(0).standard_normal((50, 6))
    Q = _xp._lu_normalize(np, Y)
    assert calls == [False]
    np.testing.assert_allclose(Q, scipy.linalg.lu(Y, permute_l=True)[0])


# ----------------------------------------------------------------------------- host syncs


def _syncs(fn):
    with HostTrap() as trap:
        fn()
    return trap.syncs()


def test_kmeans_one_host_sync_per_lloyd_iteration():
    """Lloyd's loop reads the center shift and the unchanged-labels test in one transfer."""
    rng = np.random.default_rng(0)
    Y = xs.asarray(rng.standard_normal((200, 4)))

    def run(iters):  # tol < 0: no early stop on the shift
        return lambda: xc.kmeans(xs, Y, 4, 1, iters, -1.0, 0)

    assert (_syncs(run(9)) - _syncs(run(3))) / 6 == 1


def test_svd_error_one_host_sync_per_norm():
    """svd_error's power iteration: two norms per iteration, one host sync each."""
    A = xs.asarray(_A)
    U, S, Vh = lowdim.rsvd(A, 5, seed=0, solver="randomized")
    counts = [_syncs(lambda q=q: lowdim.svd_error(A, U, S, Vh, n_iter=q)) for q in (3, 8)]
    assert (counts[1] - counts[0]) / 5 == 2
    est = lowdim.svd_error(A, U, S, Vh, n_iter=8, seed=3)
    ref = lowdim.svd_error(_A, *(np.asarray(x) for x in (U, S, Vh)), n_iter=8, seed=3)
    assert est == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("sparse", [False, True])
def test_frobenius_norms_one_host_sync(monkeypatch, sparse):
    """||A||_F^2 and the rounding-floor residual of rsvd's tol mode: summed block by block on
    the device, one host sync in all (one per block before)."""
    monkeypatch.setattr(_xp, "_FROB_BLOCK", 1000)
    monkeypatch.setattr(_xp, "_RESIDUAL_BLOCK_BYTES", 8000)
    A = _low_rank(300, 40, r=3)
    if sparse:
        S = sp.random(300, 40, density=0.2, format="csr", random_state=0)
        c = np.asarray(S.mean(axis=0)).ravel()
        op = _xp._Op(np, S, np.float64, True, c)
        ref = float(np.sum((S.toarray() - c) ** 2))
    else:
        op = _xp._Op(xs, xs.asarray(A), xs.float64)
        ref = float(np.sum(A * A))
    reads = []
    real = _xp.to_host
    monkeypatch.setattr(_xp, "to_host", lambda x: reads.append(1) or real(x))
    with HostTrap() as trap:
        f2 = op.frob_sq()
    assert f2 == pytest.approx(ref, rel=1e-12)
    if sparse:  # (scipy input, no device: the centred sums come back in one transfer)
        assert reads == [1]
        return
    assert trap.syncs() == 1
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    Us, Vt = xs.asarray(U[:, :3] * s[:3]), xs.asarray(Vh[:3].T)
    with HostTrap() as trap:
        r2 = op.residual_sq(Us, Vt)
    assert trap.syncs() == 1
    assert r2 == pytest.approx(float(np.sum((A - U[:, :3] * s[:3] @ Vh[:3]) ** 2)), rel=1e-8)
