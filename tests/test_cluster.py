"""lowdim.cluster: the estimators and spectral_clustering, end to end."""

from __future__ import annotations

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp
from lowdim.cluster import LSR, SSCOMP, TSC, EnSC, KSubspaces, spectral_clustering
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy, connectivity, subspace_preserving_error
from sklearn.utils.estimator_checks import parametrize_with_checks

SELF_EXPRESSIVE = {
    "ssc-omp": lambda k, **kw: SSCOMP(k, n_nonzero=5, **kw),
    "ensc": lambda k, **kw: EnSC(k, **kw),
    "ensc-lasso": lambda k, **kw: EnSC(k, tau=1.0, **kw),
    "lsr": lambda k, **kw: LSR(k, **kw),
}
ALL = {
    **SELF_EXPRESSIVE,
    "tsc": lambda k, **kw: TSC(k, n_neighbors=8, **kw),
    "kss": lambda k, **kw: KSubspaces(k, 3, **kw),
}


@pytest.fixture(scope="module")
def independent():
    """5 independent 3-dim subspaces of R^30 (15 <= 30), 60 noiseless points each."""
    return union_of_subspaces(5, 3, 30, 60, seed=3)


@pytest.fixture(scope="module")
def noisy():
    return union_of_subspaces(6, 4, 40, 80, noise=0.05, seed=4)


# ------------------------------------------------------------------- exact recovery
@pytest.mark.parametrize("name", sorted(ALL))
def test_exact_recovery_on_independent_subspaces(name, independent):
    X, y = independent
    model = ALL[name](5, random_state=0).fit(X)
    assert model.labels_.shape == (X.shape[0],) and model.labels_.dtype == np.int64
    assert clustering_accuracy(y, model.labels_) == 1.0
    if name in SELF_EXPRESSIVE:
        C = model.representation_matrix_
        assert sp.issparse(C) and C.format == "csr" and C.shape == (300, 300)
        assert C.diagonal().max() == 0 and C.diagonal().min() == 0
        # subspace-preserving: no mass on other subspaces (to rounding)
        assert subspace_preserving_error(C, y) < 1e-8
        assert (C.getnnz(axis=1) >= 1).all()
    if name != "kss":
        W = model.affinity_matrix_
        assert sp.issparse(W) and W.format == "csr"
        assert abs(W - W.T).max() <= 1e-12 * abs(W).max()
        assert connectivity(W, y) > 0


@pytest.mark.parametrize("name", sorted(ALL))
def test_high_accuracy_with_noise(name, noisy):
    X, y = noisy
    model = ALL[name](6, random_state=0)
    if name == "kss":
        model.set_params(subspace_dim=4)
    assert clustering_accuracy(y, model.fit_predict(X)) >= 0.95


def test_ssc_omp_representation_is_sparse_and_fits_the_points(independent):
    X, y = independent
    model = SSCOMP(5, n_nonzero=4, random_state=0).fit(X)
    C = model.representation_matrix_
    assert C.getnnz(axis=1).max() <= 4
    # noiseless 3-dim subspaces: 3 atoms represent each unit-norm point exactly
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(C @ Xn, Xn, atol=1e-8)


def test_kss_attributes_and_objective(noisy):
    X, y = noisy
    model = KSubspaces(6, 4, random_state=0).fit(X)
    B = model.bases_
    assert B.shape == (6, 40, 4)
    for k in range(6):
        np.testing.assert_allclose(B[k].T @ B[k], np.eye(4), atol=1e-10)
    res = [np.sum((X[i] - B[lab] @ (B[lab].T @ X[i])) ** 2) for i, lab in enumerate(model.labels_)]
    assert model.objective_ == pytest.approx(sum(res), rel=1e-8)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kss_is_scale_invariant(dtype):
    # residuals are sums of squares: entries of 1e-200 underflowed (every point in one
    # cluster), 1e200 overflowed (failed eigendecomposition); now the labels and bases of c X
    # are those of X, the objective scales by c^2 and predict agrees
    X, y = union_of_subspaces(3, 2, 10, 40, noise=0.01, seed=0)
    X = X.astype(dtype)
    ref = KSubspaces(3, 2, random_state=0).fit(X)
    scales = [2.0**-70, 2.0**70] if dtype == np.float32 else [1e-200, 2.0**-420, 1e200]
    for c in scales:
        Xc = (X.astype(np.float64) * c).astype(dtype)
        model = KSubspaces(3, 2, random_state=0).fit(Xc)
        np.testing.assert_array_equal(model.labels_, ref.labels_)
        np.testing.assert_allclose(model.bases_, ref.bases_, rtol=1e-5, atol=1e-6)
        assert model.objective_ == pytest.approx(ref.objective_ * c * c, rel=1e-4)
        np.testing.assert_array_equal(model.predict(Xc), ref.labels_)
        # in-range data are not copied or changed: the fitted model predicts them too
        np.testing.assert_array_equal(ref.predict(Xc), ref.labels_)


# ----------------------------------------------------------------- n_clusters = None
@pytest.mark.parametrize("name", ["ensc", "lsr"])
def test_number_of_clusters_from_eigengap(name, independent):
    # (SSC-OMP and TSC graphs of this small sample are barely connected inside each subspace,
    # connectivity < 0.07, so the eigengap heuristic is not reliable for them here.)
    X, y = independent
    model = ALL[name](None, random_state=0).fit(X)
    assert model.n_clusters_ == 5
    assert clustering_accuracy(y, model.labels_) == 1.0
    ev = model.eigenvalues_
    assert np.all(np.diff(ev) <= 1e-9) and ev[0] == pytest.approx(1.0)


# ------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("name", sorted(ALL))
def test_reproducible_under_seed_and_thread_count(name, noisy, restore_threads):
    X, _ = noisy
    lowdim.set_num_threads(1)
    a = ALL[name](6, random_state=7).fit(X)
    lowdim.set_num_threads(2)
    b = ALL[name](6, random_state=7).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    if name in SELF_EXPRESSIVE:
        assert (a.representation_matrix_ != b.representation_matrix_).nnz == 0


@pytest.mark.parametrize("tau", [None, 0.0])
def test_closed_forms_with_a_large_eigendecomposition_agree_across_thread_counts(
    tau, restore_threads
):
    # LSR / EnSC tau=0 on 400 x 600 points eigendecompose the 400 x 400 Gram matrix, which
    # faer splits over the pool above a few hundred: bitwise identical at a thread count,
    # equal to rounding (not bitwise) across thread counts, as the README says
    X, _ = union_of_subspaces(4, 6, 600, 100, noise=0.05, seed=3)
    fits = {}
    for n in (1, 2, 1):
        lowdim.set_num_threads(n)
        est = LSR(4, random_state=0) if tau is None else EnSC(4, tau=tau, random_state=0)
        fits.setdefault(n, []).append(est.fit(X))
    a, again = fits[1]
    assert (a.affinity_matrix_ != again.affinity_matrix_).nnz == 0
    b = fits[2][0]
    np.testing.assert_array_equal(a.labels_, b.labels_)
    W1, W2 = a.affinity_matrix_.toarray(), b.affinity_matrix_.toarray()
    np.testing.assert_allclose(W2, W1, rtol=0, atol=1e-10 * np.abs(W1).max())


@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_is_kept_and_agrees_with_float64(name, independent):
    X, y = independent
    m32 = ALL[name](5, random_state=0).fit(X.astype(np.float32))
    assert clustering_accuracy(y, m32.labels_) == 1.0
    if name in SELF_EXPRESSIVE:
        assert m32.representation_matrix_.dtype == np.float32
        assert m32.affinity_matrix_.dtype == np.float32
    if name == "kss":
        assert m32.bases_.dtype == np.float32


def test_strided_and_fortran_input_give_the_same_result(independent):
    X, _ = independent
    ref = SSCOMP(5, random_state=0).fit(X).representation_matrix_
    for variant in (np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2]):
        C = SSCOMP(5, random_state=0).fit(variant).representation_matrix_
        assert abs(C - ref).max() < 1e-12


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", sorted(ALL))
def test_bad_input_raises_clear_errors(name):
    X, _ = union_of_subspaces(2, 2, 6, 10, seed=0)
    est = ALL[name]
    with pytest.raises(ValueError, match="NaN"):
        Xn = X.copy()
        Xn[3, 2] = np.nan
        est(2).fit(Xn)
    with pytest.raises(ValueError, match="inf"):
        Xi = X.copy()
        Xi[0, 0] = np.inf
        est(2).fit(Xi)
    with pytest.raises(ValueError, match="2D"):
        est(2).fit(X[0])
    with pytest.raises(ValueError, match="n_clusters"):
        est(21).fit(X)
    with pytest.raises(ValueError, match="minimum of 2"):
        est(1).fit(X[:1])
    with pytest.raises(ValueError, match="[Cc]omplex"):
        est(2).fit(X.astype(complex))
    labels = est(2, random_state=0).fit(X.astype(np.int64) * 0 + (X > 0)).labels_
    assert labels.shape == (20,)


def test_parameter_errors(independent):
    X, _ = independent
    with pytest.raises(ValueError, match="n_nonzero"):
        SSCOMP(2, n_nonzero=300).fit(X)
    with pytest.raises(ValueError, match="n_nonzero"):
        SSCOMP(2, n_nonzero=0).fit(X)
    for tol in (1.0, 2.0):  # the unit-norm residual starts at 1: nothing would be selected
        with pytest.raises(ValueError, match="tol=.* must be < 1"):
            SSCOMP(2, tol=tol).fit(X)
    assert SSCOMP(2, tol=0.99).fit(X).representation_matrix_.nnz > 0
    with pytest.raises(ValueError, match="tau"):
        EnSC(2, tau=1.5).fit(X)
    with pytest.raises(ValueError, match="gamma"):
        EnSC(2, gamma=-1).fit(X)
    with pytest.raises(ValueError, match="gamma"):
        LSR(2, gamma=0).fit(X)
    with pytest.raises(ValueError, match="subspace_dim"):
        KSubspaces(2, 31).fit(X)
    with pytest.raises(TypeError, match="n_nonzero"):
        SSCOMP(2, n_nonzero=2.5).fit(X)


def test_ensc_tau_zero_works(independent):
    # tau = 0 is ridge regression: the gamma contract uses alpha_j = gamma / mu_j
    X, y = independent
    model = EnSC(5, tau=0.0, random_state=0).fit(X)
    assert np.all(np.isfinite(model.representation_matrix_.data))
    assert clustering_accuracy(y, model.labels_) == 1.0


@pytest.mark.parametrize(
    "data, gamma, support",
    [
        ((4, 2, 8, 30, 0.3, 18), 200.0, 7),  # the 1e14 coefficients of a 1e16 line-search step
        ((4, 5, 6, 33, 0.001, 5), 200.0, 7),  # 132 points in R^6: any 7 are dependent
    ],
)
def test_ensc_lasso_with_singular_active_sets_is_optimal(data, gamma, support):
    # tau = 1 (no ridge term) and active sets larger than the ambient dimension: singular
    # sign-fixed systems in feature-sign search. The result must be the elastic net's optimum
    # of every row (the docstring's objective on unit-norm points, alpha_j = gamma tau / mu_j):
    # alpha <x_i, r> = tau sign(c_i) + (1 - tau) c_i where c_i != 0, |alpha <x_i, r>| <= tau
    # elsewhere, r = x_j - sum_i c_i x_i.
    *args, noise, seed = data
    X, _ = union_of_subspaces(*args, noise=noise, seed=seed)
    tau = 1.0
    model = EnSC(4, tau=tau, gamma=gamma, support_size=support, n_nonzero=500).fit(X)
    C = model.representation_matrix_.toarray()  # n_nonzero > N: nothing truncated
    assert model.n_iter_ < 40
    assert np.abs(C).max() < 2.0
    assert np.all(np.diag(C) == 0)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cor = np.abs(Xn @ Xn.T)
    np.fill_diagonal(cor, 0.0)
    alpha = gamma * tau / cor.max(axis=1)
    G = alpha[:, None] * ((Xn - C @ Xn) @ Xn.T)  # G[j, i] = alpha_j <x_i, r_j>
    np.fill_diagonal(G, 0.0)
    nz = C != 0
    on = np.abs(G - tau * np.sign(C) - (1 - tau) * C)[nz]
    off = np.abs(G)[~nz] - tau
    assert max(on.max(), off.max()) < 1e-8


@pytest.mark.parametrize("name", ["ssc-omp", "ensc", "lsr", "tsc"])
def test_progress_counts_blocks_and_a_raising_callback_stops(name, monkeypatch):
    monkeypatch.setenv("LOWDIM_CHUNK_ROWS", "32")  # 300 points: 10 blocks
    X, y = union_of_subspaces(5, 3, 30, 60, seed=3)
    seen = []
    model = ALL[name](5, random_state=0, progress=lambda d, t: seen.append((d, t))).fit(X)
    assert seen == [(d, 10) for d in range(1, 11)]
    assert clustering_accuracy(y, model.labels_) == 1.0

    class Stop(Exception):
        pass

    def stop(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        ALL[name](5, progress=stop).fit(X)
    with pytest.raises(TypeError, match="progress"):
        ALL[name](5, progress="yes").fit(X)


def test_zero_points_do_not_crash():
    X, _ = union_of_subspaces(3, 2, 10, 20, seed=0)
    X[[0, 7]] = 0.0
    for name in ("ssc-omp", "ensc", "lsr", "tsc"):
        labels = ALL[name](3, random_state=0).fit_predict(X)
        assert labels.shape == (60,)


def test_a_subnormal_point_does_not_empty_the_representation():
    # the unit-norm scaling 1 / (max |x| ||x / max|x|||) overflowed for a point of subnormal
    # entries (1e-310): its row became inf/NaN and LSR returned an empty representation
    # (accuracy 0.38), SSC-OMP lost edges of other points
    X, y = union_of_subspaces(3, 2, 10, 40, seed=0)
    Xs = X.copy()
    Xs[0] *= 1e-310
    for name in ("ssc-omp", "lsr", "ensc"):
        ref = ALL[name](3, random_state=0).fit(X)
        got = ALL[name](3, random_state=0).fit(Xs)
        assert got.representation_matrix_.nnz == ref.representation_matrix_.nnz, name
        np.testing.assert_allclose(
            got.representation_matrix_.toarray(), ref.representation_matrix_.toarray(), atol=1e-6
        )
        assert clustering_accuracy(y, got.labels_) == clustering_accuracy(y, ref.labels_)


def test_ensc_runs_out_of_rounds_with_a_warning_and_rejects_a_useless_gamma():
    from sklearn.exceptions import ConvergenceWarning

    X, _ = union_of_subspaces(3, 5, 20, 100, noise=0.1, seed=0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        EnSC(3, support_size=1, max_iter=1, random_state=0).fit(X)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        EnSC(3, random_state=0).fit(X)  # the defaults converge
        EnSC(3, tau=0.0, max_iter=1, random_state=0).fit(X)  # closed form: no rounds
    # gamma <= 1 with tau > 0 gives c = 0 for every point (the gamma contract): labels of an
    # edgeless graph, silently, before
    with pytest.raises(ValueError, match="gamma"):
        EnSC(3, gamma=0.5).fit(X)
    EnSC(3, gamma=0.5, tau=0.0, random_state=0).fit(X)  # ridge: any gamma > 0 works


@pytest.mark.parametrize("name", sorted(ALL))
def test_boolean_and_complex_points_are_rejected(name):
    X, _ = union_of_subspaces(3, 2, 10, 20, seed=0)
    with pytest.raises(TypeError, match="boolean"):
        ALL[name](3).fit(X > 0)
    with pytest.raises(ValueError, match="Complex data not supported") as info:
        ALL[name](3).fit(X.astype(complex))
    assert len(str(info.value)) < 200  # not scikit-learn's message with the whole array


# ------------------------------------------------------------ spectral_clustering
def test_spectral_clustering_weights_near_the_float64_limit():
    # the degrees of weights of 1e308 summed to infinity: S = 0, eigenvalues [0, 0] and
    # one block split, silently
    tri = np.ones((3, 3)) - np.eye(3)
    ref = spectral_clustering(sp.block_diag([tri, tri]).tocsr(), 2, random_state=0)
    for c in (1e308, 1e-308):
        W = sp.block_diag([tri * c] * 2).tocsr()
        labels, ev = spectral_clustering(W, 2, random_state=0, return_eigenvalues=True)
        np.testing.assert_array_equal(labels, ref)
        np.testing.assert_allclose(ev, 1.0, atol=1e-8)


def test_spectral_clustering_leaves_the_callers_matrix_alone():
    # sp.csr_matrix shares the caller's arrays and the check sorted them in place (and
    # failed on read-only arrays with "WRITEBACKIFCOPY base is read-only")
    indices = np.array([2, 1, 2, 0, 1, 0, 5, 4, 5, 3, 4, 3])
    W = sp.csr_matrix((np.ones(12), indices.copy(), np.arange(0, 13, 2)), shape=(6, 6))
    labels = spectral_clustering(W, 2, random_state=0)
    np.testing.assert_array_equal(W.indices, indices)
    for a in (W.data, W.indices, W.indptr):
        a.flags.writeable = False
    np.testing.assert_array_equal(spectral_clustering(W, 2, random_state=0), labels)
    assert clustering_accuracy([0, 0, 0, 1, 1, 1], labels) == 1.0


def test_spectral_clustering_of_an_edgeless_graph_warns():
    with pytest.warns(RuntimeWarning, match="no edges"):
        spectral_clustering(sp.eye(5).tocsr(), 2, random_state=0)


def test_spectral_clustering_blocks_and_eigengap():
    rng = np.random.default_rng(0)
    sizes = [30, 50, 20]
    blocks = [sp.random(s, s, density=0.3, random_state=rng) for s in sizes]
    W = sp.block_diag([b + b.T + sp.eye(s) for b, s in zip(blocks, sizes, strict=True)])
    perm = rng.permutation(100)
    W = sp.csr_matrix(W)[perm][:, perm]
    y = np.repeat([0, 1, 2], sizes)[perm]
    labels = spectral_clustering(W, 3, random_state=0)
    assert clustering_accuracy(y, labels) == 1.0
    assert labels[0] == 0  # canonical numbering: order of first appearance
    labels, ev = spectral_clustering(W, None, random_state=0, return_eigenvalues=True)
    assert labels.max() == 2
    np.testing.assert_allclose(ev[:3], 1.0, atol=1e-8)
    assert ev[3] < 0.99
    dense = spectral_clustering(W.toarray(), 3, random_state=0)
    np.testing.assert_array_equal(dense, spectral_clustering(W, 3, random_state=0))


def test_spectral_clustering_bad_affinity():
    W = sp.csr_matrix(np.array([[0, 1.0], [0.5, 0]]))
    with pytest.raises(ValueError, match="symmetric"):
        spectral_clustering(W, 2)
    with pytest.raises(ValueError, match="negative"):
        spectral_clustering(-abs(W + W.T), 2)
    with pytest.raises(ValueError, match="square"):
        spectral_clustering(np.ones((2, 3)), 2)
    with pytest.raises(ValueError, match="n_clusters"):
        spectral_clustering(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="NaN"):
        spectral_clustering(np.array([[0, np.nan], [np.nan, 0]]), 1)


# -------------------------------------------------------------- scikit-learn checks
def _expected_failures(estimator):
    if isinstance(estimator, SSCOMP):
        return {
            "check_clustering": (
                "the check clusters 2-D Gaussian blobs; all of them lie in one 2-D subspace, "
                "which is not the model of subspace clustering (ARI ~0 is the right answer)"
            ),
        }
    return {}


@parametrize_with_checks(
    [
        SSCOMP(n_clusters=3, n_nonzero=2, random_state=0),
        EnSC(n_clusters=3, random_state=0),
        LSR(n_clusters=3, random_state=0),
        TSC(n_clusters=3, random_state=0),
        KSubspaces(n_clusters=3, subspace_dim=1, random_state=0),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------- memory layouts the kernels must not view
def _packed_field(X):
    """X as the float field of a packed record array: element strides of 9 bytes, which are
    not a whole number of float64s (the bindings divide byte strides by the item size)."""
    rec = np.zeros(X.shape, dtype=[("x", X.dtype), ("tag", np.uint8)])
    rec["x"] = X
    return rec["x"]


def _misaligned(X):
    """X in a buffer one byte off an 8-byte boundary (contiguous, not aligned)."""
    buf = np.zeros(X.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf[1:].data, dtype=X.dtype).reshape(X.shape)
    out[...] = X
    return out


@pytest.mark.parametrize("layout", [_packed_field, _misaligned])
@pytest.mark.parametrize("name", sorted(ALL))
def test_unaligned_points_give_the_contiguous_result(name, layout, independent):
    # scikit-learn's validation keeps such views; they reached the Rust kernels as they were
    # and the packed field gave garbage labels (accuracy about 0.4), silently
    X, y = independent
    V = layout(X)
    assert not V.flags.aligned
    ref = ALL[name](5, random_state=0).fit(X)
    est = ALL[name](5, random_state=0).fit(V)
    np.testing.assert_array_equal(est.labels_, ref.labels_)
    assert clustering_accuracy(y, est.labels_) == 1.0


def _misaligned_sparse(W, part, cls=sp.csr_matrix):
    parts = {"data": W.data, "indices": W.indices, "indptr": W.indptr}
    parts[part] = _misaligned(parts[part])
    return cls((parts["data"], parts["indices"], parts["indptr"]), shape=W.shape)


@pytest.mark.parametrize("part", ["data", "indices", "indptr"])
def test_sparse_input_with_misaligned_arrays(part, independent):
    # a valid scipy matrix whose arrays sit at an odd address: "TypeError: CSR data must be
    # a contiguous 1-D array" (they are contiguous) from spectral_clustering, rsvd, PCA
    X, _ = independent
    W = TSC(5, n_neighbors=8, random_state=0).fit(X).affinity_matrix_
    Wm = _misaligned_sparse(W, part)
    assert not getattr(Wm, part).flags.aligned
    np.testing.assert_array_equal(
        spectral_clustering(Wm, 5, random_state=0), spectral_clustering(W, 5, random_state=0)
    )
    ref = lowdim.rsvd(W, 3, seed=0).S
    # W is symmetric: its CSR arrays read as CSC are W^T = W
    for M in (Wm, _misaligned_sparse(W, part, sp.csc_matrix)):
        np.testing.assert_allclose(lowdim.rsvd(M, 3, seed=0).S, ref, rtol=1e-10)


def test_boolean_flags_must_be_bools():
    # a truthy string such as return_eigenvalues="no" or shuffle="no" counted as True
    block = np.ones((3, 3)) - np.eye(3)
    W = sp.block_diag([block, block]).tocsr()
    with pytest.raises(TypeError, match=r"^return_eigenvalues must be True or False, got 'no'"):
        spectral_clustering(W, 2, random_state=0, return_eigenvalues="no")
    labels, ev = spectral_clustering(W, 2, random_state=0, return_eigenvalues=np.True_)
    assert labels.shape == (6,) and ev.ndim == 1
    with pytest.raises(TypeError, match=r"^shuffle must be True or False, got 'no'"):
        union_of_subspaces(2, 1, 3, 4, shuffle="no", seed=0)
    _, y = union_of_subspaces(2, 1, 3, 4, shuffle=np.False_, seed=0)
    assert y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
