"""`tpe`, `tpe+median`, `tpe+hyperband`: Optuna's TPESampler (Bayesian) on a log-scale rate.

The arguments whose defaults changed between Optuna 4 and 5 are set, so a run means the same
under both: `multivariate=True` (4: False; 5: None, which means True for one objective) and
`constant_liar=True` (4: False; 5: True): running trials count as bad, so parallel workers of
one run do not all ask for the same rate. `n_ei_candidates=24` is stated too (unchanged). The
arguments Optuna 5 deprecates (`consider_prior`, `prior_weight`, `consider_magic_clip`,
`consider_endpoints`, `gamma`, `weights`) keep Optuna 4's defaults in 5, and setting them
would only warn.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from lrbench.strategies._base import RunContext, register, register_variant
from lrbench.strategies._options import option
from lrbench.strategies._search import SamplerOptions, SamplerStrategy

TPE_MULTIVARIATE = True
# Set either way, so a run means the same under Optuna 4 and 5; the liar also keeps trials asked
# together (n_jobs, a population) from all proposing the same region.
TPE_CONSTANT_LIAR = True
TPE_N_EI_CANDIDATES = 24


@dataclass(frozen=True)
class TPEOptions(SamplerOptions):
    n_startup_trials: int = option(5, minimum=0)


@register
class TPEStrategy(SamplerStrategy):
    name = "tpe"
    group = "search"
    description = "optuna TPESampler (Bayesian), log scale"
    Options = TPEOptions
    opts: TPEOptions

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=self.opts.n_startup_trials,
            n_ei_candidates=TPE_N_EI_CANDIDATES,
            multivariate=TPE_MULTIVARIATE,
            constant_liar=TPE_CONSTANT_LIAR,
            seed=self.trial_seed(ctx, n_finished),
        )


register_variant("tpe+median", TPEStrategy, "TPE with optuna's MedianPruner", pruner="median")
register_variant(
    "tpe+hyperband", TPEStrategy, "TPE with optuna's HyperbandPruner", pruner="hyperband"
)
