"""Which weights are evaluated, and the metrics of a kept state.

A trial is evaluated with the model in evaluation mode; an optimizer with modes of its own
(Schedule-Free) is switched too, and a task or strategy may evaluate other weights than the
trained ones (`EvaluationWeights`, e.g. an average of the iterates). The metrics of a state kept
in memory (the best state of the chosen configuration) are measured on a fresh model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lrbench.tasks import Task, TaskData
from lrbench.training._device import resolve_device


class EvaluationWeights:
    """Which weights the training path evaluates and keeps as the best state: by default, the
    trained ones as they are (this class does nothing).

    Training enters the object (`with weights:`) around every evaluation, with the model in
    evaluation mode and the optimizer in its evaluation mode (see `optimizer_has_modes`), and
    keeps the best state while inside, so the kept state is the evaluated one. A subclass swaps
    other weights in on `__enter__` and the trained ones back on `__exit__`, e.g. an exponential
    moving average of the weights, updated in `after_step`, which training calls after every
    optimizer step. `recalibrate_bn = True` says the evaluated weights differ from the trained
    ones, so batch-norm running statistics are recomputed with them before evaluating.
    """

    recalibrate_bn: bool = False

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to update an average of the weights)."""

    def __enter__(self) -> EvaluationWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# Builds a trial's evaluation weights from its model and optimizer.
EvaluationWeightsFactory = Callable[[nn.Module, torch.optim.Optimizer], EvaluationWeights]


def optimizer_has_modes(optimizer: torch.optim.Optimizer | type) -> bool:
    """Whether the optimizer (or optimizer class) must be told train / eval, as the model is
    (e.g. Schedule-Free's, whose evaluation weights are an average of its iterates): duck-typed,
    callable `train` and `eval` methods."""
    return callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )


def set_training(model: nn.Module, optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Switch the model and, if it has modes, the optimizer to training or evaluation."""
    model.train(training)
    if optimizer_has_modes(optimizer):
        optimizer.train() if training else optimizer.eval()  # type: ignore[attr-defined]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by name, copied."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fresh_model(task: Task, seed: int, device: torch.device) -> nn.Module:
    """The task's model initialised from `seed`, prepared for `device`: what every trial starts
    from (torch's global generator is left where the initialisation leaves it)."""
    torch.manual_seed(seed)
    return task.prepare_model(task.build_model().to(device), device)


def measure(task: Task, model: nn.Module, split, device: torch.device) -> float:
    """The task's metric on `split` with the model as it is, no gradients."""
    with torch.no_grad(), task.autocast(device):
        return float(task.evaluate(model, split))


def validate(
    task: Task, model: nn.Module, split, device: torch.device
) -> tuple[float, dict[str, float]]:
    """The task's metric and extra metrics on `split` (`Task.validation_metrics`), read back
    at once; no extra metrics where the metric is not finite (a diverged trial)."""
    with torch.no_grad(), task.autocast(device):
        value, extras = task.validation_metrics(model, split)
        read = _read_back({"": value, **extras})
    val = read.pop("")
    return val, (read if math.isfinite(val) else {})


def final_metrics(
    task: Task, data: TaskData, state: dict[str, torch.Tensor], device: torch.device | str
) -> dict[str, float]:
    """The task's final metrics (`Task.final_metrics`) of weights `state` on the test split."""
    device = resolve_device(device)
    model = _model_with_state(task, state, device)
    with torch.no_grad(), task.autocast(device):
        return _read_back(task.final_metrics(model, data.test))


def test_metric(
    task: Task, data: TaskData, state: dict[str, torch.Tensor], device: torch.device | str
) -> float:
    """The task's metric of weights `state` on the test split (what `TrainResult.test` holds)."""
    device = resolve_device(device)
    return measure(task, _model_with_state(task, state, device), data.test, device)


def _read_back(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    if not metrics:
        return {}
    # float64 holds every float32 or bf16 value exactly, and a float64 metric as it is.
    values = torch.stack([v.detach().double().reshape(()) for v in metrics.values()]).tolist()
    return dict(zip(metrics, values))


def _model_with_state(
    task: Task, state: dict[str, torch.Tensor], device: torch.device
) -> torch.nn.Module:
    """The task's model holding `state` (evaluated weights), in evaluation mode."""
    model = task.prepare_model(task.build_model().to(device), device)
    model.load_state_dict(state)
    model.eval()
    return model
