"""The loop shared by strategies that train one configuration: a fixed rate or a schedule,
its rate given or taken from an LR range test (range_test, clr, one_cycle, cosine, sgdr,
step, exp, fixed).

The range test is run once per run, charged to the budget and stored in the study; the trial
then trains for the run's epochs per trial, cut at whatever budget is left. The trial's `lr`
parameter is a single-point distribution: the study records the configuration, no sampler
chooses it.
"""

from __future__ import annotations

from typing import Any

import optuna

from lrbench.errors import ConfigError
from lrbench.range_test import RangeTestResult
from lrbench.schedules import ScheduleSpec
from lrbench.strategies.base import LR, RunContext, Strategy

RANGE_TEST_OPTIONS = {"start_lr": 1e-6, "end_lr": 10.0, "num_iter": 100}
SUGGESTION_RULES = ("steepest", "minimum/10", "valley", "base_lr", "max_lr")


class ScheduledStrategy(Strategy):
    """Subclasses implement `configure(ctx) -> (lr, ScheduleSpec)`."""

    option_defaults: dict[str, Any] = {}

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        raise NotImplementedError

    def range_test(self, ctx: RunContext) -> RangeTestResult:
        opts = {k: self.options.get(k, v) for k, v in RANGE_TEST_OPTIONS.items()}
        return ctx.range_test(**opts)

    def suggested(self, ctx: RunContext, rule: str) -> float:
        if rule not in SUGGESTION_RULES:
            raise ConfigError(
                f"strategy {self.name!r}: unknown range-test rule {rule!r}; "
                f"choose one of {', '.join(SUGGESTION_RULES)}"
            )
        return self.range_test(ctx).suggestions[rule]

    def peak(self, ctx: RunContext, rule: str) -> float:
        """The given `lr` option, or the range test's suggestion by `rule`."""
        lr = self.options.get("lr")
        return float(lr) if lr is not None else self.suggested(ctx, rule)

    def run(self, ctx: RunContext) -> None:
        finished = [
            t
            for t in ctx.study.get_trials(deepcopy=False)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        ]
        if finished or ctx.remaining_steps() <= 0:
            return  # resumed after completion: nothing left to do
        lr, schedule = self.configure(ctx)
        if ctx.remaining_steps() <= 0:
            return  # the range test spent the whole budget
        lr = float(f"{lr:.6g}")
        trial = ctx.study.ask({LR: optuna.distributions.FloatDistribution(lr, lr, log=True)})
        try:
            result = ctx.train_trial(trial, lr, schedule=schedule, phase="train")
        except BaseException:
            ctx.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        ctx.study.tell(trial, ctx.objective_value(result))


def with_range_test_options(defaults: dict[str, Any]) -> dict[str, Any]:
    return {**RANGE_TEST_OPTIONS, **defaults}
