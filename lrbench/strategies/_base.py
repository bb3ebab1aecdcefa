"""What every strategy shares: the run it works in, the budget, and how a trial is recorded.

A *run* is one strategy on one task with one seed, stored as one Optuna study. Everything a
strategy needs to continue after a crash is derived from that study's trials and user attrs
(never from memory), so calling `Strategy.run` again on the same study resumes it.

What is stored per trial and per study, and how it is read back, is `lrbench.storage.records`. The
validation metric is also reported every epoch with `trial.report`, so pruners and
optuna-dashboard see it.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna
import torch
from optuna.trial import TrialState

from lrbench.errors import ConfigError
from lrbench.storage import records
from lrbench.storage.records import EpochEntry, RunKeys, RunRecord, TrialKeys, TrialRecord
from lrbench.strategies._options import StrategyOptions, parse_options
from lrbench.tasks import Task, TaskData
from lrbench.tools import RangeTestResult, ScheduleSpec
from lrbench.training import (
    EpochRecord,
    EvaluationWeightsFactory,
    TrainConfig,
    TrainOptions,
    TrainResult,
    final_metrics,
    population_size,
    task_range_test,
    test_metric,
    train_trials,
)

LR = "lr"
# Sees a trial's validation values so far (one per epoch); True stops the trial.
StopRule = Callable[[list[float]], bool]


@dataclass
class RunContext:
    """One run: a task with its data on the device, a study, a seed and a budget in epochs."""

    task: Task
    data: TaskData
    study: optuna.Study
    seed: int = 0
    budget_epochs: float = 60.0
    epochs_per_trial: int = 0  # 0: the task's default_epochs
    low: float = 1e-5
    high: float = 1.0
    device: torch.device | str = "cpu"
    optimizer: str | None = None
    # Called after every epoch of every trial with the trial's key (`trial_key`): progress
    # bars, which must tell apart the interleaved epochs of a population's members.
    on_epoch: Callable[[EpochRecord, str], None] | None = None
    # The best state of the best trial trained in this process, for the chosen configuration's
    # final metrics: (trial number, its best validation value, its best weights).
    _best_kept: tuple[int, float, dict] | None = field(default=None, init=False, repr=False)
    # Trials trained at once as one population (`lrbench.training._population`) by strategies that can
    # batch them; 1 disables, None chooses by device and task (`default_population`).
    population: int | None = None
    _spent: int | None = field(default=None, init=False, repr=False)  # see spent_steps
    _interrupted: frozenset[int] | None = field(default=None, init=False, repr=False)
    # The objective value of the run's best trial so far (None: none yet), read from the storage
    # once (`_best_read`), then kept as trials are recorded (see record_trial).
    _best_value: float | None = field(default=None, init=False, repr=False)
    _best_read: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.population is not None and self.population < 1:
            raise ConfigError(f"population must be at least 1, got {self.population}")
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
        # Read from the storage once, then kept as this process charges trials and overhead:
        # it is the run's only driver (it holds the claim), and a read of every trial per
        # question was a seventh of a short trial's cost.
        if self._spent is None:
            self._spent = records.spent_steps(self.study)
        return self._spent

    def interrupted_trials(self) -> frozenset[int]:
        """The numbers of the trials an interruption failed (not the strategy's), as stored
        when this run was resumed: they are only noted when a run starts or stops."""
        if self._interrupted is None:
            self._interrupted = frozenset(RunRecord.from_study(self.study).interrupted_trials)
        return self._interrupted

    def _charged(self, steps: int) -> None:
        if self._spent is not None:
            self._spent += int(steps)

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
        self._charged(result.num_steps)
        self.study.set_user_attr(RunKeys.RANGE_TEST, result.to_dict())
        return result

    # -- one trial -----------------------------------------------------------------------------
    def trial_config(
        self,
        lr: float,
        *,
        schedule: ScheduleSpec | None = None,
        epochs: int | None = None,
        optimizer: str | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
        max_steps: int | None = None,
        optimizer_reset: str = "none",
    ) -> TrainConfig:
        """A trial's training configuration in this run: its epochs per trial, its optimizer
        and seed, cut at the budget left (or `max_steps`). `optimizer` (with its
        `optimizer_kwargs`) replaces the run's optimizer for this trial (the self-tuning
        strategies bring their own); `optimizer_reset="epoch"` starts it afresh every epoch."""
        return TrainConfig.for_task(
            self.task,
            lr,
            epochs=epochs or self.epochs_per_trial,
            optimizer=optimizer or self.optimizer,
            schedule=schedule,
            seed=self.seed,
            max_steps=self.remaining_steps() if max_steps is None else max_steps,
            optimizer_reset=optimizer_reset,
            **(optimizer_kwargs or {}),
        )

    def train_trial(
        self,
        trial: optuna.Trial,
        lr: float,
        *,
        prune: bool = False,
        phase: str = "search",
        stop_rule: StopRule | None = None,
        initial_state: dict | None = None,
        keep_final_state: bool = False,
        evaluation_weights: EvaluationWeightsFactory | None = None,
        **config: Any,
    ) -> TrainResult:
        """Train one configuration inside `trial`, cut at the remaining budget, and record it:
        `train_planned` of one trial (see `PlannedTrial` for the options; `config` keywords go
        to `trial_config`)."""
        planned = PlannedTrial(
            self,
            trial,
            self.trial_config(lr, **config),
            prune=prune,
            stop_rule=stop_rule,
            initial_state=initial_state,
            keep_final_state=keep_final_state,
            evaluation_weights=evaluation_weights,
        )
        return train_planned([planned], phase=phase)[0]

    def record_trial(
        self,
        trial: optuna.Trial,
        config: TrainConfig,
        result: TrainResult,
        pruned: bool,
        phase: str,
    ) -> None:
        """Store a trained trial's record, charge its steps, and hold its best state if it is the
        run's best so far (alone or as a population member, the same way).

        The test metric is measured only for a trial that beats every trial of the run before
        it: the run's chosen configuration is its best trial, which was such a trial when it
        ran, so reports lose nothing, and most trials skip a pass over the test split (on the
        quick suite's VAE, as long as its two epochs of training)."""
        if (
            not pruned
            and result.test is None
            and result.best_state is not None
            and self._beats_run_best(result)
        ):
            result.test = test_metric(self.task, self.data, result.best_state, self.device)
        _write_record(trial, config, result, pruned, phase)
        self._charged(result.steps)
        if not pruned:
            self._keep_best(trial.number, result)

    def _beats_run_best(self, result: TrainResult) -> bool:
        """Whether the trial's objective value beats every COMPLETE trial's before it (and is
        then the new best: the caller records the trial)."""
        if result.best_state is None:
            return False
        if not self._best_read:
            complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._best_value = self.study.best_value if complete else None
            self._best_read = True
        value = self.objective_value(result)
        if math.isnan(value):
            return False
        if self._best_value is not None and not self.task.is_better(value, self._best_value):
            return False
        self._best_value = value
        return True

    def _keep_best(self, number: int, result: TrainResult) -> None:
        """Hold the best weights of the best unpruned trial so far (one state in memory)."""
        if result.best_val is None or result.best_state is None:
            return
        kept = self._best_kept
        if kept is None or self.task.is_better(result.best_val, kept[1]):
            self._best_kept = (number, result.best_val, result.best_state)

    def record_chosen_final_metrics(self) -> None:
        """The task's final metrics (e.g. an IWAE bound) of the chosen configuration's best
        state on the test split, stored in the study. The chosen configuration is the study's
        best COMPLETE trial; its weights are at hand only when this process trained it, so a run
        whose chosen trial was trained before a resume stores none."""
        kept = self._best_kept
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if kept is None or not complete or self.study.best_trial.number != kept[0]:
            return
        metrics = final_metrics(self.task, self.data, kept[2], self.device)
        if metrics:
            self.study.set_user_attr(RunKeys.CHOSEN_FINAL, {"trial": kept[0], **metrics})

    # -- several trials as one population ------------------------------------------------------
    def population_size(self) -> int:
        """How many trials a batching strategy trains at once (1 when the task cannot)."""
        return population_size(self.task, self.device, self.population, self.optimizer)

    def train_trials(
        self, trials: list[optuna.Trial], lrs: list[float], *, prune: bool = False
    ) -> list[TrainResult]:
        """Train one configuration per trial at once (one population where the task batches)
        and record each as `train_trial` records a lone one: its reports, pruning and budget
        charge are its own. Trial i is cut where it would be cut had the ones before it run
        first at full length."""
        per_trial, remaining = self.epochs_per_trial * self.steps_per_epoch, self.remaining_steps()
        planned = [
            PlannedTrial(
                self,
                trial,
                self.trial_config(lr, max_steps=max(0, remaining - i * per_trial)),
                prune=prune,
            )
            for i, (trial, lr) in enumerate(zip(trials, lrs))
        ]
        return train_planned(planned)

    def run_fixed_trial(self, lr: float, **train_options: Any) -> TrainResult:
        """Ask for a trial at exactly `lr` (`ask_fixed`), train it, tell the result. If training
        raises (Ctrl-C included), the trial is told FAIL first."""
        trial = self.ask_fixed(lr)
        try:
            result = self.train_trial(trial, lr, **train_options)
        except BaseException:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        self.study.tell(trial, self.objective_value(result))
        return result

    def ask_fixed(self, lr: float) -> optuna.Trial:
        """A new trial whose `lr` is exactly `lr`: a single-point distribution, so the study
        records the configuration and no sampler chooses it."""
        return self.study.ask({LR: optuna.distributions.FloatDistribution(lr, lr, log=True)})

    def objective_value(self, result: TrainResult) -> float:
        """The value told to Optuna: the best validation metric; for a trial that diverged before
        any good epoch, the untrained model's metric, so samplers learn the rate is bad."""
        if result.best_val is not None:
            return result.best_val
        if result.initial_val is not None and math.isfinite(result.initial_val):
            return result.initial_val
        return self.task.worst_value()


@dataclass
class PlannedTrial:
    """A trial asked for in a run and configured, with how it is watched: `prune` asks the
    study's pruner after every epoch; `stop_rule(vals)` sees the trial's validation values so
    far and stops it when it returns True (the exploit phase's patience rule); `initial_state`
    starts it from given weights, `initial_optimizer_state` its optimizer from a given state
    (at its own rate); `keep_final_state` returns the weights and optimizer state it ended with;
    `evaluation_weights` builds the weights it is evaluated at (`TrainOptions`). Trials planned
    together may belong to several runs of one task (a seed group)."""

    ctx: RunContext
    trial: optuna.Trial
    config: TrainConfig
    prune: bool = False
    stop_rule: StopRule | None = None
    initial_state: dict | None = None
    keep_final_state: bool = False
    evaluation_weights: EvaluationWeightsFactory | None = None
    initial_optimizer_state: dict | None = None


def train_planned(planned: list[PlannedTrial], *, phase: str = "search") -> list[TrainResult]:
    """Train the planned trials through the one training path (`lrbench.training.train_trials`:
    one population where the task batches them) and record each in its run: its reports,
    pruning and budget charge are its own. The trials are left running, for the caller to
    tell; their results hold no best state (the run keeps the best one, `record_trial`)."""
    first = planned[0].ctx
    monitors = [_TrialMonitor(p.ctx, p.trial, p.prune, p.stop_rule) for p in planned]
    options = [
        TrainOptions(
            callback=m.after_epoch,
            evaluate_initial=True,
            initial_state=p.initial_state,
            initial_optimizer_state=p.initial_optimizer_state,
            keep_best_state=True,  # record_trial keeps the run's best; the rest are dropped
            keep_final_state=p.keep_final_state,
            evaluation_weights=p.evaluation_weights,
            evaluate_test=False,  # record_trial measures it where it can matter
        )
        for p, m in zip(planned, monitors)
    ]
    try:
        results = train_trials(
            first.task,
            [p.config for p in planned],
            device=first.device,
            data=first.data,
            options=options,
        )
    except BaseException as e:  # Ctrl-C included: each failed trial says why
        for p in planned:
            note_fail_reason(p.trial, e)
        raise
    for p, result, monitor in zip(planned, results, monitors):
        p.ctx.record_trial(p.trial, p.config, result, monitor.pruned, phase)
        result.best_state = None
    return results


def _write_record(
    trial: optuna.Trial, config: TrainConfig, result: TrainResult, pruned: bool, phase: str
) -> None:
    """Store what one trial trained and measured as its user attrs (`lrbench.storage.records`)."""
    TrialRecord(
        epochs=result.epochs,
        steps=result.steps,
        planned_epochs=config.epochs,
        diverged=result.diverged,
        cut=result.cut,
        pruned=pruned,
        test=result.test,
        best_val=result.best_val,
        best_epoch=result.best_epoch,
        initial_val=result.initial_val,
        seconds=result.seconds,
        eval_seconds=result.eval_seconds,
        schedule=config.schedule.describe(),
        optimizer=config.optimizer,
        optimizer_reset=config.optimizer_reset,
        phase=phase,
        history=tuple(EpochEntry.from_record(r) for r in result.history),
    ).write(trial)


def trial_key(study: optuna.Study, trial: optuna.Trial) -> str:
    """A trial's name across runs: `<study name>#<trial number>`."""
    return f"{study.study_name}#{trial.number}"


def note_fail_reason(trial: optuna.Trial, exc: BaseException) -> None:
    """Record on a live trial why it is failing (an interruption, an error)."""
    try:
        trial.set_user_attr(TrialKeys.FAIL_REASON, records.interruption_reason(exc))
    except Exception:  # the storage itself may be what failed; the original error matters
        pass


class _TrialMonitor:
    """The per-epoch hook of one trial: progress, `trial.report`, pruning, a stop rule."""

    def __init__(
        self, ctx: RunContext, trial: optuna.Trial, prune: bool, stop_rule: StopRule | None
    ) -> None:
        self.ctx, self.trial = ctx, trial
        self.prune, self.stop_rule = prune, stop_rule
        self.pruned = False
        self.vals: list[float] = []

    def after_epoch(self, record: EpochRecord) -> bool:
        """True stops the trial."""
        if self.ctx.on_epoch is not None:
            self.ctx.on_epoch(record, trial_key(self.ctx.study, self.trial))
        if math.isfinite(record.val):
            self.trial.report(record.val, record.epoch)
        # Pruners may answer with a numpy bool, which JSON (the storage's format) refuses.
        self.pruned = bool(self.prune and self.trial.should_prune())
        self.vals.append(record.val)
        return self.pruned or bool(self.stop_rule is not None and self.stop_rule(self.vals))


class Strategy(ABC):
    """A way to choose the learning rate (and schedule) under a budget.

    Its options are keywords, declared once as the frozen dataclass `Options` (see
    `lrbench.strategies._options`): defaults, types, checks and unknown names come from there.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    group: ClassVar[str]  # one of GROUPS
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    # Runs of this strategy that differ only in seed may be driven together (`run_group`).
    batches_seeds: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.opts = parse_options(f"strategy {self.name!r}", self.Options, options)

    @property
    def options(self) -> dict[str, Any]:
        """The options with defaults filled in, as a plain dict."""
        return self.opts.as_dict()

    def make_pruner(self, ctx: RunContext) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    @abstractmethod
    def run(self, ctx: RunContext) -> None:
        """Spend (at most) the budget; resume from whatever the study already holds."""

    def run_group(self, ctxs: list[RunContext]) -> None:
        """Spend each run's budget, for runs that differ only in seed (a seed group, driven
        by one worker): by default one after another; a strategy that trains one
        configuration trains them at once (`batches_seeds`)."""
        for ctx in ctxs:
            self.run(ctx)


# name -> (class, preset options, one-line description); variants such as "tpe+hyperband"
# are the same class with a preset option.
REGISTRY: dict[str, tuple[type[Strategy], dict[str, Any], str]] = {}


# The groups of design.md's strategy table, in the order lists and reports show them: does
# searching for a rate (search), adapting it while a population trains (population), deriving it
# from a range test (heuristic) or taking a given one (baseline) beat an optimizer that sets its
# own step size (self-tuning)?
GROUPS = ("search", "population", "heuristic", "baseline", "self-tuning")


def _check_group(cls: type[Strategy]) -> None:
    if getattr(cls, "group", None) not in GROUPS:
        raise TypeError(f"strategy class {cls.__name__} needs a group, one of {GROUPS}")


def register(cls: type[Strategy]) -> type[Strategy]:
    _check_group(cls)
    REGISTRY[cls.name] = (cls, {}, cls.description)
    return cls


def register_variant(name: str, cls: type[Strategy], description: str, **preset: Any) -> None:
    _check_group(cls)
    REGISTRY[name] = (cls, preset, description)
