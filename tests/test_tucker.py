"""Tucker decomposition against a plain NumPy reference (property tests, small sizes)."""

from __future__ import annotations

import re

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=100, deadline=None)


# ---------------------------------------------------------------------------------------------
# NumPy reference


def unfold(X, n):
    return np.moveaxis(X, n, 0).reshape(X.shape[n], -1)


def mode_dot(X, M, n):
    """X x_n M with M of shape (J, I_n)."""
    return np.moveaxis(np.tensordot(M, X, axes=(1, n)), 0, n)


def reconstruct(core, factors, modes):
    X = core
    for m, U in zip(modes, factors, strict=True):
        X = mode_dot(X, U, m)
    return X


def ref_sthosvd(X, ranks, order):
    """Plain ST-HOSVD: returns factors (by mode) and the discarded eigenvalues' sum."""
    Y = X
    factors, discarded = {}, 0.0
    for m in order:
        A = unfold(Y, m)
        lam, V = np.linalg.eigh(A @ A.T)
        lam, V = lam[::-1], V[:, ::-1]
        r = ranks[m]
        discarded += float(np.clip(lam[r:], 0, None).sum())
        factors[m] = V[:, :r]
        Y = mode_dot(Y, V[:, :r].T, m)
    return factors, discarded


def hosvd_bound_sq(X, ranks):
    total = 0.0
    for m in range(X.ndim):
        s = np.linalg.svd(unfold(X, m), compute_uv=False)
        total += float((s[ranks[m] :] ** 2).sum())
    return total


def rel_err(X, Xh):
    return float(np.linalg.norm((X - Xh).ravel()) / np.linalg.norm(X.ravel()))


def low_rank(shape, ranks, noise, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    core = rng.standard_normal(ranks)
    fs = [rng.standard_normal((n, r)) for n, r in zip(shape, ranks, strict=True)]
    X = reconstruct(core, fs, range(len(shape)))
    X /= np.linalg.norm(X.ravel())
    if noise:
        E = rng.standard_normal(shape)
        X += noise * E / np.linalg.norm(E.ravel())
    return X.astype(dtype)


@st.composite
def problems(draw, min_ndim=2, max_ndim=4, max_size=9):
    nd = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.lists(st.integers(2, max_size), min_size=nd, max_size=nd)))
    ranks = tuple(draw(st.integers(1, s)) for s in shape)
    seed = draw(st.integers(0, 2**32 - 1))
    noise = draw(st.sampled_from([0.0, 0.01, 0.1, 1.0]))
    true = tuple(max(1, r - draw(st.integers(0, 1))) for r in ranks)
    return low_rank(shape, true, noise, seed), ranks


# ---------------------------------------------------------------------------------------------
# Properties


@SETTINGS
@given(problems(), st.sampled_from(["hosvd", "sthosvd", "hooi"]))
def test_factors_orthonormal_and_core_is_projection(prob, method):
    X, ranks = prob
    T = lowdim.tucker(X, ranks, method=method, seed=0)
    assert T.ranks == ranks
    for U, r in zip(T.factors, ranks, strict=True):
        assert U.shape[1] == r
        np.testing.assert_allclose(U.T @ U, np.eye(r), atol=1e-10)
    G = X
    for m, U in zip(T.modes, T.factors, strict=True):
        G = mode_dot(G, U.T, m)
    np.testing.assert_allclose(T.core, G, atol=1e-10 * np.linalg.norm(X.ravel()))


@SETTINGS
@given(problems(max_size=12))
def test_sthosvd_error_identity(prob):
    X, ranks = prob
    T = lowdim.tucker(X, ranks)
    _, discarded = ref_sthosvd(X, dict(enumerate(ranks)), T.mode_order)
    nx2 = float(np.linalg.norm(X.ravel()) ** 2)
    err2 = rel_err(X, T.to_tensor()) ** 2 * nx2
    cert2 = T.certified_error**2 * nx2
    # 1e-10 relative, plus the rounding floor of squared quantities (a few hundred eps ||X||^2)
    slack = 1e-10 * discarded + 1e-13 * nx2
    assert abs(cert2 - discarded) <= slack
    assert abs(err2 - discarded) <= slack


@SETTINGS
@given(
    problems(max_size=10),
    st.floats(1e-3, 0.9),
    st.sampled_from(["hosvd", "sthosvd", "hooi"]),
    st.sampled_from(["auto", "gram", "lq"]),
)
def test_tol_mode_meets_tol(prob, tol, method, svd):
    X, _ = prob
    T = lowdim.tucker(X, tol=tol, method=method, svd=svd)
    assert rel_err(X, T.to_tensor()) <= tol
    assert T.certified_error <= tol
    # carry-over: no single mode could be truncated one more without breaking the budget
    assert all(1 <= r <= n for r, n in zip(T.ranks, X.shape, strict=True))


@SETTINGS
@given(problems(max_size=10))
def test_hooi_le_sthosvd_le_hosvd_bound(prob):
    X, ranks = prob
    e_hooi = rel_err(X, lowdim.tucker(X, ranks, method="hooi").to_tensor())
    e_st = rel_err(X, lowdim.tucker(X, ranks).to_tensor())
    Th = lowdim.tucker(X, ranks, method="hosvd")
    e_ho = rel_err(X, Th.to_tensor())
    nx = np.linalg.norm(X.ravel())
    bound = np.sqrt(hosvd_bound_sq(X, ranks)) / nx
    slack = 1e-10
    assert e_hooi <= e_st + slack
    assert e_st <= bound + slack
    assert e_ho <= bound + slack
    # squared quantities agree to rounding (the roots only to ~sqrt(eps) near zero)
    # (capped at 1: an orthogonal projection never errs by more than ||X||)
    cap = min(bound, 1.0)
    assert abs(Th.certified_error**2 - cap**2) <= 1e-10 * cap**2 + 1e-13


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["hosvd", "sthosvd", "hooi"]))
def test_exact_recovery_of_low_multilinear_rank(seed, method):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(2, 5))
    shape = tuple(int(s) for s in rng.integers(4, 10, nd))
    ranks = tuple(int(rng.integers(1, s // 2 + 1)) for s in shape)
    X = low_rank(shape, ranks, 0.0, seed)
    T = lowdim.tucker(X, ranks, method=method)
    assert rel_err(X, T.to_tensor()) < 1e-10
    assert T.certified_error < 1e-6


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["hosvd", "sthosvd", "hooi"]))
def test_partial_tucker_leaves_other_modes_alone(seed, method):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 5, 3, 4))
    T = lowdim.tucker(X, [3, 2], modes=[1, 3], method=method)
    assert T.core.shape == (6, 3, 3, 2)
    assert T.modes == (1, 3) and len(T.factors) == 2
    G = mode_dot(mode_dot(X, T.factors[0].T, 1), T.factors[1].T, 3)
    np.testing.assert_allclose(T.core, G, atol=1e-10)
    # the untouched modes: reconstruction equals projecting modes 1 and 3 only
    P1 = T.factors[0] @ T.factors[0].T
    P3 = T.factors[1] @ T.factors[1].T
    np.testing.assert_allclose(T.to_tensor(), mode_dot(mode_dot(X, P1, 1), P3, 3), atol=1e-10)
    assert T.shape == X.shape


def _layouts(X):
    yield "C", X
    yield "F", np.asfortranarray(X)
    perm = tuple(np.random.default_rng(0).permutation(X.ndim))
    inv = tuple(np.argsort(perm))
    yield "permuted", np.ascontiguousarray(X.transpose(perm)).transpose(inv)
    big = np.zeros(tuple(2 * s for s in X.shape))
    big[tuple(slice(None, None, 2) for _ in X.shape)] = X
    yield "strided", big[tuple(slice(None, None, 2) for _ in X.shape)]
    rev = tuple(slice(None, None, -1) for _ in X.shape)
    yield "negative", X[rev].copy()[rev]
    yield "readonly", np.frombuffer(X.tobytes(), dtype=X.dtype).reshape(X.shape)


@SETTINGS
@given(problems(min_ndim=3), st.sampled_from(["hosvd", "sthosvd", "hooi"]))
def test_any_layout_gives_the_same_result(prob, method):
    X, ranks = prob
    ref = lowdim.tucker(X, ranks, method=method)
    Xr = ref.to_tensor()
    for name, Y in _layouts(X):
        np.testing.assert_array_equal(Y, X)
        T = lowdim.tucker(Y, ranks, method=method)
        if method == "hooi":
            # HOOI's stopping sweep is decided by error changes near hooi_tol, which rounding
            # (summation order follows memory) can move by one sweep: same error, and the
            # same tensor to the accuracy the iteration converged to.
            assert abs(T.certified_error**2 - ref.certified_error**2) < 1e-7, name
            np.testing.assert_allclose(T.to_tensor(), Xr, atol=1e-3, err_msg=name)
            continue
        np.testing.assert_allclose(T.to_tensor(), Xr, atol=1e-9, err_msg=name)
        assert abs(T.certified_error**2 - ref.certified_error**2) < 1e-13, name


def test_any_layout_gives_the_same_factors():
    # generic data (distinct singular values): the factors themselves are unique, signs fixed
    X = low_rank((9, 7, 8, 5), (3, 2, 4, 2), 0.05, 11)
    for method in ("hosvd", "sthosvd", "hooi"):
        ref = lowdim.tucker(X, [3, 2, 4, 2], method=method)
        for name, Y in _layouts(X):
            T = lowdim.tucker(Y, [3, 2, 4, 2], method=method)
            for U, V in zip(T.factors, ref.factors, strict=True):
                np.testing.assert_allclose(U, V, atol=1e-9, err_msg=name)
            np.testing.assert_allclose(T.core, ref.core, atol=1e-9, err_msg=name)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["hosvd", "sthosvd", "hooi"]))
def test_float32_close_to_float64(seed, method):
    X = low_rank((12, 10, 8), (3, 3, 2), 0.05, seed)
    T64 = lowdim.tucker(X, [3, 3, 2], method=method)
    T32 = lowdim.tucker(X.astype(np.float32), [3, 3, 2], method=method)
    assert T32.core.dtype == np.float32 and all(U.dtype == np.float32 for U in T32.factors)
    X64, X32 = T64.to_tensor(), T32.to_tensor()
    assert X32.dtype == np.float32
    assert rel_err(X64, X32.astype(np.float64)) < 1e-3
    assert abs(T32.certified_error - T64.certified_error) < 1e-3


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_randomized_and_lq_solvers(seed):
    X = low_rank((30, 200, 6), (4, 3, 2), 1e-4, seed)
    for svd in ("randomized", "lq", "gram"):
        T = lowdim.tucker(X, [4, 3, 2], svd=svd, seed=seed)
        e = rel_err(X, T.to_tensor())
        assert e < 2e-4, svd
        assert abs(e - T.certified_error) < 1e-8, svd
        assert set(T.solvers) == {svd}


def test_auto_solver_choices():
    X = low_rank((20, 15, 10), (3, 3, 3), 1e-3, 1)
    assert set(lowdim.tucker(X, tol=1e-2).solvers) == {"gram"}
    # a tolerance below what a Gram matrix resolves switches to the LQ path
    T = lowdim.tucker(X, tol=1e-9)
    assert set(T.solvers) == {"lq"}
    assert rel_err(X, T.to_tensor()) <= 1e-9
    # a tall mode with a small rank and a wide unfolding goes randomized
    Y = low_rank((400, 40, 50), (3, 3, 3), 1e-6, 2)
    T = lowdim.tucker(Y, [3, 3, 3], seed=0)
    assert T.mode_order[0] == 0  # the cost model knows the randomized finder is cheap
    assert T.solvers[0] == "randomized"
    assert rel_err(Y, T.to_tensor()) < 1e-5


def test_mode_order_auto_and_explicit():
    X = low_rank((30, 8, 20), (2, 8, 5), 0.01, 3)
    T = lowdim.tucker(X, [2, 8, 5])
    assert T.mode_order[0] == 0  # the largest reduction first
    for order in ([2, 1, 0], [1, 0, 2]):
        T2 = lowdim.tucker(X, [2, 8, 5], mode_order=order)
        assert T2.mode_order == tuple(order)
        assert rel_err(X, T2.to_tensor()) <= rel_err(X, T.to_tensor()) * 1.5
    # with tol: ascending size
    assert lowdim.tucker(X, tol=0.05).mode_order == (1, 2, 0)


@SETTINGS
@given(problems(min_ndim=1, max_ndim=4), st.data())
def test_mode_product_and_tucker_to_tensor(prob, data):
    X, _ = prob
    n = data.draw(st.integers(0, X.ndim - 1))
    J = data.draw(st.integers(1, 5))
    M = np.random.default_rng(J).standard_normal((J, X.shape[n]))
    np.testing.assert_allclose(lowdim.mode_product(X, M, n), mode_dot(X, M, n), atol=1e-12)
    np.testing.assert_allclose(
        lowdim.mode_product(X[..., ::-1], M.T.copy(), n, transpose=True),
        mode_dot(X[..., ::-1], M, n),
        atol=1e-12,
    )
    fs = [np.random.default_rng(k).standard_normal((k + 2, s)) for k, s in enumerate(X.shape)]
    np.testing.assert_allclose(
        lowdim.tucker_to_tensor(X, fs), reconstruct(X, fs, range(X.ndim)), atol=1e-10
    )
    Y = lowdim.tucker_to_tensor(X.astype(np.float32), [f.astype(np.float32) for f in fs])
    assert Y.dtype == np.float32


def test_out_parameter():
    rng = np.random.default_rng(0)
    core = rng.standard_normal((3, 4, 2))
    fs = [rng.standard_normal((n, r)) for n, r in zip((5, 6, 7), core.shape, strict=True)]
    out = np.empty((5, 6, 7))
    res = lowdim.tucker_to_tensor(core, fs, out=out)
    assert res is out or np.shares_memory(res, out)
    np.testing.assert_allclose(out, reconstruct(core, fs, range(3)), atol=1e-12)
    out2 = np.empty((3, 6, 2))
    lowdim.mode_product(core, fs[1], 1, out=out2)
    np.testing.assert_allclose(out2, mode_dot(core, fs[1], 1), atol=1e-12)
    with pytest.raises(ValueError, match="out"):
        lowdim.tucker_to_tensor(core, fs, out=np.empty((5, 6, 7), np.float32))
    with pytest.raises(ValueError, match="out"):
        lowdim.tucker_to_tensor(core, fs, out=np.empty((7, 6, 5)).T)


def test_tucker_tensor_api():
    X = low_rank((10, 9, 8), (2, 3, 2), 0.0, 0)
    T = lowdim.tucker(X, [2, 3, 2])
    core, factors = T
    assert core is T.core and factors is T.factors
    assert T.shape == X.shape and T.ranks == (2, 3, 2)
    assert T.compression_ratio == pytest.approx(720 / (12 + 20 + 27 + 16))
    assert T.rel_error(X) < 1e-12
    assert "TuckerTensor" in repr(T)
    U = lowdim.TuckerTensor(T.core, T.factors)
    assert U.certified_error is None
    np.testing.assert_allclose(U.to_tensor(), X, atol=1e-12)
    assert lowdim.tucker(X.astype(np.int64), 2).core.dtype == np.float64


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda X: lowdim.tucker(X, 0), "rank"),
        (lambda X: lowdim.tucker(X, [2, 2, 9]), "larger than its size"),
        (lambda X: lowdim.tucker(X, [2, 2]), "entries"),
        (lambda X: lowdim.tucker(X, tol=0.0), "tol"),
        (lambda X: lowdim.tucker(X, tol=1.0), "tol"),
        (lambda X: lowdim.tucker(X, tol=-0.5), "tol"),
        (lambda X: lowdim.tucker(X, 2, tol=0.1), "exactly one"),
        (lambda X: lowdim.tucker(X), "exactly one"),
        (lambda X: lowdim.tucker(X[0, 0], 1), "at least 2 dimensions"),
        (lambda X: lowdim.tucker(X, 2, modes=[0, 3]), "out of range"),
        (lambda X: lowdim.tucker(X, 2, modes=[1, 1]), "repeated"),
        (lambda X: lowdim.tucker(X, 2, modes=[]), "at least one"),
        (lambda X: lowdim.tucker(X, 2, method="cp"), "method"),
        (lambda X: lowdim.tucker(X, 2, svd="qr"), "svd"),
        (lambda X: lowdim.tucker(X, tol=0.1, svd="randomized"), "randomized"),
        (lambda X: lowdim.tucker(X, 2, mode_order=[0, 1]), "permutation"),
        (lambda X: lowdim.tucker(X, 2, mode_order="fast"), "mode_order"),
        (lambda X: lowdim.tucker(X, 2, hooi_tol=-1.0), "hooi_tol"),
        (lambda X: lowdim.tucker(np.zeros((3, 0, 2)), 1), "empty"),
        (lambda X: lowdim.mode_product(X, np.ones((2, 5)), 0), "must be"),
        (lambda X: lowdim.mode_product(X, np.ones((2, 4)), 3), "out of range"),
        (lambda X: lowdim.tucker_to_tensor(X, [np.ones((3, 4))] * 2), "factors given"),
        (lambda X: lowdim.tucker_to_tensor(X, [np.ones((3, 5))] * 3), "expected"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    X = np.random.default_rng(0).standard_normal((4, 5, 6))
    with pytest.raises(ValueError, match=match):
        call(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize("kw", [{"rank": 2}, {"tol": 0.1}, {"rank": 2, "svd": "randomized"}])
def test_non_finite_input_is_a_value_error(bad, method, kw):
    X = np.random.default_rng(0).standard_normal((4, 5, 6))
    X[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        lowdim.tucker(X, method=method, **kw)


def test_type_errors():
    X = np.ones((3, 3, 3))
    with pytest.raises(TypeError):
        lowdim.tucker(X.astype(complex), 1)
    with pytest.raises(TypeError):
        lowdim.tucker(X, 1.5)
    with pytest.raises(TypeError):
        lowdim.tucker(X, tol="0.1")
    # hooi_tol of the wrong type was a ValueError, unlike tol and n_iter_max
    for bad in ("1e-8", None, True):
        with pytest.raises(TypeError, match="hooi_tol"):
            lowdim.tucker(X, 1, method="hooi", hooi_tol=bad)
    # a scipy.sparse matrix is not wrapped as a 0-d object array ("got 0-D")
    with pytest.raises(TypeError, match=r"scipy.sparse .*toarray"):
        lowdim.tucker(sp.csr_matrix(np.ones((4, 3))), 1)
    with pytest.raises(TypeError, match=r"scipy.sparse .*toarray"):
        lowdim.mode_product(sp.coo_matrix(np.ones((4, 3))), np.ones((2, 4)), 0)


def test_tensor_arguments_are_named_in_type_errors():
    # tucker_to_tensor named none of its arguments ("A has dtype object" for a sparse core,
    # "A has boolean dtype" for a bool one): the sparse check comes first, and the message
    # names core, factors[i], X or M
    core, fs = np.ones((2, 2)), [np.eye(2)] * 2
    with pytest.raises(TypeError, match=r"^core is a scipy.sparse .*toarray"):
        lowdim.tucker_to_tensor(sp.csr_matrix(core), fs)
    with pytest.raises(TypeError, match=r"^factors\[1\] is a scipy.sparse .*toarray"):
        lowdim.tucker_to_tensor(core, [fs[0], sp.csr_matrix(fs[1])])
    with pytest.raises(TypeError, match=r"^core has boolean dtype"):
        lowdim.tucker_to_tensor(core.astype(bool), fs)
    with pytest.raises(TypeError, match=r"^factors\[0\] has complex dtype"):
        lowdim.tucker_to_tensor(core, [fs[0].astype(complex), fs[1]])
    with pytest.raises(TypeError, match=r"^X has boolean dtype"):
        lowdim.mode_product(core.astype(bool), fs[0], 0)
    with pytest.raises(TypeError, match=r"^M has dtype object"):
        lowdim.mode_product(core, fs[0].astype(object), 0)
    with pytest.raises(TypeError, match=r"^M is a scipy.sparse .*toarray"):
        lowdim.mode_product(core, sp.csr_matrix(fs[0]), 0)
    with pytest.raises(TypeError, match=r"^core is a scipy.sparse .*toarray"):
        lowdim.TuckerTensor(sp.csr_matrix(core), fs)


def test_out_sharing_memory_with_an_input_is_a_value_error():
    # the Rust bindings refused it with "TypeError: The given array is already borrowed"
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((3, 3, 3))
    fs = [np.eye(3)] * 3
    for call in (
        lambda out: lowdim.mode_product(Y, np.eye(3), 0, out=out),
        lambda out: lowdim.tucker_to_tensor(Y, fs, out=out),
    ):
        with pytest.raises(ValueError, match="out must not share memory"):
            call(Y)
    big = np.zeros((6, 3, 3))
    with pytest.raises(ValueError, match="out must not share memory"):
        lowdim.mode_product(big[1:4], np.eye(3), 0, out=big[:3])  # overlapping views
    np.testing.assert_array_equal(lowdim.mode_product(big[3:], np.eye(3), 0, out=big[:3]), 0)
    M = np.zeros((3, 3, 3))
    with pytest.raises(ValueError, match="out must not share memory"):
        lowdim.mode_product(Y, M[0], 1, out=M)
    with pytest.raises(ValueError, match="out must not share memory"):
        lowdim.tucker_to_tensor(Y, [np.eye(3), M[:, :, 0], np.eye(3)], out=M)
    # a separate buffer still works, and so does one that only needs a dtype conversion
    out = np.empty((3, 3, 3))
    np.testing.assert_allclose(lowdim.mode_product(Y, np.eye(3), 0, out=out), Y)
    Yi = np.arange(27, dtype=np.int64).reshape(3, 3, 3)
    np.testing.assert_array_equal(lowdim.mode_product(Yi, np.eye(3), 0, out=out), Yi)


def test_tucker_tensor_accepts_a_scalar_mode():
    # tucker(..., modes=0) took a scalar; TuckerTensor raised "'int' object is not iterable"
    core, f = np.ones((2, 3)), np.ones((4, 2))
    T = lowdim.TuckerTensor(core, [f], modes=0)
    assert T.modes == (0,) and T.shape == (4, 3)
    assert lowdim.TuckerTensor(core, [f], modes=np.int64(0)).modes == (0,)
    assert lowdim.TuckerTensor(core, [np.ones((5, 3))], modes=-1).modes == (1,)
    np.testing.assert_allclose(T.to_tensor(), f @ core)
    X = np.random.default_rng(0).standard_normal((4, 3, 5))
    assert (
        lowdim.tucker(X, 2, modes=1).modes
        == lowdim.TuckerTensor(*lowdim.tucker(X, 2, modes=1), modes=1).modes
    )
    with pytest.raises(TypeError, match="modes"):
        lowdim.TuckerTensor(core, [f], modes="0")


def test_rank_as_a_zero_d_array():
    # rank=np.array(2) (e.g. from np.min or a config loaded by np.load) raised NumPy's
    # "TypeError: iteration over a 0-d array"; it is the int it holds
    X = np.random.default_rng(0).standard_normal((6, 5, 4))
    assert lowdim.tucker(X, np.array(2)).ranks == lowdim.tucker(X, 2).ranks == (2, 2, 2)
    assert lowdim.tucker(X, np.array(3, dtype=np.uint8), modes=[1]).ranks == (6, 3, 4)
    with pytest.raises(TypeError, match="rank must be an int"):
        lowdim.tucker(X, np.array(2.0))
    with pytest.raises(TypeError, match="rank must be an int"):
        lowdim.tucker(X, np.array(True))
    with pytest.raises(ValueError, match="rank=0"):
        lowdim.tucker(X, np.array(0))


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-160, 1e160, 1e300])
@pytest.mark.parametrize("method", ["hosvd", "sthosvd", "hooi"])
@pytest.mark.parametrize("kw", [{"rank": 3}, {"tol": 0.5}, {"rank": 3, "svd": "randomized"}])
def test_scale_equivariance(scale, method, kw):
    # Gram matrices square the entries: at 1e-200 the core came out all zeros with a
    # certified error of 0 (the true one is 1), at 1e-160 the eigensolver failed, at 1e160
    # it was an error. Now tucker(c X) has the core c core(X), the same factors and error.
    X = np.random.default_rng(0).standard_normal((12, 10, 8))
    ref = lowdim.tucker(X, method=method, **kw)
    T = lowdim.tucker(X * scale, method=method, **kw)
    assert T.core.shape == ref.core.shape
    np.testing.assert_allclose(T.core / scale, ref.core, rtol=1e-8, atol=1e-10)
    for u, v in zip(T.factors, ref.factors, strict=True):
        np.testing.assert_allclose(u, v, atol=1e-8)
    assert T.certified_error == pytest.approx(ref.certified_error, rel=1e-8, abs=1e-12)
    # the measured error too (its norms overflowed to NaN at 1e160 and beyond)
    assert T.rel_error(X * scale) == pytest.approx(ref.rel_error(X), rel=1e-8)


def test_forced_gram_below_its_resolution_is_an_error():
    # svd='gram' with a tol below what the Gram matrix resolves gave ranks above the
    # unfolding's (25 for a 30 x 20 matrix) and a certified error of 0 for a true 3.5e-9
    i, j = np.meshgrid(np.arange(30), np.arange(20), indexing="ij")
    rng = np.random.default_rng(0)
    Q1 = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    X = Q1[:, :20] @ np.diag(0.6 ** np.arange(20)) @ Q2.T
    with pytest.raises(ValueError, match="svd='gram' cannot certify"):
        lowdim.tucker(X, tol=1e-10, svd="gram")
    T = lowdim.tucker(X, tol=1e-10)  # 'auto' takes the SVD of the unfolding there
    assert T.ranks[0] <= 20
    true = np.linalg.norm(X - T.to_tensor()) / np.linalg.norm(X)
    assert true <= 1e-10
    assert lowdim.tucker(X, tol=1e-3, svd="gram").certified_error <= 1e-3
    del i, j


def test_tol_at_the_rounding_floor_warns():
    # the kernels keep a slack of 8 ndim eps for the reconstruction's rounding: a float32
    # 3-way tol of 1e-6 gave full ranks without a word
    X = np.random.default_rng(0).standard_normal((8, 9, 10)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="float32 reconstruction"):
        T = lowdim.tucker(X, tol=1e-6)
    assert T.ranks == (8, 9, 10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        lowdim.tucker(X, tol=1e-3)
        lowdim.tucker(X.astype(np.float64), tol=1e-6)


@pytest.mark.parametrize("svd", ["auto", "gram", "lq"])
def test_a_long_mode_is_solved_on_the_small_side(svd):
    # a mode longer than the product of the others (I_n > J) built an I_n x I_n Gram matrix
    # and eigendecomposed it: an 8000 x 20 matrix took 2 GB and 73 s. Its factor now comes
    # from the J x J side; the results are the truncated SVD's (2-D) and the numpy HOSVD's
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 12)) @ np.diag(0.7 ** np.arange(12))
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    T = lowdim.tucker(X, [4, 4], svd=svd)
    best = np.linalg.norm(s[4:]) / np.linalg.norm(s)
    true = np.linalg.norm(X - T.to_tensor()) / np.linalg.norm(X)
    assert true == pytest.approx(best, rel=1e-10)
    assert T.certified_error == pytest.approx(true, rel=1e-8)
    np.testing.assert_allclose(T.factors[0].T @ T.factors[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(np.abs(T.factors[0].T @ U[:, :4]), np.eye(4), atol=1e-8)
    Tt = lowdim.tucker(X, tol=0.1, svd=svd)
    assert np.linalg.norm(X - Tt.to_tensor()) / np.linalg.norm(X) <= 0.1
    # a long third mode, every method: the ST-HOSVD error identity and HOOI no worse
    Y = np.einsum(
        "abc,ia,jb,kc->ijk",
        rng.standard_normal((3, 3, 3)),
        *[np.linalg.qr(rng.standard_normal((d, 3)))[0] for d in (8, 9, 2000)],
    )
    Y += 1e-3 * rng.standard_normal(Y.shape)
    errs = {}
    for method in ("sthosvd", "hosvd", "hooi"):
        T3 = lowdim.tucker(Y, 3, method=method, svd=svd)
        errs[method] = np.linalg.norm(Y - T3.to_tensor()) / np.linalg.norm(Y)
        if method != "hosvd":
            assert T3.certified_error == pytest.approx(errs[method], rel=1e-6)
    Yk = np.moveaxis(Y, 2, 0).reshape(2000, -1)
    Uk = np.linalg.svd(Yk, full_matrices=False)[0][:, :3]
    T3 = lowdim.tucker(Y, 3, method="hosvd", svd=svd)
    np.testing.assert_allclose(np.abs(T3.factors[2].T @ Uk), np.eye(3), atol=1e-6)
    assert errs["hooi"] <= errs["sthosvd"] * (1 + 1e-12)


@pytest.mark.parametrize("flag", ["no", "False", 1, 0, None, 1.0])
def test_mode_product_transpose_must_be_a_bool(flag):
    # transpose="no" counted as True: a shape error about (4, J) that named nothing wrong
    X, M = np.ones((2, 3, 4)), np.ones((5, 3))
    with pytest.raises(TypeError, match=r"^transpose must be True or False, got"):
        lowdim.mode_product(X, M, 1, transpose=flag)
    np.testing.assert_array_equal(
        lowdim.mode_product(X, M.T, 1, transpose=np.True_), lowdim.mode_product(X, M, 1)
    )
    np.testing.assert_array_equal(
        lowdim.mode_product(X, M, 1, transpose=np.False_), lowdim.mode_product(X, M, 1)
    )


def test_tucker_tensor_checks_dtypes_as_tucker_does():
    # rel_error of a bool X returned a number (tucker rejects bool X), and a complex core
    # built a TuckerTensor that failed only at to_tensor()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 5, 6))
    T = lowdim.tucker(X, 2)
    for bad in (X > 0, X + 1j, X.astype(object)):
        with pytest.raises(TypeError) as want:
            lowdim.tucker(bad, 2)
        with pytest.raises(TypeError, match=f"^{re.escape(str(want.value))}$"):
            T.rel_error(bad)
    with pytest.raises(TypeError, match=r"^X is a scipy.sparse .*toarray"):
        lowdim.TuckerTensor(np.ones((2, 2)), [np.eye(2)] * 2).rel_error(sp.csr_matrix((2, 2)))
    assert T.rel_error(np.rint(X * 10).astype(np.int64)) > 0  # integers are still fine
    for core, fs, match in [
        (T.core + 1j, T.factors, r"^core has complex dtype complex128; lowdim computes real"),
        (T.core, [T.factors[0], T.factors[1] > 0, T.factors[2]], r"^factors\[1\] has boolean"),
        (T.core.astype(object), T.factors, r"^core has dtype object"),
    ]:
        with pytest.raises(TypeError, match=match):
            lowdim.tucker_to_tensor(core, fs)
        with pytest.raises(TypeError, match=match):
            lowdim.TuckerTensor(core, fs)
    assert lowdim.TuckerTensor(np.ones((2, 2), dtype=np.int64), [np.eye(3, 2)] * 2).shape == (3, 3)
