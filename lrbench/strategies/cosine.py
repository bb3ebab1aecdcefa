"""`cosine` and `sgdr`: CosineAnnealingLR over the trial / CosineAnnealingWarmRestarts
(Loshchilov & Hutter 2017), the peak from a range test or given.

`cosine` with `schedule = "seed002_cosine"` trains seed 002's cosine rows as its author's source
ran them: a 5-epoch warm-up multiplying a cosine over the epochs after it, the rate set once per
epoch; with `optimizer_reset = "epoch"` a fresh optimizer every epoch, as the seed built Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import PeakOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec

COSINE_SCHEDULES = ("cosine", "seed002_cosine")


@dataclass(frozen=True)
class AnnealOptions(PeakOptions):
    eta_min: float = option(0.0, minimum=0.0)


@dataclass(frozen=True)
class CosineOptions(AnnealOptions):
    schedule: str = option("cosine", choices=COSINE_SCHEDULES)

    def conflict(self) -> str | None:
        if self.schedule == "seed002_cosine" and self.eta_min != 0:
            return "eta_min is for schedule cosine; seed002_cosine anneals to 0, as the seed did"
        return super().conflict()


@dataclass(frozen=True)
class SGDROptions(AnnealOptions):
    t0_epochs: float = option(1, positive=True)
    T_mult: int = option(2, minimum=1)


@register
class CosineStrategy(ScheduledStrategy):
    name = "cosine"
    group = "heuristic"
    description = (
        "CosineAnnealingLR over the trial, or seed 002's recipe; peak from a range test or given"
    )
    Options = CosineOptions
    opts: CosineOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        options = {"eta_min": o.eta_min} if o.schedule == "cosine" else {}
        return self.peak(ctx, o.rule), ScheduleSpec(o.schedule, options)


@register
class SGDRStrategy(ScheduledStrategy):
    name = "sgdr"
    group = "heuristic"
    description = (
        "CosineAnnealingWarmRestarts (T_0 epochs, x T_mult); peak from a range test or given"
    )
    Options = SGDROptions
    opts: SGDROptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        return self.peak(ctx, o.rule), ScheduleSpec(
            "cosine_warm_restarts",
            {"t0_epochs": o.t0_epochs, "T_mult": o.T_mult, "eta_min": o.eta_min},
        )
