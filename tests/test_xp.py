"""The array-API path (lowdim._xp) against the Rust path.

Every comparison runs on three backends: NumPy arrays passed to the ``_xp`` functions
directly (the same code path as on a GPU), ``array_api_strict`` arrays through the public
API (dispatch), and, marked ``gpu``, CuPy arrays through the public API (skipped without
CuPy or a CUDA device).
"""

from __future__ import annotations

import lowdim
import numpy as np
import pytest
from lowdim import _xp
from xp_backends import cupy_or_skip as _cupy_or_skip
from xp_backends import module_of as _module_of
from xp_backends import xs


# Each backend: (to the backend, back to NumPy, call through the public API?, expected module)
def _np_backend():
    return (lambda a: a, np.asarray, False, "numpy")


def _strict_backend():
    return (xs.asarray, np.asarray, True, "array_api_strict")


def _cupy_backend():
    cp = _cupy_or_skip()
    return (cp.asarray, cp.asnumpy, True, "cupy")


BACKENDS = [
    pytest.param(_np_backend, id="numpy"),
    pytest.param(_strict_backend, id="strict"),
    pytest.param(_cupy_backend, id="cupy", marks=pytest.mark.gpu),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param()


def _low_rank(m, n, decay=0.7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    r = min(m, n)
    U = np.linalg.qr(rng.standard_normal((m, r)))[0]
    V = np.linalg.qr(rng.standard_normal((n, r)))[0]
    return ((U * decay ** np.arange(r)) @ V.T).astype(dtype)


# ----------------------------------------------------------------------------- rsvd


RSVD_CASES = [
    ((300, 120), 10, {}),  # tall, Gram path
    ((120, 300), 10, {}),  # wide: runs on A^T
    ((300, 120), 10, {"solver": "randomized"}),
    ((120, 300), 8, {"solver": "randomized", "n_iter": 2}),  # no normalizer (q <= 2)
    ((400, 300), 20, {"solver": "randomized", "n_iter": 3, "power_iteration_normalizer": "QR"}),
    ((400, 300), 20, {"solver": "randomized", "n_iter": 3, "power_iteration_normalizer": "LU"}),
    ((200, 50), 45, {}),  # the sketch spans every column: exact SVD
    ((200, 50), 5, {"solver": "gram"}),
    ((257, 131), 7, {"solver": "randomized", "n_oversamples": 3, "n_iter": 5}),
]


@pytest.mark.parametrize(("shape", "k", "kw"), RSVD_CASES)
def test_rsvd_matches_rust(backend, shape, k, kw):
    to, back, public, mod = backend
    A = _low_rank(*shape)
    ref = lowdim.rsvd(A, k, seed=7, **kw)
    fn = lowdim.rsvd if public else _xp.rsvd
    res = fn(to(A), k, seed=7, **kw)
    assert res.solver == ref.solver
    for x in res:
        assert _module_of(x) == mod
    U, S, Vh = (back(x) for x in res)
    assert U.dtype == S.dtype == Vh.dtype == np.float64
    np.testing.assert_allclose(S, ref.S, rtol=1e-6, atol=1e-6 * ref.S[0])
    np.testing.assert_allclose(U, ref.U, atol=1e-6)
    np.testing.assert_allclose(Vh, ref.Vh, atol=1e-6)


# (not the unnormalized q = 2 case: in float32 both paths lose the trailing directions there,
# each to its own rounding)
@pytest.mark.parametrize(("shape", "k", "kw"), [RSVD_CASES[i] for i in (0, 1, 2, 4, 5)])
def test_rsvd_float32_stays_float32(backend, shape, k, kw):
    to, back, public, _ = backend
    A = _low_rank(*shape, decay=0.5, dtype=np.float32)
    ref = lowdim.rsvd(A, k, seed=3, **kw)
    fn = lowdim.rsvd if public else _xp.rsvd
    U, S, Vh = (back(x) for x in fn(to(A), k, seed=3, **kw))
    assert U.dtype == S.dtype == Vh.dtype == np.float32
    np.testing.assert_allclose(S, ref.S, rtol=1e-4, atol=1e-5)
    # Singular vectors of well-separated values (decay 0.5) agree to float32 rounding.
    np.testing.assert_allclose(U[:, :5], ref.U[:, :5], atol=2e-3)
    np.testing.assert_allclose(Vh[:5], ref.Vh[:5], atol=2e-3)


def test_rsvd_integer_input_and_reconstruction(backend):
    to, back, public, _ = backend
    rng = np.random.default_rng(1)
    A = rng.integers(-5, 5, size=(60, 8)) @ rng.integers(-5, 5, size=(8, 40))
    fn = lowdim.rsvd if public else _xp.rsvd
    U, S, Vh = (back(x) for x in fn(to(A), 8, seed=0, solver="randomized"))
    assert S.dtype == np.float64
    np.testing.assert_allclose((U * S) @ Vh, A, atol=1e-9 * np.abs(A).max())


def test_svd_error_matches_rust(backend):
    to, back, public, _ = backend
    A = _low_rank(150, 90, decay=0.8)
    U, S, Vh = lowdim.rsvd(A, 6, seed=0)
    ref = lowdim.svd_error(A, U, S, Vh, seed=5, n_iter=15)
    fn = lowdim.svd_error if public else _xp.svd_error
    est = fn(to(A), to(U), to(S), to(Vh), seed=5, n_iter=15)
    assert isinstance(est, float)
    assert est == pytest.approx(ref, rel=1e-6)
    assert est == pytest.approx(0.8**6, rel=1e-3)
    # magnitudes whose squares overflow or underflow: the estimate scales with them (it was
    # "NaN or infinity" at 1e300 and 0 at 1e-300), on both paths
    for c in (1e300, 1e-300):
        got = fn(to(A * c), to(U), to(S * c), to(Vh), seed=5, n_iter=15)
        assert got / c == pytest.approx(ref, rel=1e-6)
        assert lowdim.svd_error(A * c, U, S * c, Vh, seed=5, n_iter=15) / c == pytest.approx(
            ref, rel=1e-6
        )


def test_rsvd_errors_and_not_implemented():
    A = xs.asarray(_low_rank(50, 30))
    with pytest.raises(ValueError, match="larger than min"):
        lowdim.rsvd(A, 31)
    with pytest.raises(ValueError, match="exactly one"):
        lowdim.rsvd(A)
    with pytest.raises(ValueError, match="2-D"):
        lowdim.rsvd(xs.ones((3, 3, 3)), 1)
    with pytest.raises(TypeError, match="complex"):
        lowdim.rsvd(xs.ones((4, 3), dtype=xs.complex128), 1)
    with pytest.raises(ValueError, match="NaN"):
        lowdim.rsvd(xs.full((40, 30), xs.nan), 2, solver="randomized")
    with pytest.raises(ValueError, match="shapes do not match"):
        lowdim.svd_error(A, xs.ones((50, 2)), xs.ones((3,)), xs.ones((3, 30)))
    with pytest.raises(ValueError, match="tol"):
        lowdim.rsvd(A, tol=1.5)
    with pytest.raises(ValueError, match="NaN"):
        lowdim.rsvd(xs.full((40, 30), xs.nan), tol=0.1)


# ----------------------------------------------------------------------------- rsvd, tol mode

RSVD_TOL_CASES = [
    ((300, 120), 1e-3, {}),
    ((120, 300), 1e-4, {}),  # wide: runs on A^T
    ((400, 300), 1e-2, {"block_size": 4}),  # several doubling blocks
    ((500, 400), 0.05, {"n_iter": 1}),
    ((200, 50), 1e-9, {}),  # near the floor: the residual is measured
    ((60, 40), 1e-12, {"block_size": 7}),  # the whole basis (r = n, last block cut short)
]


@pytest.mark.filterwarnings("ignore:tol=.* is below what rsvd's error indicator resolves")
@pytest.mark.parametrize(("shape", "tol", "kw"), RSVD_TOL_CASES)
def test_rsvd_tol_matches_rust(backend, shape, tol, kw):
    to, back, public, mod = backend
    A = _low_rank(*shape, decay=0.8)
    ref = lowdim.rsvd(A, tol=tol, seed=3, **kw)
    fn = lowdim.rsvd if public else _xp.rsvd
    res = fn(to(A), tol=tol, seed=3, **kw)
    assert res.solver == ref.solver == "randqb"
    assert isinstance(res.rel_error, float)
    assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6, abs=1e-12)
    assert res.rel_error <= tol * (1 + 1e-6)
    for x in res:
        assert _module_of(x) == mod
    U, S, Vh = (back(x) for x in res)
    assert S.shape == ref.S.shape  # the same rank
    assert U.dtype == S.dtype == Vh.dtype == np.float64
    np.testing.assert_allclose(S, ref.S, rtol=1e-6, atol=1e-6 * ref.S[0])
    # (the trailing vectors of a basis that spans everything are only defined up to rounding)
    r = S.shape[0] if tol > 1e-8 else 20
    np.testing.assert_allclose(U[:, :r], ref.U[:, :r], atol=1e-6)
    np.testing.assert_allclose(Vh[:r], ref.Vh[:r], atol=1e-6)


def test_rsvd_tol_float32_stays_float32(backend):
    to, back, public, _ = backend
    A = _low_rank(300, 200, decay=0.7, dtype=np.float32)
    ref = lowdim.rsvd(A, tol=1e-2, seed=5)
    fn = lowdim.rsvd if public else _xp.rsvd
    res = fn(to(A), tol=1e-2, seed=5)
    U, S, Vh = (back(x) for x in res)
    assert U.dtype == S.dtype == Vh.dtype == np.float32
    assert S.shape == ref.S.shape
    assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-3)
    np.testing.assert_allclose(S, ref.S, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(U[:, :5], ref.U[:, :5], atol=2e-3)


@pytest.mark.parametrize("scale", [0.0, 1e-200, 1e200])
def test_rsvd_tol_rescales_like_rust(scale):
    """Magnitudes whose squares underflow or overflow: the same power-of-two rescaling (and
    the zero matrix: rank 0, error 0)."""
    A = _low_rank(80, 50, decay=0.6) * scale
    ref = lowdim.rsvd(A, tol=1e-3, seed=0)
    res = _xp.rsvd(xs.asarray(A), tol=1e-3, seed=0)
    assert tuple(res.S.shape) == ref.S.shape
    assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6, abs=1e-12)
    if scale:
        np.testing.assert_allclose(np.asarray(res.S), ref.S, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(res.U), ref.U, atol=1e-6)
    else:
        assert tuple(res.U.shape) == (80, 0) and tuple(res.Vh.shape) == (0, 50)


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.float64, 1e-200),
        (np.float64, 1e160),
        (np.float64, 1e300),
        (np.float32, 1e-30),
        (np.float32, 1e30),
    ],
)
@pytest.mark.parametrize("solver", ["auto", "randomized", "gram"])
def test_rsvd_fixed_rank_rescales_like_rust(backend, dtype, scale, solver):
    """Squares of such entries leave the dtype's range (Gram matrices, CholeskyQR2): the
    array-API path scales A by a power of two as the Rust path does. It returned S 15-50%
    off, silently, before."""
    to, back, _, _ = backend
    A = _low_rank(80, 50, decay=0.8).astype(dtype)
    ref = _xp.rsvd(to(A), 5, seed=0, solver=solver)
    res = _xp.rsvd(to((A.astype(np.float64) * scale).astype(dtype)), 5, seed=0, solver=solver)
    assert res.solver == ref.solver
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(back(res.S) / scale, back(ref.S), rtol=rtol)
    np.testing.assert_allclose(back(res.U), back(ref.U), atol=100 * rtol)
    bad = (A * 1.0).astype(dtype)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        _xp.rsvd(to(bad), 5, seed=0, solver=solver)


def test_cholqr2_falls_back_to_qr():
    """A rank-deficient block has a singular Gram matrix: CholeskyQR2 returns None and
    orthonormalize falls back to Householder QR."""
    xp = _xp.namespace(xs.ones(1))
    Y = xs.asarray(np.repeat(np.random.default_rng(0).standard_normal((30, 1)), 3, axis=1))
    assert _xp.cholqr2(xp, Y) is None
    Q = np.asarray(_xp.orthonormalize(xp, Y))
    np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-12)
    Z = xs.asarray(np.random.default_rng(1).standard_normal((30, 4)))
    Q, R = _xp.cholqr2(xp, Z)
    np.testing.assert_allclose(np.asarray(Q @ R), np.asarray(Z), atol=1e-12)
    np.testing.assert_allclose(np.asarray(Q.T @ Q), np.eye(4), atol=1e-13)


def test_flip_signs_matches_numpy_convention():
    rng = np.random.default_rng(2)
    U, Vh = rng.standard_normal((20, 4)), rng.standard_normal((4, 9))
    for u_based in (True, False):
        a, b = U.copy(), Vh.copy()
        lowdim.svd._flip_signs(a, b, u_based)
        xp = _xp.namespace(xs.ones(1))
        c, d = _xp.flip_signs(xp, xs.asarray(U), xs.asarray(Vh), u_based)
        np.testing.assert_array_equal(np.asarray(c), a)
        np.testing.assert_array_equal(np.asarray(d), b)


# ----------------------------------------------------------------------------- Tucker


def _tucker_tensor(shape=(20, 25, 15), ranks=(4, 5, 3), noise=1e-2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = lowdim.tucker_to_tensor(
        rng.standard_normal(ranks),
        [rng.standard_normal((n, r)) for n, r in zip(shape, ranks, strict=True)],
    )
    return (X + noise * rng.standard_normal(X.shape)).astype(dtype)


TUCKER_CASES = [
    {"rank": [4, 5, 3]},
    {"rank": 3},
    {"rank": [2, 6, 3], "mode_order": [1, 0, 2]},
    {"tol": 0.05},
    {"tol": 1e-6},  # below what the Gram resolves: the unfoldings' SVD ("lq")
    {"rank": [4, 3], "modes": [0, 2]},
]


@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize("kw", TUCKER_CASES)
def test_tucker_matches_rust(backend, method, kw):
    to, back, public, mod = backend
    X = _tucker_tensor()
    ref = lowdim.tucker(X, method=method, svd="gram" if "rank" in kw else "auto", **kw)
    if public:
        T = lowdim.tucker(to(X), method=method, **kw)
    else:
        # the NumPy array goes through the same code path as a GPU array
        from lowdim.tucker import _best_order

        modes = kw.get("modes", [0, 1, 2])
        ranks = kw.get("rank")
        ranks = [ranks] * len(modes) if isinstance(ranks, int) else ranks
        order = kw.get("mode_order")
        if order is None and ranks is not None:
            target = list(X.shape)
            for m, r in zip(modes, ranks, strict=True):
                target[m] = r
            order = _best_order(list(X.shape), target, modes, True)
        elif order is None:
            order = sorted(modes, key=lambda m: X.shape[m])
        core, factors, err, _, n_iter, _, done = _xp.tucker(
            X, ranks, kw.get("tol"), method, modes, order, "auto", 50, 1e-8
        )
        T = lowdim.TuckerTensor(core, factors, modes)
        T.certified_error, T.n_iter, T.mode_order = err, n_iter, tuple(done)
    assert T.ranks == ref.ranks
    assert T.mode_order == ref.mode_order
    assert T.n_iter == ref.n_iter
    assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-6, abs=1e-9)
    assert _module_of(T.core) == mod
    scale = np.abs(ref.core).max()
    np.testing.assert_allclose(back(T.core), ref.core, atol=1e-6 * scale)
    for f, g in zip(T.factors, ref.factors, strict=True):
        assert _module_of(f) == mod
        np.testing.assert_allclose(back(f), g, atol=1e-6)
    if public:
        assert T.rel_error(to(X)) == pytest.approx(ref.rel_error(X), rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(back(T.to_tensor()), ref.to_tensor(), atol=1e-9 * scale)


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e200])
def test_tucker_scale_equivariance(backend, scale):
    """Out of float64's safe range the array-API Tucker runs on X scaled by a power of two,
    as the Rust path (its Grams under- or overflowed: a zero core, or LinAlgError)."""
    to, back, _, _ = backend
    X = np.random.default_rng(3).standard_normal((9, 8, 7))
    for kw in ({"rank": 3}, {"tol": 0.4}):
        ref = lowdim.tucker(X, method="sthosvd", **kw)
        T = lowdim.tucker(to(X * scale), method="sthosvd", **kw)
        np.testing.assert_allclose(np.abs(back(T.core)) / scale, np.abs(ref.core), rtol=1e-6)
        assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-6, abs=1e-12)
        assert T.rel_error(to(X * scale)) == pytest.approx(ref.rel_error(X), rel=1e-6)


def test_tucker_float32(backend):
    to, back, public, _ = backend
    if not public:
        pytest.skip("covered through the public API")
    X = _tucker_tensor(dtype=np.float32)
    ref = lowdim.tucker(X, [4, 5, 3], svd="gram")
    T = lowdim.tucker(to(X), [4, 5, 3])
    assert back(T.core).dtype == np.float32
    assert all(back(f).dtype == np.float32 for f in T.factors)
    np.testing.assert_allclose(back(T.core), ref.core, atol=1e-3 * np.abs(ref.core).max())
    assert T.rel_error(to(X)) == pytest.approx(ref.rel_error(X), rel=1e-3)


def test_tucker_xp_errors():
    X = xs.asarray(_tucker_tensor())
    with pytest.raises(ValueError, match="needs fixed ranks"):
        lowdim.tucker(X, tol=0.1, svd="randomized")
    with pytest.raises(TypeError, match="progress must be"):
        lowdim.tucker(X, 3, progress="yes")
    with pytest.raises(ValueError, match="larger than its size"):
        lowdim.tucker(X, [30, 2, 2])
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        lowdim.tucker(xs.ones((4,)), 1)


@pytest.mark.parametrize(("mode", "transpose"), [(0, False), (1, False), (2, True), (-1, False)])
def test_mode_product_matches_rust(backend, mode, transpose):
    to, back, public, mod = backend
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 7, 8))
    n = X.shape[mode]
    M = rng.standard_normal((n, 5)) if transpose else rng.standard_normal((5, n))
    ref = lowdim.mode_product(X, M, mode, transpose)
    if public:
        Y = lowdim.mode_product(to(X), to(M), mode, transpose)
    else:
        Y = _xp.mode_product(X, M, mode % 3, transpose)
    assert _module_of(Y) == mod
    np.testing.assert_allclose(back(Y), ref, atol=1e-12)


def test_mode_product_xp_dtype_out_and_errors():
    X = xs.asarray(np.ones((3, 4, 5), dtype=np.float32))
    M32 = xs.asarray(np.ones((2, 4), dtype=np.float32))
    assert lowdim.mode_product(X, M32, 1).dtype == xs.float32
    assert lowdim.mode_product(X, xs.astype(M32, xs.float64), 1).dtype == xs.float64
    out = xs.zeros((3, 2, 5), dtype=xs.float32)
    assert lowdim.mode_product(X, M32, 1, out=out) is out
    np.testing.assert_array_equal(np.asarray(out), 4.0)
    with pytest.raises(ValueError, match="must be"):
        lowdim.mode_product(X, M32, 0)
    with pytest.raises(ValueError, match="out has shape"):
        lowdim.mode_product(X, M32, 1, out=xs.zeros((3, 3, 5), dtype=xs.float32))
    with pytest.raises(TypeError, match=r"^transpose must be True or False, got 'no'"):
        lowdim.mode_product(X, M32, 1, transpose="no")


def test_tensor_functions_xp_name_their_arguments():
    # the array-API path named every argument "A" ("A has boolean dtype")
    core = xs.asarray(np.ones((2, 2)))
    eye = xs.asarray(np.eye(2))
    with pytest.raises(TypeError, match=r"^core has boolean dtype"):
        lowdim.tucker_to_tensor(xs.astype(core, xs.bool), [eye, eye])
    with pytest.raises(TypeError, match=r"^factors\[1\] has boolean dtype"):
        lowdim.tucker_to_tensor(core, [eye, xs.astype(eye, xs.bool)])
    with pytest.raises(TypeError, match=r"^X has boolean dtype"):
        lowdim.mode_product(xs.astype(core, xs.bool), eye, 0)
    with pytest.raises(TypeError, match=r"^M has boolean dtype"):
        lowdim.mode_product(core, xs.astype(eye, xs.bool), 0)


def test_tucker_to_tensor_matches_rust(backend):
    to, back, public, mod = backend
    rng = np.random.default_rng(5)
    core = rng.standard_normal((3, 4, 2, 2))
    fs = [rng.standard_normal((n, r)) for n, r in [(6, 3), (7, 4), (5, 2)]]
    for modes in (None, [0, 1, 3]):
        fsm = fs if modes is not None else [*fs, rng.standard_normal((4, 2))]
        ref = lowdim.tucker_to_tensor(core, fsm, modes=modes)
        if public:
            Y = lowdim.tucker_to_tensor(to(core), [to(f) for f in fsm], modes=modes)
        else:
            Y = _xp.tucker_to_tensor(core, fsm, modes if modes is not None else [0, 1, 2, 3])
        assert _module_of(Y) == mod
        np.testing.assert_allclose(back(Y), ref, atol=1e-12)


# ----------------------------------------------------------------------------- estimators


def _data(dtype=np.float64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 40))
    return (X * np.linspace(3, 1, 40) + 0.01 * rng.standard_normal((200, 40))).astype(dtype)


ATTRS = {
    "PCA": [
        "components_",
        "singular_values_",
        "explained_variance_",
        "explained_variance_ratio_",
        "mean_",
    ],
    "TruncatedSVD": [
        "components_",
        "singular_values_",
        "explained_variance_",
        "explained_variance_ratio_",
    ],
}


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        ("PCA", {"n_components": 5}),
        ("PCA", {"n_components": 6, "svd_solver": "randomized", "whiten": True}),
        ("PCA", {"n_components": 0.9, "svd_solver": "full"}),
        ("PCA", {"n_components": 0.9}),  # a variance fraction: the adaptive rank mode
        ("PCA", {"n_components": 0.999, "iterated_power": 2, "whiten": True}),
        ("PCA", {"n_components": None}),
        ("TruncatedSVD", {"n_components": 5}),
        ("TruncatedSVD", {"n_components": 4, "algorithm": "auto"}),
    ],
)
def test_estimators_match_rust(cls, kw):
    for make in (_strict_backend, _np_backend):
        to, back, _, mod = make()
        if mod == "numpy":
            continue  # NumPy input takes the Rust path: compared below through array_api_strict
        X = _data()
        a = getattr(lowdim, cls)(random_state=0, **kw)
        Za = a.fit_transform(X)
        b = getattr(lowdim, cls)(random_state=0, **kw)
        Zb = b.fit_transform(to(X))
        assert _module_of(Zb) == mod
        np.testing.assert_allclose(back(Zb), Za, atol=1e-6 * np.abs(Za).max())
        for name in ATTRS[cls]:
            got = getattr(b, name)
            assert _module_of(got) == mod, name
            ref = getattr(a, name)
            np.testing.assert_allclose(back(got), ref, atol=1e-6 * max(np.abs(ref).max(), 1e-300))
        assert b.n_components_ == a.n_components_
        if cls == "PCA":
            assert b.noise_variance_ == pytest.approx(a.noise_variance_, rel=1e-6, abs=1e-12)
        Zt = b.transform(to(X))
        np.testing.assert_allclose(back(Zt), a.transform(X), atol=1e-6 * np.abs(Za).max())
        np.testing.assert_allclose(
            back(b.inverse_transform(Zt)), a.inverse_transform(Za), atol=1e-6 * np.abs(X).max()
        )


@pytest.mark.gpu
def test_estimators_on_cupy():
    cp = _cupy_or_skip()
    X = _data(np.float32)
    for cls, kw in [("PCA", {"n_components": 5}), ("TruncatedSVD", {"n_components": 5})]:
        a = getattr(lowdim, cls)(random_state=0, **kw).fit(X)
        b = getattr(lowdim, cls)(random_state=0, **kw).fit(cp.asarray(X))
        assert isinstance(b.components_, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(b.singular_values_), a.singular_values_, rtol=1e-4)


def test_estimator_xp_errors():
    X = xs.asarray(_data())
    pca = lowdim.PCA(n_components=3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        pca.transform(xs.ones((3, 5)))


def test_dispatch_rules():
    assert not _xp.is_xp_array(np.ones(3))
    assert not _xp.is_xp_array([1.0, 2.0])
    assert _xp.is_xp_array(xs.ones(3))
    import scipy.sparse as sp

    assert not _xp.is_xp_array(sp.eye(3, format="csr"))


def test_importing_lowdim_does_not_import_cupy():
    import subprocess
    import sys

    code = "import sys, lowdim; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.gpu
def test_gpu_rsvd_large_float32_on_device():
    """A bigger problem on the device: results stay CuPy float32 arrays."""
    cp = _cupy_or_skip()
    A = _low_rank(2000, 1500, decay=0.9, dtype=np.float32)
    ref = lowdim.rsvd(A, 20, seed=0, solver="randomized")
    res = lowdim.rsvd(cp.asarray(A), 20, seed=0, solver="randomized")
    assert all(isinstance(x, cp.ndarray) and x.dtype == cp.float32 for x in res)
    np.testing.assert_allclose(cp.asnumpy(res.S), ref.S, rtol=1e-4)


# ----------------------------------------------------------------------------- rSVD host syncs


@pytest.mark.parametrize("mod", ["numpy", "strict"])
def test_rsvd_host_syncs_do_not_grow_with_power_iterations(monkeypatch, mod):
    """Every device->host transfer of the randomized path goes through _host_bool: a fixed
    number (finiteness of the first Y, one per CholeskyQR2), none per power
    iteration, and no to_host at all."""
    calls = []
    real = _xp._host_bool
    monkeypatch.setattr(_xp, "_host_bool", lambda x: calls.append(1) or real(x))

    def no_to_host(x):
        raise AssertionError("to_host in the randomized rSVD path")

    monkeypatch.setattr(_xp, "to_host", no_to_host)
    A = _low_rank(300, 200, decay=0.9)
    to = xs.asarray if mod == "strict" else (lambda a: a)
    counts = []
    for q in (3, 9):
        calls.clear()
        _xp.rsvd(to(A), 10, n_iter=q, seed=0, solver="randomized")
        counts.append(len(calls))
    assert counts[0] == counts[1] == 3


@pytest.mark.parametrize("mod", ["numpy", "strict"])
def test_rsvd_tol_host_syncs_do_not_grow_with_power_iterations(monkeypatch, mod):
    """tol mode: per block the sketch's finiteness, the new block's CholeskyQR2 and the
    indicator; the power iteration's blocks take one shifted CholeskyQR each (no sync)."""
    calls = []
    real_b, real_f = _xp._host_bool, _xp.sum_sq64
    monkeypatch.setattr(_xp, "_host_bool", lambda x: calls.append(1) or real_b(x))
    monkeypatch.setattr(_xp, "sum_sq64", lambda xp, x: calls.append(1) or real_f(xp, x))
    A = _low_rank(300, 200, decay=0.5)
    to = xs.asarray if mod == "strict" else (lambda a: a)
    counts, ranks = [], []
    for q in (1, 6):
        calls.clear()
        res = _xp.rsvd(to(A), tol=1e-3, n_iter=q, seed=0)
        counts.append(len(calls))
        ranks.append(res.S.shape[0])
    assert ranks[0] == ranks[1] < 16  # one block
    assert counts[0] == counts[1] <= 5


def test_rsvd_tol_inner_normalizers_agree(monkeypatch):
    """Shifted CholeskyQR (default) or CholeskyQR2 between the power iterations: the same
    spans, so the same rank and factors to rounding."""
    A = _low_rank(400, 300, decay=0.85)
    ref = _xp.rsvd(A, tol=1e-4, seed=1, block_size=8)
    monkeypatch.setattr(_xp, "_TOL_INNER", "cholqr2")
    res = _xp.rsvd(A, tol=1e-4, seed=1, block_size=8)
    assert res.S.shape == ref.S.shape
    assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6)
    np.testing.assert_allclose(res.U, ref.U, atol=1e-9)


def test_shifted_cholqr_keeps_the_span_and_conditions_the_basis():
    """The intermediate normalizer: same span as Y, well conditioned even when Y is
    numerically rank-deficient (where plain Cholesky fails), NaN in -> NaN out (no raise)."""
    xp = _xp.namespace(xs.ones(1))
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((200, 12)) @ np.diag(np.logspace(0, -5, 12))
    Q = np.asarray(_xp.cholqr_shifted(xp, xs.asarray(Y)))
    s = np.linalg.svd(Q, compute_uv=False)
    assert s[0] <= 1.0 + 1e-12 and s[-1] > 0.9  # cond(Y) = 1e5: above the shift
    P = Q @ np.linalg.pinv(Q)  # projector on span(Q)
    np.testing.assert_allclose(P @ Y, Y, atol=1e-12)
    Yd = np.repeat(rng.standard_normal((50, 1)), 4, axis=1)  # rank 1
    Qd = np.asarray(_xp.cholqr_shifted(xp, xs.asarray(Yd)))
    assert np.all(np.isfinite(Qd))
    np.testing.assert_allclose(Qd @ np.linalg.pinv(Qd) @ Yd, Yd, atol=1e-10)
    Yn = Y.copy()
    Yn[3, 4] = np.nan
    assert np.isnan(np.asarray(_xp.cholqr_shifted(xp, xs.asarray(Yn)))).any()
    f32 = np.asarray(_xp.cholqr_shifted(xp, xs.asarray(Y.astype(np.float32))))
    assert f32.dtype == np.float32


@pytest.mark.parametrize("where", ["host", "gesvdj", "device"])
def test_rsvd_small_svd_placement_agrees(monkeypatch, where):
    """The final small SVD on the host (or gesvdj, which is CuPy-only and falls back to the
    namespace's svd elsewhere) gives the same result."""
    A = _low_rank(300, 200)
    ref = lowdim.rsvd(A, 10, seed=7, solver="randomized")
    monkeypatch.setattr(_xp, "_SMALL_SVD", where)
    U, S, Vh = (np.asarray(x) for x in lowdim.rsvd(xs.asarray(A), 10, seed=7, solver="randomized"))
    np.testing.assert_allclose(S, ref.S, rtol=1e-6, atol=1e-6 * ref.S[0])
    np.testing.assert_allclose(U, ref.U, atol=1e-6)
    np.testing.assert_allclose(Vh, ref.Vh, atol=1e-6)


# ----------------------------------------------------------------------------- device Gaussian

_KERNEL_HARNESS = r"""
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#define __global__
struct dim { long long x; };
static struct dim blockIdx, blockDim, threadIdx;
KERNEL
int main(int argc, char** argv) {
    long long rows = atoll(argv[1]), cols = atoll(argv[2]), row0 = atoll(argv[3]);
    unsigned long long col0 = strtoull(argv[4], 0, 10);
    unsigned int k[8];
    for (int i = 0; i < 8; ++i) k[i] = (unsigned int)strtoul(argv[5 + i], 0, 10);
    double* out = (double*)calloc(rows * cols, sizeof(double));
    long long per_col = (row0 + rows + 1) / 2 - row0 / 2;
    blockDim.x = 1;
    threadIdx.x = 0;
    for (long long t = 0; t < per_col * cols + 3; ++t) {
        blockIdx.x = t;
        lowdim_gaussian_f64(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], col0, row0, rows,
                            cols, out);
    }
    fwrite(out, sizeof(double), rows * cols, stdout);
    return 0;
}
"""


def test_gaussian_kernel_source_matches_rust_on_the_host(tmp_path):
    """The CUDA source of the device Gaussian, compiled as C for the host (one loop over the
    thread ids), gives the Rust generator's matrix bit for bit: the key derivation, the
    ChaCha8 block, the word positions, Box-Muller and the row/column offsets."""
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = _KERNEL_HARNESS.replace("KERNEL", _xp._GAUSSIAN_KERNEL.replace('extern "C" ', ""))
    (tmp_path / "k.c").write_text(src)
    exe = tmp_path / "k"
    subprocess.run([cc, "-O1", "-o", str(exe), str(tmp_path / "k.c"), "-lm"], check=True)
    for rows, cols, row0, col0, seed in [
        (10, 3, 0, 0, 42),
        (37, 5, 11, 2, 7),
        (101, 4, 3, 1000, 2**63 + 5),
        (1, 1, 0, 0, 0),
    ]:
        key = _xp._chacha_key(seed)
        args = [str(exe), str(rows), str(cols), str(row0), str(col0), *map(str, key)]
        out = subprocess.run(args, capture_output=True, check=True).stdout
        got = np.frombuffer(out, dtype=np.float64).reshape(rows, cols)
        ref = lowdim._lowdim.gaussian(rows, cols, seed, row0, col0, False)
        np.testing.assert_allclose(got, ref, rtol=1e-15, atol=1e-15)


@pytest.mark.gpu
def test_gpu_gaussian_on_device_matches_rust():
    cp = _cupy_or_skip()
    for rows, cols, row0, col0, seed in [(1001, 7, 0, 0, 3), (64, 110, 5, 9, 2**40 + 1)]:
        ref = lowdim._lowdim.gaussian(rows, cols, seed, row0, col0, False)
        got = cp.asnumpy(_xp._cupy_gaussian(rows, cols, seed, False, row0, col0))
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)
        got32 = cp.asnumpy(_xp._cupy_gaussian(rows, cols, seed, True, row0, col0))
        assert got32.dtype == np.float32
        np.testing.assert_allclose(got32, ref.astype(np.float32), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- sparse input
# cupyx.scipy.sparse CSR takes the _xp path on the GPU (products by the sparse kernels, implicit
# centring, never densified). The same code runs on the CPU on a scipy.sparse matrix passed
# to the internal functions directly (the public API keeps scipy.sparse on the Rust path).


def _sparse(m, n, density=0.05, seed=0, dtype=np.float64, fmt="csr"):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, random_state=rng, format=fmt, dtype=np.float64)
    # a few strong directions, so that the sketch captures the leading ones well
    L = sp.csr_matrix(rng.standard_normal((m, 3)) @ rng.standard_normal((3, n)))
    L = L.multiply(sp.random(m, n, density=0.3, random_state=rng) != 0)
    return (X + L).asformat(fmt).astype(dtype)


def _no_densify(monkeypatch):
    import scipy.sparse as sp

    def boom(*a, **k):
        raise AssertionError("the sparse path densified its input")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        monkeypatch.setattr(cls, "toarray", boom)
        monkeypatch.setattr(cls, "todense", boom)


SPARSE_CASES = [
    ((300, 120), {"k": 10}),
    ((120, 300), {"k": 10}),  # wide: runs on A^T
    ((300, 120), {"k": 10, "n_iter": 2}),  # q <= 2: no normalizer
    ((300, 120), {"k": 8, "power_iteration_normalizer": "LU"}),
    ((300, 120), {"tol": 0.5}),
    ((120, 300), {"tol": 0.3, "block_size": 4}),
]


@pytest.mark.parametrize(("shape", "kw"), SPARSE_CASES)
@pytest.mark.parametrize("centred", [False, True])
def test_sparse_rsvd_matches_rust(monkeypatch, shape, kw, centred):
    X = _sparse(*shape)
    center = np.asarray(X.mean(axis=0)).ravel() if centred else None
    if centred:
        from lowdim._validation import check_matrix
        from lowdim.svd import _run_rsvd

        kk = dict(kw)
        ref = _run_rsvd(check_matrix(X), kk.pop("k", None), kk.pop("tol", None), seed=4,
                        center=center, **kk)  # fmt: skip
    else:
        ref = lowdim.rsvd(X, seed=4, **kw)
    _no_densify(monkeypatch)
    res = _xp.rsvd(X, seed=4, center=center, **kw)
    assert res.solver == ref.solver
    assert all(isinstance(x, np.ndarray) for x in res)
    if "tol" in kw:
        assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6)
    assert res.S.shape == ref.S.shape
    np.testing.assert_allclose(res.S, ref.S, rtol=1e-6, atol=1e-6 * ref.S[0])
    np.testing.assert_allclose(res.U, ref.U, atol=1e-6)
    np.testing.assert_allclose(res.Vh, ref.Vh, atol=1e-6)


def test_sparse_rsvd_float32_formats_and_errors():
    X = _sparse(200, 90, dtype=np.float32, fmt="csc")
    ref = lowdim.rsvd(X.tocsr(), 6, seed=0)
    res = _xp.rsvd(X, 6, seed=0)
    assert res.S.dtype == res.U.dtype == np.float32
    np.testing.assert_allclose(res.S, ref.S, rtol=1e-4)
    est = _xp.svd_error(X, res.U, res.S, res.Vh, seed=1)
    assert est == pytest.approx(lowdim.svd_error(X.tocsr(), res.U, res.S, res.Vh, seed=1), rel=1e-5)
    res = _xp.rsvd(X, tol=0.6, seed=0)
    assert res.S.dtype == np.float32 and isinstance(res.rel_error, float)
    with pytest.raises(ValueError, match="dense"):
        _xp.rsvd(X, 5, solver="gram")
    # duplicates are summed (COO input)
    import scipy.sparse as sp

    C = sp.coo_matrix(([1.0, 2.0, 3.0], ([0, 0, 1], [0, 0, 1])), shape=(5, 4))
    np.testing.assert_allclose(_xp.rsvd(C, 2, seed=0).S, [3.0, 3.0])
    bad = X.tocsr().copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _xp.rsvd(bad, tol=0.5)


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        ("PCA", {"n_components": 5}),
        ("PCA", {"n_components": 0.5}),
        ("PCA", {"n_components": 4, "whiten": True, "svd_solver": "randomized"}),
        ("TruncatedSVD", {"n_components": 5}),
    ],
)
def test_sparse_estimators_match_rust(monkeypatch, cls, kw):
    from lowdim import decomposition as dec

    X = _sparse(250, 60)
    a = getattr(lowdim, cls)(random_state=0, **kw)
    Za = a.fit_transform(X)
    b = getattr(lowdim, cls)(random_state=0, **kw)
    _no_densify(monkeypatch)
    if cls == "PCA":
        U, S = dec._pca_fit_xp(b, X)
        Zb = U * np.sqrt(b.n_samples_ - 1) if b.whiten else U * S
    else:
        Zb = dec._tsvd_fit_transform_xp(b, X)
    assert b.n_components_ == a.n_components_
    np.testing.assert_allclose(Zb, Za, atol=1e-6 * np.abs(Za).max())
    for name in ATTRS[cls]:
        ref = getattr(a, name)
        np.testing.assert_allclose(getattr(b, name), ref, atol=1e-6 * np.abs(ref).max())
    if cls == "PCA":
        assert b.noise_variance_ == pytest.approx(a.noise_variance_, rel=1e-6)
        with pytest.raises(ValueError, match="dense"):
            dec._pca_fit_xp(lowdim.PCA(3, svd_solver="full"), X)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_pca_float32_large_mean(monkeypatch, fmt):
    # the implicitly centred norm of the sparse array-API path was ||A||^2 - 2 c^T A^T 1 +
    # m ||c||^2 with A^T 1 in float32: data of 1000 + noise kept 1 component for 3, with a
    # first ratio of 0.669 for 0.609 and a noise variance of 0.77 for 1.0
    from lowdim import decomposition as dec

    rng = np.random.default_rng(0)
    B = (1000 + rng.standard_normal((20000, 50))).astype(np.float32)
    B[:, :3] += (5 * rng.standard_normal((20000, 1))).astype(np.float32)
    ref = lowdim.PCA(0.62, random_state=0).fit(B.astype(np.float64))
    import scipy.sparse as sp

    b = lowdim.PCA(0.62, random_state=0)
    X = sp.csr_matrix(B).asformat(fmt)
    _no_densify(monkeypatch)
    dec._pca_fit_xp(b, X)
    assert b.n_components_ == ref.n_components_ == 3
    assert b.explained_variance_ratio_[0] == pytest.approx(ref.explained_variance_ratio_[0], 1e-4)
    assert b.noise_variance_ == pytest.approx(ref.noise_variance_, rel=1e-3)


def test_cupyx_sparse_check_imports_nothing():
    import subprocess
    import sys

    code = (
        "import sys, scipy.sparse as sp, numpy as np, lowdim\n"
        "from lowdim import _xp\n"
        "X = sp.eye(3, format='csr')\n"
        "assert not _xp._is_cupyx_sparse(X) and _xp.is_sparse(X)\n"
        "assert not _xp._is_cupyx_sparse(np.ones(3)) and not _xp.is_sparse(np.ones(3))\n"
        "assert not _xp.is_xp_array(X)\n"
        "print('cupy' in sys.modules or 'cupyx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tensor_functions_reject_sparse():
    import scipy.sparse as sp

    with pytest.raises(NotImplementedError, match="sparse"):
        _xp.check_xp_tensor(sp.eye(4, format="csr"))


def _cupyx_sparse_or_skip():
    cp = _cupy_or_skip()
    from cupyx.scipy import sparse as csp

    return cp, csp


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [{"k": 10}, {"tol": 0.5}])
def test_gpu_cupyx_sparse_rsvd(kw):
    cp, csp = _cupyx_sparse_or_skip()
    X = _sparse(300, 120)
    ref = lowdim.rsvd(X, seed=4, **kw)
    Xg = csp.csr_matrix(X)
    assert _xp._is_cupyx_sparse(Xg) and _xp.is_xp_array(Xg)
    res = lowdim.rsvd(Xg, seed=4, **kw)
    assert all(isinstance(x, cp.ndarray) for x in res)
    assert res.S.shape == ref.S.shape
    np.testing.assert_allclose(cp.asnumpy(res.S), ref.S, rtol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(res.U), ref.U, atol=1e-6)
    if "tol" in kw:
        assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("cls", "kw"),
    [("PCA", {"n_components": 5}), ("PCA", {"n_components": 0.5}), ("TruncatedSVD", {})],
)
def test_gpu_cupyx_sparse_estimators(cls, kw):
    cp, csp = _cupyx_sparse_or_skip()
    X = _sparse(250, 60)
    a = getattr(lowdim, cls)(random_state=0, **kw)
    Za = a.fit_transform(X)
    b = getattr(lowdim, cls)(random_state=0, **kw)
    Zb = b.fit_transform(csp.csr_matrix(X))
    assert isinstance(Zb, cp.ndarray) and isinstance(b.components_, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(Zb), Za, atol=1e-6 * np.abs(Za).max())
    Zt = b.transform(csp.csr_matrix(X))
    np.testing.assert_allclose(cp.asnumpy(Zt), a.transform(X), atol=1e-6 * np.abs(Za).max())


@pytest.mark.gpu
def test_gpu_rsvd_tol_dense():
    cp = _cupy_or_skip()
    A = _low_rank(400, 300, decay=0.8)
    ref = lowdim.rsvd(A, tol=1e-3, seed=2)
    res = lowdim.rsvd(cp.asarray(A), tol=1e-3, seed=2)
    assert all(isinstance(x, cp.ndarray) for x in res)
    assert res.S.shape == ref.S.shape
    assert res.rel_error == pytest.approx(ref.rel_error, rel=1e-6)
    np.testing.assert_allclose(cp.asnumpy(res.U), ref.U, atol=1e-6)
    A32 = A.astype(np.float32)
    res = lowdim.rsvd(cp.asarray(A32), tol=1e-2, seed=2)
    assert res.S.dtype == cp.float32
    assert res.S.shape == lowdim.rsvd(A32, tol=1e-2, seed=2).S.shape


# ----------------------------------------------------------------------------- randomized Tucker


def _direct_tucker(X, method, kw, svd, seed=0, progress=None):
    """``_xp.tucker`` on a NumPy array (the GPU code path), with the mode order lowdim.tucker
    would choose."""
    from lowdim.tucker import _best_order

    modes = kw.get("modes", list(range(X.ndim)))
    ranks = kw.get("rank")
    ranks = [ranks] * len(modes) if isinstance(ranks, int) else ranks
    order = kw.get("mode_order")
    if order is None and ranks is not None:
        target = list(X.shape)
        for m, r in zip(modes, ranks, strict=True):
            target[m] = r
        order = _best_order(list(X.shape), target, modes, True)
    elif order is None:
        order = sorted(modes, key=lambda m: X.shape[m])
    core, factors, err, _, n_iter, solvers, done = _xp.tucker(
        X, ranks, kw.get("tol"), method, modes, order, svd, 50, 1e-8, seed, progress
    )
    T = lowdim.TuckerTensor(core, factors, modes)
    T.certified_error, T.n_iter, T.mode_order = err, n_iter, tuple(done)
    T.solvers = tuple(solvers)
    return T


def _run_tucker(backend, X, method, kw, svd, seed=0, progress=None):
    to, _, public, _ = backend
    if public:
        return lowdim.tucker(to(X), method=method, svd=svd, seed=seed, progress=progress, **kw)
    return _direct_tucker(X, method, kw, svd, seed, progress)


def _assert_tucker_equal(T, ref, backend, X, atol=1e-6):
    to, back, public, mod = backend
    assert T.ranks == ref.ranks
    assert T.mode_order == ref.mode_order
    assert T.n_iter == ref.n_iter
    assert T.solvers == ref.solvers
    assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-6, abs=1e-9)
    assert _module_of(T.core) == mod
    scale = np.abs(ref.core).max()
    np.testing.assert_allclose(back(T.core), ref.core, atol=atol * scale)
    for f, g in zip(T.factors, ref.factors, strict=True):
        assert _module_of(f) == mod
        np.testing.assert_allclose(back(f), g, atol=atol)
    if public:
        assert T.rel_error(to(X)) == pytest.approx(ref.rel_error(X), rel=1e-6, abs=1e-12)


# (true ranks (4, 5, 3); HOOI refines a start below them, so that each sweep's improvement is
# well above rounding and both paths take the same number of sweeps)
RAND_TUCKER_CASES = [
    {"rank": 3},
    {"rank": [2, 4, 3]},
    {"rank": [3, 2, 2], "mode_order": [2, 0, 1]},
    {"rank": [2, 3], "modes": [0, 2]},
]


@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize("kw", RAND_TUCKER_CASES)
def test_tucker_randomized_matches_rust(backend, method, kw):
    """svd="randomized": the Rust range finder (same seeded test matrix per mode, one power
    iteration, 10 oversamples), so the same factors, core and certified error to rounding."""
    X = _tucker_tensor(shape=(40, 36, 30))
    ref = lowdim.tucker(X, method=method, svd="randomized", seed=11, **kw)
    T = _run_tucker(backend, X, method, kw, "randomized", seed=11)
    assert "randomized" in T.solvers or method == "hooi"
    _assert_tucker_equal(T, ref, backend, X)


@pytest.mark.parametrize("method", ["hosvd", "sthosvd"])
def test_tucker_randomized_depends_on_the_seed_as_rust(backend, method):
    """On a tensor without low-rank structure the sketch matters: each seed (and each mode's
    seed derived from it) gives the Rust path's result for that seed, and seeds differ."""
    X = np.random.default_rng(5).standard_normal((40, 36, 30))
    errs = []
    for seed in (0, 1, 2**63 + 7):
        ref = lowdim.tucker(X, [3, 4, 2], method=method, svd="randomized", seed=seed)
        T = _run_tucker(backend, X, method, {"rank": [3, 4, 2]}, "randomized", seed=seed)
        _assert_tucker_equal(T, ref, backend, X)
        errs.append(float(backend[1](T.factors[0])[0, 0]))
    assert len(set(errs)) == 3


@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize("kw", [{"rank": 3}, {"rank": [3, 4, 2]}, {"tol": 0.05}])
def test_tucker_auto_on_large_modes(backend, method, kw):
    """svd="auto" on the array-API path with fixed ranks: randomized when 4 (r + 10) <= I_n
    (every mode here; the Rust CPU rule would choose Gram), so it equals the Rust path with
    svd="randomized"; with tol, Gram as on the Rust path."""
    X = _tucker_tensor(shape=(64, 60, 56), ranks=(4, 5, 3))
    if "rank" in kw:
        ref = lowdim.tucker(X, method=method, svd="randomized", seed=3, **kw)
        assert lowdim.tucker(X, method=method, seed=3, **kw).solvers[0] == "gram"
    else:
        ref = lowdim.tucker(X, method=method, seed=3, **kw)
    T = _run_tucker(backend, X, method, kw, "auto", seed=3)
    if method != "hooi":
        assert set(T.solvers) == {"randomized" if "rank" in kw else "gram"}
    _assert_tucker_equal(T, ref, backend, X)


def test_mode_svd_auto_rule():
    rule = _xp._mode_svd
    assert rule("auto", None, 400, 160000, 20) == "randomized"  # the 400^3 benchmark
    assert rule("auto", None, 400, 400, 20) == "randomized"  # also square unfoldings
    assert rule("auto", None, 100, 10000, 20) == "gram"  # small mode: 4 (r + 10) > I_n
    assert rule("auto", None, 100, 3, 2) == "randomized"  # l = J: the sketch is exact
    assert rule("auto", None, 100, 3, 5) == "gram"  # r > J: no sketch of r columns
    assert rule("auto", 0.1, 400, 160000, None) == "gram"
    assert rule("auto", 1e-7, 400, 160000, None) == "lq"
    for how in ("gram", "lq", "randomized"):
        assert rule(how, None, 400, 400, 20) == how


def test_tucker_randomized_rank_above_columns_uses_gram():
    """A rank above the number of columns of the unfolding (the sketch cannot have r
    columns): that mode is computed by the Gram path (exact) instead."""
    X = _tucker_tensor(shape=(30, 2, 3), ranks=(2, 2, 2), noise=0.1)
    T = lowdim.tucker(xs.asarray(X), [10, 2, 3], svd="randomized", seed=0)
    ref = lowdim.tucker(X, [10, 2, 3], svd="gram")
    assert T.solvers == ("gram", "randomized", "randomized")
    assert T.certified_error == pytest.approx(ref.certified_error, abs=1e-7)  # both ~0
    assert T.rel_error(xs.asarray(X)) == pytest.approx(0.0, abs=1e-12)


def test_tucker_randomized_float32(backend):
    # (noise 0.1: an error well above float32's sqrt(eps), where the certified error, a
    # difference of squares, is accurate in float32)
    X = _tucker_tensor(shape=(40, 36, 30), noise=0.1, dtype=np.float32)
    ref = lowdim.tucker(X, [4, 5, 3], svd="randomized", seed=2)
    T = _run_tucker(backend, X, "sthosvd", {"rank": [4, 5, 3]}, "randomized", seed=2)
    _, back, public, _ = backend
    assert T.solvers == ref.solvers == ("randomized",) * 3
    assert back(T.core).dtype == np.float32
    assert all(back(f).dtype == np.float32 for f in T.factors)
    np.testing.assert_allclose(back(T.core), ref.core, atol=1e-3 * np.abs(ref.core).max())
    assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-3)
    if public:
        assert T.rel_error(backend[0](X)) == pytest.approx(ref.rel_error(X), rel=1e-3)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_tucker_randomized_non_finite():
    X = _tucker_tensor(shape=(40, 36, 30))
    X[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lowdim.tucker(xs.asarray(X), 3, svd="randomized")
    X[3, 4, 5] = 1e200  # squares overflow: X is rescaled (it was an error), as in Rust
    T = lowdim.tucker(xs.asarray(X), 3, svd="randomized")
    ref = lowdim.tucker(X, 3, svd="randomized")
    core = np.asarray(T.core)
    assert np.isfinite(core).all()
    np.testing.assert_allclose(np.abs(core).max(), np.abs(ref.core).max(), rtol=1e-10)
    # one entry dominates by 1e200: the true error is ~0; the array-API randomized path
    # certifies it as the total minus the kept energy (rounding: sqrt(eps) ~ 2e-8), Rust 0
    assert T.certified_error <= 1e-7 and ref.certified_error <= 1e-7


@pytest.mark.parametrize("fused_fails", [False, True])
def test_sum_sq64_slices_and_fused_fallback(monkeypatch, fused_fails):
    """``||Y||^2`` of the randomized Tucker modes: float64 accumulation by slices (several
    here); on CuPy one fused kernel, and the slices (with a warning) if it cannot compile."""
    X = np.random.default_rng(0).standard_normal((50, 40, 3)).astype(np.float32)
    ref = float(np.sum(X.astype(np.float64) ** 2))
    xp = _xp.namespace(X)
    monkeypatch.setattr(_xp, "_SUM_SQ_SLICE", 1000)
    if fused_fails:
        monkeypatch.setattr(_xp, "_is_cupy", lambda xp: True)
        monkeypatch.setattr(_xp, "_FUSED_SUM_SQ", True)

        def no_nvrtc(a):
            raise RuntimeError("no NVRTC")

        monkeypatch.setattr(_xp, "_cupy_sum_sq64", no_nvrtc)
        with pytest.warns(RuntimeWarning, match="sum-of-squares"):
            got = _xp._sum_sq64_dev(xp, X)
        assert _xp._FUSED_SUM_SQ is False
    else:
        got = _xp._sum_sq64_dev(xp, xs.asarray(X))
    assert float(got) == pytest.approx(ref, rel=1e-12)


@pytest.mark.gpu
def test_gpu_fused_sum_sq64():
    cp = _cupy_or_skip()
    X = np.random.default_rng(0).standard_normal((64, 50, 7)).astype(np.float32)
    Xd = cp.asarray(X).transpose(2, 0, 1)  # any strides
    got = _xp._cupy_sum_sq64(Xd)
    assert got.dtype == cp.float64 and got.ndim == 0
    assert float(got) == pytest.approx(float(np.sum(X.astype(np.float64) ** 2)), rel=1e-12)


# ----------------------------------------------------------------------------- progress


class _Stop(Exception):
    pass


def _recorder():
    steps = []
    return steps, lambda done, total: steps.append((done, total))


PROGRESS_RSVD_CASES = [
    ((300, 120), {"k": 10}),  # Gram path: 2 steps
    ((200, 50), {"k": 45}),  # exact SVD: 1 step
    ((300, 120), {"k": 10, "solver": "randomized", "n_iter": 3}),
    ((120, 300), {"k": 8, "solver": "randomized", "n_iter": 5}),
    (
        (400, 300),
        {"k": 20, "solver": "randomized", "n_iter": 2, "power_iteration_normalizer": "QR"},
    ),
    ((400, 300), {"tol": 1e-2, "block_size": 4}),  # several randQB blocks
    ((300, 120), {"tol": 1e-3}),  # one block
]


@pytest.mark.parametrize(("shape", "kw"), PROGRESS_RSVD_CASES)
def test_rsvd_progress_steps_match_rust(backend, shape, kw):
    to, _, public, _ = backend
    A = _low_rank(*shape, decay=0.8)
    ref, cb = _recorder()
    lowdim.rsvd(A, seed=1, progress=cb, **kw)
    got, cb = _recorder()
    fn = lowdim.rsvd if public else _xp.rsvd
    fn(to(A), seed=1, progress=cb, **kw)
    assert len(ref) >= 2
    assert got == ref


@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize(
    ("kw", "svd"),
    [({"rank": [2, 4, 3]}, "randomized"), ({"rank": 3}, "gram"), ({"tol": 0.05}, "auto")],
)
def test_tucker_progress_steps_match_rust(backend, method, kw, svd):
    X = _tucker_tensor(shape=(40, 36, 30))
    ref, cb = _recorder()
    lowdim.tucker(X, method=method, svd=svd, seed=4, progress=cb, **kw)
    got, cb = _recorder()
    _run_tucker(backend, X, method, kw, svd, seed=4, progress=cb)
    assert ref[0][0] == 0 and ref[-1][0] == ref[-1][1]
    assert got == ref


def _stop_at(n):
    calls = []

    def cb(done, total):
        calls.append(done)
        if len(calls) == n:
            raise _Stop(f"stop at {done}")

    return calls, cb


@pytest.mark.parametrize(
    "kw", [{"k": 10, "solver": "randomized", "n_iter": 6}, {"tol": 1e-4, "block_size": 2}]
)
def test_rsvd_raising_progress_stops(backend, kw):
    to, _, public, _ = backend
    A = _low_rank(300, 200, decay=0.9)
    fn = lowdim.rsvd if public else _xp.rsvd
    calls, cb = _stop_at(3)
    with pytest.raises(_Stop, match="stop at"):
        fn(to(A), seed=0, progress=cb, **kw)
    assert len(calls) == 3  # nothing ran past the raising report
    ref_calls, ref_cb = _stop_at(3)
    with pytest.raises(_Stop):
        lowdim.rsvd(A, seed=0, progress=ref_cb, **kw)
    assert calls == ref_calls


@pytest.mark.parametrize("method", ["sthosvd", "hooi"])
def test_tucker_raising_progress_stops(backend, method):
    X = _tucker_tensor(shape=(40, 36, 30))
    calls, cb = _stop_at(2)
    with pytest.raises(_Stop):
        _run_tucker(backend, X, method, {"rank": 3}, "randomized", progress=cb)
    ref_calls, ref_cb = _stop_at(2)
    with pytest.raises(_Stop):
        lowdim.tucker(X, 3, method=method, svd="randomized", progress=ref_cb)
    assert calls == ref_calls == [0, 1]


@pytest.mark.parametrize("mod", ["numpy", "strict"])
def test_progress_waits_once_per_reported_step(monkeypatch, mod):
    """A progress callback adds at most one host sync per reported step (a wait for the
    step's device work, _host_wait) and none of the others (_host_bool); without a callback
    nothing waits."""
    waits, bools = [], []
    real_w, real_b = _xp._host_wait, _xp._host_bool
    monkeypatch.setattr(_xp, "_host_wait", lambda a: waits.append(1) or real_w(a))
    monkeypatch.setattr(_xp, "_host_bool", lambda x: bools.append(1) or real_b(x))
    to = xs.asarray if mod == "strict" else (lambda a: a)
    A = to(_low_rank(300, 200, decay=0.9))
    for q in (3, 8):
        steps, cb = _recorder()
        bools.clear()
        waits.clear()
        _xp.rsvd(A, 10, n_iter=q, seed=0, solver="randomized", progress=cb)
        assert len(steps) == q + 2
        assert len(bools) == 3  # as without a callback
        assert len(waits) == q + 1  # every report but the first (nothing ran yet)
    waits.clear()
    _xp.rsvd(A, 10, n_iter=5, seed=0, solver="randomized")
    _xp.rsvd(A, tol=1e-3, seed=0)
    assert waits == []
    X = _tucker_tensor(shape=(40, 36, 30))
    steps, cb = _recorder()
    if mod == "strict":
        lowdim.tucker(xs.asarray(X), 3, method="hooi", svd="randomized", progress=cb)
    else:
        _direct_tucker(X, "hooi", {"rank": 3}, "randomized", progress=cb)
    assert 0 < len(waits) <= len(steps)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_tucker_randomized_on_device(dtype):
    """A bigger tensor on the device: CuPy results of the input's dtype, agreeing with the
    Rust path's randomized Tucker; the same progress steps."""
    cp = _cupy_or_skip()
    X = _tucker_tensor(shape=(120, 100, 90), ranks=(6, 5, 4), noise=0.1, dtype=dtype)
    ref_steps, ref_cb = _recorder()
    ref = lowdim.tucker(X, [6, 5, 4], svd="randomized", seed=0, progress=ref_cb)
    steps, cb = _recorder()
    T = lowdim.tucker(cp.asarray(X), [6, 5, 4], svd="randomized", seed=0, progress=cb)
    assert steps == ref_steps
    assert isinstance(T.core, cp.ndarray) and T.core.dtype == dtype
    assert all(isinstance(f, cp.ndarray) and f.dtype == dtype for f in T.factors)
    tol = 1e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(cp.asnumpy(T.core), ref.core, atol=tol * np.abs(ref.core).max())
    assert T.certified_error == pytest.approx(ref.certified_error, rel=tol)
    assert lowdim.tucker(cp.asarray(X), [6, 5, 4]).solvers == ("randomized",) * 3


# ----------------------------------------------------------------------------- probe fixes
@pytest.fixture(params=BACKENDS[1:])
def public(request):
    """Backends that reach the array-API path through the public API (strict, CuPy)."""
    return request.param()


def test_tol_mode_and_pca_on_subnormal_and_tiny_float32_data(public):
    # the tol-mode rescale power of two was 2^1030 (OverflowError) for data of 1e-310 and
    # 2^130 (inf in float32: "A contains NaN or infinity") for float32 data of 1e-40
    to, back, _, _ = public
    rng = np.random.default_rng(0)
    B = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 25))
    for A in (B * 1e-310, (B * 1e-40).astype(np.float32)):
        ref = lowdim.rsvd(A * (2.0**1000 if A.dtype == np.float64 else 2.0**100), tol=0.01)
        res = lowdim.rsvd(to(A), tol=0.01)
        assert res.S.shape == ref.S.shape == (6,)
    assert lowdim.PCA(0.9).fit(to(B * 1e-310)).n_components_ == lowdim.PCA(0.9).fit(B).n_components_


@pytest.mark.parametrize("scale", [1e-25, 1.0, 1e25])
def test_tucker_float32_certified_error_and_magnitudes(public, scale):
    # float32 Gram matrices (cast to float64 after the product) certified twice the true
    # error of a good fit, and float32 data of 1e-25 / 1e25 were never rescaled (a zero core
    # certified 0, or "Eigenvalues did not converge")
    to, back, _, _ = public
    rng = np.random.default_rng(1)
    core = rng.standard_normal((3, 4, 2))
    Us = [np.linalg.qr(rng.standard_normal((d, r)))[0] for d, r in ((20, 3), (30, 4), (10, 2))]
    X = np.einsum("abc,ia,jb,kc->ijk", core, *Us) + 1e-4 * rng.standard_normal((20, 30, 10))
    X = (X * scale).astype(np.float32)
    for method in ("sthosvd", "hooi"):
        T = lowdim.tucker(to(X), [3, 4, 2], method=method)
        core, fs = back(T.core), [back(f) for f in T.factors]
        full = lowdim.tucker_to_tensor(np.asarray(core, np.float64), [np.asarray(f) for f in fs])
        true = np.linalg.norm(X - full) / np.linalg.norm(X.astype(np.float64))
        assert T.certified_error == pytest.approx(true, rel=0.05, abs=2e-6)
        rust = lowdim.tucker(X, [3, 4, 2], method=method)
        assert T.certified_error == pytest.approx(rust.certified_error, rel=0.05, abs=2e-6)


def test_tucker_non_finite_is_the_numpy_paths_value_error(public):
    to, _, _, _ = public
    X = np.random.default_rng(0).standard_normal((6, 7, 8))
    X[0, 0, 0] = np.nan
    for kw in ({}, {"svd": "lq"}, {"method": "hooi"}, {"tol": 0.3}):
        with pytest.raises(ValueError, match="NaN or infinity"):
            lowdim.tucker(to(X), **({"rank": 2} | kw if "tol" not in kw else kw))


@pytest.mark.parametrize("scale", [1e-300, 1e-310])
def test_svd_error_on_tiny_data(public, scale):
    # 1 / ||y|| was infinite for a residual norm below 5.6e-309: "A contains NaN or infinity"
    # for data of 1e-295 and below that is (nearly) of rank k (both paths)
    to, _, _, _ = public
    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 5)) @ rng.standard_normal((5, 30))
    A[:, 0] += 1e-3 * rng.standard_normal(60)
    ref = lowdim.svd_error(A, *lowdim.rsvd(A, 3, seed=0), seed=0)
    for a in (A * scale, to(A * scale)):
        est = lowdim.svd_error(a, *lowdim.rsvd(a, 3, seed=0), seed=0)
        assert est / scale == pytest.approx(ref, rel=1e-3)


def test_transform_checks_finiteness_and_namespaces(public):
    to, _, _, mod = public
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 10))
    An = A.copy()
    An[0, 0] = np.nan
    for cls in (lowdim.PCA, lowdim.TruncatedSVD):
        est = cls(3, random_state=0).fit(to(A))
        with pytest.raises(ValueError, match="NaN"):
            est.transform(to(An))
        with pytest.raises(ValueError, match="NaN"):
            est.inverse_transform(to(np.full((2, 3), np.nan)))
        # a model fitted on the device does not copy NumPy input to it, nor the reverse
        with pytest.raises(TypeError, match=f"fitted on {mod} arrays"):
            est.transform(A)
        with pytest.raises(TypeError, match="same kind"):
            est.inverse_transform(np.ones((2, 3)))
        with pytest.raises(TypeError, match="fitted on numpy arrays"):
            cls(3, random_state=0).fit(A).transform(to(A))


def test_mixed_namespaces_are_a_type_error(public):
    to, _, _, mod = public
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 8))
    U, S, Vh = lowdim.rsvd(to(A), 3, seed=0)
    with pytest.raises(TypeError, match=f"A is a {mod} array|are {mod} arrays|is a {mod}"):
        lowdim.svd_error(A, U, S, Vh)
    with pytest.raises(TypeError, match="one kind"):
        lowdim.svd_error(to(A), *lowdim.rsvd(A, 3, seed=0))
    core = np.ones((2, 3))
    fs = [to(np.ones((5, 2))), to(np.ones((6, 3)))]
    with pytest.raises(TypeError, match="one kind"):
        lowdim.tucker_to_tensor(core, fs)
    with pytest.raises(TypeError, match="one kind"):
        lowdim.TuckerTensor(core, fs)
    with pytest.raises(TypeError, match="one kind"):
        lowdim.mode_product(np.ones((5, 6)), to(np.ones((3, 5))), 0)
    T = lowdim.tucker(to(rng.standard_normal((5, 6, 7))), 2)
    with pytest.raises(TypeError, match="one kind"):
        T.rel_error(rng.standard_normal((5, 6, 7)))


def test_tucker_tensor_xp_checks_dtypes_as_tucker_does():
    # rel_error took a bool X, and a complex core failed only at to_tensor()
    X = xs.asarray(np.random.default_rng(0).standard_normal((4, 5, 6)))
    T = lowdim.tucker(X, 2)
    with pytest.raises(TypeError, match=r"^X has boolean dtype"):
        lowdim.tucker(X > 0, 2)
    with pytest.raises(TypeError, match=r"^X has boolean dtype"):
        T.rel_error(X > 0)
    with pytest.raises(TypeError, match=r"^core has complex dtype"):
        lowdim.TuckerTensor(xs.astype(T.core, xs.complex128), T.factors)
    with pytest.raises(TypeError, match=r"^factors\[0\] has boolean dtype"):
        lowdim.TuckerTensor(T.core, [T.factors[0] > 0, *T.factors[1:]])


@pytest.mark.parametrize("name", ["PCA", "TruncatedSVD", "SSCOMP", "KSubspaces"])
def test_estimators_reject_complex_and_bool_alike_on_both_paths(public, name):
    to, _, _, _ = public
    from lowdim import cluster

    make = {
        "PCA": lambda: lowdim.PCA(2),
        "TruncatedSVD": lambda: lowdim.TruncatedSVD(2),
        "SSCOMP": lambda: cluster.SSCOMP(2),
        "KSubspaces": lambda: cluster.KSubspaces(2, 1),
    }[name]
    X = np.random.default_rng(0).standard_normal((20, 6))
    for conv in (lambda a: a, to):
        with pytest.raises(ValueError, match="Complex data not supported"):
            make().fit(conv(X.astype(np.complex128)))
        with pytest.raises(TypeError, match="boolean"):
            make().fit(conv(X > 0))


@pytest.mark.parametrize("svd", ["gram", "lq"])
def test_tucker_long_mode_in_namespace(public, svd):
    # as the Rust path: a mode longer than the product of the others is solved on the
    # J x J side (the I_n x I_n Gram matrix was O(I_n^2) device memory)
    to, back, _, _ = public
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 12)) @ np.diag(0.7 ** np.arange(12))
    a = lowdim.tucker(to(X), [4, 4], svd=svd)
    b = lowdim.tucker(X, [4, 4], svd=svd)
    assert a.certified_error == pytest.approx(b.certified_error, rel=1e-10)
    U = np.asarray(back(a.factors[0]))
    np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(np.abs(U.T @ b.factors[0]), np.eye(4), atol=1e-8)
    Y = rng.standard_normal((8, 9, 500))
    for rank in ([3, 3, 3], [5, 1, 1]):  # [5, 1, 1]: mode 0 asks for more than J = 1 gives
        a = lowdim.tucker(to(Y), rank, method="hooi", svd=svd)
        b = lowdim.tucker(Y, rank, method="hooi", svd=svd)
        assert a.ranks == b.ranks == tuple(rank)
        assert a.certified_error == pytest.approx(b.certified_error, rel=1e-6)
