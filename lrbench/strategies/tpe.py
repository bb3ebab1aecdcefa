"""`tpe`, `tpe+median`, `tpe+hyperband`: Optuna's TPESampler (Bayesian) on a log-scale rate."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from lrbench.strategies.base import RunContext, register, register_variant
from lrbench.strategies.options import option
from lrbench.strategies.search import SamplerOptions, SamplerStrategy


@dataclass(frozen=True)
class TPEOptions(SamplerOptions):
    n_startup_trials: int = option(5, minimum=0)


@register
class TPEStrategy(SamplerStrategy):
    name = "tpe"
    description = "optuna TPESampler (Bayesian), log scale"
    Options = TPEOptions

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=self.opts.n_startup_trials,
            seed=self.trial_seed(ctx, n_finished),
            # Trials asked together for a population see each other as running: the constant
            # liar keeps TPE from proposing the same region K times.
            constant_liar=ctx.population_size() > 1,
        )


register_variant("tpe+median", TPEStrategy, "TPE with optuna's MedianPruner", pruner="median")
register_variant(
    "tpe+hyperband", TPEStrategy, "TPE with optuna's HyperbandPruner", pruner="hyperband"
)
