"""What every strategy shares: the run it works in, the budget, and how a trial is recorded.

A *run* is one strategy on one task with one seed, stored as one Optuna study. Everything a
strategy needs to continue after a crash is derived from that study's trials and user attrs
(never from memory), so calling `Strategy.run` again on the same study resumes it.

What is stored per trial and per study, and how it is read back, is `lrbench.records`. The
validation metric is also reported every epoch with `trial.report`, so pruners and
optuna-dashboard see it.
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
from optuna.trial import TrialState

from lrbench import records
from lrbench.engine import (
    EpochRecord,
    TrainConfig,
    TrainOptions,
    TrainResult,
    task_range_test,
    train,
)
from lrbench.errors import ConfigError
from lrbench.range_test import RangeTestResult
from lrbench.records import EpochEntry, RunKeys, RunRecord, TrialKeys, TrialRecord
from lrbench.schedules import ScheduleSpec
from lrbench.strategies.options import StrategyOptions, parse_options
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
        return records.spent_steps(self.study)

    def spent_epochs(self) -> float:
        return self.spent_steps() / self.steps_per_epoch

    def budget_steps(self) -> int:
        return int(round(self.budget_epochs * self.steps_per_epoch))

    def remaining_steps(self) -> int:
        return max(0, self.budget_steps() - self.spent_steps())

    # -- range tests ---------------------------------------------------------------------------
    def range_test(self, **options: Any) -> RangeTestResult:
        """The run's LR range test: run once, charged to the budget, stored, reused on resume."""
        stored = RunRecord.from_study(self.study).range_test
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
        # Charged before the result is stored, so a crash in between over-charges rather than
        # under-charges.
        records.charge_overhead(self.study, result.num_steps, self.steps_per_epoch, seconds)
        self.study.set_user_attr(RunKeys.RANGE_TEST, result.to_dict())
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
        monitor = _TrialMonitor(self, trial, prune, stop_when_worse)
        options = TrainOptions(
            callback=monitor.after_epoch,
            evaluate_initial=True,
            initial_state=initial_state,
            keep_best_state=keep_best_state,
        )
        try:
            result = train(self.task, config, device=self.device, data=self.data, options=options)
        except BaseException as e:  # Ctrl-C included: the failed trial says why
            _note_fail_reason(trial, e)
            raise
        record = TrialRecord(
            epochs=result.epochs,
            steps=result.steps,
            planned_epochs=config.epochs,
            diverged=result.diverged,
            cut=result.cut,
            pruned=monitor.pruned,
            test=result.test,
            best_val=result.best_val,
            best_epoch=result.best_epoch,
            initial_val=result.initial_val,
            seconds=result.seconds,
            eval_seconds=result.eval_seconds,
            schedule=config.schedule.describe(),
            optimizer=config.optimizer,
            phase=phase,
            history=tuple(EpochEntry.from_record(r) for r in result.history),
        )
        record.write(trial)
        return result

    def run_fixed_trial(self, lr: float, **train_options: Any) -> TrainResult:
        """Ask for a trial at exactly `lr` (no sampler chooses it), train it, tell the result.

        The trial's `lr` parameter is a single-point distribution, so the study records the
        configuration. If training raises (Ctrl-C included), the trial is told FAIL first.
        """
        dist = optuna.distributions.FloatDistribution(lr, lr, log=True)
        trial = self.study.ask({LR: dist})
        try:
            result = self.train_trial(trial, lr, **train_options)
        except BaseException:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        self.study.tell(trial, self.objective_value(result))
        return result

    def objective_value(self, result: TrainResult) -> float:
        """The value told to Optuna: the best validation metric; for a trial that diverged before
        any good epoch, the untrained model's metric, so samplers learn the rate is bad."""
        if result.best_val is not None:
            return result.best_val
        if result.initial_val is not None and math.isfinite(result.initial_val):
            return result.initial_val
        return self.task.worst_value()


def _note_fail_reason(trial: optuna.Trial, exc: BaseException) -> None:
    try:
        trial.set_user_attr(TrialKeys.FAIL_REASON, records.interruption_reason(exc))
    except Exception:  # the storage itself may be what failed; the original error matters
        pass


class _TrialMonitor:
    """The per-epoch hook of one trial: progress, `trial.report`, pruning, the exploit's stop."""

    def __init__(
        self, ctx: RunContext, trial: optuna.Trial, prune: bool, stop_when_worse: bool
    ) -> None:
        self.ctx, self.trial = ctx, trial
        self.prune, self.stop_when_worse = prune, stop_when_worse
        self.pruned = False
        self.best: float | None = None

    def after_epoch(self, record: EpochRecord) -> bool:
        """True stops the trial."""
        if self.ctx.on_epoch is not None:
            self.ctx.on_epoch(record)
        if math.isfinite(record.val):
            self.trial.report(record.val, record.epoch)
        # Pruners may answer with a numpy bool, which JSON (the storage's format) refuses.
        self.pruned = bool(self.prune and self.trial.should_prune())
        is_better = self.ctx.task.is_better
        worse = bool(self.best is not None and is_better(self.best, record.val))
        if self.best is None or is_better(record.val, self.best):
            self.best = record.val
        return self.pruned or (self.stop_when_worse and worse)


class Strategy(ABC):
    """A way to choose the learning rate (and schedule) under a budget.

    Its options are keywords, declared once as the frozen dataclass `Options` (see
    `lrbench.strategies.options`): defaults, types, checks and unknown names come from there.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, **options: Any) -> None:
        self.opts = parse_options(f"strategy {self.name!r}", self.Options, options)

    @property
    def options(self) -> dict[str, Any]:
        """The options with defaults filled in, as a plain dict."""
        return self.opts.as_dict()

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
