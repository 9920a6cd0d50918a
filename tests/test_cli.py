"""The ``lowdim`` command line end to end (subprocess), ``lowdim demo --small`` with its PNG
figures, and the ``progress=`` hooks of the Python API (callbacks, interruption, Ctrl-C)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import lowdim
import numpy as np
import pytest
import scipy.sparse as sp
from lowdim.cli import CLIError, demo, figure_pixels, load_array, main

TIMEOUT = 120


def run_cli(*args, cwd, env=None):
    """``python -m lowdim ARGS`` in ``cwd`` -> CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "lowdim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small input files of every supported format, and the matrix / tensor they hold."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 30))
    X = lowdim.tucker_to_tensor(
        rng.standard_normal((3, 4, 2)),
        [rng.standard_normal((n, r)) for n, r in [(12, 3), (10, 4), (6, 2)]],
    )
    S = sp.random(80, 50, density=0.1, random_state=0, format="csr")
    np.save(d / "a.npy", A)
    np.savez(d / "a.npz", A=A)
    np.savez(d / "two.npz", A=A, B=2 * A)
    sp.save_npz(d / "s.npz", S)
    np.savetxt(d / "a.csv", A, delimiter=",")
    np.savetxt(d / "a.tsv", A, delimiter="\t", header="\t".join(f"c{i}" for i in range(30)))
    np.savetxt(d / "a.txt", A)
    np.save(d / "v.npy", np.ones(5))
    np.save(d / "x.npy", X)
    np.savez(d / "x.npz", X=X)
    (d / "empty.csv").write_text("")
    (d / "bad.csv").write_text("1,2,3\n4,five,6\n")
    (d / "header.csv").write_text("x,y,z\n")
    (d / "notes.xyz").write_text("hello")
    _broken_numpy_files(d, A)
    from PIL import Image

    img = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(d / "im.png")
    Image.fromarray(img).save(d / "im.jpg", quality=95)
    from lowdim.datasets import union_of_subspaces

    U, y = union_of_subspaces(3, 3, 15, 40, seed=0)
    np.save(d / "u.npy", U)
    np.savetxt(d / "u.csv", U, delimiter=",")
    np.save(d / "y.npy", y)
    np.save(d / "y_short.npy", y[:10])
    np.save(d / "u_complex.npy", U + 1j)
    np.save(d / "u_bool.npy", U > 0)
    np.save(d / "u_str.npy", U.astype(str))
    return {"dir": d, "A": A, "X": X, "S": S, "U": U, "y": y}


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3\n4,5,6\n7,8,10\n",
        "x,y,z\n1,2,3\n4,5,6\n7,8,10\n",
        "1\t2\t3\n4\t5\t6\n7\t8\t10\n",
    ],
)
def test_text_with_a_utf8_bom_keeps_every_row(tmp_path, text):
    # Excel writes "CSV UTF-8" with a BOM: it used to make the first data row a "header"
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    np.testing.assert_array_equal(load_array(str(path)), [[1, 2, 3], [4, 5, 6], [7, 8, 10]])


@pytest.mark.parametrize(
    "text",
    [
        "# c\nx,y,z\n1,2,3\n4,5,6\n",
        "\n\nx,y,z\n1,2,3\n4,5,6\n",
        "# c1\n# c2\n1,2,3\n4,5,6\n",
        "# c1\n\n  # c2\nx,y,z\n\n1,2,3\n# between\n4,5,6\n",
        "1,2,3 # first point\n4,5,6\n",
        "x y z\n1 2 3\n4 5 6\n",
    ],
)
def test_text_header_is_found_after_comment_and_blank_lines(tmp_path, text):
    # the header is the first line that is neither blank nor a comment, not the first line
    path = tmp_path / "c.csv"
    path.write_text(text)
    np.testing.assert_array_equal(load_array(str(path)), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n# comments\n"])
def test_text_without_data_lines_says_so(tmp_path, text):
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(CLIError, match="c.csv: no data"):
        load_array(str(path))


def _broken_numpy_files(d, A):
    """.npy / .npz files that np.load cannot read, or that hold no numeric array."""
    import zipfile

    np.savez(d / "stored.npz", A=A)
    b = bytearray((d / "stored.npz").read_bytes())
    b[3000:3100] = bytes(100)  # inside A's data: "Bad CRC-32" when read
    (d / "crc.npz").write_bytes(bytes(b))
    np.savez_compressed(d / "deflated.npz", A=A)
    good = (d / "deflated.npz").read_bytes()
    b = bytearray(good)
    b[100:300] = bytes(v ^ 0x55 for v in b[100:300])  # zlib.error: invalid deflate stream
    (d / "zlib.npz").write_bytes(bytes(b))
    (d / "cut.npz").write_bytes(good[:500])
    (d / "cut.npy").write_bytes((d / "a.npy").read_bytes()[:500])
    (d / "empty.npy").write_bytes(b"")
    (d / "garbage.npy").write_bytes(b"hello world " * 20)
    (d / "garbage.npz").write_bytes(b"hello world " * 20)
    (d / "zip.npy").write_bytes((d / "a.npz").read_bytes())
    (d / "npy.npz").write_bytes((d / "a.npy").read_bytes())
    np.save(d / "obj.npy", np.array([1, None], dtype=object), allow_pickle=True)
    np.savez(d / "obj.npz", a=np.array([1, None], dtype=object))
    with zipfile.ZipFile(d / "txt.npz", "w") as zf:
        zf.writestr("notes.txt", "hello")
    np.savez(d / "scalar.npz", a=np.float64(3))


def check_svd_output(path, A, k):
    with np.load(path) as z:
        U, S, Vh = z["U"], z["S"], z["Vh"]
    assert U.shape == (A.shape[0], k) and S.shape == (k,) and Vh.shape == (k, A.shape[1])
    s_true = np.linalg.svd(A.toarray() if sp.issparse(A) else A, compute_uv=False)[:k]
    np.testing.assert_allclose(S, s_true, rtol=1e-6)


@pytest.mark.parametrize(
    "name,key",
    [("a.npy", None), ("a.npz", None), ("two.npz", "B"), ("a.csv", None), ("a.tsv", None),
     ("a.txt", None), ("s.npz", None)],
)  # fmt: skip
def test_svd_each_input_format(files, name, key):
    d = files["dir"]
    out = d / f"out-{name}.npz"
    args = ["svd", name, "-k", 4, "-o", out] + (["--key", key] if key else [])
    r = run_cli(*args, cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no bar: stderr is not a terminal
    assert "rank      4" in r.stdout and "singular values" in r.stdout
    assert "||A - U S Vh||_2 ~" in r.stdout and str(out) in r.stdout
    A = {"two.npz": 2 * files["A"], "s.npz": files["S"]}.get(name, files["A"])
    check_svd_output(out, A, 4)


def test_svd_tol_mode_and_default_output_name(files):
    d = files["dir"]
    r = run_cli("svd", "a.npy", "--tol", "1e-6", "--seed", "3", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "rank      6" in r.stdout and "certified" in r.stdout
    check_svd_output(d / "a.svd.npz", files["A"], 6)


def test_svd_quiet_prints_nothing(files):
    d = files["dir"]
    r = run_cli("svd", "a.npy", "-k", "3", "-o", "q.npz", "--quiet", cwd=d)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    check_svd_output(d / "q.npz", files["A"], 3)
    r = run_cli("-q", "tucker", "x.npy", "--rank", "3,4,2", "-o", "q2.npz", cwd=d)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.mark.parametrize("name", ["x.npy", "x.npz"])
@pytest.mark.parametrize("method", ["sthosvd", "hosvd", "hooi"])
def test_tucker_arrays(files, name, method):
    d = files["dir"]
    out = d / f"t-{name}-{method}.npz"
    r = run_cli("tucker", name, "--rank", "3,4,2", "--method", method, "-o", out, cwd=d)
    assert r.returncode == 0, r.stderr
    assert "ranks     3 x 4 x 2" in r.stdout and "compression ratio" in r.stdout
    with np.load(out) as z:
        core = z["core"]
        factors = [z[f"factor_{i}"] for i in range(3)]
        assert list(z["modes"]) == [0, 1, 2]
    Xh = lowdim.tucker_to_tensor(core, factors)
    X = files["X"]
    assert np.linalg.norm(Xh - X) <= 1e-10 * np.linalg.norm(X)


@pytest.mark.parametrize("name", ["im.png", "im.jpg"])
def test_tucker_image_is_h_w_3(files, name):
    d = files["dir"]
    r = run_cli("tucker", name, "--tol", "0.2", "-o", "img.npz", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "24 x 32 x 3" in r.stdout
    with np.load(d / "img.npz") as z:
        assert [z[f"factor_{i}"].shape[0] for i in range(3)] == [24, 32, 3]
        assert z["core"].ndim == 3
    r = run_cli("tucker", name, "--rank", "5", "-o", "img1.npz", cwd=d)
    assert r.returncode == 0 and "5 x 5 x 3" in r.stdout


@pytest.mark.parametrize("name", ["g16.png", "g16.tif"])
def test_16_bit_images_load_scaled_into_0_1(tmp_path, name):
    # Pillow's convert("L") / convert("RGB") clip 16-bit values at 255: every pixel was 1.0
    from PIL import Image

    arr = (np.arange(12 * 10).reshape(12, 10) * 546).astype(np.uint16)
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    np.testing.assert_array_equal(load_array(str(path), image_gray=True), arr / 65535)
    rgb = load_array(str(path))
    assert rgb.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], arr / 65535)


def test_a_16_bit_png_opened_as_mode_i_loads_scaled_into_0_1(tmp_path, monkeypatch):
    # Pillow < 10 opens a 16-bit gray PNG as mode "I" (32-bit), not "I;16"
    from PIL import Image

    arr = (np.arange(12 * 10).reshape(12, 10) * 546).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    open_image = Image.open

    def open_as_mode_i(path):
        with open_image(path) as im:
            as_i = im.convert("I")
        as_i.format = "PNG"
        return as_i

    monkeypatch.setattr(Image, "open", open_as_mode_i)
    got = load_array(str(tmp_path / "g16.png"), image_gray=True)
    np.testing.assert_array_equal(got, arr / 65535)


def test_8_bit_images_load_scaled_into_0_1(files):
    from PIL import Image

    path = files["dir"] / "im.png"
    with Image.open(path) as im:
        rgb, gray = np.asarray(im), np.asarray(im.convert("L"))
    np.testing.assert_array_equal(load_array(str(path)), rgb / 255)
    np.testing.assert_array_equal(load_array(str(path), image_gray=True), gray / 255)


def test_float_images_in_0_1_load_as_they_are(tmp_path):
    from PIL import Image

    arr = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    Image.fromarray(arr).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(load_array(str(tmp_path / "f.tif"), image_gray=True), arr)
    assert load_array(str(tmp_path / "f.tif")).shape == (4, 5, 3)


@pytest.mark.parametrize(
    "arr,message",
    [
        (np.linspace(0, 3, 20, dtype=np.float32).reshape(4, 5), "values outside [0, 1]"),
        ((np.arange(20) * 100000).astype(np.int32).reshape(4, 5), "32-bit integer image"),
    ],
)
def test_images_without_a_known_range_are_rejected(tmp_path, arr, message):
    from PIL import Image

    Image.fromarray(arr).save(tmp_path / "m.tif")
    with pytest.raises(CLIError, match=f"m.tif: .*{re.escape(message)}"):
        load_array(str(tmp_path / "m.tif"), image_gray=True)


@pytest.mark.parametrize(
    "args,message",
    [
        (["svd", "missing.npy", "-k", "3"], "missing.npy: no such file"),
        (["tucker", "missing.png", "--tol", "0.1"], "missing.png: no such file"),
        (["svd", "v.npy", "-k", "2"], "needs a 2-D matrix"),
        (["svd", "x.npy", "-k", "2"], "use lowdim tucker"),
        (["tucker", "v.npy", "--rank", "1"], "at least 2 dimensions"),
        (["tucker", "s.npz", "--rank", "2"], "not a sparse matrix"),
        (["svd", "a.npy", "-k", "100"], "k=100 is larger than min(m, n) = 30"),
        (["svd", "a.npy", "-k", "0"], "k=0"),
        (["svd", "a.npy", "--tol", "2"], "tol=2.0 is out of range"),
        (["svd", "a.npy", "--tol", "0"], "tol=0.0 is out of range"),
        (["tucker", "x.npy", "--tol", "1.5"], "tol=1.5 is out of range"),
        (["tucker", "x.npy", "--rank", "3,4"], "rank has 2 entries but 3 modes"),
        (["tucker", "x.npy", "--rank", "20,4,2"], "rank 20 for mode 0 is larger than its size 12"),
        (["svd", "two.npz", "-k", "2"], "holds 2 arrays (A, B); choose one with --key"),
        (["svd", "two.npz", "-k", "2", "--key", "C"], "has no array 'C'"),
        (["svd", "a.npy", "-k", "2", "--key", "A"], "--key applies to .npz"),
        (["svd", "empty.csv", "-k", "1"], "empty"),
        (["svd", "bad.csv", "-k", "1"], "cannot read it as a table of numbers"),
        (["svd", "header.csv", "-k", "1"], "header.csv: no data rows"),  # no loadtxt warning
        (["svd", "notes.xyz", "-k", "1"], "unknown file type .xyz"),
        (["svd", "crc.npz", "-k", "1"], "crc.npz: a corrupted .npz archive: cannot read 'A'"),
        (["svd", "zlib.npz", "-k", "1"], "zlib.npz: a corrupted .npz archive: cannot read 'A'"),
        (["cluster", "zlib.npz", "-n", "2"], "zlib.npz: a corrupted .npz archive"),
        (["svd", "cut.npz", "-k", "1"], "cut.npz: not a readable .npz archive"),
        (["svd", "cut.npy", "-k", "1"], "cut.npy: not a readable .npy array"),
        (["svd", "empty.npy", "-k", "1"], "empty.npy: not a valid .npy file (it is empty)"),
        (["svd", "garbage.npy", "-k", "1"], "garbage.npy: not a valid .npy file (no NumPy header)"),
        (["svd", "garbage.npz", "-k", "1"], "garbage.npz: not a valid .npz archive (not a zip"),
        (["svd", "zip.npy", "-k", "1"], "zip.npy: not a valid .npy file (it is a zip archive"),
        (["svd", "npy.npz", "-k", "1"], "npy.npz: not a valid .npz archive (it is a .npy file"),
        (["svd", "obj.npy", "-k", "1"], "obj.npy: holds an object array; lowdim reads numeric"),
        (["svd", "obj.npz", "-k", "1"], "obj.npz: 'a' is an object array; lowdim reads numeric"),
        (["tucker", "obj.npz", "--rank", "1"], "obj.npz: 'a' is an object array"),
        (["svd", "txt.npz", "-k", "1"], "txt.npz: 'notes.txt' is not a NumPy array"),
        (
            ["svd", "scalar.npz", "-k", "1"],
            "scalar.npz: svd needs a 2-D matrix, but it holds a single number (a 0-D array)",
        ),
        (
            ["tucker", "scalar.npz", "--rank", "1"],
            "scalar.npz: tucker needs an array of at least 2 dimensions, but it holds a single",
        ),
        (["svd", "a.npy", "-k", "2", "-o", "out.txt"], "must be a .npz file"),
        (["svd", "a.npy", "-k", "2", "-o", "nodir/out.npz"], "does not exist"),
        (["cluster", "u.npy", "--method", "kss"], "needs --n-clusters"),
        (["cluster", "u.npy", "--method", "kss", "-n", "3"], "needs --subspace-dim"),
        (["cluster", "u.npy", "-n", "500"], "n_clusters=500 is larger than the number of points"),
        (["cluster", "u.npy", "-n", "3", "--labels", "y_short.npy"], "10 labels for 120 points"),
        (["cluster", "s.npz", "-n", "3"], "not a sparse one"),
        (["cluster", "v.npy", "-n", "3"], "v.npy: cluster needs a 2-D matrix"),
        (["cluster", "x.npy", "-n", "3"], "x.npy: cluster needs a 2-D matrix, but the array has"),
        (["cluster", "u.npy", "-n", "3", "-o", "nodir/l.npy"], "does not exist"),
        (["cluster", "u.npy", "-n", "3", "-o", "l.npz"], "must be a .npy file"),
        (["cluster", "u.npy", "-n", "3", "-o", "l"], "must be a .npy file"),
    ],
)
def test_errors_are_one_line_with_exit_2(files, args, message):
    r = run_cli(*args, cwd=files["dir"])
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("lowdim: error: ") and message in err, err


@pytest.mark.parametrize(
    "args,message",
    [
        (["svd", "a.npy"], "one of the arguments -k/--rank --tol is required"),
        (["svd", "a.npy", "-k", "x"], "invalid int value: 'x'"),
        (["svd", "a.npy", "-k", "2", "--tol", "0.1"], "not allowed with argument"),
        (["tucker", "x.npy", "--rank", "a,b"], "'a,b' is not a rank"),
        (["tucker", "x.npy", "--rank", "0"], "'0' is not a rank"),
        (["tucker", "x.npy", "--rank", "2", "--method", "cp"], "invalid choice: 'cp'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(files, args, message):
    r = run_cli(*args, cwd=files["dir"])
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "\n" not in err and message in err, err
    # argparse's errors name the subcommand whose arguments are wrong (as the README says)
    prog = f"lowdim {args[0]}" if args[0] in ("svd", "tucker", "cluster", "demo") else "lowdim"
    assert err.startswith(f"{prog}: error: ") and err.endswith(f"(see {prog} --help)"), err


@pytest.mark.parametrize(
    "name,method,extra",
    [
        ("u.npy", "ssc-omp", []),
        ("u.csv", "ensc", []),
        ("u.npy", "lsr", []),
        ("u.npy", "tsc", []),
        ("u.npy", "kss", ["--subspace-dim", "3"]),
    ],
)
def test_cluster_each_method_recovers_the_subspaces(files, name, method, extra):
    d = files["dir"]
    out = d / f"labels-{method}.npy"
    r = run_cli("cluster", name, "--method", method, "-n", "3", "--labels", "y.npy", "-o", out,
                *extra, cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "accuracy  1.0000" in r.stdout and "NMI 1.0000" in r.stdout, r.stdout
    labels = np.load(out)
    assert labels.shape == (120,) and labels.dtype == np.int64
    from lowdim.metrics import clustering_accuracy

    assert clustering_accuracy(files["y"], labels) == 1.0


@pytest.mark.parametrize("name", ["l.npz", "l", "l.NPY"])
def test_cluster_rejects_an_output_that_is_not_npy_before_any_work(tmp_path, files, name):
    # np.save appends .npy to any other name: "wrote l.npz" used to leave l.npz.npy behind
    r = run_cli("cluster", files["dir"] / "u.npy", "-n", "3", "-o", name, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert f"-o {name}: the output must be a .npy file" in r.stderr
    assert os.listdir(tmp_path) == []


def test_cluster_writes_exactly_the_named_file(tmp_path, files):
    r = run_cli("cluster", files["dir"] / "u.npy", "-n", "3", "-o", "out.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote     out.npy (120 labels)" in r.stdout
    assert os.listdir(tmp_path) == ["out.npy"]


@pytest.mark.parametrize(
    "command",
    [["cluster", "-n", "3"], ["svd", "-k", "2"], ["tucker", "--rank", "2"]],
    ids=["cluster", "svd", "tucker"],
)
@pytest.mark.parametrize(
    "name,message",
    [
        ("u_complex.npy", "u_complex.npy has complex dtype complex128; lowdim computes real"),
        ("u_bool.npy", "u_bool.npy has boolean dtype; convert it to float32 or float64 first"),
        ("u_str.npy", "u_str.npy has dtype <U"),
    ],
)
def test_non_real_input_is_rejected_before_any_work(files, command, name, message):
    # cluster used to accept bool input and to print scikit-learn's "Complex data not
    # supported" followed by the whole array on one line
    cmd, *opts = command
    r = run_cli(cmd, name, *opts, cwd=files["dir"])
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith(f"lowdim: error: {message}"), r.stderr
    assert r.stderr.count("\n") == 1 and len(r.stderr) < 120, r.stderr


def test_cluster_estimates_the_number_of_clusters(files):
    d = files["dir"]
    r = run_cli("cluster", "u.npy", "--method", "ensc", "--quiet", cwd=d)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    labels = np.load(d / "u.labels.npy")
    assert labels.max() + 1 == 3


def test_debug_shows_the_traceback(files):
    r = run_cli("svd", "missing.npy", "-k", "3", "--debug", cwd=files["dir"])
    assert r.returncode != 0 and "Traceback" in r.stderr and "no such file" in r.stderr


def test_main_without_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "demo" in out and "svd" in out and "tucker" in out


def test_python_dash_m_entry_point(tmp_path):
    r = run_cli(cwd=tmp_path)
    assert r.returncode == 2
    assert "usage" in r.stdout


# --------------------------------------------------------------------------------------------
# Ctrl-C

SLOW_CALL = textwrap.dedent(
    """
    import sys, time, numpy as np, scipy.sparse as sp, lowdim
    from lowdim.cluster import KSubspaces, spectral_clustering
    from lowdim.datasets import union_of_subspaces
    A = np.random.default_rng(0).standard_normal((1500, 1000))
    X, _ = union_of_subspaces(4, 3, 20, 500, noise=0.05, seed=0)
    W = sp.random(3000, 3000, density=0.003, random_state=0, format="csr")
    W = W + W.T
    calls = {{
        "rsvd": lambda: lowdim.rsvd(A, 100, n_iter=100000, solver="randomized"),
        # many restarts: minutes uninterrupted (the restarts are where they stop)
        "ksubspaces": lambda: KSubspaces(4, 3, n_init=100000, random_state=0).fit(X),
        "spectral": lambda: spectral_clustering(W, 8, n_init=1000000, random_state=0),
    }}
    lowdim.rsvd(A, 5, n_iter=2, solver="randomized")          # warm up
    print("ready", flush=True)
    t0 = time.perf_counter()
    try:
        calls["{call}"]()
    except KeyboardInterrupt:
        print(f"interrupted after {{time.perf_counter() - t0:.2f}}", flush=True)
        sys.exit(0)
    print("finished", flush=True)
    """
)


def _default_sigint():
    # A background job of a non-interactive shell starts with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the child the default disposition, as a
    # terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
@pytest.mark.parametrize("call", ["rsvd", "ksubspaces", "spectral"])
def test_ctrl_c_interrupts_a_long_kernel_with_keyboardinterrupt(call):
    # k-subspaces and the spectral step (eigensolver sweeps, k-means iterations) used to
    # finish their work first
    p = subprocess.Popen(
        [sys.executable, "-c", SLOW_CALL.format(call=call)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        t_sig = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        stopped_in = time.perf_counter() - t_sig
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "interrupted after" in out, (out, err)
    assert stopped_in < 10


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_in_the_cli_exits_130_with_one_line(tmp_path):
    np.save(tmp_path / "big.npy", np.random.default_rng(0).standard_normal((1500, 1000)))
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowdim",
            "svd",
            "big.npy",
            "-k",
            "100",
            "--n-iter",
            "100000",
            "--solver",
            "randomized",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=_default_sigint,
    )
    try:
        assert "big.npy: 1500 x 1000" in p.stdout.readline()  # loaded: the kernel runs now
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (out, err)
    assert err.strip() == "lowdim: interrupted"
    assert not (tmp_path / "big.svd.npz").exists()


# --------------------------------------------------------------------------------------------
# progress= in the Python API


@pytest.fixture
def matrix(rng):
    low = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 200))
    return low + 1e-3 * rng.standard_normal((300, 200))


def _recorder():
    seen = []

    def cb(done, total):
        seen.append((done, total))

    return seen, cb


@pytest.mark.parametrize("sparse", [False, True])
def test_rsvd_progress_counts_up_to_total(matrix, sparse):
    A = sp.csr_matrix(matrix) if sparse else matrix
    seen, cb = _recorder()
    res = lowdim.rsvd(A, 5, n_iter=4, solver="randomized", seed=0, progress=cb)
    assert seen == [(i, 5) for i in range(6)]
    ref = lowdim.rsvd(A, 5, n_iter=4, solver="randomized", seed=0)
    np.testing.assert_array_equal(res.S, ref.S)  # reporting does not change the result


def test_rsvd_tol_progress_counts_rank_so_far(matrix):
    seen, cb = _recorder()
    lowdim.rsvd(matrix, tol=1e-6, block_size=4, seed=0, progress=cb)
    done = [d for d, _ in seen]
    assert done[0] == 0 and done == sorted(done) and len(set(done)) == len(done)
    assert seen[-1] == (200, 200)


def test_rsvd_gram_and_auto_paths_report_too(matrix):
    seen, cb = _recorder()
    lowdim.rsvd(matrix, 5, solver="gram", progress=cb)
    assert seen == [(0, 2), (1, 2), (2, 2)]


@pytest.mark.parametrize("method,total", [("sthosvd", 3), ("hosvd", 4), ("hooi", 3 * (1 + 50))])
def test_tucker_progress_counts_up_to_total(rng, method, total):
    X = rng.standard_normal((12, 10, 8))
    seen, cb = _recorder()
    lowdim.tucker(X, [3, 3, 2], method=method, progress=cb)
    done = [d for d, _ in seen]
    assert done[0] == 0 and done == sorted(done) and len(set(done)) == len(done)
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)


class Stop(Exception):
    pass


@pytest.mark.parametrize("exc", [KeyboardInterrupt, Stop])
def test_a_raising_callback_aborts_and_propagates_the_same_exception(matrix, exc):
    calls = []
    raised = exc("stop here")

    def cb(done, total):
        calls.append(done)
        if done == 2:
            raise raised

    with pytest.raises(exc) as info:
        lowdim.rsvd(matrix, 5, n_iter=50, solver="randomized", progress=cb)
    assert info.value is raised
    assert calls == [0, 1, 2]  # stopped at once, no call after the exception

    calls.clear()
    with pytest.raises(exc) as info:
        lowdim.tucker(np.ones((6, 5, 4)) + matrix[:6, :20].reshape(6, 5, 4), 2, method="hooi",
                      hooi_tol=0, progress=cb)  # fmt: skip
    assert info.value is raised and calls == [0, 1, 2]
    # the library is usable afterwards
    assert lowdim.rsvd(matrix, 3, seed=0).S.shape == (3,)


def test_progress_true_is_quiet_without_a_terminal(matrix, capfd):
    lowdim.rsvd(matrix, 5, progress=True)
    lowdim.tucker(matrix.reshape(30, 10, 200), 2, progress=True)
    assert capfd.readouterr().err == ""


def test_progress_rejects_other_values(matrix):
    with pytest.raises(TypeError, match="progress must be"):
        lowdim.rsvd(matrix, 5, progress="yes")


def test_progress_bar_draws_on_a_terminal_like_stream():
    from lowdim._progress import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar("x", stream=buf, width=10, delay=0, min_interval=0)
    for i in range(5):
        bar(i, 4)
    bar.close()
    text = buf.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n")
    assert "[#####-----]  50%" in text and "[##########] 100%" in text


# --------------------------------------------------------------------------------------------
# demo


def test_demo_small_runs_and_reports_sane_numbers(tmp_path):
    out = io.StringIO()
    res = demo(small=True, out=out, outdir=tmp_path / "figs")
    rows = res["rows"]
    text = out.getvalue()
    assert "digits PCA" in text and "sparse" in text and "photo" in text
    by_method = {(case, method): (t, r) for case, method, t, r in rows}
    dense = [k for k in by_method if k[1] == "lowdim.rsvd"][0][0]
    assert all(t > 0 for t, _ in by_method.values())
    # lowdim's and sklearn's estimated spectral errors are both close to the optimal one
    ours = float(by_method[(dense, "lowdim.rsvd")][1].split("~")[1])
    skl = float(by_method[(dense, "sklearn randomized_svd")][1].split("~")[1])
    opt = float(by_method[(dense, "numpy.linalg.svd (full)")][1].split()[-1])
    assert ours <= 1.05 * opt and skl <= 1.05 * opt
    assert ours >= 0.9 * opt
    # Tucker errors meet their tolerances, compression grows with the tolerance
    photo = [(c, r) for c, m, _, r in rows if c.startswith("photo")]
    assert len(photo) == 4
    ratios = []
    for case, r in photo:
        tol = float(case.split("tol=")[1])
        assert float(r.split("error")[1]) <= tol
        ratios.append(float(r.split(",")[1].strip().rstrip("x")))
    assert ratios == sorted(ratios, reverse=True)
    # subspace clustering: lowdim separates the union of subspaces, k-means cannot
    union = {m: float(r.split()[-1]) for c, m, _, r in rows if c.startswith("union")}
    assert union["lowdim SSCOMP"] >= 0.95 and union["lowdim EnSC"] >= 0.95
    assert union["sklearn KMeans"] < 0.6
    assert sum(c.startswith("digits 600") for c, *_ in rows) == 3
    assert sorted(p.name for p in res["figures"]) == [
        "confusion.png",
        "photo.png",
        "spectrum.png",
        "time_vs_size.png",
    ]


def test_demo_cli_writes_valid_pngs_of_the_expected_size(tmp_path):
    from PIL import Image

    r = run_cli("demo", "--small", "--out", "figs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "lowdim.rsvd" in r.stdout and "figures:" in r.stdout
    names = sorted(os.listdir(tmp_path / "figs"))
    assert names == ["confusion.png", "photo.png", "spectrum.png", "time_vs_size.png"]
    for name in names:
        with Image.open(tmp_path / "figs" / name) as im:
            assert im.format == "PNG"
            im.load()  # decodes the whole file: a truncated PNG fails here
            assert im.size == figure_pixels(name), name
            # not blank: a figure with drawn content has many distinct colours
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_demo_small_must_be_a_bool():
    # demo(small="no") ran the small demo: a truthy string counted as True
    with pytest.raises(TypeError, match=r"^small must be True or False, got 'no'"):
        demo(small="no", out=io.StringIO())


@pytest.mark.parametrize("out", ["taken", "taken/figs"])
def test_demo_checks_its_output_directory_before_any_work(tmp_path, out):
    # it used to fail only after the whole run, with the table already printed
    (tmp_path / "taken").write_text("a file")
    r = run_cli("demo", "--small", "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr == f"lowdim: error: --out {out}: taken is a file, not a directory\n"
