"""lowdim.rsvd on a dask array vs dask.array.linalg.svd_compressed, same machine, same run.

A 40000 x 4000 float64 matrix (chunks of 5000 rows, generated and persisted in the workers:
low rank with decaying spectrum plus noise), k=50, 4 power iterations, on a
``distributed.LocalCluster`` with 1 and 2 single-threaded worker processes. Prints a markdown
table: wall time (median of ``--repeat`` runs, with seeds 0, 1, ...), the ratio svd_compressed /
lowdim, the relative Frobenius error ``||A - U S Vh||_F / ||A||_F`` of each (mean over seeds
0 .. 9, ``--error-seeds``; lowdim also with ``power_iteration_dtype="float32"``), and the bytes
the workers sent to each other during the run (the workers' ``transfer_outgoing_bytes_total``).
A second table times the per-block kernel of one power iteration (``B^T (B X)`` on one
5000 x 4000 chunk, one thread): lowdim's Rust fused kernel vs two NumPy GEMMs.

    python benches/compare_dask.py --repeat 3         # the issue's size (about 6 minutes)
    python benches/compare_dask.py --rows 8000 --error-seeds 1   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import dask
import dask.array as da
import lowdim
import numpy as np
from distributed import Client, LocalCluster
from threadpoolctl import threadpool_limits


def _chunk(rank, seed, block_info=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    n = c1 - c0
    s = 1.0 / (1.0 + np.arange(rank)) ** 1.5
    V = np.random.default_rng(seed).standard_normal((n, rank)) / np.sqrt(n)
    rng = np.random.default_rng([seed, r0])
    G = rng.standard_normal((r1 - r0, rank)) / np.sqrt(40000)
    blk = (G * s) @ V.T
    blk += 1e-4 * rng.standard_normal(blk.shape) / np.sqrt(n)
    return blk


def make(m, n, chunk_rows, rank=200, seed=0):
    rows = [chunk_rows] * (m // chunk_rows) + ([m % chunk_rows] if m % chunk_rows else [])
    chunks = (tuple(rows), (n,))
    return da.map_blocks(_chunk, rank, seed, chunks=chunks, dtype=np.float64)


def rel_error(A, U, S, Vh):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*large graph")  # U, embedded once
        U = da.from_array(U, chunks=(A.chunks[0], -1))
        R = A - (U * S) @ Vh
        num, den = dask.compute((R**2).sum(), (A**2).sum())
    return float(np.sqrt(num / den))


def sent_bytes(client):
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


def run_lowdim(A, k, q, seed=0):
    return lowdim.rsvd(A, k, n_iter=q, seed=seed, compute=True)


def run_lowdim_f32(A, k, q, seed=0):
    return lowdim.rsvd(A, k, n_iter=q, seed=seed, compute=True, power_iteration_dtype="float32")


def run_dask(A, k, q, seed=0):
    U, S, Vh = da.linalg.svd_compressed(
        A, k, n_power_iter=q, iterator="QR", seed=seed, compute=False
    )
    return dask.compute(U, S, Vh)


def timed(fn, client, repeat):
    """Median time and mean bytes sent over ``repeat`` runs with seeds 0, 1, ..."""
    times, sent = [], 0.0
    for seed in range(repeat):
        b0 = sent_bytes(client)
        t = time.perf_counter()
        fn(seed=seed)
        times.append(time.perf_counter() - t)
        sent += sent_bytes(client) - b0
    return statistics.median(times), sent / repeat


def mean_error(fn, A, seeds):
    """Mean relative error over seeds 0 .. seeds - 1, after all the timed runs (the error
    passes allocate and move data; timing between them moved the timings by 20%). One seed's
    error is one draw of the random test matrix: both methods run the same algorithm, and
    their errors differ from seed to seed by about 5e-5 relative here, more than between
    the methods."""
    return statistics.fmean(rel_error(A, *fn(seed=seed)) for seed in range(seeds))


def balance(client, A):
    """Chunks of A held per worker (an uneven split slows every pass)."""
    keys = {str(key) for key in dask.core.flatten(A.__dask_keys__())}
    return sorted(sum(str(key) in keys for key in v) for v in client.has_what().values())


def kernel_table(n, chunk_rows, ell):
    rng = np.random.default_rng(0)
    B = rng.standard_normal((chunk_rows, n))
    X = rng.standard_normal((n, ell))
    X32 = X.astype(np.float32)
    old = lowdim.get_num_threads()
    lowdim.set_num_threads(1)
    rows = []
    with threadpool_limits(1):
        for name, fn in [
            ("lowdim gram_apply (Rust, fused)", lambda: lowdim._lowdim.gram_apply(B, X)),
            (
                "lowdim gram_apply_f32 (Rust, fused, float32 in cache)",
                lambda: lowdim._lowdim.gram_apply_f32(B, X32, 2.0**-3),
            ),
            ("lowdim block_matmul B @ X (Rust)", lambda: lowdim._lowdim.block_matmul(B, X, False)),
            ("numpy B @ X", lambda: B @ X),
            ("numpy B.T @ (B @ X)", lambda: B.T @ (B @ X)),
        ]:
            fn()
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            rows.append((name, min(ts)))
    lowdim.set_num_threads(old)
    print(f"\nPer-block kernel, one {chunk_rows} x {n} chunk, X {n} x {ell}, 1 thread:\n")
    print("| kernel | time (s) | GFLOP/s |")
    print("|---|---|---|")
    for name, t in rows:
        flops = (2 if "B @ X" in name else 4) * chunk_rows * n * ell
        print(f"| {name} | {t:.3f} | {flops / t / 1e9:.1f} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=40000)
    p.add_argument("--cols", type=int, default=4000)
    p.add_argument("--chunk-rows", type=int, default=5000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--q", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--error-seeds", type=int, default=10)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    m, n, k, q = args.rows, args.cols, args.k, args.q
    print(
        f"A: {m} x {n} float64 ({m * n * 8 / 1e9:.2f} GB), chunks of {args.chunk_rows} rows, "
        f"k={k}, {q} power iterations; LocalCluster, 1 thread per worker process\n"
    )
    print(
        "| workers | lowdim (s) | lowdim, float32 power iterations (s) | svd_compressed (s) | "
        "ratio | ratio, float32 power | lowdim error | lowdim f32-power error | "
        "svd_compressed error | lowdim sent (MB) | svd_compressed sent (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for nw in args.workers:
        with (
            LocalCluster(
                n_workers=nw,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                memory_limit="8GiB",
            ) as cluster,
            Client(cluster) as client,
        ):
            A = make(m, n, args.chunk_rows).persist()
            dask.compute((A[:1, :1]).sum())
            client.run(lambda: None)
            run_lowdim(A, k, 1)  # warm-up (imports in the workers), both methods
            run_dask(A, k, 1)
            fns = [partial(f, A, k, q) for f in (run_lowdim, run_lowdim_f32, run_dask)]
            placed = balance(client, A)
            (tl, bl), (tm, _), (td, bd) = (timed(f, client, args.repeat) for f in fns)
            print(f"<!-- chunks per worker: {placed} before, {balance(client, A)} after -->")
            el, em, ed = (mean_error(f, A, args.error_seeds) for f in fns)
            print(
                f"| {nw} | {tl:.2f} | {tm:.2f} | {td:.2f} | {td / tl:.2f}x | {td / tm:.2f}x | "
                f"{el:.6e} | {em:.6e} | {ed:.6e} | {bl / 1e6:.1f} | {bd / 1e6:.1f} |",
                flush=True,
            )
    kernel_table(n, args.chunk_rows, k + 10)


if __name__ == "__main__":
    main()
