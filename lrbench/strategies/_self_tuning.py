"""What the self-tuning strategies share (schedulefree, prodigy, dadapt): one configuration,
no search, an optimizer that sets its own step size.

They train one trial for the run's epochs per trial, cut at the budget, like `fixed`; nothing
is spent on choosing a rate, so a report shows at once whether searching beats not searching.
The optimizer follows the task's: its SGD variant for a task trained with SGD (plain, momentum
or Nesterov), its Adam variant otherwise. The task's weight decay comes along unless the
`weight_decay` option says otherwise: regularisation is part of the task, not of the rate.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from lrbench.strategies._base import RunContext
from lrbench.strategies._options import StrategyOptions, option
from lrbench.strategies._scheduled import ScheduledStrategy
from lrbench.tools import ScheduleSpec, is_sgd_family


@dataclass(frozen=True)
class SelfTuningOptions(StrategyOptions):
    # The packages' `lr` multiplies their own step-size estimate; their authors recommend 1.
    lr: float = option(1.0, positive=True)
    weight_decay: float | None = option(None, minimum=0.0)


class SelfTuningStrategy(ScheduledStrategy):
    group = "self-tuning"
    Options = SelfTuningOptions
    opts: SelfTuningOptions
    batches_seeds = False  # its optimizer is its own, not one a population steps per member

    @abstractmethod
    def optimizer_name(self, ctx: RunContext) -> str:
        """The registered optimizer (`lrbench.tools._optimizers`) this strategy trains `ctx`'s task with."""

    def optimizer_kwargs(self, ctx: RunContext) -> dict[str, Any]:
        decay = self.opts.weight_decay
        if decay is None:
            decay = task_option(ctx, "weight_decay", 0.0)
        return {"weight_decay": decay} if decay else {}

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.opts.lr, ScheduleSpec("constant")

    def trial_options(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer_name(ctx),
            "optimizer_kwargs": self.optimizer_kwargs(ctx),
        }


def trains_with_sgd(ctx: RunContext) -> bool:
    """Whether the run's optimizer (the task's, unless the run names one) takes SGD's steps."""
    return is_sgd_family(ctx.optimizer or ctx.task.default_optimizer)


def task_option(ctx: RunContext, key: str, default: float) -> float:
    """An option of the task's own optimizer (its registered defaults, then the task's), or
    `default` when the run trains with another optimizer or the option is not set."""
    from lrbench.tools import OPTIMIZERS

    name = ctx.optimizer or ctx.task.default_optimizer
    if name != ctx.task.default_optimizer or name not in OPTIMIZERS:
        return default
    options = {**OPTIMIZERS[name][1], **ctx.task.optimizer_kwargs}
    return float(options.get(key, default))
