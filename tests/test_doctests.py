"""The docstring examples of the public entry points, run as written: an example that drifts
from the code fails here."""

from __future__ import annotations

import doctest
import importlib

import pytest

# The modules whose docstrings carry the public entry points' examples (training, the range
# test, schedules, the sampler, the harness, the report).
MODULES = [
    "lrbench.training._loop",
    "lrbench.tools._range_test",
    "lrbench.tools._schedules",
    "lrbench.tools._sigdigit_sampler",
    "lrbench.running._harness",
    "lrbench.report._writer",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_written(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an example that writes a default path writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"{name} has no example"
