"""The loop shared by sampler-driven strategies (grid, random, TPE, significant-digit).

Each trial asks the study's sampler for `lr` on a log scale in [low, high], trains for the run's
epochs per trial (cut at the budget), reports every epoch (pruners see it) and tells Optuna the
best validation metric. Through `study.optimize`, so samplers that stop a study when they are
exhausted (GridSampler, SignificantDigitSampler) work as they do in any user's study.

Resuming gives the same trials as an uninterrupted run: the sampler is re-created before every
trial with a seed derived from the run's seed and the number of finished (complete or pruned)
trials, so its draws depend on the stored history alone, not on how many processes it took to
get there; a trial failed by an interruption leaves no trace in the sequence.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from lrbench.records import TrialKeys
from lrbench.strategies.base import LR, RunContext, Strategy
from lrbench.strategies.options import StrategyOptions, option

PRUNERS = ("none", "median", "hyperband")


@dataclass(frozen=True)
class SamplerOptions(StrategyOptions):
    pruner: str = option("none", choices=PRUNERS)


class SamplerStrategy(Strategy):
    Options = SamplerOptions

    @abstractmethod
    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        """The sampler for the next trial, seeded from the run's seed and `n_finished`."""

    def make_sampler(self, ctx: RunContext) -> optuna.samplers.BaseSampler:
        finished = ctx.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        return self.sampler_for(ctx, len(finished))

    def make_pruner(self, ctx: RunContext) -> optuna.pruners.BasePruner:
        pruner = self.opts.pruner
        if pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=ctx.epochs_per_trial, reduction_factor=3
            )
        return optuna.pruners.NopPruner()

    @staticmethod
    def trial_seed(ctx: RunContext, n_finished: int) -> int:
        return (ctx.seed * 1_000_003 + n_finished) % (2**31)

    def suggest_lr(self, ctx: RunContext, trial: optuna.Trial) -> float:
        return trial.suggest_float(LR, ctx.low, ctx.high, log=True)

    def run(self, ctx: RunContext) -> None:
        study = ctx.study
        study.pruner = self.make_pruner(ctx)
        prune = self.opts.pruner != "none"

        def objective(trial: optuna.Trial) -> float:
            lr = self.suggest_lr(ctx, trial)
            result = ctx.train_trial(trial, lr, prune=prune)
            if trial.user_attrs.get(TrialKeys.PRUNED):
                raise optuna.TrialPruned()
            return ctx.objective_value(result)

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if ctx.remaining_steps() <= 0:
                study.stop()
            else:
                study.sampler = self.make_sampler(ctx)

        if ctx.remaining_steps() > 0 and not self.search_finished(ctx):
            study.sampler = self.make_sampler(ctx)
            study.optimize(objective, callbacks=[after_trial], gc_after_trial=False)
        self.after_search(ctx)

    def search_finished(self, ctx: RunContext) -> bool:
        return False

    def after_search(self, ctx: RunContext) -> None:
        """Hook for strategies with a phase after the sampler's (the significant-digit exploit)."""
