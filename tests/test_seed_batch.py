"""Seeds of one configuration driven together (`lrbench.running._run.run_group`): with a population size of
3, the three seeds of `fixed` (with and without a fresh optimizer every epoch), `cosine` and
`one_cycle` train their one trial each as one population, and every run stores what it stores
when driven alone (one CPU thread: bit for bit). A self-tuning strategy, whose optimizer is its
own, is still driven run by run.
"""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from test_harness import run_summaries, write_suite

from lrbench.cli import main
from lrbench.running import RunOptions, load_suite
from lrbench.running._run import run_group, seed_group_size
from lrbench.storage import open_storage
from lrbench.storage.records import RunKeys, record_attrs
from lrbench.strategies import _base as base

SUITE = """
[suite]
name = "seeds"
seeds = [0, 1, 2]
budget_epochs = 3

[tasks.digits]
epochs_per_trial = 3
options = { val_size = 200 }
low = 1e-3
high = 0.3

[[strategies]]
name = "fixed"
lr = 0.05

[[strategies]]
name = "fixed"
label = "fixed-reset"
lr = 0.05
optimizer_reset = "epoch"

[[strategies]]
name = "cosine"
lr = 0.05

[[strategies]]
name = "one_cycle"
num_iter = 10

[[strategies]]
name = "schedulefree"
"""
# Wall-clock values differ between any two runs.
TIMING = {"seconds", "eval_seconds"}
RUN_TIMING = {"wall_seconds", "started_at", "finished_at", "overhead_seconds"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # module-wide: the sequential reference is trained under it too
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stored(url: str) -> dict[str, tuple]:
    """Every run's attrs and trials (params, values, reports, records), timing left out."""
    out = {}
    for s in run_summaries(url):
        study = optuna.load_study(study_name=s.study_name, storage=url)
        attrs = {k: v for k, v in study.user_attrs.items() if k not in RUN_TIMING}
        trials = []
        for t in study.trials:
            rec = {k: v for k, v in record_attrs(t.user_attrs).items() if k not in TIMING}
            rec["history"] = [
                {k: v for k, v in h.items() if k not in TIMING} for h in rec.get("history", [])
            ]
            trials.append((t.state, t.params, t.value, t.intermediate_values, rec))
        out[s.study_name] = (attrs, trials)
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    path = write_suite(tmp_path_factory.mktemp("seeds"), SUITE, "seeds.toml")
    url = f"sqlite:///{path.parent / 'sequential.db'}"
    assert main(["run", str(path), "--storage", url, "--device", "cpu", "--quiet"]) == 0
    return path, url


def test_seeds_of_one_configuration_train_as_one_population_and_store_the_same(
    sequential, tmp_path, monkeypatch
):
    path, reference = sequential
    sizes = []
    real = base.train_trials
    monkeypatch.setattr(
        base,
        "train_trials",
        lambda task, configs, **kw: sizes.append(len(configs)) or real(task, configs, **kw),
    )
    url = f"sqlite:///{tmp_path / 'together.db'}"
    argv = ["run", str(path), "--storage", url, "--device", "cpu", "--quiet"]
    assert main([*argv, "--population", "3"]) == 0
    # fixed, fixed-reset, cosine, one_cycle together; schedulefree run by run, one at a time
    assert [k for k in sizes if k > 1] == [3, 3, 3, 3] and set(sizes) == {1, 3}
    ours, ref = stored(url), stored(reference)
    assert sorted(ours) == sorted(ref)
    for name in ref:
        assert ours[name] == ref[name], name
    one_cycle = optuna.load_study(study_name="seeds/digits/one_cycle/seed1", storage=url)
    assert one_cycle.user_attrs[RunKeys.OVERHEAD_STEPS] == 10  # its own range test, charged
    assert record_attrs(one_cycle.trials[0].user_attrs)[
        "cut"
    ]  # and its trial cut at the budget left


def test_group_size_follows_the_population_and_the_strategy(tmp_path):
    suite = load_suite(write_suite(tmp_path, SUITE, "seeds.toml"))
    runs = {r.strategy.label: r for r in suite.runs() if r.seed == 0}
    assert seed_group_size(runs["fixed"], RunOptions(device="cpu", population=4)) == 4
    assert seed_group_size(runs["fixed"], RunOptions(device="cpu")) == 1  # a CPU's default
    assert seed_group_size(runs["schedulefree"], RunOptions(device="cpu", population=4)) == 1


def test_an_interrupted_group_fails_each_trial_in_flight_and_resumes_to_the_same(
    sequential, tmp_path
):
    path, reference = sequential
    suite = load_suite(path)
    runs = suite.runs("digits/cosine")
    url = f"sqlite:///{tmp_path / 'interrupted.db'}"
    epochs = 0

    def interrupt(record, trial) -> None:
        nonlocal epochs
        epochs += 1
        if epochs == 4:  # the second epoch of the first member
            raise KeyboardInterrupt

    options = RunOptions(device="cpu", population=3)
    with pytest.raises(KeyboardInterrupt):
        run_group(
            runs, open_storage(url), options=options, data_options=suite.data, on_epoch=interrupt
        )
    for run in runs:
        study = optuna.load_study(study_name=run.study_name, storage=url)
        (trial,) = study.trials
        assert trial.state == TrialState.FAIL
        assert "interrupted" in trial.user_attrs["fail_reason"]
        assert study.user_attrs[RunKeys.INTERRUPTED_TRIALS] == [0]
    assert run_group(runs, open_storage(url), options=options, data_options=suite.data) == 3
    ours, ref = stored(url), stored(reference)
    for run in runs:
        attrs, trials = ours[run.study_name]
        assert trials[1:] == ref[run.study_name][1] and trials[0][0] == TrialState.FAIL
