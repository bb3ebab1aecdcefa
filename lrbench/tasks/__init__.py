"""Tasks: what is trained and how it is scored, one module per task, with the data they read.

The registry names every task; `Task` (in `_base`) says what a task declares; `_data` reads
and validates the datasets and slices on-device batches."""

from __future__ import annotations

from typing import Any

from lrbench.errors import ConfigError
from lrbench.tasks._base import DataOptions, Task, TaskData
from lrbench.tasks._data import (
    CIFAR10_CLASSES,
    ArraySplits,
    TensorSplit,
    ordered_batches,
    read_cifar10,
    read_digits,
    read_fashion_mnist,
    search_roots,
    shuffled_batches,
    steps_per_epoch,
)
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


__all__ = [
    "CIFAR10_CLASSES",
    "TASKS",
    "ArraySplits",
    "DataOptions",
    "Task",
    "TaskData",
    "TensorSplit",
    "get_task",
    "ordered_batches",
    "read_cifar10",
    "read_digits",
    "read_fashion_mnist",
    "search_roots",
    "shuffled_batches",
    "steps_per_epoch",
]
