"""`schedulefree`: Schedule-Free AdamW / SGD (Defazio et al. 2024, "The Road Less Scheduled";
the winner of AlgoPerf's self-tuning track). No schedule: the rate is constant after a linear
warm-up, and the model is evaluated at an average of the iterates.

The engine handles what the package asks of a training loop: `optimizer.train()` /
`optimizer.eval()` wherever the model switches mode (evaluation, the kept best state and the
test metric use the eval-mode weights), and batch-norm statistics recomputed with the eval-mode
weights before every evaluation (the package README's caveat; `lrbench.training._engine`).

Defaults, from the installed package (1.4.1):

- `lr` for AdamW: 0.0025, the `AdamWScheduleFree` docstring's default and the learning rate of
  the package's own AlgoPerf self-tuning submission (`schedulefree/algoperf/self_tuning`).
- `lr` for SGD: 10x the task's own rate. The README: "For SGD, a learning rate 10x-50x larger
  than classical rates seems to be a good starting point"; the docstring default (1.0) is a
  scale no single value fits (the bowl diverges at it).
- `warmup_steps`: 2% of the trial's steps. The README recommends a warm-up without a number;
  the self-tuning submission warms up for `warmup_factor = 0.02` of its step budget.

Everything else (betas / momentum 0.9, `weight_lr_power`, `r`) is the package's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._self_tuning import SelfTuningOptions, SelfTuningStrategy, trains_with_sgd
from lrbench.tools import ScheduleSpec

ADAMW_LR = 0.0025  # AdamWScheduleFree's default; the AlgoPerf self-tuning submission's rate
SGD_LR_FACTOR = 10.0  # the README's "10x-50x larger than classical rates", its low end
WARMUP_FRACTION = 0.02  # the AlgoPerf self-tuning submission's warmup_factor


@dataclass(frozen=True)
class ScheduleFreeOptions(SelfTuningOptions):
    # None: the recipe's rate for the optimizer chosen (AdamW's or SGD's), not the packages' 1.
    lr: float | None = option(None, positive=True)  # type: ignore[assignment]
    warmup_steps: int | None = option(None, minimum=0)


@register
class ScheduleFreeStrategy(SelfTuningStrategy):
    name = "schedulefree"
    description = "Schedule-Free AdamW / SGD: no schedule, evaluated at the averaged iterate"
    Options = ScheduleFreeOptions
    opts: ScheduleFreeOptions

    def optimizer_name(self, ctx: RunContext) -> str:
        return "schedulefree_sgd" if trains_with_sgd(ctx) else "schedulefree_adamw"

    def configure(self, ctx: RunContext) -> tuple[float, ScheduleSpec]:
        lr = self.opts.lr
        if lr is None:
            lr = SGD_LR_FACTOR * ctx.task.default_lr if trains_with_sgd(ctx) else ADAMW_LR
        return lr, ScheduleSpec("constant")

    def optimizer_kwargs(self, ctx: RunContext) -> dict[str, Any]:
        warmup = self.opts.warmup_steps
        if warmup is None:
            warmup = round(WARMUP_FRACTION * ctx.epochs_per_trial * ctx.steps_per_epoch)
        return {**super().optimizer_kwargs(ctx), "warmup_steps": int(warmup)}
