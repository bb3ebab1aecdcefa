"""Per-run numbers of a suite, computed from its Optuna storage alone (never from in-memory state).

A *run* is one study named `<suite>/<task>/<strategy>/seed<k>`; its user attrs say what it was
(budget, target, direction, metric...), its trials what it did. Cost is counted as the design
says: the run's range-test overhead first (`overhead_epochs`, `overhead_seconds`), then every
trial in number order with the epochs it trained (`epochs` attr, i.e. steps / steps_per_epoch,
the same count the budget is charged with). Within a trial, the epoch records (`history`) say
how many epochs had been trained (`epochs_done`) when each validation value was measured.

- `load_trials`: one row per trial, with the run epochs spent before it (`cum_epochs_start`).
- `load_results`: one row per run: epochs-to-target, wall-seconds-to-target, best validation
  metric, the chosen configuration and its test metric, trial counts (the report's `runs.csv`).
- `anytime_curves`: best validation metric so far against cumulative epochs, per run;
  `curves_on_grid` puts many runs on a common epoch grid for median / interquartile bands.
- `convergence_window`: the widest contiguous window of rates (in decades) whose final metric
  meets a target (optimizer tolerance on `functions`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from lrbench.storage.records import (
    EpochEntry,
    RunKeys,
    RunRecord,
    TrialKeys,
    TrialRecord,
    is_run_study_name,
    record_attrs,
)

TRIAL_COLUMNS = [
    "task",
    "strategy",
    "seed",
    "number",
    "state",
    "lr",
    "value",
    "epochs",
    "cum_epochs_start",
    "diverged",
    "pruned",
    "cut",
    "phase",
    "schedule",
    "optimizer",
    "test",
    "seconds",
    "eval_seconds",
    "steps",
    "best_val",
    "final_val",
    "study",
]
RESULT_COLUMNS = [
    "suite",
    "task",
    "strategy",
    "seed",
    "metric",
    "metric_unit",
    "direction",
    "target",
    "budget_epochs",
    "status",
    "reached",
    "epochs_to_target",
    "wall_seconds_to_target",
    "best_val",
    "chosen_trial",
    "chosen_lr",
    "chosen_schedule",
    "chosen_value",
    "test",
    "total_epochs",
    "overhead_epochs",
    "n_trials",
    "n_complete",
    "n_pruned",
    "n_diverged",
    "n_failed",
    "n_cut",
    "wall_seconds",
    "optimizer",
    "device",
    "task_name",
    "strategy_name",
    "control",
    "study",
]
CURVE_COLUMNS = ["task", "strategy", "seed", "epochs", "val", "best", "direction", "budget_epochs"]


# --------------------------------------------------------------------------------------------- #
# Reading the storage
# --------------------------------------------------------------------------------------------- #
@dataclass
class Run:
    """One stored run: its study's name and user attrs, and its trials in number order.

    `record` reads the attrs (typed, with defaults) and `trial_record(t)` a trial's, both
    through `lrbench.storage.records`.
    """

    name: str
    attrs: dict[str, Any]
    trials: list[FrozenTrial] = field(default_factory=list)

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord.from_attrs(self.name, self.attrs)

    @cached_property
    def _trial_records(self) -> dict[int, TrialRecord]:
        return {t.number: TrialRecord.from_frozen(t) for t in self.trials}

    def trial_record(self, t: FrozenTrial) -> TrialRecord:
        """`t`'s stored record (parsed once per run)."""
        rec = self._trial_records.get(t.number)
        return rec if rec is not None else TrialRecord.from_frozen(t)

    @cached_property
    def _interrupted(self) -> frozenset[int]:
        return frozenset(self.record.interrupted_trials)

    @cached_property
    def counted_trials(self) -> list[FrozenTrial]:
        """The trials charged to the run, in number order: all but those an interruption
        failed, which cost the strategy nothing (as `records.spent_steps` charges)."""
        return [t for t in self.trials if self.counts(t)]

    def counts(self, t: FrozenTrial) -> bool:
        return t.number not in self._interrupted

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def strategy(self) -> str:
        return self.record.strategy

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def direction(self) -> str:
        return self.record.direction

    @property
    def target(self) -> float:
        return self.record.target

    @property
    def overhead_epochs(self) -> float:
        return self.record.overhead_epochs

    @property
    def overhead_seconds(self) -> float:
        return self.record.overhead_seconds

    def meets(self, val: float | None) -> bool:
        return meets_target(val, self.target, self.direction)

    def better(self, a: float, b: float) -> bool:
        """a strictly better than b in this run's direction."""
        return is_better(a, b, self.direction)


def is_better(a: float, b: float, direction: str) -> bool:
    """`a` strictly better than `b` in `direction` (a stored run's; a live one has
    `Task.is_better`)."""
    return a < b if direction == "minimize" else a > b


def meets_target(val: float | None, target: float, direction: str) -> bool:
    """Validation `val` meets `target`: <= when minimizing, >= when maximizing (None/NaN never do)."""
    if val is None or not math.isfinite(val) or target is None or math.isnan(target):
        return False
    return val == target or is_better(val, target, direction)


def worst_value(direction: str) -> float:
    return math.inf if direction == "minimize" else -math.inf


def _storage_from(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    if not isinstance(storage, str):
        return storage
    from lrbench.storage import open_storage

    return open_storage(storage, create=False)  # reading: an empty or missing file is refused


def load_runs(storage: str | optuna.storages.BaseStorage, suite: str) -> list[Run]:
    """Every run of `suite` in `storage` (in the order the studies were created), trials by number.

    Not the suite's coordinating study (`<suite>/_runs`, the workers' claims), nor a run killed
    while its settings were written (it trained nothing; `lrbench run` writes them again).
    """
    store = _storage_from(storage)
    prefix = f"{suite}/"
    studies = [
        (store.get_study_id_from_name(s.study_name), s)
        for s in store.get_all_studies()
        if s.study_name.startswith(prefix)
        and is_run_study_name(s.study_name)
        and RunRecord.from_attrs(s.study_name, s.user_attrs).readable
    ]
    runs = []
    for study_id, s in sorted(studies, key=lambda x: x[0]):
        trials = sorted(store.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
        runs.append(Run(s.study_name, dict(s.user_attrs), trials))
    return runs


def _runs(storage_or_runs: Any, suite: str | None) -> list[Run]:
    if isinstance(storage_or_runs, list):
        return storage_or_runs
    if suite is None:
        raise TypeError("give the suite name with a storage")
    return load_runs(storage_or_runs, suite)


# --------------------------------------------------------------------------------------------- #
# Walking a run's cost, in the order it was spent
# --------------------------------------------------------------------------------------------- #
def trial_epochs(t: FrozenTrial) -> float:
    """Epochs a trial trained (charged to the budget); 0 for an interrupted trial that stored none."""
    return TrialRecord.from_frozen(t).epochs


def trial_seconds(t: FrozenTrial) -> float:
    """Training plus evaluation seconds of a trial."""
    return TrialRecord.from_frozen(t).total_seconds


@dataclass(frozen=True)
class Point:
    """One epoch record of a run, placed on the run's cumulative cost axes."""

    trial: FrozenTrial
    record: EpochEntry
    epochs: float  # cumulative run epochs when `record.val` was measured (overhead included)
    seconds: float  # cumulative training + evaluation seconds (range test included)

    @property
    def val(self) -> float | None:
        return self.record.val


def walk(run: Run) -> Iterator[Point]:
    """Every epoch record of `run`: overhead first, then its counted trials in number order."""
    epochs, seconds = run.overhead_epochs, run.overhead_seconds
    for t in run.counted_trials:
        rec = run.trial_record(t)
        within = 0.0
        for entry in rec.history:
            within += entry.seconds + entry.eval_seconds
            yield Point(t, entry, epochs + entry.epochs_done, seconds + within)
        epochs += rec.epochs
        seconds += rec.total_seconds


def total_epochs(run: Run) -> float:
    return run.overhead_epochs + sum(run.trial_record(t).epochs for t in run.counted_trials)


def first_reach(run: Run) -> Point | None:
    """The first epoch record whose validation metric meets the run's target, or None."""
    return next((p for p in walk(run) if run.meets(p.val)), None)


def _position(run: Run, trial: FrozenTrial | None) -> int | None:
    """`trial`'s place among the run's counted trials (0 = first): what the strategy tried
    first, second ..., whatever numbers trials failed by an interruption took in the storage,
    so that an interrupted and resumed run names the same trial as an uninterrupted one."""
    if trial is None:
        return None
    return [t.number for t in run.counted_trials].index(trial.number)


def chosen_trial(run: Run) -> FrozenTrial | None:
    """The configuration the run chose: its COMPLETE trial with the best value (earliest on ties)."""
    best: FrozenTrial | None = None
    best_value = math.nan
    for t in run.trials:
        if t.state != TrialState.COMPLETE or t.value is None or not math.isfinite(t.value):
            continue
        if best is None or run.better(t.value, best_value):
            best, best_value = t, t.value
    return best


def best_val(run: Run) -> float:
    """Best validation metric measured within the budget (any trial, any epoch); NaN if none."""
    best = math.nan
    for p in walk(run):
        if p.val is not None and (math.isnan(best) or run.better(p.val, best)):
            best = p.val
    return best


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


# --------------------------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------------------------- #
def load_trials(
    storage: str | optuna.storages.BaseStorage | list[Run], suite: str | None = None
) -> pd.DataFrame:
    """One row per trial of every run of `suite` (see TRIAL_COLUMNS).

    `cum_epochs_start` is the run's epochs spent before the trial: range-test overhead plus the
    epochs of the counted trials numbered before it (`Run.counted_trials`). `final_val` is the
    last epoch record's validation metric (NaN when that epoch diverged).
    """
    rows = []
    for run in _runs(storage, suite):
        spent = run.overhead_epochs
        for t in run.trials:
            rows.append(_trial_row(run, t, spent))
            if run.counts(t):
                spent += run.trial_record(t).epochs
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def _trial_row(run: Run, t: FrozenTrial, spent: float) -> dict[str, Any]:
    """One row of `load_trials`: trial `t` of `run`, after `spent` run epochs."""
    rec = run.trial_record(t)
    return {
        "task": run.task,
        "strategy": run.strategy,
        "seed": run.seed,
        "number": t.number,
        "state": t.state.name,
        "lr": _num(t.params.get("lr")),
        "value": _num(t.value),
        "epochs": rec.epochs,
        "cum_epochs_start": spent,
        "diverged": rec.diverged,
        "pruned": rec.pruned,
        "cut": rec.cut,
        "phase": rec.phase,
        "schedule": rec.schedule,
        "optimizer": rec.optimizer
        if TrialKeys.OPTIMIZER in record_attrs(t.user_attrs)
        else run.record.get(RunKeys.OPTIMIZER),
        "test": _num(rec.test),
        "seconds": _num(rec.seconds),
        "eval_seconds": _num(rec.eval_seconds),
        "steps": rec.steps,
        "best_val": _num(rec.best_val),
        "final_val": _num(rec.final_val),
        "study": run.name,
    }


def best_so_far_at(run: Run, epochs: float) -> float:
    """The best validation value measured within the run's first `epochs` cumulative epochs."""
    best = math.nan
    for p in walk(run):
        if p.epochs > epochs + 1e-9:
            break
        if p.val is not None and (math.isnan(best) or run.better(p.val, best)):
            best = p.val
    return best


def chosen_final_metrics(run: Run, chosen: FrozenTrial | None) -> dict[str, float]:
    """The task's final test metrics stored for the chosen trial (e.g. an IWAE bound)."""
    stored = run.record.chosen_final_metrics or {}
    if chosen is None or stored.get("trial") != chosen.number:
        return {}
    return {f"test_{k}": _num(v) for k, v in stored.items() if k != "trial"}


def run_result(run: Run) -> dict[str, Any]:
    """The per-run numbers of one run (one row of `load_results`); final test metrics a task
    defines (e.g. `test_iwae_nll`) are extra columns, present only when stored."""
    r = run.record
    hit = first_reach(run)
    chosen = chosen_trial(run)
    chosen_rec = run.trial_record(chosen) if chosen is not None else None
    # Trials failed by an interruption (Ctrl-C, a killed worker) say nothing of the strategy.
    counted = run.counted_trials
    states = [t.state for t in counted]
    trial_recs = [run.trial_record(t) for t in counted]
    return {
        "suite": r.suite,
        "task": run.task,
        "strategy": run.strategy,
        "seed": run.seed,
        "metric": r.get(RunKeys.METRIC),
        "metric_unit": r.get(RunKeys.METRIC_UNIT),
        "direction": run.direction,
        "target": run.target,
        "budget_epochs": r.budget_epochs,
        "status": r.status,
        "reached": hit is not None,
        "epochs_to_target": hit.epochs if hit is not None else math.inf,
        "wall_seconds_to_target": hit.seconds if hit is not None else math.inf,
        "best_val": best_val(run),
        "chosen_trial": _position(run, chosen),
        "chosen_lr": _num(chosen.params.get("lr")) if chosen is not None else math.nan,
        "chosen_schedule": chosen_rec.schedule if chosen_rec is not None else None,
        "chosen_value": _num(chosen.value) if chosen is not None else math.nan,
        "test": _num(chosen_rec.test) if chosen_rec is not None else math.nan,
        "total_epochs": total_epochs(run),
        "overhead_epochs": run.overhead_epochs,
        "n_trials": len(counted),
        "n_complete": states.count(TrialState.COMPLETE),
        "n_pruned": states.count(TrialState.PRUNED),
        "n_diverged": sum(rec.diverged for rec in trial_recs),
        "n_failed": states.count(TrialState.FAIL),
        "n_cut": sum(rec.cut for rec in trial_recs),
        "wall_seconds": r.wall_seconds,
        "optimizer": r.get(RunKeys.OPTIMIZER),
        "device": r.get(RunKeys.DEVICE),
        "task_name": r.get(RunKeys.TASK_NAME),
        "strategy_name": r.get(RunKeys.STRATEGY_NAME),
        "control": r.get(RunKeys.CONTROL),
        "study": run.name,
        **chosen_final_metrics(run, chosen),
    }


def load_results(
    storage: str | optuna.storages.BaseStorage | list[Run], suite: str | None = None
) -> pd.DataFrame:
    """One row per run of `suite` with every per-run number (see RESULT_COLUMNS and the module doc).

    `storage` is an Optuna storage URL or storage object (or a list of `Run` from `load_runs`).
    `epochs_to_target` / `wall_seconds_to_target` are `inf` when the target was never met;
    `test` is the test metric of the chosen trial (the COMPLETE trial with the best value), the
    only test number reported; `chosen_trial` is that trial's place among the run's counted
    trials (0 = the strategy's first), not its storage number, which counts trials failed by an
    interruption.
    """
    rows = [run_result(r) for r in _runs(storage, suite)]
    # A task's final test metrics follow the fixed columns, only when some run stored them.
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in RESULT_COLUMNS))
    df = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    return df.astype({"chosen_trial": "Int64"}) if len(df) else df


# --------------------------------------------------------------------------------------------- #
# Anytime curves
# --------------------------------------------------------------------------------------------- #
def anytime_curve(run: Run) -> pd.DataFrame:
    """Best validation metric so far against cumulative epochs: one point per epoch record.

    Columns `epochs` (cumulative, overhead included: the first point comes after it), `val` (the
    record's validation metric, NaN if diverged) and `best` (best so far, NaN until a first
    finite value).
    """
    rows, best = [], math.nan
    for p in walk(run):
        if p.val is not None and (math.isnan(best) or run.better(p.val, best)):
            best = p.val
        rows.append((p.epochs, _num(p.val), best))
    return pd.DataFrame(rows, columns=["epochs", "val", "best"])


def anytime_curves(
    storage: str | optuna.storages.BaseStorage | list[Run], suite: str | None = None
) -> pd.DataFrame:
    """`anytime_curve` of every run of `suite`, stacked (see CURVE_COLUMNS)."""
    frames = []
    for run in _runs(storage, suite):
        c = anytime_curve(run)
        c.insert(0, "task", run.task)
        c.insert(1, "strategy", run.strategy)
        c.insert(2, "seed", run.seed)
        c["direction"] = run.direction
        c["budget_epochs"] = run.record.budget_epochs
        frames.append(c)
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]


def quantile(values: Iterable[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) that keeps +-inf meaningful.

    Between a finite value and +inf the answer is +inf (an unreached run pulls the quantile to
    "not reached"); numpy's arithmetic would give NaN in some of these cases.
    """
    v = sorted(float(x) for x in values if not (isinstance(x, float) and math.isnan(x)))
    if not v:
        return math.nan
    pos = q * (len(v) - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    w = pos - lo
    a, b = v[lo], v[hi]
    if w == 0 or a == b:
        return a
    if math.isinf(a) and math.isinf(b):
        return math.nan
    if math.isinf(b):
        return b
    if math.isinf(a):
        return a
    return a + (b - a) * w


def curves_on_grid(
    curves: pd.DataFrame, grid: Sequence[float] | int | None = None
) -> pd.DataFrame:
    """Median and interquartile range over runs (seeds) of each (task, strategy), on a common grid.

    `curves` is `anytime_curves(...)`. `grid` is the epoch values to evaluate at, or a number of
    evenly spaced points from 0 to the task's budget (default 201). A run's value at epoch g is its
    best so far among records at or before g, carried forward after its last record; before its
    first finite value it counts as the worst possible value (+inf when minimizing, -inf when
    maximizing), so a band is only drawn once enough runs have a measurement. Returns columns
    task, strategy, epochs, median, q25, q75, n_runs (non-finite quantiles are NaN).
    """
    out = []
    for (task, strategy), g in curves.groupby(["task", "strategy"], sort=False):
        direction = g["direction"].iloc[0]
        worst = worst_value(direction)
        if grid is None or isinstance(grid, int):
            hi = (
                float(np.nanmax(g["budget_epochs"]))
                if g["budget_epochs"].notna().any()
                else float(g["epochs"].max())
            )
            xs = np.linspace(0.0, hi, grid or 201)
        else:
            xs = np.asarray(grid, dtype=float)
        per_run = []
        for _, r in g.groupby("seed", sort=True):
            r = r.sort_values("epochs", kind="stable")
            e = r["epochs"].to_numpy(float)
            b = r["best"].to_numpy(float)
            b = np.where(np.isnan(b), worst, b)
            idx = np.searchsorted(e, xs + 1e-9, side="right") - 1
            per_run.append(np.where(idx >= 0, b[np.clip(idx, 0, None)], worst))
        vals = np.array(per_run)
        for j, x in enumerate(xs):
            col = vals[:, j]
            q = [quantile(col, p) for p in (0.5, 0.25, 0.75)]
            q = [v if math.isfinite(v) else math.nan for v in q]
            out.append((task, strategy, float(x), *q, len(col)))
    return pd.DataFrame(
        out, columns=["task", "strategy", "epochs", "median", "q25", "q75", "n_runs"]
    )


# --------------------------------------------------------------------------------------------- #
# Optimizer tolerance
# --------------------------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ConvergenceWindow:
    low: float  # smallest rate of the window
    high: float  # largest rate of the window
    n_rates: int  # distinct rates in it
    decades: float  # log10(high) - log10(low); 0 for a single rate


def convergence_window(
    lrs: Sequence[float],
    finals: Sequence[float | None],
    target: float,
    direction: str = "minimize",
) -> ConvergenceWindow | None:
    """The longest contiguous run of rates (sorted by lr) whose final metric meets `target`.

    Several values at one rate (seeds, strategies) are summarised by their median, a missing or
    non-finite one (diverged) counting as the worst value; the rate converges when that median
    meets the target. Among equally long runs the widest (in decades) wins. None if no rate
    converges.
    """
    if len(lrs) != len(finals):
        raise ValueError(f"convergence_window: {len(lrs)} rates but {len(finals)} final values")
    worst = worst_value(direction)
    by_rate: dict[float, list[float]] = {}
    for lr, f in zip(lrs, finals):
        if lr is None or not (float(lr) > 0):
            continue
        f = worst if f is None or not math.isfinite(float(f)) else float(f)
        by_rate.setdefault(float(lr), []).append(f)
    rates = sorted(by_rate)
    ok = [meets_target(quantile(by_rate[r], 0.5), target, direction) for r in rates]
    best: ConvergenceWindow | None = None
    i = 0
    while i < len(rates):
        if not ok[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(rates) and ok[j + 1]:
            j += 1
        w = ConvergenceWindow(
            rates[i], rates[j], j - i + 1, math.log10(rates[j]) - math.log10(rates[i])
        )
        if best is None or (w.n_rates, w.decades) > (best.n_rates, best.decades):
            best = w
        i = j + 1
    return best
