"""lowdim vs. the anchors (scikit-learn, fbpca, torch, numpy), same process, same run.

    python benches/compare.py [--quick] [--gpu] [--out FILE.md]

Prints one markdown table: for every case and method the best time of N repeats (after one
warm-up), the ratio anchor_time / lowdim_time (> 1: lowdim is faster), the spectral-norm error
||A - U S Vh||_2 estimated with lowdim.svd_error(A, U, S, Vh, n_iter=30, seed=0) for every
method (the same estimator for all), and the ratio error / scikit-learn's error. Every library
runs at lowdim's thread count (threadpoolctl for BLAS/OpenMP, torch.set_num_threads for torch).
The environment (OPENBLAS_* included) is reported, never changed. --quick divides every matrix
dimension by 4 and runs one repeat (smoke test, < 1 minute).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lowdim  # noqa: E402
from _common import make_dense, make_sparse, make_tall  # noqa: E402

ERR_ITER = 30
ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "LOWDIM_NUM_THREADS",
)
NOT_INSTALLED = "not installed"


class Skip(Exception):
    """A method that is not run; the message goes in its row."""


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    out = []
    for d in threadpool_info():
        name = d.get("internal_api", "?")
        if d.get("version"):
            name += " " + d["version"]
        if d.get("architecture"):
            name += f" ({d['architecture']})"
        out.append(
            f"{name} [{d.get('user_api')}, {d.get('num_threads')} threads, "
            f"{os.path.basename(d.get('filepath', ''))}]"
        )
    return "; ".join(out) or "none found"


def gemm_peak(dtype, target_s: float) -> tuple[float, int]:
    """GFLOP/s of numpy's A @ B for square matrices sized to take about target_s."""
    rng = np.random.default_rng(0)
    n = 1024
    for _ in range(3):
        a = rng.standard_normal((n, n)).astype(dtype)
        t0 = time.perf_counter()
        a @ a
        dt = time.perf_counter() - t0
        new = int(n * (target_s / max(dt, 1e-4)) ** (1 / 3)) // 128 * 128
        new = min(max(new, 512), 8192)
        if abs(new - n) <= 128:
            break
        n = new
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9, n


# --------------------------------------------------------------------------- running


def best_time(fn, repeats: int):
    """One warm-up, then the best of `repeats` timed calls; returns (seconds, last output)."""
    out = fn()
    best = math.inf
    for _ in range(repeats):
        del out
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_case(case: str, A, methods, repeats: int, rows: list) -> None:
    """methods: list of (name, fn returning (U, S, Vh) as numpy arrays, notes-fn or None).
    lowdim must come first and scikit-learn second; fn may raise Skip."""
    results = []
    for name, fn, notes in methods:
        row = {"case": case, "method": name, "time": None, "err": None, "notes": ""}
        try:
            t, out = best_time(fn, repeats)
            U, S, Vh = out
        except Skip as e:
            row["status"] = str(e)
        except Exception as e:  # an anchor that fails is reported, not fatal
            row["status"] = f"failed: {type(e).__name__}: {str(e)[:80]}"
        else:
            row["time"] = t
            row["err"] = lowdim.svd_error(A, U, S, Vh, n_iter=ERR_ITER, seed=0)
            row["notes"] = notes(t, out) if notes else f"out {U.dtype}"
            del U, S, Vh, out
        gc.collect()
        results.append(row)
        shown = row.get("status") or f"{row['time']:.3f} s"
        print(f"  {case} | {name}: {shown}", file=sys.stderr, flush=True)
    t_low = results[0]["time"]
    e_sk = next((r["err"] for r in results if r["method"].startswith("sklearn")), None)
    for r in results:
        r["t_ratio"] = r["time"] / t_low if r["time"] and t_low else None
        r["e_ratio"] = r["err"] / e_sk if r["err"] is not None and e_sk else None
    rows.extend(results)


def _np3(U, S, Vh):
    return np.asarray(U), np.asarray(S), np.asarray(Vh)


def sklearn_fn(A, k, **kw):
    try:
        from sklearn.utils.extmath import randomized_svd
    except ImportError as e:
        raise Skip(NOT_INSTALLED) from e
    return lambda: _np3(*randomized_svd(A, k, random_state=0, **kw))


def fbpca_fn(A, k, n_iter, ell):
    fbpca = _optional("fbpca")
    if fbpca is None:
        raise Skip(NOT_INSTALLED)
    return lambda: _np3(*fbpca.pca(A, k=k, raw=True, n_iter=n_iter, l=ell))


def torch_dense_fn(A, k, q, niter):
    torch = _optional("torch")
    if torch is None:
        raise Skip(NOT_INSTALLED)
    At = torch.from_numpy(A)

    def fn():
        torch.manual_seed(0)
        U, S, V = torch.svd_lowrank(At, q=q, niter=niter)
        return U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()

    return fn


def torch_sparse_fn(A, k, q, niter, info, limit_s=60.0):
    torch = _optional("torch")
    if torch is None:
        raise Skip(NOT_INSTALLED)
    Ac = A.tocsr()
    warnings.filterwarnings("ignore", message="Sparse", category=UserWarning)
    crow, col, val = (
        torch.from_numpy(x)
        for x in (Ac.indptr.astype(np.int64), Ac.indices.astype(np.int64), Ac.data)
    )
    csr = torch.sparse_csr_tensor(crow, col, val, size=Ac.shape)
    Ao = Ac.tocoo()
    coo = torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([Ao.row, Ao.col]).astype(np.int64)),
        torch.from_numpy(Ao.data),
        size=Ao.shape,
    ).coalesce()
    # pick a layout that works, and estimate the run time from one product each way
    err = At = None
    R = torch.randn(A.shape[1], q, dtype=csr.dtype)
    Q = torch.randn(A.shape[0], q, dtype=csr.dtype)
    for cand, name in ((csr, "CSR"), (coo, "COO")):
        try:
            t0 = time.perf_counter()
            cand @ R
            cand.mH @ Q
            per_pair = time.perf_counter() - t0
        except Exception as e:  # layout not supported by this torch build
            err = e
            continue
        At, layout = cand, name
        break
    if At is None:
        raise Skip(f"failed: {type(err).__name__}: {str(err)[:80]}")
    est = (niter + 1) * per_pair
    if est > limit_s:
        raise Skip(f"skipped: est. {est:.0f} s per call > {limit_s:.0f} s ({layout})")

    def fn():
        torch.manual_seed(0)
        U, S, V = torch.svd_lowrank(At, q=q, niter=niter)
        return U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()

    info["layout"] = layout
    return fn


def lazy(make):
    """Defer an anchor's set-up (import, conversion) until its row is run, so that Skip and
    errors land in its row."""
    state = {}

    def fn():
        if "f" not in state:
            state["f"] = make()
        return state["f"]()

    return fn


def gram_eigh(A, k):
    """numpy reference for tall-skinny A: eigh of the Gram matrix A^T A."""
    w, V = np.linalg.eigh(A.T @ A)
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    S = np.sqrt(np.maximum(w, 0))
    U = (A @ V) / S
    return U, S, np.ascontiguousarray(V.T)


# --------------------------------------------------------------------------- memory

MEM_CHILD = r"""
import json, resource, sys
sys.path.insert(0, {here!r})
import numpy as np, lowdim
from _common import make_dense
A = make_dense({m}, {n})
lowdim.rsvd(np.ones((64, 32)), 4, seed=0)  # one-time set-up (thread pool) outside the window
try:
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark to the current RSS
        f.write("5")
    reset = True
except OSError:
    reset = False
def hwm():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM"))
def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base, base_hwm = maxrss(), hwm()
r = lowdim.rsvd(A, {k}, n_iter=4, n_oversamples={p}, seed=0, solver="randomized")
peak, peak_hwm = maxrss(), hwm()
del r
# steady state: a second call, once the first has paid one-time costs (code pages, thread
# stacks, faer's per-thread packing buffers, allocator arenas)
second = None
if reset:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    h0 = hwm()
    r = lowdim.rsvd(A, {k}, n_iter=4, n_oversamples={p}, seed=0, solver="randomized")
    second = hwm() - h0
print(json.dumps(dict(base=base, peak=peak, base_hwm=base_hwm, peak_hwm=peak_hwm,
                      reset=reset, nbytes=A.nbytes, second=second)))
"""


def measure_memory(m, n, k, p):
    code = MEM_CHILD.format(here=str(HERE), m=m, n=n, k=k, p=p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- table


def fmt_t(r):
    if r["time"] is None:
        return r.get("status", "")
    return f"{r['time']:.3f}"


def fmt_r(x, digits=2):
    return "" if x is None else f"{x:.{digits}f}"


def fmt_e(x):
    return "" if x is None else f"{x:.3e}"


def render(header: list[str], rows: list[dict], footer: list[str]) -> str:
    lines = list(header) + [""]
    lines.append(
        "| case | method | time (s) | anchor/lowdim time | ‖A−U S Vh‖₂ (est.) "
        "| error / sklearn error | notes |"
    )
    lines.append("|---|---|--:|--:|--:|--:|---|")
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['method']} | {fmt_t(r)} | {fmt_r(r.get('t_ratio'))} "
            f"| {fmt_e(r.get('err'))} | {fmt_r(r.get('e_ratio'), 3)} | {r['notes']} |"
        )
    return "\n".join(lines + [""] + footer) + "\n"


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="dimensions / 5, one repeat")
    ap.add_argument("--gpu", action="store_true", help="append the GPU section (compare_gpu.py)")
    ap.add_argument("--out", help="also write the markdown to this file")
    args = ap.parse_args(argv)

    div = 5 if args.quick else 1
    repeats = 1 if args.quick else 3
    sparse_repeats = 1 if args.quick else 2
    nt = lowdim.get_num_threads()

    # memory first, while this process is small (the child inherits its high-water mark)
    m, n, k, p = 8000 // div, 4000 // div, 50, 10
    mem = measure_memory(m, n, k, p)

    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(nt)

    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=nt)
    except ImportError:
        limits = None

    target = 0.2 if args.quick else 0.5
    peak64, n64 = gemm_peak(np.float64, target)
    peak32, n32 = gemm_peak(np.float32, target)

    versions = [f"lowdim {lowdim.__version__}", f"numpy {np.__version__}"]
    for mod, dist in (
        ("scipy", "scipy"),
        ("sklearn", "scikit-learn"),
        ("fbpca", "fbpca"),
        ("torch", "torch"),
    ):
        if _optional(mod) is None:
            versions.append(f"{mod} {NOT_INSTALLED}")
        else:
            try:
                versions.append(f"{mod} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                versions.append(f"{mod} ?")
    env = ", ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in ENV_VARS)
    header = [
        f"# lowdim benchmarks{' (--quick)' if args.quick else ''}",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores "
        f"({len(os.sched_getaffinity(0))} usable), python {platform.python_version()}",
        f"- threads: lowdim {nt}; BLAS/OpenMP limited to {nt} via threadpoolctl"
        + (f"; torch {torch.get_num_threads()}" if torch is not None else ""),
        f"- BLAS (threadpoolctl): {blas_info()}",
        f"- env: {env}",
        f"- versions: {', '.join(versions)}",
        f"- numpy GEMM peak: f64 {peak64:.1f} GFLOP/s (n={n64}), "
        f"f32 {peak32:.1f} GFLOP/s (n={n32})",
        "- floor = lowdim's flops (10 passes x 2 m n (k+p)) at numpy's GEMM peak; "
        "floor/time > 1: faster than numpy's GEMM",
        f"- time: best of {repeats} after one warm-up ({sparse_repeats} for sparse); error: "
        f"lowdim.svd_error(A, U, S, Vh, n_iter={ERR_ITER}, seed=0) for every method; "
        "anchor/lowdim time > 1 means lowdim is faster",
    ]
    rows: list[dict] = []

    # ---- dense, f64 and f32
    q, p = 4, 10
    ell = k + p
    A64 = make_dense(m, n, np.float64)
    for dtype, peak in ((np.float64, peak64), (np.float32, peak32)):
        A = A64 if dtype == np.float64 else A64.astype(np.float32)
        tag = "f64" if dtype == np.float64 else "f32"
        flops = (2 * q + 2) * 2.0 * m * n * ell

        def low_notes(t, out, flops=flops, peak=peak, tag=tag):
            floor = flops / (peak * 1e9)
            return (
                f"{flops / t / 1e9:.1f} GFLOP/s vs GEMM peak {tag} {peak:.1f}; "
                f"floor {floor:.3f} s, floor/time {floor / t:.2f}"
            )

        methods = [
            (
                "lowdim.rsvd",
                lambda A=A: lowdim.rsvd(
                    A, k, n_iter=q, n_oversamples=p, seed=0, solver="randomized"
                ),
                low_notes,
            ),
            (
                "sklearn randomized_svd",
                lazy(lambda A=A: sklearn_fn(A, k, n_oversamples=p, n_iter=q)),
                None,
            ),
            ("fbpca.pca", lazy(lambda A=A: fbpca_fn(A, k, q, ell)), None),
            ("torch.svd_lowrank", lazy(lambda A=A: torch_dense_fn(A, k, ell, q)), None),
        ]
        run_case(f"dense {m}x{n} {tag} k={k} q={q} p={p}", A, methods, repeats, rows)
        del A
        gc.collect()
    nbytes64 = A64.nbytes
    del A64
    gc.collect()

    # ---- memory row (measured at start-up in a fresh subprocess)
    # ru_maxrss also holds the high-water mark inherited through exec from this (parent)
    # process (signal->maxrss), so after a successful reset VmHWM is the clean number
    if mem["reset"]:
        inc, how = mem["peak_hwm"] - mem["base_hwm"], "VmHWM reset after building A"
        how += f"; ru_maxrss diff {(mem['peak'] - mem['base']) / 2**20:.1f} MiB"
    else:
        inc, how = mem["peak"] - mem["base"], "ru_maxrss, no reset possible: lower bound"
    budget = 2 * (m + n) * (k + p) * 8
    rows.append(
        {
            "case": f"dense {m}x{n} f64 k={k} peak memory",
            "method": "lowdim.rsvd",
            "time": None,
            "status": "—",
            "err": None,
            "notes": (
                f"peak RSS increase {inc / 2**20:.1f} MiB = {inc / nbytes64:.3f} x size(A) "
                f"({nbytes64 / 2**20:.0f} MiB) = {inc / budget:.2f} x 2(m+n)(k+p)*8 "
                f"({budget / 2**20:.1f} MiB); fresh process, {how}"
                + (
                    ""
                    if mem.get("second") is None
                    else f"; second call (steady state): {mem['second'] / 2**20:.1f} MiB = "
                    f"{mem['second'] / budget:.2f} x the block budget"
                )
            ),
        }
    )

    # ---- tall-skinny
    mt, ntl, kt = 200000 // div, 200 // div, 20
    T = make_tall(mt, ntl)
    methods = [
        (
            "lowdim.rsvd (auto)",
            lambda T=T: lowdim.rsvd(T, kt, seed=0),
            lambda t, out: f"solver {out.solver}",
        ),
        ("sklearn randomized_svd", lazy(lambda T=T: sklearn_fn(T, kt)), None),
        ("numpy Gram+eigh", lambda T=T: gram_eigh(T, kt), None),
    ]
    run_case(f"tall {mt}x{ntl} f64 k={kt}", T, methods, repeats, rows)
    del T
    gc.collect()

    # ---- sparse
    ms, ns, ks = 100000 // div, 50000 // div, 100
    X = make_sparse(ms, ns)
    tinfo: dict = {}
    nnz = X.nnz
    methods = [
        (
            "lowdim.rsvd",
            lambda X=X: lowdim.rsvd(X, ks, n_iter=q, n_oversamples=p, seed=0),
            lambda t, out: f"nnz {nnz:.2e}, solver {out.solver}",
        ),
        (
            "sklearn randomized_svd",
            lazy(lambda X=X: sklearn_fn(X, ks, n_oversamples=p, n_iter=q)),
            None,
        ),
        (
            "torch.svd_lowrank",
            lazy(lambda X=X: torch_sparse_fn(X, ks, ks + p, q, tinfo)),
            lambda t, out: f"torch sparse {tinfo.get('layout')} tensor",
        ),
    ]
    run_case(f"sparse CSR {ms}x{ns} f64 k={ks} q={q}", X, methods, sparse_repeats, rows)
    del X

    if limits is not None:
        limits.restore_original_limits()

    footer = []
    if args.gpu:
        # The GPU section (CuPy arrays through lowdim's array-API path): compare_gpu.py, which
        # reports by itself that it did not run when there is no CUDA device.
        import io
        from contextlib import redirect_stdout

        import compare_gpu

        buf = io.StringIO()
        with redirect_stdout(buf):
            compare_gpu.main(["--quick"] if args.quick else [])
        footer.append(buf.getvalue())
    text = render(header, rows, footer)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
