"""What goes into training and what comes out: a trial's configuration, how it is run, the
record of each epoch and the trial's result."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lrbench.errors import ConfigError
from lrbench.tasks import Task
from lrbench.tools import ScheduleSpec

if TYPE_CHECKING:
    from lrbench.training._evaluation import EvaluationWeightsFactory

# When a trial's optimizer starts afresh: never (one optimizer for the whole trial), or at every
# epoch boundary (seed 002's cosine rows build a new Adam each epoch: its moments and step count
# reset, the weights carry on).
OPTIMIZER_RESETS = ("none", "epoch")


@dataclass
class TrainConfig:
    """One trial's configuration. `max_steps` cuts the trial at a budget (mid-epoch if need be);
    `optimizer_reset = "epoch"` starts the optimizer afresh at every epoch boundary."""

    lr: float
    epochs: int
    optimizer: str
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    seed: int = 0
    max_steps: int | None = None
    optimizer_reset: str = "none"

    def __post_init__(self) -> None:
        if self.optimizer_reset not in OPTIMIZER_RESETS:
            raise ConfigError(
                f"optimizer_reset must be one of {', '.join(OPTIMIZER_RESETS)}, "
                f"got {self.optimizer_reset!r}"
            )

    @classmethod
    def for_task(
        cls,
        task: Task,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        optimizer: str | None = None,
        schedule: ScheduleSpec | None = None,
        seed: int = 0,
        max_steps: int | None = None,
        optimizer_reset: str = "none",
        **optimizer_kwargs: Any,
    ) -> TrainConfig:
        """Task defaults, overridden by whatever is given."""
        opt = optimizer or task.default_optimizer
        # The task's optimizer options (e.g. weight decay) only apply to the task's own optimizer.
        kwargs = dict(task.optimizer_kwargs) if opt == task.default_optimizer else {}
        kwargs.update(optimizer_kwargs)
        if epochs is not None and epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {epochs}")
        # Checked here so the CLI fails before it starts anything.
        if lr is not None and not lr > 0:
            raise ConfigError(f"learning rate must be positive, got {lr!r}")
        return cls(
            lr=task.default_lr if lr is None else lr,
            epochs=epochs or task.default_epochs,
            optimizer=opt,
            optimizer_kwargs=kwargs,
            schedule=task.default_schedule if schedule is None else schedule,
            seed=seed,
            max_steps=max_steps,
            optimizer_reset=optimizer_reset,
        )


@dataclass
class EpochRecord:
    epoch: int  # 1-based; a budget-cut last epoch is still one record
    train_loss: float  # mean training loss over the epoch's steps
    val: float  # validation metric after the epoch (nan when diverged)
    lr: float  # learning rate at the end of the epoch
    steps: int  # optimizer steps so far in this trial
    epochs_done: float  # steps / steps_per_epoch: the cost accounting unit
    seconds: float  # training wall seconds of this epoch
    eval_seconds: float
    # Extra validation metrics by name (`Task.extra_metrics`); empty when the task has none.
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    task: str
    lr: float
    optimizer: str
    schedule: str
    seed: int
    epochs: float  # epochs trained (steps / steps_per_epoch)
    steps: int
    best_epoch: int | None
    best_val: float | None
    test: float | None  # test metric of the best state (None if not evaluated)
    diverged: bool
    cut: bool  # stopped by max_steps (the run's budget)
    stopped: bool  # stopped by the callback (e.g. pruned)
    seconds: float  # training seconds (evaluation excluded)
    eval_seconds: float
    history: list[EpochRecord]
    # The metric before any training (a diverged trial is no better).
    initial_val: float | None = None
    # The best weights, kept in memory only when asked (`keep_best_state`); never serialised.
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    # The weights at the end of training, likewise only when asked (`keep_final_state`).
    final_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    # The optimizer's `state_dict()` at the end of training, its tensors copied, with
    # `keep_final_state` (population based training's exploit copies it with the weights).
    final_optimizer_state: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        weights = ("best_state", "final_state", "final_optimizer_state")
        d = asdict(
            dataclasses.replace(
                self, best_state=None, final_state=None, final_optimizer_state=None
            )
        )
        for key in weights:
            d.pop(key)
        return d


# Sees an epoch's record after it was evaluated; True stops the trial (pruning).
EpochCallback = Callable[[EpochRecord], bool | None]


@dataclass(frozen=True)
class TrainOptions:
    """How a trial is run, apart from its configuration.

    `callback(record)` runs after every epoch that did not diverge or hit the budget; returning
    True stops the trial (pruning). `progress(record)` sees every epoch. `initial_state` starts
    from given weights instead of a fresh initialisation (the significant-digit exploit phase
    continues from the weights the previous rate ended with); `initial_optimizer_state` (a torch
    optimizer `state_dict()`, e.g. a `TrainResult.final_optimizer_state`) is loaded into the
    trial's optimizer once it is built: its per-parameter state (Adam's moments and step count)
    carries on, while every param group's rate is the trial's `config.lr` (population based
    training's explored rate), never the stored one. `keep_best_state` returns the best weights,
    `keep_final_state` the weights and the optimizer state at the end of training.

    `evaluation_weights(model, optimizer)` builds the `EvaluationWeights` evaluated instead of
    the trained ones (default: the task's `evaluation_weights`, else the trained weights).
    `recalibrate_bn` forces (True) or forbids (False) recomputing batch-norm statistics before
    every evaluation; None (the default) recomputes them when the evaluated weights differ from
    the trained ones: an optimizer with modes, or evaluation weights that ask for it. Only
    models with batch-norm layers are ever recalibrated.
    """

    callback: EpochCallback | None = None
    progress: Callable[[EpochRecord], None] | None = None
    evaluate_test: bool = True
    evaluate_initial: bool = False
    initial_state: dict[str, torch.Tensor] | None = None
    initial_optimizer_state: dict[str, Any] | None = None
    keep_best_state: bool = False
    keep_final_state: bool = False
    evaluation_weights: EvaluationWeightsFactory | None = None
    recalibrate_bn: bool | None = None
