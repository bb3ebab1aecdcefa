"""A run's study in memory, written through to the storage trial by trial
(`lrbench.storage.WriteBehindStorage`): what is stored equals what Optuna stores when it drives
the storage itself, a trial in flight is not stored, and a refused write writes nothing."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from lrbench.storage import WriteBehindStorage, close_storage, open_storage


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    for step in range(3):
        trial.report(x * (step + 1), step)
    trial.set_user_attr("record", {"epochs": 3.0, "x": x})
    if x > 0.5:
        raise optuna.TrialPruned()
    return (x - 0.01) ** 2


def stored(url: str, name: str) -> list[tuple]:
    study = optuna.load_study(study_name=name, storage=url)
    return [
        (t.number, t.state, t.params, t.value, t.intermediate_values, t.user_attrs)
        for t in study.trials
    ]


@pytest.fixture
def urls(tmp_path):
    return f"sqlite:///{tmp_path / 'direct.db'}", f"sqlite:///{tmp_path / 'behind.db'}"


def test_what_is_written_behind_equals_what_optuna_stores_itself_and_resumes(urls):
    direct, behind = urls
    sampler = lambda: optuna.samplers.TPESampler(seed=3, n_startup_trials=3)  # noqa: E731
    optuna.create_study(study_name="r", storage=direct)
    for n_trials in (5, 3):  # two sittings, each with a fresh sampler, as a resumed run has
        ref = optuna.load_study(study_name="r", storage=direct, sampler=sampler())
        ref.optimize(objective, n_trials=n_trials)
    ref.set_user_attr("status", "complete")

    storage = open_storage(behind)
    optuna.create_study(study_name="r", storage=storage)
    # The second sitting copies the first's trials in and goes on from them.
    for n_trials in (5, 3):
        buffered = WriteBehindStorage(storage, "r")
        study = optuna.load_study(study_name="r", storage=buffered, sampler=sampler())
        study.optimize(objective, n_trials=n_trials)
    study.set_user_attr("status", "complete")
    close_storage(storage)

    ours, theirs = stored(behind, "r"), stored(direct, "r")
    assert {t[1] for t in theirs} == {TrialState.COMPLETE, TrialState.PRUNED}
    assert ours == theirs
    assert optuna.load_study(study_name="r", storage=behind).user_attrs == {"status": "complete"}


def test_a_trial_in_flight_is_not_stored_and_a_refused_write_writes_nothing(urls):
    _, url = urls
    storage = open_storage(url)
    optuna.create_study(study_name="r", storage=storage)
    refuse = False

    def before_write() -> None:
        if refuse:
            raise RuntimeError("claim lost")

    study = optuna.load_study(
        study_name="r",
        storage=WriteBehindStorage(storage, "r", before_write),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(objective, n_trials=2)
    in_flight = study.ask()
    in_flight.suggest_float("lr", 1e-4, 1.0, log=True)
    in_flight.report(1.0, 0)
    assert [t[0] for t in stored(url, "r")] == [0, 1]  # the two finished, not the third
    refuse = True
    with pytest.raises(RuntimeError, match="claim lost"):
        study.tell(in_flight, 0.5)
    with pytest.raises(RuntimeError, match="claim lost"):
        study.set_user_attr("status", "complete")
    assert len(stored(url, "r")) == 2
    assert optuna.load_study(study_name="r", storage=url).user_attrs == {}
    close_storage(storage)


def test_a_stored_trial_left_unfinished_must_be_failed_first(urls):
    _, url = urls
    storage = open_storage(url)
    optuna.create_study(study_name="r", storage=storage).ask()  # left RUNNING by a dead process
    with pytest.raises(ValueError, match="trial 0 is RUNNING; fail it first"):
        WriteBehindStorage(storage, "r")
    close_storage(storage)
