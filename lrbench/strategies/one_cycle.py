"""`one_cycle`: range test -> max_lr -> torch's OneCycleLR (super-convergence, Smith 2017)."""

from __future__ import annotations

from lrbench.schedules import ScheduleSpec
from lrbench.strategies.base import RunContext, register
from lrbench.strategies.scheduled import ScheduledStrategy, with_range_test_options


@register
class OneCycleStrategy(ScheduledStrategy):
    name = "one_cycle"
    description = "range test -> max_lr -> OneCycleLR over the trial"
    option_defaults = with_range_test_options({"lr": None, "rule": "max_lr", "pct_start": 0.3})

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        max_lr = self.peak(ctx, self.options["rule"])
        return max_lr, ScheduleSpec("one_cycle", {"pct_start": self.options["pct_start"]})
