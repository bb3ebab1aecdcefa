"""The population engine: each member trains exactly as a lone trial of its configuration.

On a CPU with one thread the stacked products sum in the same order as a lone model's, so a
member's history, best and test values equal a single run's bit for bit; with more threads they
agree to float rounding (TOL).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from lrbench.storage.records import record_attrs
from lrbench.tasks import DataOptions, get_task
from lrbench.tools import ScheduleSpec
from lrbench.training import TrainConfig, TrainOptions, population_size, train, train_trials

TOL = 1e-5  # relative, for several threads
TIMING = ("seconds", "eval_seconds")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits", val_size=200)
    return task, task.prepare(torch.device("cpu"), DataOptions(train_subset=320))


@pytest.fixture(scope="module")
def vae():
    task = get_task("fmnist_vae", val_size=200, iwae_k=0)
    return task, task.prepare(torch.device("cpu"), DataOptions(train_subset=192))


def _stored(result) -> dict:
    """What a trial stores, timing excluded (NaN as a string, so that equal NaNs compare equal)."""
    d = result.to_dict()
    for key in TIMING:
        d.pop(key)
    for h in d["history"]:
        for key in TIMING:
            h.pop(key)
    return _nan_as_str(d)


def _nan_as_str(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, dict):
        return {k: _nan_as_str(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_nan_as_str(x) for x in v]
    return v


def _same_as_single(task, data, configs, **options):
    singles = [train(task, c, data=data, **options) for c in configs]
    members = train_trials(task, configs, data=data, options=TrainOptions(**options))
    for s, m in zip(singles, members):
        assert _stored(m) == _stored(s)
    return members


@pytest.mark.parametrize(
    "optimizer", ["adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adadelta"]
)
def test_member_equals_single_run_for_every_optimizer(digits, optimizer):
    task, data = digits
    lrs = [0.05, 0.01, 0.002]
    configs = [
        TrainConfig.for_task(task, lr, epochs=2, optimizer=optimizer, seed=s)
        for s, lr in enumerate(lrs)
    ]
    _same_as_single(task, data, configs, evaluate_initial=True)


@pytest.mark.parametrize(
    "schedule",
    [
        ["cyclic", "step_size_epochs=1"],
        ["step", "step_size=1", "gamma=0.5"],
        ["exponential", "gamma=0.7"],
        ["one_cycle"],
    ],
)
def test_member_equals_single_run_with_schedules(digits, schedule):
    task, data = digits
    spec = ScheduleSpec.parse(schedule)
    configs = [
        TrainConfig.for_task(task, lr, epochs=3, optimizer="momentum", schedule=spec, seed=s)
        for s, lr in ((0, 0.1), (3, 0.03))
    ]
    members = _same_as_single(task, data, configs)
    assert members[0].history[0].lr != members[0].history[1].lr


def test_vae_members_equal_single_runs_noise_included(vae):
    task, data = vae
    configs = [
        TrainConfig.for_task(task, lr, epochs=2, seed=s) for s, lr in ((0, 1e-3), (1, 3e-4))
    ]
    members = _same_as_single(task, data, configs, keep_best_state=True)
    assert set(members[0].best_state) == set(task.build_model().state_dict())


def test_functions_members_equal_single_runs():
    task = get_task("functions")
    data = task.prepare(torch.device("cpu"))
    configs = [TrainConfig.for_task(task, lr, epochs=3) for lr in (0.001, 0.01, 0.04)]
    _same_as_single(task, data, configs)


def test_several_threads_agree_within_tolerance(digits):
    task, data = digits
    torch.set_num_threads(2)
    configs = [
        TrainConfig.for_task(task, lr, epochs=2, seed=s) for s, lr in ((0, 0.01), (1, 0.03))
    ]
    singles = [train(task, c, data=data) for c in configs]
    members = train_trials(task, configs, data=data)
    for s, m in zip(singles, members):
        for a, b in zip(s.history, m.history):
            assert math.isclose(a.train_loss, b.train_loss, rel_tol=TOL)
            assert math.isclose(a.val, b.val, rel_tol=TOL)


def test_a_diverging_member_is_frozen_and_does_not_disturb_the_others(digits):
    task, data = digits
    configs = [TrainConfig.for_task(task, lr, epochs=3, seed=0) for lr in (0.01, 1e4, 0.003)]
    singles = [train(task, c, data=data) for c in (configs[0], configs[2])]
    members = train_trials(task, configs, data=data)
    assert members[1].diverged and len(members[1].history) == 1
    assert math.isnan(members[1].history[0].val)
    assert members[1].steps == data.steps_per_epoch
    for s, m in zip(singles, (members[0], members[2])):
        assert _stored(m) == _stored(s)


def test_a_stopped_member_stops_costing_steps(digits):
    task, data = digits
    configs = [TrainConfig.for_task(task, lr, epochs=4, seed=0) for lr in (0.01, 0.02)]
    stop_first = TrainOptions(callback=lambda r: r.epoch >= 2)
    members = train_trials(task, configs, data=data, options=[stop_first, TrainOptions()])
    spe = data.steps_per_epoch
    assert members[0].stopped and members[0].steps == 2 * spe and len(members[0].history) == 2
    assert not members[1].stopped and members[1].steps == 4 * spe
    assert _stored(members[1]) == _stored(train(task, configs[1], data=data))


def test_budget_cut_mid_epoch_matches_single_run(digits):
    task, data = digits
    spe = data.steps_per_epoch
    configs = [
        TrainConfig.for_task(task, 0.01, epochs=3, seed=0, max_steps=spe + 2),
        TrainConfig.for_task(task, 0.02, epochs=3, seed=1),
        TrainConfig.for_task(task, 0.02, epochs=3, seed=2, max_steps=2 * spe),
    ]
    members = _same_as_single(task, data, configs)
    assert members[0].cut and members[0].steps == spe + 2
    assert members[2].cut and members[2].steps == 2 * spe
    assert not members[1].cut


def test_members_of_different_lengths(digits):
    task, data = digits
    configs = [TrainConfig.for_task(task, 0.01, epochs=e, seed=e) for e in (1, 3, 2)]
    members = _same_as_single(task, data, configs)
    assert [len(m.history) for m in members] == [1, 3, 2]


def test_trials_a_task_cannot_stack_train_one_after_another_as_lone_trials(digits):
    task, data = digits

    class Unstackable(type(task)):
        population_form = None

    lone = Unstackable()
    configs = [TrainConfig.for_task(lone, lr, epochs=2, seed=s) for s, lr in ((0, 0.01), (1, 0.1))]
    together = train_trials(lone, configs, data=data)
    for config, member in zip(configs, together):
        assert _stored(member) == _stored(train(lone, config, data=data))


def test_an_optimizer_with_evaluation_modes_trains_its_trials_one_after_another(digits):
    task, data = digits
    configs = [
        TrainConfig.for_task(task, 0.01, optimizer="schedulefree_adamw", seed=s) for s in (0, 1)
    ]
    # Its evaluation weights live in the optimizer: each trial on its own model.
    for config, member in zip(configs, train_trials(task, configs, data=data)):
        assert _stored(member) == _stored(train(task, config, data=data))
    # and a run with such an optimizer asks for its trials one at a time
    assert population_size(task, "cpu", 8, "schedulefree_adamw") == 1
    assert population_size(task, "cpu", 8, "adam") == population_size(task, "cpu", 8) == 8


# -- strategies: K trials asked, trained as one population, told ----------------------------------
def _run(
    strategy_name: str, population: int, budget: float, task_data, epochs: int = 2, **options
):
    import optuna

    from lrbench.strategies import RunContext, get_strategy

    task, data = task_data
    study = optuna.create_study(direction="maximize")
    ctx = RunContext(
        task,
        data,
        study,
        seed=3,
        budget_epochs=budget,
        epochs_per_trial=epochs,
        low=1e-3,
        high=0.3,
        population=population,
    )
    get_strategy(strategy_name, **options).run(ctx)
    return ctx, study


def _trials(study) -> list[dict]:
    out = []
    for t in study.get_trials():
        attrs = {k: v for k, v in record_attrs(t.user_attrs).items() if k not in TIMING}
        attrs["history"] = [
            {k: v for k, v in h.items() if k not in TIMING} for h in attrs.get("history", [])
        ]
        out.append(
            dict(n=t.number, state=t.state, params=t.params, value=t.value, attrs=attrs)
            | {"reports": t.intermediate_values}
        )
    return out


@pytest.mark.parametrize("strategy", ["grid", "random"])
def test_a_population_run_stores_the_same_trials_as_a_sequential_run(
    digits, strategy, monkeypatch
):
    from lrbench.strategies import _base as base

    sizes = []
    real = base.train_trials
    monkeypatch.setattr(
        base,
        "train_trials",
        lambda task, configs, **kw: sizes.append(len(configs)) or real(task, configs, **kw),
    )
    options = {"n": 5} if strategy == "grid" else {}
    # 4.5 trials' worth of budget (some trials diverge early and leave more).
    seq_ctx, sequential = _run(strategy, 1, 9, digits, **options)
    assert set(sizes) == {1}  # one trial at a time, through the same path
    sizes.clear()
    pop_ctx, population = _run(strategy, 3, 9, digits, **options)
    assert sizes[0] == 3  # then what the budget still holds
    assert len(sequential.trials) == 5
    assert _trials(population) == _trials(sequential)
    assert pop_ctx.spent_steps() == seq_ctx.spent_steps() == pop_ctx.budget_steps()


def test_a_grid_population_never_repeats_a_point(digits):
    _, study = _run("grid", 8, 100, digits, n=3)
    assert sorted(t.params["lr"] for t in study.trials) == sorted(
        {t.params["lr"] for t in study.trials}
    )
    assert len(study.trials) == 3


def test_population_size_falls_back_to_one_where_the_task_cannot():
    import optuna

    from lrbench.strategies import RunContext

    task = get_task("cifar10", compile=True)  # a compiled model has no population form
    ctx = RunContext(task, None, optuna.create_study(), population=8, epochs_per_trial=1)
    assert ctx.population_size() == 1


def test_run_population_flag_reaches_the_strategies(tmp_path):
    """`lrbench run --population K` (CLI -> harness -> RunContext) stores what a sequential run
    stores."""
    from test_harness import trials_by_study, write_suite

    from lrbench.cli import main

    suite = write_suite(
        tmp_path,
        """
        [suite]
        name = "popgrid"
        seeds = [0]
        budget_epochs = 6

        [tasks.digits]
        epochs_per_trial = 2
        options = { val_size = 200 }
        low = 1e-3
        high = 0.3

        [[strategies]]
        name = "grid"
        n = 3
        """,
        "popgrid.toml",
    )
    urls = [f"sqlite:///{tmp_path / f'{k}.db'}" for k in (1, 3)]
    for url, k in zip(urls, (1, 3)):
        argv = ["run", str(suite), "--storage", url, "--device", "cpu", "--quiet"]
        assert main([*argv, "--population", str(k)]) == 0
    assert trials_by_study(urls[0]) == trials_by_study(urls[1])
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(suite), "--population", "0"])
    assert exit_.value.code == 2


def test_bench_population_prints_rates_and_ratios(capsys):
    from lrbench.cli import main

    argv = ["bench", "--population", "functions", "--device", "cpu", "--sizes", "1,4"]
    assert main([*argv, "--epochs", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "trial-epochs/s" in out and "ratio" in out
    rows = json.loads(out.strip().splitlines()[-1])
    assert [r["k"] for r in rows] == [1, 1, 4, 4] and all(r["ratio"] > 0 for r in rows)


def test_a_sigdigit_population_search_stores_the_same_trials_as_a_sequential_run(
    digits, monkeypatch
):
    from lrbench.strategies import _base as base

    sizes = []
    real = base.train_trials

    def spy(task, configs, **kw):
        sizes.append(len(configs))
        return real(task, configs, **kw)

    monkeypatch.setattr(base, "train_trials", spy)
    options = dict(digits=2, k=1, decade=0.01, exploit=False)
    _, sequential = _run("sigdigit", 1, 60, digits, **options)
    _, population = _run("sigdigit", 4, 60, digits, **options)
    assert max(sizes) == 4 and len(population.trials) == len(sequential.trials)
    assert _trials(population) == _trials(sequential)


def test_tpe_batches_with_a_constant_liar(digits):
    _, study = _run("tpe", 3, 12, digits, n_startup_trials=2)
    assert len(study.trials) == 6
    assert len({t.params["lr"] for t in study.trials}) == 6


# -- the stacked optimizer step: faster, equal within float rounding -----------------------------
FAST_TOL = 1e-3


def _close_to_single(task, data, configs, tol=FAST_TOL):
    singles = [train(task, c, data=data) for c in configs]
    members = train_trials(task, configs, data=data, stacked_step=True)
    for s, m in zip(singles, members):
        assert len(m.history) == len(s.history) and m.steps == s.steps
        assert (m.diverged, m.cut, m.best_epoch) == (s.diverged, s.cut, s.best_epoch)
        for a, b in zip(s.history, m.history):
            assert math.isclose(a.train_loss, b.train_loss, rel_tol=tol)
            assert math.isclose(a.val, b.val, rel_tol=tol, abs_tol=tol)
            assert math.isclose(a.lr, b.lr, rel_tol=1e-12)
    return members


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("schedule", [[], ["one_cycle"], ["step", "step_size=1", "gamma=0.5"]])
def test_stacked_step_matches_single_runs_within_tolerance(digits, optimizer, schedule):
    task, data = digits
    spec = ScheduleSpec.parse(schedule)
    lrs = (0.003, 0.01) if optimizer.startswith("adam") else (0.05, 0.2)
    configs = [
        TrainConfig.for_task(task, lr, epochs=2, optimizer=optimizer, schedule=spec, seed=s)
        for s, lr in enumerate(lrs)
    ]
    _close_to_single(task, data, configs)


def test_stacked_step_with_a_budget_cut_and_weight_decay(digits):
    task, data = digits
    spe = data.steps_per_epoch
    configs = [
        TrainConfig.for_task(task, 0.01, epochs=2, seed=0, max_steps=spe + 1, weight_decay=0.01),
        TrainConfig.for_task(task, 0.003, epochs=2, seed=1, weight_decay=0.01),
    ]
    members = _close_to_single(task, data, configs)
    assert members[0].cut and members[0].steps == spe + 1


def test_stacked_step_on_the_vae(vae):
    task, data = vae
    configs = [
        TrainConfig.for_task(task, lr, epochs=2, seed=s) for s, lr in ((0, 1e-3), (1, 3e-4))
    ]
    _close_to_single(task, data, configs)


def test_stacked_step_falls_back_for_other_optimizers(digits):
    task, data = digits
    configs = [
        TrainConfig.for_task(task, 0.01, epochs=1, optimizer="rmsprop", seed=s) for s in (0, 1)
    ]
    singles = [train(task, c, data=data) for c in configs]
    members = train_trials(task, configs, data=data, stacked_step=True)
    assert [_stored(m) for m in members] == [_stored(s) for s in singles]


def test_pruned_members_of_a_population_are_charged_only_their_steps(digits):
    from optuna.trial import TrialState

    ctx, study = _run("random", 4, 60, digits, epochs=5, pruner="median")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the median pruner pruned nothing"
    for t in pruned:
        assert (
            record_attrs(t.user_attrs)["pruned"]
            and record_attrs(t.user_attrs)["steps"] < 5 * ctx.steps_per_epoch
        )
    assert ctx.spent_steps() == sum(record_attrs(t.user_attrs)["steps"] for t in study.trials)
