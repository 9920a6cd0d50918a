"""Backends shared by the array-API tests of the clustering kernels (test_xp_cluster.py,
test_xp_ensc.py) and the CuPy probe of every array-API test module.

A backend is ``(to the backend, back to NumPy, expected module name)``: NumPy arrays passed to
the ``_xp_*`` kernels directly (the code path of a GPU), ``array_api_strict`` arrays (directly
and through the public estimators), and, marked ``gpu``, CuPy arrays (skipped without CuPy or a
CUDA device).
"""

from __future__ import annotations

import numpy as np
import pytest

xs = pytest.importorskip("array_api_strict")


def cupy_or_skip():
    """The cupy module, or skip the test: no CuPy, no driver or no CUDA device."""
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as e:  # no driver, no runtime
        pytest.skip(f"no CUDA device ({type(e).__name__})")
    return cp


def np_backend():
    return (lambda a: a, np.asarray, "numpy")


def _strict_backend():
    return (xs.asarray, np.asarray, "array_api_strict")


def _cupy_backend():
    cp = cupy_or_skip()
    return (cp.asarray, cp.asnumpy, "cupy")


BACKENDS = [
    pytest.param(np_backend, id="numpy"),
    pytest.param(_strict_backend, id="strict"),
    pytest.param(_cupy_backend, id="cupy", marks=pytest.mark.gpu),
]
PUBLIC = BACKENDS[1:]  # NumPy input to the estimators takes the Rust path


def module_of(x):
    """The top-level module of an array's type ("numpy", "cupy", ...)."""
    return type(x).__module__.split(".")[0]
