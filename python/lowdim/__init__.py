"""lowdim: the low-dimensional structure of data, fast and exact about its errors.

Randomized SVD / PCA with a Rust core (faer + rayon), adaptive rank from an error tolerance,
dense and sparse input; Tucker decomposition (HOSVD, ST-HOSVD, HOOI); subspace clustering
(``lowdim.cluster``: SSC-OMP, EnSC, LSR, TSC, K-subspaces, spectral clustering) with its
metrics (``lowdim.metrics``) and synthetic data (``lowdim.datasets``).
"""

from . import _lowdim, cluster, datasets, metrics
from ._validation import check_int as _check_int
from ._validation import warn_invalid_env_num_threads as _warn_invalid_env_num_threads
from .decomposition import PCA, TruncatedSVD
from .svd import SVDResult, rsvd, svd_error
from .tucker import TuckerTensor, mode_product, tucker, tucker_to_tensor

__version__ = _lowdim.__version__

_warn_invalid_env_num_threads()

__all__ = [
    "PCA",
    "SVDResult",
    "TruncatedSVD",
    "TuckerTensor",
    "cluster",
    "datasets",
    "get_num_threads",
    "metrics",
    "mode_product",
    "rsvd",
    "set_num_threads",
    "svd_error",
    "tucker",
    "tucker_to_tensor",
]


def set_num_threads(n: int) -> None:
    """Set the number of threads lowdim's kernels use (default: the environment variable
    ``LOWDIM_NUM_THREADS``, a positive integer, else the number of CPUs; another value of
    the variable, such as ``abc`` or ``0``, is ignored with a RuntimeWarning at import).

    Examples
    --------
    >>> import lowdim
    >>> old = lowdim.get_num_threads()
    >>> lowdim.set_num_threads(1); lowdim.get_num_threads()
    1
    >>> lowdim.set_num_threads(old)
    """
    _lowdim.set_num_threads(_check_int(n, "n", 1, 4096))


def get_num_threads() -> int:
    """The number of threads lowdim's kernels use.

    Examples
    --------
    >>> import lowdim
    >>> lowdim.get_num_threads() >= 1
    True
    """
    return _lowdim.get_num_threads()
