"""asv benchmarks for lowdim: time_ (wall clock), peakmem_ (process peak RSS) and track_
(accuracy relative to scikit-learn: lowdim error / sklearn error, 1.0 = as accurate).

Run from the repository root:  asv run --python=same --quick --bench bench_svd
Every benchmark stays well under 10 s at two threads.
"""

from __future__ import annotations

import lowdim
import numpy as np
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD
from sklearn.utils.extmath import randomized_svd

from ._common import make_dense, make_sparse, make_tall

ERR_ITER = 30


def _err(A, res) -> float:
    U, S, Vh = res
    return lowdim.svd_error(A, U, S, Vh, n_iter=ERR_ITER, seed=0)


def _proj_err(X, components) -> float:
    """||X - X V^T V||_F for orthonormal rows V, without forming the residual."""
    XV = X @ components.T
    total = X.multiply(X).sum() if hasattr(X, "multiply") else np.einsum("ij,ij->", X, X)
    return float(np.sqrt(max(total - np.einsum("ij,ij->", XV, XV), 0.0)))


class _Base:
    number = 1
    repeat = (1, 5, 8.0)
    warmup_time = 0.0
    timeout = 120


class RsvdDense(_Base):
    """Fixed rank, decaying spectrum, 4000 x 2000, k=50, 4 power iterations."""

    params = ["float64", "float32"]
    param_names = ["dtype"]
    m, n, k, q = 4000, 2000, 50, 4

    def setup(self, dtype):
        self.A = make_dense(self.m, self.n, np.dtype(dtype))

    def _run(self):
        return lowdim.rsvd(self.A, self.k, n_iter=self.q, seed=0, solver="randomized")

    def time_rsvd(self, dtype):
        self._run()

    def peakmem_rsvd(self, dtype):
        self._run()

    def track_error_vs_sklearn(self, dtype):
        sk = randomized_svd(self.A, self.k, n_iter=self.q, random_state=0)
        return _err(self.A, self._run()) / _err(self.A, sk)

    track_error_vs_sklearn.unit = "ratio"


class RsvdDenseFloat32Iterations(RsvdDense):
    """RsvdDense in float64 with the power iterations in float32 (power_iteration_dtype)."""

    params = ["float64"]

    def _run(self):
        return lowdim.rsvd(
            self.A,
            self.k,
            n_iter=self.q,
            seed=0,
            solver="randomized",
            power_iteration_dtype="float32",
        )


class RsvdTallSkinny(_Base):
    """100000 x 100, k=20, solver auto (Gram + eigh)."""

    m, n, k = 100000, 100, 20

    def setup(self):
        self.A = make_tall(self.m, self.n)

    def _run(self):
        return lowdim.rsvd(self.A, self.k, seed=0)

    def time_rsvd(self):
        self._run()

    def peakmem_rsvd(self):
        self._run()

    def track_error_vs_sklearn(self):
        sk = randomized_svd(self.A, self.k, random_state=0)
        return _err(self.A, self._run()) / _err(self.A, sk)

    track_error_vs_sklearn.unit = "ratio"


class RsvdSparse(_Base):
    """CSR 50000 x 20000, density 1e-3 (1e6 nonzeros), k=50, 4 power iterations."""

    m, n, k, q = 50000, 20000, 50, 4

    def setup(self):
        self.A = make_sparse(self.m, self.n)

    def _run(self):
        return lowdim.rsvd(self.A, self.k, n_iter=self.q, seed=0)

    def time_rsvd(self):
        self._run()

    def peakmem_rsvd(self):
        self._run()

    def track_error_vs_sklearn(self):
        sk = randomized_svd(self.A, self.k, n_iter=self.q, random_state=0)
        return _err(self.A, self._run()) / _err(self.A, sk)

    track_error_vs_sklearn.unit = "ratio"


class RsvdTol(_Base):
    """Adaptive rank: tol=1e-2 (relative Frobenius) on the dense 4000 x 2000 f64 matrix."""

    tol = 1e-2

    def setup(self):
        self.A = make_dense(4000, 2000)

    def _run(self):
        return lowdim.rsvd(self.A, tol=self.tol, seed=0)

    def time_rsvd_tol(self):
        self._run()

    def peakmem_rsvd_tol(self):
        self._run()

    def track_rank(self):
        return len(self._run().S)

    track_rank.unit = "rank"

    def track_rel_error(self):
        return self._run().rel_error

    track_rel_error.unit = "rel. Frobenius error"

    def track_error_vs_sklearn(self):
        """Spectral error vs sklearn's randomized_svd at the rank lowdim chose."""
        res = self._run()
        sk = randomized_svd(self.A, len(res.S), n_iter=4, random_state=0)
        return _err(self.A, res) / _err(self.A, sk)

    track_error_vs_sklearn.unit = "ratio"


class PCAFit(_Base):
    """PCA(n_components=50) on a dense 4000 x 2000 f64 matrix (solver auto)."""

    def setup(self):
        self.X = make_dense(4000, 2000)

    def _fit(self):
        return lowdim.PCA(n_components=50, random_state=0).fit(self.X)

    def time_fit(self):
        self._fit()

    def peakmem_fit(self):
        self._fit()

    def track_error_vs_sklearn(self):
        """||Xc - Xc V^T V||_F, lowdim / sklearn PCA(svd_solver='randomized')."""
        Xc = self.X - self.X.mean(axis=0)
        sk = SkPCA(n_components=50, svd_solver="randomized", random_state=0).fit(self.X)
        return _proj_err(Xc, self._fit().components_) / _proj_err(Xc, sk.components_)

    track_error_vs_sklearn.unit = "ratio"


class TruncatedSVDSparse(_Base):
    """TruncatedSVD(n_components=50) on CSR 30000 x 15000 (4.5e5 nonzeros)."""

    def setup(self):
        self.X = make_sparse(30000, 15000)

    def _fit(self):
        return lowdim.TruncatedSVD(n_components=50, random_state=0).fit(self.X)

    def time_fit(self):
        self._fit()

    def peakmem_fit(self):
        self._fit()

    def track_error_vs_sklearn(self):
        """||X - X V^T V||_F, lowdim / sklearn TruncatedSVD (both n_iter=5)."""
        sk = SkTruncatedSVD(n_components=50, random_state=0).fit(self.X)
        return _proj_err(self.X, self._fit().components_) / _proj_err(self.X, sk.components_)

    track_error_vs_sklearn.unit = "ratio"
