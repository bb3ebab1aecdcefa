"""`clr`: range test -> base_lr, max_lr -> torch's CyclicLR (Smith 2015)."""

from __future__ import annotations

from dataclasses import dataclass

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._scheduled import RangeTestOptions, ScheduledStrategy
from lrbench.tools import ScheduleSpec, clr_bounds

BOUND_RULES = ("smith", "max/3", "max/4")
MODES = ("triangular", "triangular2", "exp_range")


@dataclass(frozen=True)
class CLROptions(RangeTestOptions):
    bounds: str = option("smith", choices=BOUND_RULES)
    mode: str = option("triangular", choices=MODES)
    # Smith: a step size of 2-10 epochs' iterations; exp_range's gamma is per iteration.
    step_size_epochs: float = option(2, positive=True)
    gamma: float = option(0.9995, positive=True)


@register
class CLRStrategy(ScheduledStrategy):
    name = "clr"
    group = "heuristic"
    description = "range test -> base_lr, max_lr -> CyclicLR (triangular, triangular2, exp_range)"
    Options = CLROptions
    opts: CLROptions

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        o = self.opts
        # 3 significant digits, as the grid's rates: the stored schedule reads as written.
        base_lr, max_lr = (float(f"{v:.3g}") for v in clr_bounds(self.range_test(ctx), o.bounds))
        opts = {
            "mode": o.mode,
            "base_lr": base_lr,
            "max_lr": max_lr,
            "step_size_epochs": o.step_size_epochs,
        }
        if o.mode == "exp_range":
            opts["gamma"] = o.gamma
        return max_lr, ScheduleSpec("cyclic", opts)
