"""Runs that differ only in seed, of a strategy that trains one configuration (`fixed`,
`cosine`, `one_cycle` ...), driven together: each run's range test (if it has one) alone, then
the one trial of every run trained as one population (`lrbench.training._population`). Five seeds of a
fixed configuration then cost about one trial's wall time on a GPU.

Each run keeps its own study, claim, budget cut and records, so what is stored equals what the
runs store when driven one by one (bit for bit on one CPU thread, to float rounding on a GPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna

from lrbench.running._run import (
    EpochHook,
    OpenRun,
    RunOptions,
    finish_run,
    open_run,
    prepare_task,
    record_interruption,
)
from lrbench.running._suite import RunSpec
from lrbench.strategies import REGISTRY, PlannedTrial, train_planned
from lrbench.tasks import get_task
from lrbench.training import population_size, resolve_device


def group_key(run: RunSpec) -> tuple[str, str, str]:
    """Runs with one key differ only in their seed."""
    return run.suite, run.task.label, run.strategy.label


def seed_group_size(run: RunSpec, options: RunOptions) -> int:
    """How many runs of `run`'s group one worker drives together: the population size where the
    strategy trains one configuration with the run's optimizer and the task can batch, else 1."""
    strategy_class = REGISTRY[run.strategy.name][0]
    if not getattr(strategy_class, "batches_seeds", False):
        return 1
    task = get_task(run.task.name, **run.task.options)
    return population_size(task, resolve_device(options.device), options.population, run.optimizer)


def siblings(run: RunSpec, runs: list[RunSpec]) -> list[str]:
    """The other runs of `run`'s group among `runs`, by study name."""
    key = group_key(run)
    return [r.study_name for r in runs if group_key(r) == key and r != run]


def describe(runs: list[RunSpec]) -> str:
    """A group's name for progress lines: `<suite>/<task>/<strategy>/seeds 0,1,2`."""
    seeds = ",".join(str(r.seed) for r in runs)
    return f"{runs[0].study_name.rsplit('/', 1)[0]}/seeds {seeds}"


def run_seed_group(
    runs: list[RunSpec],
    storage: optuna.storages.BaseStorage,
    *,
    options: RunOptions,
    data_options=None,
    on_epoch: EpochHook | None = None,
    on_start: Callable[[float, float], None] | None = None,
) -> int:
    """Run (or resume) `runs`, one group (`group_key`); return how many were not yet complete.

    `on_start(budget, spent)` gets the group's budgets and spending summed. On any exception
    (Ctrl-C included) every run's trial in flight is failed with the reason and the runs stay
    "running", to be resumed.
    """
    dev = resolve_device(options.device)
    task, data = prepare_task(runs[0], dev, data_options)
    opened = [
        o
        for run in runs
        if (o := open_run(run, storage, task, data, dev, options, on_epoch)) is not None
    ]
    if not opened:
        return 0
    if on_start is not None:
        budget = sum(o.ctx.budget_epochs for o in opened)
        on_start(budget, sum(o.ctx.spent_epochs() for o in opened))
    t0 = time.perf_counter()
    try:
        _train_together(opened)
    except BaseException as e:
        for o in opened:
            record_interruption(o, storage, e)
        raise
    share = (time.perf_counter() - t0) / len(opened)  # each run's part of the wall time
    for o in opened:
        finish_run(o, share)
    return len(opened)


def _train_together(opened: list[OpenRun]) -> None:
    """Each run's configuration (its range test first, alone), then one trial per run as one
    population, told with the value a lone run tells; then each run's final metrics."""
    planned = []
    for o in opened:
        plan = o.strategy.plan(o.ctx)
        if plan is not None:
            lr, schedule = plan
            planned.append(
                PlannedTrial(o.ctx, o.ctx.ask_fixed(lr), o.ctx.trial_config(lr, schedule=schedule))
            )
    if planned:
        results = train_planned(planned, phase="train")
        for p, result in zip(planned, results):
            p.ctx.study.tell(p.trial, p.ctx.objective_value(result))
    for o in opened:
        o.ctx.record_chosen_final_metrics()
