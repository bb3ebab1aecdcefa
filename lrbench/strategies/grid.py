"""`grid`: Optuna's GridSampler over n log-spaced rates in [low, high]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from lrbench.storage.records import TrialKeys
from lrbench.strategies._base import LR, RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._search import SamplerOptions, SamplerStrategy, tell_outside_optimize


@dataclass(frozen=True)
class GridOptions(SamplerOptions):
    n: int = option(8, minimum=1)


@register
class GridStrategy(SamplerStrategy):
    name = "grid"
    group = "search"
    description = "optuna GridSampler over n log-spaced rates in [low, high]"
    Options = GridOptions
    opts: GridOptions

    def grid(self, ctx: RunContext) -> list[float]:
        # Rounded to 3 significant digits so stored values read as written (no 0.00030000000000000003).
        return [float(f"{v:.3g}") for v in np.geomspace(ctx.low, ctx.high, self.opts.n)]

    def suggest_lr(self, ctx: RunContext, trial: optuna.Trial) -> float:
        grid = self.grid(ctx)
        return trial.suggest_float(LR, min(grid), max(grid), log=True)

    def tried_rates(self, ctx: RunContext) -> set[float]:
        """The points of finished trials, but for those an interruption failed (they run again);
        a trial failed for its own reason (e.g. out of memory) tried its point, as GridSampler
        counts it."""
        interrupted = ctx.interrupted_trials()
        return {
            t.params[LR]
            for t in ctx.study.get_trials(deepcopy=False)
            if t.state.is_finished() and LR in t.params and t.number not in interrupted
        }

    def taken_rates(self, ctx: RunContext) -> set[float]:
        """The points of every trial but those an interruption failed (they run again): running,
        finished, or failed for their own reason."""
        interrupted = ctx.interrupted_trials()
        return {
            t.params[LR]
            for t in ctx.study.get_trials(deepcopy=False)
            if t.number not in interrupted and LR in t.params
        }

    def batch_limit(self, ctx: RunContext) -> int:
        """The grid points no trial has taken yet: a population never repeats a point."""
        queued = len(ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        return max(queued, len(set(self.grid(ctx)) - self.taken_rates(ctx)))

    def search_finished(self, ctx: RunContext) -> bool:
        return set(self.grid(ctx)) <= self.tried_rates(ctx)

    def stop_after_trial(self, ctx: RunContext) -> bool:
        # GridSampler stops the study at its last point itself, but not when it is replaced
        # after an interruption (below).
        return bool(ctx.interrupted_trials()) and self.search_finished(ctx)

    # -- resuming after an interruption --------------------------------------------------------
    # Optuna's GridSampler gives trial number i the i-th point of its (seeded) shuffle. A trial
    # an interruption failed keeps its number, so in a resumed run every later point would be
    # one number off, and the grid would run in another order than an uninterrupted run (which
    # matters for epochs-to-target and a cut budget). So once a run has an interrupted trial,
    # the points not yet taken are enqueued one at a time, in the uninterrupted order, as
    # fixed parameters (`Study.enqueue_trial`), and the sampler never chooses.

    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        if not ctx.interrupted_trials():
            # One seed per run, not per trial: GridSampler shuffles its grid with its seed.
            return optuna.samplers.GridSampler({LR: self.grid(ctx)}, seed=ctx.seed)
        self.enqueue_next_point(ctx)
        return optuna.samplers.RandomSampler(seed=self.trial_seed(ctx, n_finished))

    def uninterrupted_order(self, ctx: RunContext) -> list[float]:
        """The order in which GridSampler hands the points out to a study with no failures
        (read from a scratch in-memory study with the same sampler)."""
        scratch = optuna.create_study(
            sampler=optuna.samplers.GridSampler({LR: self.grid(ctx)}, seed=ctx.seed)
        )
        order = []
        for _ in range(len(set(self.grid(ctx)))):
            trial = scratch.ask()
            order.append(self.suggest_lr(ctx, trial))
            tell_outside_optimize(scratch, trial, state=TrialState.FAIL)  # no value needed
        return order

    def enqueue_next_point(self, ctx: RunContext) -> None:
        """Enqueue the first point of the uninterrupted order that no trial has taken (a trial
        failed for its own reason, e.g. out of memory, took its point), unless one is waiting
        already: one at a time, so a queued point that is interrupted in turn is enqueued again
        ahead of the rest."""
        study = ctx.study
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return
        taken = self.taken_rates(ctx)
        for lr in self.uninterrupted_order(ctx):
            if lr not in taken:
                study.enqueue_trial({LR: lr}, user_attrs={TrialKeys.ENQUEUED_LR: lr})
                return
