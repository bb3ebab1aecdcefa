"""The loop shared by sampler-driven strategies (grid, random, TPE, significant-digit).

Each trial asks the study's sampler for `lr` on a log scale in [low, high], trains for the run's
epochs per trial (cut at the budget), reports every epoch (pruners see it) and tells Optuna the
best validation metric. Through `study.optimize`, so samplers that stop a study when they are
exhausted (GridSampler, SignificantDigitSampler) work as they do in any user's study.

With a population size K > 1 (`RunContext.population`), K trials are asked at once (each from
the sampler a sequential run would hold for it), trained as one population and told together;
each trial's reports, pruning and budget charge are its own.

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

from lrbench.interrupts import raise_if_interrupted
from lrbench.storage.records import TrialKeys, record_attrs
from lrbench.strategies._base import LR, RunContext, Strategy, note_fail_reason
from lrbench.strategies._options import StrategyOptions, option

PRUNERS = ("none", "median", "hyperband")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def tell_outside_optimize(study: optuna.Study, trial: optuna.Trial, **kwargs) -> None:
    """`study.tell`, outside `study.optimize`: a sampler that stops the study when its search is
    exhausted (GridSampler) raises there after the trial is stored, which is all that matters."""
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


@dataclass(frozen=True)
class SamplerOptions(StrategyOptions):
    pruner: str = option("none", choices=PRUNERS)


class SamplerStrategy(Strategy):
    Options = SamplerOptions
    opts: SamplerOptions

    @abstractmethod
    def sampler_for(self, ctx: RunContext, n_finished: int) -> optuna.samplers.BaseSampler:
        """The sampler for the next trial, seeded from the run's seed and `n_finished`."""

    def n_finished(self, ctx: RunContext) -> int:
        return len(ctx.study.get_trials(deepcopy=False, states=_FINISHED))

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
        if ctx.remaining_steps() > 0 and not self.search_finished(ctx):
            if ctx.population_size() > 1:
                self.run_populations(ctx, prune)
            else:
                self.run_trials(ctx, prune)
        self.after_search(ctx)

    def run_trials(self, ctx: RunContext, prune: bool, n_trials: int | None = None) -> None:
        """Trials one at a time, through `study.optimize`."""
        study = ctx.study

        def objective(trial: optuna.Trial) -> float:
            try:
                raise_if_interrupted()  # a Ctrl-C while the last trial was stored
                lr = self.suggest_lr(ctx, trial)
            except KeyboardInterrupt as e:  # Ctrl-C while sampling: say so, as in training
                note_fail_reason(trial, e)
                raise
            result = ctx.train_trial(trial, lr, prune=prune)
            if record_attrs(trial.user_attrs).get(TrialKeys.PRUNED):
                raise optuna.TrialPruned()
            return ctx.objective_value(result)

        # Counted here rather than read back before every trial: this process alone drives the
        # run, and a read of every trial per trial was a tenth of a short trial's cost.
        n_finished = self.n_finished(ctx)

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal n_finished
            n_finished += trial.state in _FINISHED
            if ctx.remaining_steps() <= 0 or self.stop_after_trial(ctx):
                study.stop()
            else:
                study.sampler = self.sampler_for(ctx, n_finished)

        study.sampler = self.sampler_for(ctx, n_finished)
        study.optimize(objective, n_trials=n_trials, callbacks=[after_trial], gc_after_trial=False)

    # -- populations ---------------------------------------------------------------------------
    def batch_limit(self, ctx: RunContext) -> int:
        """How many distinct trials the sampler can hand out at once now (grid: the points not
        yet visited); unlimited by default."""
        return ctx.population_size()

    def run_populations(self, ctx: RunContext, prune: bool) -> None:
        """Ask K trials, train them as one population, tell K results; K is the population
        size, cut to what the remaining budget holds at full length and to `batch_limit`.
        Where only one trial fits, it runs alone (cut at the budget, as in a sequential run)."""
        planned = ctx.epochs_per_trial * ctx.steps_per_epoch
        while ctx.remaining_steps() > 0 and not self.search_finished(ctx):
            k = min(ctx.population_size(), ctx.remaining_steps() // planned, self.batch_limit(ctx))
            if k <= 1:
                self.run_trials(ctx, prune, n_trials=1)
            else:
                self.run_population(ctx, k, prune)

    def run_population(self, ctx: RunContext, k: int, prune: bool) -> None:
        study = ctx.study
        n_finished = self.n_finished(ctx)
        trials, lrs = [], []
        for i in range(k):
            # The sampler a sequential run would hold for this trial (seeded by its position).
            study.sampler = self.sampler_for(ctx, n_finished + i)
            trials.append(study.ask())
            lrs.append(self.suggest_lr(ctx, trials[-1]))
        try:
            results = ctx.train_trials(trials, lrs, prune=prune)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        for trial, result in zip(trials, results):
            if record_attrs(trial.user_attrs).get(TrialKeys.PRUNED):
                tell_outside_optimize(study, trial, state=TrialState.PRUNED)
            else:
                tell_outside_optimize(study, trial, values=ctx.objective_value(result))

    def search_finished(self, ctx: RunContext) -> bool:
        return False

    def stop_after_trial(self, ctx: RunContext) -> bool:
        """Whether the study stops after a trial besides the budget; samplers that end their
        own search (GridSampler, SignificantDigitSampler) stop it themselves."""
        return False

    def after_search(self, ctx: RunContext) -> None:
        """Hook for strategies with a phase after the sampler's (the significant-digit exploit)."""
