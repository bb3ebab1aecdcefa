"""`lrbench run`: every (task, strategy, seed) of a suite as one Optuna study, resumable.

Storage is any Optuna RDB URL; the default is an SQLite file `runs/<suite>.db` (nothing to
start). Every worker (one process, `workers` processes on this machine, or processes on many
machines started the same way on one PostgreSQL storage) claims its next run through the
storage (`lrbench.running._claims`), so no two workers drive one run and a dead worker's run is taken
over. A run whose study is marked complete is skipped; an interrupted run continues from its
stored trials (the strategies derive their progress from storage).

Before anything is stored, the suite, the storage and every task's data are checked, and
runs already stored with other settings are refused: bad input leaves the storage as it was.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna

from lrbench import interrupts
from lrbench.errors import ConfigError, Interrupted, out_of_memory
from lrbench.interrupts import interrupts_at_safe_points, interrupts_ignored, raise_if_interrupted
from lrbench.running._budget_fit import budget_warnings
from lrbench.running._claims import Claim, RunQueue
from lrbench.running._progress import SuiteProgress, WorkerProgress
from lrbench.running._run import (
    ClaimLost,
    RunOptions,
    check_same_run,
    describe,
    run_group,
    run_spec_attrs,
    seed_group_size,
    siblings,
    trained_anything,
)
from lrbench.running._suite import RunSpec, Suite, load_suite
from lrbench.running._workers import run_in_processes
from lrbench.storage import (
    GRACE_S,
    HEARTBEAT_S,
    close_storage,
    default_storage_url,
    open_storage,
    records,
)
from lrbench.storage.records import RunRecord
from lrbench.tasks import get_task
from lrbench.training import EpochRecord, resolve_device


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker takes part: progress display and the claim heartbeat (seconds)."""

    progress: bool = True
    heartbeat_interval: int = HEARTBEAT_S
    grace_period: int = GRACE_S


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

    Grid search (4 rates) against the task's default rate on the bowl f = 20x² + 2y², two
    seeds, 12 epochs of budget per run:

    >>> import pathlib, tempfile, lrbench
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "bowls.toml").write_text('''
    ... [suite]
    ... seeds = [0, 1]
    ... budget_epochs = 12
    ... [tasks.bowl]
    ... task = "functions"
    ... epochs_per_trial = 3
    ... target = 0.01
    ... low = 1e-3
    ... high = 0.1
    ... [[strategies]]
    ... name = "grid"
    ... n = 4
    ... [[strategies]]
    ... name = "fixed"
    ... ''')
    >>> url = lrbench.run_suite(tmp / "bowls.toml", storage=f"sqlite:///{tmp}/bowls.db",
    ...                         progress=False)
    >>> results = lrbench.load_results(url, "bowls")
    >>> results.groupby("strategy").n_trials.sum().to_dict()  # 4 grid points, 1 fixed trial
    {'fixed': 2, 'grid': 8}
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
    checked = options if workers == 1 else RunOptions(device="cpu")
    _check_data(suite, runs, checked)
    store = open_storage(url)  # a bad URL fails here, once, with a clear message
    try:
        _check_stored_settings(store, suite, runs, checked)
        with interrupts_at_safe_points():
            if workers > 1:
                # Enqueued once, here: workers that each enqueue what they find missing, all at
                # once, enqueue every run once each, and then take and give up the duplicates.
                RunQueue(store, suite.name, _names(runs)).enqueue_missing()
                raise_if_interrupted()
                run_in_processes(work, suite, url, runs, only, options, wopts, workers)
            else:
                work(suite, runs, url, options, wopts)
    except KeyboardInterrupt:
        with interrupts_ignored():  # a second Ctrl-C does not cut the summary short
            summary = stored_summary(store, runs, url)
        raise Interrupted(summary, interrupts.exit_code()) from None
    finally:
        close_storage(store)
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


def _check_stored_settings(
    store: optuna.storages.BaseStorage, suite: Suite, runs: list[RunSpec], options: RunOptions
) -> None:
    """Refuse at once, before any worker starts, when a run is stored with other settings
    (every identity setting: a complete run is never opened again, so its check is here)."""
    stored = {s.study_name: s.user_attrs for s in store.get_all_studies()}
    dev = resolve_device(options.device)
    for run in runs:
        if run.study_name in stored and trained_anything(
            optuna.load_study(study_name=run.study_name, storage=store)
        ):
            task = get_task(run.task.name, **run.task.options)
            steps = task.prepare(dev, suite.data).steps_per_epoch  # loaded by _check_data
            attrs = run_spec_attrs(run, task, steps, str(dev), suite.data)
            check_same_run(run.study_name, stored[run.study_name], attrs)


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
    beats = partial(
        open_storage, heartbeat_interval=wopts.heartbeat_interval, grace_period=wopts.grace_period
    )
    store = beats(url)
    queue = RunQueue(beats(url, retry_stale=True), suite.name, _names(runs))
    by_name = {r.study_name: r for r in runs}
    name = "worker" if index is None else f"worker {index + 1}"
    bar = WorkerProgress(wopts.progress, 1 if index is None else index + 1, name)
    overall = SuiteProgress(len(runs), wopts.progress and index is None)
    queue.enqueue_missing()
    try:
        while True:
            raise_if_interrupted()
            queue.fail_stale()
            claim = queue.claim()
            if overall.due():
                overall.update(*queue.counts()[:2])
            if claim is not None:
                claims = [claim, *_claim_seed_siblings(queue, by_name[claim.run], runs, options)]
                _drive(claims, [by_name[c.run] for c in claims], store, suite, options, bar)
                continue
            # Nothing to claim: read the counts (every claim), to know whether to stop or wait.
            done, running, total = queue.counts()
            if done == total:
                break
            elif running == 0:
                queue.enqueue_missing()  # runs given up by interrupted workers
            else:
                bar.waiting(running)
                time.sleep(min(wopts.heartbeat_interval, 5))
        overall.update(*queue.counts()[:2], force=True)
    finally:
        overall.close()
        close_storage(store)
        close_storage(queue.storage)


def _names(runs: list[RunSpec]) -> list[str]:
    return [r.study_name for r in runs]


def _claim_seed_siblings(
    queue: RunQueue, run: RunSpec, runs: list[RunSpec], options: RunOptions
) -> list[Claim]:
    """Claims of runs that differ from `run` only in seed, to drive with it as one population
    (`lrbench.running._run.run_group`): as many as the population size allows, none where it is 1."""
    limit = seed_group_size(run, options) - 1
    if limit <= 0:
        return []
    wanted, taken = set(siblings(run, runs)), list[Claim]()
    while len(taken) < limit and (claim := queue.claim(only=wanted)) is not None:
        taken.append(claim)
        wanted.discard(claim.run)
    return taken


def _drive(
    claims: list[Claim],
    runs: list[RunSpec],
    store: optuna.storages.BaseStorage,
    suite: Suite,
    options: RunOptions,
    bar: WorkerProgress,
) -> None:
    """Run the claimed runs (one, or a seed group together); tell each claim COMPLETE, or give
    them up with the reason."""

    def check_claims() -> None:
        # `held` rereads the claim after any pause of over a second, so a worker starved for
        # the grace period finds out before it writes to a run another worker now drives.
        lost = next((c for c in claims if not c.held()), None)
        if lost is not None:
            raise ClaimLost(f"{lost.run}: another worker took this run over")

    def on_epoch(record: EpochRecord, trial: str) -> None:
        bar.epoch(record, trial)
        check_claims()

    try:
        run_group(
            runs,
            store,
            options=options,
            data_options=suite.data,
            on_epoch=on_epoch,
            on_start=lambda budget, spent: bar.start(describe(runs), budget, spent),
            before_write=check_claims,
        )
    except BaseException as e:
        # Another worker took a run over while this one was starved of CPU: the run is theirs
        # now (a tell of a trial the new owner had failed lands here too), not an error of ours.
        if isinstance(e, ClaimLost) or (
            not isinstance(e, KeyboardInterrupt) and any(c.check_lost() for c in claims)
        ):
            bar.finish("taken over by another worker")
            for c in claims:
                if not c.lost:  # driven with the lost one: stopped, to be claimed again
                    c.release("stopped: a run driven with it was taken over")
            return
        bar.finish("stopped")
        for c in claims:
            c.release(records.interruption_reason(e))
        oom = out_of_memory(e, f"training {', '.join(r.study_name for r in runs)}")
        if oom is not None:
            raise oom from None
        raise
    for c in claims:
        c.complete()
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
    by = " by SIGTERM" if interrupts.stop_signal() == signal.SIGTERM else ""
    return (
        f"interrupted{by}; stored in {url}: {complete} of {len(runs)} runs complete, "
        f"{in_progress} in progress, {trials} trials; run the same command again to go on"
    )
