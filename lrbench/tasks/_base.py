"""What every task declares, so the engine, strategies and harness never special-case one.

A task owns its data preparation (on the training device, once per process), its model, its
training loss and its validation metric; `lrbench.training` owns the loop. The loss is written
once, per example (`example_losses`), for the task's model and one trial's batch and, unchanged,
for K copies of the model as one module (the task's `population_form`) and K members' stacked
batch: the training path derives each trial's mean loss from it. Adding a task is one module
with one loss.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from lrbench.errors import ConfigError
from lrbench.tasks._data import TensorSplit, holdout_split, shuffled_batches, steps_per_epoch
from lrbench.tools import ScheduleSpec

if TYPE_CHECKING:
    from lrbench.training._evaluation import EvaluationWeights


@dataclass
class TaskData:
    """A task's splits, already on the training device."""

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    steps_per_epoch: int


@dataclass(frozen=True)
class DataOptions:
    """Where data comes from and how much of the training split to use (hashable: a cache key)."""

    data_root: str | None = None
    train_subset: int | None = None
    download: bool = False


class Task(ABC):
    """A trainable workload. Subclasses set the class attributes and implement the methods.

    Options (e.g. the VAE's hidden width) are constructor keywords listed in `option_defaults`,
    so suites can override them and unknown ones are rejected by name.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    metric: ClassVar[str]  # e.g. "nll", "accuracy", "f"
    metric_unit: ClassVar[str] = ""  # e.g. "nats/image"
    direction: ClassVar[str]  # "minimize" or "maximize"
    default_target: ClassVar[float | None] = None
    default_optimizer: ClassVar[str]
    # The recipe: a class default that a task's options may set per instance (cifar10's does).
    default_lr: float
    default_epochs: int
    batch_size: int
    optimizer_kwargs: dict[str, Any] = {}
    default_schedule: ScheduleSpec = ScheduleSpec()
    # A step loss above this multiple of the first step's loss counts as divergence.
    diverge_factor: ClassVar[float] = 10.0
    # Training batches over which batch-norm statistics are recomputed when the evaluated
    # weights differ from the trained ones (50, as Schedule-Free's README does; at most an epoch).
    recalibration_steps: ClassVar[int] = 50
    option_defaults: ClassVar[dict[str, Any]] = {}
    # Integer options that count or size something: at least 1. Any other integer option
    # (padding, a test-time augmentation level) is at least 0.
    size_options: ClassVar[frozenset[str]] = frozenset(
        {
            "hidden",
            "width",
            "layers",
            "z_dim",
            "batch_size",
            "val_size",
            "steps_per_epoch",
        }
    )

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            known = ", ".join(self.option_defaults) or "none"
            raise ConfigError(
                f"task {self.name!r}: unknown option(s) {', '.join(sorted(unknown))}; known: {known}"
            )
        for key, value in options.items():
            _check_option_type(self.name, key, value, self.option_defaults[key])
            _check_option_range(self.name, key, value, 1 if key in self.size_options else 0)
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        if "batch_size" in self.options:
            self.batch_size = int(
                self.options["batch_size"]
            )  # instance override of the class default
        self.target: float | None = self.default_target

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, device: torch.device, data: DataOptions = DataOptions()) -> TaskData:
        """The task's splits on `device`, loaded once per process and cached."""
        key = (
            type(self),
            tuple(sorted(self.options.items(), key=lambda kv: kv[0])),
            str(device),
            data,
        )
        cached = _DATA_CACHE.get(key)
        if cached is None:
            cached = _DATA_CACHE[key] = self.load(torch.device(device), data)
        return cached

    @abstractmethod
    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        """Read, split and move the data to `device` (uncached: call `prepare`)."""

    def holdout(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) indices of a training set of `n` examples: `val_size` held out, seed 0."""
        return holdout_split(n, int(self.options["val_size"]), seed=0)

    def train_batches(self, data: TaskData, generator: torch.Generator) -> Iterator[Any]:
        """One epoch of training batches: slices of an on-device permutation."""
        return shuffled_batches(data.train, self.batch_size, generator)

    def recalibration_batches(self, data: TaskData, generator: torch.Generator) -> Iterator[Any]:
        """Batches for recomputing batch-norm statistics (`torch.optim.swa_utils.update_bn`:
        the model is called on a batch's first element, or on the batch if it is a tensor).
        Forward passes only, timed as evaluation: no optimizer step, so nothing is charged."""
        return itertools.islice(self.train_batches(data, generator), self.recalibration_steps)

    def population_batches(
        self, data: TaskData, generators: list[torch.Generator]
    ) -> Iterator[Any]:
        """One epoch of K members' training batches, stacked on a leading member dimension:
        member k's slice is exactly the batch `train_batches(data, generators[k])` gives.

        Each member draws its own permutation from its own generator (as a lone trial does);
        a batch gathers with an index tensor of shape (K, B), on the device."""
        split = data.train
        n, b = len(split), self.batch_size
        perms = torch.stack(
            [torch.randperm(n, generator=g, device=split.x.device) for g in generators]
        )
        for i in range(steps_per_epoch(n, b)):
            idx = perms[:, i * b : (i + 1) * b]
            yield split.x[idx], (split.y[idx] if split.y is not None else None)

    def steps_per_epoch_for(self, train: TensorSplit) -> int:
        return steps_per_epoch(len(train), self.batch_size)

    # -- model --------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (the caller seeds torch's RNG first)."""

    def prepare_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Device-specific model set-up (e.g. channels_last on CUDA); identity by default."""
        return model

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The mixed-precision context for forward passes; full precision by default."""
        return contextlib.nullcontext()

    def evaluation_weights(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> EvaluationWeights | None:
        """The weights evaluated instead of the trained ones (an `lrbench.training._engine.EvaluationWeights`,
        e.g. an average of the weights the task's recipe calls for); None: the trained ones."""
        return None

    # -- the loss -------------------------------------------------------------------------------
    @abstractmethod
    def example_losses(self, model: nn.Module, batch: Any, noise: Any) -> torch.Tensor:
        """The training loss of every example of a batch: the quantity whose mean over a batch
        the optimizer minimises.

        Written once for two shapes: the task's model and one trial's batch (from
        `train_batches`) give shape (B,); K copies of the model in the task's population form
        and K members' stacked batch (from `population_batches`, leading member dimension)
        give (K, B), member k's row equal to what member k alone gives. Write it on the
        trailing dimensions (`x[..., j]`, `.sum(-1)`, `flatten(0, -2)`) and it holds for both.
        `noise` is the batch's random inputs (`loss_noise`), None when the loss draws none."""

    def loss_noise(self, batch: Any, generator: torch.Generator | None) -> torch.Tensor | None:
        """The random inputs of one trial's loss on `batch` (e.g. a VAE's reparameterisation
        noise), drawn from `generator` (None: torch's global generator, as a plain loop draws
        them); None when the loss draws none. Population members draw theirs from their own
        generators and the training path stacks them."""
        return None

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The mean training loss of one trial's batch, noise from torch's global generator (what
        the range test steps on; derived from `example_losses`, never written twice)."""
        return self.example_losses(model, batch, self.loss_noise(batch, None)).mean(-1)

    # -- population training ------------------------------------------------------------------
    # How K trials of the task become one module (`lrbench.stacking`): "stacked" for nets of
    # linear layers (one batched matrix product per layer), "folded" for conv nets (the members
    # folded into the channels of one grouped net), None for a task that cannot batch (its
    # trials then train one after another).
    population_form: ClassVar[str | None] = None

    @abstractmethod
    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        """The task's metric on a whole split, as a 0-d tensor on the device (read back by the caller)."""

    def extra_metrics(self, model: nn.Module, split: TensorSplit) -> dict[str, torch.Tensor]:
        """Extra metrics on a split, recorded beside the task's metric every epoch (0-d tensors
        on the device, by name); none by default. Called in evaluation mode, without gradients."""
        return {}

    def validation_metrics(
        self, model: nn.Module, split: TensorSplit
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The metric and the extra metrics of one evaluation (`evaluate`, `extra_metrics`); a
        task whose metrics share work (one encoder pass for two bounds) computes them together,
        to the same values."""
        return self.evaluate(model, split), self.extra_metrics(model, split)

    def final_metrics(self, model: nn.Module, split: TensorSplit) -> dict[str, torch.Tensor]:
        """Extra metrics of a chosen configuration's best state on the test split (e.g. a costlier
        bound); none by default. Computed once, so they may cost more than a per-epoch metric."""
        return {}

    def is_better(self, a: float, b: float) -> bool:
        """Whether metric value `a` is strictly better than `b` in this task's direction."""
        return a < b if self.direction == "minimize" else a > b

    def worst_value(self) -> float:
        return float("inf") if self.direction == "minimize" else float("-inf")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "unit": self.metric_unit,
            "direction": self.direction,
            "target": self.target,
            "optimizer": self.default_optimizer,
            "lr": self.default_lr,
            "epochs": self.default_epochs,
            "batch_size": self.batch_size,
            "options": dict(self.options),
        }


_DATA_CACHE: dict[tuple, TaskData] = {}
_NOTED: set[str] = set()


def _check_option_type(task: str, key: str, value: Any, default: Any) -> None:
    """An option takes its default's type (a number where the default is a float)."""
    if default is None:
        return
    want: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    if isinstance(default, (list, tuple)):
        want = (list, tuple)
    if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, want):
        kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise ConfigError(
            f"task {task!r}: option {key} must be {kind.get(type(default), type(default).__name__)}"
            f" like its default {default!r}, got {value!r}"
        )


def _check_option_range(task: str, key: str, value: Any, minimum: int) -> None:
    """An integer option at least `minimum` (a width of -3 failed deep in torch); a number
    finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"task {task!r}: option {key} must be finite, got {value!r}")
    if isinstance(value, int) and value < minimum:
        raise ConfigError(f"task {task!r}: option {key} must be at least {minimum}, got {value}")


def subset(split: TensorSplit, n: int | None) -> TensorSplit:
    """The first `n` examples of a split (the files and splits are class-mixed), or all of it."""
    if n is not None and n <= 0:
        raise ConfigError(f"train_subset must be positive, got {n}")
    if n is not None and n > len(split):
        note = f"train_subset {n} is more than the {len(split)} training examples: using all"
        if note not in _NOTED:  # once per process: a suite's cap meets every task
            _NOTED.add(note)
            print(f"lrbench: note: {note}", file=sys.stderr)
    if n is None or n >= len(split):
        return split
    return TensorSplit(split.x[:n], None if split.y is None else split.y[:n])
