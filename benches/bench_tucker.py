"""asv-style benchmarks of lowdim's Tucker kernels (each call well under 10 s).

Run with asv (``asv run``) or directly: ``python benches/bench_tucker.py`` times every
``time_*`` method once and prints the peak RSS of each ``peakmem_*`` method.
"""

from __future__ import annotations

import lowdim
import numpy as np


def _low_rank(shape, rank, noise, dtype, seed=0):
    rng = np.random.default_rng(seed)
    core = rng.standard_normal((rank,) * len(shape))
    fs = [np.linalg.qr(rng.standard_normal((n, rank)))[0] for n in shape]
    X = lowdim.tucker_to_tensor(core, fs)
    X += noise * np.linalg.norm(X.ravel()) / np.sqrt(X.size) * rng.standard_normal(shape)
    return X.astype(dtype, copy=False)


class Tucker:
    """200^3 float64 rank 10 and 60^4 float32 rank 8 (the issue's cases)."""

    timeout = 60

    def setup(self):
        self.X3 = _low_rank((200, 200, 200), 10, 0.1, np.float64)
        self.X4 = _low_rank((60, 60, 60, 60), 8, 0.1, np.float32)
        T = lowdim.tucker(self.X3, 10)
        self.core, self.factors = T.core, T.factors
        rng = np.random.default_rng(1)
        self.fl_core = rng.standard_normal((16, 16, 2, 2)).astype(np.float32)
        self.fl_factors = [
            rng.standard_normal((n, r)).astype(np.float32)
            for n, r in zip((256, 256, 3, 3), self.fl_core.shape, strict=True)
        ]
        self.out = np.empty((200, 200, 200))

    def time_sthosvd_200_f64(self):
        lowdim.tucker(self.X3, 10)

    def time_hosvd_200_f64(self):
        lowdim.tucker(self.X3, 10, method="hosvd")

    def time_hooi_200_f64(self):
        lowdim.tucker(self.X3, 10, method="hooi")

    def time_sthosvd_tol_200_f64(self):
        lowdim.tucker(self.X3, tol=0.2)

    def time_sthosvd_60_f32(self):
        lowdim.tucker(self.X4, 8)

    def time_hooi_60_f32(self):
        lowdim.tucker(self.X4, 8, method="hooi")

    def time_tucker_to_tensor_200(self):
        lowdim.tucker_to_tensor(self.core, self.factors)

    def time_tucker_to_tensor_200_out(self):
        lowdim.tucker_to_tensor(self.core, self.factors, out=self.out)

    def time_tucker_to_tensor_flora_conv(self):
        lowdim.tucker_to_tensor(self.fl_core, self.fl_factors)

    def time_mode_product_middle(self):
        lowdim.mode_product(self.X3, self.factors[1], 1, transpose=True)

    def peakmem_sthosvd_200_f64(self):
        lowdim.tucker(self.X3, 10)

    def peakmem_hooi_200_f64(self):
        lowdim.tucker(self.X3, 10, method="hooi")

    def peakmem_sthosvd_60_f32(self):
        lowdim.tucker(self.X4, 8)


if __name__ == "__main__":
    import resource
    import time

    b = Tucker()
    b.setup()
    for name in sorted(dir(b)):
        if name.startswith("time_"):
            t = time.perf_counter()
            getattr(b, name)()
            print(f"{name:36s} {1e3 * (time.perf_counter() - t):9.1f} ms")
    for name in sorted(dir(b)):
        if name.startswith("peakmem_"):
            getattr(b, name)()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{name:36s} {rss:9.0f} MiB (process peak so far)")
