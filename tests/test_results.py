"""lrbench.report._results: per-run numbers from the storage alone, checked against hand computations
over the stored trials of a real (tiny) suite run."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import optuna
import pytest

from lrbench.errors import ConfigError
from lrbench.report._results import (
    ConvergenceWindow,
    anytime_curve,
    anytime_curves,
    convergence_window,
    curves_on_grid,
    load_results,
    load_runs,
    load_trials,
    quantile,
)
from lrbench.storage.records import is_run_study_name, record_attrs, run_attrs

# digits + functions, random + one_cycle (range test charged first) on both, a grid with another
# optimizer on functions; 3 seeds. Budgets are tiny: the whole suite trains in seconds.
SUITE = """
[suite]
name = "rtest"
seeds = [0, 1, 2]
budget_epochs = 4
control = "random"

[tasks.digits]
target = 0.85
epochs_per_trial = 2
low = 1e-3
high = 1.0

[tasks.functions]
target = 0.01
epochs_per_trial = 2
low = 1e-4
high = 0.5
budget_epochs = 6

[[strategies]]
name = "random"

[[strategies]]
name = "one_cycle"
num_iter = 20

[[strategies]]
name = "grid"
label = "grid-adam"
n = 3
optimizer = "adam"
tasks = ["functions"]
"""


def suite_storage(tmp_path_factory) -> str:
    """Run SUITE once per test session (shared by test_results and test_report through the
    session's base temp folder); return the SQLite URL of its storage."""
    key = hashlib.sha1(SUITE.encode()).hexdigest()[:10]
    folder = tmp_path_factory.getbasetemp() / f"lrbench-suite-{key}"
    db = folder / "rtest.db"
    if not db.exists():
        from lrbench.running import run_suite

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rtest.toml").write_text(SUITE)
        # SQLite commits every attribute: on tmpfs they cost nothing, on disk each one is an fsync.
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        work = Path(tempfile.mkdtemp(dir=shm))
        try:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            run_suite(
                folder / "rtest.toml",
                storage=f"sqlite:///{work / 'rtest.db'}",
                device="cpu",
                progress=False,
            )
            # SQLite's backup, not a file copy: the last writes may sit in the write-ahead log.
            with (
                contextlib.closing(sqlite3.connect(work / "rtest.db")) as src,
                contextlib.closing(sqlite3.connect(folder / "partial.db")) as dst,
            ):
                src.backup(dst)
            os.replace(folder / "partial.db", db)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    return suite_storage(tmp_path_factory)


@pytest.fixture(scope="module")
def results(storage):
    return load_results(storage, "rtest")


def _studies(storage: str) -> list[optuna.Study]:
    names = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage)
        if s.study_name.startswith("rtest/") and is_run_study_name(s.study_name)
    ]
    return [optuna.load_study(study_name=n, storage=storage) for n in names]


def _row(results, study: optuna.Study):
    _, task, strategy, seed = study.study_name.split("/")
    row = results[
        (results.task == task) & (results.strategy == strategy) & (results.seed == int(seed[4:]))
    ]
    assert len(row) == 1
    return row.iloc[0]


def test_one_row_per_run(storage, results):
    assert len(results) == 2 * 2 * 3 + 3
    assert set(results.task) == {"digits", "functions"}
    assert set(results.strategy) == {"random", "one_cycle", "grid-adam"}
    assert (results.status == "complete").all()
    assert set(results.metric) == {"accuracy", "f"}
    assert results.loc[results.task == "digits", "direction"].eq("maximize").all()


def test_epochs_to_target_matches_a_hand_walk_of_the_stored_trials(storage, results):
    reached = 0
    for study in _studies(storage):
        a = run_attrs(study.user_attrs)
        target, minimize = a["target"], a["direction"] == "minimize"
        spent = a.get("overhead_epochs", 0.0)
        seconds = a.get("overhead_seconds", 0.0)
        ett = wall = math.inf
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            within = 0.0
            for rec in record_attrs(t.user_attrs).get("history", []):
                within += rec["seconds"] + rec["eval_seconds"]
                v = rec["val"]
                if v is not None and (v <= target if minimize else v >= target):
                    ett, wall = spent + rec["epochs_done"], seconds + within
                    break
            if math.isfinite(ett):
                break
            spent += record_attrs(t.user_attrs).get("epochs", 0.0)
            seconds += record_attrs(t.user_attrs).get("seconds", 0.0) + record_attrs(
                t.user_attrs
            ).get("eval_seconds", 0.0)
        row = _row(results, study)
        assert (
            row.epochs_to_target == pytest.approx(ett)
            if math.isfinite(ett)
            else math.isinf(row.epochs_to_target)
        )
        assert (
            row.wall_seconds_to_target == pytest.approx(wall)
            if math.isfinite(wall)
            else math.isinf(row.wall_seconds_to_target)
        )
        assert bool(row.reached) == math.isfinite(ett)
        reached += math.isfinite(ett)
    # The suite is sized so that some runs reach their target and some do not.
    assert 0 < reached < len(results)


def test_epochs_to_target_counts_the_range_test_first(storage, results):
    rows = results[(results.strategy == "one_cycle")]
    assert (rows.overhead_epochs > 0).all()
    hit = rows[rows.reached]
    # A one-cycle run trains one trial: reached = overhead + the epoch records within it.
    assert (hit.epochs_to_target > hit.overhead_epochs).all()


def test_budgets_are_honoured_and_totals_add_up(storage, results):
    for study in _studies(storage):
        a = run_attrs(study.user_attrs)
        row = _row(results, study)
        trials = study.get_trials(deepcopy=False)
        expected = a.get("overhead_epochs", 0.0) + sum(
            record_attrs(t.user_attrs).get("epochs", 0.0) for t in trials
        )
        assert row.total_epochs == pytest.approx(expected, abs=1e-12)
        assert row.total_epochs <= a["budget_epochs"] + 1e-9
        assert row.n_trials == len(trials)
        assert row.n_complete + row.n_pruned + row.n_failed == len(trials)
        assert row.n_diverged == sum(
            bool(record_attrs(t.user_attrs).get("diverged")) for t in trials
        )
        assert row.budget_epochs == a["budget_epochs"]
        assert row.epochs_to_target <= row.total_epochs or math.isinf(row.epochs_to_target)


def test_chosen_config_is_the_best_value_trial_and_its_test_attr(storage, results):
    for study in _studies(storage):
        complete = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE
        ]
        maximize = run_attrs(study.user_attrs)["direction"] == "maximize"
        best = (max if maximize else min)(complete, key=lambda t: t.value)
        row = _row(results, study)
        # Its place among the run's trials (no trial of these runs was interrupted: its number).
        assert row.chosen_trial == best.number
        assert row.chosen_lr == best.params["lr"]
        assert row.chosen_value == best.value
        assert row.chosen_schedule == record_attrs(best.user_attrs)["schedule"]
        if record_attrs(best.user_attrs).get("test") is None:
            assert math.isnan(row.test)
        else:
            assert row.test == record_attrs(best.user_attrs)["test"]


def test_best_val_is_the_best_epoch_record_within_budget(storage, results):
    for study in _studies(storage):
        vals = [
            r["val"]
            for t in study.get_trials(deepcopy=False)
            for r in record_attrs(t.user_attrs).get("history", [])
            if r["val"] is not None
        ]
        row = _row(results, study)
        if not vals:
            assert math.isnan(row.best_val)
        else:
            assert row.best_val == (
                max(vals) if run_attrs(study.user_attrs)["direction"] == "maximize" else min(vals)
            )


def test_load_trials_rows_and_cumulative_epochs(storage):
    trials = load_trials(storage, "rtest")
    studies = _studies(storage)
    assert len(trials) == sum(len(s.trials) for s in studies)
    for study in studies:
        _, task, strategy, seed = study.study_name.split("/")
        rows = trials[
            (trials.task == task) & (trials.strategy == strategy) & (trials.seed == int(seed[4:]))
        ]
        spent = study.user_attrs.get("overhead_epochs", 0.0)
        for t in sorted(study.trials, key=lambda t: t.number):
            r = rows[rows.number == t.number].iloc[0]
            assert r.cum_epochs_start == pytest.approx(spent)
            assert r.lr == t.params["lr"] and r.state == t.state.name
            assert (
                r.epochs == record_attrs(t.user_attrs)["epochs"]
                and r.schedule == record_attrs(t.user_attrs)["schedule"]
            )
            spent += record_attrs(t.user_attrs)["epochs"]
    assert set(trials.phase) <= {"search", "train", "exploit"}
    assert trials.diverged.any()  # functions at high rates blow up


def test_anytime_curves(storage, results):
    runs = load_runs(storage, "rtest")
    for run in runs:
        c = anytime_curve(run)
        row = results[results.study == run.name].iloc[0]
        assert len(c) == sum(
            len(record_attrs(t.user_attrs).get("history", [])) for t in run.trials
        )
        assert (c.epochs.diff().dropna() > 0).all()
        assert c.epochs.iloc[0] > run.overhead_epochs
        assert c.epochs.iloc[-1] == pytest.approx(row.total_epochs)
        best = c.best.dropna()
        steps = best.diff().dropna()
        assert ((steps >= 0) if run.direction == "maximize" else (steps <= 0)).all()  # monotone
        if math.isnan(row.best_val):
            assert best.empty
        else:
            assert best.iloc[-1] == row.best_val
    curves = anytime_curves(runs)
    grid = curves_on_grid(curves, 11)
    assert len(grid) == 11 * len(results.groupby(["task", "strategy"]))
    assert set(grid.n_runs) == {3}
    ok = grid.dropna()
    assert (ok.q25 <= ok["median"]).all() and (ok["median"] <= ok.q75).all()
    # Before any run of a task has an epoch record, nothing is drawn.
    assert grid[grid.epochs == 0]["median"].isna().all()
    # After the budget the median is the median of the runs' best values.
    last = grid[(grid.task == "digits") & (grid.strategy == "random")].iloc[-1]
    assert last["median"] == pytest.approx(
        results[(results.task == "digits") & (results.strategy == "random")].best_val.median()
    )


def test_storage_object_and_missing_storage(storage, tmp_path):
    store = optuna.storages.RDBStorage(storage)
    assert len(load_results(store, "rtest")) == len(load_results(storage, "rtest"))
    assert load_results(storage, "no-such-suite").empty
    missing = tmp_path / "none.db"
    with pytest.raises(ConfigError, match="no such file"):
        load_results(f"sqlite:///{missing}", "rtest")
    assert not missing.exists()  # reading never creates a database


def test_quantile_keeps_infinity_meaningful():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0, math.inf], 0.5) == 2.0
    assert quantile([1.0, math.inf], 0.5) == math.inf
    assert quantile([1.0, 2.0, math.inf, math.inf], 0.25) == 1.75
    assert quantile([math.inf, math.inf], 0.5) == math.inf
    assert math.isnan(quantile([], 0.5))
    assert quantile([-math.inf, 0.0, 1.0], 0.25) == -math.inf


# -- convergence window: hand-made cases ----------------------------------------------------------
def test_window_longest_contiguous_run_of_converging_rates():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    finals = [5.0, 0.001, 0.002, 0.005, None]  # 1.0 diverged
    w = convergence_window(lrs, finals, target=0.01, direction="minimize")
    assert w == ConvergenceWindow(1e-3, 1e-1, 3, pytest.approx(2.0))


def test_window_picks_the_longer_run_not_the_first():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 1.0]
    finals = [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, float("nan")]
    w = convergence_window(lrs, finals, target=0.5)
    assert (w.low, w.high, w.n_rates) == (1e-3, 3e-2, 3)
    assert w.decades == pytest.approx(math.log10(3e-2) - math.log10(1e-3))


def test_window_unsorted_input_single_rate_none_and_maximize():
    w = convergence_window([1.0, 1e-2, 1e-1], [0.5, 0.5, 0.99], target=0.9, direction="maximize")
    assert (w.low, w.high, w.n_rates, w.decades) == (1e-1, 1e-1, 1, 0.0)
    assert convergence_window([1e-3, 1e-2], [1.0, None], target=0.1) is None
    assert convergence_window([], [], target=0.1) is None
    with pytest.raises(ValueError):
        convergence_window([1e-3], [], target=0.1)


def test_window_summarises_repeated_rates_by_their_median():
    # Three seeds at each rate: 1e-2 converges in 2 of 3 (median meets), 1e-1 in 1 of 3 (does not).
    lrs = [1e-3] * 3 + [1e-2] * 3 + [1e-1] * 3
    finals = [0.0, 0.0, 0.0, 0.0, 0.0, None, 0.0, None, 9.0]
    w = convergence_window(lrs, finals, target=0.01)
    assert (w.low, w.high, w.n_rates, w.decades) == (1e-3, 1e-2, 2, pytest.approx(1.0))


def test_each_run_stores_the_suites_control(tmp_path_factory):
    results = load_results(suite_storage(tmp_path_factory), "rtest")
    assert set(results["control"]) == {"random"}
