"""Optuna's own sampler conformance kit, run on SignificantDigitSampler.

The kit's studies have no parameter named ``lr``: the sampler owns the first log-scale
float asked for ("x" in ``suggest_float("x", 1e-7, 10, log=True)``) and searches it, and
every other parameter goes to its independent sampler. No kit case is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, SingleOnlySamplerTestCase

from lrbench.tools import SignificantDigitSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TestSignificantDigitSamplerKit(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SignificantDigitSampler(seed=0)
