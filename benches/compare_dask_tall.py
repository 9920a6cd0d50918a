"""Tall-skinny dask arrays: lowdim.rsvd's "auto" (the Gram route: two passes) vs its randomized
solver, dask.array.linalg.svd_compressed and dask.array.linalg.svd (TSQR, exact), same run.

A 500000 x 100 float64 matrix with singular values decaying from 1 to 1e-3 (chunks of 50000
rows, generated and persisted in the workers), k=10, on a ``distributed.LocalCluster`` of
``--workers`` single-threaded worker processes. Prints a markdown table: best-of-``--repeat``
wall time, the ratio to lowdim's "auto", and the largest error of the k singular values
relative to the largest one (against numpy.linalg.svd of the same matrix).

    python benches/compare_dask_tall.py --repeat 3
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da
import lowdim
import numpy as np
from distributed import Client, LocalCluster


def _chunk(n, seed, block_info=None):
    (r0, r1), _ = block_info[None]["array-location"]
    rng = np.random.default_rng([seed, r0])
    return rng.standard_normal((r1 - r0, n)) * np.logspace(0, -3, n)[None, :]


def make(m, n, chunk_rows, seed=0):
    return da.map_blocks(
        _chunk, n, seed, chunks=((chunk_rows,) * (m // chunk_rows), (n,)), dtype=np.float64
    )


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--cols", type=int, default=100)
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    k = a.k
    with (
        LocalCluster(
            n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        A = make(a.rows, a.cols, a.chunk_rows).persist()
        s = np.linalg.svd(A.compute(), compute_uv=False)[:k]

        def err(S):
            return float(np.abs(np.asarray(S)[:k] - s).max() / s[0])

        runs = {
            'lowdim rsvd, solver="auto"': lambda: lowdim.rsvd(A, k, seed=0, compute=True),
            'lowdim rsvd, solver="randomized"': lambda: lowdim.rsvd(
                A, k, seed=0, compute=True, solver="randomized"
            ),
            "dask svd_compressed (n_power_iter=4)": lambda: dask.compute(
                *da.linalg.svd_compressed(A, k, n_power_iter=4, seed=0)
            ),
            "dask linalg.svd (TSQR, exact)": lambda: dask.compute(*da.linalg.svd(A)),
        }
        rows = []
        for name, fn in runs.items():
            t, out = best(fn, a.repeat)
            S = out.S if hasattr(out, "S") else out[1]
            solver = f" ({out.solver})" if hasattr(out, "solver") else ""
            rows.append((name + solver, t, err(S)))
    t0 = rows[0][1]
    print(
        f"{a.rows} x {a.cols} float64, chunks of {a.chunk_rows} rows, k={k}, "
        f"LocalCluster: {a.workers} workers x 1 thread, best of {a.repeat}\n"
    )
    print("| method | time (s) | time / lowdim auto | max error of S / s_1 |")
    print("|---|---|---|---|")
    for name, t, e in rows:
        print(f"| {name} | {t:.3f} | {t / t0:.2f}x | {e:.1e} |")


if __name__ == "__main__":
    main()
