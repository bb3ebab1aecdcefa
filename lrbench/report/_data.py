"""What the report reads from a suite's storage.

The per-run and per-trial tables come from `lrbench.report._results`; every read of a run's or a
trial's stored user attrs that the report makes beyond them happens in this module, so that a
change of what is stored (or of how it is read back) touches the report here only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from lrbench.report._results import (
    Run,
    anytime_curves,
    best_so_far_at,
    chosen_trial,
    load_results,
    load_runs,
    load_trials,
    total_epochs,
)
from lrbench.storage.records import RunKeys, TrialKeys, record_attrs


@dataclass
class SuiteData:
    """A suite's runs and the tables computed from them (one row per run / trial / curve point)."""

    runs: list[Run]
    results: pd.DataFrame
    trials: pd.DataFrame
    curves: pd.DataFrame

    def of_task(self, task: str) -> SuiteData:
        return SuiteData(
            [r for r in self.runs if r.task == task],
            self.results[self.results["task"] == task],
            self.trials[self.trials["task"] == task],
            self.curves[self.curves["task"] == task],
        )


def load_suite_data(storage: str | Any, suite: str) -> SuiteData | None:
    """Everything the report shows of `suite`; None when the storage holds no run of it."""
    runs = load_runs(storage, suite)
    if not runs:
        return None
    return SuiteData(runs, load_results(runs), load_trials(runs), anytime_curves(runs))


def epochs_per_trial(run: Run) -> Any:
    return run.record.epochs_per_trial


def optimizers_used(runs: list[Run]) -> list[str]:
    """The runs' optimizers, in order of first appearance."""
    return list(dict.fromkeys(str(r.record.get(RunKeys.OPTIMIZER)) for r in runs))


def has_range_test(run: Run) -> bool:
    return bool(run.record.range_test)


def range_test_of(run: Run):
    """The run's stored LR range test as a `RangeTestResult`."""
    from lrbench.tools import RangeTestResult

    return RangeTestResult.from_dict(run.record.range_test)


def reference_rows(runs: list[Run]) -> pd.DataFrame:
    """One row per (run, reference epoch): the published value and the run's own best-so-far
    validation value at that many cumulative epochs."""
    rows = [
        {
            "strategy": run.strategy,
            "seed": run.seed,
            "epochs": epochs,
            "reference": value,
            "ours": best_so_far_at(run, epochs),
            "trained": total_epochs(run),
        }
        for run in runs
        for epochs, value in run.record.reference
    ]
    return pd.DataFrame(rows)


def chosen_lr(run: Run) -> float | None:
    """The learning rate of the run's chosen trial (None: no chosen trial, or no `lr` param)."""
    chosen = chosen_trial(run)
    if chosen is not None and "lr" in chosen.params:
        return chosen.params["lr"]
    return None


def planned_epochs(run: Run, trial) -> int:
    """The epochs a trial was configured for (schedules like one-cycle span them): stored with
    the trial; for suites stored before that, derived from the budget rule of the time."""
    rec = run.trial_record(trial)
    if rec.planned_epochs is not None:
        return int(rec.planned_epochs)
    per_trial = int(run.record.epochs_per_trial or max(1, math.ceil(rec.epochs or 1)))
    if rec.phase != "exploit":
        return per_trial
    # The old exploit phase trained for the budget left when it started.
    spe = run.record.steps_per_epoch
    assert spe is not None  # a report reads only `readable` runs, which store it
    spent = run.record.overhead_steps + sum(
        run.trial_record(t).steps for t in run.counted_trials if t.number < trial.number
    )
    remaining = int(round(run.record.budget_epochs * spe)) - spent
    return max(1, math.ceil(remaining / spe))


@dataclass
class ChosenSchedule:
    """A run's chosen trial, as far as the schedules figure replays and plots it. Attributes are
    read when used: a value this version cannot read becomes a note in the report, not an error."""

    run: Run
    trial: FrozenTrial

    @property
    def schedule(self) -> str | None:
        return self.run.trial_record(self.trial).schedule

    @property
    def lr(self) -> float:
        return self.trial.params["lr"]

    @property
    def optimizer(self) -> str:
        rec = self.run.trial_record(self.trial)
        return rec.optimizer or self.run.record.get(RunKeys.OPTIMIZER) or "sgd"

    @property
    def steps(self) -> int:
        return self.run.trial_record(self.trial).steps

    @property
    def steps_per_epoch(self) -> int:
        spe = self.run.record.steps_per_epoch
        assert spe is not None  # a report reads only `readable` runs, which store it
        return int(spe)

    def planned_epochs(self) -> int:
        return planned_epochs(self.run, self.trial)

    def recorded(self) -> tuple[list[float], list[float | None]]:
        """(epochs done, rate) at the end of each epoch, as the engine recorded them."""
        hist = self.run.trial_record(self.trial).history
        return [h.epochs_done for h in hist], [h.lr for h in hist]


def chosen_schedule(run: Run) -> ChosenSchedule | None:
    """The run's chosen trial when it has a learning rate and a step count to replay."""
    t = chosen_trial(run)
    if t is None or "lr" not in t.params or TrialKeys.STEPS not in record_attrs(t.user_attrs):
        return None
    return ChosenSchedule(run, t)


# A run attr naming how the suite set its task's target (e.g. "median of the best validation
# values of 5 seeds of the task's default configuration, 4 epochs"), when the suite states one.
TARGET_PROCEDURE = RunKeys.TARGET_PROCEDURE


def budget_fits(runs: list[Run]) -> dict[str, Any]:
    """Per strategy of one task's runs, `lrbench.running._budget_fit.run_fit` of its first run (every seed
    of a strategy has the same settings); strategies whose fit cannot be told are left out."""
    from lrbench.running import run_fit

    out: dict[str, Any] = {}
    for run in runs:
        if run.strategy not in out:
            out[run.strategy] = run_fit(run.record)
    return {s: f for s, f in out.items() if f is not None}


def target_procedure(runs: list[Run]) -> str:
    """How the target of one task's runs was set: the suite's stated procedure when stored, else
    whether it is the task's own default target or a value the suite set."""
    first = runs[0].record
    stated = first.get(TARGET_PROCEDURE)
    if stated:
        return str(stated)
    default = _default_target(first.get(RunKeys.TASK_NAME), first.get(RunKeys.TASK_OPTIONS))
    if default is not None and math.isclose(default, first.target, rel_tol=1e-12):
        return "the task's default target"
    return "set in the suite (no procedure stored)"


def _default_target(task_name: Any, options: Any) -> float | None:
    from lrbench.errors import LrbenchError
    from lrbench.tasks import get_task

    if task_name is None:
        return None
    try:
        task = get_task(str(task_name), **dict(options or {}))
    except (LrbenchError, TypeError, ValueError):
        return None
    return None if task.default_target is None else float(task.default_target)


def task_key(runs: list[Run]) -> tuple[str, str]:
    """What makes two task labels the same task: its registry name and options (they may differ
    in range, budget or target)."""
    import json

    first = runs[0].record
    options = json.dumps(first.get(RunKeys.TASK_OPTIONS) or {}, sort_keys=True, default=str)
    return str(first.get(RunKeys.TASK_NAME) or first.task), options


def lr_range(runs: list[Run]) -> tuple[float, float]:
    first = runs[0].record
    return float(first.get(RunKeys.LOW, math.nan)), float(first.get(RunKeys.HIGH, math.nan))
