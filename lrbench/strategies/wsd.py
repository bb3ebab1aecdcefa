"""`wsd`: warmup-stable-decay (MiniCPM, Hu et al. 2024): a linear warm-up, the peak held, then a
decay to 0 over the last `decay_fraction` of the trial, linear, cosine or 1-sqrt (the cooldown
Hägele et al. 2024 found best); torch's LinearLR, ConstantLR and LinearLR / CosineAnnealingLR /
LambdaLR in a SequentialLR. The peak from a range test or given, as `cosine`."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import ScheduledStrategy, WarmupOptions
from lrbench.tools import WSD_DECAYS, ScheduleSpec


@dataclass(frozen=True)
class WSDOptions(WarmupOptions):
    decay_fraction: float = option(0.1, positive=True, maximum=1.0)
    decay: str = option("1-sqrt", choices=WSD_DECAYS)

    def conflict(self) -> str | None:
        share = self.warmup_share()
        if share is not None and share + self.decay_fraction > 1:
            return (
                f"warmup_fraction={share!r} and decay_fraction={self.decay_fraction!r} "
                "add up to more than the trial"
            )
        return super().conflict()


@register
class WSDStrategy(ScheduledStrategy):
    name = "wsd"
    group = "heuristic"
    description = "warm-up, stable, decay (MiniCPM); peak from a range test or given"
    Options = WSDOptions
    opts: WSDOptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        return self.peak(ctx, o.rule), ScheduleSpec(
            "wsd",
            {**o.schedule_options(), "decay_fraction": o.decay_fraction, "decay": o.decay},
        )
