"""The stored record: written through a real Optuna study, read back typed, defaults in one place."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lrbench.storage import records
from lrbench.storage.records import (
    RUN_SETTINGS,
    EpochEntry,
    EpochKeys,
    RunKeys,
    RunRecord,
    TrialKeys,
    TrialRecord,
    write_run_settings,
)
from lrbench.strategies import RunContext, get_strategy
from lrbench.tasks import get_task
from lrbench.training import EpochRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)


def epoch(n: int, val: float, **extras: float) -> EpochRecord:
    return EpochRecord(n, 0.5 / n, val, 1e-3, 10 * n, float(n), 0.25, 0.125, dict(extras))


def test_a_trial_record_round_trips_through_an_optuna_study():
    study = optuna.create_study()
    trial = study.ask()
    history = (
        EpochEntry.from_record(epoch(1, 3.0, elbo=4.5)),
        EpochEntry.from_record(epoch(2, math.nan)),  # a diverged epoch
    )
    written = TrialRecord(
        epochs=2.0,
        steps=20,
        planned_epochs=5,
        diverged=True,
        cut=False,
        pruned=False,
        test=2.5,
        best_val=3.0,
        best_epoch=1,
        initial_val=9.0,
        seconds=0.5,
        eval_seconds=0.25,
        schedule="constant",
        optimizer="adam",
        phase="search",
        history=history,
    )
    written.write(trial)
    study.tell(trial, 3.0)
    frozen = study.trials[0]
    back = TrialRecord.from_frozen(frozen)
    assert back == written
    # One user attr, one storage write: a dict of plain keys, null for non-finite.
    assert list(frozen.user_attrs) == ["record"]
    attrs = frozen.user_attrs["record"]
    assert attrs["epochs"] == 2.0 and attrs["steps"] == 20 and attrs["planned_epochs"] == 5
    assert attrs["history"][0] == {
        "epoch": 1,
        "train_loss": 0.5,
        "val": 3.0,
        "lr": 1e-3,
        "steps": 10,
        "epochs_done": 1.0,
        "seconds": 0.25,
        "eval_seconds": 0.125,
        "extras": {"elbo": 4.5},
    }
    assert attrs["history"][1]["val"] is None and "extras" not in attrs["history"][1]
    assert back.final_val is None and back.total_seconds == 0.75


def test_a_trial_stored_with_one_user_attr_per_key_reads_the_same():
    # Suites stored before the record was one dict kept each key as its own user attr.
    written = TrialRecord(epochs=3.0, steps=30, best_val=0.5, phase="search", optimizer=None)
    study = optuna.create_study()
    trial = study.ask()
    for key, value in written.to_attrs().items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.5)
    assert TrialRecord.from_frozen(study.trials[0]) == written


def test_a_trial_that_stored_nothing_reads_with_the_defaults():
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    rec = TrialRecord.from_frozen(study.trials[0])
    assert (rec.epochs, rec.steps, rec.diverged, rec.cut, rec.pruned) == (
        0.0,
        0,
        False,
        False,
        False,
    )
    assert rec.seconds is None and rec.total_seconds == 0.0
    assert rec.planned_epochs is None and rec.history == () and rec.final_val is None
    # A pruned trial that stored no `pruned` attr (an old suite) reads as pruned.
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    assert TrialRecord.from_frozen(study.trials[1]).pruned is True


def test_an_old_history_entry_without_extras_reads_as_empty_extras():
    entry = EpochEntry.from_dict({"epoch": 3, "val": 1.5, "steps": 30, "epochs_done": 3.0})
    assert entry.extras == {} and entry.val == 1.5 and entry.seconds == 0.0


def test_run_record_reads_a_study_and_its_storage_with_name_fallbacks(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(storage=url, study_name="quick/digits/grid/seed3")
    records.write_run_attrs(study, {RunKeys.TARGET: 0.9, RunKeys.DIRECTION: "maximize"})
    records.charge_overhead(study, steps=30, steps_per_epoch=20, seconds=1.5)
    records.charge_overhead(study, steps=10, steps_per_epoch=20, seconds=0.5)
    run = RunRecord.from_storage(url, "quick/digits/grid/seed3")
    assert run == RunRecord.from_study(study)
    assert (run.suite, run.task, run.strategy, run.seed) == ("quick", "digits", "grid", 3)
    assert (run.overhead_steps, run.overhead_epochs, run.overhead_seconds) == (40, 2.0, 2.0)
    assert run.target == 0.9 and run.direction == "maximize"
    assert math.isnan(run.budget_epochs) and run.status == "unknown" and run.range_test is None
    bare = RunRecord.from_attrs("not-a-suite-name", {})
    assert (bare.task, bare.seed, bare.direction, bare.overhead_epochs) == ("", 0, "minimize", 0.0)


def test_failing_interrupted_trials_uses_only_running_ones():
    study_storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=study_storage)
    done = study.ask()
    study.tell(done, 1.0)
    study.ask()  # left RUNNING, as by a killed process
    assert records.fail_interrupted_trials(study, study_storage) == [1]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.user_attrs[RunKeys.INTERRUPTED_TRIALS] == [1]
    assert study.trials[1].user_attrs[TrialKeys.FAIL_REASON] == records.LOST_WORKER
    assert records.fail_interrupted_trials(study, study_storage) == []


def test_planned_epochs_are_the_trial_length_or_the_budget_left_for_an_exploit_trial():
    task = get_task("functions", function="bowl")
    data = task.prepare(torch.device("cpu"))
    study = optuna.create_study(direction=task.direction)
    ctx = RunContext(task, data, study, budget_epochs=30, epochs_per_trial=2, low=1e-3, high=0.1)
    get_strategy("sigdigit", decade=0.01, digits=1).run(ctx)
    spe, budget = data.steps_per_epoch, ctx.budget_steps()
    spent, phases = 0, set()
    for t in study.trials:
        rec = TrialRecord.from_frozen(t)
        phases.add(rec.phase)
        # The exploit phase trains each rate for the budget left when it started.
        expected = math.ceil((budget - spent) / spe) if rec.phase == "exploit" else 2
        assert rec.planned_epochs == expected, (t.number, rec.phase)
        spent += rec.steps
    assert phases == {"search", "exploit"}


def test_keys_are_unique_within_each_namespace():
    for keys in (TrialKeys, EpochKeys, RunKeys):
        values = [v for k, v in vars(keys).items() if k.isupper()]
        assert len(values) == len(set(values)), keys.__name__
    assert TrialKeys.HISTORY == "history" and RunKeys.OVERHEAD_EPOCHS == "overhead_epochs"


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_non_finite_extras_are_stored_as_null(value):
    d = EpochEntry.from_record(epoch(1, 1.0, bound=value)).to_dict()
    assert d["extras"] == {"bound": None}


def test_run_settings_are_one_attr_and_runs_stored_before_read_the_same():
    settings = {key: f"value {i}" for i, key in enumerate(RUN_SETTINGS)}
    new = optuna.create_study()
    write_run_settings(new, settings)
    assert set(new.user_attrs) == {RunKeys.SETTINGS, RunKeys.SUITE}  # two writes, not 23
    old = optuna.create_study()  # as suites stored before SETTINGS existed hold them
    for key in RUN_SETTINGS:
        old.set_user_attr(key, settings[key])
    assert RunRecord.from_study(new).attrs == RunRecord.from_study(old).attrs == settings
    assert RunRecord.from_study(new).settings_complete
    # Such a run resumed as a stub takes the suite's settings as they are now: those win.
    write_run_settings(old, {**settings, RunKeys.BUDGET_EPOCHS: 99})
    assert RunRecord.from_study(old).budget_epochs == 99
