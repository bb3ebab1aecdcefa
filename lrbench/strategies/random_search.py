"""`random` and `random+hyperband`: Optuna's RandomSampler, log-uniform in [low, high]."""

from __future__ import annotations

import optuna

from lrbench.strategies._base import RunContext, register, register_variant
from lrbench.strategies._search import SamplerStrategy


@register
class RandomStrategy(SamplerStrategy):
    name = "random"
    group = "search"
    description = "optuna RandomSampler, log-uniform in [low, high]"

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=self.trial_seed(ctx, n_finished))


register_variant(
    "random+hyperband",
    RandomStrategy,
    "random search with optuna's HyperbandPruner",
    pruner="hyperband",
)
