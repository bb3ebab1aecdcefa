"""`lrbench run`: every (task, strategy, seed) of a suite as one Optuna study, resumable.

Storage is any Optuna RDB URL; the default is an SQLite file `runs/<suite>.db` (nothing to
start). A run whose study is marked complete is skipped; an interrupted run continues from its
stored trials (the strategies derive their progress from storage). With `workers > 1`, worker
processes share the storage and split the runs between them (run i goes to worker i mod N), so
no two processes ever drive the same study.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from lrbench import records
from lrbench.engine import EpochRecord, resolve_device
from lrbench.errors import ConfigError
from lrbench.records import RUN_IDENTITY, RunKeys, RunRecord
from lrbench.strategies import RunContext, get_strategy
from lrbench.suite import RunSpec, Suite, load_suite
from lrbench.tasks import get_task

RUNS_DIR = Path("runs")


def default_storage_url(suite: str) -> str:
    return f"sqlite:///{RUNS_DIR / (suite + '.db')}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats, so trials of a dead worker are failed and retried."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"heartbeat_interval": 60, "grace_period": 180}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {
            "connect_args": {"timeout": 60}
        }  # workers wait for the file lock
    # Heartbeats are the point here (dead workers' trials get failed); the warnings that they are
    # experimental, and meant for Study.optimize (the fixed-rate strategies use ask/tell), are noise.
    warnings.filterwarnings(
        "ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna"
    )
    warnings.filterwarnings(
        "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
    )
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(
            f"storage {url!r}: the database driver is missing ({e}); "
            "for PostgreSQL: pip install 'lrbench[postgres]'"
        ) from None
    except Exception as e:  # sqlalchemy's errors: bad URL, server unreachable
        raise ConfigError(f"storage {url!r}: cannot open: {e}") from None


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
    }


def _check_same_run(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """A stored run made with other identity values (budget, target ...) is not this run."""
    stored = study.user_attrs
    for key in RUN_IDENTITY:
        if key in stored and json.dumps(stored[key], sort_keys=True) != json.dumps(
            attrs[key], sort_keys=True
        ):
            raise ConfigError(
                f"run {study.study_name!r} is stored with {key}={stored[key]!r} but the suite now "
                f"says {attrs[key]!r}; use another --storage or suite name to keep both"
            )


def run_one(
    run: RunSpec,
    storage: optuna.storages.BaseStorage,
    *,
    device: str = "auto",
    data_options=None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_start: Callable[[RunSpec, float], None] | None = None,
    population: int | None = None,
) -> bool:
    """Run (or resume) one run; return False if it was already complete."""
    dev = resolve_device(device)
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
        population=population,
    )
    if on_start is not None:
        on_start(run, ctx.spent_epochs())
    t0 = time.perf_counter()
    strategy.run(ctx)
    ctx.record_chosen_final_metrics()
    records.add_wall_seconds(study, time.perf_counter() - t0)
    study.set_user_attr(RunKeys.FINISHED_AT, time.time())
    study.set_user_attr(RunKeys.STATUS, "complete")
    return True


def _open_run_study(
    run: RunSpec, storage: optuna.storages.BaseStorage, task, steps_per_epoch: int, device: str
) -> optuna.Study | None:
    """The run's study, created or resumed and marked running; None if it is complete.

    Only this worker drives this study, so trials a killed process left RUNNING are failed.
    """
    attrs = run_spec_attrs(run, task, steps_per_epoch, device)
    study = optuna.create_study(
        storage=storage, study_name=run.study_name, direction=task.direction, load_if_exists=True
    )
    _check_same_run(study, attrs)
    if RunRecord.from_study(study).status == "complete":
        return None
    if RunKeys.SUITE not in study.user_attrs:
        records.write_run_attrs(study, attrs)
        study.set_user_attr(RunKeys.STARTED_AT, time.time())
    study.set_user_attr(RunKeys.STATUS, "running")
    records.fail_interrupted_trials(study)
    return study


def run_suite(
    suite: str | Path | Suite,
    *,
    storage: str | None = None,
    workers: int = 1,
    device: str = "auto",
    only: str | None = None,
    progress: bool = True,
    worker_index: int = 0,
    num_workers: int = 1,
    population: int | None = None,
) -> str:
    """Run every run of `suite` into `storage` (default `runs/<suite>.db`); return the storage URL.

    `workers` processes on this machine split the runs; `worker_index`/`num_workers` take one
    share of them, for several machines on one shared storage (e.g. PostgreSQL).
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    url = storage or default_storage_url(suite.name)
    runs = suite.runs(only)  # validates --only before anything is written
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    open_storage(url)  # a bad URL fails here, once, with a clear message
    if num_workers < 1 or not 0 <= worker_index < num_workers:
        raise ConfigError(
            f"worker {worker_index} of {num_workers}: need 0 <= worker index < number of workers"
        )
    if workers > 1:
        if num_workers > 1:
            raise ConfigError(
                "--workers and --num-workers do not combine: start one process per share instead"
            )
        _run_in_processes(suite, url, device, only, progress, workers, population)
        return url

    mine = [r for i, r in enumerate(runs) if i % num_workers == worker_index]
    _run_share(mine, open_storage(url), suite, device, progress, worker_index, population)
    return url


def _run_share(
    runs: list[RunSpec],
    store: optuna.storages.BaseStorage,
    suite: Suite,
    device: str,
    progress: bool,
    position: int,
    population: int | None = None,
) -> None:
    """Run `runs` one after another in this process, with progress bars at `position`."""
    bars = _Progress(runs, enabled=progress, position=position)
    try:
        for run in runs:
            bars.start(run)
            run_one(
                run,
                store,
                device=device,
                data_options=suite.data,
                on_epoch=bars.epoch,
                on_start=bars.resumed,
                population=population,
            )
            bars.done()
    finally:
        bars.close()


def _run_in_processes(
    suite: Suite,
    url: str,
    device: str,
    only: str | None,
    progress: bool,
    workers: int,
    population: int | None = None,
) -> None:
    """`workers` spawned processes, each running its share of the suite into `url`."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(str(suite.path), url, device, only, progress, i, workers, population),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [i for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise ConfigError(
            f"worker(s) {failed} failed; completed runs are stored in {url}: "
            "run the same command again to finish the rest"
        )


def _worker_main(
    suite_path: str,
    url: str,
    device: str,
    only: str | None,
    progress: bool,
    index: int,
    n: int,
    population: int | None = None,
) -> None:
    import torch

    # Each worker gets its share of the cores: N workers x all-core OpenMP pools oversubscribe
    # the CPU, and small models then spend most of their time waiting at OpenMP barriers
    # (measured: the quick suite's VAE runs took up to 25x longer).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // n))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_suite(
        suite_path,
        storage=url,
        device=device,
        only=only,
        progress=progress,
        worker_index=index,
        num_workers=n,
        population=population,
    )


class _Progress:
    """Two tqdm bars: runs of the suite, and epochs of the current run's budget."""

    def __init__(self, runs: list[RunSpec], enabled: bool, position: int = 0) -> None:
        self.enabled = enabled and len(runs) > 0
        if not self.enabled:
            return
        from tqdm import tqdm

        self.tqdm = tqdm
        self.overall = tqdm(
            total=len(runs), desc="runs", unit="run", position=2 * position, file=sys.stderr
        )
        self.run_bar = None
        self.position = 2 * position + 1

    def start(self, run: RunSpec) -> None:
        if self.enabled:
            self.run_bar = self.tqdm(
                total=run.task.budget_epochs,
                desc=run.study_name,
                unit="epoch",
                leave=False,
                position=self.position,
                file=sys.stderr,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:g} epochs [{elapsed}<{remaining}]",
            )
            self.base, self.last_epoch, self.last_done = 0.0, 0, 0.0

    def resumed(self, run: RunSpec, spent: float) -> None:
        if self.enabled and self.run_bar is not None:
            self.base = spent

    def epoch(self, record: EpochRecord) -> None:
        # Counted from the records themselves: no storage query per epoch.
        if not self.enabled or self.run_bar is None:
            return
        if record.epoch <= self.last_epoch:  # a new trial began
            self.base += self.last_done
        self.last_epoch, self.last_done = record.epoch, record.epochs_done
        self.run_bar.update(self.base + record.epochs_done - self.run_bar.n)
        self.run_bar.set_postfix_str(f"val {record.val:.4g}", refresh=False)

    def done(self) -> None:
        if self.enabled:
            if self.run_bar is not None:
                self.run_bar.close()
            self.overall.update(1)

    def close(self) -> None:
        if self.enabled:
            self.overall.close()
