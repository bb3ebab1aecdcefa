"""`dadapt`: D-Adaptation (Defazio & Mishchenko 2023): DAdaptAdam for Adam tasks, DAdaptSGD for
SGD tasks, `lr=1` as the package's README says ("Set the LR parameter to 1.0"), no schedule.

The README calls them drop-in replacements: DAdaptSGD takes the task's own momentum (0 for
plain SGD, the package's default too); everything else is the package's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._self_tuning import (
    SelfTuningOptions,
    SelfTuningStrategy,
    task_option,
    trains_with_sgd,
)


@dataclass(frozen=True)
class DAdaptOptions(SelfTuningOptions):
    momentum: float | None = option(None, minimum=0.0)  # SGD only; None: the task's


@register
class DAdaptStrategy(SelfTuningStrategy):
    name = "dadapt"
    description = "D-Adaptation Adam / SGD (estimates its step size), lr=1, no schedule"
    Options = DAdaptOptions
    opts: DAdaptOptions

    def optimizer_name(self, ctx: RunContext) -> str:
        return "dadapt_sgd" if trains_with_sgd(ctx) else "dadapt_adam"

    def optimizer_kwargs(self, ctx: RunContext) -> dict[str, Any]:
        kwargs = super().optimizer_kwargs(ctx)
        if trains_with_sgd(ctx):
            momentum = self.opts.momentum
            kwargs["momentum"] = (
                task_option(ctx, "momentum", 0.0) if momentum is None else momentum
            )
        return kwargs
