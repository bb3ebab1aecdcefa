"""Tests for lrbench.tools._sigdigit_sampler.SignificantDigitSampler."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from decimal import Decimal
from pathlib import Path

import optuna
import pytest

import lrbench
from lrbench.errors import ConfigError
from lrbench.tools import SignificantDigitSampler
from lrbench.tools._sigdigit_sampler import _is_lr_name

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


def desc(high: str, low: str, step: str) -> list[float]:
    """high, high - step, ..., low, exactly (decimal arithmetic)."""
    out, v = [], Decimal(high)
    while v >= Decimal(low):
        out.append(float(str(v)))
        v -= Decimal(step)
    return out


def evaluation_order(*lists: list[float]) -> list[float]:
    """The lists concatenated, each rate once (the first time it appears)."""
    return list(dict.fromkeys(x for lst in lists for x in lst))


def rounds_of(sampler: SignificantDigitSampler, study: optuna.Study) -> list[list[list[float]]]:
    return [[list(lst) for lst in r.lists] for r in sampler.plan(study)]


@pytest.mark.parametrize(
    ("opt", "low", "high", "expected"),
    [
        (  # decade 1e-3: 0.00041 is only reachable at the third decimal place after it
            0.00041,
            1e-4,
            1e-2,
            [
                [ROUND1],
                [desc("0.0014", "0.0001", "0.0001"), desc("0.0024", "0.0010", "0.0001")],
                [desc("0.00044", "0.00031", "0.00001"), desc("0.00054", "0.00040", "0.00001")],
            ],
        ),
        (
            0.00038,
            1e-4,
            1e-2,
            [
                [ROUND1],
                [desc("0.0014", "0.0001", "0.0001"), desc("0.0024", "0.0010", "0.0001")],
                [desc("0.00044", "0.00030", "0.00001"), desc("0.00034", "0.00021", "0.00001")],
            ],
        ),
        (  # decade 1e-4 (2e-4 <= high = 1e-3 < 2e-3)
            0.00041,
            1e-5,
            1e-3,
            [
                [desc("0.0009", "0.0001", "0.0001")],
                [desc("0.00044", "0.00031", "0.00001"), desc("0.00054", "0.00040", "0.00001")],
                [
                    desc("0.000414", "0.000401", "0.000001"),
                    desc("0.000424", "0.000410", "0.000001"),
                ],
            ],
        ),
        (
            0.00038,
            1e-5,
            1e-3,
            [
                [desc("0.0009", "0.0001", "0.0001")],
                [desc("0.00044", "0.00030", "0.00001"), desc("0.00034", "0.00021", "0.00001")],
                [
                    desc("0.000384", "0.000371", "0.000001"),
                    desc("0.000394", "0.000380", "0.000001"),
                ],
            ],
        ),
    ],
)
def test_each_round_refines_one_decimal_place_of_the_first_decade(
    opt: float, low: float, high: float, expected: list[list[list[float]]]
) -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: closeness(t.suggest_float("lr", low, high, log=True), opt))
    assert rounds_of(sampler, study) == expected
    assert lrs(study) == evaluation_order(*(lst for rnd in expected for lst in rnd))
    assert study.best_params["lr"] == opt and sampler.best_rate(study) == opt
    assert all(repr(v) == str(Decimal(repr(v))) and len(repr(v)) <= 8 for v in lrs(study))
    assert sampler.is_exhausted(study) and sampler.surplus_trials(study) == []


def test_the_seed_runs_rounds():
    """Round 1 keeps 0.002 and 0.001, round 2 keeps 0.0007 and 0.0004 (the seed's run)."""
    scores = {0.002: 10.0, 0.001: 9.0, 0.0007: 20.0, 0.0004: 19.0, 0.00041: 30.0, 0.00038: 29.0}
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: scores.get(t.suggest_float("lr", 1e-4, 1e-2, log=True), -1.0))
    expected = [
        [ROUND1],
        [desc("0.0024", "0.0010", "0.0001"), desc("0.0014", "0.0001", "0.0001")],
        [desc("0.00074", "0.00061", "0.00001"), desc("0.00044", "0.00031", "0.00001")],
    ]
    assert rounds_of(sampler, study) == expected
    assert [len(lst) for rnd in expected[1:] for lst in rnd] == [15, 14, 14, 14]
    assert lrs(study) == evaluation_order(*(lst for rnd in expected for lst in rnd))
    assert [r.kept for r in sampler.plan(study)] == [
        (0.002, 0.001),
        (0.0007, 0.0004),
        (0.00041, 0.00038),
    ]
    assert sampler.kept_rates(study) == [0.00041, 0.00038]


def test_rounds_stay_inside_the_range() -> None:
    sampler = SignificantDigitSampler(digits=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: closeness(t.suggest_float("lr", 0.0015, 0.0082, log=True), 0.0081))
    assert lrs(study)[:7] == ROUND1[1:8]
    # From 0.008 and 0.007: 0.0084 ... 0.0070 without what lies above 0.0082, and
    # 0.0074 ... 0.0061 (0.006 was tried in round 1 and not kept).
    assert rounds_of(sampler, study)[1] == [
        desc("0.0082", "0.0070", "0.0001"),
        desc("0.0074", "0.0061", "0.0001"),
    ]
    assert all(0.0015 <= v <= 0.0082 for v in lrs(study))


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


@pytest.mark.filterwarnings("ignore::lrbench.SigDigitSurplusWarning")  # surplus on purpose
def test_fifty_asks_before_any_tell_return_at_once() -> None:
    sampler = SignificantDigitSampler(decade=1e-3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = time.monotonic()
    trials = [study.ask() for _ in range(50)]
    # Suggested last to first: trial i still gets the i-th free candidate (reserved by number).
    values = [t.suggest_float("lr", 1e-5, 1e-2, log=True) for t in reversed(trials)][::-1]
    assert time.monotonic() - start < 1.0
    assert values[:9] == ROUND1
    surplus = values[9:]  # the round has no free candidate: the independent sampler's rates
    assert all(1e-5 <= v <= 1e-2 and v not in ROUND1 for v in surplus)
    assert len(set(values)) == 50
    assert sampler.surplus_trials(study) == list(range(9, 50))
    for t, v in zip(trials, values):
        study.tell(t, closeness(v, 0.0031) if v in ROUND1 else 0.0)  # surplus: ranks nothing
    assert sampler.kept_rates(study) == [0.003, 0.004]
    trial = study.ask()
    assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.0034  # round 2 goes on


def test_unfinished_trial_reserves_instead_of_blocking() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(sampler=sampler)
    stuck = study.ask()  # never suggests, never finishes (a worker that hangs)
    trial = study.ask()
    assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.008  # 0.009 reserved for it
    study.tell(stuck, state=optuna.trial.TrialState.FAIL)
    trial = study.ask()
    assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.009  # released


@pytest.mark.filterwarnings("ignore::lrbench.SigDigitSurplusWarning")  # surplus on purpose
@pytest.mark.parametrize("holder_thread", ["other", "same"])
def test_wait_timeout_waits_only_for_other_workers(holder_thread: str) -> None:
    sampler = SignificantDigitSampler(wait_timeout=0.3, poll_interval=0.02)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for lr in ROUND1[:8]:
        trial = study.ask()
        assert trial.suggest_float("lr", 1e-5, 1e-2, log=True) == lr
        study.tell(trial, closeness(lr, 0.0031))
    holder: list[optuna.Trial] = []  # will evaluate 0.001, the round's last candidate
    if holder_thread == "other":
        worker = threading.Thread(target=lambda: holder.append(study.ask()))
        worker.start()
        worker.join()
    else:
        holder.append(study.ask())
    assert holder[0].suggest_float("lr", 1e-5, 1e-2, log=True) == 0.001
    start = time.monotonic()
    surplus = study.ask().suggest_float("lr", 1e-5, 1e-2, log=True)
    elapsed = time.monotonic() - start
    assert surplus not in ROUND1
    if holder_thread == "other":
        assert 0.3 <= elapsed < 2.0  # waited for the other worker, then gave up
    else:
        assert elapsed < 0.2  # a trial of its own thread cannot finish meanwhile
    study.tell(holder[0], closeness(0.001, 0.0031))
    assert study.ask().suggest_float("lr", 1e-5, 1e-2, log=True) == 0.0034


@pytest.mark.filterwarnings("ignore::lrbench.SigDigitSurplusWarning")  # surplus on purpose
@pytest.mark.parametrize("wait", [0.0, 30.0])
def test_threads_share_one_study_without_duplicates(wait: float) -> None:
    sampler = SignificantDigitSampler(decade=1e-4, poll_interval=0.005, wait_timeout=wait)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    objective = make_objective()

    def slow(trial: optuna.Trial) -> float:
        value = objective(trial)
        time.sleep(0.003)
        return value

    study.optimize(slow, n_jobs=2, n_trials=150)
    surplus = set(sampler.surplus_trials(study))
    search = [t.params["lr"] for t in study.trials if "lr" in t.params and t.number not in surplus]
    assert len(search) == len(set(search))
    assert sorted(search) == sorted(reference_sequence())
    assert not set(search) & {t.params["lr"] for t in study.trials if t.number in surplus}
    assert study.best_params["lr"] == OPT and sampler.is_exhausted(study)
    if wait:  # the idle thread waited for the other one instead of taking surplus trials
        assert not surplus


def test_after_completion_gets_best_rate_and_stops_again() -> None:
    study, _ = full_run()
    study.optimize(make_objective(), n_trials=5)
    assert len(study.trials) == 54
    assert study.trials[-1].params["lr"] == OPT
    assert SignificantDigitSampler(decade=1e-4).surplus_trials(study) == [53]


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
    from lrbench.tools._sigdigit_sampler import SignificantDigitSampler

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


def test_a_queued_rate_is_not_taken_by_an_earlier_trial() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    first = study.ask()
    study.enqueue_trial({"lr": 0.009})  # queued after `first` was asked
    assert first.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.008
    queued = study.ask()
    assert queued.suggest_float("lr", 1e-5, 1e-2, log=True) == 0.009


def test_hyperband_brackets_do_not_hide_trials_from_the_search() -> None:
    sampler = SignificantDigitSampler(decade=1e-4)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        for step in range(9):
            trial.report(closeness(lr) - 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return closeness(lr)

    study.optimize(objective, n_trials=200)
    assert len(lrs(study)) == len(set(lrs(study))) <= 53
    assert sampler.is_exhausted(study) and sampler.surplus_trials(study) == []


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


@pytest.mark.filterwarnings("ignore::lrbench.SigDigitDelegationWarning")  # no lr on purpose
def test_space_without_float_learning_rate_raises() -> None:
    # No float to search: every parameter goes to the independent sampler.
    sampler = SignificantDigitSampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("layers", 1, 3)), n_trials=3)
    assert len(study.trials) == 3 and sampler.plan(study) == []

    study = optuna.create_study(sampler=SignificantDigitSampler(param_name="layers"))
    with pytest.raises(ValueError, match="is a IntDistribution"):
        study.optimize(lambda t: float(t.suggest_int("layers", 1, 3)), n_trials=1)

    study = optuna.create_study(sampler=SignificantDigitSampler())

    def ambiguous(trial: optuna.Trial) -> float:  # two learning-rate names, neither exact
        trial.suggest_float("actor_lr", 1e-6, 1e-2, log=True)
        return trial.suggest_float("critic_lr", 1e-5, 1e-2, log=True)

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


@pytest.mark.parametrize(
    "name",
    [
        "lr",
        "LR",
        "learning_rate",
        "adam_lr",
        "lr_actor",
        "encoder.lr",
        "head-lr",
        "max_lr",
        "base_learning_rate",
        "learning_rate_init",
        "Encoder.Learning_Rate",
        "lr_min",
    ],
)
def test_names_that_say_learning_rate_are_claimed(name: str) -> None:
    assert _is_lr_name(name)
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)  # log, not claimed
        return closeness(trial.suggest_float(name, 1e-5, 1e-2), 0.0031) + 0 * wd

    study.optimize(objective, n_trials=9)  # a linear float named like a rate is searched
    assert [t.params[name] for t in study.trials] == ROUND1
    assert sampler.plan(study)[0].candidates == tuple(ROUND1)


@pytest.mark.parametrize(
    "name",
    [
        "C",
        "svc_c",
        "clr_gamma",
        "weight_decay",
        "lr_decay",
        "learning_rate_warmup",
        "lr0",
        "flr",
        "alr_x",
        "x",
        "rate",
        "learning",
    ],
)
def test_names_that_merely_contain_the_letters_are_not_claimed(name: str) -> None:
    assert not _is_lr_name(name)
    sampler = SignificantDigitSampler()
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the delegation warning has its own tests
        study.optimize(lambda t: t.suggest_float(name, 1e-5, 1e-2, log=True), n_trials=9)
    assert sampler.plan(study) == []
    assert [t.params[name] for t in study.trials] != ROUND1


def test_an_exact_lr_wins_over_other_learning_rate_names() -> None:
    sampler = SignificantDigitSampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        lr_min = trial.suggest_float("lr_min", 1e-7, 1e-5, log=True)  # delegated
        return closeness(lr, 0.0031) + 0 * lr_min

    study.optimize(objective, n_trials=9)
    assert lrs(study) == ROUND1
    assert SignificantDigitSampler().plan(study)[0].candidates == tuple(ROUND1)  # from storage


# --------------------------------------------------------------------------------------------- #
# The shapes of Optuna's own examples (optuna-examples), with this sampler in place of theirs
# --------------------------------------------------------------------------------------------- #
def _of(record: pytest.WarningsRecorder, category: type[Warning]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, category)]


@pytest.mark.parametrize("c_name", ["svc_c", "C"])
def test_sklearn_example_shape_claims_nothing_and_warns_once(
    c_name: str, recwarn: pytest.WarningsRecorder
) -> None:
    # sklearn/sklearn_simple.py: a classifier, then an SVC's C in [1e-10, 1e10] (log) or a
    # forest's depth. C is not a learning rate, whatever its scale.
    sampler = SignificantDigitSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("classifier", ["SVC", "RandomForest"]) == "SVC":
            return -abs(math.log10(trial.suggest_float(c_name, 1e-10, 1e10, log=True)))
        return float(trial.suggest_int("rf_max_depth", 2, 32, log=True))

    study.optimize(objective, n_trials=25)
    delegation = _of(recwarn, lrbench.SigDigitDelegationWarning)
    assert len(delegation) == 1
    assert "param_name=" in delegation[0] and "RandomSampler" in delegation[0]
    assert not _of(recwarn, lrbench.SigDigitSurplusWarning)
    assert sampler.plan(study) == [] and sampler.surplus_trials(study) == []
    cs = [t.params[c_name] for t in study.trials if c_name in t.params]
    assert cs and not {9e9, 8e9, 1e9} & set(cs)  # not the old round 1 of C's decade


def test_quadratic_example_shape_warns_once_then_samples_at_random(
    recwarn: pytest.WarningsRecorder,
) -> None:
    # basic/quadratic.py: x and y uniform, no learning rate.
    sampler = SignificantDigitSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: t.suggest_float("x", -100, 100) ** 2 + t.suggest_float("y", -1, 1), n_trials=20
    )
    delegation = _of(recwarn, lrbench.SigDigitDelegationWarning)
    assert len(delegation) == 1 and "trial 0 (x, y)" in delegation[0]
    xs = [t.params["x"] for t in study.trials]
    assert len(set(xs)) == 20 and sampler.plan(study) == []
    # Another instance (say, a resumed process) warns once again.
    other = SignificantDigitSampler(seed=1)
    optuna.create_study(sampler=other).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(_of(recwarn, lrbench.SigDigitDelegationWarning)) == 2


def test_pytorch_example_shape_searches_only_lr(recwarn: pytest.WarningsRecorder) -> None:
    # pytorch/pytorch_simple.py: layers, units and dropout per layer, an optimizer, a log lr in
    # [1e-5, 1e-1]; intermediate accuracies reported and pruned by MedianPruner, a timeout.
    sampler = SignificantDigitSampler(seed=0)
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=optuna.pruners.MedianPruner()
    )

    def objective(trial: optuna.Trial) -> float:
        n_layers = trial.suggest_int("n_layers", 1, 3)
        for i in range(n_layers):
            trial.suggest_int(f"n_units_l{i}", 4, 128, log=True)
            trial.suggest_float(f"dropout_l{i}", 0.2, 0.5)
        trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        accuracy = 0.0
        for epoch in range(3):
            accuracy = (epoch + 1) / 3 * (1 + closeness(lr, 0.0031) / 20)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    study.optimize(objective, n_trials=12, timeout=60)
    first = sampler.plan(study)[0]
    assert first.candidates == (0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01)
    assert tuple(lrs(study)[:9]) == first.candidates
    dropouts = {t.params["dropout_l0"] for t in study.trials}
    assert len(dropouts) == 12 and not dropouts & set(first.candidates)  # delegated
    assert not _of(recwarn, lrbench.SigDigitDelegationWarning)
    assert not _of(recwarn, lrbench.SigDigitSurplusWarning)


def test_each_surplus_trial_is_warned_as_it_happens(recwarn: pytest.WarningsRecorder) -> None:
    # One round of nine; the round's last candidate trains long, so the other worker's
    # trials meanwhile find no free candidate: surplus trials, each warned.
    sampler = SignificantDigitSampler(k=1, digits=1, decade=1e-3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        time.sleep(0.4 if lr == ROUND1[-1] else 0.005)
        return closeness(lr, 0.0031)

    study.optimize(objective, n_jobs=2, n_trials=60)
    surplus = sampler.surplus_trials(study)
    assert surplus and sampler.is_exhausted(study)
    # A trial asked after the search ended repeats the best rate (listed, not warned).
    random_rate = [n for n in surplus if study.trials[n].params["lr"] not in ROUND1]
    messages = _of(recwarn, lrbench.SigDigitSurplusWarning)
    assert len(messages) == len(random_rate) >= 1
    warned = sorted(int(m.split("trial ")[1].split(" ")[0]) for m in messages)
    assert warned == random_rate
    assert all("round 1" in m and "wait_timeout=" in m and "RandomSampler" in m for m in messages)
    assert not _of(recwarn, lrbench.SigDigitDelegationWarning)


def test_user_attr_says_when_the_best_trial_is_a_surplus_trial() -> None:
    sampler = SignificantDigitSampler(k=1, digits=1, decade=1e-3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    held = [study.ask() for _ in ROUND1]  # the whole round is running
    assert [t.suggest_float("lr", 1e-5, 1e-2, log=True) for t in held] == ROUND1
    extra = study.ask()
    with pytest.warns(lrbench.SigDigitSurplusWarning, match=f"trial {extra.number} is a surplus"):
        rate = extra.suggest_float("lr", 1e-5, 1e-2, log=True)
    assert rate not in ROUND1 and sampler.surplus_trials(study) == [extra.number]
    study.tell(held[0], -5.0)
    assert "sigdigit_best_is_surplus" not in study.user_attrs  # a searched trial is best
    study.tell(extra, 1.0)  # the surplus trial's rate happens to score best
    assert study.best_trial.number == extra.number
    assert study.user_attrs["sigdigit_best_is_surplus"] == extra.number
    study.tell(held[1], 0.5)  # not better: the surplus trial stays best
    assert study.user_attrs["sigdigit_best_is_surplus"] == extra.number
    study.tell(held[2], 2.0)  # a searched trial is best again
    assert study.best_trial.number == held[2].number
    assert study.user_attrs["sigdigit_best_is_surplus"] is None
