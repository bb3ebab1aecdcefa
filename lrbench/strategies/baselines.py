"""Baselines at a given rate: `fixed` (e.g. the hand-tuned 3e-4 for Adam), `step` decay and
`exp` decay. Without an `lr` option they use the task's default rate; `optimizer_reset =
"epoch"` builds a fresh optimizer every epoch (the ablation of seed 002's cosine recipe)."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import OptimizerResetOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class GivenRateOptions(OptimizerResetOptions):
    lr: float | None = option(None, positive=True)


@dataclass(frozen=True)
class StepOptions(GivenRateOptions):
    gamma: float = option(0.1, positive=True)
    step_size: int | None = option(None, minimum=1)


@dataclass(frozen=True)
class ExpOptions(GivenRateOptions):
    gamma: float = option(0.9, positive=True)


class _GivenRate(ScheduledStrategy):
    group = "baseline"
    opts: GivenRateOptions

    def rate(self, ctx: RunContext) -> float:
        lr = self.opts.lr
        return float(lr) if lr is not None else ctx.task.default_lr


@register
class FixedStrategy(_GivenRate):
    name = "fixed"
    description = "one given rate for the whole trial (default: the task's)"
    Options = GivenRateOptions
    opts: GivenRateOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.rate(ctx), ScheduleSpec("constant")


@register
class StepStrategy(_GivenRate):
    name = "step"
    description = "StepLR: x gamma every step_size epochs from a given rate"
    Options = StepOptions
    opts: StepOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        step = self.opts.step_size or max(1, ctx.epochs_per_trial // 3)
        return self.rate(ctx), ScheduleSpec("step", {"gamma": self.opts.gamma, "step_size": step})


@register
class ExpStrategy(_GivenRate):
    name = "exp"
    description = "ExponentialLR: x gamma every epoch from a given rate"
    Options = ExpOptions
    opts: ExpOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.rate(ctx), ScheduleSpec("exponential", {"gamma": self.opts.gamma})
