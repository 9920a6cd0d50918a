"""Synthetic data with known low-dimensional structure."""

from __future__ import annotations

import numpy as np

from ._validation import check_bool, check_int

__all__ = ["union_of_subspaces"]


def union_of_subspaces(
    n_subspaces: int,
    subspace_dim: int,
    ambient_dim: int,
    n_per_subspace: int,
    *,
    noise: float = 0.0,
    shuffle: bool = True,
    dtype=np.float64,
    seed=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points drawn from a union of random linear subspaces.

    Each subspace has a random orthonormal basis ``U_k`` (``ambient_dim x subspace_dim``, the
    Q factor of a Gaussian matrix). A point is ``x = U_k a`` with ``a`` uniform on the unit
    sphere of ``R^subspace_dim`` (so ``||x|| = 1`` before noise), plus Gaussian noise with
    per-entry standard deviation ``noise / sqrt(ambient_dim)``, so that the noise vector has an
    expected squared norm of ``noise**2``. This is the generator of the EnSC / SSC-OMP papers.

    Parameters
    ----------
    n_subspaces, subspace_dim, ambient_dim, n_per_subspace : int
        Number of subspaces ``K``, their dimension ``d``, the ambient dimension ``D`` and the
        number of points drawn from each subspace.
    noise : float, default 0.0
        Relative noise level (see above).
    shuffle : bool, default True
        Shuffle the points; otherwise they come grouped by subspace.
    dtype : float32 or float64, default float64
    seed : None, int or numpy.random.Generator
        Seed of the generator; equal seeds give equal data.

    Returns
    -------
    X : ndarray of shape (n_subspaces * n_per_subspace, ambient_dim)
        The points, one per row.
    y : ndarray of shape (n_subspaces * n_per_subspace,), int64
        The index of the subspace each point was drawn from.

    Examples
    --------
    >>> from lowdim.datasets import union_of_subspaces
    >>> X, y = union_of_subspaces(3, 2, 10, 20, seed=0)
    >>> X.shape, y.shape, sorted(set(y.tolist()))
    ((60, 10), (60,), [0, 1, 2])
    >>> import numpy as np
    >>> bool(np.allclose(np.linalg.norm(X, axis=1), 1.0))
    True
    """
    n_subspaces = check_int(n_subspaces, "n_subspaces", 1)
    subspace_dim = check_int(subspace_dim, "subspace_dim", 1)
    ambient_dim = check_int(ambient_dim, "ambient_dim", 1)
    n_per_subspace = check_int(n_per_subspace, "n_per_subspace", 1)
    shuffle = check_bool(shuffle, "shuffle")
    if subspace_dim > ambient_dim:
        raise ValueError(f"subspace_dim={subspace_dim} must be <= ambient_dim={ambient_dim}")
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    blocks = []
    for _ in range(n_subspaces):
        basis, _ = np.linalg.qr(rng.standard_normal((ambient_dim, subspace_dim)))
        coef = rng.standard_normal((n_per_subspace, subspace_dim))
        coef /= np.linalg.norm(coef, axis=1, keepdims=True)
        blocks.append(coef @ basis.T)
    X = np.concatenate(blocks, axis=0)
    y = np.repeat(np.arange(n_subspaces, dtype=np.int64), n_per_subspace)
    if noise > 0:
        X += rng.standard_normal(X.shape) * (noise / np.sqrt(ambient_dim))
    if shuffle:
        perm = rng.permutation(X.shape[0])
        X, y = X[perm], y[perm]
    return np.ascontiguousarray(X, dtype=dtype), y
