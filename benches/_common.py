"""Test matrices shared by compare.py and the asv benchmarks (deterministic, cheap to build)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular


def decay(r: int, power: float = 1.5) -> np.ndarray:
    """s_i = 1 / (1 + i)^power, i = 0..r-1."""
    return 1.0 / (1.0 + np.arange(r)) ** power


def orthonormal(rng, m, r) -> np.ndarray:
    """Orthonormal basis of a Gaussian (m, r) matrix by Cholesky QR, twice (the Gaussian is
    well conditioned; this is a few GEMMs, much cheaper than LAPACK's QR here)."""
    Q = rng.standard_normal((m, r))
    for _ in range(2):
        L = np.linalg.cholesky(Q.T @ Q)
        Q = solve_triangular(L, Q.T, lower=True).T
    return np.ascontiguousarray(Q)


def make_dense(m, n, dtype=np.float64, rank=400, noise=1e-6, seed=0, block=512):
    """A = (U0 * s) @ V0.T + noise * G with orthonormal U0 (m, r), V0 (n, r), r = min(rank, m, n),
    s_i = 1/(1+i)^1.5 and G Gaussian. Built in row blocks, so the peak memory while building is
    about size(A) + (m + n) r doubles."""
    rng = np.random.default_rng(seed)
    r = min(rank, m, n)
    U0 = orthonormal(rng, m, r)
    V0 = orthonormal(rng, n, r)
    US = U0 * decay(r)
    del U0
    VT = np.ascontiguousarray(V0.T)
    del V0
    A = np.empty((m, n), dtype=dtype)
    for i in range(0, m, block):
        blk = US[i : i + block] @ VT
        blk += noise * rng.standard_normal(blk.shape)
        A[i : i + block] = blk
    return A


def make_tall(m, n, dtype=np.float64, seed=0, block=16384):
    """Tall-skinny A = (Z * s) @ V0.T, Z Gaussian (m, n), V0 orthogonal (n, n), s_i = 1/(1+i)^1.5:
    singular values about sqrt(m) s_i."""
    rng = np.random.default_rng(seed)
    V0 = orthonormal(rng, n, n)
    SVT = decay(n)[:, None] * V0.T
    A = np.empty((m, n), dtype=dtype)
    for i in range(0, m, block):
        A[i : i + block] = rng.standard_normal((min(block, m - i), n)) @ SVT
    return A


def make_sparse(m, n, density=1e-3, dtype=np.float64, seed=0):
    """scipy.sparse.random CSR with uniform [0, 1) values. Seeded with a numpy Generator: an int
    random_state selects the legacy RandomState path, whose sampling without replacement
    allocates a permutation of all m*n positions (37 GiB at 100000 x 50000)."""
    rng = np.random.default_rng(seed)
    return sp.random(m, n, density=density, format="csr", random_state=rng, dtype=dtype)
