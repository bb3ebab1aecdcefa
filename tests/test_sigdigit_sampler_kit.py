"""Optuna's own sampler conformance kit, run on SignificantDigitSampler.

The kit's parameters are named ``x``, ``y``, ...: none is named like a learning rate, so the
sampler claims none and hands every parameter to its independent sampler (a log-scale float
such as ``suggest_float("x", 1e-7, 10, log=True)`` is no longer claimed for its scale). The
kit thus checks that delegation, and the hooks the sampler always runs. No kit case is
skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, SingleOnlySamplerTestCase

from lrbench.tools import SignificantDigitSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The kit's studies name no parameter like a learning rate, so each sampler instance warns
# once that it delegates everything: expected here, and not what the kit checks.
pytestmark = pytest.mark.filterwarnings("ignore::lrbench.SigDigitDelegationWarning")


class TestSignificantDigitSamplerKit(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SignificantDigitSampler(seed=0)
