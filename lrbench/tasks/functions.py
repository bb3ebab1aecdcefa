"""`functions`: the 2-D test functions of design.md, the point (x, y) itself as parameters.

No data: an "epoch" is `steps_per_epoch` optimizer steps on f, and the metric is f at the point
after the epoch. It charts how tolerant each optimizer is of its learning rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn

from lrbench.errors import ConfigError
from lrbench.tasks._base import DataOptions, Task, TaskData
from lrbench.tasks._data import TensorSplit

FUNCTIONS = {
    # An elongated quadratic bowl: SGD converges iff lr < 2/40.
    "bowl": lambda x, y: 20 * x**2 + 2 * y**2,
    # A bowl with a sinusoidal ripple along y: local minima trap small rates.
    "wavy": lambda x, y: 2 * x**2 + 10 * y**2 + 10 * torch.sin(5 * y),
}


class Point(nn.Module):
    def __init__(self, start: tuple[float, float]) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(start, dtype=torch.float32))


class Functions(Task):
    name = "functions"
    description = "2-D functions 20x^2+2y^2 (bowl) and 2x^2+10y^2+10sin(5y) (wavy); final f"
    metric = "f"
    metric_unit = "function value"
    direction = "minimize"
    default_target = None
    default_optimizer = "sgd"
    default_lr = 1e-2
    default_epochs = 10
    batch_size = 1
    diverge_factor = 1e3
    option_defaults = {"function": "bowl", "start": (2.0, 2.0), "steps_per_epoch": 10}
    population_form = "stacked"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["function"] not in FUNCTIONS:
            raise ConfigError(
                f"task functions: unknown function {self.options['function']!r}; "
                f"choose one of {', '.join(FUNCTIONS)}"
            )
        self.options["start"] = tuple(float(v) for v in self.options["start"])
        self.f = FUNCTIONS[self.options["function"]]

    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        empty = TensorSplit(torch.empty(0, device=device), None)
        return TaskData(empty, empty, empty, int(self.options["steps_per_epoch"]))

    def train_batches(self, data: TaskData, generator: torch.Generator) -> Iterator[None]:
        return iter([None] * data.steps_per_epoch)

    def build_model(self) -> nn.Module:
        return Point(self.options["start"])

    def example_losses(self, model: nn.Module, batch: None, noise: None) -> torch.Tensor:
        """f at the point: one "example" per step, shape (1,), or (K, 1) for K stacked points."""
        point = cast(Point, model)  # the task's model, or its stacked copy
        x, y = point.xy.unbind(-1)  # the point (2,) or the stacked points (K, 2)
        return self.f(x, y).unsqueeze(-1)

    def population_batches(self, data: TaskData, generators: list[torch.Generator]):
        return iter([None] * data.steps_per_epoch)

    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        return self.example_losses(model, None, None)[..., 0]
