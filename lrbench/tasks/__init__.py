"""The task registry: every task by name."""

from __future__ import annotations

from typing import Any

from lrbench.errors import ConfigError
from lrbench.tasks.base import DataOptions, Task, TaskData
from lrbench.tasks.cifar10 import Cifar10
from lrbench.tasks.digits import Digits
from lrbench.tasks.fmnist_vae import FashionMnistVAE
from lrbench.tasks.functions import Functions

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (FashionMnistVAE, Cifar10, Digits, Functions)
}


def get_task(name: str, **options: Any) -> Task:
    """A task instance by registry name, with its options."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
    return cls(**options)


__all__ = ["TASKS", "DataOptions", "Task", "TaskData", "get_task"]
