"""`warmup_cosine`: a linear warm-up, then cosine annealing to `eta_min` over the rest of the
trial, the default of most transformer training; torch's LinearLR then CosineAnnealingLR in a
SequentialLR. The peak from a range test or given, as `cosine`."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import ScheduledStrategy, WarmupOptions
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class WarmupCosineOptions(WarmupOptions):
    eta_min: float = option(0.0, minimum=0.0)


@register
class WarmupCosineStrategy(ScheduledStrategy):
    name = "warmup_cosine"
    group = "heuristic"
    description = "LinearLR warm-up, then CosineAnnealingLR; peak from a range test or given"
    Options = WarmupCosineOptions
    opts: WarmupCosineOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        return self.peak(ctx, o.rule), ScheduleSpec(
            "warmup_cosine", {**o.schedule_options(), "eta_min": o.eta_min}
        )
