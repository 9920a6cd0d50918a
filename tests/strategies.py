"""Shared hypothesis strategies: matrices with controlled spectra.

Every matrix is built as ``A = U @ diag(s) @ V.T`` from random orthonormal ``U`` (m x p) and
``V`` (n x p), ``p = min(m, n)``, so the spectrum is known by construction.  Tests still
compare with numpy's SVD of the matrix actually handed to lowdim (after the cast to the
target dtype), never with the constructed ``s`` alone.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

SPECTRA = ("fast", "slow", "flat", "rankdef")
DTYPES = (np.float64, np.float32)
MIN_SIDE = 2
MAX_SIDE = 120


def spectrum(kind: str, p: int, rank: int | None = None) -> np.ndarray:
    """``p`` singular values, descending.

    fast: 2**-i; slow: 1/(1+i); flat: all 1; rankdef: 1/(1+i) for i < rank, zeros after.
    """
    i = np.arange(p, dtype=np.float64)
    if kind == "fast":
        return 2.0**-i
    if kind == "slow":
        return 1.0 / (1.0 + i)
    if kind == "flat":
        return np.ones(p)
    if kind == "rankdef":
        if rank is None or not 0 <= rank <= p:
            raise ValueError("rankdef needs 0 <= rank <= p")
        s = 1.0 / (1.0 + i)
        s[rank:] = 0.0
        return s
    raise ValueError(f"unknown spectrum {kind!r}")


def random_orthonormal(rng: np.random.Generator, m: int, p: int) -> np.ndarray:
    """An m x p matrix with orthonormal columns, Haar-distributed."""
    q, r = np.linalg.qr(rng.standard_normal((m, p)))
    return q * np.sign(np.diag(r))


def build_matrix(m: int, n: int, s: np.ndarray, seed: int, dtype=np.float64) -> np.ndarray:
    """``U @ diag(s) @ V.T`` with random orthonormal U (m x p), V (n x p), cast to dtype."""
    rng = np.random.default_rng(seed)
    p = len(s)
    u = random_orthonormal(rng, m, p)
    v = random_orthonormal(rng, n, p)
    return np.ascontiguousarray(((u * s) @ v.T).astype(dtype))


class Problem:
    """A test matrix and the rank asked of it (a plain class so that hypothesis reports
    the short repr below, not the whole array)."""

    def __init__(self, A: np.ndarray, k: int, kind: str, rank: int, seed: int):
        self.A = A
        self.k = k
        self.kind = kind
        self.rank = rank  # rank by construction (min(m, n) unless rankdef)
        self.seed = seed

    @property
    def dtype(self):
        return self.A.dtype

    def __repr__(self) -> str:
        m, n = self.A.shape
        return (
            f"Problem(A=build_matrix({m}, {n}, spectrum({self.kind!r}, {min(m, n)}, "
            f"{self.rank}), {self.seed}, np.{self.A.dtype}), k={self.k})"
        )

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))


shapes = st.tuples(st.integers(MIN_SIDE, MAX_SIDE), st.integers(MIN_SIDE, MAX_SIDE))
seeds = st.integers(0, 2**32 - 1)


@st.composite
def problems(
    draw,
    kinds=SPECTRA,
    dtypes=DTYPES,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
    max_k: int | None = None,
) -> Problem:
    """A matrix with a controlled spectrum plus a target rank k.

    Tall and wide shapes; for ``rankdef`` the rank r satisfies 1 <= r < k.
    """
    m = draw(st.integers(min_side, max_side), label="m")
    n = draw(st.integers(min_side, max_side), label="n")
    p = min(m, n)
    kind = draw(st.sampled_from(kinds), label="kind")
    dtype = np.dtype(draw(st.sampled_from(dtypes), label="dtype"))
    kmax = p if max_k is None else min(p, max_k)
    if kind == "rankdef":
        k = draw(st.integers(2, max(kmax, 2)), label="k")
        k = min(k, p)
        rank = draw(st.integers(1, k - 1), label="rank")
    else:
        k = draw(st.integers(1, kmax), label="k")
        rank = p
    seed = draw(seeds, label="seed")
    A = build_matrix(m, n, spectrum(kind, p, rank), seed, dtype)
    return Problem(A, k, kind, rank, seed)


@st.composite
def matrices(draw, kinds=SPECTRA, dtypes=DTYPES, min_side=MIN_SIDE, max_side=MAX_SIDE):
    """Just the matrix of :func:`problems` (rankdef with a random rank)."""
    m = draw(st.integers(min_side, max_side))
    n = draw(st.integers(min_side, max_side))
    p = min(m, n)
    kind = draw(st.sampled_from(kinds))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rank = draw(st.integers(1, p)) if kind == "rankdef" else p
    seed = draw(seeds)
    return build_matrix(m, n, spectrum(kind, p, rank), seed, dtype)


def normalized(X) -> np.ndarray:
    """The rows of X scaled to unit l2 norm in float64 (zero rows stay zero): the points the
    self-expressive kernels work on."""
    X = np.asarray(X, dtype=np.float64)
    nrm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, nrm, out=np.zeros_like(X), where=nrm > 0)
