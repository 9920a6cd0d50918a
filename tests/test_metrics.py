"""lowdim.metrics and lowdim.datasets: hand-computed cases and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy, connectivity, subspace_preserving_error

labels = st.lists(st.integers(0, 4), min_size=1, max_size=40)


def brute_accuracy(t, p):
    """Best agreement over every injective relabelling of the predicted clusters."""
    t, p = np.asarray(t), np.asarray(p)
    ct, cp = np.unique(t), np.unique(p)
    best = 0
    slots = list(ct) + [None] * len(cp)
    for perm in itertools.permutations(slots, len(cp)):
        mapping = dict(zip(cp, perm, strict=True))
        best = max(best, sum(mapping[b] == a for a, b in zip(t, p, strict=True)))
    return best / len(t)


# ---------------------------------------------------------------- clustering_accuracy
def test_accuracy_hand_cases():
    assert clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 3, 7]) == pytest.approx(5 / 6)
    # more predicted clusters than classes: the surplus ones count as errors
    assert clustering_accuracy([0, 0, 0, 0], [0, 1, 2, 3]) == 0.25
    assert clustering_accuracy(["a", "b", "b"], [2, 1, 1]) == 1.0


@given(st.data())
def test_accuracy_matches_brute_force(data):
    t = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=12))
    p = data.draw(st.lists(st.integers(0, 3), min_size=len(t), max_size=len(t)))
    assert clustering_accuracy(t, p) == pytest.approx(brute_accuracy(t, p))


@given(labels, st.permutations(range(5)), st.data())
def test_accuracy_invariant_under_relabelling_and_symmetric(t, perm, data):
    p = data.draw(st.lists(st.integers(0, 4), min_size=len(t), max_size=len(t)))
    base = clustering_accuracy(t, p)
    relabelled = [perm[v] for v in p]
    assert clustering_accuracy(t, relabelled) == pytest.approx(base)
    assert clustering_accuracy(p, t) == pytest.approx(base)
    assert clustering_accuracy(t, t) == 1.0
    assert 1.0 / len(t) <= base <= 1.0


def test_accuracy_bad_input():
    with pytest.raises(ValueError, match="entries"):
        clustering_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        clustering_accuracy([], [])
    with pytest.raises(ValueError, match="1-D"):
        clustering_accuracy([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="integer"):
        clustering_accuracy([0.5, 1.0], [0, 1])


# ---------------------------------------------------------- subspace_preserving_error
def test_spe_hand_cases():
    C = np.array([[0, 1, 0], [2, 0, 2], [0, 0, 0]], dtype=float)
    assert subspace_preserving_error(C, [0, 0, 1]) == pytest.approx(0.25)
    assert subspace_preserving_error(sp.csr_matrix(C), [0, 0, 1]) == pytest.approx(0.25)
    assert subspace_preserving_error(np.zeros((3, 3)), [0, 1, 2]) == 0.0
    # negative coefficients count by magnitude
    C2 = np.array([[0, -3, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    expected = (1 / 4 + 0 + 1) / 3
    assert subspace_preserving_error(C2, [0, 0, 1]) == pytest.approx(expected)


@given(st.integers(2, 12), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_spe_block_diagonal_is_zero_and_row_scaling_invariant(n, k, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    C = rng.standard_normal((n, n)) * (y[:, None] == y[None, :])
    assert subspace_preserving_error(C, y) == 0.0
    D = rng.standard_normal((n, n))
    scale = rng.uniform(0.1, 10, n)[:, None]
    assert subspace_preserving_error(D * scale, y) == pytest.approx(subspace_preserving_error(D, y))
    assert 0.0 <= subspace_preserving_error(D, y) <= 1.0


# ----------------------------------------------------------------------- connectivity
def test_connectivity_known_graphs():
    for n in (2, 3, 7):
        K = np.ones((n, n)) - np.eye(n)  # complete graph: lambda_2 = n / (n - 1)
        assert connectivity(K, np.zeros(n, int)) == pytest.approx(n / (n - 1))
    # a path on 3 nodes: normalized Laplacian eigenvalues 0, 1, 2
    P = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    assert connectivity(P, [0, 0, 0]) == pytest.approx(1.0)
    # a class split in two components has connectivity 0; min over classes
    two = sp.block_diag([np.ones((2, 2)), np.ones((2, 2))]).toarray()
    assert connectivity(two, [0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-12)
    assert connectivity(two, [0, 0, 1, 1]) == pytest.approx(2.0)
    # an asymmetric representation is symmetrized as |C| + |C|^T
    C = np.array([[0, -1.0], [0, 0]])
    assert connectivity(C, [0, 0]) == pytest.approx(2.0)


def test_connectivity_large_class_uses_sparse_solver():
    n = 1600  # a ring: lambda_2 of the normalized Laplacian = 1 - cos(2 pi / n)
    i = np.arange(n)
    W = sp.csr_matrix((np.ones(n), (i, (i + 1) % n)), shape=(n, n))
    assert connectivity(W, np.zeros(n, int)) == pytest.approx(1 - np.cos(2 * np.pi / n), rel=1e-4)


def test_connectivity_bad_input():
    with pytest.raises(ValueError, match="square"):
        connectivity(np.ones((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="single point"):
        connectivity(np.ones((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        connectivity(np.array([[0, np.nan], [1, 0]]), [0, 0])
    with pytest.raises(ValueError, match="labels_true"):
        subspace_preserving_error(np.ones((2, 2)), [0, 0, 1])


# ------------------------------------------------------------------ union_of_subspaces
def test_union_of_subspaces_structure():
    X, y = union_of_subspaces(4, 3, 12, 25, seed=1, shuffle=False)
    assert X.shape == (100, 12) and y.shape == (100,) and X.dtype == np.float64
    assert np.bincount(y).tolist() == [25] * 4
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    for k in range(4):
        s = np.linalg.svd(X[y == k], compute_uv=False)
        assert s[2] > 1e-3 and s[3] < 1e-12 * s[0]  # exactly rank 3
    X2, y2 = union_of_subspaces(4, 3, 12, 25, seed=1, shuffle=False)
    np.testing.assert_array_equal(X, X2)
    Xs, ys = union_of_subspaces(4, 3, 12, 25, seed=1)
    assert sorted(map(tuple, Xs.round(12))) == sorted(map(tuple, X.round(12)))
    Xn, _ = union_of_subspaces(2, 2, 400, 500, noise=0.1, seed=0, dtype=np.float32)
    assert Xn.dtype == np.float32
    assert np.mean(np.linalg.norm(Xn, axis=1) ** 2) == pytest.approx(1.01, rel=0.01)


def test_union_of_subspaces_bad_input():
    with pytest.raises(ValueError, match="subspace_dim"):
        union_of_subspaces(2, 5, 3, 10)
    with pytest.raises(ValueError, match="noise"):
        union_of_subspaces(2, 1, 3, 10, noise=-1)
    with pytest.raises(TypeError, match="dtype"):
        union_of_subspaces(2, 1, 3, 10, dtype=np.int64)
    with pytest.raises(ValueError, match="n_per_subspace"):
        union_of_subspaces(2, 1, 3, 0)


def test_spe_sums_duplicate_entries():
    # a CSR matrix with unsummed duplicates (1 and -1 at the same place): each stored value
    # counted with its own |value|, so the error was 2/3 for a matrix whose entry is 0
    C = sp.csr_matrix(
        (np.array([1.0, -1.0, 1.0]), np.array([2, 2, 1]), np.array([0, 3, 3, 3])), shape=(3, 3)
    )
    indices = C.indices.copy()
    assert subspace_preserving_error(C, [0, 0, 1]) == subspace_preserving_error(
        C.toarray(), [0, 0, 1]
    )
    np.testing.assert_array_equal(C.indices, indices)  # the caller's matrix is unchanged


def test_mixed_label_types_and_empty_connectivity_are_clear_errors():
    with pytest.raises(TypeError, match="mixes label types"):
        clustering_accuracy(np.array([None, 1, 1], dtype=object), [0, 1, 1])
    with pytest.raises(ValueError, match="no points"):
        connectivity(np.zeros((0, 0)), [])


@given(st.integers(0, 2**32 - 1))
def test_accuracy_with_many_clusters_matches_sparsely(seed):
    # tables above 2^22 cells are matched on their stored counts (the dense K x K table of
    # 8000 singleton clusters took 975 MB): the same optimum as the Hungarian algorithm
    import lowdim.metrics as metrics

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    t = rng.integers(0, int(rng.integers(1, 60)), n)
    p = np.where(rng.random(n) < 0.3, rng.integers(0, 80, n), t * 3 % 70)
    dense = clustering_accuracy(t, p)
    old = metrics._DENSE_MATCHING_CELLS
    metrics._DENSE_MATCHING_CELLS = 0
    try:
        assert clustering_accuracy(t, p) == dense
        assert clustering_accuracy(p, t) == dense
    finally:
        metrics._DENSE_MATCHING_CELLS = old


def test_accuracy_of_many_singleton_clusters():
    n = 20000  # a dense 20000 x 20000 table would be 3.2 GB
    perm = np.random.default_rng(0).permutation(n)
    assert clustering_accuracy(np.arange(n), perm) == 1.0
    assert clustering_accuracy(np.arange(n), perm % 5000) == 5000 / n
