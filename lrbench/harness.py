"""`lrbench run`: every (task, strategy, seed) of a suite as one Optuna study, resumable.

Storage is any Optuna RDB URL; the default is an SQLite file `runs/<suite>.db` (nothing to
start). Every worker (one process, `workers` processes on this machine, or processes on many
machines started the same way on one PostgreSQL storage) claims its next run through the
storage (`lrbench.claims`), so no two workers drive one run and a dead worker's run is taken
over. A run whose study is marked complete is skipped; an interrupted run continues from its
stored trials (the strategies derive their progress from storage).

Before anything is stored, the suite, the storage and every task's data are checked, and
runs already stored with other settings are refused: bad input leaves the storage as it was.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from lrbench import records
from lrbench.budget_fit import budget_warnings
from lrbench.claims import Claim, RunQueue
from lrbench.engine import EpochRecord, resolve_device
from lrbench.errors import ConfigError, Interrupted, out_of_memory
from lrbench.progress import SuiteProgress, WorkerProgress
from lrbench.records import RUN_IDENTITY, RunKeys, RunRecord
from lrbench.storage import (  # noqa: F401  (re-exported: the report opens storages here)
    GRACE_S,
    HEARTBEAT_S,
    RUNS_DIR,
    default_storage_url,
    open_storage,
)
from lrbench.strategies import RunContext, get_strategy
from lrbench.suite import RunSpec, Suite, load_suite
from lrbench.tasks import get_task
from lrbench.workers import interrupt_once, interrupts_ignored, run_in_processes


@dataclass(frozen=True)
class RunOptions:
    """How this invocation runs each run; it travels to worker processes, so keep it picklable.

    A new per-run option of `lrbench run` (e.g. a population size) is a field here, set by the
    CLI and read in `run_one`.
    """

    device: str = "auto"
    # Trials a batching strategy trains at once (`lrbench.population`); None: by device and task.
    population: int | None = None


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker takes part: progress display and the claim heartbeat (seconds)."""

    progress: bool = True
    heartbeat_interval: int = HEARTBEAT_S
    grace_period: int = GRACE_S


class ClaimLost(Exception):
    """Another worker declared this worker's claim dead (its heartbeat lapsed) and took it."""


class _QuietInterruptions(logging.Filter):
    """Drop Optuna's "trial failed" warning (with its traceback) for a trial stopped by Ctrl-C
    or a lost claim: the trial's fail_reason and the exit summary say it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (KeyboardInterrupt, ClaimLost))


def _quiet_interruptions() -> None:
    logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietInterruptions) for f in logger.filters):
        logger.addFilter(_QuietInterruptions())


def run_spec_attrs(run: RunSpec, task, steps_per_epoch: int, device: str) -> dict[str, Any]:
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
        RunKeys.DEVICE: device,
        RunKeys.REFERENCE: [list(pair) for pair in run.strategy.reference],
        RunKeys.TARGET_PROCEDURE: run.task.target_procedure,
    }


def _check_same_run(name: str, stored: dict[str, Any], attrs: dict[str, Any]) -> None:
    """A stored run made with other identity values (budget, target ...) is not this run."""
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


def run_one(
    run: RunSpec,
    storage: optuna.storages.BaseStorage,
    *,
    device: str = "auto",
    data_options=None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_start: Callable[[RunSpec, float], None] | None = None,
    options: RunOptions | None = None,
) -> bool:
    """Run (or resume) one run; return False if it was already complete.

    The caller must hold the run's claim (or be the only process on the storage). On any
    exception (Ctrl-C included) the trial in flight is failed with the reason and the
    run stays "running", to be resumed.
    """
    options = options or RunOptions(device=device)
    dev = resolve_device(options.device)
    task = get_task(run.task.name, **run.task.options)
    task.target = run.task.target
    strategy = get_strategy(run.strategy.name, **run.strategy.options)
    data = task.prepare(dev, data_options)
    study = _open_run_study(run, storage, task, data.steps_per_epoch, str(dev))
    if study is None:
        return False
    ctx = RunContext(
        task,
        data,
        study,
        seed=run.seed,
        budget_epochs=run.task.budget_epochs,
        epochs_per_trial=run.task.epochs_per_trial,
        low=run.task.low,
        high=run.task.high,
        device=dev,
        optimizer=run.optimizer,
        on_epoch=on_epoch,
        population=options.population,
    )
    if on_start is not None:
        on_start(run, ctx.spent_epochs())
    first_new = len(study.get_trials(deepcopy=False))
    t0 = time.perf_counter()
    try:
        strategy.run(ctx)
        ctx.record_chosen_final_metrics()
    except BaseException as e:
        _record_interruption(study, storage, first_new, e)
        raise
    records.add_wall_seconds(study, time.perf_counter() - t0)
    study.set_user_attr(RunKeys.FINISHED_AT, time.time())
    study.set_user_attr(RunKeys.STATUS, "complete")
    return True


def _record_interruption(
    study: optuna.Study, storage: optuna.storages.BaseStorage, first_new: int, exc: BaseException
) -> None:
    """After `exc` stopped the run: fail what is still RUNNING, with the reason; for Ctrl-C or a
    lost claim, note the trials it failed, which results then do not count as the strategy's."""
    reason = records.interruption_reason(exc)
    failed = records.fail_interrupted_trials(study, storage, reason)
    if isinstance(exc, (KeyboardInterrupt, ClaimLost)):
        failed += [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number >= first_new and t.user_attrs.get(records.TrialKeys.FAIL_REASON) == reason
        ]
        records.note_interrupted(study, sorted(set(failed)))


def _open_run_study(
    run: RunSpec, storage: optuna.storages.BaseStorage, task, steps_per_epoch: int, device: str
) -> optuna.Study | None:
    """The run's study, created or resumed and marked running; None if it is complete.

    Only this worker drives this study (it holds the claim), so trials a killed process left
    RUNNING are failed. Settings a killed process left half-written are written again.
    """
    attrs = run_spec_attrs(run, task, steps_per_epoch, device)
    study = optuna.create_study(
        storage=storage, study_name=run.study_name, direction=task.direction, load_if_exists=True
    )
    stub = not _trained_anything(study)
    if not stub:
        _check_same_run(study.study_name, study.user_attrs, attrs)
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


def _trained_anything(study: optuna.Study) -> bool:
    """Whether a stored run holds any training: a run whose every trial failed (out of memory,
    a typo in an option) is a stub that takes the suite's settings as they are now."""
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return bool(study.get_trials(deepcopy=False, states=done)) or bool(
        RunRecord.from_study(study).overhead_steps
    )


def _kept_settings(stored: RunRecord) -> dict[str, Any]:
    """Settings of a run resumed from an older storage that are kept as stored (its device)."""
    return {RunKeys.DEVICE: stored.attrs[RunKeys.DEVICE]} if RunKeys.DEVICE in stored.attrs else {}


# --------------------------------------------------------------------------------------------- #
# A suite
# --------------------------------------------------------------------------------------------- #
def run_suite(
    suite: str | Path | Suite,
    *,
    storage: str | None = None,
    workers: int = 1,
    device: str = "auto",
    only: str | None = None,
    progress: bool = True,
    options: RunOptions | None = None,
    worker_options: WorkerOptions | None = None,
) -> str:
    """Run every run of `suite` into `storage` (default `runs/<suite>.db`); return the storage URL.

    `workers` processes on this machine claim runs from the storage; other machines started
    the same way on the same storage share the work. Ctrl-C raises `Interrupted` with a
    summary of what is stored.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    options = options or RunOptions(device=device)
    wopts = worker_options or WorkerOptions(progress=progress)
    url = storage or default_storage_url(suite.name)
    runs = suite.runs(only)  # validates --only before anything is written
    for line in budget_warnings(suite):
        print(f"lrbench: budget: {line}", file=sys.stderr)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    _check_data(suite, runs, options if workers == 1 else RunOptions(device="cpu"))
    store = open_storage(url)  # a bad URL fails here, once, with a clear message
    _check_stored_settings(store, runs)
    try:
        with interrupt_once():
            if workers > 1:
                run_in_processes(suite, url, runs, only, options, wopts, workers)
            else:
                work(suite, runs, url, options, wopts)
    except KeyboardInterrupt:
        with interrupts_ignored():  # a second Ctrl-C does not cut the summary short
            summary = stored_summary(store, runs, url)
        raise Interrupted(summary) from None
    return url


def _check_data(suite: Suite, runs: list[RunSpec], options: RunOptions) -> None:
    """Load every task's data once (it is cached for the runs): missing or corrupt data is an
    error before anything is stored."""
    dev = resolve_device(options.device)
    seen = set()
    for run in runs:
        key = (run.task.name, json.dumps(run.task.options, sort_keys=True))
        if key not in seen:
            seen.add(key)
            get_task(run.task.name, **run.task.options).prepare(dev, suite.data)


def _check_stored_settings(store: optuna.storages.BaseStorage, runs: list[RunSpec]) -> None:
    """Refuse at once, before any worker starts, when a run is stored with other settings."""
    stored = {s.study_name: s.user_attrs for s in store.get_all_studies()}
    for run in runs:
        if run.study_name in stored and _trained_anything(
            optuna.load_study(study_name=run.study_name, storage=store)
        ):
            known = {
                RunKeys.BUDGET_EPOCHS: run.task.budget_epochs,
                RunKeys.EPOCHS_PER_TRIAL: run.task.epochs_per_trial,
                RunKeys.TARGET: run.task.target,
                RunKeys.LOW: run.task.low,
                RunKeys.HIGH: run.task.high,
                RunKeys.STRATEGY_OPTIONS: dict(run.strategy.options),
            }
            _check_same_run(run.study_name, stored[run.study_name], known)


def work(
    suite: Suite,
    runs: list[RunSpec],
    url: str,
    options: RunOptions,
    wopts: WorkerOptions,
    index: int | None = None,
) -> None:
    """One worker: claim a run from the storage, drive it, repeat until the suite is complete.

    With nothing left to claim it waits while other workers hold runs, so that it can take
    over the run of a worker that dies. `index` is this worker's number among local worker
    processes (None: the only process here, which also shows the suite's progress).
    """
    _quiet_interruptions()
    hb = dict(heartbeat_interval=wopts.heartbeat_interval, grace_period=wopts.grace_period)
    store = open_storage(url, **hb)
    queue = RunQueue(open_storage(url, retry_stale=True, **hb), suite.name, _names(runs))
    by_name = {r.study_name: r for r in runs}
    name = "worker" if index is None else f"worker {index + 1}"
    bar = WorkerProgress(wopts.progress, 1 if index is None else index + 1, name)
    overall = SuiteProgress(len(runs), wopts.progress and index is None)
    queue.enqueue_missing()
    try:
        while True:
            queue.fail_stale()
            claim = queue.claim()
            done, running, total = queue.counts()
            overall.update(done, running)
            if claim is not None:
                _drive(claim, by_name[claim.run], store, suite, options, bar)
            elif done == total:
                break
            elif running == 0:
                queue.enqueue_missing()  # runs given up by interrupted workers
            else:
                bar.waiting(running)
                time.sleep(min(wopts.heartbeat_interval, 5))
        overall.update(*queue.counts()[:2], force=True)
    finally:
        overall.close()


def _names(runs: list[RunSpec]) -> list[str]:
    return [r.study_name for r in runs]


def _drive(
    claim: Claim,
    run: RunSpec,
    store: optuna.storages.BaseStorage,
    suite: Suite,
    options: RunOptions,
    bar: WorkerProgress,
) -> None:
    """Run the claimed run; tell the claim COMPLETE, or give it up with the reason."""

    def on_epoch(record: EpochRecord) -> None:
        bar.epoch(record)
        if claim.lost:
            raise ClaimLost(f"{run.study_name}: another worker took this run over")

    def on_start(run: RunSpec, spent: float) -> None:
        bar.start(run.study_name, run.task.budget_epochs, spent)

    try:
        run_one(
            run,
            store,
            options=options,
            data_options=suite.data,
            on_epoch=on_epoch,
            on_start=on_start,
        )
    except ClaimLost:
        bar.finish("taken over by another worker")
        return
    except BaseException as e:
        bar.finish("stopped")
        claim.release(records.interruption_reason(e))
        oom = out_of_memory(e, f"training {run.study_name}")
        if oom is not None:
            raise oom from None
        raise
    claim.complete()
    bar.finish()


def stored_summary(store, runs: list[RunSpec], url: str) -> str:
    """One line: runs complete / in progress and trials stored, for the runs of this command."""
    wanted = set(_names(runs))
    complete = in_progress = trials = 0
    for s in store.get_all_studies():
        if s.study_name not in wanted:
            continue
        study_id = store.get_study_id_from_name(s.study_name)
        finished = [
            t for t in store.get_all_trials(study_id, deepcopy=False) if t.state.is_finished()
        ]
        trials += len(finished)
        if RunRecord.from_attrs(s.study_name, s.user_attrs).status == "complete":
            complete += 1
        else:
            in_progress += 1
    return (
        f"interrupted; stored in {url}: {complete} of {len(runs)} runs complete, "
        f"{in_progress} in progress, {trials} trials; run the same command again to go on"
    )
