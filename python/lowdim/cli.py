"""The ``lowdim`` command line (``lowdim demo``; more commands grow with the kernels)."""

from __future__ import annotations

import argparse
import sys
import time


def _timed(f, repeat=1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return out, best


def demo(small: bool = False, out=sys.stdout) -> dict:
    """Run lowdim on bundled and synthetic data and print a comparison table.

    Returns the measured rows (for tests)."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.datasets import load_digits
    from sklearn.utils.extmath import randomized_svd

    import lowdim

    rows = []

    def row(case, method, seconds, err):
        rows.append((case, method, seconds, err))
        print(f"  {case:<34} {method:<28} {seconds * 1e3:9.1f} ms   {err}", file=out)

    print(f"lowdim {lowdim.__version__} demo ({lowdim.get_num_threads()} threads)", file=out)
    print(f"  {'case':<34} {'method':<28} {'time':>12}   result", file=out)

    # 1. PCA of scikit-learn's bundled digits (1797 x 64).
    X = load_digits().data
    pca, t = _timed(lambda: lowdim.PCA(n_components=10, random_state=0).fit(X), 3)
    row(
        "digits PCA, 10 components",
        "lowdim.PCA",
        t,
        f"explained variance {pca.explained_variance_ratio_.sum():.3f}",
    )
    pca90, t = _timed(lambda: lowdim.PCA(n_components=0.9, random_state=0).fit(X), 3)
    row(
        "digits PCA, 90% variance",
        "lowdim.PCA(n_components=0.9)",
        t,
        f"{pca90.n_components_} components",
    )

    # 2. A large synthetic matrix with a decaying spectrum.
    m, n, k = (2000, 1000, 20) if small else (6000, 3000, 50)
    rng = np.random.default_rng(0)
    r = min(m, n)
    U0, _ = np.linalg.qr(rng.standard_normal((m, 200)))
    V0, _ = np.linalg.qr(rng.standard_normal((n, 200)))
    s0 = 1.0 / (1.0 + np.arange(200)) ** 1.5
    A = (U0 * s0) @ V0.T + 1e-6 * rng.standard_normal((m, n))
    case = f"dense {m}x{n}, k={k}"

    def err(U, S, Vh):
        # power iteration on the residual: a lower bound that converges to the norm
        return lowdim.svd_error(A, U, S, Vh, n_iter=60, seed=0)

    res, t = _timed(lambda: lowdim.rsvd(A, k, n_iter=4, seed=0), 2)
    row(case, "lowdim.rsvd", t, f"||A - A_k||_2 ~ {err(*res):.3e}")
    res_sk, t_sk = _timed(lambda: randomized_svd(A, k, n_iter=4, random_state=0), 2)
    row(case, "sklearn randomized_svd", t_sk, f"||A - A_k||_2 ~ {err(*res_sk):.3e}")
    if small or r <= 3000:
        full, t_full = _timed(lambda: np.linalg.svd(A, full_matrices=False))
        row(case, "numpy.linalg.svd (full)", t_full, f"optimal {full[1][k]:.3e}")
    tol_res, t = _timed(lambda: lowdim.rsvd(A, tol=1e-2, seed=0))
    row(
        f"dense {m}x{n}, tol=1e-2",
        "lowdim.rsvd(tol=...)",
        t,
        f"rank {tol_res.S.size}, error {tol_res.rel_error:.2e}",
    )

    # 3. Sparse LSA-like matrix, never densified.
    ms, ns = (20000, 5000) if small else (100000, 20000)
    nnz = int(0.002 * ms * ns)
    X = sp.csr_matrix(
        (rng.standard_normal(nnz), (rng.integers(0, ms, nnz), rng.integers(0, ns, nnz))),
        shape=(ms, ns),
    )
    tsvd, t = _timed(lambda: lowdim.TruncatedSVD(50, random_state=0).fit(X))
    row(
        f"sparse {ms}x{ns}, nnz={X.nnz}",
        "lowdim.TruncatedSVD(50)",
        t,
        f"top singular value {tsvd.singular_values_[0]:.3f}",
    )
    print(
        f"lowdim vs sklearn randomized_svd on the dense case: {t_sk / rows[2][2]:.1f}x faster",
        file=out,
    )
    return {"rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lowdim", description="lowdim command line")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="run every kernel on bundled data, print a table")
    p_demo.add_argument("--small", action="store_true", help="smaller sizes (seconds)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(small=args.small)
        return 0
    parser.print_help()
    return 2
