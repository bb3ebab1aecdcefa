"""`grid`: Optuna's GridSampler over n log-spaced rates in [low, high]."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

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
        # One seed per run, not per trial: GridSampler shuffles its grid with its seed, and the
        # grid ids it stores in trials only mean the same rates under the same seed.
        return optuna.samplers.GridSampler({LR: self.grid(ctx)}, seed=ctx.seed)

    def suggest_lr(self, ctx: RunContext, trial: optuna.Trial) -> float:
        grid = self.grid(ctx)
        return trial.suggest_float(LR, min(grid), max(grid), log=True)

    def done_rates(self, ctx: RunContext) -> set[float]:
        return {
            t.params[LR]
            for t in ctx.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
        }

    def search_finished(self, ctx: RunContext) -> bool:
        return set(self.grid(ctx)) <= self.done_rates(ctx)

    def run(self, ctx: RunContext) -> None:
        # GridSampler counts a failed (interrupted) trial's point as visited; put it back in the
        # queue, as optuna's RetryFailedTrialCallback does, so a resumed grid covers every rate.
        study = ctx.study
        queued = {
            t.params.get(LR, t.system_attrs.get("fixed_params", {}).get(LR))
            for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        }
        done = self.done_rates(ctx)
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            lr = t.params.get(LR)
            if lr is not None and lr not in done and lr not in queued:
                study.enqueue_trial({LR: lr})
                queued.add(lr)
        super().run(ctx)
