"""`range_test`: one LR range test, one suggestion rule, then training at that fixed rate."""

from __future__ import annotations

from lrbench.schedules import ScheduleSpec
from lrbench.strategies.base import RunContext, register
from lrbench.strategies.scheduled import ScheduledStrategy, with_range_test_options


@register
class RangeTestStrategy(ScheduledStrategy):
    name = "range_test"
    description = (
        "LR range test -> one suggestion rule (valley by default) -> training at that fixed rate"
    )
    option_defaults = with_range_test_options({"rule": "valley"})

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.suggested(ctx, self.options["rule"]), ScheduleSpec("constant")
