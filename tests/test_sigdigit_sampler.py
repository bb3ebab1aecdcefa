"""Tests for lrbench.sigdigit_sampler.SignificantDigitSampler."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import optuna
import pytest

from lrbench.errors import ConfigError
from lrbench.sigdigit_sampler import SignificantDigitSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

REPO = Path(__file__).resolve().parents[1]
OPT = 0.00041
ROUND1 = [0.009, 0.008, 0.007, 0.006, 0.005, 0.004, 0.003, 0.002, 0.001]


def closeness(lr: float, opt: float = OPT) -> float:
    """Larger is better; exactly 0 at ``opt``."""
    return -((math.log10(lr) - math.log10(opt)) ** 2)


def make_objective(direction: str = "maximize", opt: float = OPT):
    sign = 1.0 if direction == "maximize" else -1.0

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        return sign * closeness(lr, opt)

    return objective


def lrs(study: optuna.Study) -> list[float]:
    return [t.params["lr"] for t in study.trials if "lr" in t.params]


def full_run(direction: str = "maximize") -> tuple[optuna.Study, SignificantDigitSampler]:
    sampler = SignificantDigitSampler(decade=1e-4)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(make_objective(direction))  # no n_trials: stops by itself
    return study, sampler


_REFERENCE: list[float] = []


def reference_sequence() -> list[float]:
    if not _REFERENCE:
        _REFERENCE.extend(lrs(full_run()[0]))
    return _REFERENCE


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_finds_exact_optimum_and_stops_by_itself(direction: str) -> None:
    study, sampler = full_run(direction)
    values = lrs(study)
    assert study.best_params["lr"] == OPT
    # 9 + 22 + 22 new rates (the rest of each round was evaluated before).
    assert len(study.trials) == 53 <= 70
    assert len(set(values)) == len(values)
    for v in values:
        assert float(repr(v)) == v and len(repr(v)) <= 8, repr(v)
    assert sampler.is_exhausted(study)
    assert sampler.kept_rates(study) == [0.00041, 0.000411]
    assert sampler.best_rate(study) == OPT
    rounds = sampler.plan(study)
    assert [r.number for r in rounds] == [1, 2, 3]
    assert rounds[0].kept == (0.0004, 0.0005)
    assert rounds[1].kept == (0.00041, 0.00042)
    assert all(r.finished for r in rounds)
    assert values == reference_sequence()


def test_first_round_is_top_decade_descending() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(make_objective(opt=0.0031), n_trials=9)
    assert lrs(study) == ROUND1
    assert [repr(v) for v in lrs(study)] == [str(x) for x in ROUND1]


def test_second_round_rule_and_descending_merged_order() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(make_objective(opt=0.0031))
    rounds = sampler.plan(study)
    assert rounds[0].kept == (0.003, 0.004)
    # From 0.003: 0.0034, 0.0033, ..., 0.0020 (n = 4..-10); from 0.004: 0.0044 ... 0.0030.
    from_3 = [float(Decimal("0.003") + n * Decimal("0.0001")) for n in range(4, -11, -1)]
    assert from_3[0] == 0.0034 and from_3[-1] == 0.002 and len(from_3) == 15
    expected = sorted(
        set(from_3) | {float(Decimal("0.004") + n * Decimal("0.0001")) for n in range(4, -11, -1)},
        reverse=True,
    )
    assert list(rounds[1].candidates) == expected  # merged, de-duplicated, descending
    second = lrs(study)[9 : 9 + len(expected) - 3]
    # Evaluated in that order, minus the rates round 1 already evaluated (0.004, 0.003, 0.002).
    assert second == [c for c in expected if c not in ROUND1]
    assert [c for c in second if c <= 0.0034] == [c for c in from_3 if c not in ROUND1]
    assert len(set(lrs(study))) == len(lrs(study))


def test_explicit_and_default_decades() -> None:
    def first_round(low: float, high: float, **kw: object) -> list[float]:
        sampler = SignificantDigitSampler(**kw)
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("lr", low, high, log=True), n_trials=1)
        return list(sampler.plan(study)[0].candidates)

    assert first_round(1e-5, 1e-2, decade=1e-3) == ROUND1
    assert first_round(1e-5, 0.05) == [0.05, 0.04, 0.03, 0.02, 0.01]
    assert first_round(1e-5, 0.015) == ROUND1
    assert first_round(0.0025, 1e-2) == ROUND1[:7]


def test_ties_prefer_larger_rate_and_failed_pruned_scoring() -> None:
    sampler = SignificantDigitSampler(digits=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: 1.0 + 0 * t.suggest_float("lr", 1e-5, 1e-2, log=True))
    assert sampler.kept_rates(study) == [0.009, 0.008]

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        if lr == 0.004:  # would rank second: fails instead
            raise RuntimeError("diverged")
        if lr == 0.003:  # the best; pruned after reporting its best value first
            trial.report(closeness(lr, 0.0031), 0)
            trial.report(-100.0, 1)
            raise optuna.TrialPruned()
        return closeness(lr, 0.0031)

    sampler = SignificantDigitSampler(digits=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, catch=(RuntimeError,))
    assert sampler.kept_rates(study) == [0.003, 0.002]


def test_ask_and_tell() -> None:
    sampler = SignificantDigitSampler(decade=1e-4)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    objective = make_objective("minimize")
    n = 0
    while not sampler.is_exhausted(study):
        trial = study.ask()
        study.tell(trial, objective(trial))
        n += 1
        assert n <= 70
    assert lrs(study) == reference_sequence()
    # Asked after completion: the best rate found so far.
    trial = study.ask()
    assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == OPT
    study.tell(trial, 0.0)


def test_ask_and_tell_out_of_order_does_not_wait() -> None:
    sampler = SignificantDigitSampler(wait_timeout=5.0)
    study = optuna.create_study(sampler=sampler)
    t0, t1 = study.ask(), study.ask()
    assert t1.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.009
    assert t0.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.008
    batch = [study.ask() for _ in range(7)]
    assert [t.suggest_float("lr", 1e-5, 1e-2, log=True) for t in batch] == ROUND1[2:]
    extra = study.ask()  # round 1 is handed out, nothing told: cannot wait for itself
    with pytest.warns(UserWarning, match="cannot finish meanwhile"):
        value = extra.suggest_float("lr", 1e-5, 1e-2, log=True)
    assert 1e-5 <= value <= 1e-2


def test_wait_times_out_instead_of_hanging() -> None:
    sampler = SignificantDigitSampler(wait_timeout=0.2, poll_interval=0.02)
    study = optuna.create_study(sampler=sampler)
    # A RUNNING trial from "another worker" that never suggests its lr.
    study._storage.create_new_trial(study._study_id)
    trial = study.ask()
    with pytest.warns(UserWarning, match="timed out"):
        value = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    assert 1e-5 <= value <= 1e-2 and value not in ROUND1
    study.tell(trial, 0.0)
    trial = study.ask()  # the stuck trial is no longer waited for
    assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.009


def test_threads_share_one_study_without_duplicates() -> None:
    sampler = SignificantDigitSampler(decade=1e-4, poll_interval=0.005)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = make_objective()

    def slow(trial: optuna.Trial) -> float:
        value = objective(trial)
        time.sleep(0.003)
        return value

    study.optimize(slow, n_jobs=2, n_trials=100)
    values = lrs(study)
    assert len(values) == len(set(values))
    assert sorted(values) == sorted(reference_sequence())
    assert study.best_params["lr"] == OPT


def test_after_completion_gets_best_rate_and_stops_again() -> None:
    study, _ = full_run()
    study.optimize(make_objective(), n_trials=5)
    assert len(study.trials) == 54
    assert study.trials[-1].params["lr"] == OPT


@pytest.fixture
def db_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A folder for SQLite files: RAM-backed /dev/shm when there is one (no fsync cost)."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="sigdigit-", dir="/dev/shm"))
        yield path
        shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path


def test_resume_with_new_sampler_instance(db_dir: Path) -> None:
    url = "sqlite:///" + str(db_dir / "resume.db")
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(
        study_name="s",
        storage=storage,
        direction="maximize",
        sampler=SignificantDigitSampler(decade=1e-4),
    )
    study.optimize(make_objective(), n_trials=15)
    assert len(study.trials) == 15
    del study, storage

    sampler = SignificantDigitSampler(decade=1e-4)
    study = optuna.load_study(study_name="s", storage=url, sampler=sampler)
    study.optimize(make_objective())
    assert lrs(study) == reference_sequence()
    assert study.best_params["lr"] == OPT
    assert sampler.is_exhausted(study)


WORKER = textwrap.dedent(
    """
    import math, os, sys, time
    import optuna

    url, me, other, repo = sys.argv[1:5]
    from lrbench.sigdigit_sampler import SignificantDigitSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    open(me, "w").close()
    deadline = time.time() + 60
    while not os.path.exists(other) and time.time() < deadline:
        time.sleep(0.01)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.015)
        return -(math.log10(lr) - math.log10(0.00041)) ** 2

    study = optuna.load_study(
        study_name="mp", storage=url,
        sampler=SignificantDigitSampler(decade=1e-4, poll_interval=0.01, wait_timeout=60),
    )
    study.optimize(objective, n_trials=100)
    """
)


def test_two_processes_share_sqlite_without_duplicates(db_dir: Path) -> None:
    url = "sqlite:///" + str(db_dir / "mp.db")
    optuna.create_study(study_name="mp", storage=url, direction="maximize")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    ready = [str(db_dir / "ready0"), str(db_dir / "ready1")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, ready[i], ready[1 - i], str(REPO)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    sampler = SignificantDigitSampler(decade=1e-4)
    study = optuna.load_study(study_name="mp", storage=url, sampler=sampler)
    values = lrs(study)
    twice = [
        (t.number, t.state.name, t.params["lr"], str(t.datetime_start), str(t.datetime_complete))
        for t in study.trials
        if values.count(t.params.get("lr")) > 1
    ]
    assert not twice, f"learning rates evaluated twice: {twice}\n{outputs}"
    assert sorted(values) == sorted(reference_sequence())
    assert sampler.is_exhausted(study)
    assert study.best_params["lr"] == OPT
    pids = [t.user_attrs.get("pid") for t in study.trials if "lr" in t.params]
    assert all(pids.count(pid) >= 5 for pid in set(pids)) and len(set(pids)) == 2  # interleaved
    # Trials without an lr can only be ones (at most one per worker) that started before the
    # search finished and then found nothing left to evaluate.
    others = [t for t in study.trials if "lr" not in t.params]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in others)
    assert len(others) <= 2


def test_enqueued_rate_is_evaluated_first_and_once() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"lr": 0.005})
    study.optimize(make_objective(opt=0.0031), n_trials=9)
    assert lrs(study) == [0.005] + [x for x in ROUND1 if x != 0.005]
    assert sampler.plan(study)[0].finished


def test_other_parameters_go_to_independent_sampler() -> None:
    calls: list[str] = []

    class Recording(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            calls.append(name)
            return super().sample_independent(study, trial, name, dist)

    sampler = SignificantDigitSampler(independent_sampler=Recording(seed=0))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        layers = trial.suggest_int("layers", 1, 3)
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)  # after lr: delegated
        return closeness(lr, 0.0031) + 0 * (layers + wd)

    study.optimize(objective, n_trials=12)
    assert lrs(study)[:9] == ROUND1
    assert set(calls) == {"layers", "weight_decay"} and len(calls) == 24
    assert all(t.params["layers"] in (1, 2, 3) for t in study.trials)
    assert sampler.infer_relative_search_space(study, study.trials[0]) == {}


def test_space_without_float_learning_rate_raises() -> None:
    study = optuna.create_study(sampler=SignificantDigitSampler())
    with pytest.raises(ValueError, match="without a float learning-rate parameter"):
        study.optimize(lambda t: float(t.suggest_int("layers", 1, 3)), n_trials=1)

    study = optuna.create_study(sampler=SignificantDigitSampler(param_name="layers"))
    with pytest.raises(ValueError, match="is a IntDistribution"):
        study.optimize(lambda t: float(t.suggest_int("layers", 1, 3)), n_trials=1)

    study = optuna.create_study(sampler=SignificantDigitSampler())

    def ambiguous(trial: optuna.Trial) -> float:
        trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        return trial.suggest_float("lr", 1e-5, 1e-2, log=True)

    with pytest.raises(ValueError, match="param_name="):
        study.optimize(ambiguous, n_trials=1)


@pytest.mark.parametrize(
    "kwargs", [{"k": 0}, {"digits": 0}, {"decade": 2e-3}, {"decade": -1e-3}, {"poll_interval": 0}]
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SignificantDigitSampler(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SignificantDigitSampler(**kwargs)  # type: ignore[arg-type]
