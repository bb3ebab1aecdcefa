"""`grid`: Optuna's GridSampler over n log-spaced rates in [low, high], largest first."""
from __future__ import annotations

import numpy as np
import optuna

from lrbench.strategies.base import LR, RunContext, register
from lrbench.strategies.search import SamplerStrategy


@register
class GridStrategy(SamplerStrategy):
    name = "grid"
    description = "optuna GridSampler over n log-spaced rates in [low, high]"
    option_defaults = {**SamplerStrategy.option_defaults, "n": 8}

    def grid(self, ctx: RunContext) -> list[float]:
        # Rounded to 3 significant digits so stored values read as written (no 0.00030000000000000003).
        return [float(f"{v:.3g}") for v in np.geomspace(ctx.low, ctx.high, int(self.options["n"]))]

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GridSampler({LR: self.grid(ctx)}, seed=self.trial_seed(ctx, n_finished))

    def suggest_lr(self, ctx: RunContext, trial: optuna.Trial) -> float:
        grid = self.grid(ctx)
        return trial.suggest_float(LR, min(grid), max(grid), log=True)

    def search_finished(self, ctx: RunContext) -> bool:
        done = {t.params.get(LR) for t in ctx.study.get_trials(deepcopy=False) if t.state.is_finished()}
        return set(self.grid(ctx)) <= done
