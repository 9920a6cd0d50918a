"""Tests of lowdim.PCA and lowdim.TruncatedSVD: scikit-learn API compliance and agreement
with scikit-learn's exact solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given
from hypothesis import strategies as st
from lowdim import PCA, TruncatedSVD
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD
from sklearn.utils.estimator_checks import parametrize_with_checks
from strategies import build_matrix, problems, spectrum

PCA_SOLVERS = ("auto", "randomized", "gram", "full")


# ------------------------------------------------------------------ sklearn API


@parametrize_with_checks(
    [
        PCA(),
        PCA(n_components=2, random_state=0),
        PCA(n_components=2, whiten=True, svd_solver="randomized", random_state=0),
        PCA(n_components=0.9, random_state=0),
        TruncatedSVD(random_state=0),
        TruncatedSVD(n_components=1, algorithm="auto", random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- helpers


def _data(m=200, n=30, kind="slow", seed=0, dtype=np.float64, offset=True):
    """Data with a controlled spectrum plus a non-zero column mean."""
    X = build_matrix(m, n, spectrum(kind, min(m, n)), seed)
    if offset:
        X = X + np.linspace(-3, 5, n)
    return X.astype(dtype)


def _row_dots(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1)


def _sparse_data(m=150, n=60, seed=0, fmt="csr"):
    """A sparse matrix with a decaying spectrum (random sparse times a diagonal scaling),
    so that the randomized solvers converge to the exact result."""
    X = sp.random(m, n, density=0.2, random_state=seed, format="csr")
    return (X @ sp.diags(2.0 ** -np.arange(n) + 1e-3)).asformat(fmt)


# --------------------------------------------------------------- PCA vs sklearn


@pytest.mark.parametrize("solver", PCA_SOLVERS)
@pytest.mark.parametrize("n_components", [1, 5, 30, None])
@pytest.mark.parametrize("shape", [(200, 30), (40, 90)])
def test_pca_matches_sklearn_full(solver, n_components, shape):
    m, n = shape
    X = _data(m, n, kind="fast")
    if n_components == 30:
        n_components = min(shape)
    ours = PCA(n_components, svd_solver=solver, random_state=0).fit(X)
    ref = SkPCA(n_components, svd_solver="full").fit(X)
    assert ours.n_components_ == ref.n_components_
    k = ref.n_components_
    assert ours.components_.shape == (k, n)
    # the centred matrix has rank <= min(m - 1, n): the last singular value may be ~0
    r = min(k, m - 1)
    assert_allclose(ours.mean_, ref.mean_, rtol=1e-12, atol=1e-12)
    s1 = ref.singular_values_[0]
    # rtol 1e-6, plus rounding noise (1e-12 * s_1) for the tiny tail values of 2^-i
    assert_allclose(ours.singular_values_[:r], ref.singular_values_[:r], rtol=1e-6, atol=1e-12 * s1)
    ev1 = ref.explained_variance_[0]
    assert_allclose(
        ours.explained_variance_[:r], ref.explained_variance_[:r], rtol=1e-6, atol=1e-12 * ev1
    )
    assert_allclose(
        ours.explained_variance_ratio_[:r],
        ref.explained_variance_ratio_[:r],
        rtol=1e-6,
        atol=1e-12,
    )
    assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-6, atol=1e-12)
    assert ours.n_samples_ == m and ours.n_features_in_ == n
    # components equal up to sign (well separated spectrum: 2^-i)
    assert_allclose(np.abs(_row_dots(ours.components_[:r], ref.components_[:r])), 1, atol=1e-6)
    # projections equal up to the same per-component signs
    signs = np.sign(_row_dots(ours.components_, ref.components_))
    assert_allclose(ours.transform(X)[:, :r] * signs[:r], ref.transform(X)[:, :r], atol=1e-8)


@pytest.mark.parametrize("solver", PCA_SOLVERS)
def test_pca_sign_convention_matches_sklearn(solver):
    """scikit-learn's PCA (>= 1.5) fixes signs with svd_flip(u_based_decision=False): the
    largest-|.| entry of each row of components_ is positive.  A drop-in replacement should
    give the same components_, not just the same up to sign."""
    X = _data(200, 30, kind="fast")
    ours = PCA(5, svd_solver=solver, random_state=0).fit(X)
    ref = SkPCA(5, svd_solver="full").fit(X)
    assert_allclose(ours.components_, ref.components_, atol=1e-8)
    assert_allclose(ours.transform(X), ref.transform(X), atol=1e-8)


@pytest.mark.parametrize("solver", PCA_SOLVERS)
def test_pca_fit_transform_equals_transform(solver):
    # fast decay: the randomized solver converges, so U S == (X - mean) V exactly
    X = _data(120, 25, kind="fast")
    for whiten in (False, True):
        pca = PCA(6, svd_solver=solver, whiten=whiten, random_state=0)
        Z = pca.fit_transform(X)
        assert_allclose(Z, pca.transform(X), atol=1e-10)


@pytest.mark.parametrize("solver", PCA_SOLVERS)
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_round_trip_full_rank(solver, whiten):
    X = _data(100, 20)
    pca = PCA(None, svd_solver=solver, whiten=whiten, random_state=0).fit(X)
    assert pca.n_components_ == 20
    Z = pca.transform(X)
    assert_allclose(pca.inverse_transform(Z), X, atol=1e-10)


@pytest.mark.parametrize("solver", PCA_SOLVERS)
def test_pca_whiten_matches_sklearn(solver):
    X = _data(300, 20, kind="fast")
    ours = PCA(5, whiten=True, svd_solver=solver, random_state=0).fit(X)
    ref = SkPCA(5, whiten=True, svd_solver="full").fit(X)
    Z = ours.transform(X)
    # whitened projections have unit variance (ddof=1) and are uncorrelated
    assert_allclose(np.cov(Z, rowvar=False), np.eye(5), atol=1e-8)
    signs = np.sign(_row_dots(ours.components_, ref.components_))
    assert_allclose(Z * signs, ref.transform(X), atol=1e-8)
    Xb = ours.inverse_transform(Z)
    assert_allclose(Xb, ref.inverse_transform(ref.transform(X)), atol=1e-8)


def _wrap(kind):
    if kind == "xp":
        import array_api_strict as xs

        return xs.asarray
    return sp.csr_matrix if kind == "sparse" else np.asarray


@pytest.mark.parametrize("kind", ["dense", "sparse", "xp"])
@pytest.mark.parametrize("solver", PCA_SOLVERS)
def test_pca_whiten_zero_variance(solver, kind):
    # transform divided by sqrt(explained_variance_) = 0: NaN / inf. scikit-learn clips the
    # divisor at eps; fit_transform must agree with transform (U * sqrt(n - 1) is an
    # arbitrary unit vector's multiple for a zero singular value), inverse_transform with
    # both
    if kind == "sparse" and solver in ("full", "gram"):
        pytest.skip("dense solvers")
    wrap = _wrap(kind)
    Z = np.zeros((10, 4))
    est = PCA(2, whiten=True, svd_solver=solver, random_state=0)
    got = np.asarray(est.fit_transform(wrap(Z)))
    with np.errstate(invalid="ignore", divide="ignore"):  # scikit-learn's ratios 0 / 0
        ref = SkPCA(2, whiten=True, svd_solver="full").fit(Z)
    assert_array_equal(np.asarray(est.transform(wrap(Z))), ref.transform(Z))
    assert_array_equal(ref.transform(Z), 0.0)
    assert_array_equal(got, 0.0)
    assert_array_equal(np.asarray(est.inverse_transform(est.transform(wrap(Z)))), Z)
    # a constant column: four components with variance, one without
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 5)) @ rng.standard_normal((5, 5))
    X[:, 2] = 5.0
    est = PCA(5, whiten=True, svd_solver=solver, random_state=0)
    ft = np.asarray(est.fit_transform(wrap(X)))
    t = np.asarray(est.transform(wrap(X)))
    assert np.isfinite(ft).all() and np.isfinite(t).all()
    ref = SkPCA(5, whiten=True, svd_solver="full").fit(X)
    assert_allclose(t[:, :4], ref.transform(X)[:, :4], atol=1e-8)
    assert_allclose(ft[:, :4], t[:, :4], atol=1e-8)
    # the fifth: the projection on a direction of zero variance, a rounding error, over eps
    # (scikit-learn's values are such errors too)
    assert np.abs(t[:, 4]).max() < 1e3 and np.abs(ft[:, 4]).max() < 1e3
    P = np.asarray(est.inverse_transform(_wrap("xp" if kind == "xp" else "dense")(t)))
    assert_allclose(P, X, atol=1e-10)


@pytest.mark.parametrize("kind", ["dense", "sparse", "xp"])
@pytest.mark.parametrize("solver", PCA_SOLVERS)
@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_pca_whiten_at_extreme_scales(scale, solver, kind):
    # the variances are 0 / inf there (by design: the honest float64 values), and transform
    # divided by their square roots: all-0 or +-inf while fit_transform was finite. The
    # whitening now comes from the scaled variances: whitened data are scale-invariant
    if kind == "sparse" and solver in ("full", "gram"):
        pytest.skip("dense solvers")
    wrap = _wrap(kind)
    X = _data(60, 12)
    ref = PCA(3, whiten=True, svd_solver=solver, random_state=0)
    Zr = np.asarray(ref.fit_transform(wrap(X)))
    est = PCA(3, whiten=True, svd_solver=solver, random_state=0)
    with np.errstate(all="raise"):  # no overflow reaches NumPy's warnings
        Z = np.asarray(est.fit_transform(wrap(X * scale)))
        T = np.asarray(est.transform(wrap(X * scale)))
        B = np.asarray(est.inverse_transform(est.transform(wrap(X * scale))))
    ev = np.asarray(est.explained_variance_)
    assert np.all(ev == (np.inf if scale > 1 else 0.0))
    assert_allclose(Z, Zr, rtol=1e-9, atol=1e-9)
    assert_allclose(T, Zr, rtol=1e-9, atol=1e-9)
    assert_allclose(B / scale, np.asarray(ref.inverse_transform(ref.transform(wrap(X)))), atol=1e-9)


@pytest.mark.parametrize("scale", [1e21, 1e-30])
def test_pca_whiten_float32_out_of_range_variances(scale):
    # float32 variances overflow (1e21 data) or underflow below eps (1e-30): scikit-learn's
    # rule (the divisor clipped at eps32) holds for the small data; the large ones must not
    # give all-0
    X = (_data(60, 12) * scale).astype(np.float32)
    est = PCA(3, whiten=True, random_state=0)
    Z = est.fit_transform(X)
    T = est.transform(X)
    assert Z.dtype == T.dtype == np.float32
    assert np.isfinite(T).all()
    assert_allclose(T, Z, rtol=1e-3, atol=1e-3 * np.abs(Z).max())
    if scale > 1:
        assert np.abs(T).max() > 0.1


@pytest.mark.parametrize("solver", ["auto", "randomized", "gram"])
def test_pca_float32_preserved(solver):
    X64 = _data(150, 20, kind="fast")
    X = X64.astype(np.float32)
    pca = PCA(4, svd_solver=solver, random_state=0).fit(X)
    for name in (
        "components_",
        "singular_values_",
        "explained_variance_",
        "explained_variance_ratio_",
        "mean_",
    ):
        assert getattr(pca, name).dtype == np.float32, name
    assert pca.transform(X).dtype == np.float32
    assert pca.fit_transform(X).dtype == np.float32
    ref = SkPCA(4, svd_solver="full").fit(X64)
    assert_allclose(pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-3)
    assert_allclose(np.abs(_row_dots(pca.components_, ref.components_)), 1, atol=1e-3)
    # sparse float32 stays float32 too
    sps = PCA(4, random_state=0).fit(sp.csr_matrix(X))
    assert sps.components_.dtype == np.float32


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_fit_transform_accepts_lists(whiten):
    X = _data(40, 6)
    ref = PCA(3, whiten=whiten, svd_solver="full").fit_transform(X)
    Z = PCA(3, whiten=whiten, svd_solver="full").fit_transform(X.tolist())
    assert_allclose(Z, ref, atol=1e-12)


def test_pca_copy_false_gives_same_result():
    X = _data(80, 15)
    ref = PCA(4, svd_solver="randomized", random_state=0).fit(X.copy())
    ours = PCA(4, copy=False, svd_solver="randomized", random_state=0).fit(X.copy())
    assert_allclose(ours.components_, ref.components_, atol=1e-12)
    assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-12)


def test_pca_readonly_input():
    X = _data(80, 15)
    X.setflags(write=False)
    pca = PCA(3, copy=False, random_state=0).fit(X)
    ref = SkPCA(3, svd_solver="full").fit(X)
    assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-8)


def test_pca_feature_names_out():
    X = _data(50, 10)
    pca = PCA(3, random_state=0).fit(X)
    assert list(pca.get_feature_names_out()) == ["pca0", "pca1", "pca2"]
    tsvd = TruncatedSVD(2, random_state=0).fit(X)
    assert list(tsvd.get_feature_names_out()) == ["truncatedsvd0", "truncatedsvd1"]


# ---------------------------------------------------------------- PCA on sparse


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("n_components", [1, 5, 0.8])
def test_pca_sparse_equals_dense(fmt, n_components):
    Xs = sp.random(150, 60, density=0.15, random_state=1, format=fmt) * 3
    Xd = Xs.toarray()
    ours = PCA(n_components, svd_solver="randomized", random_state=4).fit(Xs)
    ref = PCA(n_components, svd_solver="randomized", random_state=4).fit(Xd)
    assert ours.n_components_ == ref.n_components_
    assert_allclose(ours.mean_, ref.mean_, atol=1e-12)
    assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-8)
    assert_allclose(ours.components_, ref.components_, atol=1e-8)
    assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8)
    assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-8)
    # transform of sparse input: the mean is subtracted implicitly
    assert_allclose(ours.transform(Xs), ref.transform(Xd), atol=1e-8)
    assert_allclose(ours.transform(Xs), ours.transform(Xd), atol=1e-10)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_pca_sparse_matches_sklearn_exact(fmt):
    X = _sparse_data(fmt=fmt)
    ours = PCA(5, random_state=0).fit(X)
    ref = SkPCA(5, svd_solver="full").fit(X.toarray())
    assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-6)
    assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    assert_allclose(np.abs(_row_dots(ours.components_, ref.components_)), 1, atol=1e-6)


@pytest.mark.parametrize("solver", ["full", "gram"])
def test_pca_sparse_rejects_dense_only_solvers(solver):
    with pytest.raises(ValueError, match="dense"):
        PCA(2, svd_solver=solver).fit(_sparse_data())


# --------------------------------------------------------- PCA(n_components=0.9)


@pytest.mark.parametrize("frac", [0.5, 0.8, 0.9, 0.99])
@pytest.mark.parametrize("kind", ["fast", "slow", "flat"])
@pytest.mark.parametrize("solver", PCA_SOLVERS)
def test_pca_variance_fraction(frac, kind, solver):
    X = _data(120, 40, kind=kind, seed=3)
    ours = PCA(frac, svd_solver=solver, random_state=0).fit(X)
    ref = SkPCA(frac, svd_solver="full").fit(X)
    assert ours.explained_variance_ratio_.sum() >= frac * (1 - 1e-9)
    # Both keep the fewest components reaching the fraction, so they agree exactly, up to
    # a tie at the boundary (sklearn needs the cumulative ratio > frac, lowdim >= frac):
    # at most one more component, and never fewer.
    assert ref.n_components_ <= ours.n_components_ <= ref.n_components_ + 1
    cum = np.cumsum(SkPCA(svd_solver="full").fit(X).explained_variance_ratio_)
    if not np.any(np.abs(cum - frac) < 1e-8):
        assert ours.n_components_ == ref.n_components_
    r = ref.n_components_
    assert_allclose(ours.explained_variance_ratio_[:r], ref.explained_variance_ratio_, rtol=1e-6)


ZERO_VARIANCE = {
    "zeros": np.zeros((10, 5)),
    "ones": np.ones((10, 5)),
    # columns whose means are exact (0.1 is not: its mean differs from 0.1 by a rounding,
    # and the centred data are a rank-1 matrix of 1e-17)
    "constant columns": np.tile([3.0, 0.0, -7.0, 0.5, 1e3], (12, 1)),
}


@pytest.mark.parametrize("name", sorted(ZERO_VARIANCE))
@pytest.mark.parametrize(
    ("solver", "kind"),
    [(s, "dense") for s in PCA_SOLVERS]
    + [("auto", "sparse"), ("randomized", "sparse")]
    + [(s, "xp") for s in PCA_SOLVERS]
    + [("auto", "xp sparse")],
)
def test_pca_variance_fraction_on_zero_variance_data(name, solver, kind):
    # A float n_components on data without variance raised IndexError (rsvd's tol mode
    # returns rank 0 for a zero matrix), LinAlgError or 5 components of rounding noise
    # (sparse), or kept every component (svd_solver='full'). scikit-learn keeps 1 (its
    # ratios are NaN there; lowdim's are 0, as for an integer n_components).
    X = ZERO_VARIANCE[name]
    with np.errstate(invalid="ignore", divide="ignore"):
        sk = SkPCA(0.5, svd_solver="full").fit(X)
    assert sk.n_components_ == 1
    est = PCA(0.5, svd_solver=solver, random_state=0)
    if kind == "sparse":
        est.fit(sp.csr_matrix(X))
    elif kind == "xp":
        import array_api_strict as xs

        est.fit(xs.asarray(X))
    elif kind == "xp sparse":  # the array-API code on scipy.sparse (the CuPy sparse route)
        from lowdim import decomposition as dec

        dec._pca_fit_xp(est, sp.csr_matrix(X))
    else:
        est.fit(X)
    assert est.n_components_ == 1
    for attr in ("components_", "explained_variance_", "singular_values_", "mean_"):
        assert_allclose(np.asarray(getattr(est, attr)), getattr(sk, attr), atol=0, err_msg=attr)
    assert_array_equal(np.asarray(est.explained_variance_ratio_), [0.0])
    assert est.noise_variance_ == sk.noise_variance_ == 0.0
    if kind not in ("xp", "xp sparse"):
        assert_array_equal(est.transform(X), np.zeros((X.shape[0], 1)))
        assert_array_equal(est.inverse_transform(est.transform(X)), X)
        assert_array_equal(
            PCA(0.5, svd_solver=solver).fit_transform(X if kind == "dense" else sp.csr_matrix(X)),
            np.zeros((X.shape[0], 1)),
        )


@given(
    prob=problems(kinds=("fast", "slow", "flat", "rankdef"), dtypes=(np.float64,)),
    frac=st.sampled_from([0.5, 0.75, 0.9, 0.95, 0.99]),
)
def test_pca_variance_fraction_property(prob, frac):
    X = prob.A
    assume(min(X.shape) >= 2)
    full = SkPCA(svd_solver="full").fit(X)
    cum = np.cumsum(full.explained_variance_ratio_)
    assume(not np.any(np.abs(cum - frac) < 1e-6))  # no tie at the boundary
    ours = PCA(frac, random_state=0).fit(X)
    ref = SkPCA(frac, svd_solver="full").fit(X)
    assert ours.explained_variance_ratio_.sum() >= frac * (1 - 1e-9)
    assert ours.n_components_ == ref.n_components_


# ---------------------------------------------------------------- TruncatedSVD


@pytest.mark.parametrize("algorithm", ["randomized", "auto", "gram"])
@pytest.mark.parametrize("n_components", [1, 4, 10])
def test_truncated_svd_matches_sklearn_dense(algorithm, n_components):
    X = _data(150, 40, kind="fast", seed=5)
    ours = TruncatedSVD(n_components, algorithm=algorithm, random_state=0).fit(X)
    ref = SkTruncatedSVD(n_components, algorithm="arpack", random_state=0).fit(X)
    assert ours.n_components_ == n_components
    assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-6)
    assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-6)
    assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    assert_allclose(np.abs(_row_dots(ours.components_, ref.components_)), 1, atol=1e-6)
    signs = np.sign(_row_dots(ours.components_, ref.components_))
    assert_allclose(ours.transform(X) * signs, ref.transform(X), atol=1e-6)


@pytest.mark.parametrize("algorithm", ["randomized", "auto"])
@pytest.mark.parametrize("sparse", [False, True])
def test_truncated_svd_sign_convention_matches_sklearn(algorithm, sparse):
    """scikit-learn's TruncatedSVD (>= 1.5) uses svd_flip(u_based_decision=False): the
    largest-|.| entry of each row of components_ is positive.  Same components_ expected."""
    X = _data(150, 40, kind="fast", seed=5)
    if sparse:
        X = sp.csr_matrix(X)
    ours = TruncatedSVD(6, algorithm=algorithm, random_state=0).fit(X)
    ref = SkTruncatedSVD(6, algorithm="arpack", random_state=0).fit(X)
    assert_allclose(ours.components_, ref.components_, atol=1e-6)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("n_components", [1, 5])
def test_truncated_svd_matches_sklearn_sparse(fmt, n_components):
    X = _sparse_data(fmt=fmt, seed=2)
    ours = TruncatedSVD(n_components, random_state=0).fit(X)
    ref = SkTruncatedSVD(n_components, algorithm="arpack", random_state=0).fit(X)
    assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-6)
    assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    assert_allclose(np.abs(_row_dots(ours.components_, ref.components_)), 1, atol=1e-6)
    Z = ours.transform(X)
    assert isinstance(Z, np.ndarray)
    assert_allclose(np.abs(Z), np.abs(ref.transform(X)), atol=1e-6)
    # sparse and dense input agree
    dense = TruncatedSVD(n_components, random_state=0).fit(X.toarray())
    assert_allclose(ours.components_, dense.components_, atol=1e-10)


def test_truncated_svd_fit_transform_and_round_trip():
    X = _data(100, 20, offset=False)
    tsvd = TruncatedSVD(20, algorithm="auto", random_state=0)
    Z = tsvd.fit_transform(X)
    assert_allclose(Z, tsvd.transform(X), atol=1e-10)
    assert_allclose(tsvd.inverse_transform(Z), X, atol=1e-10)


def test_truncated_svd_float32():
    X = _data(100, 30, kind="fast").astype(np.float32)
    tsvd = TruncatedSVD(3, random_state=0).fit(X)
    assert tsvd.components_.dtype == np.float32
    assert tsvd.transform(X).dtype == np.float32
    ref = SkTruncatedSVD(3, algorithm="arpack", random_state=0).fit(X.astype(np.float64))
    assert_allclose(tsvd.singular_values_, ref.singular_values_, rtol=1e-4)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        lambda rs: PCA(5, svd_solver="randomized", random_state=rs),
        lambda rs: PCA(5, random_state=rs),
        lambda rs: PCA(0.8, random_state=rs),
        lambda rs: TruncatedSVD(5, random_state=rs),
    ],
    ids=["pca-randomized", "pca-auto", "pca-frac", "tsvd"],
)
def test_random_state_determinism(make, sparse):
    X = sp.random(120, 50, density=0.2, random_state=7, format="csr")
    if not sparse:
        X = X.toarray()
    a = make(42).fit(X)
    b = make(42).fit(X)
    assert_array_equal(a.components_, b.components_)
    assert_array_equal(a.singular_values_, b.singular_values_)
    c = make(np.random.RandomState(42)).fit(X)
    d = make(np.random.RandomState(42)).fit(X)
    assert_array_equal(c.components_, d.components_)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("nc", [0, -1, 21, 1.0, 1.5, 0.0, -0.5, "mle", "3", True])
def test_pca_bad_n_components(nc):
    X = _data(50, 20)
    with pytest.raises(ValueError, match="n_components"):
        PCA(nc).fit(X)


@pytest.mark.parametrize("nc", [0, -1, 21, 2.5, "3", True, None])
def test_truncated_svd_bad_n_components(nc):
    X = _data(50, 20)
    with pytest.raises(ValueError, match="n_components"):
        TruncatedSVD(nc).fit(X)


def test_n_components_upper_bound_uses_samples():
    X = _data(8, 20)
    PCA(8, random_state=0).fit(X)
    TruncatedSVD(8, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        PCA(9).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        TruncatedSVD(9).fit(X)


def test_bad_solver_options():
    X = _data(50, 10)
    with pytest.raises(ValueError, match="svd_solver"):
        PCA(2, svd_solver="arpack").fit(X)
    with pytest.raises(ValueError, match="algorithm"):
        TruncatedSVD(2, algorithm="arpack").fit(X)
    with pytest.raises(ValueError, match="power_iteration_normalizer"):
        PCA(2, svd_solver="randomized", power_iteration_normalizer="bogus").fit(X)
    with pytest.raises(ValueError, match="^iterated_power must be 'auto'"):
        PCA(2, svd_solver="randomized", iterated_power="bogus").fit(X)


@pytest.mark.parametrize("xp_path", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_errors_name_the_estimator_parameters(sparse, xp_path):
    # rsvd validates the estimators' parameters: its messages said n_iter / seed / solver
    # ("n_iter=-1 is out of range", "seed must be ...") for iterated_power / random_state /
    # svd_solver and algorithm
    if xp_path and sparse:
        pytest.skip("the array-API path takes cupyx sparse only (CuPy)")
    X = _data(50, 10)
    X = sp.csr_matrix(X) if sparse else X
    if xp_path:
        import array_api_strict as xs

        X = xs.asarray(X)
    cases = [
        (PCA(2, iterated_power=-1), ValueError, r"^iterated_power=-1 is out of range"),
        (PCA(2, iterated_power=1.5), TypeError, r"^iterated_power must be an integer"),
        (PCA(2, iterated_power="x"), ValueError, r"^iterated_power must be 'auto'"),
        (PCA(2, random_state="x"), TypeError, r"^random_state must be None, an int"),
        (PCA(2, random_state=-1), ValueError, r"^random_state=-1 must be in"),
        (PCA(2, n_oversamples=-1), ValueError, r"^n_oversamples=-1 is out of range"),
        (PCA(0.5, iterated_power=-1), ValueError, r"^iterated_power=-1 is out of range"),
        (TruncatedSVD(2, n_iter=-1), ValueError, r"^n_iter=-1 is out of range"),
        (TruncatedSVD(2, random_state="x"), TypeError, r"^random_state must be None"),
    ]
    if sparse:
        cases.append((TruncatedSVD(2, algorithm="gram"), ValueError, r"^algorithm='gram' needs"))
    for est, exc, match in cases:
        with pytest.raises(exc, match=match):
            est.fit(X)


@pytest.mark.parametrize("xp_path", [False, True])
@pytest.mark.parametrize("param", ["copy", "whiten"])
def test_pca_flags_must_be_bools(param, xp_path):
    # PCA(whiten="no") whitened: any truthy value counted as True
    X = _data(50, 10)
    if xp_path:
        import array_api_strict as xs

        X = xs.asarray(X)
    for bad in ("no", 1, None):
        for method in ("fit", "fit_transform"):
            with pytest.raises(TypeError, match=rf"^{param} must be True or False, got"):
                getattr(PCA(2, **{param: bad}), method)(X)
    plain = np.asarray(PCA(2, random_state=0).fit_transform(X))
    flagged = np.asarray(
        PCA(2, random_state=0, **{param: np.bool_(param == "copy")}).fit_transform(X)
    )
    assert_allclose(flagged, plain)


@pytest.mark.parametrize("xp_path", [False, True])
@pytest.mark.parametrize("make", [lambda: PCA(3, whiten=True), lambda: TruncatedSVD(3)])
def test_inverse_transform_validates_its_input(make, xp_path):
    # 1-D input came back 1-D (scikit-learn raises) and a wrong width gave NumPy's matmul
    # message
    X = _data(40, 8)
    wrap = np.asarray
    if xp_path:
        import array_api_strict as xs

        wrap = xs.asarray
    est = make().fit(wrap(X))
    Z = est.transform(wrap(X))
    assert_allclose(np.asarray(est.inverse_transform(Z)), np.asarray(est.inverse_transform(Z)))
    with pytest.raises(ValueError, match="2-D|2D"):
        est.inverse_transform(wrap(np.asarray(Z)[0]))
    with pytest.raises(ValueError, match="2-D|2D"):
        est.inverse_transform(wrap(np.ones((2, 3, 1))))
    with pytest.raises(ValueError, match=r"has 4 columns.*3 components"):
        est.inverse_transform(wrap(np.ones((5, 4))))
    if not xp_path:
        sk = (SkPCA(3, whiten=True) if isinstance(est, PCA) else SkTruncatedSVD(3)).fit(X)
        with pytest.raises(ValueError):
            sk.inverse_transform(np.asarray(Z)[0])
        # lists are still accepted (as array-likes are by scikit-learn)
        assert_allclose(est.inverse_transform(Z.tolist()), est.inverse_transform(Z))


def test_non_finite_rejected():
    X = _data(50, 10)
    X[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN|infinity"):
        PCA(2).fit(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        TruncatedSVD(2).fit(sp.csr_matrix(X))


@pytest.mark.parametrize("solver", ["auto", "randomized", "gram", "full"])
@pytest.mark.parametrize("xp_path", [False, True])
def test_overflowing_centring_is_a_clear_error(solver, xp_path):
    # a column of 1.7e308: its mean overflows and X - mean holds infinities, which scikit-
    # learn's finiteness check of X cannot see. The message names X (not rsvd's A), and the
    # 'full' solver raises instead of never returning (LAPACK's SVD of an infinity loops)
    X = _data(50, 10)
    X[:, 0] = 1.7e308
    if xp_path:
        import array_api_strict as xs

        X = xs.asarray(X)
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match=r"^X contains NaN or infinity"):
            PCA(2, svd_solver=solver).fit(X)


@pytest.mark.parametrize("xp_path", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_explained_variance_ratio_is_scale_invariant(sparse, xp_path):
    # squares of data of 1e300 overflow and of 1e-300 lose their digits: the ratios came
    # out NaN or 0 (scikit-learn's are NaN); now they are those of the data at scale 1, and
    # the variances are the honest inf / 0
    if xp_path and sparse:
        pytest.skip("the array-API path takes cupyx sparse only (CuPy)")
    X = _data(60, 12)
    wrap = sp.csr_matrix if sparse else (lambda a: a)
    if xp_path:
        import array_api_strict as xs

        wrap = xs.asarray
    ests = [lambda: PCA(3, random_state=0), lambda: TruncatedSVD(3, random_state=0)]
    if not sparse:
        ests.append(lambda: PCA(3, svd_solver="full"))
    for make in ests:
        ref = make().fit(wrap(X))
        for c in (1e300, 1e-300):
            with np.errstate(all="raise"):  # no overflow reaches NumPy's warnings
                got = make().fit(wrap(X * c))
            assert_allclose(
                np.asarray(got.explained_variance_ratio_),
                np.asarray(ref.explained_variance_ratio_),
                rtol=1e-10,
            )
            ev = np.asarray(got.explained_variance_)
            assert np.all(ev == (np.inf if c > 1 else 0.0))
            if isinstance(got, PCA):
                assert got.noise_variance_ == (np.inf if c > 1 else 0.0)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_variance_ratios_without_cancellation(fmt):
    # the total variance of sparse input was sum x^2 - n ||mean||^2 in the data's dtype with
    # scipy's float32 mean: float32 data of 1000 + noise got ratio 0.594 for 0.609 and a
    # noise variance 7% high; float32 data of 1e30 overflowed to ratios of 0
    rng = np.random.default_rng(0)
    B = (1000 + rng.standard_normal((20000, 50))).astype(np.float32)
    B[:, :3] += (5 * rng.standard_normal((20000, 1))).astype(np.float32)
    ref = PCA(3, random_state=0).fit(B.astype(np.float64))
    got = PCA(3, random_state=0).fit(sp.csr_matrix(B).asformat(fmt))
    # (the first component is the structure; the next two are noise of a flat spectrum)
    assert got.explained_variance_ratio_[0] == pytest.approx(ref.explained_variance_ratio_[0], 1e-4)
    assert got.noise_variance_ == pytest.approx(ref.noise_variance_, rel=3e-3)
    tref = TruncatedSVD(3, random_state=0).fit(B.astype(np.float64))
    tgot = TruncatedSVD(3, random_state=0).fit(sp.csr_matrix(B).asformat(fmt))
    np.testing.assert_allclose(
        tgot.explained_variance_ratio_[:2], tref.explained_variance_ratio_[:2], rtol=1e-3
    )
    C = (rng.standard_normal((40, 20)) * 1e30).astype(np.float32)
    dense = PCA(3, random_state=0).fit(C).explained_variance_ratio_
    sparse = PCA(3, random_state=0).fit(sp.csr_matrix(C).asformat(fmt))
    np.testing.assert_allclose(sparse.explained_variance_ratio_, dense, rtol=1e-4)
