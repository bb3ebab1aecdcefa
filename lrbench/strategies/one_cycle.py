"""`one_cycle`: range test -> max_lr -> torch's OneCycleLR (super-convergence, Smith 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import SUGGESTION_RULES, RangeTestOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class OneCycleOptions(RangeTestOptions):
    lr: float | None = option(None, positive=True)
    rule: str = option("max_lr", choices=SUGGESTION_RULES)
    pct_start: float = option(0.3, positive=True)


@register
class OneCycleStrategy(ScheduledStrategy):
    name = "one_cycle"
    group = "heuristic"
    description = "range test -> max_lr -> OneCycleLR over the trial"
    Options = OneCycleOptions
    opts: OneCycleOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        max_lr = self.peak(ctx, self.opts.rule)
        return max_lr, ScheduleSpec("one_cycle", {"pct_start": self.opts.pct_start})
