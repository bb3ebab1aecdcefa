"""`tpe`, `tpe+median`, `tpe+hyperband`: Optuna's TPESampler (Bayesian) on a log-scale rate."""

from __future__ import annotations

import optuna

from lrbench.strategies.base import RunContext, register, register_variant
from lrbench.strategies.search import SamplerStrategy


@register
class TPEStrategy(SamplerStrategy):
    name = "tpe"
    description = "optuna TPESampler (Bayesian), log scale"
    option_defaults = {**SamplerStrategy.option_defaults, "n_startup_trials": 5}

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=int(self.options["n_startup_trials"]),
            seed=self.trial_seed(ctx, n_finished),
        )


register_variant("tpe+median", TPEStrategy, "TPE with optuna's MedianPruner", pruner="median")
register_variant(
    "tpe+hyperband", TPEStrategy, "TPE with optuna's HyperbandPruner", pruner="hyperband"
)
