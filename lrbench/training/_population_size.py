"""How many trials of a task train at once as one population."""

from __future__ import annotations

import torch

from lrbench.tasks import Task
from lrbench.tools import OPTIMIZERS
from lrbench.training._device import resolve_device
from lrbench.training._evaluation import optimizer_has_modes


def default_population(task: Task, device: torch.device | str) -> int:
    """The population size `lrbench run` uses unless told: 1 (off) on a CPU, where a population
    gains little because the cores are already busy; 32 on a GPU for tasks that batch."""
    device = resolve_device(device)
    if device.type == "cpu" or task.population_form is None:
        return 1
    return 32


def population_size(
    task: Task, device: torch.device | str, requested: int | None, optimizer: str | None = None
) -> int:
    """How many trials of `task` with `optimizer` (None: the task's) train at once: 1 where the
    task cannot batch or the optimizer keeps evaluation weights of its own (train / eval
    modes, e.g. Schedule-Free), else the size asked for, else `default_population`."""
    cls = OPTIMIZERS.get(optimizer or task.default_optimizer, (None,))[0]
    if task.population_form is None or (cls is not None and optimizer_has_modes(cls)):
        return 1
    return default_population(task, device) if requested is None else requested
