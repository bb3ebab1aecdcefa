"""What every strategy shares: the run it works in, the budget, and how a trial is recorded.

A *run* is one strategy on one task with one seed, stored as one Optuna study. Everything a
strategy needs to continue after a crash is derived from that study's trials and user attrs
(never from memory), so calling `Strategy.run` again on the same study resumes it.

Stored per trial (user attrs): `epochs` and `steps` trained, `diverged`, `cut` (stopped by the
budget), `pruned`, `test` (test metric of the trial's best state, never shown to strategies),
`seconds`/`eval_seconds`, `schedule`, `phase`, and `history` (one record per epoch). The
validation metric is also reported every epoch with `trial.report`, so pruners and
optuna-dashboard see it. Stored per study: `overhead_steps`, `overhead_epochs` and
`overhead_seconds` (range tests, charged before any trial) and `range_test` (its curve).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import optuna
import torch

from lrbench.engine import EpochRecord, TrainConfig, TrainResult, task_range_test, train
from lrbench.errors import ConfigError
from lrbench.range_test import RangeTestResult
from lrbench.schedules import ScheduleSpec
from lrbench.tasks import Task, TaskData

LR = "lr"


@dataclass
class RunContext:
    """One run: a task with its data on the device, a study, a seed and a budget in epochs."""

    task: Task
    data: TaskData
    study: optuna.Study
    seed: int = 0
    budget_epochs: float = 60.0
    epochs_per_trial: int | None = None
    low: float = 1e-5
    high: float = 1.0
    device: torch.device | str = "cpu"
    optimizer: str | None = None
    # Called after every epoch of every trial (progress bars); must not raise.
    on_epoch: Callable[[EpochRecord], None] | None = None

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high):
            raise ConfigError(
                f"learning-rate range needs 0 < low < high, got low={self.low}, high={self.high}"
            )
        if self.budget_epochs <= 0:
            raise ConfigError(f"budget must be positive, got {self.budget_epochs} epochs")
        self.epochs_per_trial = self.epochs_per_trial or self.task.default_epochs

    # -- the budget, from storage ------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch

    def spent_steps(self) -> int:
        trials = self.study.get_trials(deepcopy=False)
        return int(self.study.user_attrs.get("overhead_steps", 0)) + sum(
            int(t.user_attrs.get("steps", 0)) for t in trials
        )

    def spent_epochs(self) -> float:
        return self.spent_steps() / self.steps_per_epoch

    def budget_steps(self) -> int:
        return int(round(self.budget_epochs * self.steps_per_epoch))

    def remaining_steps(self) -> int:
        return max(0, self.budget_steps() - self.spent_steps())

    # -- range tests ---------------------------------------------------------------------------
    def range_test(self, **options: Any) -> RangeTestResult:
        """The run's LR range test: run once, charged to the budget, stored, reused on resume."""
        stored = self.study.user_attrs.get("range_test")
        if stored is not None:
            return RangeTestResult.from_dict(stored)
        num_iter = int(options.pop("num_iter", 100))
        # The range test is training: it may not overrun the budget either.
        num_iter = max(2, min(num_iter, self.remaining_steps()))
        t0 = time.perf_counter()
        result = task_range_test(
            self.task,
            self.data,
            device=self.device,
            seed=self.seed,
            optimizer=self.optimizer,
            num_iter=num_iter,
            **options,
        )
        seconds = time.perf_counter() - t0
        overhead = int(self.study.user_attrs.get("overhead_steps", 0)) + result.num_steps
        # Stored before the result so a crash in between over-charges rather than under-charges.
        self.study.set_user_attr("overhead_steps", overhead)
        self.study.set_user_attr("overhead_epochs", overhead / self.steps_per_epoch)
        self.study.set_user_attr(
            "overhead_seconds", float(self.study.user_attrs.get("overhead_seconds", 0.0)) + seconds
        )
        self.study.set_user_attr("range_test", result.to_dict())
        return result

    # -- one trial -----------------------------------------------------------------------------
    def train_trial(
        self,
        trial: optuna.Trial,
        lr: float,
        *,
        schedule: ScheduleSpec | None = None,
        epochs: int | None = None,
        prune: bool = False,
        phase: str = "search",
        initial_state: dict | None = None,
        keep_best_state: bool = False,
        stop_when_worse: bool = False,
    ) -> TrainResult:
        """Train one configuration inside `trial`, cut at the remaining budget, and record it.

        `prune` asks the study's pruner after every epoch; `stop_when_worse` stops at the first
        epoch whose validation metric is worse than the best so far (the exploit phase's rule).
        """
        config = TrainConfig.for_task(
            self.task,
            lr,
            epochs=epochs or self.epochs_per_trial,
            optimizer=self.optimizer,
            schedule=schedule,
            seed=self.seed,
            max_steps=self.remaining_steps(),
        )
        pruned = False
        best: float | None = None

        def on_epoch(record: EpochRecord) -> bool:
            nonlocal pruned, best
            if self.on_epoch is not None:
                self.on_epoch(record)
            if math.isfinite(record.val):
                trial.report(record.val, record.epoch)
            # Pruners may answer with a numpy bool, which JSON (the storage's format) refuses.
            pruned = bool(prune and trial.should_prune())
            worse = bool(best is not None and self.task.is_better(best, record.val))
            if best is None or self.task.is_better(record.val, best):
                best = record.val
            return pruned or (stop_when_worse and worse)

        result = train(
            self.task,
            config,
            device=self.device,
            data=self.data,
            callback=on_epoch,
            evaluate_initial=True,
            initial_state=initial_state,
            keep_best_state=keep_best_state,
        )
        attrs = {
            "epochs": result.epochs,
            "steps": result.steps,
            "diverged": result.diverged,
            "cut": result.cut,
            "pruned": pruned,
            "test": result.test,
            "best_val": result.best_val,
            "best_epoch": result.best_epoch,
            "initial_val": result.initial_val,
            "seconds": result.seconds,
            "eval_seconds": result.eval_seconds,
            "schedule": config.schedule.describe(),
            "optimizer": config.optimizer,
            "phase": phase,
            "history": [_json_record(r) for r in result.history],
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return result

    def objective_value(self, result: TrainResult) -> float:
        """The value told to Optuna: the best validation metric; for a trial that diverged before
        any good epoch, the untrained model's metric, so samplers learn the rate is bad."""
        if result.best_val is not None:
            return result.best_val
        if result.initial_val is not None and math.isfinite(result.initial_val):
            return result.initial_val
        return self.task.worst_value()


def _json_record(r: EpochRecord) -> dict[str, Any]:
    return {
        "epoch": r.epoch,
        "train_loss": _finite(r.train_loss),
        "val": _finite(r.val),
        "lr": r.lr,
        "steps": r.steps,
        "epochs_done": r.epochs_done,
        "seconds": r.seconds,
        "eval_seconds": r.eval_seconds,
    }


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


class Strategy(ABC):
    """A way to choose the learning rate (and schedule) under a budget. Options are keywords."""

    name: ClassVar[str]
    description: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise ConfigError(
                f"strategy {self.name!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(self.option_defaults) or 'none'}"
            )
        self.options: dict[str, Any] = {**self.option_defaults, **options}

    def make_sampler(self, ctx: RunContext) -> optuna.samplers.BaseSampler:
        """The sampler the run's study is created with (fixed-rate strategies need none)."""
        return optuna.samplers.RandomSampler(seed=ctx.seed)

    def make_pruner(self, ctx: RunContext) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    @abstractmethod
    def run(self, ctx: RunContext) -> None:
        """Spend (at most) the budget; resume from whatever the study already holds."""


# name -> (class, preset options, one-line description); variants such as "tpe+hyperband"
# are the same class with a preset option.
REGISTRY: dict[str, tuple[type[Strategy], dict[str, Any], str]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    REGISTRY[cls.name] = (cls, {}, cls.description)
    return cls


def register_variant(name: str, cls: type[Strategy], description: str, **preset: Any) -> None:
    REGISTRY[name] = (cls, preset, description)
