"""`prodigy`, `prodigy+cosine`: Prodigy (Mishchenko & Defazio 2024), Adam with a step size it
estimates itself, `lr=1` as its authors recommend ("We recommend using lr=1. for all
networks"), with no schedule or with cosine annealing over the trial, the two their README
recommends ("either using no scheduler or using cosine annealing"); the cosine is lrbench's
`cosine` schedule, torch's CosineAnnealingLR over the trial's steps. Prodigy is Adam-based:
SGD tasks get it too. Other options are the package's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register, register_variant
from lrbench.strategies._options import option
from lrbench.strategies._self_tuning import SelfTuningOptions, SelfTuningStrategy
from lrbench.tools import ScheduleSpec


@dataclass(frozen=True)
class ProdigyOptions(SelfTuningOptions):
    cosine: bool = option(False)


@register
class ProdigyStrategy(SelfTuningStrategy):
    name = "prodigy"
    description = "Prodigy (Adam that estimates its step size), lr=1, no schedule"
    Options = ProdigyOptions
    opts: ProdigyOptions

    def optimizer_name(self, ctx: RunContext) -> str:
        return "prodigy"

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        schedule = ScheduleSpec("cosine") if self.opts.cosine else ScheduleSpec("constant")
        return self.opts.lr, schedule


register_variant(
    "prodigy+cosine",
    ProdigyStrategy,
    "Prodigy, lr=1, with CosineAnnealingLR over the trial",
    cosine=True,
)
