"""Population based training of the rate (`pbt`): the optimizer state through the training path,
exploit and explore on a real model, and tiny runs on digits."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from lrbench.errors import ConfigError
from lrbench.storage.records import record_attrs
from lrbench.strategies import STRATEGY_GROUPS, RunContext, get_strategy
from lrbench.strategies.pbt import (
    Member,
    PBTKeys,
    exploit_and_explore,
    explore,
    quantile_size,
    ranking,
)
from lrbench.tasks import DataOptions, get_task
from lrbench.training import TrainConfig, TrainOptions, train_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.usefixtures("one_torch_thread")
TIMING = ("seconds", "eval_seconds")


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits", val_size=200)
    return task, task.prepare(torch.device("cpu"), DataOptions(train_subset=320))


def _trained(digits, lrs, *, epochs=1, **options):
    """Members trained from the seed's initialisation, their final weights and Adam state kept."""
    task, data = digits
    configs = [TrainConfig.for_task(task, lr, epochs=epochs, seed=1) for lr in lrs]
    opts = TrainOptions(evaluate_test=False, keep_final_state=True, **options)
    return train_trials(task, configs, data=data, options=opts)


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


# -- the optimizer state through the training path --------------------------------------------
@pytest.mark.parametrize("k", [1, 3])  # a lone trial, and stacked members (views of a slice)
def test_an_optimizer_state_loads_at_the_trials_own_rate_and_comes_back_unchanged(digits, k):
    task, data = digits
    source = _trained(digits, [0.01])[0]
    state = source.final_optimizer_state
    assert state is not None and state["state"][0]["exp_avg"].abs().sum() > 0
    # No step (max_steps 0): what comes back is what was loaded, at the trial's own rate.
    configs = [
        TrainConfig.for_task(task, 0.003 * (i + 1), epochs=1, seed=1, max_steps=0)
        for i in range(k)
    ]
    opts = TrainOptions(
        evaluate_test=False,
        keep_final_state=True,
        initial_state=source.final_state,
        initial_optimizer_state=state,
    )
    results = train_trials(task, configs, data=data, options=opts)
    for i, r in enumerate(results):
        out = r.final_optimizer_state
        assert out is not None
        assert _same_tensors(out["state"], state["state"])
        assert [g["lr"] for g in out["param_groups"]] == [0.003 * (i + 1)]
        assert all("initial_lr" not in g for g in out["param_groups"])
        assert out["state"][0]["exp_avg"] is not state["state"][0]["exp_avg"]  # copies
    assert state["param_groups"][0]["lr"] == 0.01  # the stored state is left as it was


def test_a_loaded_optimizer_state_trains_the_same_stacked_or_alone_and_is_used(digits):
    task, data = digits
    sources = _trained(digits, [0.01, 0.002])
    configs = [TrainConfig.for_task(task, lr, epochs=2, seed=2) for lr in (0.005, 0.02)]
    options = [
        TrainOptions(
            evaluate_test=False,
            keep_final_state=True,
            initial_state=s.final_state,
            initial_optimizer_state=s.final_optimizer_state,
        )
        for s in sources
    ]
    stacked = train_trials(task, configs, data=data, options=options)
    alone = [train_trials(task, [c], data=data, options=[o])[0] for c, o in zip(configs, options)]
    for s, a in zip(stacked, alone):
        assert [h.val for h in s.history] == [h.val for h in a.history]
        assert _same_tensors(s.final_state, a.final_state)
        assert _same_tensors(s.final_optimizer_state, a.final_optimizer_state)
        assert int(s.final_optimizer_state["state"][0]["step"]) == 3 * data.steps_per_epoch
    # Without the state, Adam starts afresh: another trajectory.
    fresh = train_trials(
        task,
        configs[:1],
        data=data,
        options=[TrainOptions(evaluate_test=False, initial_state=sources[0].final_state)],
    )[0]
    assert [h.train_loss for h in fresh.history] != [h.train_loss for h in alone[0].history]


# -- exploit and explore ------------------------------------------------------------------------
def test_ranking_and_quantiles_follow_the_direction_and_ray_tunes_rule():
    higher = lambda a, b: a > b  # noqa: E731
    assert ranking([0.5, math.nan, 0.9, 0.5], higher) == [2, 0, 3, 1]
    assert ranking([0.5, math.nan, 0.9], lambda a, b: a < b) == [0, 2, 1]
    assert [quantile_size(n, 0.25) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 1, 1, 1, 2, 2, 3]
    assert quantile_size(4, 0.5) == 2


def test_explore_perturbs_by_a_factor_or_resamples_inside_the_range():
    rng = np.random.default_rng(0)
    kw = dict(low=1e-4, high=0.1, perturbation_factors=(1.2, 0.8))
    perturbed = {explore(0.01, rng, resample_probability=0.0, **kw) for _ in range(50)}
    assert perturbed == {0.01 * 1.2, 0.01 * 0.8}
    assert explore(0.095, rng, resample_probability=0.0, low=1e-4, high=0.1,
                   perturbation_factors=(1.2,)) == 0.1  # fmt: skip
    resampled = [explore(0.01, rng, resample_probability=1.0, **kw) for _ in range(50)]
    assert all(1e-4 <= r <= 0.1 for r in resampled) and len(set(resampled)) == 50


def test_exploit_copies_weights_and_adam_state_of_a_top_member_and_explore_changes_the_rate(
    digits,
):
    lrs = [0.01, 0.03, 0.001, 0.0003]
    results = _trained(digits, lrs)
    members = [
        Member(i, lr, r.final_state, r.final_optimizer_state, steps=r.steps)
        for i, (lr, r) in enumerate(zip(lrs, results))
    ]
    scores = [0.9, 0.95, 0.5, math.nan]  # member 3 diverged: worst
    out = exploit_and_explore(
        members,
        scores,
        segment=4,
        is_better=lambda a, b: a > b,
        rng=np.random.default_rng(0),
        low=1e-4,
        high=0.1,
        quantile_fraction=0.25,  # one of four: top is member 1, bottom member 3
        resample_probability=0.0,
        perturbation_factors=(1.2, 0.8),
    )
    assert [m.index for m in out] == [0, 1, 2, 3]
    for i in (0, 1, 2):  # not in the bottom quantile: untouched
        assert out[i].lr == lrs[i] and out[i].weights is members[i].weights
        assert out[i].optimizer_state is members[i].optimizer_state
        assert out[i].copied_from is None
    copied, donor = out[3], members[1]
    assert copied.copied_from == (1, 4) and copied.steps == donor.steps
    assert copied.lr in (0.03 * 1.2, 0.03 * 0.8)  # the donor's rate, perturbed
    assert _same_tensors(copied.weights, donor.weights)
    assert _same_tensors(copied.optimizer_state, donor.optimizer_state)
    adam = copied.optimizer_state["state"][0]
    assert int(adam["step"]) == donor.steps and adam["exp_avg_sq"].abs().sum() > 0
    # Copies, not shared tensors: training the copy leaves the donor as it was.
    assert copied.weights is not donor.weights
    for name, w in copied.weights.items():
        assert w.data_ptr() != donor.weights[name].data_ptr()
    assert adam["exp_avg"].data_ptr() != donor.optimizer_state["state"][0]["exp_avg"].data_ptr()
    assert not _same_tensors(members[3].weights, donor.weights)  # it did change


# -- runs on digits -----------------------------------------------------------------------------
def _ctx(digits, budget, population=None, study=None, seed=0) -> RunContext:
    task, data = digits
    return RunContext(
        task,
        data,
        study or optuna.create_study(direction=task.direction),
        seed=seed,
        budget_epochs=budget,
        epochs_per_trial=2,
        low=1e-4,
        high=0.1,
        population=population,
    )


def _stored(study) -> list[dict]:
    out = []
    for t in study.get_trials():
        rec = {k: v for k, v in record_attrs(t.user_attrs).items() if k not in TIMING}
        rec["history"] = [{k: v for k, v in h.items() if k not in TIMING} for h in rec["history"]]
        pbt = {k: v for k, v in t.user_attrs.items() if k.startswith("pbt_")}
        out.append(dict(n=t.number, state=t.state, params=t.params, value=t.value, rec=rec, **pbt))
    return out


def test_a_tiny_pbt_run_on_digits_stores_members_rates_over_time_and_lineage(digits):
    ctx = _ctx(digits, budget=9.5, population=4)
    get_strategy("pbt", members=4, interval=1).run(ctx)
    trials = ctx.study.get_trials(deepcopy=False)
    spe = ctx.steps_per_epoch
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # Every member epoch is charged, and the run stops at the budget exactly (9.5 epochs:
    # two full segments of 4 members, then the steps left shared out evenly).
    steps = [record_attrs(t.user_attrs)["steps"] for t in trials]
    assert sum(steps) == ctx.spent_steps() == ctx.budget_steps() == round(9.5 * spe)
    left = ctx.budget_steps() - 8 * spe
    assert 0 < left < 4 * spe and set(steps[:-4]) == {spe}
    assert steps[-4:] == [left // 4 + (i < left % 4) for i in range(4)]
    by_key = {(t.user_attrs[PBTKeys.MEMBER], t.user_attrs[PBTKeys.SEGMENT]): t for t in trials}
    assert sorted(by_key) == [(m, s) for m in range(4) for s in range(3)]
    for t in trials:
        assert set(t.params) == {"lr"} and 1e-4 <= t.params["lr"] <= 0.1
        assert record_attrs(t.user_attrs)["phase"] == "pbt"
        assert t.user_attrs[PBTKeys.POPULATION] == 0
        src = t.user_attrs[PBTKeys.COPIED_FROM]
        segment = t.user_attrs[PBTKeys.SEGMENT]
        if src is None:  # carried on: its own previous segment
            prev = by_key.get((t.user_attrs[PBTKeys.MEMBER], segment - 1))
        else:  # exploited: the donor's segment just before, which ranked at the top
            assert src["segment"] == segment - 1
            prev = by_key[(src["member"], src["segment"])]
            same = [
                o for o in trials if o.user_attrs[PBTKeys.SEGMENT] == segment - 1 and o is not prev
            ]
            assert all(prev.value >= o.value for o in same)
        start = t.user_attrs[PBTKeys.START_EPOCH]
        assert start == (0.0 if prev is None else prev.user_attrs[PBTKeys.START_EPOCH] + 1.0)
        if src is None and prev is not None:
            assert t.params["lr"] == prev.params["lr"]
    copied = [t for t in trials if t.user_attrs[PBTKeys.COPIED_FROM] is not None]
    assert len(copied) == 2  # one of four per ranking, two rankings
    rates = {m: [by_key[(m, s)].params["lr"] for s in range(3)] for m in range(4)}
    assert any(len(set(r)) > 1 for r in rates.values()), "some member's rate changed"
    # The run's best trial is the segment with the best validation value.
    assert ctx.study.best_value == max(record_attrs(t.user_attrs)["best_val"] for t in trials)
    # Reproducible from the seed, and a finished run resumes to nothing.
    again = _ctx(digits, budget=9.5, population=4)
    get_strategy("pbt", members=4, interval=1).run(again)
    assert _stored(again.study) == _stored(ctx.study)
    get_strategy("pbt", members=4, interval=1).run(ctx)
    assert len(ctx.study.get_trials(deepcopy=False)) == len(trials)


def test_stacked_and_sequential_members_store_the_same_trials(digits):
    stacked = _ctx(digits, budget=7, population=3)
    sequential = _ctx(digits, budget=7, population=1)
    assert stacked.population_size() == 3 and sequential.population_size() == 1
    for ctx in (stacked, sequential):
        get_strategy("pbt", members=3, interval=1).run(ctx)
    assert len(stacked.study.trials) == 9
    assert _stored(stacked.study) == _stored(sequential.study)


def test_a_resumed_run_starts_a_new_population_in_the_budget_left(digits):
    first = _ctx(digits, budget=4, population=3)
    get_strategy("pbt", members=3, interval=1).run(first)
    assert len(first.study.trials) == 6
    # The same study with more budget, as a resumed run sees it: the weights are gone.
    resumed = _ctx(digits, budget=7, population=3, study=first.study)
    get_strategy("pbt", members=3, interval=1).run(resumed)
    trials = resumed.study.get_trials(deepcopy=False)
    assert resumed.spent_steps() == resumed.budget_steps()
    new = trials[6:]
    assert [t.user_attrs[PBTKeys.POPULATION] for t in new] == [1] * len(new)
    assert [t.user_attrs[PBTKeys.SEGMENT] for t in new[:3]] == [0, 0, 0]
    assert all(t.user_attrs[PBTKeys.START_EPOCH] == 0.0 for t in new[:3])
    assert {t.params["lr"] for t in new[:3]}.isdisjoint({t.params["lr"] for t in trials[:3]})


def test_defaults_options_and_group():
    assert STRATEGY_GROUPS["pbt"] == "population"
    s = get_strategy("pbt")
    assert s.options == {
        "members": None,
        "interval": None,
        "quantile_fraction": 0.25,
        "resample_probability": 0.25,
        "perturbation_factors": [1.2, 0.8],
    }
    assert get_strategy("pbt", perturbation_factors="1.5, 0.5").opts.perturbation_factors == (
        1.5,
        0.5,
    )
    for bad in (
        {"members": 1},
        {"interval": 0},
        {"quantile_fraction": 0.6},
        {"resample_probability": 1.5},
        {"perturbation_factors": [1.2, -1]},
        {"perturbation_factors": []},
        {"perturbation_factors": ["x"]},
    ):
        with pytest.raises(ConfigError, match="strategy 'pbt'"):
            get_strategy("pbt", **bad)


def test_default_members_and_interval_follow_the_budget_and_the_trial_length(digits):
    s = get_strategy("pbt")
    ctx = _ctx(digits, budget=20)
    ctx.epochs_per_trial = 8
    assert (s.interval(ctx), s.n_members(ctx)) == (2, 5)
    ctx.epochs_per_trial = 2
    assert (s.interval(ctx), s.n_members(ctx)) == (1, 8)
    assert s.n_members(_ctx(digits, budget=2)) == 2


def test_an_interrupted_segment_fails_its_trials_and_the_resumed_run_ends_at_the_budget(digits):
    ctx = _ctx(digits, budget=6, population=3)
    epochs = 0

    def stop_in_the_second_segment(record, key):
        nonlocal epochs
        epochs += 1
        if epochs == 4:
            raise KeyboardInterrupt

    ctx.on_epoch = stop_in_the_second_segment
    with pytest.raises(KeyboardInterrupt):
        get_strategy("pbt", members=3, interval=1).run(ctx)
    states = [t.state for t in ctx.study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.FAIL] * 3
    ctx.on_epoch = None
    get_strategy("pbt", members=3, interval=1).run(ctx)
    new = ctx.study.get_trials(deepcopy=False)[6:]
    assert new and all(t.user_attrs[PBTKeys.POPULATION] == 1 for t in new)
    assert ctx.spent_steps() == ctx.budget_steps()
