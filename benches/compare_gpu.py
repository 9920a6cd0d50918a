"""GPU benchmarks of issue 5 (CuPy arrays through lowdim's array-API path), one process.

    python benches/compare_gpu.py [--quick] [--no-full-svd] [--out FILE.md]

* rSVD 20000x20000 float32, k=100, 4 power iterations: lowdim.rsvd on a CuPy array vs
  torch.svd_lowrank(q=110, niter=4) on the same GPU (same data, shared through DLPack), and
  cupy.linalg.svd (full) for scale; error ||A - U S Vh||_2 by lowdim.svd_error (30 its).
  Also lowdim with the previous normalization (CholeskyQR2 on every intermediate block), and
  the pieces of lowdim's rSVD timed one by one (Gaussian, one pass, Gram, normalizations,
  the small SVD on the device and on the host).
* Tucker 400x400x400 float32, rank 20: lowdim.tucker (ST-HOSVD and HOOI; and ST-HOSVD with
  each per-mode solver, svd="randomized" and "gram", to check svd="auto"'s choice) vs
  TensorLy's tucker with its CuPy backend; relative Frobenius errors.
* SSC-OMP 100k points (lowdim.datasets.union_of_subspaces(10, 6, 50, 10000, noise=0.01,
  seed=0), n_clusters=10, n_nonzero=10): lowdim.cluster.SSCOMP on CuPy arrays (float32 and
  float64; lowdim._xp_cluster: batched OMP, cupyx eigsh, k-means on the device) vs lowdim's
  CPU path (NumPy input: the Rust kernels on all cores of this machine); clustering accuracy
  in the error column. One timed run each (the CPU path takes tens of seconds), the CuPy runs
  after a warm-up on 1/10 of the points; representation and affinity times reported apart.
* LSR, KSubspaces and spectral_clustering (on the LSR affinity), 20,000 points
  (union_of_subspaces(10, 6, 50, 2000, noise=0.01, seed=0), 10 clusters): CuPy input
  (float64, float32; cupyx CSR for spectral_clustering) vs lowdim's CPU path; accuracy in
  the error column; one timed run each, after a warm-up on 1/10 of the points.

Times: best of N runs after one warm-up, with the device synchronized. --quick divides the
sizes by 4 (smoke test). Prints a markdown report (also written to --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lowdim


def _sync(cp):
    cp.cuda.Device().synchronize()


def _best(fn, cp, repeats):
    fn()
    _sync(cp)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(cp)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _low_rank(cp, m, n, rank, dtype, seed=0, noise=1e-3):
    """A decaying spectrum of `rank` directions plus Gaussian noise, generated on the device."""
    rs = cp.random.RandomState(seed)
    U = cp.linalg.qr(rs.standard_normal((m, rank), dtype=cp.float32))[0]
    V = cp.linalg.qr(rs.standard_normal((n, rank), dtype=cp.float32))[0]
    s = (1.0 + cp.arange(rank, dtype=cp.float32)) ** -1.5
    A = (U * s) @ V.T
    A += noise * rs.standard_normal((m, n), dtype=cp.float32) / (m * n) ** 0.25
    return A.astype(dtype)


def bench_rsvd(cp, rows, div, repeats, full_svd):
    torch = None
    try:
        import torch as _torch

        if _torch.cuda.is_available():
            torch = _torch
    except ImportError:
        pass
    m = n = 20000 // div
    k, q = 100, 4
    A = _low_rank(cp, m, n, 1000 // div, cp.float32)
    case = f"rSVD {m}x{n} f32 k={k} q={q}"

    def err(U, S, Vh):
        return lowdim.svd_error(A, U, S, Vh, n_iter=30, seed=0)

    t, res = _best(lambda: lowdim.rsvd(A, k, n_iter=q, seed=0, solver="randomized"), cp, repeats)
    e_ld = err(*res)
    rows.append((case, "lowdim (CuPy)", t, e_ld, ""))
    from lowdim import _xp

    inner = _xp._INNER_NORMALIZER
    try:  # CholeskyQR2 on every intermediate block instead of one shifted CholeskyQR
        _xp._INNER_NORMALIZER = "cholqr2"
        t2, res2 = _best(
            lambda: lowdim.rsvd(A, k, n_iter=q, seed=0, solver="randomized"), cp, repeats
        )
        note = "CholeskyQR2 per block (one sync per block)"
        rows.append((case, "lowdim (CuPy), previous normalization", t2, err(*res2), note))
    finally:
        _xp._INNER_NORMALIZER = inner
    if torch is not None:
        At = torch.from_dlpack(A)

        def run_torch():
            return torch.svd_lowrank(At, q=k + 10, niter=q)

        tt, (Ut, St, Vt) = _best(run_torch, cp, repeats)
        U = cp.from_dlpack(Ut[:, :k].contiguous())
        S = cp.from_dlpack(St[:k].contiguous())
        Vh = cp.from_dlpack(Vt[:, :k].T.contiguous())
        rows.append((case, "torch.svd_lowrank(q=110, niter=4)", tt, err(U, S, Vh), ""))
    else:
        rows.append((case, "torch.svd_lowrank", None, None, "torch with CUDA not installed"))
    if full_svd:
        tf, (U, S, Vh) = _best(lambda: cp.linalg.svd(A, full_matrices=False), cp, 1)
        rows.append((case, "cupy.linalg.svd (full)", tf, err(U[:, :k], S[:k], Vh[:k]), ""))


def bench_rsvd_parts(cp, rows, div, repeats):
    """The pieces of lowdim's rSVD on the benchmark's shapes, each timed alone (ratios are
    fractions of the whole call): where the time goes beyond the 2q + 2 passes over A."""
    import numpy as np
    from lowdim import _lowdim, _xp

    m = n = 20000 // div
    k, q = 100, 4
    ell = k + 10
    A = _low_rank(cp, m, n, 1000 // div, cp.float32)
    xp = _xp.namespace(A)
    case = f"rSVD pieces {m}x{n} f32 l={ell}"
    t, _ = _best(lambda: lowdim.rsvd(A, k, n_iter=q, seed=0, solver="randomized"), cp, repeats)
    rows.append((case, "lowdim.rsvd (whole call)", t, None, ""))
    t0 = time.perf_counter()
    _lowdim.gaussian(n, ell, 0, 0, 0, True)
    t = time.perf_counter() - t0
    rows.append((case, "Gaussian on the host (_lowdim.gaussian)", t, None, ""))
    dev = _xp._DEVICE_GAUSSIAN
    try:
        _xp._DEVICE_GAUSSIAN = False
        t, Xh = _best(lambda: _xp._gaussian(xp, n, ell, 0, xp.float32, A), cp, repeats)
        rows.append((case, "Gaussian on the host + transfer", t, None, "previous"))
    finally:
        _xp._DEVICE_GAUSSIAN = dev
    t, X = _best(lambda: _xp._cupy_gaussian(n, ell, 0, True), cp, repeats)
    d = float(cp.max(cp.abs(X - Xh)))
    rows.append((case, "Gaussian on the device (kernel)", t, d, "error: max |device - host|"))
    t, Y = _best(lambda: A @ X, cp, repeats)
    rows.append((case, "one pass A @ X (f32 GEMM)", t, None, f"{2 * q + 2} per call"))
    Y64 = Y.astype(cp.float64)
    t, _ = _best(lambda: Y64.T @ Y64, cp, repeats)
    rows.append((case, "Gram f64 of the m x l block (one GEMM)", t, None, ""))
    b = 32
    h = m // b

    def gram_split():
        Yb = Y64[: b * h].reshape(b, h, ell)
        G = cp.matmul(Yb.transpose(0, 2, 1), Yb).sum(axis=0)
        return G + Y64[b * h :].T @ Y64[b * h :]

    t, _ = _best(gram_split, cp, repeats)
    rows.append((case, "Gram f64, split-K (32 batched GEMMs + sum)", t, None, "not used yet"))
    t, _ = _best(lambda: _xp.cholqr_shifted(xp, Y), cp, repeats)
    rows.append((case, "shifted CholeskyQR of one block", t, None, f"{2 * q} per call"))
    t, _ = _best(lambda: _xp.cholqr2(xp, Y), cp, repeats)
    rows.append((case, "CholeskyQR2 of one block (1 sync)", t, None, "2 per call"))
    R = cp.linalg.qr(Y64, mode="r")
    t, _ = _best(lambda: _xp._svd64(xp, R), cp, repeats)
    rows.append((case, "SVD l x l f64 on the device (cupy.linalg.svd)", t, None, "1 per call"))

    def gesvdj():
        from cupyx import cusolver

        return cusolver.gesvdj(R, full_matrices=False)

    t, _ = _best(gesvdj, cp, repeats)
    rows.append((case, "SVD l x l f64 on the device (cupyx gesvdj)", t, None, "not default"))

    def host_svd():
        u, s, vh = np.linalg.svd(cp.asnumpy(R), full_matrices=False)
        return cp.asarray(u), cp.asarray(s), cp.asarray(vh)

    t, _ = _best(host_svd, cp, repeats)
    rows.append((case, "SVD l x l f64 on the host (numpy + transfers)", t, None, "not default"))
    try:
        _xp._DEVICE_GAUSSIAN = False
        t, res = _best(
            lambda: lowdim.rsvd(A, k, n_iter=q, seed=0, solver="randomized"), cp, repeats
        )
        e = lowdim.svd_error(A, *res, n_iter=30, seed=0)
        rows.append((case, "lowdim.rsvd, Gaussian on the host", t, e, "_xp._DEVICE_GAUSSIAN"))
    finally:
        _xp._DEVICE_GAUSSIAN = dev
    small = _xp._SMALL_SVD
    try:  # the whole call with the small SVD elsewhere (_xp._SMALL_SVD)
        for where in ("device", "host"):
            _xp._SMALL_SVD = where
            t, res = _best(
                lambda: lowdim.rsvd(A, k, n_iter=q, seed=0, solver="randomized"), cp, repeats
            )
            e = lowdim.svd_error(A, *res, n_iter=30, seed=0)
            rows.append((case, f"lowdim.rsvd, small SVD {where!r}", t, e, "_xp._SMALL_SVD"))
    finally:
        _xp._SMALL_SVD = small


def bench_tucker(cp, rows, div, repeats):
    import math

    n = 400 // div
    r = 20
    rs = cp.random.RandomState(1)
    core = rs.standard_normal((r, r, r), dtype=cp.float32)
    fs = [cp.linalg.qr(rs.standard_normal((n, r), dtype=cp.float32))[0] for _ in range(3)]
    X = lowdim.tucker_to_tensor(core, fs)
    X += (
        0.1
        * float(cp.linalg.norm(X))
        / math.sqrt(X.size)
        * rs.standard_normal(X.shape, dtype=cp.float32)
    )
    case = f"Tucker {n}^3 f32 rank {r}"
    for method in ("sthosvd", "hooi"):
        t, T = _best(lambda m=method: lowdim.tucker(X, r, method=m), cp, repeats)
        note = f"rel. Frobenius error; svd='auto': {'/'.join(T.solvers)}"
        rows.append((case, f"lowdim {method} (CuPy)", t, T.rel_error(X), note))
    for svd in ("randomized", "gram"):  # the two solvers svd="auto" chooses between
        try:
            t, T = _best(lambda s=svd: lowdim.tucker(X, r, svd=s, seed=0), cp, repeats)
            rows.append((case, f"lowdim sthosvd svd={svd!r} (CuPy)", t, T.rel_error(X), ""))
        except Exception as e:  # keep the other rows
            rows.append((case, f"lowdim sthosvd svd={svd!r} (CuPy)", None, None, f"failed: {e!r}"))
    try:
        import tensorly as tl
        from tensorly.decomposition import tucker as tl_tucker

        tl.set_backend("cupy")
        t, (tc, tf) = _best(lambda: tl_tucker(X, rank=[r, r, r]), cp, repeats)
        rec = lowdim.tucker_to_tensor(tc, tf)
        e = float(cp.linalg.norm(X - rec) / cp.linalg.norm(X))
        rows.append((case, "TensorLy tucker (CuPy backend)", t, e, "rel. Frobenius error"))
    except Exception as e:  # not installed, or no CuPy backend
        rows.append((case, "TensorLy tucker (CuPy backend)", None, None, f"not run: {e!r}"))


def bench_sscomp(cp, rows, div, repeats):
    import numpy as np
    from lowdim.cluster import SSCOMP
    from lowdim.datasets import union_of_subspaces
    from lowdim.metrics import clustering_accuracy

    per = 10000 // div
    X, y = union_of_subspaces(10, 6, 50, per, noise=0.01, seed=0)
    case = f"SSC-OMP {X.shape[0]} pts (10 x 6-dim in R^50)"

    def fit(A):
        return SSCOMP(10, n_nonzero=10, random_state=0).fit(A)

    t0 = time.perf_counter()
    m = fit(X)
    t = time.perf_counter() - t0
    acc = clustering_accuracy(y, np.asarray(m.labels_))
    rows.append((case, "lowdim CPU (NumPy, Rust kernels)", t, acc, "accuracy in error column"))
    for dtype in (np.float64, np.float32):
        name = f"lowdim CuPy {np.dtype(dtype).name}"
        try:
            Xd = cp.asarray(X.astype(dtype))
            fit(cp.asarray(X[: X.shape[0] // 10].astype(dtype)))  # warm-up (kernel compiles)
            _sync(cp)
            t0 = time.perf_counter()
            m = fit(Xd)
            _sync(cp)
            t = time.perf_counter() - t0
            acc = clustering_accuracy(y, cp.asnumpy(m.labels_))
            from lowdim import _xp_cluster as xc

            t0 = time.perf_counter()
            pieces = xc.ssc_omp(Xd, 10, 1e-6)
            _sync(cp)
            t_rep = time.perf_counter() - t0
            phases = f"representation {t_rep:.3f} s"
            try:  # where the rest goes: the affinity, then eigsh + k-means
                xp = xc.namespace(Xd)
                t0 = time.perf_counter()
                W = xc.affinity(xp, *pieces, Xd.shape[0])
                _sync(cp)
                t_aff = time.perf_counter() - t0
                t0 = time.perf_counter()
                xc.spectral(xp, W, 10, 10, 20, 0, Xd)
                _sync(cp)
                t_spec = time.perf_counter() - t0
                phases += f", affinity {t_aff:.3f} s, spectral + k-means {t_spec:.3f} s"
            except Exception as e:  # the row itself still counts
                phases += f", phase timing failed: {e!r}"
            rows.append((case, name, t, acc, f"accuracy in error column; {phases}"))
            del pieces, m, Xd
        except Exception as e:  # keep the other numbers
            rows.append((case, name, None, None, f"failed: {e!r}"))
        cp.get_default_memory_pool().free_all_blocks()


def _gpu_row(cp, rows, case, name, run, y):
    """One timed CuPy row (``run()`` returns the labels), after ``run`` was warmed up by the
    caller; a failure becomes a row, the other rows still run."""
    from lowdim.metrics import clustering_accuracy

    try:
        _sync(cp)
        t0 = time.perf_counter()
        labels = run()
        _sync(cp)
        t = time.perf_counter() - t0
        acc = clustering_accuracy(y, cp.asnumpy(labels))
        rows.append((case, name, t, acc, "accuracy in error column"))
    except Exception as e:  # keep the other numbers
        rows.append((case, name, None, None, f"failed: {e!r}"))
    finally:
        cp.get_default_memory_pool().free_all_blocks()


def bench_cluster_more(cp, rows, div, repeats):
    """LSR, KSubspaces and spectral_clustering, 20,000 points of the union-of-subspaces model
    (``union_of_subspaces(10, 6, 50, 2000, noise=0.01, seed=0)``): lowdim's CPU path (NumPy
    input, the Rust kernels on all cores) vs CuPy input (float64 and float32, after a warm-up
    on 1/10 of the points); accuracy in the error column. Each row is guarded: a failure is
    reported and the next row runs."""
    import numpy as np
    import scipy.sparse as sp
    from lowdim.cluster import LSR, KSubspaces, spectral_clustering
    from lowdim.datasets import union_of_subspaces
    from lowdim.metrics import clustering_accuracy

    per = 2000 // div
    X, y = union_of_subspaces(10, 6, 50, per, noise=0.01, seed=0)
    n = X.shape[0]
    sub = slice(0, n // 10)
    models = {
        "LSR": lambda: LSR(10, n_nonzero=50, random_state=0),
        "KSubspaces": lambda: KSubspaces(10, 6, random_state=0),
    }
    W = None
    for label, make in models.items():
        case = f"{label} {n} pts (10 x 6-dim in R^50)"
        try:
            t0 = time.perf_counter()
            m = make().fit(X)
            t = time.perf_counter() - t0
            acc = clustering_accuracy(y, np.asarray(m.labels_))
            rows.append((case, "lowdim CPU (NumPy, Rust kernels)", t, acc, "accuracy"))
            if label == "LSR":
                W = m.affinity_matrix_
        except Exception as e:
            rows.append((case, "lowdim CPU (NumPy, Rust kernels)", None, None, f"failed: {e!r}"))
        for dtype in (np.float64, np.float32):
            name = f"lowdim CuPy {np.dtype(dtype).name}"
            try:
                Xd = cp.asarray(X.astype(dtype))
                make().fit(Xd[sub, :])  # warm-up (kernel compiles)
            except Exception as e:
                rows.append((case, name, None, None, f"failed: {e!r}"))
                continue
            _gpu_row(cp, rows, case, name, lambda Xd=Xd, make=make: make().fit(Xd).labels_, y)
            del Xd
    case = f"spectral_clustering {n} pts (LSR affinity)"
    if W is None:
        rows.append((case, "lowdim CPU (scipy CSR, Rust)", None, None, "no LSR affinity"))
        return
    try:
        t0 = time.perf_counter()
        labels = spectral_clustering(W, 10, random_state=0)
        t = time.perf_counter() - t0
        acc = clustering_accuracy(y, labels)
        rows.append((case, "lowdim CPU (scipy CSR, Rust)", t, acc, "accuracy"))
    except Exception as e:
        rows.append((case, "lowdim CPU (scipy CSR, Rust)", None, None, f"failed: {e!r}"))
    try:
        import cupyx.scipy.sparse as cps

        Wd = cps.csr_matrix(sp.csr_matrix(W))
        spectral_clustering(cps.csr_matrix(W[sub, sub]), 10, random_state=0)  # warm-up
    except Exception as e:
        rows.append((case, "lowdim CuPy (cupyx CSR)", None, None, f"failed: {e!r}"))
        return
    _gpu_row(
        cp,
        rows,
        case,
        "lowdim CuPy (cupyx CSR)",
        lambda: spectral_clustering(Wd, 10, random_state=0),
        y,
    )


def bench_ensc(cp, rows, div, repeats):
    """EnSC (default parameters) on 20000 points of the SSC-OMP model: CPU (Rust) vs CuPy."""
    import numpy as np
    from lowdim.cluster import EnSC
    from lowdim.datasets import union_of_subspaces
    from lowdim.metrics import clustering_accuracy

    X, y = union_of_subspaces(10, 6, 50, 2000 // div, noise=0.01, seed=0)
    case = f"EnSC {X.shape[0]} pts (10 x 6-dim in R^50)"
    runs = [("lowdim CPU (NumPy, Rust kernels)", X, np.asarray)]
    runs += [
        (f"lowdim CuPy {t}", cp.asarray(X.astype(t)), cp.asnumpy) for t in ("float64", "float32")
    ]
    for name, A, back in runs:
        try:
            if back is cp.asnumpy:
                EnSC(10, random_state=0).fit(A[: A.shape[0] // 10, :])  # warm-up
            _sync(cp)
            t0 = time.perf_counter()
            m = EnSC(10, random_state=0).fit(A)
            _sync(cp)
            t, acc = time.perf_counter() - t0, clustering_accuracy(y, back(m.labels_))
            rows.append((case, name, t, acc, f"accuracy in error column; n_iter_ {m.n_iter_}"))
        except Exception as e:  # keep the other numbers
            rows.append((case, name, None, None, f"failed: {e!r}"))


def render(rows, header):
    out = [*header, "", "| case | method | time (s) | error | note |", "|---|---|---|---|---|"]
    base = {}
    for case, method, t, e, note in rows:
        if t is not None and case not in base:
            base[case] = t
        ts = "-" if t is None else f"{t:.3f} ({t / base[case]:.2f}x lowdim)"
        es = "-" if e is None else f"{e:.3e}"
        out.append(f"| {case} | {method} | {ts} | {es} | {note} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes / 4, one repeat")
    ap.add_argument("--no-full-svd", action="store_true", help="skip cupy.linalg.svd (full)")
    ap.add_argument("--out", help="also write the markdown to this file")
    args = ap.parse_args(argv)
    try:
        import cupy as cp

        ndev = cp.cuda.runtime.getDeviceCount()
    except Exception as e:
        text = f"GPU benchmarks not run: no CuPy/CUDA device ({e!r})\n"
        print(text, end="")
        if args.out:
            Path(args.out).write_text(text)
        return 0
    if ndev < 1:
        print("GPU benchmarks not run: no CUDA device")
        return 0
    props = cp.cuda.runtime.getDeviceProperties(0)
    header = [
        "## GPU benchmarks (lowdim array-API path on CuPy)",
        "",
        f"device: {props['name'].decode()}, cupy {cp.__version__}, lowdim {lowdim.__version__}",
    ]
    div = 4 if args.quick else 1
    repeats = 1 if args.quick else 3
    rows = []
    for fn, kw in (
        (bench_rsvd, {"full_svd": not args.no_full_svd}),
        (bench_rsvd_parts, {}),
        (bench_tucker, {}),
        (bench_sscomp, {}),
        (bench_cluster_more, {}),
        (bench_ensc, {}),
    ):
        try:
            fn(cp, rows, div, repeats, **kw)
        except Exception as e:  # keep the other benchmark's numbers
            rows.append((fn.__name__, "error", None, None, repr(e)))
        cp.get_default_memory_pool().free_all_blocks()
    text = render(rows, header)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
