"""lowdim's subspace clustering beside scikit-learn's KMeans and SpectralClustering, same run.

Three tables (markdown):
1. Synthetic: 10 subspaces of dimension 6 in R^50, noise 0.01, 2,000 points each (20,000
   points); time, accuracy and NMI of every lowdim method, sklearn KMeans and sklearn
   SpectralClustering (nearest-neighbors affinity). The published single-threaded reference
   codes (ChongYou/subspace-clustering) need about 37 s (SSC-OMP) and 108 s (EnSC) here
   (issue 4); their ratio to lowdim is printed from those figures.
2. Scale: 100,000 points of the same model with SSC-OMP, run in a subprocess that reports
   its peak RSS above the data it holds.
3. Real data: scikit-learn's bundled digits (1797 x 64).

    python benches/compare_cluster.py            # everything (a few minutes)
    python benches/compare_cluster.py --quick    # 2,000 points, no 100k run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import lowdim
import numpy as np
from lowdim.cluster import LSR, SSCOMP, TSC, EnSC, KSubspaces
from lowdim.datasets import union_of_subspaces
from lowdim.metrics import clustering_accuracy
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.metrics import normalized_mutual_info_score as nmi

REFERENCE_20K = {"SSC-OMP": 37.0, "EnSC": 108.0}  # seconds, issue 4 (single-threaded codes)


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def methods(k, d):
    return {
        "lowdim SSC-OMP": SSCOMP(k, n_nonzero=10, random_state=0),
        "lowdim EnSC": EnSC(k, gamma=50, tau=0.9, random_state=0),
        "lowdim LSR": LSR(k, random_state=0),
        "lowdim TSC": TSC(k, random_state=0),
        "lowdim KSubspaces": KSubspaces(k, d, random_state=0),
        "sklearn KMeans": KMeans(k, n_init=10, random_state=0),
        "sklearn SpectralClustering (kNN)": SpectralClustering(
            k, affinity="nearest_neighbors", n_neighbors=10, random_state=0
        ),
    }


def table(title, X, y, k, d, skip=()):
    print(
        f"\n### {title}: {X.shape[0]} x {X.shape[1]}, {k} clusters "
        f"({lowdim.get_num_threads()} threads)\n"
    )
    print("| method | time (s) | accuracy | NMI | ARI | reference time / lowdim |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for name, est in methods(k, d).items():
        if name in skip:
            continue
        t, labels = timed(lambda est=est: est.fit_predict(X))
        acc, n_, a_ = clustering_accuracy(y, labels), nmi(y, labels), ari(y, labels)
        key = name.split(" ", 1)[1]
        ref = ""
        if name.startswith("lowdim") and key in REFERENCE_20K and X.shape[0] == 20000:
            ref = f"{REFERENCE_20K[key] / t:.1f}x"
        print(f"| {name} | {t:.2f} | {acc:.4f} | {n_:.4f} | {a_:.4f} | {ref} |", flush=True)
        rows[name] = (t, acc)
    return rows


_CHILD = r"""
import json, sys, time
import numpy as np


def hwm_mib():
    # VmHWM (peak RSS) of this process; ru_maxrss would report the parent's peak after fork
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

from lowdim.cluster import SSCOMP
from lowdim.metrics import clustering_accuracy
X = np.load(sys.argv[1])
y = np.load(sys.argv[2])
base = hwm_mib()
t = time.perf_counter()
m = SSCOMP(10, n_nonzero=10, random_state=0).fit(X)
t = time.perf_counter() - t
peak = hwm_mib()
C = m.representation_matrix_
print(json.dumps({"time": t, "acc": clustering_accuracy(y, m.labels_),
                  "peak_mib": peak - base, "data_mib": X.nbytes / 2**20,
                  "nnz": int(C.nnz)}))
"""


def scale_run(n):
    """SSC-OMP on n points in a fresh process that only loads the data (from .npy files), so
    its peak RSS above that baseline is what fitting costs."""
    import tempfile

    X, y = union_of_subspaces(10, 6, 50, n // 10, noise=0.01, seed=0)
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/X.npy", X)
        np.save(f"{d}/y.npy", y)
        del X
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, f"{d}/X.npy", f"{d}/y.npy"],
            capture_output=True,
            text=True,
            check=True,
        )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n### Scale: SSC-OMP on {n} points (10 x 6-dim subspaces of R^50, noise 0.01)\n")
    print(
        "| points | time (s) | accuracy | peak memory above the data (MiB) | data (MiB) | "
        "nnz of C |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {n} | {r['time']:.1f} | {r['acc']:.4f} | {r['peak_mib']:.0f} | "
        f"{r['data_mib']:.0f} | {r['nnz']} |"
    )
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    per = 200 if args.quick else 2000
    X, y = union_of_subspaces(10, 6, 50, per, noise=0.01, seed=0)
    print(
        f"machine: {os.cpu_count()} CPUs; lowdim {lowdim.__version__}; "
        f"date {time.strftime('%Y-%m-%d')}"
    )
    table("Synthetic union of subspaces", X, y, 10, 6)
    if not args.quick:
        scale_run(100_000)
    digits = load_digits()
    Xd = digits.data / 16.0
    table("Digits (scikit-learn bundled)", Xd, digits.target, 10, 12)
    print(
        f"\n(max RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
