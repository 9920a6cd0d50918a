"""cupy.linalg.svd (full) of the 20000^2 float32 test matrix of compare_gpu.py, for scale only
(run separately so that a slow full SVD cannot hold up the other GPU benchmarks).

    python benches/gpu_full_svd.py [n]

Everything runs under ``main()``: asv imports every module of ``benches/`` to discover the
benchmarks, on machines without CuPy too.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    import cupy as cp

    sys.path.insert(0, "benches")
    from compare_gpu import _low_rank

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    A = _low_rank(cp, n, n, 200, cp.float32)
    cp.cuda.Device().synchronize()
    t = time.perf_counter()
    cp.linalg.svd(A, full_matrices=False)
    cp.cuda.Device().synchronize()
    print(f"cupy.linalg.svd (full) {n}x{n} float32: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
