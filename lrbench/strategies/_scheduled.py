"""The loop shared by strategies that train one configuration: a fixed rate or a schedule,
its rate given or taken from an LR range test (range_test, clr, one_cycle, cosine, sgdr,
warmup_cosine, wsd, constant_cooldown, step, exp, fixed).

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

from lrbench.strategies._base import PlannedTrial, RunContext, Strategy, train_planned
from lrbench.strategies._options import StrategyOptions, option
from lrbench.tools import (
    SCHEDULE_INTERVALS,
    SUGGESTION_KEYS,
    WARMUP_FRACTION,
    RangeTestResult,
    ScheduleSpec,
)
from lrbench.training import OPTIMIZER_RESETS, EvaluationWeightsFactory

SUGGESTION_RULES = SUGGESTION_KEYS


@dataclass(frozen=True)
class RangeTestOptions(StrategyOptions):
    """The options of a strategy that runs an LR range test."""

    start_lr: float = option(1e-6, positive=True)
    end_lr: float = option(10.0, positive=True)
    num_iter: int = option(100, minimum=2)

    def range_test_kwargs(self) -> dict[str, float | int]:
        return {"start_lr": self.start_lr, "end_lr": self.end_lr, "num_iter": self.num_iter}


@dataclass(frozen=True)
class OptimizerResetOptions(StrategyOptions):
    """The option of a strategy that trains one configuration with the run's optimizer:
    "epoch" starts the optimizer afresh at every epoch (its state, such as Adam's moments and
    step count, dropped), as seed 002's cosine rows trained; "none" keeps one for the trial."""

    optimizer_reset: str = option("none", choices=OPTIMIZER_RESETS)


@dataclass(frozen=True)
class PeakOptions(RangeTestOptions, OptimizerResetOptions):
    """A schedule's peak: given (`lr`), or the range test's suggestion by `rule`."""

    lr: float | None = option(None, positive=True)
    rule: str = option("valley", choices=SUGGESTION_RULES)


@dataclass(frozen=True)
class IntervalOptions(PeakOptions):
    """A schedule whose phases are counted in optimizer steps or in epochs."""

    interval: str = option("step", choices=SCHEDULE_INTERVALS)

    def schedule_options(self) -> dict[str, Any]:
        return {"interval": self.interval}


@dataclass(frozen=True)
class WarmupOptions(IntervalOptions):
    """A linear warm-up of `warmup` steps or epochs (by `interval`), or of `warmup_fraction` of
    the trial (default `WARMUP_FRACTION`)."""

    warmup: int | None = option(None, minimum=0)
    warmup_fraction: float | None = option(None, minimum=0.0)

    def warmup_share(self) -> float | None:
        """The warm-up's fraction of the trial; None when it is a count."""
        if self.warmup is not None:
            return None
        return WARMUP_FRACTION if self.warmup_fraction is None else self.warmup_fraction

    def schedule_options(self) -> dict[str, Any]:
        # The default spelt out: a stored schedule replays the same if the default changes.
        share = self.warmup_share()
        length = {"warmup": self.warmup} if share is None else {"warmup_fraction": share}
        return {**super().schedule_options(), **length}

    def conflict(self) -> str | None:
        if self.warmup is not None and self.warmup_fraction is not None:
            return "give warmup (steps or epochs) or warmup_fraction, not both"
        share = self.warmup_share()
        if share is not None and share >= 1:
            return f"warmup_fraction={share!r} leaves nothing after the warm-up"
        return super().conflict()


class ScheduledStrategy(Strategy):
    """Trains one configuration: subclasses say which in `configure`."""

    # Runs of this strategy that differ only in seed may train their one trial each as one
    # population (`lrbench.running._run.run_group`); not a strategy whose trial brings its own optimizer.
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
        self.run_group([ctx])

    def run_group(self, ctxs: list[RunContext]) -> None:
        """Each run's configuration (its range test first, alone), then the one trial of every
        run trained at once (one population where the task batches them), each told with the
        value a lone run tells. One run is a group of one."""
        planned = []
        for ctx in ctxs:
            plan = self.plan(ctx)
            if plan is not None:
                lr, schedule = plan
                config = ctx.trial_config(lr, schedule=schedule, **self.trial_options(ctx))
                weights = self.evaluation_weights_for(ctx)
                planned.append(
                    PlannedTrial(ctx, ctx.ask_fixed(lr), config, evaluation_weights=weights)
                )
        if not planned:
            return
        try:
            results = train_planned(planned, phase="train")
        except BaseException:
            for p in planned:
                p.ctx.study.tell(p.trial, state=TrialState.FAIL)
            raise
        for p, result in zip(planned, results):
            p.ctx.study.tell(p.trial, p.ctx.objective_value(result))

    def trial_options(self, ctx: RunContext) -> dict[str, Any]:
        """Further `RunContext.trial_config` keywords (a self-tuning strategy's own optimizer):
        the optimizer reset, "none" for a strategy without the option."""
        return {"optimizer_reset": getattr(self.opts, "optimizer_reset", "none")}

    def evaluation_weights_for(self, ctx: RunContext) -> EvaluationWeightsFactory | None:
        """The weights the trial is evaluated at, if not the trained ones (e.g. an average of
        the iterates); None: the trained ones (or the task's own rule)."""
        return None
