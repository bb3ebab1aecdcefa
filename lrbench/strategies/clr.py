"""`clr`: range test -> base_lr, max_lr -> torch's CyclicLR (Smith 2015)."""

from __future__ import annotations

from lrbench.errors import ConfigError
from lrbench.range_test import clr_bounds
from lrbench.schedules import ScheduleSpec
from lrbench.strategies.base import RunContext, register
from lrbench.strategies.scheduled import ScheduledStrategy, with_range_test_options

BOUND_RULES = ("smith", "max/3", "max/4")


@register
class CLRStrategy(ScheduledStrategy):
    name = "clr"
    description = "range test -> base_lr, max_lr -> CyclicLR (triangular, triangular2, exp_range)"
    # Smith: a step size of 2-10 epochs' iterations; exp_range's gamma is per iteration.
    option_defaults = with_range_test_options(
        {"bounds": "smith", "mode": "triangular", "step_size_epochs": 2, "gamma": 0.9995}
    )

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        if self.options["bounds"] not in BOUND_RULES:
            raise ConfigError(
                f"strategy clr: unknown bounds rule {self.options['bounds']!r}; "
                f"choose one of {', '.join(BOUND_RULES)}"
            )
        # 3 significant digits, as the grid's rates: the stored schedule reads as written.
        base_lr, max_lr = (
            float(f"{v:.3g}") for v in clr_bounds(self.range_test(ctx), self.options["bounds"])
        )
        opts = {
            "mode": self.options["mode"],
            "base_lr": base_lr,
            "max_lr": max_lr,
            "step_size_epochs": self.options["step_size_epochs"],
        }
        if self.options["mode"] == "exp_range":
            opts["gamma"] = self.options["gamma"]
        return max_lr, ScheduleSpec("cyclic", opts)
