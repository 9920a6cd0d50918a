"""`lowdim demo` (small sizes) and the CLI entry point."""

import io
import subprocess
import sys

from lowdim.cli import demo, main


def test_demo_small_runs_and_reports_sane_numbers():
    out = io.StringIO()
    rows = demo(small=True, out=out)["rows"]
    text = out.getvalue()
    assert "digits PCA" in text and "sparse" in text
    by_method = {(case, method): (t, res) for case, method, t, res in rows}
    dense = [k for k in by_method if k[1] == "lowdim.rsvd"][0][0]
    assert all(t > 0 for t, _ in by_method.values())
    # lowdim's and sklearn's estimated spectral errors are both close to the optimal one
    ours = float(by_method[(dense, "lowdim.rsvd")][1].split("~")[1])
    skl = float(by_method[(dense, "sklearn randomized_svd")][1].split("~")[1])
    opt = float(by_method[(dense, "numpy.linalg.svd (full)")][1].split()[-1])
    assert ours <= 1.05 * opt and skl <= 1.05 * opt
    assert ours >= 0.9 * opt


def test_main_without_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "lowdim"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "usage" in r.stdout
