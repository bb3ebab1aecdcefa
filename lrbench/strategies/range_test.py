"""`range_test`: one LR range test, one suggestion rule, then training at that fixed rate."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import SUGGESTION_RULES, RangeTestOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class RangeTestStrategyOptions(RangeTestOptions):
    rule: str = option("valley", choices=SUGGESTION_RULES)


@register
class RangeTestStrategy(ScheduledStrategy):
    name = "range_test"
    group = "heuristic"
    description = (
        "LR range test -> one suggestion rule (valley by default) -> training at that fixed rate"
    )
    Options = RangeTestStrategyOptions
    opts: RangeTestStrategyOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.suggested(ctx, self.opts.rule), ScheduleSpec("constant")
