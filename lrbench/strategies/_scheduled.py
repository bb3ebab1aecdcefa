"""The loop shared by strategies that train one configuration: a fixed rate or a schedule,
its rate given or taken from an LR range test (range_test, clr, one_cycle, cosine, sgdr,
step, exp, fixed).

The range test is run once per run, charged to the budget and stored in the study; the trial
then trains for the run's epochs per trial, cut at whatever budget is left. The trial's `lr`
parameter is a single-point distribution: the study records the configuration, no sampler
chooses it.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from optuna.trial import TrialState

from lrbench.strategies._base import RunContext, Strategy
from lrbench.strategies._options import StrategyOptions, option
from lrbench.tools import SUGGESTION_KEYS, RangeTestResult, ScheduleSpec

SUGGESTION_RULES = SUGGESTION_KEYS


@dataclass(frozen=True)
class RangeTestOptions(StrategyOptions):
    """The options of a strategy that runs an LR range test."""

    start_lr: float = option(1e-6, positive=True)
    end_lr: float = option(10.0, positive=True)
    num_iter: int = option(100, minimum=2)

    def range_test_kwargs(self) -> dict[str, float | int]:
        return {"start_lr": self.start_lr, "end_lr": self.end_lr, "num_iter": self.num_iter}


class ScheduledStrategy(Strategy):
    """Trains one configuration: subclasses say which in `configure`."""

    # Runs of this strategy that differ only in seed may train their one trial each as one
    # population (`lrbench.running._seed_batch`); not a strategy whose trial brings its own optimizer.
    batches_seeds: ClassVar[bool] = True

    @abstractmethod
    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        """The rate and schedule to train (may run the run's range test)."""

    def range_test(self, ctx: RunContext) -> RangeTestResult:
        assert isinstance(self.opts, RangeTestOptions), f"{self.name} runs no range test"
        return ctx.range_test(**self.opts.range_test_kwargs())

    def suggested(self, ctx: RunContext, rule: str) -> float:
        return self.range_test(ctx).suggestions[rule]

    def peak(self, ctx: RunContext, rule: str) -> float:
        """The given `lr` option, or the range test's suggestion by `rule`."""
        lr = getattr(self.opts, "lr", None)
        return float(lr) if lr is not None else self.suggested(ctx, rule)

    def plan(self, ctx: RunContext) -> tuple[float, ScheduleSpec] | None:
        """The rate (6 significant digits, as stored) and schedule of the run's one trial; None
        when there is nothing left to train (resumed after completion, or the range test spent
        the whole budget)."""
        finished = ctx.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        if finished or ctx.remaining_steps() <= 0:
            return None
        lr, schedule = self.configure(ctx)
        if ctx.remaining_steps() <= 0:
            return None
        return float(f"{lr:.6g}"), schedule

    def run(self, ctx: RunContext) -> None:
        planned = self.plan(ctx)
        if planned is not None:
            lr, schedule = planned
            ctx.run_fixed_trial(lr, schedule=schedule, phase="train", **self.trial_options(ctx))

    def trial_options(self, ctx: RunContext) -> dict[str, Any]:
        """Further `RunContext.train_trial` keywords (a self-tuning strategy's own optimizer)."""
        return {}
