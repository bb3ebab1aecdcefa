"""`cosine` and `sgdr`: CosineAnnealingLR over the trial / CosineAnnealingWarmRestarts
(Loshchilov & Hutter 2017), the peak from a range test or given."""

from __future__ import annotations

from lrbench.schedules import ScheduleSpec
from lrbench.strategies.base import RunContext, register
from lrbench.strategies.scheduled import ScheduledStrategy, with_range_test_options


@register
class CosineStrategy(ScheduledStrategy):
    name = "cosine"
    description = "CosineAnnealingLR over the trial; peak from a range test (rule) or given (lr)"
    option_defaults = with_range_test_options({"lr": None, "rule": "valley", "eta_min": 0.0})

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.peak(ctx, self.options["rule"]), ScheduleSpec(
            "cosine", {"eta_min": self.options["eta_min"]}
        )


@register
class SGDRStrategy(ScheduledStrategy):
    name = "sgdr"
    description = (
        "CosineAnnealingWarmRestarts (T_0 epochs, x T_mult); peak from a range test or given"
    )
    option_defaults = with_range_test_options(
        {"lr": None, "rule": "valley", "t0_epochs": 1, "T_mult": 2, "eta_min": 0.0}
    )

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.peak(ctx, self.options["rule"]), ScheduleSpec(
            "cosine_warm_restarts",
            {k: self.options[k] for k in ("t0_epochs", "T_mult", "eta_min")},
        )
