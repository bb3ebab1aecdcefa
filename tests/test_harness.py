"""lrbench run: suites into an Optuna storage, budgets, resume, interruption, workers, bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lrbench.cli import main
from lrbench.errors import ConfigError
from lrbench.running import load_suite, run_one, run_suite
from lrbench.storage import open_storage
from lrbench.storage.records import is_run_study_name, record_attrs, run_attrs

TINY = """
[suite]
name = "tiny"
seeds = [0, 1]
budget_epochs = 12

[tasks.digits]
target = 0.95
epochs_per_trial = 4
low = 1e-4
high = 1.0

[tasks.bowl]
task = "functions"
options = { function = "bowl" }
target = 0.01
epochs_per_trial = 3
budget_epochs = 10
low = 1e-3
high = 0.1

[[strategies]]
name = "tpe"
n_startup_trials = 2

[[strategies]]
name = "one_cycle"
num_iter = 10
"""


def write_suite(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def trials_by_study(url: str) -> dict[str, list[tuple]]:
    """Every study's trials as comparable tuples (state, lr, value, epochs), in number order."""
    out = {}
    for summary in run_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        out[summary.study_name] = [
            (t.state, t.params.get("lr"), t.value, record_attrs(t.user_attrs).get("epochs"))
            for t in study.trials
        ]
    return out


def run_summaries(url: str) -> list:
    """The run studies (not the coordinating study of the workers' claims)."""
    return [s for s in optuna.get_all_study_summaries(url) if is_run_study_name(s.study_name)]


def spent_epochs(study: optuna.Study) -> float:
    return study.user_attrs.get("overhead_epochs", 0.0) + sum(
        record_attrs(t.user_attrs).get("epochs", 0.0) for t in study.trials
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    suite = write_suite(tmp)
    url = f"sqlite:///{tmp / 'tiny.db'}"
    run_suite(suite, storage=url, device="cpu", progress=False)
    return suite, url


def test_every_run_is_a_study_with_the_documented_name(tiny_run):
    _, url = tiny_run
    names = sorted(s.study_name for s in run_summaries(url))
    assert names == sorted(
        f"tiny/{t}/{s}/seed{k}"
        for t in ("digits", "bowl")
        for s in ("tpe", "one_cycle")
        for k in (0, 1)
    )
    for name in names:
        study = optuna.load_study(study_name=name, storage=url)
        assert study.user_attrs["status"] == "complete"
        assert run_attrs(study.user_attrs)["seed"] == int(name[-1])


def test_each_run_was_claimed_once_and_its_claim_completed(tiny_run):
    _, url = tiny_run
    claims = optuna.load_study(study_name="tiny/_runs", storage=url).trials
    assert sorted(t.user_attrs["run"] for t in claims) == sorted(
        s.study_name for s in run_summaries(url)
    )
    assert {t.state for t in claims} == {TrialState.COMPLETE}


def test_budgets_are_honoured_to_the_epoch(tiny_run):
    _, url = tiny_run
    for summary in run_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        attrs = run_attrs(study.user_attrs)
        budget = attrs["budget_epochs"]
        spent = spent_epochs(study)
        assert spent <= budget + 1e-9, summary.study_name
        if attrs["strategy"] == "tpe":
            # A search spends its whole budget; the last trial is cut at it.
            assert spent == pytest.approx(budget, abs=1e-9)
            steps = sum(record_attrs(t.user_attrs).get("steps", 0) for t in study.trials)
            assert steps == round(budget * attrs["steps_per_epoch"])
        else:
            # Range test steps are charged before the one training trial.
            rt = study.user_attrs["range_test"]
            assert study.user_attrs["overhead_steps"] == rt["num_steps"] == len(rt["lrs"])
            assert rt["num_steps"] == 10 or rt["stopped_early"]
            assert len(study.trials) == 1


def test_a_second_run_adds_no_trials(tiny_run):
    suite, url = tiny_run
    before = trials_by_study(url)
    run_suite(suite, storage=url, device="cpu", progress=False)
    assert trials_by_study(url) == before


def test_an_interrupted_run_finishes_as_an_uninterrupted_one(tiny_run, tmp_path):
    suite_path, url = tiny_run
    suite = load_suite(suite_path)
    run = next(r for r in suite.runs("digits/tpe") if r.seed == 1)
    url2 = f"sqlite:///{tmp_path / 'interrupted.db'}"
    epochs_seen = 0

    def interrupt(record, trial):
        nonlocal epochs_seen
        epochs_seen += 1
        if epochs_seen == 6:  # after a trial or more, in the middle of the next one
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(run, open_storage(url2), device="cpu", data_options=suite.data, on_epoch=interrupt)
    study = optuna.load_study(study_name=run.study_name, storage=url2)
    states = [t.state for t in study.trials]
    assert states[-1] == TrialState.FAIL and len(states) >= 2
    assert set(states[:-1]) == {TrialState.COMPLETE}
    assert study.user_attrs["status"] == "running"

    run_suite(suite_path, storage=url2, device="cpu", progress=False, only="digits/tpe")
    resumed = optuna.load_study(study_name=run.study_name, storage=url2)
    reference = optuna.load_study(study_name=run.study_name, storage=url)
    ok = [
        (t.params["lr"], t.value, record_attrs(t.user_attrs)["epochs"])
        for t in resumed.trials
        if t.state != TrialState.FAIL
    ]
    ref = [
        (t.params["lr"], t.value, record_attrs(t.user_attrs)["epochs"]) for t in reference.trials
    ]
    assert ok == ref
    assert resumed.trials[len(states) - 1].state == TrialState.FAIL
    assert resumed.user_attrs["status"] == "complete"


@pytest.mark.parametrize("stored_record", [False, True], ids=["mid-training", "before-tell"])
def test_a_trial_left_running_by_a_killed_worker_is_failed_on_resume(
    tiny_run, tmp_path, stored_record
):
    suite_path, url = tiny_run
    suite = load_suite(suite_path)
    run = next(r for r in suite.runs("bowl/tpe") if r.seed == 0)
    url2 = f"sqlite:///{tmp_path / 'killed.db'}"
    # A process killed mid-trial leaves its trial RUNNING and the run not complete.
    killed = optuna.create_study(study_name=run.study_name, storage=open_storage(url2))
    orphan = killed.ask()
    orphan.suggest_float("lr", run.task.low, run.task.high, log=True)
    if stored_record:  # killed after the trial stored its record, before it was told
        orphan.set_user_attr("steps", 30)
        orphan.set_user_attr("epochs", 3.0)
    killed.set_user_attr("status", "running")
    assert killed.trials[0].state == TrialState.RUNNING

    assert run_one(run, open_storage(url2), device="cpu", data_options=suite.data)
    study = optuna.load_study(study_name=run.study_name, storage=url2)
    assert study.trials[0].state == TrialState.FAIL
    assert study.user_attrs["interrupted_trials"] == [0]
    assert TrialState.RUNNING not in {t.state for t in study.trials}
    assert study.user_attrs["status"] == "complete"
    # The failed trial charged nothing: the rest of the run is the uninterrupted one.
    reference = trials_by_study(url)[run.study_name]
    assert trials_by_study(url2)[run.study_name][1:] == reference


def test_two_workers_store_the_same_runs_as_one(tiny_run, tmp_path):
    suite_path, url = tiny_run
    url2 = f"sqlite:///{tmp_path / 'workers.db'}"
    run_suite(suite_path, storage=url2, device="cpu", progress=False, workers=2, only="bowl/*")
    ours = trials_by_study(url2)
    ref = {k: v for k, v in trials_by_study(url).items() if k.startswith("tiny/bowl/")}
    assert ours == ref


def test_a_changed_suite_does_not_mix_with_stored_runs(tiny_run, tmp_path):
    _, url = tiny_run
    changed = write_suite(tmp_path, TINY.replace("budget_epochs = 12", "budget_epochs = 20"))
    before = trials_by_study(url)
    with pytest.raises(ConfigError, match="budget_epochs"):
        run_suite(changed, storage=url, device="cpu", progress=False, only="digits/tpe")
    assert trials_by_study(url) == before


BAD_SUITES = {
    "unknown top-level key": (
        "[suite]\nbudget_epochs = 5\n[tasks.digits]\n[[strategies]]\nname='grid'\n[extra]\n",
        "extra: unknown key",
    ),
    "unknown task key": (
        "[suite]\nbudget_epochs = 5\n[tasks.digits]\ntargett = 1\n[[strategies]]\nname='grid'\n",
        "tasks.digits.targett: unknown key",
    ),
    "wrong type": (
        "[suite]\nbudget_epochs = 'ten'\n[tasks.digits]\n[[strategies]]\nname='grid'\n",
        "suite.budget_epochs: expected",
    ),
    "unknown task": (
        "[suite]\nbudget_epochs = 5\n[tasks.mnist]\n[[strategies]]\nname='grid'\n",
        "tasks.mnist.task: unknown task 'mnist'",
    ),
    "unknown strategy": (
        "[suite]\nbudget_epochs = 5\n[tasks.digits]\n[[strategies]]\nname='bogo'\n",
        "strategies[0].name: unknown strategy 'bogo'",
    ),
    "unknown strategy option": (
        "[suite]\nbudget_epochs = 5\n[tasks.digits]\n[[strategies]]\nname='grid'\nm=3\n",
        "unknown option(s) m",
    ),
    "non-positive budget": (
        "[suite]\nbudget_epochs = 0\n[tasks.digits]\n[[strategies]]\nname='grid'\n",
        "suite.budget_epochs: must be positive",
    ),
    "low >= high": (
        "[suite]\nbudget_epochs = 5\n[tasks.digits]\nlow = 1.0\nhigh = 0.1\n[[strategies]]\nname='grid'\n",
        "tasks.digits.low: low (1.0) must be below high (0.1)",
    ),
    "no target": (
        "[suite]\nbudget_epochs = 5\n[tasks.functions]\n[[strategies]]\nname='grid'\n",
        "tasks.functions.target: task 'functions' has no default target",
    ),
    "broken TOML": ("[suite\nbudget_epochs = 5\n", "not valid TOML"),
    "bad seeds": (
        "[suite]\nseeds = [0, -1]\nbudget_epochs = 5\n[tasks.digits]\n[[strategies]]\nname='grid'\n",
        "suite.seeds",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_a_bad_suite_exits_2_naming_file_and_key_and_writes_nothing(
    case, tmp_path, capsys, monkeypatch
):
    text, expected = BAD_SUITES[case]
    path = write_suite(tmp_path, text, "bad.toml")
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "bad.db"
    assert main(["run", str(path), "--storage", f"sqlite:///{db}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err, err
    assert "Traceback" not in err
    assert not db.exists() and not (tmp_path / "runs").exists()


def test_only_that_matches_nothing_is_a_clear_error(tiny_run, capsys):
    suite, url = tiny_run
    assert main(["run", str(suite), "--storage", url, "--only", "digits/sgdr", "--quiet"]) == 2
    assert "matches no run" in capsys.readouterr().err


def test_a_missing_suite_names_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nosuch", "--quiet"]) == 2
    assert "no suite named 'nosuch'" in capsys.readouterr().err


def test_the_static_split_options_are_retired_with_a_pointer_to_claiming(
    tiny_run, tmp_path, capsys
):
    suite, url = tiny_run
    args = ["run", str(suite), "--storage", url, "--quiet", "--num-workers", "3"]
    assert main([*args, "--worker-index", "1"]) == 2
    err = capsys.readouterr().err
    assert "claim runs from the storage" in err and "--workers N" in err
