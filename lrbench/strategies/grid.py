"""`grid`: Optuna's GridSampler over n log-spaced rates in [low, high]."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from lrbench.records import TrialKeys
from lrbench.strategies.base import LR, RunContext, register
from lrbench.strategies.options import option
from lrbench.strategies.search import SamplerOptions, SamplerStrategy


@dataclass(frozen=True)
class GridOptions(SamplerOptions):
    n: int = option(8, minimum=1)


@register
class GridStrategy(SamplerStrategy):
    name = "grid"
    group = "search"
    description = "optuna GridSampler over n log-spaced rates in [low, high]"
    Options = GridOptions

    def grid(self, ctx: RunContext) -> list[float]:
        # Rounded to 3 significant digits so stored values read as written (no 0.00030000000000000003).
        return [float(f"{v:.3g}") for v in np.geomspace(ctx.low, ctx.high, self.opts.n)]

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

    def batch_limit(self, ctx: RunContext) -> int:
        """The grid points no trial has taken yet: a population never repeats a point."""
        taken = {
            t.params.get(LR)
            for t in ctx.study.get_trials(
                deepcopy=False,
                states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
            )
        }
        queued = len(ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        return max(queued, len(set(self.grid(ctx)) - taken))

    def search_finished(self, ctx: RunContext) -> bool:
        return set(self.grid(ctx)) <= self.done_rates(ctx)

    def run(self, ctx: RunContext) -> None:
        self.requeue_failed_rates(ctx)
        super().run(ctx)

    def requeue_failed_rates(self, ctx: RunContext) -> None:
        """Put a failed (interrupted) trial's rate back in the queue, as optuna's
        RetryHeartbeatStaleTrialCallback does: GridSampler counts its point as visited, so without
        this a resumed grid would skip it. A waiting trial's rate is read from the user attr
        it was enqueued with, so a rate is queued once."""
        study = ctx.study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)
        queued = {
            t.user_attrs.get(TrialKeys.ENQUEUED_LR)
            for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        }
        done = self.done_rates(ctx)
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            lr = t.params.get(LR, _grid_point(t))
            if lr is not None and lr not in done and lr not in queued:
                # Optuna's own retry: the copy keeps GridSampler's grid id in its system attrs
                # (GridSampler then hands it the same point), and its own attrs are only the
                # rate it was queued with.
                again = copy.deepcopy(t)
                again.user_attrs = {TrialKeys.ENQUEUED_LR: lr}
                retry(study, again)
                queued.add(lr)


def _grid_point(trial: optuna.trial.FrozenTrial) -> float | None:
    """The rate GridSampler gave a trial that failed before suggesting it (a worker killed
    between ask and suggest): its grid point still counts as visited, so it must be queued."""
    attrs = trial.system_attrs
    try:
        return float(attrs["search_space"][LR][attrs["grid_id"]])
    except (KeyError, IndexError, TypeError):
        return None
