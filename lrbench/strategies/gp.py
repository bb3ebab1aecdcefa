"""`gp`, `gp+median`: Optuna's GPSampler (Bayesian optimisation with a Gaussian process) on a
log-scale rate, seeded per trial from the run's seed and the finished count.

Its first `n_startup_trials` complete trials are random (Optuna's default is 10, more than a
small budget affords, so 5 here, as for `tpe`). The Gaussian process is fitted to complete
trials only: under `gp+median` a pruned rate is not shown to it, only kept off the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from lrbench.strategies._base import RunContext, register, register_variant
from lrbench.strategies._options import option
from lrbench.strategies._search import SamplerOptions, SamplerStrategy


@dataclass(frozen=True)
class GPOptions(SamplerOptions):
    n_startup_trials: int = option(5, minimum=0)


@register
class GPStrategy(SamplerStrategy):
    name = "gp"
    group = "search"
    description = "optuna GPSampler (Bayesian, Gaussian process), log scale"
    Options = GPOptions
    opts: GPOptions

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        seed = self.trial_seed(ctx, n_finished)
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=self.opts.n_startup_trials,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            # Validation metrics are noisy: a retrained rate does not give the same value.
            deterministic_objective=False,
        )


register_variant("gp+median", GPStrategy, "GP with optuna's MedianPruner", pruner="median")
