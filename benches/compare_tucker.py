"""lowdim vs TensorLy (numpy backend) on Tucker, same run, same threads.

Prints a markdown table: time and relative Frobenius error of each library, the ratio
TensorLy time / lowdim time, and the target from the issue. Peak memory of lowdim is measured
in a subprocess that reads the tensor from a raw file straight into its array (so the baseline
is the tensor itself) and reports the increase of its peak RSS over it (VmHWM, which is what
ru_maxrss reports minus the high-water mark a child inherits from a large parent).

    python benches/compare_tucker.py            # full run (about a minute)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import lowdim
import numpy as np
import tensorly as tl
from tensorly.decomposition import tucker as tl_tucker

tl.set_backend("numpy")


def low_rank_plus_noise(shape, rank, noise, dtype, seed=0):
    rng = np.random.default_rng(seed)
    core = rng.standard_normal((rank,) * len(shape))
    fs = [np.linalg.qr(rng.standard_normal((n, rank)))[0] for n in shape]
    X = lowdim.tucker_to_tensor(core, fs)
    X /= np.linalg.norm(X.ravel())
    E = rng.standard_normal(shape)
    X += noise * E / np.linalg.norm(E.ravel())
    return X.astype(dtype, copy=False)


def rel_err(X, Xh):
    X64 = X.astype(np.float64, copy=False).ravel()
    return float(
        np.linalg.norm(X64 - Xh.astype(np.float64, copy=False).ravel()) / np.linalg.norm(X64)
    )


def best_time(f, repeat=3, budget=8.0):
    """Best wall time of up to `repeat` calls (fewer when a call is slow) and the last result."""
    times, out = [], None
    t_all = time.perf_counter()
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - t_all > budget:
            break
    return min(times), out


def fmt_t(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def peak_memory(path, shape, dtype, code):
    """ru_maxrss increase (bytes) of running `code` on the tensor read from the raw file `path`
    (read straight into its array, so the baseline peak is the tensor, not a load buffer)."""
    # ru_maxrss of a child starts at the parent's peak (Linux carries the high-water mark of
    # the pre-exec address space), which hides everything below this process's ~300 MiB;
    # VmHWM in /proc/self/status is the same peak RSS counted for the child's own memory.
    script = f"""
import json, numpy as np, lowdim
def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
X = np.empty({tuple(shape)!r}, dtype={np.dtype(dtype).name!r})
with open({path!r}, "rb") as f:
    f.readinto(memoryview(X).cast("B"))
base = peak_rss()
{code}
peak = peak_rss()
print(json.dumps({{"inc": peak - base, "tensor": X.nbytes}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    rows = []
    print(f"lowdim threads: {lowdim.get_num_threads()}, CPUs: {os.cpu_count()}", file=sys.stderr)

    # 1. 200^3 float64, rank 10
    X = low_rank_plus_noise((200, 200, 200), 10, 0.1, np.float64)
    r = [10, 10, 10]
    t_l, T = best_time(lambda: lowdim.tucker(X, r, method="sthosvd"))
    t_t, (core, fs) = best_time(lambda: tl_tucker(X, r, n_iter_max=0, init="svd"), repeat=2)
    e_t = rel_err(X, tl.tucker_to_tensor((core, fs)))
    rows.append(
        ("200³ f64 r=10: ST-HOSVD vs tucker(n_iter_max=0)", t_l, T.rel_error(X), t_t, e_t, 20)
    )
    t_l, T = best_time(lambda: lowdim.tucker(X, r, method="hosvd"))
    rows.append(
        ("200³ f64 r=10: HOSVD vs tucker(n_iter_max=0)", t_l, T.rel_error(X), t_t, e_t, None)
    )
    t_l, T = best_time(lambda: lowdim.tucker(X, r, method="hooi"))
    n_iter = T.n_iter
    t_t, (core, fs) = best_time(lambda: tl_tucker(X, r), repeat=2)
    e_t = rel_err(X, tl.tucker_to_tensor((core, fs)))
    rows.append(
        (f"200³ f64 r=10: HOOI ({n_iter} sweeps) vs tucker()", t_l, T.rel_error(X), t_t, e_t, 10)
    )

    # tucker_to_tensor on the same decomposition
    core, fs = T.core, T.factors
    t_l, Y = best_time(lambda: lowdim.tucker_to_tensor(core, fs), repeat=5)
    t_t, Yt = best_time(lambda: tl.tucker_to_tensor((core, fs)), repeat=5)
    rows.append(("tucker_to_tensor 200³ f64 r=10", t_l, rel_err(Yt, Y), t_t, 0.0, 3))
    buf = np.empty_like(Y)
    t_l, Y = best_time(lambda: lowdim.tucker_to_tensor(core, fs, out=buf), repeat=5)
    rows.append(("tucker_to_tensor 200³ f64 r=10, out= reused", t_l, rel_err(Yt, Y), t_t, 0.0, 3))

    # FLoRA-style conv adapter: 256x256x3x3 weight from a (16, 16, 2, 2) core, float32
    rng = np.random.default_rng(1)
    core = rng.standard_normal((16, 16, 2, 2)).astype(np.float32)
    dims = (256, 256, 3, 3)
    fs = [
        rng.standard_normal((n, k)).astype(np.float32)
        for n, k in zip(dims, core.shape, strict=True)
    ]
    t_l, Y = best_time(lambda: lowdim.tucker_to_tensor(core, fs), repeat=200, budget=2)
    t_t, Yt = best_time(lambda: tl.tucker_to_tensor((core, fs)), repeat=200, budget=2)
    rows.append(("tucker_to_tensor FLoRA conv 256x256x3x3 f32", t_l, rel_err(Yt, Y), t_t, 0.0, 3))
    buf = np.empty_like(Y)
    t_l, Y = best_time(lambda: lowdim.tucker_to_tensor(core, fs, out=buf), repeat=200, budget=2)
    rows.append(("tucker_to_tensor FLoRA conv, out= reused", t_l, rel_err(Yt, Y), t_t, 0.0, 3))

    # 2. 60^4 float32, rank 8
    X4 = low_rank_plus_noise((60, 60, 60, 60), 8, 0.1, np.float32)
    r4 = [8] * 4
    t_l, T = best_time(lambda: lowdim.tucker(X4, r4, method="sthosvd"))
    t_t, (core, fs) = best_time(lambda: tl_tucker(X4, r4, n_iter_max=0, init="svd"), repeat=1)
    e_t = rel_err(X4, tl.tucker_to_tensor((core, fs)))
    rows.append(
        ("60⁴ f32 r=8: ST-HOSVD vs tucker(n_iter_max=0)", t_l, T.rel_error(X4), t_t, e_t, 30)
    )
    t_l, T = best_time(lambda: lowdim.tucker(X4, r4, method="hooi"))
    n_iter = T.n_iter
    t_t, (core, fs) = best_time(lambda: tl_tucker(X4, r4), repeat=1)
    e_t = rel_err(X4, tl.tucker_to_tensor((core, fs)))
    rows.append(
        (f"60⁴ f32 r=8: HOOI ({n_iter} sweeps) vs tucker()", t_l, T.rel_error(X4), t_t, e_t, 30)
    )

    print(
        "| case | lowdim | lowdim rel. error | TensorLy | TensorLy rel. error "
        "| TensorLy / lowdim | target | met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, tl_, el, tt, et, target in rows:
        ratio = tt / tl_
        met = "" if target is None else ("yes" if ratio >= target else "**no**")
        tgt = "" if target is None else f">= {target}x"
        if name.startswith("tucker_to_tensor"):
            el_s, et_s = f"{el:.1e} (vs TensorLy)", "-"
        else:
            el_s, et_s = f"{el:.6f}", f"{et:.6f}"
        print(
            f"| {name} | {fmt_t(tl_)} | {el_s} | {fmt_t(tt)} | {et_s} "
            f"| {ratio:.1f}x | {tgt} | {met} |"
        )

    # 3. peak memory (subprocess, tensor loaded from disk)
    print()
    print(
        "| peak memory (peak RSS increase over the loaded tensor) | tensor | increase "
        "| ratio | target | met |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for label, arr, code in [
            ("200³ f64 ST-HOSVD r=10", X, "lowdim.tucker(X, 10)"),
            ("200³ f64 HOSVD r=10", X, "lowdim.tucker(X, 10, method='hosvd')"),
            ("200³ f64 HOOI r=10", X, "lowdim.tucker(X, 10, method='hooi')"),
            ("200³ f64 ST-HOSVD tol=0.2", X, "lowdim.tucker(X, tol=0.2)"),
            ("60⁴ f32 ST-HOSVD r=8", X4, "lowdim.tucker(X, 8)"),
            ("60⁴ f32 HOOI r=8", X4, "lowdim.tucker(X, 8, method='hooi')"),
            (
                "200³ f64 TensorLy tucker() r=10 (for reference)",
                X,
                "from tensorly.decomposition import tucker; tucker(X, [10] * 3)",
            ),
        ]:
            path = os.path.join(d, "x.bin")
            arr.tofile(path)
            m = peak_memory(path, arr.shape, arr.dtype, code)
            ratio = m["inc"] / m["tensor"]
            ref = "TensorLy" in label
            met = "" if ref else ("yes" if ratio <= 2 else "**no**")
            print(
                f"| {label} | {m['tensor'] / 2**20:.0f} MiB | {m['inc'] / 2**20:.1f} MiB | "
                f"{ratio:.2f}x | {'' if ref else '<= 2x'} | {met} |"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\n(benchmark process peak RSS {rss / 1024:.0f} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
