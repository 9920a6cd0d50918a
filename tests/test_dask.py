"""The Dask backend against a real multi-process LocalCluster: same seed, same result as the
in-memory path (to rounding), for every chunking, dense and sparse chunks, and a worker killed
in the middle of a computation."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import types
import warnings

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            memory_limit="1GiB",
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _decaying(m, n, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    r = min(m, n)
    U = np.linalg.qr(rng.standard_normal((m, r)))[0]
    V = np.linalg.qr(rng.standard_normal((n, r)))[0]
    s = 0.7 ** np.arange(r)
    return ((U * s) @ V.T).astype(dtype)


def _assert_same(res, ref, rtol):
    U, S, Vh = (np.asarray(x) for x in res)
    assert U.shape == ref.U.shape and S.shape == ref.S.shape and Vh.shape == ref.Vh.shape
    np.testing.assert_allclose(S, ref.S, rtol=0, atol=rtol * ref.S[0])
    np.testing.assert_allclose(U, ref.U, rtol=0, atol=rtol)
    np.testing.assert_allclose(Vh, ref.Vh, rtol=0, atol=rtol)


def test_lowdim_does_not_import_dask():
    code = (
        "import sys, numpy as np, lowdim\n"
        "lowdim.rsvd(np.eye(5), 2, seed=0)\n"
        "lowdim.PCA(2).fit(np.random.default_rng(0).standard_normal((20, 5)))\n"
        "assert 'dask' not in sys.modules, 'lowdim imported dask'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


CHUNKS = {
    "rows": (60, -1),
    "cols": (-1, 25),
    "both": (90, 30),
}


@pytest.mark.parametrize("chunking", sorted(CHUNKS))
@pytest.mark.parametrize("wide", [False, True], ids=["tall", "wide"])
def test_rsvd_matches_in_memory(client, chunking, wide):
    A = _decaying(300, 80)
    chunks = CHUNKS[chunking]
    if wide:
        A, chunks = A.T.copy(), chunks[::-1]
    ref = lowdim.rsvd(A, 8, seed=7, solver="randomized")
    Ad = da.from_array(A, chunks=chunks)
    res = lowdim.rsvd(Ad, 8, seed=7, compute=True, solver="randomized")
    assert isinstance(res.U, np.ndarray) and res.solver == "randomized"
    assert res.U.flags.f_contiguous and res.Vh.flags.c_contiguous
    _assert_same(res, ref, 1e-10)


@pytest.mark.parametrize(("value", "pinned"), [("3", False), ("abc", True), ("0", True)])
def test_worker_threads_ignore_an_invalid_env_var(monkeypatch, value, pinned):
    # LOWDIM_NUM_THREADS=abc "won" in a worker: the pool then had one thread per CPU in
    # every task, as the Rust side ignores the value
    from lowdim import _dask

    calls = []
    monkeypatch.setenv("LOWDIM_NUM_THREADS", value)
    monkeypatch.setattr(_dask, "_threads_set", False)
    worker = types.SimpleNamespace(nanny="tcp://127.0.0.1:1")  # a worker process of its own
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    monkeypatch.setattr(_dask._lowdim, "set_num_threads", calls.append)
    _dask._worker_threads()
    assert calls == ([1] if pinned else [])


def test_compute_must_be_a_bool():
    # compute="no" counted as True and computed the result (no cluster needed: rejected first)
    Ad = da.from_array(_decaying(40, 20), chunks=(20, 20))
    with pytest.raises(TypeError, match=r"^compute must be True or False, got 'no'"):
        lowdim.rsvd(Ad, 3, seed=0, compute="no")


@pytest.mark.parametrize("normalizer", ["auto", "QR"])
def test_rsvd_float32(client, normalizer):
    # Reference: the same float32 data in float64 (in-memory float32 with n_iter=2 runs
    # unnormalized passes, whose own rounding is larger than the dask path's).
    A = _decaying(200, 60, seed=1, dtype=np.float32)
    ref = lowdim.rsvd(A.astype(np.float64), 5, seed=3, n_iter=2, solver="randomized")
    Ad = da.from_array(A, chunks=(50, -1))
    res = lowdim.rsvd(Ad, 5, seed=3, n_iter=2, power_iteration_normalizer=normalizer)
    assert res.U.dtype == np.float32 and res.S.dtype == np.float32
    _assert_same(dask.compute(*res), ref, 2e-5)


def test_rsvd_unnormalized_passes(client):
    A = _decaying(200, 60, seed=1)
    kw = {"seed": 3, "n_iter": 2, "power_iteration_normalizer": "none"}
    ref = lowdim.rsvd(A, 5, solver="randomized", **kw)
    res = lowdim.rsvd(da.from_array(A, chunks=(50, 30)), 5, compute=True, **kw)
    _assert_same(res, ref, 1e-9)


def test_rsvd_is_lazy_and_shaped_like_the_input(client):
    A = _decaying(240, 50, seed=2)
    Ad = da.from_array(A, chunks=(60, -1))
    res = lowdim.rsvd(Ad, 4, seed=1)
    assert all(isinstance(x, da.Array) for x in res)
    assert res.U.chunks[0] == Ad.chunks[0]  # U stays distributed like the rows of A
    ref = lowdim.rsvd(A, 4, seed=1, solver="randomized")
    _assert_same(dask.compute(*res), ref, 1e-10)


def test_rsvd_sparse_chunks(client):
    X = sp.random(400, 120, density=0.05, random_state=0, format="csr", dtype=np.float64)
    ref = lowdim.rsvd(X, 6, seed=5, n_iter=6)
    for chunks in [(100, -1), (100, 40)]:
        Xd = da.from_array(X, chunks=chunks, asarray=False)
        res = lowdim.rsvd(Xd, 6, seed=5, n_iter=6, compute=True)
        _assert_same(res, ref, 1e-9)


def test_rsvd_gram_solver(client):
    A = _decaying(400, 30, seed=4)
    ref = lowdim.rsvd(A, 5, solver="gram")
    res = lowdim.rsvd(da.from_array(A, chunks=(100, -1)), 5, solver="gram", compute=True)
    assert res.solver == "gram"
    _assert_same(res, ref, 1e-9)
    with pytest.raises(ValueError, match="whole rows"):
        lowdim.rsvd(da.from_array(A, chunks=(100, 10)), 5, solver="gram")


@pytest.mark.parametrize("centred", [False, True])
def test_auto_takes_the_gram_route_where_memory_does(client, centred):
    # tall-skinny data: "auto" picks the in-memory choice (the Gram solver, two passes
    # instead of q + 2), with the in-memory result to rounding; PCA centres implicitly
    from lowdim import _dask

    for shape, k, chunks in (((2000, 40), 5, (300, -1)), ((30, 900), 4, (-1, 200))):
        A = _decaying(*shape, seed=2)
        ref = lowdim.rsvd(A, k, seed=0)
        assert ref.solver == "gram"
        res = lowdim.rsvd(da.from_array(A, chunks=chunks), k, seed=0, compute=True)
        assert res.solver == "gram"
        _assert_same(res, ref, 1e-9)
        m, n = max(shape), min(shape)
        assert _dask._prefer_gram(m, n, k, k + 10, 7)
    assert not _dask._prefer_gram(40000, 4000, 50, 60, 4)  # the dask benchmark: randomized
    if centred:
        A = _decaying(2000, 40, seed=3) + 5.0
        p = lowdim.PCA(4, random_state=0).fit(da.from_array(A, chunks=(300, -1)))
        q = lowdim.PCA(4, random_state=0).fit(A)
        np.testing.assert_allclose(p.singular_values_, q.singular_values_, rtol=1e-10)
        np.testing.assert_allclose(p.components_, q.components_, atol=1e-9)


@pytest.mark.parametrize("scale", [1.0, 1e-300])
def test_auto_gram_route_falls_back_to_randomized(client, scale):
    # lambda_k < 1e-10 lambda_1 (sigma_k / sigma_1 < 1e-5: the float64 Gram matrix cannot
    # resolve the k-th direction), or data out of the Gram matrix's range: the randomized
    # solver, as in memory
    rng = np.random.default_rng(5)
    Q1 = np.linalg.qr(rng.standard_normal((1500, 30)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    s = np.r_[np.logspace(0, -1, 8), np.logspace(-6, -7, 22)]  # lambda_10 ~ 1e-12 lambda_1
    if scale != 1.0:
        s = np.logspace(0, -2, 30)
    A = (Q1 * s) @ Q2 * scale
    res = lowdim.rsvd(da.from_array(A, chunks=(250, -1)), 10, seed=1, compute=True)
    assert res.solver == "randomized"
    ref = lowdim.rsvd(A, 10, seed=1, solver="randomized")
    np.testing.assert_allclose(res.S / scale, ref.S / scale, rtol=1e-9)
    np.testing.assert_allclose(res.S / scale, s[:10], rtol=1e-6)


@pytest.mark.parametrize("magnitude", [1e-310, 1e-200, 1e-100, 1e100, 1e160])
def test_rsvd_extreme_magnitudes(client, magnitude):
    # the power iterations scale the operator by a power of two: T^T T X would otherwise
    # underflow (silently wrong S) or overflow. At 1e-310 (subnormal entries) the fused
    # pass's T^T T (s X) was itself subnormal: S came out 15% wrong, silently
    A = _decaying(300, 80)
    ref = lowdim.rsvd(A, 6, seed=3, solver="randomized")
    for chunks, kw in (
        ((60, -1), {}),
        ((60, -1), {"power_iteration_dtype": "float32"}),
        ((60, 40), {}),
    ):
        res = lowdim.rsvd(
            da.from_array(A * magnitude, chunks=chunks), 6, seed=3, compute=True, **kw
        )
        np.testing.assert_allclose(res.S / magnitude, ref.S, rtol=1e-9)


@pytest.mark.parametrize(
    "dtype, scale, c",
    [(np.float64, 1e-320, 2.0**1000), (np.float32, 1e-41, 2.0**120), (np.float32, 1e37, 2.0**-120)],
)
@pytest.mark.parametrize("chunks", [(300, -1), (300, 20)])
def test_rsvd_subnormal_and_huge_data_keep_their_digits(dtype, scale, c, chunks):
    # float32 data of 1e-41 raised a false "NaN or infinity" error (X * 2^142 overflowed
    # float32), and the final products with unscaled subnormal entries rounded to the
    # subnormal grid; the reference is the in-memory result for the same data at an exact
    # in-range scale (up to S's own subnormal grid)
    A = (_decaying(2000, 40) * scale).astype(dtype)
    Ac = (A.astype(np.float64) * c).astype(dtype)
    with dask.config.set(scheduler="synchronous"):
        res = lowdim.rsvd(
            da.from_array(A, chunks=chunks), 5, seed=0, solver="randomized", compute=True
        )
    ref = lowdim.rsvd(Ac, 5, seed=0, solver="randomized")
    atol = 4 * float(np.finfo(dtype).smallest_subnormal) * c
    np.testing.assert_allclose(res.S.astype(np.float64) * c, ref.S, rtol=1e-3, atol=atol)
    assert res.S.dtype == dtype


def test_subnormal_data_and_overflowing_singular_values():
    # the power of two that rescales subnormal data (1e-310: 2^1030) is not a float64:
    # tol mode, PCA and tucker raised OverflowError; now it is clamped to 2^1023 and the
    # results are those of the same data in range (scaled exactly). Singular values beyond
    # float64's range (finite entries of 1.7e307) were returned as inf with a warning.
    A = _decaying(120, 30, seed=5) * 1e-310
    c = 2.0**1000  # exact: A * c holds the same digits in the normal range
    with dask.config.set(scheduler="synchronous"):
        Ad = da.from_array(A, chunks=(40, 10))
        res = lowdim.rsvd(Ad, tol=0.3, seed=2, compute=True)
        ref = lowdim.rsvd(A * c, tol=0.3, seed=2)
        np.testing.assert_allclose(res.S * c, ref.S, rtol=1e-9)
        assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-9)
        p = lowdim.PCA(3, random_state=0).fit(Ad)
        pref = lowdim.PCA(3, random_state=0).fit(A * c)
        np.testing.assert_allclose(
            p.explained_variance_ratio_, pref.explained_variance_ratio_, rtol=1e-9
        )
        X = A[:24].reshape(4, 6, 30)
        T = lowdim.tucker(da.from_array(X, chunks=(2, 6, 30)), [2, 2, 2])
        Tref = lowdim.tucker(X * c, [2, 2, 2])
        np.testing.assert_allclose(np.abs(T.core) * c, np.abs(Tref.core), rtol=1e-8)
        big = da.from_array(np.random.default_rng(0).standard_normal((200, 60)) * 1.7e307)
        with pytest.raises(ValueError, match="beyond float64's range"):
            lowdim.rsvd(big.rechunk((50, 20)), tol=0.9, seed=1, compute=True)


@pytest.mark.parametrize("wide", [False, True])
def test_rsvd_float32_iterations_blocks_of_different_magnitudes(client, wide):
    # row blocks whose magnitudes differ by 1e5, all far outside float32's range: the dask
    # float32 iterations (one power-of-two scale from the per-block maxima, each block rounded
    # in its own task) give the in-memory float32 result and the float64 result's S, in both
    # orientations (a wide matrix runs on its transpose)
    A = _decaying(400, 90, seed=2) * 1e120
    A *= np.repeat([1e3, 1.0, 3e-2, 7.0], 100)[:, None]
    if wide:
        A = A.T
    kw = dict(seed=4, n_iter=4, solver="randomized")
    ref64 = lowdim.rsvd(A, 6, **kw)
    mem = lowdim.rsvd(A, 6, power_iteration_dtype="float32", **kw)
    chunks = (-1, 100) if wide else (100, -1)
    res = lowdim.rsvd(
        da.from_array(A, chunks=chunks), 6, power_iteration_dtype="float32", compute=True, **kw
    )
    np.testing.assert_allclose(res.S, mem.S, rtol=1e-12)
    np.testing.assert_allclose(res.S, ref64.S, rtol=1e-9)
    np.testing.assert_allclose(np.abs(res.U.T @ ref64.U), np.eye(6), atol=1e-6)


@pytest.mark.parametrize("centred", [False, True])
def test_rsvd_float32_power_iterations(client, centred):
    # float32 power iterations, float64 sketch and projection: the same seed gives the
    # in-memory mixed result up to float32 rounding of the iterations, and float64-accurate
    # factors of the float64 result when the spectrum is well above sqrt(eps_f32)
    rng = np.random.default_rng(5)
    A = _decaying(400, 90) + 1e-3 * rng.standard_normal((400, 90))
    kw = dict(seed=11, n_iter=4, solver="randomized")
    if centred:
        # implicit centring (the PCA route of the dask path): the float32 iterations would
        # cancel the mean's energy in float32, so they are not used: the float64 result
        from lowdim import _dask

        A = A + 3.0
        mu = A.mean(axis=0)
        Ad = da.from_array(A, chunks=(100, -1))
        got = _dask.rsvd(Ad, 6, center=mu, power_iteration_dtype="float32", compute=True, **kw)
        ref = _dask.rsvd(Ad, 6, center=mu, compute=True, **kw)
        np.testing.assert_array_equal(got.S, ref.S)
        np.testing.assert_allclose(got.S, lowdim.rsvd(A - mu, 6, **kw).S, rtol=1e-10)
        return
    ref64 = lowdim.rsvd(A, 6, **kw)
    mem = lowdim.rsvd(A, 6, power_iteration_dtype="float32", **kw)
    res = lowdim.rsvd(
        da.from_array(A, chunks=(100, -1)), 6, power_iteration_dtype=np.float32, compute=True, **kw
    )
    for r in (mem, res):
        assert r.U.dtype == np.float64 and r.S.dtype == np.float64
        np.testing.assert_allclose(r.U.T @ r.U, np.eye(6), atol=1e-12)
        np.testing.assert_allclose(r.Vh @ r.Vh.T, np.eye(6), atol=1e-12)
        np.testing.assert_allclose(r.S, ref64.S, rtol=1e-9)
        np.testing.assert_allclose(np.abs(r.U.T @ ref64.U), np.eye(6), atol=1e-6)
    np.testing.assert_allclose(res.S, mem.S, rtol=1e-12)
    # scipy.sparse chunks take the float64 products inside the float32 pass
    sp_res = lowdim.rsvd(
        da.from_array(sp.csr_matrix(A), chunks=(100, -1), asarray=False),
        6,
        power_iteration_dtype="float32",
        compute=True,
        **kw,
    )
    np.testing.assert_allclose(sp_res.S, ref64.S, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_qr_q_kernel(dtype):
    # the per-pass QR of the dask route (Rust, float64 inside): an orthonormal basis of the
    # same span as NumPy's, the input's dtype, and NaN kept visible
    from lowdim import _lowdim

    rng = np.random.default_rng(0)
    z = (rng.standard_normal((300, 20)) * np.logspace(0, -4, 20)).astype(dtype)
    q = _lowdim.qr_q(z)
    assert q.shape == (300, 20) and q.dtype == dtype
    tol = 1e-13 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(q.T.astype(np.float64) @ q, np.eye(20), atol=tol)
    ref = np.linalg.qr(z.astype(np.float64))[0]
    np.testing.assert_allclose(q @ (q.T @ ref), ref, atol=100 * tol)
    z[5, 7] = np.nan
    assert np.isnan(_lowdim.qr_q(z)).all()


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_local_scheduler_runs_numpy_blas_on_one_thread(monkeypatch, scheduler):
    # On a local scheduler the graph's NumPy steps run with BLAS on one thread (OpenBLAS's
    # helper threads would spin on the cores of lowdim's kernels after each call, 1.6x slower
    # passes); the caller's setting is restored afterwards.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from lowdim import _dask

    def blas_threads():
        info = threadpoolctl.threadpool_info()
        counts = [i["num_threads"] for i in info if i["user_api"] == "blas"]
        return max(counts) if counts else None

    before = blas_threads()
    if before is None:
        pytest.skip("no BLAS library reported by threadpoolctl")
    seen = []
    qr = _dask._qr_q

    def spy(z):
        seen.append(blas_threads())
        return qr(z)

    monkeypatch.setattr(_dask, "_qr_q", spy)
    A = _decaying(300, 90)
    with dask.config.set(scheduler=scheduler):
        res = lowdim.rsvd(da.from_array(A, chunks=(50, -1)), 5, n_iter=2, seed=0, compute=True)
    assert seen and set(seen) == {1}
    assert blas_threads() == before
    np.testing.assert_allclose(res.S, lowdim.rsvd(A, 5, n_iter=2, seed=0).S, rtol=1e-10)


def test_nanny_workers_run_lowdim_on_one_thread(client):
    A = da.from_array(_decaying(400, 60), chunks=(100, -1))
    lowdim.rsvd(A, 3, seed=0, compute=True)
    want = int(os.environ.get("LOWDIM_NUM_THREADS", 1))
    assert set(client.run(lowdim.get_num_threads).values()) == {want}


def test_in_process_worker_leaves_the_thread_count_alone(monkeypatch, restore_threads):
    # lowdim's thread count is process-wide: a worker of Client(processes=False) runs in the
    # client's process, and setting it to 1 there left every later in-memory call of the
    # session on one thread
    from lowdim import _dask

    monkeypatch.delenv("LOWDIM_NUM_THREADS", raising=False)
    monkeypatch.setattr(_dask, "_threads_set", False)
    lowdim.set_num_threads(3)
    A = _decaying(400, 60)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ):
        res = lowdim.rsvd(da.from_array(A, chunks=(100, -1)), 3, seed=0, compute=True)
    assert lowdim.get_num_threads() == 3
    np.testing.assert_allclose(res.S, lowdim.rsvd(A, 3, seed=0).S, rtol=1e-10)


def test_rsvd_is_reproducible_run_to_run(client):
    # The same seed gives the same bits on every run, although the operands reach the tasks
    # from either worker (as views into received frames at any alignment): the centred
    # route's NumPy products rounded by alignment before, 4 runs in 6 differed by 4e-15.
    from lowdim import _dask

    rng = np.random.default_rng(5)
    A = _decaying(400, 90) + 1e-3 * rng.standard_normal((400, 90)) + 3.0
    mu = A.mean(axis=0)
    Ad = da.from_array(A, chunks=(100, -1))
    runs = [_dask.rsvd(Ad, 6, center=mu, seed=11, n_iter=4, compute=True) for _ in range(8)]
    for r in runs[1:]:
        for got, ref in zip(r, runs[0], strict=True):
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("chunks", [(50, -1), (50, 30)], ids=["whole_rows", "both"])
@pytest.mark.parametrize("kw", [{}, {"power_iteration_dtype": "float32"}])
def test_rsvd_computes_shared_operands_once(monkeypatch, chunks, kw):
    # The test matrix and each iterate's QR are read by every row block: computed once per
    # chunk of their own, not once per row block (dask fuses a Blockwise producer into a
    # broadcasting consumer: before, each of the 6 row blocks redrew Omega and redid the QR)
    from lowdim import _dask

    calls = {"gaussian": 0, "qr": 0}

    def counted(name, f):
        @functools.wraps(f)  # keeps the block_info keyword visible to map_blocks
        def g(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)

        return g

    monkeypatch.setattr(_dask, "_gaussian_block", counted("gaussian", _dask._gaussian_block))
    monkeypatch.setattr(_dask, "_qr_q", counted("qr", _dask._qr_q))
    A = _decaying(300, 90)
    Ad = da.from_array(A, chunks=chunks)
    q = 3
    with dask.config.set(scheduler="synchronous"):
        res = lowdim.rsvd(Ad, 5, n_iter=q, seed=2, compute=True, **kw)
    fused = Ad.numblocks[1] == 1
    assert calls["gaussian"] == Ad.numblocks[1]
    # fused passes orthonormalize the single-chunk n x l iterate locally (one QR each);
    # the half-step route uses TSQR for its tall blocks instead
    assert calls["qr"] == (q if fused else 0)
    np.testing.assert_allclose(res.S, lowdim.rsvd(A, 5, n_iter=q, seed=2, **kw).S, rtol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"power_iteration_dtype": "float32"}, {"solver": "gram"}])
def test_rsvd_non_finite_raises(client, kw):
    A = _decaying(300, 80)
    A[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        lowdim.rsvd(da.from_array(A, chunks=(60, -1)), 5, seed=0, compute=True, **kw)


@pytest.mark.parametrize("est", ["PCA", "TruncatedSVD"])
def test_estimators_non_finite_raise(client, est):
    # the estimator's own wording (X, as in memory), not the rsvd's (A)
    A = _decaying(300, 80)
    A[7, 3] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        getattr(lowdim, est)(3, random_state=0).fit(da.from_array(A, chunks=(60, -1)))


def test_rsvd_validation(client):
    Ad = da.zeros((10, 5), chunks=5)
    with pytest.raises(ValueError, match="larger than min"):
        lowdim.rsvd(Ad, 6)
    with pytest.raises(ValueError, match="exactly one"):
        lowdim.rsvd(Ad)
    with pytest.raises(ValueError, match="tol"):
        lowdim.rsvd(Ad, tol=1.5)
    with pytest.raises(TypeError, match="complex"):
        lowdim.rsvd(da.zeros((10, 5), chunks=5, dtype=complex), 2)


@pytest.mark.parametrize("chunking", sorted(CHUNKS))
@pytest.mark.parametrize("wide", [False, True], ids=["tall", "wide"])
def test_rsvd_tol_matches_in_memory(client, chunking, wide):
    A = _decaying(300, 80)
    chunks = CHUNKS[chunking]
    if wide:
        A, chunks = A.T.copy(), chunks[::-1]
    kw = {"tol": 1e-3, "seed": 7, "block_size": 4, "n_iter": 2}
    ref = lowdim.rsvd(A, **kw)
    res = lowdim.rsvd(da.from_array(A, chunks=chunks), compute=True, **kw)
    assert res.solver == ref.solver == "randqb"
    assert res.S.shape == ref.S.shape  # same rank (blocks 4, 8, 16: rank 20 of 28 tried)
    assert res.rel_error <= 1e-3
    np.testing.assert_allclose(res.rel_error, ref.rel_error, rtol=1e-6)
    assert res.U.flags.f_contiguous and res.Vh.flags.c_contiguous
    _assert_same(res, ref, 1e-9)


def test_rsvd_tol_lazy_float32_sparse_and_zero(client):
    A = _decaying(200, 60, seed=1, dtype=np.float32)
    ref = lowdim.rsvd(A, tol=1e-2, seed=3)
    res = lowdim.rsvd(da.from_array(A, chunks=(50, -1)), tol=1e-2, seed=3)
    assert all(isinstance(x, da.Array) for x in res)
    assert res.U.dtype == np.float32 and res.S.shape == ref.S.shape
    np.testing.assert_allclose(res.rel_error, ref.rel_error, rtol=1e-3)
    _assert_same(dask.compute(*res), ref, 2e-4)
    # sparse chunks, past the first block (16) and into the second (32)
    X = sp.random(400, 120, density=0.05, random_state=0, format="csr", dtype=np.float64)
    ref = lowdim.rsvd(X, tol=0.5, seed=5)
    Xd = da.from_array(X, chunks=(100, 40), asarray=False)
    res = lowdim.rsvd(Xd, tol=0.5, seed=5, compute=True)
    assert res.S.shape == ref.S.shape and res.S.shape[0] > 16
    np.testing.assert_allclose(res.rel_error, ref.rel_error, rtol=1e-9)
    _assert_same(res, ref, 1e-8)
    # the rounding floor: the residual is measured directly, as in memory
    B = _decaying(120, 10, seed=2)
    ref = lowdim.rsvd(B, tol=1e-6, seed=1)
    res = lowdim.rsvd(da.from_array(B, chunks=(30, 5)), tol=1e-6, seed=1, compute=True)
    assert res.S.shape == ref.S.shape and res.rel_error < 1e-12
    _assert_same(res, ref, 1e-9)
    # all zeros: rank 0, error 0 (as in memory)
    ref = lowdim.rsvd(np.zeros((30, 10)), tol=0.1)
    res = lowdim.rsvd(da.zeros((30, 10), chunks=10), tol=0.1, compute=True)
    assert res.U.shape == ref.U.shape == (30, 0) and res.Vh.shape == ref.Vh.shape == (0, 10)
    assert res.rel_error == ref.rel_error == 0.0
    # tiny magnitudes are rescaled (power of two) as in memory
    C = 1e-200 * _decaying(100, 20, seed=4)
    ref = lowdim.rsvd(C, tol=1e-3, seed=2)
    res = lowdim.rsvd(da.from_array(C, chunks=(25, 20)), tol=1e-3, seed=2, compute=True)
    assert res.S.shape == ref.S.shape
    np.testing.assert_allclose(res.S, ref.S, rtol=1e-9)
    Xn = A.astype(np.float64)
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lowdim.rsvd(da.from_array(Xn, chunks=50), tol=0.1)


def test_pca_variance_fraction_matches_in_memory(client):
    rng = np.random.default_rng(5)
    X = _decaying(300, 40, seed=5) + 2.0 + 1e-3 * rng.standard_normal((300, 40))
    kw = {"n_components": 0.99, "random_state": 0}
    ref = lowdim.PCA(**kw).fit(X)
    est = lowdim.PCA(**kw).fit(da.from_array(X, chunks=(70, 20)))
    assert est.n_components_ == ref.n_components_ > 1
    for attr in ("components_", "singular_values_", "explained_variance_", "mean_"):
        np.testing.assert_allclose(getattr(est, attr), getattr(ref, attr), atol=1e-9)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_, rtol=1e-8)


def test_pca_matches_in_memory(client):
    rng = np.random.default_rng(3)
    X = _decaying(300, 40, seed=3) + 5.0 + 0.01 * rng.standard_normal((300, 40))
    kw = {"n_components": 5, "random_state": 0, "svd_solver": "randomized"}
    ref = lowdim.PCA(**kw)
    Zref = ref.fit_transform(X)
    Xd = da.from_array(X, chunks=(70, 20))
    est = lowdim.PCA(**kw)
    Z = est.fit_transform(Xd)
    assert isinstance(Z, da.Array)
    for attr in ("components_", "singular_values_", "explained_variance_", "mean_"):
        np.testing.assert_allclose(getattr(est, attr), getattr(ref, attr), atol=1e-9)
    np.testing.assert_allclose(est.explained_variance_ratio_, ref.explained_variance_ratio_)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_, rtol=1e-9)
    np.testing.assert_allclose(Z.compute(), Zref, atol=1e-9)
    np.testing.assert_allclose(est.transform(Xd).compute(), ref.transform(X), atol=1e-9)


@pytest.mark.parametrize(
    ("solver", "chunks", "nc"),
    [
        ("auto", (300, -1), 5),  # the Gram route
        ("randomized", (300, -1), 5),  # fused passes
        ("randomized", (300, 20), 5),  # two-step passes
        ("auto", (300, 20), 0.999),  # tol mode
    ],
)
def test_pca_of_data_with_a_large_mean(client, solver, chunks, nc):
    # the dask PCA centred by the expansion (B - 1 mu^T)^T (B - 1 mu^T) = B^T B - s mu^T - ...,
    # which cancels the mean's energy: with means of 1e5 against a spread of 1e-2 the Gram
    # route's singular values were 56% off (silently), the randomized ones 6e-4; float32
    # data of mean 3 were 15% off. In memory X - mean is exact; dense blocks are now centred
    # explicitly too. Tall and wide (the transposed operator centres its rows).
    rng = np.random.default_rng(9)
    B = _decaying(2000, 40) + 1e-3 * rng.standard_normal((2000, 40))
    cases = [(B + 1e5, chunks, 1e-8), ((B + 3.0).astype(np.float32), chunks, 2e-5)]
    if nc == 5:
        cases.append((B.T + 1e5, chunks[::-1], 1e-8))
    for X, ch, rtol in cases:
        kw = {"n_components": nc, "random_state": 0, "svd_solver": solver}
        ref = lowdim.PCA(**kw).fit(X)
        est = lowdim.PCA(**kw).fit(da.from_array(X, chunks=ch))
        assert est.n_components_ == ref.n_components_
        np.testing.assert_allclose(est.singular_values_, ref.singular_values_, rtol=rtol)
        np.testing.assert_allclose(
            est.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=rtol
        )
        np.testing.assert_allclose(est.components_[:4], ref.components_[:4], atol=100 * rtol)


def test_truncated_svd_matches_in_memory(client):
    X = sp.random(300, 60, density=0.1, random_state=1, format="csr")
    ref = lowdim.TruncatedSVD(4, random_state=2)
    Zref = ref.fit_transform(X)
    est = lowdim.TruncatedSVD(4, random_state=2)
    X_d = da.from_array(X, chunks=(75, -1), asarray=False)
    Z = est.fit_transform(X_d)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-9)
    np.testing.assert_allclose(est.singular_values_, ref.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(est.explained_variance_ratio_, ref.explained_variance_ratio_)
    np.testing.assert_allclose(Z.compute(), Zref, atol=1e-9)
    np.testing.assert_allclose(est.transform(X_d).compute(), ref.transform(X), atol=1e-9)


@pytest.mark.parametrize("est", ["PCA", "PCA-whiten", "TruncatedSVD"])
def test_transform_and_inverse_transform_of_dask_arrays(est):
    # transform: float32 data on a model fitted on float64 data were projected on the
    # components rounded to float32 (1e-6 off the in-memory result; TruncatedSVD's came back
    # float32 where memory gives float64). inverse_transform computed a dask input (through
    # check_array) and returned NumPy; now it is lazy, with the in-memory values and dtype.
    # transform refused rows of unknown count.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 30)) + 2.0
    name, _, whiten = est.partition("-")
    kw = {"whiten": True} if whiten else {}
    m = getattr(lowdim, name)(5, random_state=0, **kw).fit(X)
    with dask.config.set(scheduler="synchronous"):
        for dt in (np.float64, np.float32):
            Xt = X.astype(dt)
            got = m.transform(da.from_array(Xt, chunks=(100, -1)))
            ref = m.transform(Xt)
            assert isinstance(got, da.Array) and got.dtype == ref.dtype
            np.testing.assert_allclose(got.compute(), ref, rtol=0, atol=1e-12)
        T = m.transform(X)
        for dt in (np.float64, np.float32, np.int64):
            Td = da.from_array((10 * T).astype(dt), chunks=(100, -1))
            inv = m.inverse_transform(Td)
            ref = m.inverse_transform((10 * T).astype(dt))
            assert isinstance(inv, da.Array) and inv.dtype == ref.dtype
            np.testing.assert_allclose(inv.compute(), ref, rtol=0, atol=1e-12)
        with pytest.raises(ValueError, match="has 5 components"):
            m.inverse_transform(da.from_array(T[:, :3], chunks=(100, -1)))
        # rows of unknown count (a filtered array): a projection needs only the columns
        keep = X[:, 0] > 2.0
        for chunks in ((100, -1), (100, 7)):
            Xd = da.from_array(X, chunks=chunks)
            got = m.transform(Xd[Xd[:, 0] > 2.0])
            np.testing.assert_allclose(got.compute(), m.transform(X[keep]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunks", [(5, -1, -1), (-1, 10, 5), (7, 11, 4)])
@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
def test_tucker_matches_in_memory(client, chunks, method):
    rng = np.random.default_rng(0)
    core = rng.standard_normal((3, 4, 2))
    X = lowdim.tucker_to_tensor(
        core, [rng.standard_normal((n, 5))[:, :r] for n, r in [(20, 3), (30, 4), (10, 2)]]
    )
    X += 1e-2 * rng.standard_normal(X.shape)
    ref = lowdim.tucker(X, [3, 4, 2], method=method, svd="gram")
    T = lowdim.tucker(da.from_array(X, chunks=chunks), [3, 4, 2], method=method)
    assert isinstance(T.core, np.ndarray) and all(isinstance(f, np.ndarray) for f in T.factors)
    assert T.mode_order == ref.mode_order
    np.testing.assert_allclose(T.core, ref.core, atol=1e-10 * np.abs(ref.core).max())
    for f, g in zip(T.factors, ref.factors, strict=True):
        np.testing.assert_allclose(f, g, atol=1e-10)
    np.testing.assert_allclose(T.certified_error, ref.certified_error, rtol=1e-8)


@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
@pytest.mark.parametrize("tol", [0.3, 5e-2, 1e-3])
def test_tucker_tol_matches_in_memory(client, method, tol):
    # the same rank rule as in memory: the budget tol^2 ||X||^2 spent mode by mode with
    # carry-over, modes in ascending size; the same ranks, factors, core and error
    rng = np.random.default_rng(2)
    core = rng.standard_normal((4, 5, 3)) * np.array([1.0, 0.3, 0.1])[None, None, :]
    X = lowdim.tucker_to_tensor(
        core, [np.linalg.qr(rng.standard_normal((n, r)))[0] for n, r in [(20, 4), (30, 5), (12, 3)]]
    )
    X += 3e-3 * rng.standard_normal(X.shape)
    ref = lowdim.tucker(X, tol=tol, method=method, svd="gram")
    T = lowdim.tucker(da.from_array(X, chunks=(7, 30, 5)), tol=tol, method=method)
    assert T.core.shape == ref.core.shape
    assert T.mode_order == ref.mode_order
    np.testing.assert_allclose(T.core, ref.core, atol=1e-9 * np.abs(ref.core).max())
    for f, g in zip(T.factors, ref.factors, strict=True):
        np.testing.assert_allclose(f, g, atol=1e-9)
    np.testing.assert_allclose(T.certified_error, ref.certified_error, rtol=1e-8, atol=1e-14)
    assert T.certified_error <= tol
    rel = np.linalg.norm(X - T.to_tensor()) / np.linalg.norm(X)
    assert rel <= tol * (1 + 1e-9)


@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
def test_tucker_full_ranks_certify_zero_error(method):
    # nothing discarded: the certified error is 0, as in memory (the identity
    # ||X||^2 - ||core||^2 used before gave rounding noise of ~3e-8 in 7 tensors of 10, and
    # the tol=1e-3 comparison with the in-memory 0 failed now and then)
    with dask.config.set(scheduler="synchronous"):
        for seed in range(4):
            X = np.random.default_rng(seed).standard_normal((9, 11, 7))
            T = lowdim.tucker(da.from_array(X, chunks=(4, 11, 7)), list(X.shape), method=method)
            ref = lowdim.tucker(X, list(X.shape), method=method, svd="gram")
            assert T.certified_error == 0.0 == ref.certified_error
            np.testing.assert_allclose(T.to_tensor(), X, atol=1e-12)


@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
@pytest.mark.parametrize("kw", [{"rank": [4, 3, 2]}, {"tol": 0.5}, {"rank": 2, "modes": [0, 2]}])
def test_tucker_progress_reports_the_in_memory_steps(method, kw):
    # progress= was accepted and silently ignored on dask input
    X = np.random.default_rng(0).standard_normal((9, 8, 7))
    ref, got = [], []
    lowdim.tucker(X, method=method, svd="gram", progress=lambda d, t: ref.append((d, t)), **kw)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(4, 8, 7))
        lowdim.tucker(Xd, method=method, progress=lambda d, t: got.append((d, t)), **kw)

        def stop(done, total):
            if done == 1:
                raise KeyError("stop")

        with pytest.raises(KeyError, match="stop"):
            lowdim.tucker(Xd, method=method, progress=stop, **kw)
        with pytest.raises(TypeError, match="progress"):
            lowdim.tucker(Xd, method=method, progress="yes", **kw)
    assert got == ref and ref[0][0] == 0 and ref[-1][0] == ref[-1][1]


def test_tucker_partial_modes_and_float32(client):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 9, 4, 3)).astype(np.float32)
    ref = lowdim.tucker(X, [5, 4], modes=[0, 1], mode_order=[1, 0], svd="gram")
    T = lowdim.tucker(
        da.from_array(X, chunks=(4, 9, 2, 3)), [5, 4], modes=[0, 1], mode_order=[1, 0]
    )
    assert T.core.dtype == np.float32 and T.core.shape == (5, 4, 4, 3)
    np.testing.assert_allclose(T.core, ref.core, atol=1e-4)
    with pytest.raises(ValueError, match="not available for dask"):
        lowdim.tucker(da.from_array(X), 2, method="hooi")


@pytest.mark.parametrize("sparse", [False, True])
def test_pca_tsvd_ratios_and_tol_are_scale_invariant(sparse):
    # squares of data of 1e300 overflow and of 1e-300 lose their digits: PCA raised "X
    # contains NaN or infinity" at 1e300 and both estimators gave wrong ratios at 1e-300
    # (NaN for TruncatedSVD at 1e300); tol mode warned about the overflow it rescales
    A = _decaying(200, 40, seed=3) + 0.01 * np.random.default_rng(3).standard_normal((200, 40))

    def mk(X):
        if sparse:
            return da.from_array(sp.csr_matrix(X), chunks=(50, -1), asarray=False)
        return da.from_array(X, chunks=(50, -1))

    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for make in (
            lambda: lowdim.PCA(3, random_state=0),
            lambda: lowdim.TruncatedSVD(3, random_state=0),
        ):
            ref = make().fit(mk(A))
            for c in (1e300, 1e-300):
                got = make().fit(mk(A * c))
                np.testing.assert_allclose(
                    got.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-9
                )
                np.testing.assert_allclose(
                    got.singular_values_ / c, ref.singular_values_, rtol=1e-9
                )
                assert np.all(got.explained_variance_ == (np.inf if c > 1 else 0.0))
        t_ref = lowdim.rsvd(mk(A), tol=0.3, seed=0, compute=True)
        t_got = lowdim.rsvd(mk(A * 1e300), tol=0.3, seed=0, compute=True)
        np.testing.assert_allclose(t_got.S / 1e300, t_ref.S, rtol=1e-9)


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e-160])
def test_gram_solver_out_of_range_is_a_clear_error(scale):
    # the dask Gram solver squares the entries with no rescaling: at 1e-300 its S came out
    # 30% wrong, silently; now it says so and names the solvers that rescale
    A = _decaying(200, 40, seed=1)
    Ad = da.from_array(A * scale, chunks=(50, -1))
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(ValueError, match="solver='gram' on a dask array cannot take A"):
            lowdim.rsvd(Ad, 3, solver="gram", compute=True)
        res = lowdim.rsvd(Ad, 3, solver="randomized", seed=0, compute=True)
        ref = lowdim.rsvd(A, 3, solver="randomized", seed=0)
        np.testing.assert_allclose(res.S / scale, ref.S, rtol=1e-9)
        B = A.copy()
        B[3, 3] = np.inf
        with pytest.raises(ValueError, match="NaN or infinity"):
            lowdim.rsvd(da.from_array(B, chunks=(50, -1)), 3, solver="gram", compute=True)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
def test_tucker_scale_equivariance(method, scale):
    # the dask path scales out-of-range data by a power of two as the in-memory one (its
    # Gram matrices under- or overflowed: a zero core certified exact, or an error)
    X = np.random.default_rng(0).standard_normal((8, 6, 5))
    with dask.config.set(scheduler="synchronous"):
        for kw in ({"rank": 2}, {"tol": 0.4}):
            ref = lowdim.tucker(X, method=method, **kw)
            T = lowdim.tucker(da.from_array(X * scale, chunks=(4, 6, 5)), method=method, **kw)
            np.testing.assert_allclose(np.abs(T.core) / scale, np.abs(ref.core), rtol=1e-8)
            assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("method", ["sthosvd", "hosvd"])
def test_tucker_non_finite_is_a_clear_error(method, bad):
    # the in-memory ValueError, not NumPy's LinAlgError "Eigenvalues did not converge" from
    # the eigensolver of a non-finite Gram matrix; fixed ranks and tol alike
    X = np.random.default_rng(0).standard_normal((8, 6, 5))
    X[3, 2, 1] = bad
    with dask.config.set(scheduler="synchronous"):
        for kw in ({"rank": 2}, {"tol": 0.3}):
            with pytest.raises(ValueError, match="X contains NaN or infinity") as got:
                lowdim.tucker(da.from_array(X, chunks=(4, 6, 5)), method=method, **kw)
            with pytest.raises(ValueError) as mem:
                lowdim.tucker(X, method=method, **kw)
            assert str(got.value) == str(mem.value)


# Keep last: it kills a worker of the shared cluster (the nanny restarts it).
def test_killed_worker_does_not_lose_the_result(client):
    A = _decaying(3000, 120, seed=9)
    ref = lowdim.rsvd(A, 6, seed=11, n_iter=25, solver="randomized")
    Ad = da.from_array(A, chunks=(100, -1)).persist()
    res = lowdim.rsvd(Ad, 6, seed=11, n_iter=25)
    futures = client.compute(list(res))
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        busy = {w: t for w, t in client.processing().items() if t}
        if busy and any(f.status == "pending" for f in futures):
            victim = sorted(busy)[0]
        else:
            time.sleep(0.01)
    assert victim is not None and not all(f.done() for f in futures), "finished too early"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # the worker process this fixture started; its nanny restarts it
    U, S, Vh = client.gather(futures)
    assert victim not in client.scheduler_info()["workers"], "the worker was not killed"
    _assert_same((U, S, Vh), ref, 1e-10)


def test_pca_zero_variance_whitening_and_parameter_names():
    # as in memory: a float n_components on zero-variance data is one component (IndexError
    # on zeros, LinAlgError "cannot rescale" on ones, before); the whitened transform agrees
    # with fit_transform when a component has no variance (it divided by sqrt(0)); errors
    # name the estimator's parameters, not rsvd's
    with dask.config.set(scheduler="synchronous"):
        for X in (np.zeros((12, 5)), np.ones((12, 5))):
            p = lowdim.PCA(0.5).fit(da.from_array(X, chunks=(4, 5)))
            ref = lowdim.PCA(0.5).fit(X)
            assert p.n_components_ == ref.n_components_ == 1
            np.testing.assert_allclose(p.components_, ref.components_)
            np.testing.assert_allclose(p.mean_, ref.mean_)
        X = np.random.default_rng(0).standard_normal((40, 6))
        X[:, 2] = 3.0
        Xd = da.from_array(X, chunks=(10, 6))
        p = lowdim.PCA(5, whiten=True, svd_solver="randomized", random_state=0)
        ft = np.asarray(p.fit_transform(Xd))
        tr = np.asarray(p.transform(Xd))
        assert np.isfinite(tr).all()
        np.testing.assert_allclose(tr[:, :4], ft[:, :4], atol=1e-10)
        with pytest.raises(ValueError, match="iterated_power"):
            lowdim.PCA(2, iterated_power=-1).fit(Xd)
        with pytest.raises(TypeError, match="random_state"):
            lowdim.PCA(2, random_state="x").fit(Xd)


def test_tucker_tol_below_the_gram_resolution_is_an_error():
    # the dask path has only Gram matrices: at tol 1e-10 it gave a mode rank above the
    # unfolding's and a certified error of 0 (in memory svd='auto' switches to the SVD)
    rng = np.random.default_rng(0)
    Q1 = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    X = Q1[:, :20] @ np.diag(0.6 ** np.arange(20)) @ Q2.T
    X3 = np.einsum("ij,k->ijk", X, np.ones(4))
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X3, chunks=(10, 20, 4))
        with pytest.raises(ValueError, match="below what the Gram matrices"):
            lowdim.tucker(Xd, tol=1e-10)
        T = lowdim.tucker(Xd, tol=1e-5)
        assert T.certified_error <= 1e-5
        assert T.ranks[0] <= 20
        X32 = da.from_array(X3.astype(np.float32), chunks=(10, 20, 4))
        with pytest.warns(RuntimeWarning, match="float32 reconstruction"):
            with pytest.raises(ValueError, match="below what the Gram matrices"):
                lowdim.tucker(X32, tol=1e-6)
