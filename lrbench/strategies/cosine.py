"""`cosine` and `sgdr`: CosineAnnealingLR over the trial / CosineAnnealingWarmRestarts
(Loshchilov & Hutter 2017), the peak from a range test or given."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import SUGGESTION_RULES, RangeTestOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class CosineOptions(RangeTestOptions):
    lr: float | None = option(None, positive=True)
    rule: str = option("valley", choices=SUGGESTION_RULES)
    eta_min: float = option(0.0, minimum=0.0)


@dataclass(frozen=True)
class SGDROptions(CosineOptions):
    t0_epochs: float = option(1, positive=True)
    T_mult: int = option(2, minimum=1)


@register
class CosineStrategy(ScheduledStrategy):
    name = "cosine"
    group = "heuristic"
    description = "CosineAnnealingLR over the trial; peak from a range test (rule) or given (lr)"
    Options = CosineOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        return self.peak(ctx, self.opts.rule), ScheduleSpec(
            "cosine", {"eta_min": self.opts.eta_min}
        )


@register
class SGDRStrategy(ScheduledStrategy):
    name = "sgdr"
    group = "heuristic"
    description = (
        "CosineAnnealingWarmRestarts (T_0 epochs, x T_mult); peak from a range test or given"
    )
    Options = SGDROptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        return self.peak(ctx, o.rule), ScheduleSpec(
            "cosine_warm_restarts",
            {"t0_epochs": o.t0_epochs, "T_mult": o.T_mult, "eta_min": o.eta_min},
        )
