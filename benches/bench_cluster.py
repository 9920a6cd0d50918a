"""asv benchmarks of lowdim's subspace clustering (each call well under 10 s).

Run with asv (``asv run``) or directly: ``python benches/bench_cluster.py``.
"""

from __future__ import annotations

from lowdim.cluster import LSR, SSCOMP, TSC, EnSC, KSubspaces, spectral_clustering
from lowdim.datasets import union_of_subspaces


class SubspaceClustering:
    """The issue's synthetic case: 10 x 6-dim subspaces of R^50, noise 0.01, 20,000 points."""

    timeout = 120

    def setup(self):
        self.X, self.y = union_of_subspaces(10, 6, 50, 2000, noise=0.01, seed=0)
        self.W = SSCOMP(10, random_state=0).fit(self.X).affinity_matrix_

    def time_ssc_omp(self):
        SSCOMP(10, n_nonzero=10, random_state=0).fit(self.X)

    def time_ensc(self):
        EnSC(10, random_state=0).fit(self.X)

    def time_lsr(self):
        LSR(10, random_state=0).fit(self.X)

    def time_tsc(self):
        TSC(10, random_state=0).fit(self.X)

    def time_k_subspaces(self):
        KSubspaces(10, 6, random_state=0).fit(self.X)

    def time_spectral_clustering(self):
        spectral_clustering(self.W, 10, random_state=0)

    def peakmem_ssc_omp(self):
        SSCOMP(10, n_nonzero=10, random_state=0).fit(self.X)


if __name__ == "__main__":
    import time

    b = SubspaceClustering()
    b.setup()
    for name in sorted(dir(b)):
        if name.startswith(("time_", "peakmem_")):
            t = time.perf_counter()
            getattr(b, name)()
            print(f"{name:<28} {time.perf_counter() - t:8.3f} s")
