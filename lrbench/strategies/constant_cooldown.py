"""`constant_cooldown`: the peak held, then a cooldown to 0 over the last `cooldown_fraction` of
the trial, 1-sqrt or linear (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations": it matches cosine without fixing the run's length in advance,
and a 1-sqrt cooldown beats a linear one); torch's ConstantLR then LambdaLR / LinearLR in a
SequentialLR. The peak from a range test or given, as `cosine`."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import IntervalOptions, ScheduledStrategy
from lrbench.tools import COOLDOWNS, ScheduleSpec


@dataclass(frozen=True)
class CooldownOptions(IntervalOptions):
    cooldown_fraction: float = option(0.2, positive=True, maximum=1.0)
    cooldown: str = option("1-sqrt", choices=COOLDOWNS)


@register
class ConstantCooldownStrategy(ScheduledStrategy):
    name = "constant_cooldown"
    group = "heuristic"
    description = (
        "constant, then a short cooldown (Hägele et al.); peak from a range test or given"
    )
    Options = CooldownOptions
    opts: CooldownOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        return self.peak(ctx, o.rule), ScheduleSpec(
            "constant_cooldown",
            {
                **o.schedule_options(),
                "cooldown_fraction": o.cooldown_fraction,
                "cooldown": o.cooldown,
            },
        )
