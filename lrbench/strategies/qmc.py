"""`qmc`, `qmc+hyperband`: Optuna's QMCSampler, scrambled Sobol points on a log-scale rate:
quasi-random search, AlgoPerf's tuning baseline.

The Sobol sequence is one sequence per run: the scramble is seeded with the run's seed (not
re-seeded per trial as the other samplers are), and Optuna's QMCSampler keeps its position in
the sequence in the study, so a resumed run continues it. The search space is given to the
sampler from the start, so the first trial is the sequence's first point too (a QMCSampler left
to infer the space samples its first trial with its independent sampler). A trial interrupted
mid-way has drawn its point: the resumed run goes on with the next one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from lrbench.strategies._base import LR, RunContext, register, register_variant
from lrbench.strategies._search import SamplerStrategy


class KnownSpaceQMCSampler(optuna.samplers.QMCSampler):
    """A QMCSampler told its search space, so every trial, the first included, is a QMC point."""

    def __init__(self, search_space: Mapping[str, BaseDistribution], **kwargs) -> None:
        super().__init__(**kwargs)
        self.search_space = search_space

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.search_space)


def sobol_sampler(ctx: RunContext, seed: int, **kwargs) -> KnownSpaceQMCSampler:
    """Scrambled Sobol over the run's log-scale rate range, scrambled with `seed`."""
    space = {LR: FloatDistribution(ctx.low, ctx.high, log=True)}
    # Optuna marks QMCSampler experimental; the sampler is made anew for every trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return KnownSpaceQMCSampler(space, qmc_type="sobol", scramble=True, seed=seed, **kwargs)


@register
class QMCStrategy(SamplerStrategy):
    name = "qmc"
    group = "search"
    description = "optuna QMCSampler: scrambled Sobol points, log scale (AlgoPerf's baseline)"

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        # The scramble is the run's; the independent sampler (other parameters, none here) is
        # seeded per trial as in every sampler strategy.
        independent = optuna.samplers.RandomSampler(seed=self.trial_seed(ctx, n_finished))
        return sobol_sampler(ctx, self.trial_seed(ctx, 0), independent_sampler=independent)


register_variant(
    "qmc+hyperband",
    QMCStrategy,
    "quasi-random search with optuna's HyperbandPruner",
    pruner="hyperband",
)
