"""Run the Examples sections of the installed package's docstrings."""

import doctest
import importlib

import pytest

MODULES = [
    "lowdim",
    "lowdim.svd",
    "lowdim.decomposition",
    "lowdim.tucker",
    "lowdim.cluster",
    "lowdim.metrics",
    "lowdim.datasets",
    "lowdim.cli",
    "lowdim._progress",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples found in {name}"
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
