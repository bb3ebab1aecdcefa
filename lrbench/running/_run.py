"""Runs of a suite, each one Optuna study: created or resumed, its settings written, its
strategy driven, an interruption recorded on the trials it stopped, and marked complete.

One path drives them: `run_group` takes runs that differ only in seed (a seed group, or one
run alone: a group of one) and lets their strategy spend their budgets
(`Strategy.run_group`: a strategy that trains one configuration trains every run's trial at
once, one population where the task batches them, so five seeds cost about one trial's wall
time on a GPU). Each run keeps its own study, claim, budget cut and records, so what is stored
equals what the runs store when driven one by one (bit for bit on one CPU thread, to float
rounding on a GPU). The caller holds each run's claim (`lrbench.running._claims`) or is the
only process on the storage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from lrbench.errors import ConfigError
from lrbench.running._suite import RunSpec
from lrbench.storage import WriteBehindStorage, records
from lrbench.storage.records import RUN_IDENTITY, RunKeys, RunRecord
from lrbench.strategies import REGISTRY, RunContext, Strategy, get_strategy
from lrbench.tasks import DataOptions, Task, TaskData, get_task
from lrbench.training import EpochRecord, population_size, resolve_device

EpochHook = Callable[[EpochRecord, str], None]


@dataclass(frozen=True)
class RunOptions:
    """How this invocation runs each run; it travels to worker processes, so keep it picklable.

    A new per-run option of `lrbench run` (e.g. a population size) is a field here, set by the
    CLI and read in `open_run`.
    """

    device: str = "auto"
    # Trials a batching strategy trains at once (`lrbench.training._population`); None: by device and task.
    population: int | None = None


class ClaimLost(Exception):
    """Another worker declared this worker's claim dead (its heartbeat lapsed) and took it."""


@dataclass
class OpenRun:
    """A run being driven: its spec, its strategy, its context (whose study lives in memory,
    `storage`, and is written through to the suite's storage), and where its new trials begin
    (trials numbered before `first_new` were stored before this process took the run)."""

    spec: RunSpec
    strategy: Strategy
    ctx: RunContext
    storage: WriteBehindStorage
    first_new: int

    @property
    def study(self) -> optuna.Study:
        return self.ctx.study


def run_spec_attrs(
    run: RunSpec, task, steps_per_epoch: int, device: str, data_options: DataOptions | None
) -> dict[str, Any]:
    """What a run's study records about itself: everything a report needs, from storage alone."""
    return {
        RunKeys.SUITE: run.suite,
        RunKeys.TASK: run.task.label,
        RunKeys.TASK_NAME: run.task.name,
        RunKeys.STRATEGY: run.strategy.label,
        RunKeys.STRATEGY_NAME: run.strategy.name,
        RunKeys.SEED: run.seed,
        RunKeys.BUDGET_EPOCHS: run.task.budget_epochs,
        RunKeys.EPOCHS_PER_TRIAL: run.task.epochs_per_trial,
        RunKeys.TARGET: run.task.target,
        RunKeys.DIRECTION: task.direction,
        RunKeys.METRIC: task.metric,
        RunKeys.METRIC_UNIT: task.metric_unit,
        RunKeys.LOW: run.task.low,
        RunKeys.HIGH: run.task.high,
        RunKeys.OPTIMIZER: run.optimizer or task.default_optimizer,
        RunKeys.TASK_OPTIONS: dict(task.options),
        RunKeys.STRATEGY_OPTIONS: dict(run.strategy.options),
        RunKeys.STEPS_PER_EPOCH: steps_per_epoch,
        RunKeys.TRAIN_SUBSET: (data_options or DataOptions()).train_subset,
        RunKeys.CONTROL: run.control,
        RunKeys.DEVICE: device,
        RunKeys.REFERENCE: [list(pair) for pair in run.strategy.reference],
        RunKeys.TARGET_PROCEDURE: run.task.target_procedure,
    }


def check_same_run(name: str, stored: dict[str, Any], attrs: dict[str, Any]) -> None:
    """A stored run made with other identity values (budget, target ...) is not this run.
    `stored`: the run study's user attrs."""
    stored = records.run_attrs(stored)
    if RunKeys.SUITE not in stored:  # settings never completely written: nothing trained
        return
    for key in RUN_IDENTITY:
        if key in stored and key in attrs and _same(stored[key], attrs[key]) is False:
            raise ConfigError(
                f"run {name!r} is stored with {key}={stored[key]!r} but the suite now says "
                f"{attrs[key]!r}. To keep both, give another --storage or another suite name "
                "([suite] name = ...); to replace the stored runs, delete the storage first"
            )


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --------------------------------------------------------------------------------------------- #
# Runs, driven
# --------------------------------------------------------------------------------------------- #
def group_key(run: RunSpec) -> tuple[str, str, str]:
    """Runs with one key differ only in their seed."""
    return run.suite, run.task.label, run.strategy.label


def seed_group_size(run: RunSpec, options: RunOptions) -> int:
    """How many runs of `run`'s group one worker drives together: the population size where the
    strategy trains one configuration with the run's optimizer and the task can batch, else 1."""
    strategy_class = REGISTRY[run.strategy.name][0]
    if not strategy_class.batches_seeds:
        return 1
    task = get_task(run.task.name, **run.task.options)
    return population_size(task, resolve_device(options.device), options.population, run.optimizer)


def siblings(run: RunSpec, runs: list[RunSpec]) -> list[str]:
    """The other runs of `run`'s group among `runs`, by study name."""
    key = group_key(run)
    return [r.study_name for r in runs if group_key(r) == key and r != run]


def describe(runs: list[RunSpec]) -> str:
    """A group's name for progress lines: the run's study name, or for several
    `<suite>/<task>/<strategy>/seeds 0,1,2`."""
    if len(runs) == 1:
        return runs[0].study_name
    seeds = ",".join(str(r.seed) for r in runs)
    return f"{runs[0].study_name.rsplit('/', 1)[0]}/seeds {seeds}"


def run_group(
    runs: list[RunSpec],
    storage: optuna.storages.BaseStorage,
    *,
    options: RunOptions,
    data_options=None,
    on_epoch: EpochHook | None = None,
    on_start: Callable[[float, float], None] | None = None,
    before_write: Callable[[], None] | None = None,
) -> int:
    """Run (or resume) `runs`, one group (`group_key`; one run is a group of one); return how
    many were not yet complete.

    `on_start(budget, spent)` gets the group's budgets and spending summed; `before_write` is
    called before anything is written to `storage` and may raise (a claim lost). On any exception
    (Ctrl-C included) every run's trial in flight is failed with the reason and the runs stay
    "running", to be resumed.
    """
    dev = resolve_device(options.device)
    task, data = prepare_task(runs[0], dev, data_options)
    opened = [
        o
        for run in runs
        if (
            o := open_run(
                run, storage, task, data, dev, options, on_epoch, data_options, before_write
            )
        )
        is not None
    ]
    if not opened:
        return 0
    if on_start is not None:
        budget = sum(o.ctx.budget_epochs for o in opened)
        on_start(budget, sum(o.ctx.spent_epochs() for o in opened))
    t0 = time.perf_counter()
    try:
        opened[0].strategy.run_group([o.ctx for o in opened])
        for o in opened:
            o.ctx.record_chosen_final_metrics()
    except BaseException as e:
        for o in opened:
            record_interruption(o, e)
        raise
    share = (time.perf_counter() - t0) / len(opened)  # each run's part of the wall time
    for o in opened:
        finish_run(o, share)
    return len(opened)


def run_one(
    run: RunSpec,
    storage: optuna.storages.BaseStorage,
    *,
    device: str = "auto",
    data_options=None,
    on_epoch: EpochHook | None = None,
    options: RunOptions | None = None,
) -> bool:
    """Run (or resume) one run (`run_group` of one); return False if it was already complete."""
    options = options or RunOptions(device=device)
    return bool(
        run_group([run], storage, options=options, data_options=data_options, on_epoch=on_epoch)
    )


# --------------------------------------------------------------------------------------------- #
# The pieces
# --------------------------------------------------------------------------------------------- #
def prepare_task(run: RunSpec, device: torch.device, data_options) -> tuple[Task, TaskData]:
    """The run's task (with the suite's target) and its data on `device` (cached per task)."""
    task = get_task(run.task.name, **run.task.options)
    task.target = run.task.target
    return task, task.prepare(device, data_options)


def open_run(
    run: RunSpec,
    storage: optuna.storages.BaseStorage,
    task: Task,
    data: TaskData,
    device: torch.device,
    options: RunOptions,
    on_epoch: EpochHook | None,
    data_options: DataOptions | None = None,
    before_write: Callable[[], None] | None = None,
) -> OpenRun | None:
    """The run's study opened (created or resumed) and its context; None if it is complete.
    The context's study is the stored one copied into memory (`WriteBehindStorage`)."""
    attrs = run_spec_attrs(run, task, data.steps_per_epoch, str(device), data_options)
    stored = open_run_study(run, storage, task, attrs)
    if stored is None:
        return None
    buffered = WriteBehindStorage(storage, stored.study_name, before_write)
    study = optuna.load_study(study_name=stored.study_name, storage=buffered)
    ctx = RunContext(
        task,
        data,
        study,
        seed=run.seed,
        budget_epochs=run.task.budget_epochs,
        epochs_per_trial=run.task.epochs_per_trial,
        low=run.task.low,
        high=run.task.high,
        device=device,
        optimizer=run.optimizer,
        on_epoch=on_epoch,
        population=options.population,
    )
    strategy = get_strategy(run.strategy.name, **run.strategy.options)
    return OpenRun(run, strategy, ctx, buffered, len(study.get_trials(deepcopy=False)))


def finish_run(opened: OpenRun, seconds: float) -> None:
    """Mark the run complete, adding `seconds` to its wall time."""
    records.add_wall_seconds(opened.study, seconds)
    opened.study.set_user_attr(RunKeys.FINISHED_AT, time.time())
    opened.study.set_user_attr(RunKeys.STATUS, "complete")


def record_interruption(opened: OpenRun, exc: BaseException) -> None:
    """After `exc` stopped the run: fail what is still RUNNING, with the reason; for Ctrl-C,
    note the trials it failed, which results then do not count as the strategy's. Nothing is
    written for a lost claim: the run is another worker's now."""
    if isinstance(exc, ClaimLost):
        return
    study, reason = opened.study, records.interruption_reason(exc)
    failed = records.fail_interrupted_trials(study, opened.storage, reason)
    if isinstance(exc, KeyboardInterrupt):
        failed += [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number >= opened.first_new
            and t.user_attrs.get(records.TrialKeys.FAIL_REASON) == reason
        ]
        records.note_interrupted(study, sorted(set(failed)))


def open_run_study(
    run: RunSpec, storage: optuna.storages.BaseStorage, task, attrs: dict[str, Any]
) -> optuna.Study | None:
    """The run's study, created or resumed and marked running; None if it is complete.
    `attrs`: the run's settings (`run_spec_attrs`).

    Only this worker drives this study (it holds the claim), so trials a killed process left
    RUNNING (or enqueued) are failed. Settings a killed process left half-written are written
    again.
    """
    study = optuna.create_study(
        storage=storage, study_name=run.study_name, direction=task.direction, load_if_exists=True
    )
    stub = not trained_anything(study)
    if not stub:
        check_same_run(study.study_name, study.user_attrs, attrs)
    stored = RunRecord.from_study(study)
    if stored.status == "complete":
        return None
    if RunKeys.STARTED_AT not in stored.attrs:
        study.set_user_attr(RunKeys.STARTED_AT, time.time())
    if stub or not stored.settings_complete:
        records.write_run_settings(study, {**attrs, **_kept_settings(stored)})
    study.set_user_attr(RunKeys.STATUS, "running")
    records.fail_interrupted_trials(study, storage)
    return study


def trained_anything(study: optuna.Study) -> bool:
    """Whether a stored run holds any training: a run whose every trial failed (out of memory,
    a typo in an option) is a stub that takes the suite's settings as they are now."""
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return bool(study.get_trials(deepcopy=False, states=done)) or bool(
        RunRecord.from_study(study).overhead_steps
    )


def _kept_settings(stored: RunRecord) -> dict[str, Any]:
    """Settings of a run resumed from an older storage that are kept as stored (its device)."""
    return {RunKeys.DEVICE: stored.attrs[RunKeys.DEVICE]} if RunKeys.DEVICE in stored.attrs else {}
