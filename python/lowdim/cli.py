"""The ``lowdim`` command line (also ``python -m lowdim``).

Subcommands live in a registry: each is one :func:`command`-decorated function that receives
the parsed arguments, plus a function adding its arguments. ``lowdim svd``, ``lowdim tucker``
and ``lowdim demo`` are defined here; a new kernel adds its own pair the same way.

Errors a user can fix (missing file, unreadable data, wrong shape, bad rank or tolerance) end
the command with one line ``lowdim: error: ...`` on stderr and exit status 2 (a traceback only
with ``--debug``); Ctrl-C ends it with exit status 130 and one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------------------------
# the subcommand registry


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> exit status`` as the subcommand ``name``."""

    def deco(run):
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return deco


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``lowdim svd: error: ... (see lowdim svd --help)``."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: given before or after the subcommand, neither default overwrites the other.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bar and no report (errors still go to stderr)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(
        prog="lowdim",
        description="lowdim: randomized SVD, Tucker and more from the command line",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for c in COMMANDS.values():
        p = sub.add_parser(c.name, help=c.help, description=c.help, parents=[common])
        c.add_arguments(p)
        p.set_defaults(_run=c.run)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``lowdim`` console script (and ``python -m lowdim``).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage or input error (one line on stderr),
        130 after Ctrl-C.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from lowdim.cli import main
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "A.npy"), np.diag([3.0, 2.0, 1.0]))
    >>> main(["svd", os.path.join(d, "A.npy"), "-k", "2", "-o", os.path.join(d, "out.npz"),
    ...       "--quiet"])
    0
    >>> np.load(os.path.join(d, "out.npz"))["S"]
    array([3., 2.])
    >>> main(["svd", os.path.join(d, "missing.npy"), "-k", "2"])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    args.quiet = getattr(args, "quiet", False)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args._run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        sys.stdout.flush()
        print("\nlowdim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CLIError, ValueError, TypeError, OSError, _linalg_error()) as e:
        if debug:
            raise
        print(f"lowdim: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def _linalg_error():
    import numpy as np

    return np.linalg.LinAlgError


def _one_line(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
    return " ".join(msg.split())


def _say(args, *lines) -> None:
    if not args.quiet:
        for line in lines:
            print(line)


# --------------------------------------------------------------------------------------------
# input files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such file")
    if p.is_dir():
        raise CLIError(f"{path} is a directory, not a data file")
    return p


def _sniff_delimiter(line: str) -> str | None:
    for d in ("\t", ",", ";"):
        if d in line:
            return d
    return None  # whitespace


def _first_content_line(f) -> tuple[int, str] | None:
    """``(index, text)`` of the first line of ``f`` that is neither blank nor only a comment,
    with any ``# comment`` cut off; None when there is none."""
    for i, line in enumerate(f):
        text = line.split("#", 1)[0].strip()
        if text:
            return i, text
    return None


def load_text(path: Path):
    """A CSV/TSV (or whitespace-separated) file of numbers as a 2-D float64 array; the
    delimiter is detected from the first line that is neither blank nor a ``#`` comment,
    and that line is skipped when it is a non-numeric header."""
    import numpy as np

    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first line
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = _first_content_line(f)
    if first is None:
        raise CLIError(f"{path}: no data (the file is empty or holds only comments)")
    index, line = first
    delim = _sniff_delimiter(line)
    skip = 0
    try:
        [float(t) for t in line.split(delim) if t.strip()]
    except ValueError:
        # a header line; skiprows counts every line before it, blank and comment lines too
        skip = index + 1
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f, warnings.catch_warnings():
            # "input contained no data": said below in the one error line
            warnings.simplefilter("ignore", UserWarning)
            a = np.loadtxt(f, delimiter=delim, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise CLIError(f"{path}: cannot read it as a table of numbers ({_one_line(e)})") from e
    if a.size == 0:
        raise CLIError(f"{path}: no data rows")
    return a


# Pillow modes of more than 8 bits per sample (the others are converted to 8-bit "L"/"RGB"):
# 16-bit unsigned integers, and the full range of a PNG opened as "I" (Pillow < 10 opens
# 16-bit gray PNGs so; a PNG has at most 16 bits per sample).
_MODES_16_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def load_image(path: Path, gray: bool = False):
    """An image as an H x W x 3 float64 tensor in [0, 1] (H x W with ``gray``): 8-bit images
    are divided by 255 and 16-bit ones by 65535; a float image must hold values in [0, 1]. A
    32-bit integer image, whose range is unknown, is rejected."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in _MODES_16_BIT or (im.mode == "I" and im.format == "PNG"):
                a = np.asarray(im).astype(np.float64) / 65535.0
            elif im.mode == "I":
                raise CLIError(
                    f"{path}: a 32-bit integer image has no known range to scale into [0, 1]; "
                    "save it as 8- or 16-bit, or as .npy"
                )
            elif im.mode == "F":
                a = np.asarray(im).astype(np.float64)
                if not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
                    raise CLIError(
                        f"{path}: a float image with values outside [0, 1] "
                        f"(from {a.min():g} to {a.max():g}); save it as .npy"
                    )
            else:
                im = im.convert("L" if gray else "RGB")
                return np.asarray(im).astype(np.float64) / 255.0
    except UnidentifiedImageError as e:
        raise CLIError(f"{path}: not an image Pillow can read") from e
    # one channel of more than 8 bits: gray, or repeated into R, G and B
    return a if gray else np.repeat(a[:, :, None], 3, axis=2)


def _npz_is_sparse(z) -> bool:
    return {"format", "shape", "data"} <= set(z.files)


def _check_numpy_file(p: Path, suffix: str) -> None:
    """A .npy file must start with NumPy's header and a .npz file be a zip archive: np.load
    takes anything else for a pickle and says "This file contains pickled (object) data"."""
    with open(p, "rb") as f:
        head = f.read(6)
    is_npy, is_zip = head == b"\x93NUMPY", head[:2] == b"PK"
    if not head:
        why = "it is empty"
    elif suffix == ".npy" and not is_npy:
        why = "it is a zip archive: rename it to .npz" if is_zip else "no NumPy header"
    elif suffix == ".npz" and not is_zip:
        why = "it is a .npy file: rename it to .npy" if is_npy else "not a zip archive"
    else:
        return
    kind = ".npy file" if suffix == ".npy" else ".npz archive"
    raise CLIError(f"{p}: not a valid {kind} ({why})")


def _object_array_error(e: ValueError) -> bool:
    return "allow_pickle" in str(e)


def _numpy_value_error(e: ValueError, path, member: str | None = None) -> CLIError:
    """The CLIError of a NumPy read that raised ValueError: an object array (refused: no
    unpickling), or an unreadable array; of the .npy file ``path`` or of the .npz archive's
    ``member``."""
    what = f"{path}: holds" if member is None else f"{path}: {member!r} is"
    if _object_array_error(e):
        return CLIError(f"{what} an object array; lowdim reads numeric arrays only")
    if member is None:
        return CLIError(f"{path}: not a readable .npy array ({_one_line(e)})")
    return CLIError(f"{path}: cannot read {member!r} ({_one_line(e)})")


def _npz_member(z, name: str, path):
    """``z[name]`` as an ndarray, or a CLIError naming ``path``: a member can be corrupted
    (bad CRC, broken deflate stream), an object array, or a file that is not a .npy."""
    import zipfile
    import zlib

    import numpy as np

    try:
        a = z[name]
    except ValueError as e:
        raise _numpy_value_error(e, path, name) from e
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise CLIError(
            f"{path}: a corrupted .npz archive: cannot read {name!r} ({_one_line(e)})"
        ) from e
    if not isinstance(a, np.ndarray):
        raise CLIError(f"{path}: {name!r} is not a NumPy array (not a .npy file in the archive)")
    return a


def load_array(path: str, key: str | None = None, *, image_gray: bool = False):
    """Read INPUT: .npy, .npz (one array or ``key``; a scipy.sparse ``save_npz`` file is
    returned as a sparse CSR matrix), CSV/TSV text (:func:`load_text`), or an image (PNG,
    JPEG, ...: H x W x 3 floats in [0, 1], or H x W gray with ``image_gray``). Raises
    :class:`CLIError` with a message that names the file and what is wrong.

    Examples
    --------
    >>> import os, tempfile
    >>> from lowdim.cli import load_array
    >>> path = os.path.join(tempfile.mkdtemp(), "A.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("x,y\\n1,2\\n3,4\\n")
    >>> load_array(path)
    array([[1., 2.],
           [3., 4.]])
    """
    import numpy as np

    p = _existing(path)
    suffix = p.suffix.lower()
    if key is not None and suffix != ".npz":
        raise CLIError(f"--key applies to .npz files, not to {p.name}")
    if suffix == ".npy":
        _check_numpy_file(p, suffix)
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as e:
            raise _numpy_value_error(e, path) from e
        except EOFError as e:
            raise CLIError(f"{path}: not a readable .npy array ({_one_line(e)})") from e
    if suffix == ".npz":
        import zipfile
        import zlib

        _check_numpy_file(p, suffix)
        try:
            z = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise CLIError(f"{path}: not a readable .npz archive ({_one_line(e)})") from e
        with z:
            if key is None and _npz_is_sparse(z):
                import scipy.sparse as sp

                try:
                    return sp.load_npz(p).tocsr()
                except (ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                    raise CLIError(f"{path}: a broken scipy.sparse archive ({_one_line(e)})") from e
            names = list(z.files)
            if key is not None:
                if key not in names:
                    raise CLIError(f"{path} has no array {key!r}; it holds {', '.join(names)}")
                return _npz_member(z, key, path)
            if len(names) != 1:
                listed = ", ".join(names) if names else "nothing"
                raise CLIError(
                    f"{path} holds {len(names)} arrays ({listed}); choose one with --key NAME"
                )
            return _npz_member(z, names[0], path)
    if suffix in TEXT_SUFFIXES:
        return load_text(p)
    if suffix in IMAGE_SUFFIXES:
        return load_image(p, gray=image_gray)
    raise CLIError(
        f"{path}: unknown file type {suffix or '(no suffix)'}; use .npy, .npz, "
        ".csv/.tsv/.txt or an image (.png, .jpg)"
    )


def output_path(args, what: str, suffix: str = ".npz") -> Path:
    """``-o`` (checked before any work is done), else ``<INPUT stem>.<what><suffix>`` here.
    ``-o`` must end in ``suffix``: np.save / np.savez append it to any other name, so the file
    written would not be the one named."""
    if not args.output:
        return Path(Path(args.input).stem + f".{what}{suffix}")
    path = Path(args.output)
    if path.suffix != suffix:
        raise CLIError(f"-o {path}: the output must be a {suffix} file")
    if not path.parent.is_dir():
        raise CLIError(f"-o {path}: directory {path.parent} does not exist")
    return path


def _fmt_values(s, limit: int = 10) -> str:
    shown = " ".join(f"{v:.4g}" for v in s[:limit])
    return shown + (f" ... ({len(s) - limit} more)" if len(s) > limit else "")


def _shape_str(shape) -> str:
    return " x ".join(str(n) for n in shape)


# --------------------------------------------------------------------------------------------
# lowdim svd


def _svd_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help=".npy, .npz, scipy.sparse .npz, CSV/TSV")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-k", "--rank", dest="k", type=int, metavar="K", help="target rank")
    g.add_argument(
        "--tol", type=float, metavar="T", help="relative Frobenius error target in (0, 1)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--n-iter", type=int, default=None, help="power iterations (default: auto)")
    p.add_argument(
        "--solver",
        choices=("auto", "randomized", "gram"),
        default="auto",
        help="auto (default): Gram + eigh for tall-skinny dense input when cheaper",
    )
    p.add_argument("--key", help="the array to use in a .npz holding several")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="where to write U, S, Vh")


def _matrix_of(a, path, command: str):
    """``a`` as a 2-D array (or sparse matrix) of a real dtype, else a CLIError naming
    ``command``."""
    import numpy as np
    import scipy.sparse as sp

    if not sp.issparse(a):
        a = np.asarray(a)
        if a.ndim != 2:
            hint = "; use lowdim tucker for tensors" if command == "svd" and a.ndim > 2 else ""
            raise CLIError(f"{path}: {command} needs a 2-D matrix, but {_shape_desc(a)}{hint}")
    _check_real(a, path)
    return a


def _check_real(a, path) -> None:
    """Bool, complex and non-numeric input rejected before any work, with the message the
    kernels give (``_validation.result_dtype``) but naming the file."""
    from ._validation import result_dtype

    try:
        result_dtype(a.dtype, str(path))
    except TypeError as e:
        raise CLIError(str(e)) from e


def _shape_desc(a) -> str:
    """``it holds a single number (a 0-D array)`` or ``the array has shape (5,) (1-D)``."""
    if a.ndim == 0:
        return "it holds a single number (a 0-D array)"
    return f"the array has shape {a.shape} ({a.ndim}-D)"


@command(
    "svd", "truncated SVD of a matrix (fixed rank -k or error tolerance --tol)", _svd_arguments
)
def cmd_svd(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    import lowdim

    out = output_path(args, "svd")
    A = _matrix_of(load_array(args.input, args.key, image_gray=True), args.input, "svd")
    kind = f"sparse, nnz={A.nnz}" if sp.issparse(A) else "dense"
    _say(args, f"{args.input}: {_shape_str(A.shape)} {A.dtype} ({kind})")
    n_iter = "auto" if args.n_iter is None else args.n_iter
    t0 = time.perf_counter()
    res = lowdim.rsvd(
        A,
        args.k,
        tol=args.tol,
        seed=args.seed,
        n_iter=n_iter,
        solver=args.solver,
        progress=not args.quiet,
    )
    t = time.perf_counter() - t0
    U, S, Vh = res
    lines = [
        f"rank      {S.size}",
        f"time      {t * 1e3:.1f} ms ({res.solver}, {lowdim.get_num_threads()} threads)",
        f"singular values  {_fmt_values(S)}",
    ]
    if res.rel_error is not None:
        lines.append(
            f"error     ||A - U S Vh||_F / ||A||_F = {res.rel_error:.3e} (certified, tol "
            f"{args.tol:g})"
        )
    else:
        est = lowdim.svd_error(A, U, S, Vh, n_iter=10, seed=args.seed)
        rel = est / S[0] if S.size and S[0] > 0 else 0.0
        lines.append(f"error     ||A - U S Vh||_2 ~ {est:.3e} ({rel:.2e} of s_1, estimated)")
    np.savez(out, U=U, S=S, Vh=Vh)
    lines.append(
        f"wrote     {out} (U {_shape_str(U.shape)}, S {S.size}, Vh {_shape_str(Vh.shape)})"
    )
    _say(args, *lines)
    return 0


# --------------------------------------------------------------------------------------------
# lowdim tucker


def _parse_ranks(s: str) -> list[int]:
    bad = argparse.ArgumentTypeError(
        f"{s!r} is not a rank: give R or R1,R2,... (positive integers)"
    )
    try:
        ranks = [int(t) for t in s.replace(" ", "").split(",") if t]
    except ValueError:
        raise bad from None
    if not ranks or min(ranks) < 1:
        raise bad
    return ranks


def _tucker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help=".npy, .npz, or an image (H x W x 3)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "-r",
        "--rank",
        type=_parse_ranks,
        metavar="R[,R...]",
        help="multilinear rank: one per mode, or one R for every mode (capped at its size)",
    )
    g.add_argument(
        "--tol", type=float, metavar="T", help="relative Frobenius error target in (0, 1)"
    )
    p.add_argument(
        "--method", choices=("sthosvd", "hosvd", "hooi"), default="sthosvd", help="(sthosvd)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--key", help="the array to use in a .npz holding several")
    p.add_argument(
        "-o", "--output", metavar="OUT.npz", help="where to write core, factor_0, ..., modes"
    )


@command(
    "tucker", "Tucker decomposition of a tensor or an image (--rank or --tol)", _tucker_arguments
)
def cmd_tucker(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    import lowdim

    out = output_path(args, "tucker")
    X = load_array(args.input, args.key)
    if sp.issparse(X):
        raise CLIError(f"{args.input}: tucker needs a dense array, not a sparse matrix")
    X = np.asarray(X)
    if X.ndim < 2:
        raise CLIError(
            f"{args.input}: tucker needs an array of at least 2 dimensions, but {_shape_desc(X)}"
        )
    _check_real(X, args.input)
    rank = args.rank
    if rank is not None and len(rank) == 1:
        # one R: R for every mode, capped at the mode's size (an image's 3 colours)
        rank = [min(rank[0], n) for n in X.shape]
    _say(args, f"{args.input}: {_shape_str(X.shape)} {X.dtype}")
    t0 = time.perf_counter()
    T = lowdim.tucker(
        X, rank, tol=args.tol, method=args.method, seed=args.seed, progress=not args.quiet
    )
    t = time.perf_counter() - t0
    lines = [
        f"ranks     {_shape_str(T.ranks)}",
        f"time      {t * 1e3:.1f} ms ({args.method}, {lowdim.get_num_threads()} threads)",
        f"compression ratio  {T.compression_ratio:.1f}x "
        f"({T.core.size + sum(f.size for f in T.factors)} of {X.size} entries stored)",
    ]
    kind = "exact" if args.method != "hosvd" else "upper bound"
    lines.append(
        f"error     ||X - X_hat||_F / ||X||_F = {T.certified_error:.3e} (certified, {kind})"
    )
    factors = {f"factor_{i}": f for i, f in enumerate(T.factors)}
    np.savez(out, core=T.core, modes=np.asarray(T.modes), **factors)
    lines.append(f"wrote     {out} (core {_shape_str(T.core.shape)}, {len(T.factors)} factors)")
    _say(args, *lines)
    return 0


# --------------------------------------------------------------------------------------------
# lowdim cluster

CLUSTER_METHODS = ("ssc-omp", "ensc", "lsr", "tsc", "kss")


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help=".npy, .npz or CSV/TSV: one point per row")
    p.add_argument("--method", choices=CLUSTER_METHODS, default="ensc", help="(ensc)")
    p.add_argument(
        "-n",
        "--n-clusters",
        type=int,
        metavar="K",
        help="number of clusters (default: estimated from the eigengap; required for kss)",
    )
    p.add_argument(
        "--subspace-dim", type=int, metavar="D", default=None, help="kss: subspace dimension"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--key", help="the array to use in a .npz holding several")
    p.add_argument("--labels", metavar="TRUE.npy", help="true labels: print accuracy/NMI/ARI")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="where to write the labels")


def make_clusterer(method: str, n_clusters, seed: int, subspace_dim=None, progress=False):
    """The estimator behind ``lowdim cluster --method``."""
    from . import cluster

    kw = {"random_state": seed, "progress": progress}
    if method == "ssc-omp":
        return cluster.SSCOMP(n_clusters, **kw)
    if method == "ensc":
        return cluster.EnSC(n_clusters, **kw)
    if method == "lsr":
        return cluster.LSR(n_clusters, **kw)
    if method == "tsc":
        return cluster.TSC(n_clusters, **kw)
    if n_clusters is None:
        raise CLIError("--method kss needs --n-clusters")
    if subspace_dim is None:
        raise CLIError("--method kss needs --subspace-dim")
    return cluster.KSubspaces(n_clusters, subspace_dim, random_state=seed)


@command("cluster", "subspace clustering of the rows of a matrix", _cluster_arguments)
def cmd_cluster(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    import lowdim
    from lowdim.metrics import clustering_accuracy

    out = output_path(args, "labels", ".npy")
    X = load_array(args.input, args.key)
    if sp.issparse(X):
        raise CLIError(f"{args.input}: cluster needs a dense matrix, not a sparse one")
    X = _matrix_of(X, args.input, "cluster")
    truth = None
    if args.labels is not None:
        truth = np.asarray(load_array(args.labels)).ravel()
        if truth.shape[0] != X.shape[0]:
            raise CLIError(
                f"{args.labels}: {truth.shape[0]} labels for {X.shape[0]} points in {args.input}"
            )
    model = make_clusterer(
        args.method, args.n_clusters, args.seed, args.subspace_dim, progress=not args.quiet
    )
    _say(args, f"{args.input}: {X.shape[0]} points in R^{X.shape[1]}, method {args.method}")
    t0 = time.perf_counter()
    labels = model.fit_predict(X)
    t = time.perf_counter() - t0
    sizes = np.bincount(labels)
    k = sizes.size
    lines = [
        f"clusters  {k}" + (" (estimated from the eigengap)" if args.n_clusters is None else ""),
        f"time      {t * 1e3:.1f} ms ({lowdim.get_num_threads()} threads)",
        f"sizes     {' '.join(str(int(v)) for v in sizes[:20])}"
        + (f" ... ({k - 20} more)" if k > 20 else ""),
    ]
    if truth is not None:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        lines.append(
            f"accuracy  {clustering_accuracy(truth, labels):.4f}   "
            f"NMI {normalized_mutual_info_score(truth, labels):.4f}   "
            f"ARI {adjusted_rand_score(truth, labels):.4f}"
        )
    np.save(out, labels)
    lines.append(f"wrote     {out} ({labels.shape[0]} labels)")
    _say(args, *lines)
    return 0


# --------------------------------------------------------------------------------------------
# lowdim demo

# Pixel size of each figure (width, height) = figsize * DPI; the tests check them.
DPI = 100
FIGURES = {
    "spectrum.png": (8.0, 4.0),
    "photo.png": (12.0, 2.6),
    "time_vs_size.png": (6.4, 4.4),
    "confusion.png": (9.0, 4.2),
}


def figure_pixels(name: str) -> tuple[int, int]:
    """``(width, height)`` in pixels of the demo figure ``name``."""
    w, h = FIGURES[name]
    return round(w * DPI), round(h * DPI)


def _timed(f, repeat=1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return out, best


@dataclass
class DemoContext:
    """What the demo sections share: sizes, the table, and data for the figures."""

    small: bool
    out: object  # text stream of the table
    rows: list = field(default_factory=list)
    plots: dict = field(default_factory=dict)

    @property
    def repeat(self) -> int:
        """Timing runs per measurement (best of); 1 in small mode."""
        return 1 if self.small else 2

    def row(self, case, method, seconds, result) -> None:
        self.rows.append((case, method, seconds, result))
        print(f"  {case:<34} {method:<28} {seconds * 1e3:9.1f} ms   {result}", file=self.out)


def demo_digits(ctx: DemoContext) -> None:
    """PCA of scikit-learn's bundled digits (1797 x 64)."""
    import numpy as np
    from sklearn.datasets import load_digits

    import lowdim

    X = load_digits().data
    pca, t = _timed(lambda: lowdim.PCA(n_components=10, random_state=0).fit(X), 3)
    ctx.row(
        "digits PCA, 10 components",
        "lowdim.PCA",
        t,
        f"explained variance {pca.explained_variance_ratio_.sum():.3f}",
    )
    pca90, t = _timed(lambda: lowdim.PCA(n_components=0.9, random_state=0).fit(X), 3)
    ctx.row(
        "digits PCA, 90% variance",
        "lowdim.PCA(n_components=0.9)",
        t,
        f"{pca90.n_components_} components",
    )
    Xc = X - X.mean(axis=0)
    full = np.linalg.svd(Xc, compute_uv=False)
    ours = lowdim.rsvd(Xc, 30, seed=0).S
    ctx.plots["spectrum_digits"] = (full, ours)


def _decaying(m, n, rng):
    import numpy as np

    r = min(200, m, n)
    U0, _ = np.linalg.qr(rng.standard_normal((m, r)))
    V0, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s0 = 1.0 / (1.0 + np.arange(r)) ** 1.5
    return (U0 * s0) @ V0.T + 1e-6 * rng.standard_normal((m, n))


def demo_dense(ctx: DemoContext) -> None:
    """A large synthetic matrix with a decaying spectrum: lowdim vs sklearn vs numpy."""
    import numpy as np
    from sklearn.utils.extmath import randomized_svd

    import lowdim

    m, n, k = (1200, 600, 20) if ctx.small else (4000, 2000, 50)
    rng = np.random.default_rng(0)
    A = _decaying(m, n, rng)
    case = f"dense {m}x{n}, k={k}"

    def err(U, S, Vh):
        # power iteration on the residual: a lower bound that converges to the norm
        return lowdim.svd_error(A, U, S, Vh, n_iter=60, seed=0)

    res, t_ours = _timed(lambda: lowdim.rsvd(A, k, n_iter=4, seed=0), ctx.repeat)
    ctx.row(case, "lowdim.rsvd", t_ours, f"||A - A_k||_2 ~ {err(*res):.3e}")
    res_sk, t_sk = _timed(lambda: randomized_svd(A, k, n_iter=4, random_state=0), ctx.repeat)
    ctx.row(case, "sklearn randomized_svd", t_sk, f"||A - A_k||_2 ~ {err(*res_sk):.3e}")
    full, t_full = _timed(lambda: np.linalg.svd(A, compute_uv=False))
    ctx.row(case, "numpy.linalg.svd (full)", t_full, f"optimal {full[k]:.3e}")
    tol_res, t = _timed(lambda: lowdim.rsvd(A, tol=1e-2, seed=0))
    ctx.row(
        f"dense {m}x{n}, tol=1e-2",
        "lowdim.rsvd(tol=...)",
        t,
        f"rank {tol_res.S.size}, error {tol_res.rel_error:.2e}",
    )
    ctx.plots["spectrum_dense"] = (full[: 2 * k], res.S, res_sk[1], case)
    ctx.plots["speedup"] = t_sk / t_ours


def demo_sparse(ctx: DemoContext) -> None:
    """A sparse LSA-like matrix, never densified."""
    import numpy as np
    import scipy.sparse as sp

    import lowdim

    rng = np.random.default_rng(1)
    ms, ns = (10000, 3000) if ctx.small else (100000, 20000)
    nnz = int(0.002 * ms * ns)
    X = sp.csr_matrix(
        (rng.standard_normal(nnz), (rng.integers(0, ms, nnz), rng.integers(0, ns, nnz))),
        shape=(ms, ns),
    )
    tsvd, t = _timed(lambda: lowdim.TruncatedSVD(50, random_state=0).fit(X))
    ctx.row(
        f"sparse {ms}x{ns}, nnz={X.nnz}",
        "lowdim.TruncatedSVD(50)",
        t,
        f"top singular value {tsvd.singular_values_[0]:.3f}",
    )


def demo_photo(ctx: DemoContext) -> None:
    """Tucker compression of scikit-learn's bundled photo at several tolerances."""
    import numpy as np
    from sklearn.datasets import load_sample_image

    import lowdim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = load_sample_image("china.jpg")  # 427 x 640 x 3, uint8
    if ctx.small:
        img = img[::2, ::2]
    X = img.astype(np.float64) / 255.0
    shots = []
    for tol in (0.2, 0.15, 0.1, 0.05):
        T, t = _timed(lambda tol=tol: lowdim.tucker(X, tol=tol))
        err = T.certified_error
        ctx.row(
            f"photo {_shape_str(X.shape)}, tol={tol:g}",
            "lowdim.tucker (ST-HOSVD)",
            t,
            f"ranks {_shape_str(T.ranks)}, {T.compression_ratio:.1f}x, error {err:.3f}",
        )
        shots.append((tol, T.compression_ratio, err, np.clip(T.to_tensor(), 0, 1)))
    ctx.plots["photo"] = (X, shots)


def demo_timings(ctx: DemoContext) -> None:
    """Time vs size: lowdim.rsvd, sklearn randomized_svd, numpy full SVD (k = 20)."""
    import numpy as np
    from sklearn.utils.extmath import randomized_svd

    import lowdim

    sizes = (150, 300, 600) if ctx.small else (500, 1000, 2000)
    k = 20
    rng = np.random.default_rng(2)
    out = {"lowdim.rsvd": [], "sklearn randomized_svd": [], "numpy.linalg.svd (values)": []}
    ns = []
    for n in sizes:
        A = _decaying(2 * n, n, rng)
        ns.append(n)
        out["lowdim.rsvd"].append(
            _timed(lambda A=A: lowdim.rsvd(A, k, n_iter=4, seed=0), ctx.repeat)[1]
        )
        out["sklearn randomized_svd"].append(
            _timed(lambda A=A: randomized_svd(A, k, n_iter=4, random_state=0), ctx.repeat)[1]
        )
        if n <= 1000:
            # singular values only: numpy's cheapest full SVD
            out["numpy.linalg.svd (values)"].append(
                _timed(lambda A=A: np.linalg.svd(A, compute_uv=False))[1]
            )
    last = ns[-1]
    ctx.row(
        f"time vs size, up to {2 * last}x{last}",
        f"lowdim.rsvd, k={k}",
        out["lowdim.rsvd"][-1],
        f"sklearn {out['sklearn randomized_svd'][-1] * 1e3:.1f} ms",
    )
    ctx.plots["timings"] = (ns, out, k)


def demo_cluster(ctx: DemoContext) -> None:
    """Subspace clustering of digits and of a synthetic union of subspaces, beside k-means."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits
    from sklearn.metrics import confusion_matrix

    from lowdim.cluster import SSCOMP, TSC, EnSC
    from lowdim.datasets import union_of_subspaces
    from lowdim.metrics import clustering_accuracy

    per = 150 if ctx.small else 1000
    X, y = union_of_subspaces(10, 6, 50, per, noise=0.01, seed=0)
    case = f"union of 10 subspaces, {X.shape[0]} pts"
    for name, est in (
        ("lowdim SSCOMP", SSCOMP(10, random_state=0)),
        ("lowdim EnSC", EnSC(10, random_state=0)),
        ("sklearn KMeans", KMeans(10, n_init=10, random_state=0)),
    ):
        labels, t = _timed(lambda est=est: est.fit_predict(X))
        ctx.row(case, name, t, f"accuracy {clustering_accuracy(y, labels):.3f}")
    digits = load_digits()
    Xd, yd = digits.data / 16.0, digits.target
    if ctx.small:
        Xd, yd = Xd[:600], yd[:600]
    best = None
    for name, est in (
        ("lowdim TSC", TSC(10, random_state=0)),
        ("lowdim EnSC", EnSC(10, gamma=20, random_state=0)),
        ("sklearn KMeans", KMeans(10, n_init=10, random_state=0)),
    ):
        labels, t = _timed(lambda est=est: est.fit_predict(Xd))
        acc = clustering_accuracy(yd, labels)
        ctx.row(f"digits {Xd.shape[0]} x 64", name, t, f"accuracy {acc:.3f}")
        if name.startswith("lowdim") and (best is None or acc > best[1]):
            best = (name, acc, labels)
    km = labels
    # match predicted clusters to digits for a readable confusion matrix
    from scipy.optimize import linear_sum_assignment

    def matched(lab):
        C = confusion_matrix(yd, lab, labels=np.arange(10))
        _, cols = linear_sum_assignment(C, maximize=True)
        return C[:, cols]

    ctx.plots["confusion"] = (
        (best[0], best[1], matched(best[2])),
        ("sklearn KMeans", clustering_accuracy(yd, km), matched(km)),
    )


# The table's sections, in order. A kernel adds its section (and figure) by appending here.
DEMO_SECTIONS: list[Callable[[DemoContext], None]] = [
    demo_digits,
    demo_dense,
    demo_sparse,
    demo_photo,
    demo_cluster,
    demo_timings,
]


def _new_figure(name):
    from matplotlib.figure import Figure

    return Figure(figsize=FIGURES[name], dpi=DPI)


def _save(fig, outdir: Path, name: str) -> Path:
    path = outdir / name
    fig.savefig(path, dpi=DPI)
    return path


def figure_spectrum(ctx: DemoContext, outdir: Path) -> Path | None:
    """Singular value spectra: digits (full SVD vs lowdim.rsvd) and the dense matrix."""
    import numpy as np

    if "spectrum_digits" not in ctx.plots and "spectrum_dense" not in ctx.plots:
        return None
    fig = _new_figure("spectrum.png")
    axes = fig.subplots(1, 2)
    if "spectrum_digits" in ctx.plots:
        full, ours = ctx.plots["spectrum_digits"]
        full = full[full > 1e-8 * full[0]]  # the rest is rounding (digits has rank 61)
        ax = axes[0]
        ax.semilogy(np.arange(1, full.size + 1), full, "-", color="0.6", label="numpy (full)")
        ax.semilogy(np.arange(1, ours.size + 1), ours, "o", ms=3, label="lowdim.rsvd, k=30")
        ax.set_title("digits (1797 x 64, centred)")
        ax.set_xlabel("index")
        ax.set_ylabel("singular value")
        ax.legend()
    if "spectrum_dense" in ctx.plots:
        full, ours, skl, case = ctx.plots["spectrum_dense"]
        ax = axes[1]
        ax.semilogy(np.arange(1, full.size + 1), full, "-", color="0.6", label="numpy (full)")
        ax.semilogy(np.arange(1, ours.size + 1), ours, "o", ms=3, label="lowdim.rsvd")
        ax.semilogy(np.arange(1, skl.size + 1), skl, "x", ms=3, label="sklearn")
        ax.set_title(case)
        ax.set_xlabel("index")
        ax.legend()
    fig.tight_layout()
    return _save(fig, outdir, "spectrum.png")


def figure_photo(ctx: DemoContext, outdir: Path) -> Path | None:
    """The photo and its Tucker approximations at several compression ratios."""
    if "photo" not in ctx.plots:
        return None
    X, shots = ctx.plots["photo"]
    fig = _new_figure("photo.png")
    axes = fig.subplots(1, 1 + len(shots))
    axes[0].imshow(X)
    axes[0].set_title("original")
    for ax, (tol, ratio, err, img) in zip(axes[1:], shots, strict=True):
        ax.imshow(img)
        ax.set_title(f"tol {tol:g}: {ratio:.0f}x smaller\nerror {err:.3f}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, outdir, "photo.png")


def figure_timings(ctx: DemoContext, outdir: Path) -> Path | None:
    """Time vs size of the three SVDs (log-log)."""
    if "timings" not in ctx.plots:
        return None
    ns, out, k = ctx.plots["timings"]
    fig = _new_figure("time_vs_size.png")
    ax = fig.subplots()
    for (label, ts), marker in zip(out.items(), "osx", strict=True):
        ax.loglog(ns[: len(ts)], ts, marker=marker, label=label)
    ax.set_xlabel("n (matrix 2n x n)")
    ax.set_ylabel("seconds")
    ax.set_title(f"rank-{k} SVD, time vs size")
    ax.legend()
    fig.tight_layout()
    return _save(fig, outdir, "time_vs_size.png")


def figure_confusion(ctx: DemoContext, outdir: Path) -> Path | None:
    """Confusion matrices of digits: the best lowdim method and k-means."""
    if "confusion" not in ctx.plots:
        return None
    fig = _new_figure("confusion.png")
    axes = fig.subplots(1, 2)
    for ax, (name, acc, C) in zip(axes, ctx.plots["confusion"], strict=True):
        ax.imshow(C, cmap="Blues")
        ax.set_title(f"{name}: accuracy {acc:.3f}", fontsize=10)
        ax.set_xlabel("cluster (matched)")
        ax.set_ylabel("digit")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
    fig.tight_layout()
    return _save(fig, outdir, "confusion.png")


# One function per figure; each returns the written path (None when its data is missing).
DEMO_FIGURES: list[Callable[[DemoContext, Path], Path | None]] = [
    figure_spectrum,
    figure_photo,
    figure_confusion,
    figure_timings,
]


def demo(small: bool = False, out=None, outdir: str | os.PathLike | None = None) -> dict:
    """Run lowdim on bundled and synthetic data, print a comparison table and write PNGs.

    Parameters
    ----------
    small : bool, default False
        Smaller sizes (a few seconds), for tests.
    out : text stream, default sys.stdout
        Where the table goes.
    outdir : path, optional
        Directory for the PNG figures (created if needed); None writes no figures.

    Returns
    -------
    dict
        ``"rows"``: the table as ``(case, method, seconds, result)`` tuples;
        ``"figures"``: the paths written.

    Examples
    --------
    >>> import io, lowdim.cli
    >>> sorted(lowdim.cli.FIGURES)
    ['confusion.png', 'photo.png', 'spectrum.png', 'time_vs_size.png']
    >>> lowdim.cli.figure_pixels("spectrum.png")
    (800, 400)
    """
    import lowdim

    from ._validation import check_bool

    out = sys.stdout if out is None else out
    ctx = DemoContext(small=check_bool(small, "small"), out=out)
    print(f"lowdim {lowdim.__version__} demo ({lowdim.get_num_threads()} threads)", file=out)
    print(f"  {'case':<34} {'method':<28} {'time':>12}   result", file=out)
    for section in DEMO_SECTIONS:
        section(ctx)
    if "speedup" in ctx.plots:
        print(
            f"lowdim vs sklearn randomized_svd on the dense case: {ctx.plots['speedup']:.1f}x "
            "faster",
            file=out,
        )
    figures = []
    if outdir is not None:
        # Figures are drawn on matplotlib.figure.Figure (Agg canvas), never through pyplot:
        # no display is needed and the caller's backend is left alone.
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        for fig in DEMO_FIGURES:
            path = fig(ctx, outdir)
            if path is not None:
                figures.append(path)
        print(f"figures: {', '.join(str(p) for p in figures)}", file=out)
    return {"rows": ctx.rows, "figures": figures}


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--small", action="store_true", help="smaller sizes (seconds)")
    p.add_argument(
        "--out",
        metavar="DIR",
        default="lowdim-demo",
        help="directory for the PNG figures (default ./lowdim-demo)",
    )


def _check_outdir(option: str, path: str) -> None:
    """The figures' directory (or the nearest of its parents that exists) must be a directory:
    checked before the run, which takes a while."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise CLIError(f"{option} {path}: {q} is a file, not a directory")
            return


@command("demo", "run every kernel on bundled data: a table and PNG figures", _demo_arguments)
def cmd_demo(args) -> int:
    _check_outdir("--out", args.out)
    if args.quiet:
        with open(os.devnull, "w") as sink:
            demo(small=args.small, out=sink, outdir=args.out)
    else:
        demo(small=args.small, outdir=args.out)
    return 0
