"""Input validation shared by every kernel: dtypes, shapes, seeds.

Rules: float32 stays float32, float64 stays float64, other real dtypes (ints, float16,
longdouble) become float64; bool, complex, object and non-numeric dtypes are rejected with a
TypeError. Dense arrays are handed to Rust as they are (any strides, any order, read-only
ok): no copy unless the dtype must change or the memory is byte-swapped or misaligned.
Sparse matrices are never densified.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

_MAX_SEED = 2**64


def env_num_threads() -> int | None:
    """``LOWDIM_NUM_THREADS`` as the Rust thread pool reads it (``threads.rs``: trimmed, an
    optional ``+`` and decimal digits, at least 1, fitting a 64-bit usize), or None when it is
    unset or invalid: then the pool has one thread per CPU."""
    value = os.environ.get("LOWDIM_NUM_THREADS")
    if value is None or not re.fullmatch(r"\+?[0-9]+", value.strip(), flags=re.ASCII):
        return None
    n = int(value.strip())
    return n if 1 <= n < 2**64 else None


def warn_invalid_env_num_threads() -> None:
    """A RuntimeWarning (once, at import) when ``LOWDIM_NUM_THREADS`` is set to something
    the Rust pool ignores silently (``abc``, ``0``, ``-2``); unset or empty: nothing."""
    value = os.environ.get("LOWDIM_NUM_THREADS")
    if value is not None and value.strip() and env_num_threads() is None:
        warnings.warn(
            f"LOWDIM_NUM_THREADS={value!r} is ignored: it must be a positive integer (the "
            "number of threads); lowdim uses one thread per CPU instead "
            "(see lowdim.set_num_threads)",
            RuntimeWarning,
            stacklevel=3,  # the ``import lowdim`` (the import machinery's frames are skipped)
        )


def result_dtype(dtype: np.dtype, name: str = "A") -> np.dtype:
    """The float dtype a computation on ``dtype`` runs in, or TypeError."""
    dtype = np.dtype(dtype)
    if dtype.byteorder not in ("=", "|"):
        dtype = dtype.newbyteorder("=")
    if dtype == np.float32:
        return np.dtype(np.float32)
    if dtype.kind == "b":
        raise TypeError(f"{name} has boolean dtype; convert it to float32 or float64 first")
    if dtype.kind == "c":
        raise TypeError(
            f"{name} has complex dtype {dtype}; lowdim computes real decompositions only"
        )
    if dtype.kind in "fiu":
        return np.dtype(np.float64)
    raise TypeError(f"{name} has dtype {dtype}; a real numeric dtype is required")


def _native(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` as ``dtype`` in native byte order and aligned, copying only when needed.

    Every dense array handed to a Rust kernel goes through here: the bindings view NumPy
    memory as it is, converting byte strides to element strides by an integer division, so
    an unaligned array (NumPy's ``aligned`` flag is also False for strides that are not a
    multiple of the item size, e.g. the float field of a packed record array) was read at the
    wrong addresses: garbage results, silently."""
    if a.dtype != dtype or not a.dtype.isnative or not a.flags.aligned:
        a = a.astype(dtype.newbyteorder("="), copy=True)
    return a


@dataclass
class Operand:
    """A validated matrix, ready for the Rust kernels.

    ``payload`` is a 2-D ndarray or the CSR tuple ``(data, indices, indptr, nrows, ncols)``.
    ``transposed`` is True when ``payload`` holds A^T (CSC input): the caller swaps factors.
    """

    payload: object
    shape: tuple[int, int]
    dtype: np.dtype
    sparse: bool
    transposed: bool = False


def _csr_tuple(data, indices, indptr, nrows, ncols, dtype):
    data = _native(np.ascontiguousarray(data), dtype)
    idx_dtype = np.int32
    if indices.dtype != np.int32 or indptr.dtype != np.int32:
        idx_dtype = np.int64
    indices = c_aligned(indices, idx_dtype)
    indptr = c_aligned(indptr, idx_dtype)
    return (data, indices, indptr, int(nrows), int(ncols))


def c_aligned(a, dtype) -> np.ndarray:
    """An array the kernels read as a flat buffer (a CSR matrix's data, indices and indptr,
    svd_error's factors): C-contiguous, native ``dtype`` and aligned (a copy only when it is
    not). The bindings take an array at an odd address (a buffer read from a file, a packed
    record) as "not contiguous": a TypeError on a valid scipy matrix."""
    return np.require(a, dtype=dtype, requirements=["C", "A"])


def _check_nonempty(shape, name: str) -> None:
    if 0 in shape:
        raise ValueError(
            f"{name} is empty (shape {tuple(shape)}); it needs at least one row and one column"
        )


def check_matrix(A, name: str = "A", allow_csc: bool = True) -> Operand:
    """Validate a 2-D dense array or scipy.sparse matrix/array."""
    if sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D matrix, got a {A.ndim}-D sparse array of shape {A.shape}"
            )
        m, n = A.shape
        _check_nonempty(A.shape, name)
        dtype = result_dtype(A.dtype, name)
        if A.format == "csc" and allow_csc:
            A = _summed(A)
            payload = _csr_tuple(A.data, A.indices, A.indptr, n, m, dtype)
            return Operand(payload, (m, n), dtype, True, transposed=True)
        A = _summed(A.tocsr())
        payload = _csr_tuple(A.data, A.indices, A.indptr, m, n, dtype)
        return Operand(payload, (m, n), dtype, True)
    if not isinstance(A, np.ndarray):
        if hasattr(A, "__cuda_array_interface__") or type(A).__module__.split(".")[0] in (
            "cupy",
            "dask",
            "torch",
        ):
            raise TypeError(
                f"{name} is a {type(A).__module__}.{type(A).__name__}; this build of lowdim "
                "accepts NumPy arrays and scipy.sparse matrices"
            )
        A = np.asarray(A)
    if isinstance(A, np.matrix):
        A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {A.ndim}-D with shape {A.shape}")
    dtype = result_dtype(A.dtype, name)
    _check_nonempty(A.shape, name)
    A = _native(A, dtype)
    return Operand(A, A.shape, dtype, False)


def check_seed(seed) -> int:
    """A 64-bit seed from None (fresh entropy), an int, or a NumPy Generator/RandomState."""
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if isinstance(seed, np.random.RandomState):
        return int(seed.randint(0, 2**31 - 1))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        seed = int(seed)
        if 0 <= seed < _MAX_SEED:
            return seed
        raise ValueError(f"seed={seed} must be in [0, 2**64)")
    raise TypeError(
        f"seed must be None, an int, or a numpy Generator/RandomState, got {type(seed).__name__}"
    )


def check_tol(tol, name: str = "tol") -> float:
    """A relative error tolerance in (0, 1), or a clear error."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1), got {tol!r}")
    tol = float(tol)
    if not 0.0 < tol < 1.0:
        raise ValueError(f"{name}={tol} is out of range: it must satisfy 0 < {name} < 1")
    return tol


def check_int(value, name: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (high None: unbounded), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value} is out of range: it must be {bound}")
    return value


def check_bool(value, name: str) -> bool:
    """A flag: a Python bool or a NumPy bool, else TypeError (``"no"`` or ``1`` is truthy and
    would silently count as True)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_estimator_kind(X) -> None:
    """The estimators' check of X's kind (NumPy or array-API dtypes) before anything else:
    boolean points are a TypeError (as rsvd's), complex ones scikit-learn's ValueError
    "Complex data not supported" (its estimator checks expect it) with a short message
    (scikit-learn's own puts the whole array in it). Other kinds go on to validation."""
    dt = getattr(X, "dtype", None)
    if dt is None:
        return
    kind = getattr(dt, "kind", None)
    if not isinstance(kind, str):  # an array-API dtype (array_api_strict, ...)
        try:
            xp = X.__array_namespace__()
            kind = "c" if xp.isdtype(dt, "complex floating") else "b" if dt == xp.bool else ""
        except Exception:  # not an array-API array after all: leave it to validation
            return
    if kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {dt}; lowdim works on real data (e.g. "
            "stack the real and imaginary parts as features)"
        )
    if kind == "b":
        raise TypeError("X has boolean dtype; convert it to float32 or float64 first")


def check_rsvd_tol(tol, single: bool, stacklevel: int = 4) -> float:
    """:func:`check_tol` for rsvd's tol mode on data of float32 (``single``) or float64, and
    a warning when tol is below what its error indicator ``||A||^2 - ||B||^2`` resolves in
    that precision (``sqrt(32 eps)``: 2.0e-3 in float32, 8.4e-8 in float64): the rank then
    grows to the full sketch (up to min(m, n)) instead of the smallest one meeting tol."""
    tol = check_tol(tol)
    dt = np.float32 if single else np.float64
    floor = math.sqrt(32.0 * float(np.finfo(dt).eps))
    if tol < floor:
        warnings.warn(
            f"tol={tol:g} is below what rsvd's error indicator resolves in "
            f"{np.dtype(dt).name} (about {floor:.1e}): the rank will be larger than needed, up "
            "to min(m, n); pass float64 data for a smaller tol"
            if single
            else f"tol={tol:g} is below what rsvd's error indicator resolves in float64 "
            f"(about {floor:.1e}): the rank will be larger than needed, up to min(m, n)",
            RuntimeWarning,
            stacklevel=stacklevel,  # the caller of lowdim.rsvd (4: rsvd -> its path -> here)
        )
    return tol


# Entry magnitudes whose squares and products stay well inside float64's range (the Rust
# kernels' Real::SAFE_LO / SAFE_HI for f64); float32's are 2^-60 and 2^60.
SAFE_F64 = (2.0**-400, 2.0**400)
SAFE_F32 = (2.0**-60, 2.0**60)


def pow2_scale(amax: float, safe: tuple[float, float] = SAFE_F64) -> float:
    """1, or the power of two ``c`` that brings ``amax`` (a largest magnitude) to about 1 when
    it is outside ``safe``: scaling data by ``c`` is exact, so results of in-range data are
    unchanged and out-of-range data (whose squares under- or overflow) get those of their
    in-range version. 0, NaN and infinity give 1 (the kernels report non-finite data)."""
    lo, hi = safe
    if amax == 0.0 or not math.isfinite(amax) or lo <= amax <= hi:
        return 1.0
    return pow2_near_inverse(amax, 127 if hi <= SAFE_F32[1] else 1023)


def pow2_near_inverse(amax: float, emax: int = 1023) -> float:
    """The power of two nearest ``1 / amax`` (finite amax > 0), its exponent clamped to the
    normal range ``[1 - emax, emax]`` of the data's dtype (1023: float64, 127: float32), so
    that it is finite in that dtype: a subnormal ``amax`` scales to below 1, not to
    infinity."""
    e = -round(math.log2(amax))
    return math.ldexp(1.0, max(min(e, emax), 1 - emax))


def _summed(M):
    """A CSR/CSC matrix with sorted indices and no duplicate entries (summed, as scipy does):
    ``M`` itself when it is canonical, else a canonical copy of its sparse arrays (never a
    change to the caller's arrays, which may be read-only). Duplicates broke the kernels'
    norms (each stored value squared: a^2 + b^2 for the entry a + b)."""
    if not M.has_canonical_format:
        M = M.copy()
        M.sum_duplicates()
    return M


def canonical_csr(M):
    """``M`` (a scipy.sparse matrix or array) as a canonical ``csr_matrix`` (see
    :func:`_summed`)."""
    return _summed(sp.csr_matrix(M))
