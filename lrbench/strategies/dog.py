"""`dog`: DoG (Ivgi, Hinder & Carmon 2023, "DoG is SGD's Best Friend"), SGD whose step size is
the largest distance the weights have moved from their start over the root of the summed
squared gradient norms, with `lr=1` as the paper and the package recommend (its docstring:
"changing it is not recommended") and no schedule.

The model is evaluated at the package's polynomial-decay average of the iterates
(`PolynomialDecayAverager`, Shamir & Zhang 2013, its default gamma 8), stepped after every
optimizer step: the package README says DoG "must be combined with iterate averaging" for best
performance and for a fair comparison. The average is the trial's evaluation weights
(`lrbench.training.EvaluationWeights`): every evaluation, the kept best state and the test
metric use it, and training goes on from the trained weights.

Options, the rest being the package's defaults:

- `layerwise`: LDoG, the paper's layer-wise variant: one step size per parameter tensor
  instead of one for the whole model.
- `reps_rel`: the first step's movement relative to `1 + |x0|`. None: the package docstring's
  advice, 1e-6, or 1e-4 for a model with batch normalisation (its README: with batch norm, at
  1e-6 the step size did not grow from its start for a few hundred steps).
- `avg_gamma`: the averager's gamma.

DoG is SGD for every task, Adam tasks included, as Prodigy is Adam for every task. The task's
weight decay comes along (`SelfTuningStrategy`); DoG adds it to the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from dog import PolynomialDecayAverager
from torch import nn

from lrbench.strategies._base import RunContext, register
from lrbench.strategies._options import option
from lrbench.strategies._self_tuning import SelfTuningOptions, SelfTuningStrategy
from lrbench.tasks import Task
from lrbench.training import EvaluationWeights, EvaluationWeightsFactory

REPS_REL = 1e-6  # the package's default initial movement
REPS_REL_BATCH_NORM = 1e-4  # its advice for models with batch normalisation
AVERAGER_GAMMA = 8.0  # PolynomialDecayAverager's default


@dataclass(frozen=True)
class DoGOptions(SelfTuningOptions):
    layerwise: bool = option(False)
    reps_rel: float | None = option(None, positive=True)
    avg_gamma: float = option(AVERAGER_GAMMA, minimum=0.0)


@register
class DoGStrategy(SelfTuningStrategy):
    name = "dog"
    description = (
        "DoG (SGD, step size from distance over gradients), lr=1, no schedule,"
        " evaluated at its iterate average"
    )
    Options = DoGOptions
    opts: DoGOptions

    def optimizer_name(self, ctx: RunContext) -> str:
        return "ldog" if self.opts.layerwise else "dog"

    def optimizer_kwargs(self, ctx: RunContext) -> dict[str, Any]:
        reps_rel = self.opts.reps_rel
        if reps_rel is None:
            reps_rel = REPS_REL_BATCH_NORM if has_batch_norm(ctx.task) else REPS_REL
        return {**super().optimizer_kwargs(ctx), "reps_rel": reps_rel}

    def evaluation_weights_for(self, ctx: RunContext) -> EvaluationWeightsFactory:
        return self.evaluation_weights

    def evaluation_weights(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> AveragedIterates:
        """The trial's evaluation weights (a `TrainOptions.evaluation_weights` factory)."""
        return AveragedIterates(model, self.opts.avg_gamma)


class AveragedIterates(EvaluationWeights):
    """The package's polynomial-decay average of the trained weights: stepped after every
    optimizer step, put into the model for evaluation, the trained weights put back after."""

    # The batch-norm statistics the average carries are averages of the trained weights'; as
    # for every averaged evaluation here (Schedule-Free's too), they are recomputed for it.
    recalibrate_bn = True

    def __init__(self, model: nn.Module, gamma: float) -> None:
        self.model = model
        self.averager = PolynomialDecayAverager(model, gamma=gamma)
        self.trained: dict[str, torch.Tensor] | None = None

    def after_step(self) -> None:
        self.averager.step()

    def __enter__(self) -> AveragedIterates:
        self.trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.averager.averaged_model.state_dict())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.trained is not None
        self.model.load_state_dict(self.trained)
        self.trained = None


def has_batch_norm(task: Task) -> bool:
    """Whether the task's model normalises with batch statistics (a model built for the
    question, the global RNG left as it was)."""
    with torch.random.fork_rng(devices=[]):
        model = task.build_model()
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
